package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"sort"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/collectorhq/collector/internal/cliutil"
	"github.com/collectorhq/collector/internal/termsafe"
	"github.com/collectorhq/collector/platform"
	"github.com/collectorhq/collector/platform/access"
)

// ssoCommand sets up single sign-on on the platform's host, straight on
// its data directory and database, as `platform users` does (every act
// audited as "break-glass:<unix user>@<host>"): the path that works when
// a provider is wrong and no admin can sign in. A signed-in admin can use
// the API (PUT /api/v1/sso) instead. The client secret is read from
// stdin, never from a flag or the environment.
var ssoCommand = &cli.Command{
	Name:  "sso",
	Usage: "single sign-on with an OpenID provider, on the platform's host (every act is audited)",
	Subcommands: []*cli.Command{
		{Name: "show", Usage: "show the settings (never the client secret) and the redirect URL to register at the provider",
			Flags: ssoFlags(), Action: withSSO(ssoShow)},
		{Name: "set", Usage: "set single sign-on: flags not given keep their current value; the client secret is read from stdin with --client-secret-stdin",
			Flags: ssoFlags(
				&cli.StringFlag{Name: "issuer", Usage: "the provider's issuer URL (https)"},
				&cli.StringFlag{Name: "client-id", Usage: "the platform's client ID at the provider"},
				&cli.BoolFlag{Name: "client-secret-stdin", Usage: "read the client secret from the first line of stdin"},
				&cli.StringSliceFlag{Name: "allowed-domain", Usage: "an email domain allowed to sign in (repeat; none: any)"},
				&cli.StringFlag{Name: "required-claim", Usage: "a claim the ID token must carry, as name=value (\"\": none)"},
				&cli.StringFlag{Name: "groups-claim", Usage: "the ID token's claim listing the groups (default groups)"},
				&cli.StringSliceFlag{Name: "group-role", Usage: "GROUP=ROLE: members of GROUP get ROLE (admin, operator, viewer); repeat; the highest wins"},
				&cli.StringSliceFlag{Name: "scope", Usage: "a scope to ask for besides openid, email and profile (repeat)"},
				&cli.StringFlag{Name: "ca-file", Usage: "PEM file of CAs to trust for the provider besides the system's (\"\": none)"},
				&cli.BoolFlag{Name: "no-check", Usage: "store without checking the provider answers (discovery)"},
			), Action: withSSO(ssoSet)},
		{Name: "disable", Usage: "switch single sign-on off (open sessions stay until they end)", Flags: ssoFlags(), Action: withSSO(ssoDisable)},
		{Name: "link", Usage: "link an existing account to the provider's subject: its next single sign-on opens it, its role following the groups",
			ArgsUsage: "LOGIN SUBJECT", Flags: ssoFlags(), Action: withSSO(ssoLink)},
	},
}

func ssoFlags(extra ...cli.Flag) []cli.Flag {
	return hostFlags(append([]cli.Flag{
		&cli.StringFlag{Name: "public-url", EnvVars: []string{envPublicURL}, Usage: "the platform's public URL, as `platform serve` has it (default https://<listen>)"},
		&cli.StringFlag{Name: "listen", Value: serveDefaults.Listen, EnvVars: []string{envListen}, Usage: "the platform's listen address, as `platform serve` has it"},
	}, extra...)...)
}

// ssoEnv is single sign-on on the host's data directory.
type ssoEnv struct {
	sso   *access.SSO
	svc   *access.Service
	actor string
	meta  access.Meta
	out   io.Writer
	in    io.Reader
	json  bool
}

func withSSO(action func(c *cli.Context, h *ssoEnv, args []string) error) cli.ActionFunc {
	return func(c *cli.Context) error {
		args, err := lateFlags(c)
		if err != nil {
			return err
		}
		hp, err := openHostPlatform(c, func(cfg *platform.Config) {
			cfg.PublicURL, cfg.Listen = c.String("public-url"), c.String("listen")
		})
		if err != nil {
			return err
		}
		defer hp.close()
		svc, err := platform.OpenAccess(hp.cfg, hp.dd, hp.b.Access, hp.log, nil)
		if err != nil {
			return err
		}
		sso, err := platform.OpenSSO(hp.cfg, svc)
		if err != nil {
			return err
		}
		who := "unknown"
		if u, err := user.Current(); err == nil {
			who = u.Username
		}
		host, _ := os.Hostname()
		h := &ssoEnv{sso: sso, svc: svc, actor: "break-glass:" + who + "@" + host, meta: access.Meta{Source: "host"},
			out: c.App.Writer, in: c.App.Reader, json: c.Bool("json")}
		if h.in == nil {
			h.in = os.Stdin
		}
		return safeError(ssoExit(action(c, h, args)))
	}
}

// ssoExit gives the refusals of single sign-on their exit codes.
func ssoExit(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, access.ErrInvalid):
		return cliutil.Exit(cliutil.ExitUsage, err)
	case errors.Is(err, access.ErrSSODisabled), errors.Is(err, access.ErrNotFound):
		return cliutil.Exit(cliutil.ExitNotFound, err)
	case errors.Is(err, access.ErrSSOProvider):
		return cliutil.Exit(cliutil.ExitUnavailable, err)
	case errors.Is(err, access.ErrConflict):
		return cliutil.Exit(cliutil.ExitConflict, err)
	}
	return err
}

