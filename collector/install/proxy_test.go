package install

import (
	"context"
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/collectorhq/collector/collector/config"
	"github.com/collectorhq/collector/collector/egress"
	"github.com/collectorhq/collector/engine"
)

const proxySecret = "s3cret-proxy-pw"

func proxiedConfig() *config.Config {
	return &config.Config{
		CollectorID: "col_1", Image: "registry.example/collector@sha256:" + strings.Repeat("0", 64),
		Dir: config.DefaultDir, StateDir: config.DefaultStateDir,
		Engine:  config.EngineConfig{Kind: "podman", Socket: "/run/podman/podman.sock", SecretDir: "/run/collector/secrets"},
		Proxy:   "http://alice:" + proxySecret + "@proxy.corp.example:3128",
		NoProxy: []string{"registry.internal", "10.0.0.0/8"},
		ExtraCA: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
	}
}

// TestSpecsCarryNoProxy: the proxy (its credentials above all) stays in
// the config dir: the daemon's and runner's specs, whatever the engine and
// supervisor, carry it in no environment variable, label, command or
// other field, nor do the Quadlet units; the roles read it from the
// mounted config.
func TestSpecsCarryNoProxy(t *testing.T) {
	for _, kind := range []string{"podman", "docker"} {
		cfg := proxiedConfig()
		cfg.Engine.Kind = kind
		for _, s := range []*engine.ContainerSpec{DaemonSpec(cfg), RunnerSpec(cfg)} {
			b, err := json.Marshal(s)
			if err != nil {
				t.Fatal(err)
			}
			for _, leak := range []string{proxySecret, "alice", "proxy.corp.example", "BEGIN CERTIFICATE"} {
				if strings.Contains(string(b), leak) {
					t.Errorf("%s spec of %s carries %q: %s", kind, s.Name, leak, b)
				}
			}
			for k := range s.Env {
				if k2 := strings.ToUpper(k); strings.Contains(k2, "PROXY") {
					t.Errorf("%s spec of %s has env %s", kind, s.Name, k)
				}
			}
		}
	}
	units, err := QuadletUnits(proxiedConfig())
	if err != nil {
		t.Fatal(err)
	}
	for name, u := range units {
		if strings.Contains(string(u), proxySecret) || strings.Contains(strings.ToUpper(string(u)), "PROXY") {
			t.Errorf("Quadlet unit %s carries the proxy:\n%s", name, u)
		}
	}
}

// TestEgressOptions: the installer's proxy options land in the config; a
// re-install without them keeps the config's; "none" removes them.
func TestEgressOptions(t *testing.T) {
	base := *proxiedConfig()
	img := base.Image

	got := withInstallOptions(config.Config{}, Options{Proxy: base.Proxy, NoProxy: base.NoProxy, ExtraCA: base.ExtraCA}, img, "")
	if got.Proxy != base.Proxy || !slices.Equal(got.NoProxy, base.NoProxy) || got.ExtraCA != base.ExtraCA {
		t.Errorf("first install: got %q %q %q", got.Proxy, got.NoProxy, got.ExtraCA)
	}
	kept := withInstallOptions(base, Options{}, img, "")
	if kept.Proxy != base.Proxy || !slices.Equal(kept.NoProxy, base.NoProxy) || kept.ExtraCA != base.ExtraCA {
		t.Errorf("re-install without options: got %q %q %q", kept.Proxy, kept.NoProxy, kept.ExtraCA)
	}
	changed := withInstallOptions(base, Options{Proxy: "https://proxy2.example:8443", NoProxy: []string{}}, img, "")
	if changed.Proxy != "https://proxy2.example:8443" || len(changed.NoProxy) != 0 || changed.ExtraCA != base.ExtraCA {
		t.Errorf("new proxy, empty no-proxy: got %q %q %q", changed.Proxy, changed.NoProxy, changed.ExtraCA)
	}
	removed := withInstallOptions(base, Options{Proxy: ProxyNone, ExtraCA: ProxyNone}, img, "")
	if removed.Proxy != "" || removed.NoProxy != nil || removed.ExtraCA != "" {
		t.Errorf("--proxy none --extra-ca none: got %q %q %q", removed.Proxy, removed.NoProxy, removed.ExtraCA)
	}

	mirrors := []egress.Mirror{{Prefix: "quay.io", Locations: []string{"mirror.corp:5000/quay"}}}
	withMirrors := withInstallOptions(base, Options{RegistryMirrors: mirrors}, img, "")
	if !reflect.DeepEqual(withMirrors.RegistryMirrors, mirrors) || !reflect.DeepEqual(withMirrors.Egress().Mirrors, mirrors) {
		t.Errorf("--registry-mirror: got %+v", withMirrors.RegistryMirrors)
	}
	if kept := withInstallOptions(withMirrors, Options{}, img, ""); !reflect.DeepEqual(kept.RegistryMirrors, mirrors) {
		t.Errorf("re-install without --registry-mirror: got %+v, want the config's", kept.RegistryMirrors)
	}
	if none := withInstallOptions(withMirrors, Options{RegistryMirrors: []egress.Mirror{}}, img, ""); none.RegistryMirrors != nil {
		t.Errorf("--registry-mirror none: got %+v", none.RegistryMirrors)
	}
	if _, err := Install(t.Context(), nil, Options{RegistryMirrors: []egress.Mirror{{Prefix: "quay.io", Locations: []string{"https://m"}}}}); err == nil ||
		!strings.Contains(err.Error(), "--registry-mirror") {
		t.Errorf("a bad mirror: %v, want a refusal naming --registry-mirror", err)
	}
}

// TestInstallRefusesBadProxy: a bad proxy or CA is refused before the
// engine is asked anything (the enrollment token is burned on use), and
// the refusal does not print the proxy's password.
func TestInstallRefusesBadProxy(t *testing.T) {
	for _, o := range []Options{
		{Proxy: "socks5://bob:" + proxySecret + "@proxy:1080"},
		{Proxy: "http://bob:" + proxySecret + "@:3128"},
		{Proxy: "http://bob:" + proxySecret + "@proxy:3128/path"},
		{Proxy: "http://proxy:3128", ExtraCA: "not PEM"},
	} {
		_, err := Install(t.Context(), nil, o)
		if err == nil {
			t.Errorf("%+v: accepted", o)
			continue
		}
		if strings.Contains(err.Error(), proxySecret) {
			t.Errorf("the refusal prints the password: %v", err)
		}
	}
}

// restartEngine records stops and starts.
type restartEngine struct {
	engine.Engine
	calls []string
}

func (e *restartEngine) InspectContainer(ctx context.Context, name string) (*engine.Container, error) {
	return &engine.Container{ID: "id-" + name, Name: name, Running: true}, nil
}

func (e *restartEngine) StopContainer(ctx context.Context, id string, _ time.Duration) error {
	e.calls = append(e.calls, "stop "+id)
	return nil
}

func (e *restartEngine) StartContainer(ctx context.Context, id string) error {
	e.calls = append(e.calls, "start "+id)
	return nil
}

// TestRestartOnEgressChange: an unchanged container whose egress settings
// changed in the config dir is stopped and started again, so its role
// reads them.
func TestRestartOnEgressChange(t *testing.T) {
	eng := &restartEngine{}
	what, err := restart(t.Context(), eng, "collector-daemon")
	if err != nil || !strings.HasPrefix(what, "restarted") || strings.Join(eng.calls, ",") != "stop id-collector-daemon,start id-collector-daemon" {
		t.Errorf("restart: %q %v %v", what, err, eng.calls)
	}
}
