package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/user"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/collectorhq/collector/internal/cliutil"
	"github.com/collectorhq/collector/internal/termsafe"
	"github.com/collectorhq/collector/platform"
	"github.com/collectorhq/collector/platform/access"
	"github.com/collectorhq/collector/platform/adminctl"
)

// usersCommand manages users on the platform's host, straight on its data
// directory and database: the break-glass path of a locked-out install
// (every act audited as "break-glass:<unix user>@<host>"). An admin who
// can sign in uses the console or the API instead.
var usersCommand = &cli.Command{
	Name:  "users",
	Usage: "manage users on the platform's host (break-glass: needs the data directory; every act is audited)",
	Subcommands: []*cli.Command{
		{Name: "list", Usage: "list users", Flags: hostFlags(), Action: withHost(usersList)},
		{Name: "create", Usage: "create a user; the password is read from stdin (--password-stdin) or not set (SSO, or set later)",
			Flags: hostFlags(
				&cli.StringFlag{Name: "login", Required: true, Usage: "login name"},
				&cli.StringFlag{Name: "display-name", Usage: "display name"},
				&cli.StringFlag{Name: "role", Value: "viewer", Usage: "admin, operator or viewer"},
				&cli.BoolFlag{Name: "password-stdin", Usage: "read the password from the first line of stdin"},
				&cli.StringFlag{Name: "token", Usage: "also create an API token of this name and print it (automation)"},
			), Action: withHost(usersCreate)},
		{Name: "disable", Usage: "disable a user: their sessions and tokens stop at once", ArgsUsage: "LOGIN", Flags: hostFlags(), Action: withHost(usersSetDisabled(true))},
		{Name: "enable", Usage: "enable a user", ArgsUsage: "LOGIN", Flags: hostFlags(), Action: withHost(usersSetDisabled(false))},
		{Name: "set-role", Usage: "change a user's role (they sign in again)", ArgsUsage: "LOGIN ROLE", Flags: hostFlags(), Action: withHost(usersSetRole)},
		{Name: "reset-mfa", Usage: "remove a user's second factors (they enroll again at the next sign-in)", ArgsUsage: "LOGIN", Flags: hostFlags(), Action: withHost(usersResetMFA)},
		{Name: "set-password", Usage: "set a user's password from stdin (their sessions and tokens end)", ArgsUsage: "LOGIN", Flags: hostFlags(), Action: withHost(usersSetPassword)},
		{Name: "token", Usage: "create an API token of a user and print it (automation; at most the user's role)", ArgsUsage: "LOGIN NAME",
			Flags: hostFlags(&cli.DurationFlag{Name: "ttl", Usage: "lifetime (default 90 days, at most a year)"}), Action: withHost(usersToken)},
	},
}

func hostFlags(extra ...cli.Flag) []cli.Flag {
	flags := append([]cli.Flag{dataDirFlag()}, databaseFlags()...)
	return append(append(flags, &cli.BoolFlag{Name: "json", Usage: "print JSON for machines"}), extra...)
}

// hostEnv is the account service on the host's data directory.
type hostEnv struct {
	svc   *access.Service
	actor string
	meta  access.Meta
	out   io.Writer
	in    io.Reader
}

func withHost(action func(c *cli.Context, h *hostEnv, args []string) error) cli.ActionFunc {
	return func(c *cli.Context) error {
		args, err := lateFlags(c)
		if err != nil {
			return err
		}
		hp, err := openHostPlatform(c, nil)
		if err != nil {
			return err
		}
		defer hp.close()
		svc, err := platform.OpenAccess(hp.cfg, hp.dd, hp.b.Access, hp.log, nil)
		if err != nil {
			return err
		}
		who := "unknown"
		if u, err := user.Current(); err == nil {
			who = u.Username
		}
		host, _ := os.Hostname()
		h := &hostEnv{svc: svc, actor: "break-glass:" + who + "@" + host, meta: access.Meta{Source: "host"}, out: c.App.Writer, in: c.App.Reader}
		if h.in == nil {
			h.in = os.Stdin
		}
		return safeError(action(c, h, args))
	}
}

func (h *hostEnv) userByLogin(c *cli.Context, login string) (access.User, error) {
	n, err := access.NormalizeLogin(login)
	if err != nil {
		return access.User{}, err
	}
	us, err := h.svc.Users(c.Context)
	if err != nil {
		return access.User{}, err
	}
	for _, u := range us {
		if u.Login == n {
			return u, nil
		}
	}
	return access.User{}, fmt.Errorf("no user %q", termsafe.String(login))
}

func readSecretLine(r io.Reader) (string, error) {
	line, err := bufio.NewReader(io.LimitReader(r, access.MaxPasswordBytes+2)).ReadString('\n')
	if err != nil && err != io.EOF {
		return "", err
	}
	return strings.TrimRight(line, "\r\n"), nil
}

