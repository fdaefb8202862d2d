package platform_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/crypto"
	"github.com/collectorhq/collector/platform"
	"github.com/collectorhq/collector/platform/platformtest"
)

// TestValidationJob: "Test credentials" queues a validation beside the
// integration's collection and ahead of it, sealed as one; the collector
// cannot upload records under it; its result is kept and shown; a
// passed validation sweeps nothing (the integration's data stays), and a
// failed one fails its job with the integration's reason.
func TestValidationJob(t *testing.T) {
	e := platformtest.Start(t)
	a := e.EnrollNew(t, "a")
	in := newJobIntegration(t, e, "ldap-validate", a.ID)

	// Data from a collection, which a validation must leave alone.
	l := runAndLease(t, e, a, in.ID)
	if _, err := a.Client.UploadRecords(ctx, l.JobID, l.LeaseID, 1, entities("u1", "u2")); err != nil {
		t.Fatal(err)
	}
	if err := a.Client.Finish(ctx, l.JobID, api.FinishRequest{LeaseID: l.LeaseID, Records: 2}); err != nil {
		t.Fatal(err)
	}
	collect, err := e.Admin.RunIntegration(ctx, in.ID) // queued, not leased yet
	if err != nil {
		t.Fatal(err)
	}

	v, err := e.Admin.ValidateIntegration(ctx, in.ID)
	if err != nil {
		t.Fatal(err)
	}
	if v.Mode != api.JobModeValidate || v.ID == collect.ID || v.State != api.JobQueued || v.MaxAttempts != 1 {
		t.Fatalf("validate = %+v, want a new queued validation beside %s", v, collect.ID)
	}
	if again, err := e.Admin.ValidateIntegration(ctx, in.ID); err != nil || again.ID != v.ID {
		t.Errorf("a second validate = %+v, %v; want %s", again, err, v.ID)
	}
	if got := auditActions(t, e, "integration.validation_requested"); len(got) != 1 || got[0].Target != in.ID {
		t.Errorf("audit = %+v", got)
	}

	// Ahead of the older collection, sealed in validate mode.
	vl := leaseJob(t, a)
	if vl.JobID != v.ID {
		t.Fatalf("leased %s first, want the validation %s", vl.JobID, v.ID)
	}
	sealed, err := crypto.OpenEnvelope(vl.Envelope, a.ID, vl.JobID, a.HPKE, a.Enrolled.PlatformSigningKey, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if sealed.Mode != crypto.ModeValidate || sealed.Limits.TimeoutSec <= 0 || sealed.Limits.TimeoutSec > 600 {
		t.Errorf("sealed validation: mode %q, timeout %d s; want validate, at most 10 minutes (the runner narrows it to the manifest's)", sealed.Mode, sealed.Limits.TimeoutSec)
	}
	if _, err := a.Client.UploadRecords(ctx, vl.JobID, vl.LeaseID, 1, entities("x")); err == nil || !strings.Contains(err.Error(), "validation") {
		t.Errorf("records under a validation: %v, want refused", err)
	}
	res := &api.Validation{OK: true, Checks: []api.ValidationCheck{{Name: "bind", Detail: "bound as cn=collector"}, {Name: "search", Detail: "\x1b[31mread 3 entries"}}}
	if err := a.Client.Finish(ctx, vl.JobID, api.FinishRequest{LeaseID: vl.LeaseID, Validation: res}); err != nil {
		t.Fatal(err)
	}
	got := showJob(t, e, v.ID)
	if got.State != api.JobSucceeded || got.Validation == nil || !got.Validation.OK || len(got.Validation.Checks) != 2 || got.Validation.Checks[0].Name != "bind" {
		t.Errorf("the passed validation: %+v (%+v)", got, got.Validation)
	}
	wantKeys(t, "entities after a passed validation", itemKeys(t, e, api.KindEntity, in.ID, false), "u1", "u2")

	// A failed validation: the integration's reason in the job's error.
	v2, err := e.Admin.ValidateIntegration(ctx, in.ID)
	if err != nil {
		t.Fatal(err)
	}
	vl2 := leaseJob(t, a)
	if vl2.JobID != v2.ID {
		t.Fatalf("leased %s, want the validation %s", vl2.JobID, v2.ID)
	}
	bad := &api.Validation{OK: false, Reason: "auth", Error: "LDAP Result Code 49 \"Invalid Credentials\""}
	if err := a.Client.Finish(ctx, vl2.JobID, api.FinishRequest{LeaseID: vl2.LeaseID, ExitCode: 3, Validation: bad}); err != nil {
		t.Fatal(err)
	}
	got = showJob(t, e, v2.ID)
	if got.State != api.JobFailed || !strings.Contains(got.Error, "validation failed (auth)") || !strings.Contains(got.Error, "Invalid Credentials") ||
		got.Validation == nil || got.Validation.OK {
		t.Errorf("the failed validation: %+v", got)
	}
	// The collection waited its turn, and runs as usual.
	if cl := leaseJob(t, a); cl.JobID != collect.ID {
		t.Errorf("then leased %s, want the collection %s", cl.JobID, collect.ID)
	}
	b, _ := json.Marshal(got)
	if strings.Contains(string(b), secretValue) {
		t.Error("the validation job shows the secret")
	}
}

// TestValidateUnassigned: an integration on no collector cannot be
// validated, with a clear error.
func TestValidateUnassigned(t *testing.T) {
	e := platformtest.Start(t)
	in := newJobIntegration(t, e, "ldap-nowhere", "")
	_, err := e.Admin.ValidateIntegration(ctx, in.ID)
	var ae *api.Error
	if !errors.As(err, &ae) || !strings.Contains(ae.Message, "not assigned") {
		t.Errorf("validate an unassigned integration: %v", err)
	}
}

// TestValidateFromConsole: "Test credentials" on the integration's page
// queues a validation and shows its job, whose page shows the result and
// the checks (escaped: the integration's words are data).
func TestValidateFromConsole(t *testing.T) {
	e := platformtest.Start(t)
	a := e.EnrollNew(t, "a")
	in := newJobIntegration(t, e, "ldap-console", a.ID)
	admin := pageAs(t, e, e.AdminToken)
	if st, _, body := admin.get("/integrations/" + in.ID); st != 200 || !strings.Contains(body, `action="/integrations/`+in.ID+`/validate"`) {
		t.Fatalf("the integration page (%d) has no Test credentials form", st)
	}
	st, where, _ := admin.post("/integrations/"+in.ID+"/validate", url.Values{})
	if st != 200 || !strings.HasPrefix(where, "/jobs/job_") {
		t.Fatalf("test credentials: %d at %s", st, where)
	}
	l := leaseJob(t, a)
	if "/jobs/"+l.JobID != where {
		t.Fatalf("leased %s, the page went to %s", l.JobID, where)
	}
	res := &api.Validation{OK: true, Checks: []api.ValidationCheck{{Name: "bind", Detail: "<script>alert(1)</script>"}}}
	if err := a.Client.Finish(ctx, l.JobID, api.FinishRequest{LeaseID: l.LeaseID, Validation: res}); err != nil {
		t.Fatal(err)
	}
	_, _, body := admin.get(where)
	if !strings.Contains(body, `id="job-validation"`) || !strings.Contains(body, "passed") || !strings.Contains(body, "Check bind") {
		t.Errorf("the validation's job page does not show its result:\n%s", body)
	}
	if strings.Contains(body, "<script>alert(1)") || strings.Contains(body, `id="job-records"`) {
		t.Errorf("the job page shows an unescaped check or a records count for a validation")
	}
}

// FuzzFinishValidation: a collector's finish body for a validation (the
// integration's words, relayed) never makes a 5xx, an error is the JSON
// error shape, and what is kept is bounded. "LEASE" in a body stands for
// the current lease.
func FuzzFinishValidation(f *testing.F) {
	e := platformtest.Start(f, func(c *platform.Config) { c.Queue.LeaseTTL = 24 * time.Hour })
	a := e.EnrollNew(f, "fuzz")
	in := newJobIntegration(f, e, "ldap", a.ID)
	tok, err := a.Client.AccessToken(ctx)
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte(`{"lease_id":"LEASE","validation":{"ok":true,"checks":[{"name":"bind","detail":"ok"}]}}`))
	f.Add([]byte(`{"lease_id":"LEASE","exit_code":4,"validation":{"ok":false,"reason":"auth","error":"` + strings.Repeat("e", 10000) + `"}}`))
	f.Add([]byte(`{"lease_id":"LEASE","validation":{"ok":true,"checks":[` + strings.Repeat(`{"name":"`+strings.Repeat("n", 300)+`"},`, 100) + `{}]}}`))
	f.Add([]byte(`{"lease_id":"LEASE","validation":{"ok":"yes"}}`))
	f.Add([]byte(`{"lease_id":"LEASE","validation":{"ok":true,"reason":"\xff\xfe"}}`))
	h := e.Server.Handler()
	var l *api.Lease
	f.Fuzz(func(t *testing.T, body []byte) {
		if l == nil {
			if _, err := e.Admin.ValidateIntegration(ctx, in.ID); err != nil {
				t.Fatal(err)
			}
			l = leaseJob(t, a)
		}
		code := fuzzEndpoint(t, h, jobURL(api.PathJobFinish, l.JobID), tok, bytes.ReplaceAll(body, []byte("LEASE"), []byte(l.LeaseID)))
		if code >= 300 {
			return
		}
		j := showJob(t, e, l.JobID)
		l = nil
		if v := j.Validation; v != nil {
			if len(v.Error) > 4096 || len(v.Reason) > 64 || len(v.Checks) > 32 || !utf8.ValidString(v.Error+v.Reason) {
				t.Fatalf("kept an unbounded validation: %d-byte error, %d-byte reason, %d checks", len(v.Error), len(v.Reason), len(v.Checks))
			}
			for _, c := range v.Checks {
				if len(c.Name) > 64 || len(c.Detail) > 512 {
					t.Fatalf("kept a %d-byte check name", len(c.Name))
				}
			}
		}
	})
}

