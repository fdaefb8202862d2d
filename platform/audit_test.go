package platform_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/platform/platformtest"
)

// someActs performs one of each administrative act.
func someActs(t *testing.T, e *platformtest.Env) {
	t.Helper()
	c := e.EnrollNew(t, "audited")
	other := e.EnrollNew(t, "other")
	if _, err := e.Admin.NewEnrollmentToken(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	in, err := e.Admin.CreateIntegration(ctx, api.IntegrationRequest{Name: "i", Image: "localhost/i:1",
		Config: json.RawMessage(`{"token":"` + secretValue + `"}`), SecretFields: []string{"token"}, IntervalSec: 60, CollectorID: c.ID})
	if err != nil {
		t.Fatal(err)
	}
	name := "i2"
	if _, err := e.Admin.UpdateIntegration(ctx, in.ID, api.IntegrationUpdate{Name: &name}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Admin.AssignIntegration(ctx, in.ID, other.ID); err != nil {
		t.Fatal(err)
	}
	if err := e.Admin.DeleteIntegration(ctx, in.ID); err != nil {
		t.Fatal(err)
	}
	if err := e.Admin.DeleteCollector(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
}

func TestAuditLog(t *testing.T) {
	e := platformtest.Start(t)
	someActs(t, e)
	l, err := e.Admin.Audit(ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for i, en := range l.Entries {
		if en.Actor != "test-harness" { // the harness's own admin and token
			actions = append(actions, en.Action)
		}
		if en.Seq != int64(i+1) {
			t.Errorf("entry %d has seq %d", i, en.Seq)
		}
		if i > 0 && en.PrevHash != l.Entries[i-1].Hash {
			t.Errorf("entry %d: prev_hash does not chain", en.Seq)
		}
	}
	want := "collector.created collector.enrolled collector.created collector.enrolled collector.token_issued " +
		"integration.created integration.updated integration.assigned integration.deleted collector.deleted"
	if got := strings.Join(actions, " "); got != want {
		t.Errorf("actions:\n got %s\nwant %s", got, want)
	}
	raw, _ := json.Marshal(l)
	if strings.Contains(string(raw), secretValue) {
		t.Errorf("audit log carries a secret value")
	}
	page, _ := e.Admin.Audit(ctx, 3, 2)
	if len(page.Entries) != 2 || page.Entries[0].Seq != 4 || page.NextAfter != 5 {
		t.Errorf("page after 3 limit 2 = %+v", page)
	}
	v, err := e.Admin.VerifyAudit(ctx)
	if err != nil || !v.OK || v.Entries != 12 || v.Head != l.Entries[11].Hash {
		t.Fatalf("verify = %+v, %v", v, err)
	}
}

func TestAuditTamperEdit(t *testing.T) {
	e := platformtest.Start(t)
	someActs(t, e)
	db := openRaw(t, e)
	if _, err := db.Exec(`UPDATE audit_log SET details = '{"name":"innocent"}' WHERE seq = 6`); err != nil {
		t.Fatal(err)
	}
	v, err := e.Admin.VerifyAudit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if v.OK || v.BadSeq != 6 || !strings.Contains(v.Reason, "edited") {
		t.Errorf("verify after editing seq 6 = %+v", v)
	}
}

func TestAuditTamperDelete(t *testing.T) {
	e := platformtest.Start(t)
	someActs(t, e)
	db := openRaw(t, e)
	if _, err := db.Exec(`DELETE FROM audit_log WHERE seq = 4`); err != nil {
		t.Fatal(err)
	}
	v, err := e.Admin.VerifyAudit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if v.OK || v.BadSeq != 4 || !strings.Contains(v.Reason, "missing") {
		t.Errorf("verify after deleting seq 4 = %+v", v)
	}
}

func TestAuditTamperRehash(t *testing.T) {
	// Editing a row and recomputing its own hash still breaks the next link.
	e := platformtest.Start(t)
	someActs(t, e)
	db := openRaw(t, e)
	if _, err := db.Exec(`UPDATE audit_log SET hash = '` + strings.Repeat("0", 64) + `' WHERE seq = 2`); err != nil {
		t.Fatal(err)
	}
	v, _ := e.Admin.VerifyAudit(ctx)
	if v.OK || v.BadSeq != 2 {
		t.Errorf("verify = %+v", v)
	}
}
