package housekeeping_test

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/collectorhq/collector/collector/housekeeping"
	"github.com/collectorhq/collector/engine"
)

type fakeEngine struct {
	images     map[string]bool
	containers []engine.Container
}

func (e *fakeEngine) ListContainers(ctx context.Context, labels map[string]string) ([]engine.Container, error) {
	return e.containers, nil
}

func (e *fakeEngine) RemoveImage(ctx context.Context, ref string, force bool) error {
	if !e.images[ref] {
		return fmt.Errorf("remove image %s: %w", ref, engine.ErrNotFound)
	}
	delete(e.images, ref)
	return nil
}

// TestCollectKeepsCurrentAndPrevious: of a reference still in use, the
// current and previous digests stay whatever their age and older ones go
// after the grace; a reference no job used within the grace loses all of
// its digests; an image a container runs, the collector's own, and one
// used within the grace stay; images the runner never pulled are never
// touched.
func TestCollectKeepsCurrentAndPrevious(t *testing.T) {
	l := housekeeping.NewLedger(t.TempDir())
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	d := func(n int) string { return fmt.Sprintf("reg/ex@sha256:%064d", n) }
	uses := []struct {
		ref, digest string
		at          time.Time
	}{
		{"reg/ex:1", d(1), t0},          // old, third newest of ex:1: goes
		{"reg/ex:1", d(2), t0.Add(day)}, // previous of ex:1: stays
		{"reg/ex:1", d(3), t0.Add(9 * day)},
		{"reg/gone:1", d(4), t0}, // unused reference: goes
		{"reg/gone:1", d(5), t0.Add(day)},
		{"reg/running:1", d(6), t0},   // unused, but a container runs it
		{"reg/collector:1", d(7), t0}, // the collector's own
		{"reg/recent:1", d(8), t0.Add(9 * day)},
	}
	eng := &fakeEngine{images: map[string]bool{"other/untouched@sha256:9": true}}
	for _, u := range uses {
		if err := l.Record(u.ref, u.digest, u.at); err != nil {
			t.Fatal(err)
		}
		eng.images[u.digest] = true
	}
	eng.containers = []engine.Container{{Name: "collector-job-x", Image: d(6)}}
	c := &housekeeping.Collector{Ledger: l, Engine: eng, Grace: 7 * day, Protect: []string{d(7)}, Log: slog.New(slog.DiscardHandler),
		Now: func() time.Time { return t0.Add(10 * day) }}
	removed, err := c.Collect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(removed)
	if want := []string{d(1), d(4), d(5)}; !slices.Equal(removed, want) {
		t.Errorf("removed %q, want %q", removed, want)
	}
	for _, keep := range []string{d(2), d(3), d(6), d(7), d(8), "other/untouched@sha256:9"} {
		if !eng.images[keep] {
			t.Errorf("%s was removed", keep)
		}
	}
	refs, _ := l.Snapshot()
	if _, ok := refs["reg/gone:1"]; ok || len(refs["reg/ex:1"]) != 2 {
		t.Errorf("ledger after the collection: %+v", refs)
	}
	// Run twice: nothing more goes.
	if again, _ := c.Collect(context.Background()); len(again) != 0 {
		t.Errorf("second collection removed %q", again)
	}
}
