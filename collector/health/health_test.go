package health_test

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/collectorhq/collector/collector/health"
)

func TestCheck(t *testing.T) {
	path := filepath.Join(t.TempDir(), "h", "status.json")
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	if _, err := health.Check(path, now); !errors.Is(err, health.ErrUnhealthy) || !strings.Contains(err.Error(), "no status yet") {
		t.Fatalf("no file: %v, want unhealthy: no status yet", err)
	}
	ok := health.Status{Role: "daemon", At: now, Until: now.Add(time.Minute), OK: true, Detail: "heartbeat acknowledged"}
	if err := health.Write(path, ok); err != nil {
		t.Fatal(err)
	}
	if line, err := health.Check(path, now.Add(30*time.Second)); err != nil || !strings.Contains(line, "daemon healthy") {
		t.Errorf("fresh status: %q, %v; want healthy", line, err)
	}
	if _, err := health.Check(path, now.Add(61*time.Second)); !errors.Is(err, health.ErrUnhealthy) || !strings.Contains(err.Error(), "no progress since") {
		t.Errorf("stale status: %v, want unhealthy: no progress", err)
	}
	bad := ok
	bad.OK, bad.Detail = false, "platform refused the heartbeat"
	health.Write(path, bad)
	if _, err := health.Check(path, now); !errors.Is(err, health.ErrUnhealthy) || !strings.Contains(err.Error(), "refused") {
		t.Errorf("not OK: %v, want unhealthy with the detail", err)
	}
}
