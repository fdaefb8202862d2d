package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/internal/termsafe"
	"github.com/collectorhq/collector/platform/adminctl"
)

var tokensCommand = &cli.Command{
	Name:  "tokens",
	Usage: "your API tokens (for the CLI and automation)",
	Subcommands: []*cli.Command{
		{
			Name: "create", Usage: "create a token of yours; it is shown once", ArgsUsage: "NAME",
			Flags: clientFlags(
				&cli.StringFlag{Name: "role", Usage: "at most your role (default: yours)"},
				&cli.DurationFlag{Name: "ttl", Usage: "lifetime (default 90 days, at most a year)"},
			),
			Action: withClient(func(c *cli.Context, ac *api.AdminClient, out adminctl.Output, args []string) error {
				if len(args) != 1 {
					return usageError(c, "want NAME")
				}
				t, err := ac.CreateToken(c.Context, api.CreateTokenRequest{Name: args[0], Role: c.String("role"), TTLSeconds: int64(c.Duration("ttl") / time.Second)})
				if err != nil {
					return fmt.Errorf("create token: %w", err)
				}
				if out.JSON {
					return json.NewEncoder(out.W).Encode(t)
				}
				fmt.Fprintf(out.W, "Token %s (%s, role %s, expires %s), shown once:\n%s\n", termsafe.String(t.Name), t.ID, t.Role, t.ExpiresAt.Local().Format(time.DateTime), t.Token)
				return nil
			}),
		},
		{
			Name: "list", Usage: "list your tokens (--all: everyone's, admins)", Flags: clientFlags(&cli.BoolFlag{Name: "all", Usage: "every user's tokens"}),
			Action: withClient(func(c *cli.Context, ac *api.AdminClient, out adminctl.Output, args []string) error {
				list := ac.MyTokens
				if c.Bool("all") {
					list = ac.AllTokens
				}
				ts, err := list(c.Context)
				if err != nil {
					return fmt.Errorf("list tokens: %w", err)
				}
				if out.JSON {
					return json.NewEncoder(out.W).Encode(api.APITokenList{Tokens: ts})
				}
				t := out.Table("ID", "NAME", "ROLE", "EXPIRES", "LAST USED", "REVOKED")
				for _, tk := range ts {
					t.Row(tk.ID, tk.Name, tk.Role, tk.ExpiresAt.Local().Format(time.DateTime), when(tk.LastUsedAt), when(tk.RevokedAt))
				}
				return t.Flush()
			}),
		},
		{
			Name: "revoke", Usage: "revoke a token", ArgsUsage: "ID", Flags: clientFlags(),
			Action: withClient(func(c *cli.Context, ac *api.AdminClient, out adminctl.Output, args []string) error {
				if len(args) != 1 {
					return usageError(c, "want ID")
				}
				if err := ac.RevokeToken(c.Context, args[0]); err != nil {
					return fmt.Errorf("revoke token: %w", err)
				}
				fmt.Fprintf(out.W, "Token %s revoked.\n", termsafe.String(args[0]))
				return nil
			}),
		},
	},
}

func when(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.Local().Format(time.DateTime)
}

// loginTokenFile is where `platform login` keeps its token:
// $XDG_CONFIG_HOME/collector-platform/token (0600).
func loginTokenFile() string {
	dir, err := os.UserConfigDir()
	if err != nil {
		return ""
	}
	return filepath.Join(dir, "collector-platform", "token")
}

var loginCommand = &cli.Command{
	Name:  "login",
	Usage: "sign the CLI in: prints a URL to open in a browser where you are signed in, then keeps a short-lived token (12 h) in your config dir",
	Flags: clientFlags(),
	Action: func(c *cli.Context) error {
		conn := adminctl.Connection{Server: c.String("server"), DataDir: c.String("data-dir"), CAFile: c.String("ca-file")}
		hc, err := adminctl.HTTPClient(conn)
		if err != nil {
			return err
		}
		dev := api.NewDeviceClient(conn.Server, hc)
		st, err := dev.Start(c.Context)
		if err != nil {
			return fmt.Errorf("start the sign-in: %w", err)
		}
		fmt.Fprintf(c.App.Writer, "Open %s in a browser where you are signed in,\ncheck that it shows the code %s, and approve.\nWaiting...\n", st.VerificationURL, st.UserCode)
		tok, err := pollDevice(c.Context, dev, st)
		if err != nil {
			return err
		}
		path := loginTokenFile()
		if path == "" {
			return errors.New("no config directory to keep the token in: set XDG_CONFIG_HOME, or pass tokens with --token")
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return err
		}
		if err := os.WriteFile(path, []byte(tok.Token+"\n"), 0o600); err != nil {
			return err
		}
		fmt.Fprintf(c.App.Writer, "Signed in; the token (until %s) is in %s.\n", tok.ExpiresAt.Local().Format(time.DateTime), path)
		return nil
	},
}

func pollDevice(ctx context.Context, dev *api.DeviceClient, st *api.DeviceStart) (*api.CreatedToken, error) {
	interval := time.Duration(max(st.IntervalSec, 1)) * time.Second
	for {
		tok, err := dev.Token(ctx, st.DeviceCode)
		if err == nil {
			return tok, nil
		}
		if api.CodeOf(err) != api.CodeAuthorizationPending {
			return nil, fmt.Errorf("sign-in: %w", err)
		}
		if time.Now().After(st.ExpiresAt) {
			return nil, errors.New("sign-in: not approved in time; run `platform login` again")
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(interval):
		}
	}
}