func ssoShow(c *cli.Context, h *ssoEnv, args []string) error {
	s, err := h.sso.Settings(c.Context)
	v := platform.SSOSettingsView{RedirectURL: h.sso.RedirectURL()}
	switch {
	case errors.Is(err, access.ErrSSODisabled):
	case err != nil:
		return err
	default:
		v = platform.SSOView(s, h.sso.RedirectURL())
	}
	if h.json {
		b, _ := json.MarshalIndent(v, "", "  ")
		_, err := h.out.Write(append(termsafe.JSON(b), '\n'))
		return err
	}
	p := func(k, val string) { fmt.Fprintf(h.out, "%-16s %s\n", k+":", termsafe.String(val)) }
	p("enabled", fmt.Sprint(v.Enabled))
	p("redirect URL", v.RedirectURL)
	if !v.Enabled {
		return nil
	}
	p("issuer", v.Issuer)
	p("client ID", v.ClientID)
	p("client secret", v.ClientSecret)
	p("allowed domains", strings.Join(v.AllowedDomains, ", "))
	p("required claim", v.RequiredClaim)
	p("groups claim", v.GroupsClaim)
	groups := make([]string, 0, len(v.GroupRoles))
	for g, r := range v.GroupRoles {
		groups = append(groups, g+"="+r)
	}
	sort.Strings(groups)
	p("group roles", strings.Join(groups, ", "))
	p("scopes", strings.Join(v.Scopes, ", "))
	p("CA bundle", map[bool]string{true: "set", false: "none (the system's roots)"}[v.CABundle != ""])
	return nil
}

func ssoSet(c *cli.Context, h *ssoEnv, args []string) error {
	s, err := h.sso.Settings(c.Context)
	if err != nil && !errors.Is(err, access.ErrSSODisabled) {
		return err
	}
	if err := ssoApplyFlags(c, h, &s); err != nil {
		return err
	}
	if !c.Bool("no-check") {
		if err := h.sso.Check(c.Context, s); err != nil {
			return err
		}
	}
	stored, err := h.sso.Put(c.Context, s, h.actor, h.meta)
	if err != nil {
		return err
	}
	fmt.Fprintf(h.out, "Single sign-on set with %s (client %s). Register this redirect URL at the provider: %s\n",
		termsafe.String(stored.Issuer), termsafe.String(stored.ClientID), h.sso.RedirectURL())
	return nil
}

// ssoApplyFlags changes s by the flags given.
func ssoApplyFlags(c *cli.Context, h *ssoEnv, s *access.SSOSettings) error {
	if c.IsSet("issuer") {
		s.Issuer = c.String("issuer")
	}
	if c.IsSet("client-id") {
		s.ClientID = c.String("client-id")
	}
	if c.Bool("client-secret-stdin") {
		secret, err := readSecretLine(h.in)
		if err != nil {
			return err
		}
		if secret == "" {
			return usageError(c, "--client-secret-stdin: stdin held no secret")
		}
		s.ClientSecret = secret
	}
	if c.IsSet("allowed-domain") {
		s.AllowedDomains = c.StringSlice("allowed-domain")
	}
	if c.IsSet("required-claim") {
		s.RequiredClaim = c.String("required-claim")
	}
	if c.IsSet("groups-claim") {
		s.GroupsClaim = c.String("groups-claim")
	}
	if c.IsSet("scope") {
		s.Scopes = c.StringSlice("scope")
	}
	if c.IsSet("group-role") {
		s.GroupRoles = map[string]access.Role{}
		for _, gr := range c.StringSlice("group-role") {
			g, r, ok := strings.Cut(gr, "=")
			if !ok {
				return usageError(c, "--group-role %q: want GROUP=ROLE", gr)
			}
			role, err := access.ParseRole(r)
			if err != nil {
				return err
			}
			s.GroupRoles[g] = role
		}
	}
	if c.IsSet("ca-file") {
		s.CABundle = ""
		if path := c.String("ca-file"); path != "" {
			b, err := os.ReadFile(path)
			if err != nil {
				return cliutil.Exit(cliutil.ExitUsage, fmt.Errorf("--ca-file: %w", err))
			}
			s.CABundle = string(b)
		}
	}
	return nil
}

func ssoDisable(c *cli.Context, h *ssoEnv, args []string) error {
	if err := h.sso.Disable(c.Context, h.actor, h.meta); err != nil {
		return err
	}
	fmt.Fprintln(h.out, "Single sign-on is off; sessions already open stay until they end.")
	return nil
}

func ssoLink(c *cli.Context, h *ssoEnv, args []string) error {
	if len(args) != 2 {
		return usageError(c, "want LOGIN SUBJECT")
	}
	login, err := access.NormalizeLogin(args[0])
	if err != nil {
		return err
	}
	us, err := h.svc.Users(c.Context)
	if err != nil {
		return err
	}
	for _, u := range us {
		if u.Login != login {
			continue
		}
		if _, err := h.sso.Link(c.Context, u.ID, args[1], h.actor, h.meta); err != nil {
			return err
		}
		fmt.Fprintf(h.out, "User %s is linked to the subject %s: its next single sign-on opens it, its role following its groups.\n",
			termsafe.String(u.Login), termsafe.String(args[1]))
		return nil
	}
	return cliutil.Exit(cliutil.ExitNotFound, fmt.Errorf("no user %q", termsafe.String(args[0])))
}
