package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/internal/cliutil"
	"github.com/collectorhq/collector/platform/platformtest"
)

// TestJobsRunWait: `jobs run --wait` follows the job to its end and exits
// 0 only if it succeeded; a failed job exits 1 after the end of its logs.
// `jobs list` names each job's integration.
func TestJobsRunWait(t *testing.T) {
	ctx := context.Background()
	e := platformtest.Start(t)
	c := e.EnrollNew(t, "edge")
	in, err := e.Admin.CreateIntegration(ctx, api.IntegrationRequest{Name: "crm-sync", Image: "localhost/crm:1",
		Config: json.RawMessage(`{}`), IntervalSec: api.MaxIntervalSec, CollectorID: c.ID})
	if err != nil {
		t.Fatal(err)
	}
	// The collector: lease the job, log a line, end it as told.
	collect := func(exit int, errText string) {
		l, err := c.Client.Next(ctx, api.NextRequest{WaitSeconds: 10})
		if err != nil || l == nil {
			t.Errorf("next: %v, %v", l, err)
			return
		}
		if err := c.Client.UploadLogs(ctx, l.JobID, l.LeaseID, 1, []byte("connecting to crm.example\n")); err != nil {
			t.Errorf("logs: %v", err)
		}
		if err := c.Client.Finish(ctx, l.JobID, api.FinishRequest{LeaseID: l.LeaseID, ExitCode: exit, Error: errText}); err != nil {
			t.Errorf("finish: %v", err)
		}
	}
	for _, tc := range []struct {
		exit     int
		errText  string
		wantCode int
		want     []string
	}{
		{0, "", cliutil.ExitOK, []string{"waiting for it to end", "State:", "succeeded"}},
		{3, "integration exited with code 3", cliutil.ExitFailure, []string{"failed", "the end of its logs", "connecting to crm.example", "job did not succeed"}},
	} {
		done := make(chan struct{})
		go func() { defer close(done); collect(tc.exit, tc.errText) }()
		out, code := run(t, e, "jobs", "run", in.ID, "--wait", "--timeout", "30s")
		<-done
		if code != tc.wantCode {
			t.Errorf("exit %d (job exit %d): exit %d, want %d:\n%s", tc.exit, tc.exit, code, tc.wantCode, out)
		}
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("job exit %d: output lacks %q:\n%s", tc.exit, w, out)
			}
		}
	}
	if out, code := run(t, e, "jobs", "list"); code != 0 || !strings.Contains(out, "NAME") || strings.Count(out, "crm-sync") != 2 {
		t.Errorf("jobs list (exit %d) does not name the integration of both jobs:\n%s", code, out)
	}
}
