package platform_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/platform/access"
	"github.com/collectorhq/collector/platform/platformtest"
	"github.com/collectorhq/collector/platform/store"
)

const (
	imgV1 = "127.0.0.1:5000/collector@sha256:1111111111111111111111111111111111111111111111111111111111111111"
	imgV2 = "127.0.0.1:5000/collector@sha256:2222222222222222222222222222222222222222222222222222222222222222"
)

// upgradeBeat sends a heartbeat reporting img and upgrade status u, and returns
// the image the platform asks for ("" when none).
func upgradeBeat(t *testing.T, c *platformtest.Collector, img string, u *api.UpgradeStatus) string {
	t.Helper()
	ans, err := c.Client.Beat(ctx, api.Heartbeat{Version: "test", RunnerState: api.RunnerRunning,
		Engine: api.Engine{Kind: "podman", Version: "4.3.1"}, Image: img, Upgrade: u})
	if err != nil {
		t.Fatalf("heartbeat: %v", err)
	}
	return ans.DesiredImage
}

// TestUpgradeAskedThroughHeartbeats: a desired image is carried by every
// heartbeat answer until the collector runs it; each step the daemon
// reports is audited and shown; a rolled-back image is no longer asked
// for (until an admin asks again), nor is a refused one.
func TestUpgradeAskedThroughHeartbeats(t *testing.T) {
	e := platformtest.Start(t)
	c := e.EnrollNew(t, "edge")
	if got := upgradeBeat(t, c, imgV1, nil); got != "" {
		t.Fatalf("asked for %q with no upgrade requested", got)
	}
	ask := func(img string) {
		t.Helper()
		ev := store.Event{Actor: "test", Action: "collector.upgrade_requested", Target: c.ID}
		if _, err := e.Store.SetDesiredImage(ctx, store.UpgradeTarget{CollectorID: c.ID}, img, "2.0.0", ev); err != nil {
			t.Fatal(err)
		}
	}
	ask(imgV2)
	if got := upgradeBeat(t, c, imgV1, nil); got != imgV2 {
		t.Fatalf("heartbeat answer asks for %q, want %s", got, imgV2)
	}
	col, err := e.Admin.Collector(ctx, c.ID)
	if err != nil || col.DesiredImage != imgV2 || col.DesiredVersion != "2.0.0" {
		t.Fatalf("collector view: %+v, %v", col, err)
	}
	// Steps: audited once each, shown in the collector's view.
	for _, st := range []string{api.UpgradePulling, api.UpgradeDraining, api.UpgradeDraining, api.UpgradeRunner} {
		if got := upgradeBeat(t, c, imgV1, &api.UpgradeStatus{State: st, Image: imgV2}); got != imgV2 {
			t.Errorf("during %s asked for %q", st, got)
		}
	}
	if n := len(auditActions(t, e, "collector.upgrade_draining")); n != 1 {
		t.Errorf("%d draining audit entries, want 1 (a repeated state is one step)", n)
	}
	// Rolled back: the reason is shown and audited, and the image no longer asked for.
	reason := "runner not healthy within 120s: health check failed"
	if got := upgradeBeat(t, c, imgV1, &api.UpgradeStatus{State: api.UpgradeRolledBack, Image: imgV2, Reason: reason}); got != "" {
		t.Errorf("after a rollback asked for %q, want nothing", got)
	}
	if got := upgradeBeat(t, c, imgV1, &api.UpgradeStatus{State: api.UpgradeRolledBack, Image: imgV2, Reason: reason}); got != "" {
		t.Errorf("the next heartbeat asks for %q, want nothing", got)
	}
	col, _ = e.Admin.Collector(ctx, c.ID)
	if col.DesiredImage != "" || col.LastHeartbeat == nil || col.LastHeartbeat.Upgrade == nil || col.LastHeartbeat.Upgrade.Reason != reason {
		t.Errorf("after the rollback: desired %q, last heartbeat %+v", col.DesiredImage, col.LastHeartbeat)
	}
	rb := auditActions(t, e, "collector.upgrade_rolled_back")
	if len(rb) != 1 || !strings.Contains(string(rb[0].Details), reason) {
		t.Errorf("rollback audit entries: %+v", rb)
	}
	// Asked again: asked again; run: no longer asked.
	ask(imgV2)
	if got := upgradeBeat(t, c, imgV1, &api.UpgradeStatus{State: api.UpgradeRolledBack, Image: imgV2, Reason: reason}); got != imgV2 {
		t.Errorf("asked again, the answer asks for %q", got)
	}
	if got := upgradeBeat(t, c, imgV2, &api.UpgradeStatus{State: api.UpgradeSucceeded, Image: imgV2}); got != "" {
		t.Errorf("after it succeeded asked for %q", got)
	}
	if n := len(auditActions(t, e, "collector.upgrade_succeeded")); n != 1 {
		t.Errorf("%d succeeded audit entries, want 1", n)
	}
	// Steps quicker than a heartbeat are reported in the list and
	// audited once each, in order.
	ask(imgV1)
	upgradeBeat(t, c, imgV2, &api.UpgradeStatus{State: api.UpgradeDraining, Image: imgV1, Steps: []string{api.UpgradePulling, api.UpgradeDraining}})
	upgradeBeat(t, c, imgV2, &api.UpgradeStatus{State: api.UpgradeRunner, Image: imgV1, Steps: []string{api.UpgradePulling, api.UpgradeDraining, api.UpgradeRunner}})
	upgradeBeat(t, c, imgV2, &api.UpgradeStatus{State: api.UpgradeRunner, Image: imgV1, Steps: []string{api.UpgradePulling, api.UpgradeDraining, api.UpgradeRunner}})
	for action, want := range map[string]int{"collector.upgrade_pulling": 2, "collector.upgrade_draining": 2, "collector.upgrade_runner_replaced": 2} {
		if n := len(auditActions(t, e, action)); n != want {
			t.Errorf("%d %s audit entries, want %d (one from the steps list)", n, action, want)
		}
	}
	// A malformed status is refused.
	_, err = c.Client.Beat(ctx, api.Heartbeat{Version: "test", RunnerState: api.RunnerRunning, Upgrade: &api.UpgradeStatus{State: "exploded", Image: imgV2}})
	if api.StatusOf(err) != http.StatusBadRequest {
		t.Errorf("heartbeat with a bad upgrade state: %v, want 400", err)
	}
}

