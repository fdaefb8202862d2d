package collector

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/collectorhq/collector/collector/egress"
	"github.com/collectorhq/collector/engine"
	"github.com/collectorhq/collector/trust"
)

// fixedVerifier stands in for the signature check (tested in trust/).
type fixedVerifier struct{ err error }

func (v fixedVerifier) Verify(ctx context.Context, ref string) (string, error) {
	if v.err != nil {
		return "", v.err
	}
	return ref + "@sha256:" + fmt.Sprintf("%064x", 7), nil
}

func (v fixedVerifier) ImageID(ctx context.Context, digestRef string) (string, error) {
	return "", errors.New("fixedVerifier fetches nothing")
}

func (v fixedVerifier) Archive(ctx context.Context, digestRef, path string) error {
	return errors.New("fixedVerifier fetches nothing")
}

// pullEngine is an engine whose image calls and Info fail as a case says.
type pullEngine struct {
	engine.Engine
	inspectErr, pullErr, infoErr error
	pulls                        int
}

func (e *pullEngine) Info(ctx context.Context) (*engine.Info, error) {
	if e.infoErr != nil {
		return nil, e.infoErr
	}
	return &engine.Info{Kind: engine.KindDocker}, nil
}

func (e *pullEngine) InspectImage(ctx context.Context, ref string) (*engine.Image, error) {
	if e.inspectErr != nil {
		return nil, e.inspectErr
	}
	return &engine.Image{ID: "sha256:x"}, nil
}

func (e *pullEngine) PullImage(ctx context.Context, ref string, opts engine.PullOptions) (*engine.Image, error) {
	e.pulls++
	if e.pullErr != nil {
		return nil, e.pullErr
	}
	return &engine.Image{ID: "sha256:x"}, nil
}

// TestPullFailuresAreNoRefusals: only the signature check refuses an image
// (a *trust.RefusalError); a pull the engine could not answer, whether
// its socket refused or its stream was cut as it stopped, is
// engine.ErrUnavailable, which the runner retries.
func TestPullFailuresAreNoRefusals(t *testing.T) {
	down := fmt.Errorf("info: %w: dial unix /run/podman/podman.sock: connect: connection refused", engine.ErrUnavailable)
	absent := fmt.Errorf("inspect image: %w", engine.ErrNotFound)
	for _, c := range []struct {
		name                 string
		verifyErr            error
		eng                  *pullEngine
		refusal, unavailable bool
		pulls                int
	}{
		{name: "unsigned", verifyErr: &trust.RefusalError{Image: "r/i:1", Reason: trust.ErrUnsigned}, eng: &pullEngine{}, refusal: true},
		{name: "socket refused", eng: &pullEngine{inspectErr: down, pullErr: down, infoErr: down}, unavailable: true},
		{name: "stream cut as the engine stopped", eng: &pullEngine{inspectErr: absent, pullErr: errors.New("pull: unexpected EOF"), infoErr: down},
			unavailable: true, pulls: 1},
		{name: "not in the registry", eng: &pullEngine{inspectErr: absent, pullErr: fmt.Errorf("pull: %w: manifest unknown", engine.ErrNotFound)}, pulls: 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			imgs := &verifiedImages{v: fixedVerifier{c.verifyErr}, eng: c.eng}
			_, err := imgs.VerifyAndPull(context.Background(), "registry.example/job:1")
			if err == nil {
				t.Fatal("VerifyAndPull passed")
			}
			var refusal *trust.RefusalError
			if got := errors.As(err, &refusal); got != c.refusal {
				t.Errorf("a refusal: %v, want %v (%v)", got, c.refusal, err)
			}
			if got := errors.Is(err, engine.ErrUnavailable); got != c.unavailable {
				t.Errorf("engine unavailable: %v, want %v (%v)", got, c.unavailable, err)
			}
			if c.eng.pulls != c.pulls {
				t.Errorf("%d pulls, want %d", c.eng.pulls, c.pulls)
			}
		})
	}
}

// fetchVerifier verifies everything and archives a fixed content, or
// fails as a case says.
type fetchVerifier struct {
	id         string
	archiveErr error
	archives   []string // the paths written
}

func (v *fetchVerifier) Verify(ctx context.Context, ref string) (string, error) {
	return ref + "@sha256:" + fmt.Sprintf("%064x", 7), nil
}

func (v *fetchVerifier) ImageID(ctx context.Context, digestRef string) (string, error) {
	return v.id, nil
}

func (v *fetchVerifier) Archive(ctx context.Context, digestRef, path string) error {
	v.archives = append(v.archives, path)
	if v.archiveErr != nil {
		return v.archiveErr
	}
	return os.WriteFile(path, []byte("archive of "+digestRef), 0o600)
}

// loadEngine holds the images loaded into it, by ID; loadAs, when set,
// is the ID a load gives instead of the archive's.
type loadEngine struct {
	engine.Engine
	images  map[string]bool
	loaded  []string
	loadAs  string
	pulls   int
	idGiven string
}

