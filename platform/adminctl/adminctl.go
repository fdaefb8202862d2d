package adminctl

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/collectorhq/collector/api"
)

// Output is where a command writes, and how.
type Output struct {
	W    io.Writer
	JSON bool
}

func (o Output) json(v any) error {
	enc := json.NewEncoder(o.W)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func (o Output) table() *tabwriter.Writer { return tabwriter.NewWriter(o.W, 0, 4, 2, ' ', 0) }

// ErrNoToken: no admin token was given and the token file cannot be read.
var ErrNoToken = errors.New("no admin token")

// Connection says how to reach the platform.
type Connection struct {
	Server  string // https URL
	Token   string // admin token; "" reads TokenFile
	DataDir string // where the token file and CA file are by default
	CAFile  string // "" uses <DataDir>/ca.crt if it exists, else the system roots
}

// Connect returns an admin client for conn.
func Connect(conn Connection) (*api.AdminClient, error) {
	tok, err := token(conn)
	if err != nil {
		return nil, err
	}
	tc, err := tlsConfig(conn)
	if err != nil {
		return nil, err
	}
	return api.NewAdminClient(conn.Server, tok, api.HTTPClient(tc)), nil
}

func token(conn Connection) (string, error) {
	if conn.Token != "" {
		return strings.TrimSpace(conn.Token), nil
	}
	path := filepath.Join(conn.DataDir, "admin-token")
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("%w: pass --token or PLATFORM_TOKEN, or make %s readable (%v)", ErrNoToken, path, err)
	}
	return strings.TrimSpace(string(b)), nil
}

func tlsConfig(conn Connection) (*tls.Config, error) {
	if conn.CAFile != "" {
		return api.CATLSConfig(conn.CAFile)
	}
	path := filepath.Join(conn.DataDir, "ca.crt")
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return &tls.Config{MinVersion: tls.VersionTLS12}, nil // a certificate from a public CA
	}
	return api.CATLSConfig(path)
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