// TestCreateWithUncheckedImage: an image whose registry does not answer
// is saved with a warning (the collector verifies it before each run),
// or refused with --strict; nothing is saved then.
func TestCreateWithUncheckedImage(t *testing.T) {
	e := platformtest.Start(t, func(c *platform.Config) {
		c.VerifyImages = true
		c.ImagePolicy = []byte(`{"default":[{"type":"insecureAcceptAnything"}]}`)
	})
	const ref = "127.0.0.1:9/nowhere/integration:1" // nothing listens on the discard port
	req := api.IntegrationRequest{Name: "unchecked", Image: ref, Config: json.RawMessage(`{}`), IntervalSec: 3600}
	in, err := e.Admin.CreateIntegration(ctx, req)
	if err != nil {
		t.Fatalf("create with an unreachable registry: %v, want saved with a warning", err)
	}
	if len(in.Warnings) != 1 || !strings.Contains(in.Warnings[0], "not checked") || !strings.Contains(in.Warnings[0], ref) {
		t.Errorf("warnings %q", in.Warnings)
	}
	if got, err := e.Admin.Integration(ctx, in.ID); err != nil || len(got.Warnings) != 0 {
		t.Errorf("the warning is the answer's, not stored: %+v, %v", got, err)
	}
	req.Name, req.Strict = "strict", true
	_, err = e.Admin.CreateIntegration(ctx, req)
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Code != api.CodeImageUnchecked || !strings.Contains(ae.Message, "could not be checked") {
		t.Fatalf("strict create with an unreachable registry: %v, want image_unchecked", err)
	}
	list, _ := e.Admin.Integrations(ctx)
	for _, i := range list {
		if i.Name == "strict" {
			t.Error("a strict create that failed saved the integration")
		}
	}
}