func usersList(c *cli.Context, h *hostEnv, args []string) error {
	us, err := h.svc.Users(c.Context)
	if err != nil {
		return err
	}
	t := adminctl.Output{W: h.out}.Table("LOGIN", "ROLE", "STATE", "SECOND FACTOR", "NAME", "ID")
	for _, u := range us {
		m, err := h.svc.MFA(c.Context, u.ID)
		if err != nil {
			return err
		}
		state := "active"
		if u.Disabled {
			state = "disabled"
		}
		f := "none"
		if m.Enrolled() {
			f = fmt.Sprintf("totp=%v passkeys=%d", m.TOTP, m.Passkeys)
		}
		t.Row(u.Login, string(u.Role), state, f, u.DisplayName, u.ID)
	}
	return t.Flush()
}

func usersCreate(c *cli.Context, h *hostEnv, args []string) error {
	role, err := access.ParseRole(c.String("role"))
	if err != nil {
		return cliutil.Exit(cliutil.ExitUsage, err)
	}
	pw := ""
	if c.Bool("password-stdin") {
		if pw, err = readSecretLine(h.in); err != nil {
			return err
		}
	}
	u, err := h.svc.CreateUser(c.Context, access.CreateUserRequest{Login: c.String("login"), DisplayName: c.String("display-name"), Password: pw, Role: role}, h.actor, h.meta)
	if err != nil {
		return err
	}
	fmt.Fprintf(h.out, "User %s created (%s, role %s).\n", termsafe.String(u.Login), u.ID, u.Role)
	if name := c.String("token"); name != "" {
		_, tok, err := h.svc.CreateTokenFor(c.Context, u, h.actor, h.meta, access.CreateTokenRequest{Name: name})
		if err != nil {
			return err
		}
		fmt.Fprintf(h.out, "API token (shown once):\n%s\n", tok)
	}
	return nil
}

func usersSetDisabled(disabled bool) func(c *cli.Context, h *hostEnv, args []string) error {
	return func(c *cli.Context, h *hostEnv, args []string) error {
		if len(args) != 1 {
			return usageError(c, "want LOGIN")
		}
		u, err := h.userByLogin(c, args[0])
		if err != nil {
			return err
		}
		if _, err := h.svc.SetDisabled(c.Context, u.ID, disabled, h.actor, h.meta); err != nil {
			return err
		}
		fmt.Fprintf(h.out, "User %s %s.\n", termsafe.String(u.Login), map[bool]string{true: "disabled: its sessions and tokens no longer work", false: "enabled"}[disabled])
		return nil
	}
}

func usersSetRole(c *cli.Context, h *hostEnv, args []string) error {
	if len(args) != 2 {
		return usageError(c, "want LOGIN ROLE")
	}
	role, err := access.ParseRole(args[1])
	if err != nil {
		return cliutil.Exit(cliutil.ExitUsage, err)
	}
	u, err := h.userByLogin(c, args[0])
	if err != nil {
		return err
	}
	if _, err := h.svc.SetRole(c.Context, u.ID, role, h.actor, h.meta); err != nil {
		return err
	}
	fmt.Fprintf(h.out, "User %s is now %s; they sign in again.\n", termsafe.String(u.Login), role)
	return nil
}

func usersResetMFA(c *cli.Context, h *hostEnv, args []string) error {
	if len(args) != 1 {
		return usageError(c, "want LOGIN")
	}
	u, err := h.userByLogin(c, args[0])
	if err != nil {
		return err
	}
	if err := h.svc.ResetMFA(c.Context, u.ID, h.actor, h.meta); err != nil {
		return err
	}
	fmt.Fprintf(h.out, "Second factors of %s removed; they enroll again at the next sign-in.\n", termsafe.String(u.Login))
	return nil
}

func usersSetPassword(c *cli.Context, h *hostEnv, args []string) error {
	if len(args) != 1 {
		return usageError(c, "want LOGIN")
	}
	u, err := h.userByLogin(c, args[0])
	if err != nil {
		return err
	}
	pw, err := readSecretLine(h.in)
	if err != nil {
		return err
	}
	if err := h.svc.SetPassword(c.Context, u, pw, h.actor, h.meta); err != nil {
		return err
	}
	fmt.Fprintf(h.out, "Password of %s set; their sessions and tokens ended.\n", termsafe.String(u.Login))
	return nil
}

func usersToken(c *cli.Context, h *hostEnv, args []string) error {
	if len(args) != 2 {
		return usageError(c, "want LOGIN NAME")
	}
	u, err := h.userByLogin(c, args[0])
	if err != nil {
		return err
	}
	_, tok, err := h.svc.CreateTokenFor(c.Context, u, h.actor, h.meta, access.CreateTokenRequest{Name: args[1], TTL: c.Duration("ttl")})
	if err != nil {
		return err
	}
	fmt.Fprintln(h.out, tok)
	return nil
}
