package pgtest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// Usage is what PostgreSQL did for one database, as pg_stat_statements
// counts it when each statement ends (the server Start runs preloads it):
// the capacity figures of docs/scaling.md come from the difference of two.
type Usage struct {
	// Statements is how many top-level statements ran.
	Statements int64
	// ExecMs is their execution time, planning aside, in milliseconds: on
	// a server with fsync off, about the CPU time they took.
	ExecMs float64
	// WALBytes is the write-ahead log they generated: what a primary
	// writes, and ships to every standby, for them.
	WALBytes int64
}

// Sub is u - v.
func (u Usage) Sub(v Usage) Usage {
	return Usage{Statements: u.Statements - v.Statements, ExecMs: u.ExecMs - v.ExecMs, WALBytes: u.WALBytes - v.WALBytes}
}

// Add is u + v.
func (u Usage) Add(v Usage) Usage {
	return Usage{Statements: u.Statements + v.Statements, ExecMs: u.ExecMs + v.ExecMs, WALBytes: u.WALBytes + v.WALBytes}
}

// UsageOf reads the usage of the database of dbURL so far (creating the
// pg_stat_statements view in it the first time).
func UsageOf(dbURL string) (Usage, error) {
	bin, err := binDir()
	if err != nil {
		return Usage{}, err
	}
	const q = `CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
		SELECT coalesce(sum(calls), 0), coalesce(sum(total_exec_time), 0), coalesce(sum(wal_bytes), 0)
		FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())`
	cmd := exec.Command(filepath.Join(bin, "psql"), "-X", "-q", "-A", "-t", "-F", " ", "-v", "ON_ERROR_STOP=1", "-d", dbURL, "-c", q)
	cmd.Env = append(os.Environ(), "PGCONNECT_TIMEOUT=5")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return Usage{}, fmt.Errorf("read pg_stat_statements: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	f := strings.Fields(string(out))
	if len(f) != 3 {
		return Usage{}, fmt.Errorf("read pg_stat_statements: %q", out)
	}
	var u Usage
	var wal float64
	if u.Statements, err = strconv.ParseInt(f[0], 10, 64); err == nil {
		if u.ExecMs, err = strconv.ParseFloat(f[1], 64); err == nil {
			wal, err = strconv.ParseFloat(f[2], 64)
		}
	}
	u.WALBytes = int64(wal)
	return u, err
}
