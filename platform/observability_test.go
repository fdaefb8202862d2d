package platform_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/crypto"
	"github.com/collectorhq/collector/platform"
	"github.com/collectorhq/collector/platform/platformtest"
)

// TestSecretsNeverLogged drives every flow, refusals included, and checks
// the captured log holds no token and no secret config value.
func TestSecretsNeverLogged(t *testing.T) {
	e := platformtest.Start(t)
	g, err := e.Admin.CreateCollector(ctx, api.CreateCollectorRequest{Name: "logged"})
	if err != nil {
		t.Fatal(err)
	}
	secrets := []string{e.AdminToken, g.EnrollmentToken, secretValue}
	enrollWith(e, t, g.Collector.ID, g.EnrollmentToken)
	enrollWith(e, t, g.Collector.ID, g.EnrollmentToken) // refused: reused
	c := e.EnrollNew(t, "second")
	tok, err := c.Client.AccessToken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	secrets = append(secrets, tok)
	a, _ := crypto.SignAssertion(c.Key, c.ID, e.Server.Audience(), time.Now())
	c.Client.Exchange(ctx, a)
	c.Client.Exchange(ctx, a) // refused: replay
	secrets = append(secrets, a)
	c.Client.Heartbeat(ctx, api.Heartbeat{Version: "v"})
	in, err := e.Admin.CreateIntegration(ctx, api.IntegrationRequest{Name: "s", Image: "localhost/s:1",
		Config: json.RawMessage(`{"password":"` + secretValue + `"}`), SecretFields: []string{"password"}, IntervalSec: 60})
	if err != nil {
		t.Fatal(err)
	}
	e.Admin.UpdateIntegration(ctx, in.ID, api.IntegrationUpdate{Config: json.RawMessage(`{"password":"` + secretValue + `x"}`)})
	e.Raw(t, "POST", api.PathIntegrations, e.AdminToken, "application/json",
		[]byte(`{"name":"bad","config":{"password":"`+secretValue+`"},"oops":1}`))
	e.Raw(t, "GET", api.PathCollectors, e.AdminToken+"wrong", "", nil)
	logs := e.Logs.String()
	if !strings.Contains(logs, "collector enrolled") || !strings.Contains(logs, "enrollment refused") {
		t.Fatalf("log capture looks empty:\n%s", logs)
	}
	for _, s := range secrets {
		if strings.Contains(logs, s) {
			t.Errorf("log contains secret %q", s)
		}
	}
}

func TestMetrics(t *testing.T) {
	e := platformtest.Start(t)
	c := e.EnrollNew(t, "m")
	e.Admin.CreateCollector(ctx, api.CreateCollectorRequest{Name: "pending"})
	if err := c.Client.Heartbeat(ctx, api.Heartbeat{RunnerState: api.RunnerRunning}); err != nil {
		t.Fatal(err)
	}
	e.Raw(t, "GET", api.PathCollectors, "cadm_wrong", "", nil)
	e.Admin.Collector(ctx, c.ID)
	// Not public by default (P6 item 5): the metrics token or the admin token.
	if st, _ := e.Raw(t, "GET", api.PathMetrics, "", "", nil); st != 401 {
		t.Errorf("metrics without a token: %d, want 401", st)
	}
	if st, _ := e.Raw(t, "GET", api.PathMetrics, "cmet_wrong", "", nil); st != 401 {
		t.Errorf("metrics with a wrong token: %d, want 401", st)
	}
	if st, _ := e.Raw(t, "GET", api.PathMetrics, e.AdminToken, "", nil); st != 200 {
		t.Errorf("metrics with the admin token: %d, want 200", st)
	}
	tok, err := os.ReadFile(filepath.Join(e.DataDir, platform.MetricsTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	st, body := e.Raw(t, "GET", api.PathMetrics, strings.TrimSpace(string(tok)), "", nil)
	if st != 200 {
		t.Fatalf("metrics with the metrics token: %d", st)
	}
	for _, want := range []string{
		`platform_collectors{status="active"} 1`,
		`platform_collectors{status="pending"} 1`,
		`platform_collectors{status="offline"} 0`,
		`platform_enrollments_total{result="ok"} 1`,
		`platform_auth_failures_total{reason="api_token"} 1`,
		`platform_heartbeats_total 1`,
		`platform_http_request_duration_seconds_count{code="204",method="POST",route="POST /api/v1/collector/heartbeat"} 1`,
		`route="GET /api/v1/collectors/{id}"`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(string(body), `route="GET /api/v1/collectors/`+c.ID) {
		t.Errorf("metrics label a raw path")
	}
}

// TestNoEngineImport guards the layering: the platform side never imports
// the container engine or the Podman bindings.
func TestNoEngineImport(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-test",
		"github.com/collectorhq/collector/platform/...", "github.com/collectorhq/collector/cmd/platform").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	// The platform verifies integrations' images with containers/image,
	// whose registry client uses one package of Docker's API types (a
	// version compare): allowed, as nothing that talks to an engine is.
	allowed := map[string]bool{"github.com/docker/docker/api/types/versions": true}
	for _, p := range strings.Fields(string(out)) {
		if allowed[p] {
			continue
		}
		if strings.HasPrefix(p, "github.com/collectorhq/collector/engine") || strings.HasPrefix(p, "github.com/containers/podman") ||
			strings.HasPrefix(p, "github.com/docker/docker/") || strings.HasPrefix(p, "github.com/collectorhq/collector/collector") {
			t.Errorf("platform depends on %s", p)
		}
	}
}
