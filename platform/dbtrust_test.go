package platform_test

import (
	"crypto/ed25519"
	"strings"
	"testing"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/platform/platformtest"
)

// The database is not the trust root (P6 item 6), at the platform's level:
// an attacker who can write the database file but not the data directory
// gets no secret and leaves traces the platform refuses.

// TestRepointedIntegrationGivesNoSecret: pointing an integration at
// another collector in the database (one the attacker controls) makes its
// config unopenable: the job fails, no envelope leaves, and the admin API
// says the record was altered.
func TestRepointedIntegrationGivesNoSecret(t *testing.T) {
	e := platformtest.Start(t)
	a, evil := e.EnrollNew(t, "a"), e.EnrollNew(t, "evil")
	in := newJobIntegration(t, e, "ldap", a.ID)
	db := openRaw(t, e)
	if _, err := db.Exec(`UPDATE integrations SET collector_id = ? WHERE id = ?`, evil.ID, in.ID); err != nil {
		t.Fatal(err)
	}
	job, err := e.Admin.RunIntegration(ctx, in.ID)
	if err != nil {
		t.Fatal(err)
	}
	noJob(t, evil)
	got := showJob(t, e, job.ID)
	if got.State != api.JobFailed || !strings.Contains(got.Error, "altered outside the platform") {
		t.Errorf("job of the repointed integration = %s %q, want failed as altered", got.State, got.Error)
	}
	if _, err := e.Admin.Integration(ctx, in.ID); api.CodeOf(err) != api.CodeIntegrity && api.StatusOf(err) != 500 {
		t.Errorf("showing the altered integration: %v", err)
	}
	if strings.Contains(e.Logs.String(), secretValue) {
		t.Error("the secret reached the platform log")
	}
}

// TestUnmarkedSecretFieldNotRevealed: removing a field from secret_fields in
// the database does not make the API show its value.
func TestUnmarkedSecretFieldNotRevealed(t *testing.T) {
	e := platformtest.Start(t)
	a := e.EnrollNew(t, "a")
	in := newJobIntegration(t, e, "ldap", a.ID)
	if _, err := openRaw(t, e).Exec(`UPDATE integrations SET secret_fields = '[]' WHERE id = ?`, in.ID); err != nil {
		t.Fatal(err)
	}
	got, err := e.Admin.Integration(ctx, in.ID)
	if err == nil && strings.Contains(string(got.Config), secretValue) {
		t.Fatalf("the secret is shown once unmarked in the database: %s", got.Config)
	}
}

// TestInsertedCollectorCannotAuthenticate: a collector row the attacker
// inserted with their own keys cannot exchange an assertion.
func TestInsertedCollectorCannotAuthenticate(t *testing.T) {
	e := platformtest.Start(t)
	key, hk := platformtest.NewKeys(t)
	const id = "col_zzzzzzzzzzzzzzzzzzzzzzzzzz"
	if _, err := openRaw(t, e).Exec(`INSERT INTO collectors(id, name, pool, created_at, enrolled_at, identity_key, hpke_key)
		VALUES (?, 'evil', '', 1, 1, ?, ?)`, id, []byte(key.Public().(ed25519.PublicKey)), hk.PublicKey()); err != nil {
		t.Fatal(err)
	}
	cl := api.NewCollectorClient(e.URL, id, key, e.Server.Audience(), e.HTTP)
	if _, err := cl.ExchangeAssertion(ctx); api.StatusOf(err) != 401 {
		t.Errorf("assertion of an inserted collector: %v, want 401", err)
	}
	if c, err := e.Admin.Collector(ctx, id); err != nil || c.Status != api.CollectorStatusDegraded || !strings.Contains(c.StatusReason, "integrity") {
		t.Errorf("inserted collector shows as %+v, %v; want degraded for its integrity", c, err)
	}
}

// TestAuditTruncationCaughtByCheckpoint: deleting the newest audit entries
// leaves a valid chain, but not the head the platform saved outside the
// database, nor the one an administrator noted.
func TestAuditTruncationCaughtByCheckpoint(t *testing.T) {
	e := platformtest.Start(t)
	someActs(t, e)
	v, err := e.Admin.VerifyAudit(ctx)
	if err != nil || !v.OK || v.Checkpoint == "" {
		t.Fatalf("verify = %+v, %v; want ok with the saved checkpoint", v, err)
	}
	noted := v.Checkpoint
	if _, err := openRaw(t, e).Exec(`DELETE FROM audit_log WHERE seq > ?`, v.HeadSeq-2); err != nil {
		t.Fatal(err)
	}
	if v, err := e.Admin.VerifyAudit(ctx); err != nil || v.OK || !strings.Contains(v.Reason, "deleted") {
		t.Errorf("verify after truncation = %+v, %v; want refused", v, err)
	}
	if v, err := e.Admin.VerifyAuditAgainst(ctx, noted); err != nil || v.OK {
		t.Errorf("verify against the noted head = %+v, %v; want refused", v, err)
	}
}