func (e *loadEngine) InspectImage(ctx context.Context, ref string) (*engine.Image, error) {
	if !e.images[strings.TrimPrefix(ref, "sha256:")] {
		return nil, fmt.Errorf("inspect %s: %w", ref, engine.ErrNotFound)
	}
	return &engine.Image{ID: strings.TrimPrefix(ref, "sha256:")}, nil // Podman's form
}

func (e *loadEngine) LoadImage(ctx context.Context, r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	e.loaded = append(e.loaded, string(b))
	id := e.idGiven
	if e.loadAs != "" {
		id = e.loadAs
	}
	e.images[strings.TrimPrefix(id, "sha256:")] = true
	return nil
}

func (e *loadEngine) PullImage(ctx context.Context, ref string, opts engine.PullOptions) (*engine.Image, error) {
	e.pulls++
	return nil, errors.New("the engine must not pull when the collector fetches")
}

// TestFetchThroughTheCollector: with a proxy or mirrors, the collector
// fetches a verified image itself into an archive under its fetch dir,
// loads it and runs it by its ID (the engine, which knows neither the
// proxy nor the mirrors, pulls nothing); an image the engine holds
// already is not fetched again; a load that gives another image, or a
// refused copy, fails the pull; no archive is left.
func TestFetchThroughTheCollector(t *testing.T) {
	id := "sha256:" + fmt.Sprintf("%064x", 9)
	eg := egress.Settings{Proxy: "http://proxy.example:3128"}
	if !eg.Fetches() || (egress.Settings{}).Fetches() || !(egress.Settings{Mirrors: []egress.Mirror{{Prefix: "a", Locations: []string{"b"}}}}).Fetches() {
		t.Fatal("Fetches: want true with a proxy or mirrors only")
	}
	dir := filepath.Join(t.TempDir(), "fetch")
	ctx := context.Background()

	v := &fetchVerifier{id: id}
	eng := &loadEngine{images: map[string]bool{}, idGiven: id}
	imgs := &verifiedImages{v: v, eng: eng, fetchDir: dir}
	got, err := imgs.VerifyAndPull(ctx, "registry.example/job:1")
	if err != nil || got != id {
		t.Fatalf("VerifyAndPull = %q, %v; want the image ID %s", got, err, id)
	}
	if len(eng.loaded) != 1 || !strings.HasPrefix(eng.loaded[0], "archive of registry.example/job:1@sha256:") || eng.pulls != 0 {
		t.Errorf("loaded %q, %d engine pulls; want the verified digest's archive loaded, no pull", eng.loaded, eng.pulls)
	}
	if _, err := imgs.VerifyAndPull(ctx, "registry.example/job:1"); err != nil || len(v.archives) != 1 {
		t.Errorf("a second pull of a held image: %v, %d archives; want none fetched", err, len(v.archives))
	}
	assertEmpty(t, dir)

	other := &loadEngine{images: map[string]bool{}, idGiven: id, loadAs: "sha256:" + fmt.Sprintf("%064x", 10)}
	_, err = (&verifiedImages{v: &fetchVerifier{id: id}, eng: other, fetchDir: dir}).VerifyAndPull(ctx, "registry.example/job:1")
	if err == nil || !strings.Contains(err.Error(), id) {
		t.Errorf("a load giving another image: %v, want an error naming %s", err, id)
	}
	assertEmpty(t, dir)

	refusal := &trust.RefusalError{Image: "registry.example/job:1", Reason: trust.ErrUnsigned}
	_, err = (&verifiedImages{v: &fetchVerifier{id: id, archiveErr: refusal}, eng: &loadEngine{images: map[string]bool{}}, fetchDir: dir}).VerifyAndPull(ctx, "registry.example/job:1")
	var re *trust.RefusalError
	if !errors.As(err, &re) {
		t.Errorf("a refused copy: %v, want the *trust.RefusalError", err)
	}
	assertEmpty(t, dir)
}

func assertEmpty(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) != 0 {
		t.Errorf("fetch dir %s: %d entries, %v; want it empty", dir, len(entries), err)
	}
}

// TestStaleFetchesRemoved: what an interrupted fetch left (older than the
// age) goes at the runner's start; a fetch under way stays.
func TestStaleFetchesRemoved(t *testing.T) {
	dir := t.TempDir()
	old, fresh := filepath.Join(dir, "fetch-old"), filepath.Join(dir, "fetch-new")
	for _, d := range []string{old, fresh} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "image.tar"), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now()
	if err := os.Chtimes(old, now.Add(-2*time.Hour), now.Add(-2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	removeStaleFetches(dir, time.Hour, now, slog.New(slog.DiscardHandler))
	if _, err := os.Stat(old); !os.IsNotExist(err) {
		t.Errorf("the stale fetch is still there: %v", err)
	}
	if _, err := os.Stat(filepath.Join(fresh, "image.tar")); err != nil {
		t.Errorf("the fetch under way was removed: %v", err)
	}
	removeStaleFetches(filepath.Join(dir, "absent"), time.Hour, now, slog.New(slog.DiscardHandler)) // no dir: nothing to do
}
