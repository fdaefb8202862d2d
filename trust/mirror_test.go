package trust_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/collectorhq/collector/trust"
)

// countingMirror is a registry mirror in front of the test registry: it
// serves /v2/mirror/... from the registry and records each path asked.
type countingMirror struct {
	addr  string
	mu    sync.Mutex
	paths []string
}

func startMirror(t *testing.T) *countingMirror {
	target, _ := url.Parse("http://" + env.registry.Addr)
	proxy := httputil.NewSingleHostReverseProxy(target)
	m := &countingMirror{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.mu.Lock()
		m.paths = append(m.paths, r.Method+" "+r.URL.Path)
		m.mu.Unlock()
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	m.addr = srv.Listener.Addr().String()
	return m
}

// served says whether the mirror answered a GET whose path holds part.
func (m *countingMirror) served(part string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range m.paths {
		if strings.HasPrefix(p, "GET /v2/mirror/") && strings.Contains(p, part) {
			return true
		}
	}
	return false
}

func mirrorVerifier(t *testing.T, m *countingMirror) *trust.Verifier {
	v, err := trust.New(trust.Config{Policy: trust.SigstorePolicy(env.keyA.Public, env.registry.Addr+"/collector-test"),
		InsecureLoopback: true, Logger: slog.New(slog.DiscardHandler),
		Mirrors: []trust.Mirror{{Prefix: env.registry.Addr + "/collector-test", Locations: []string{m.addr + "/mirror/collector-test"}}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	return v
}

// TestFetchFromMirror: with a mirror of the registry's collector-test/
// namespace, the image and its signature are read from the mirror, the
// signature still checked against the original repository's name; the
// archive Archive writes loads into the engine, whose image has the ID
// ImageID named, and runs by that ID. A mirror whose tag names other
// content (unsigned there) is refused.
func TestFetchFromMirror(t *testing.T) {
	need(t)
	ctx := context.Background()
	ref := push(t, env.local, "mirrored:1.0")
	signed := sign(t, ref, env.keyA)
	mirrored := strings.Replace(ref, "/collector-test/", "/mirror/collector-test/", 1)
	copyTag(t, signed, mirrored)
	copyTag(t, sigTag(signed), sigTag(strings.Replace(signed, "/collector-test/", "/mirror/collector-test/", 1)))

	m := startMirror(t)
	v := mirrorVerifier(t, m)
	digestRef, err := v.Verify(ctx, ref)
	if err != nil {
		t.Fatalf("Verify through the mirror: %v", err)
	}
	if digestRef != signed {
		t.Errorf("Verify = %s, want %s (the original name)", digestRef, signed)
	}
	id, err := v.ImageID(ctx, digestRef)
	if err != nil || !strings.HasPrefix(id, "sha256:") {
		t.Fatalf("ImageID = %q, %v", id, err)
	}
	path := filepath.Join(t.TempDir(), "image.tar")
	if err := v.Archive(ctx, digestRef, path); err != nil {
		t.Fatalf("Archive: %v", err)
	}
	_, dig, _ := strings.Cut(signed, "@")
	for _, part := range []string{"/manifests/" + dig, "/blobs/", "/manifests/" + strings.Replace(dig, ":", "-", 1) + ".sig"} {
		if !m.served(part) {
			t.Errorf("the mirror served no GET of %s; it saw %q", part, m.paths)
		}
	}
	if err := v.Archive(ctx, digestRef, path); err == nil {
		t.Error("Archive over an existing file succeeded")
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := env.eng.LoadImage(ctx, f); err != nil {
		t.Fatalf("LoadImage: %v", err)
	}
	img, err := env.eng.InspectImage(ctx, id)
	if err != nil || "sha256:"+strings.TrimPrefix(img.ID, "sha256:") != id {
		t.Fatalf("InspectImage(%s) after the load = %+v, %v", id, img, err)
	}
	runExample(t, id)

	// The mirror's tag moved to other content, which has no signature
	// there: refused, nothing archived.
	copyTag(t, env.busybox, mirrored)
	_, err = v.Verify(ctx, ref)
	var re *trust.RefusalError
	if !errors.As(err, &re) || !errors.Is(err, trust.ErrUnsigned) {
		t.Errorf("Verify with the mirror's tag on other content = %v, want a refusal (unsigned)", err)
	}
}
