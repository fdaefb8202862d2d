// Package health is how the daemon and runner containers tell the engine
// they are well: each role rewrites a small status file on a tmpfs of its
// own container as it makes progress (the daemon when the platform
// acknowledges a heartbeat, the runner at each turn of its job loop), and
// the container's health check, `collector health`, run by the engine
// inside the same container, reads it. The file states its own deadline,
// so the check needs no knowledge of the role's intervals, and a role
// that hangs stops rewriting it and turns unhealthy by itself.
package health

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Dir is the tmpfs, private to each of the collector's containers, that
// holds the status file; File is the file.
const (
	Dir  = "/run/collector-health"
	File = Dir + "/status.json"
)

// Status is what a role last said of itself.
type Status struct {
	Role string `json:"role"`
	// At is when the role wrote it.
	At time.Time `json:"at"`
	// Until is when the status goes stale: a role that does not write
	// again by then is unhealthy.
	Until time.Time `json:"until"`
	// OK is the role's own verdict; Detail says what it is doing or what
	// is wrong, in one line.
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

// Write replaces the status file at path (atomically: the check never
// reads half a file).
func Write(path string, s Status) error {
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("health status: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("health status: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("health status: %w", err)
	}
	return nil
}

// Read reads the status file at path.
func Read(path string) (Status, error) {
	var s Status
	b, err := os.ReadFile(path)
	if err != nil {
		return s, err
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("health status %s: %w", path, err)
	}
	return s, nil
}

// ErrUnhealthy is the check's verdict when the role is not well.
var ErrUnhealthy = errors.New("unhealthy")

// Check reads the status at path and judges it at now: nil with a line
// to print when the role is well, else an error wrapping ErrUnhealthy
// that says why.
func Check(path string, now time.Time) (string, error) {
	s, err := Read(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return "", fmt.Errorf("%w: no status yet (the role is starting, or has not reached the platform once)", ErrUnhealthy)
	case err != nil:
		return "", fmt.Errorf("%w: %v", ErrUnhealthy, err)
	case now.After(s.Until):
		return "", fmt.Errorf("%w: %s has made no progress since %s (%s ago): %s",
			ErrUnhealthy, s.Role, s.At.UTC().Format(time.RFC3339), now.Sub(s.At).Round(time.Second), s.Detail)
	case !s.OK:
		return "", fmt.Errorf("%w: %s: %s", ErrUnhealthy, s.Role, s.Detail)
	}
	return fmt.Sprintf("%s healthy: %s (as of %s)", s.Role, s.Detail, s.At.UTC().Format(time.RFC3339)), nil
}