// TestUpgradeRequestChecked: one target, an image the platform's policy
// accepts (this platform has none: refused, nothing asked), an admin.
func TestUpgradeRequestChecked(t *testing.T) {
	e := platformtest.Start(t)
	c := e.EnrollNew(t, "edge")
	for _, req := range []api.UpgradeRequest{
		{Image: imgV2}, {CollectorID: c.ID, All: true, Image: imgV2}, {CollectorID: c.ID, Image: "not an image"},
	} {
		_, err := e.Admin.Upgrade(ctx, req)
		wantAPIError(t, err, 400, api.CodeInvalidRequest)
	}
	_, err := e.Admin.Upgrade(ctx, api.UpgradeRequest{CollectorID: c.ID, Image: imgV2})
	if api.StatusOf(err) != 400 || !strings.Contains(err.Error(), "image") {
		t.Errorf("upgrade with no way to verify the image: %v, want 400 image_refused", err)
	}
	if col, _ := e.Admin.Collector(ctx, c.ID); col.DesiredImage != "" {
		t.Errorf("a refused upgrade asked for %s", col.DesiredImage)
	}
	op := tokenOf(t, e, "op", createUser(t, e, "op", access.RoleOperator))
	_, err = api.NewAdminClient(e.URL, op, e.HTTP).Upgrade(ctx, api.UpgradeRequest{All: true, Image: imgV2})
	wantAPIError(t, err, 403, api.CodeForbidden)
}
