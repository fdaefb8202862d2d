package platform_test

import (
	"testing"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/platform/platformtest"
)

// TestPoolMovedInDatabaseGivesNoSecret: someone who can write the
// database and controls one enrolled collector moves it into a pool in
// the database. Pool membership carries an integrity MAC, so the platform
// reads it as in no pool: it is handed none of the pool's jobs (whose
// configs carry the pool's secrets), a real member is. An administrator
// setting its pool through the API makes it a member again.
func TestPoolMovedInDatabaseGivesNoSecret(t *testing.T) {
	e := platformtest.Start(t)
	member := enrollInPool(t, e, "a", "dc1", 2, 8<<30)
	evil := enrollInPool(t, e, "evil", "", 2, 8<<30)
	in, err := e.Admin.CreateIntegration(ctx, api.IntegrationRequest{Name: "pooled", Image: jobImage,
		Config: []byte(`{"url":"ldaps://dc.example","password":"` + secretValue + `"}`), SecretFields: []string{"password"},
		IntervalSec: api.MaxIntervalSec, Pool: "dc1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := openRaw(t, e).Exec(`UPDATE collectors SET pool = 'dc1' WHERE id = ?`, evil.ID); err != nil {
		t.Fatal(err)
	}
	job, err := e.Admin.RunIntegration(ctx, in.ID)
	if err != nil {
		t.Fatal(err)
	}
	noJob(t, evil)
	if l := leaseJob(t, member); l.JobID != job.ID {
		t.Fatalf("the member leased %s, want %s", l.JobID, job.ID)
	}
	if c, err := e.Admin.Collector(ctx, evil.ID); err != nil || c.Pool != "" {
		t.Errorf("the collector moved in the database: %+v, %v; want it shown in no pool", c, err)
	}

	if _, err := e.Admin.SetCollectorPool(ctx, evil.ID, "dc1"); err != nil {
		t.Fatalf("setting the pool of the altered collector: %v", err)
	}
	if c, err := e.Admin.Collector(ctx, evil.ID); err != nil || c.Pool != "dc1" {
		t.Errorf("after an administrator set its pool: %+v, %v; want it in dc1", c, err)
	}
}
