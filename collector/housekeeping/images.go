// Package housekeeping keeps a long-lived collector host tidy: it records
// which integration images the runner pulled and when each was last used,
// and removes those no job has used for a grace period, keeping the
// current and previous digest of every image reference still in use. It
// never touches an image the runner did not pull, nor the collector's
// own.
package housekeeping

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/collectorhq/collector/engine"
)

// LedgerFile is the record of pulled images, under the state dir.
const LedgerFile = "images.json"

// Use is one digest of a reference and when a job last used it.
type Use struct {
	DigestRef string    `json:"digest_ref"`
	LastUsed  time.Time `json:"last_used"`
}

// Ledger records image use in a file (0600, replaced atomically).
type Ledger struct {
	path string
	mu   sync.Mutex
}

// NewLedger returns the ledger under stateDir.
func NewLedger(stateDir string) *Ledger {
	return &Ledger{path: filepath.Join(stateDir, LedgerFile)}
}

// Refs maps an image reference (as the integration names it) to its
// digests, newest use first.
type Refs map[string][]Use

func (l *Ledger) load() (Refs, error) {
	b, err := os.ReadFile(l.path)
	if errors.Is(err, os.ErrNotExist) {
		return Refs{}, nil
	}
	if err != nil {
		return nil, err
	}
	var r Refs
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("image ledger %s: %w", l.path, err)
	}
	if r == nil {
		r = Refs{}
	}
	return r, nil
}

func (l *Ledger) save(r Refs) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	tmp := l.path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, l.path)
}

// Record notes that a job used ref as digestRef at now.
func (l *Ledger) Record(ref, digestRef string, now time.Time) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	r, err := l.load()
	if err != nil {
		return err
	}
	uses := slices.DeleteFunc(r[ref], func(u Use) bool { return u.DigestRef == digestRef })
	r[ref] = append([]Use{{DigestRef: digestRef, LastUsed: now.UTC()}}, uses...)
	return l.save(r)
}

// Snapshot returns the ledger's content.
func (l *Ledger) Snapshot() (Refs, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.load()
}

// Engine is what the image collection needs of the engine.
type Engine interface {
	ListContainers(ctx context.Context, labels map[string]string) ([]engine.Container, error)
	RemoveImage(ctx context.Context, ref string, force bool) error
}

// Collector removes unused integration images.
type Collector struct {
	Ledger *Ledger
	Engine Engine
	// Grace is how long an image no job used is kept.
	Grace time.Duration
	// Protect names images never to remove (the collector's own).
	Protect []string
	Log     *slog.Logger
	Now     func() time.Time
}

// Collect removes what may go and returns the digest references removed.
func (c *Collector) Collect(ctx context.Context) ([]string, error) {
	c.Ledger.mu.Lock()
	defer c.Ledger.mu.Unlock()
	refs, err := c.Ledger.load()
	if err != nil {
		return nil, err
	}
	inUse, err := c.usedByContainers(ctx)
	if err != nil {
		return nil, err
	}
	keep := c.kept(refs)
	var removed []string
	for ref, uses := range refs {
		var left []Use
		for _, u := range uses {
			if keep[u.DigestRef] || inUse[u.DigestRef] || slices.Contains(c.Protect, u.DigestRef) {
				left = append(left, u)
				continue
			}
			err := c.Engine.RemoveImage(ctx, u.DigestRef, false)
			switch {
			case err == nil || errors.Is(err, engine.ErrNotFound):
				removed = append(removed, u.DigestRef)
				c.Log.Info("removed an integration image no job used for the grace period", "image", u.DigestRef, "last_used", u.LastUsed, "grace", c.Grace)
			default: // in use (a job starting now), or another tag of it
				c.Log.Debug("kept an unused integration image", "image", u.DigestRef, "err", err)
				left = append(left, u)
			}
		}
		if len(left) == 0 {
			delete(refs, ref)
		} else {
			refs[ref] = left
		}
	}
	return removed, c.Ledger.save(refs)
}

// kept are the digests to keep: the current and previous digest of every
// reference a job used within the grace period, and any digest used
// within it.
func (c *Collector) kept(refs Refs) map[string]bool {
	cutoff := c.Now().Add(-c.Grace)
	keep := map[string]bool{}
	for _, uses := range refs {
		if len(uses) > 0 && uses[0].LastUsed.After(cutoff) {
			for _, u := range uses[:min(2, len(uses))] {
				keep[u.DigestRef] = true
			}
		}
		for _, u := range uses {
			if u.LastUsed.After(cutoff) {
				keep[u.DigestRef] = true
			}
		}
	}
	return keep
}

// usedByContainers are the images of every container there is.
func (c *Collector) usedByContainers(ctx context.Context) (map[string]bool, error) {
	list, err := c.Engine.ListContainers(ctx, nil)
	if err != nil {
		return nil, err
	}
	used := map[string]bool{}
	for _, ct := range list {
		used[ct.Image] = true
	}
	return used, nil
}

// Interval is how often Run collects: half the grace, within 10 s and an
// hour.
func Interval(grace time.Duration) time.Duration {
	return min(max(grace/2, 10*time.Second), time.Hour)
}

// Run collects every Interval until ctx ends.
func (c *Collector) Run(ctx context.Context) {
	t := time.NewTicker(Interval(c.Grace))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if _, err := c.Collect(ctx); err != nil && ctx.Err() == nil {
			c.Log.Warn("removing unused integration images failed", "err", err)
		}
	}
}
