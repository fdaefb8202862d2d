package adminctl

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/internal/termsafe"
)

// Output is where a command writes, and how. Every string that came from
// the platform is written through termsafe (tables, views, logs, JSON):
// collectors and integrations choose much of it, and an administrator's
// terminal must not act on it.
type Output struct {
	W    io.Writer
	JSON bool
}

// json writes v as indented JSON. encoding/json escapes the C0 controls but
// leaves DEL, the C1 controls and bidi characters raw: termsafe.JSON escapes
// those too, so the output is the same JSON value and safe to show.
func (o Output) json(v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = o.W.Write(append(termsafe.JSON(b), '\n'))
	return err
}

// printf writes a line for people; its string arguments are escaped.
func (o Output) printf(format string, args ...any) {
	for i, a := range args {
		if s, ok := a.(string); ok {
			args[i] = termsafe.String(s)
		}
	}
	fmt.Fprintf(o.W, format, args...)
}

// table starts an aligned table with the given header row.
func (o Output) table(header ...string) *table {
	t := &table{tw: tabwriter.NewWriter(o.W, 0, 4, 2, ' ', 0)}
	if len(header) > 0 {
		t.row(header...)
	}
	return t
}

// table is a table for people: each cell is escaped (termsafe.String), so
// a value can add neither a row nor a column, nor reach the terminal.
type table struct{ tw *tabwriter.Writer }

func (t *table) row(cells ...string) {
	for i, c := range cells {
		if i > 0 {
			io.WriteString(t.tw, "\t")
		}
		io.WriteString(t.tw, termsafe.String(c))
	}
	io.WriteString(t.tw, "\n")
}

// field is a row of a key/value view.
func (t *table) field(key, value string) { t.row(key+":", value) }

func (t *table) flush() error { return t.tw.Flush() }

// ErrNoToken: no API token was given and none is stored.
var ErrNoToken = errors.New("no API token")

// Connection says how to reach the platform.
type Connection struct {
	Server string // https URL
	Token  string // an API token; "" reads TokenFile
	// TokenFile is where `platform login` keeps its token.
	TokenFile string
	DataDir   string // where the CA file is by default
	CAFile    string // "" uses <DataDir>/ca.crt if it exists, else the system roots
}

// Connect returns an admin client for conn.
func Connect(conn Connection) (*api.AdminClient, error) {
	tok, err := token(conn)
	if err != nil {
		return nil, err
	}
	hc, err := HTTPClient(conn)
	if err != nil {
		return nil, err
	}
	return api.NewAdminClient(conn.Server, tok, hc), nil
}

// adminCallTimeout bounds one admin call: a command never hangs on a
// platform that stopped answering (the collector's client sets deadlines
// per call instead; an admin answer is at most a few MiB).
const adminCallTimeout = 2 * time.Minute

// HTTPClient returns an HTTP client trusting the platform's CA as conn says.
func HTTPClient(conn Connection) (*http.Client, error) {
	tc, err := tlsConfig(conn)
	if err != nil {
		return nil, err
	}
	hc := api.HTTPClient(tc)
	hc.Timeout = adminCallTimeout
	return hc, nil
}

// token is the --token flag (PLATFORM_TOKEN), else the token `platform
// login` stored.
func token(conn Connection) (string, error) {
	if conn.Token != "" {
		return strings.TrimSpace(conn.Token), nil
	}
	if conn.TokenFile != "" {
		if b, err := os.ReadFile(conn.TokenFile); err == nil {
			return strings.TrimSpace(string(b)), nil
		}
	}
	return "", fmt.Errorf("%w: sign in with `platform login`, or pass an API token with --token or PLATFORM_TOKEN", ErrNoToken)
}

func tlsConfig(conn Connection) (*tls.Config, error) {
	if conn.CAFile != "" {
		return api.CATLSConfig(conn.CAFile)
	}
	path := filepath.Join(conn.DataDir, "ca.crt")
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return &tls.Config{MinVersion: tls.VersionTLS12}, nil // a certificate from a public CA
	}
	// During the grace of a CA rotation, the CA it replaced too
	// (platform.CAPreviousCertFile): a platform serves its certificate
	// until it sees the switch, and a replica until it has the files.
	return api.CATLSConfig(path, path+".previous")
}

func fmtTime(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.Local().Format(time.DateTime)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// ReadConfig returns an integration config from a file or an inline string
// (exactly one may be set; neither gives nil).
func ReadConfig(file, inline string) (json.RawMessage, error) {
	switch {
	case file != "" && inline != "":
		return nil, errors.New("give the config with --config-file or --config, not both")
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("read config file: %w", err)
		}
		return checkConfig(b)
	case inline != "":
		return checkConfig([]byte(inline))
	}
	return nil, nil
}

func checkConfig(b []byte) (json.RawMessage, error) {
	if _, err := api.ConfigObject(b); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return json.RawMessage(b), nil
}

// Table is an escaped, aligned table for other commands' output.
type Table struct{ t *table }

// Table starts a Table with the given header row.
func (o Output) Table(header ...string) *Table { return &Table{o.table(header...)} }

// Row adds a row; each cell is escaped for the terminal.
func (t *Table) Row(cells ...string) { t.t.row(cells...) }

// Flush writes the table.
func (t *Table) Flush() error { return t.t.flush() }
