package integration_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/collectorhq/collector/integration"
)

const hunter = "hunter2-secret-value"

func TestSecretNeverPrints(t *testing.T) {
	type cfg struct {
		User     string             `json:"user"`
		Password integration.Secret `json:"password"`
		hidden   integration.Secret
	}
	var c cfg
	if err := json.Unmarshal([]byte(`{"user":"u","password":"`+hunter+`"}`), &c); err != nil {
		t.Fatal(err)
	}
	c.hidden = integration.NewSecret(hunter)
	if c.Password.Reveal() != hunter {
		t.Fatalf("Reveal = %q", c.Password.Reveal())
	}
	var out []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%10s", "%T"} {
		out = append(out, fmt.Sprintf(verb, c), fmt.Sprintf(verb, c.Password), fmt.Sprintf(verb, &c), fmt.Sprintf(verb, []integration.Secret{c.Password}))
	}
	out = append(out, c.Password.String(), fmt.Sprint(map[string]any{"p": c.Password}), fmt.Errorf("bind: %v", c.Password).Error())
	j, _ := json.Marshal(c)
	out = append(out, string(j))
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("x", "password", c.Password, "cfg", c)
	slog.New(slog.NewTextHandler(&logs, nil)).Info("x", "password", c.Password, "cfg", c)
	out = append(out, logs.String())
	all := strings.Join(out, "\n")
	hexed := fmt.Sprintf("%x", hunter)
	if strings.Contains(all, hunter) || strings.Contains(strings.ToLower(all), hexed) {
		t.Fatalf("the secret shows:\n%s", all)
	}
	if !strings.Contains(string(j), `"password":"[REDACTED]"`) || !strings.Contains(logs.String(), `"password":"[REDACTED]"`) {
		t.Errorf("JSON forms are not [REDACTED]: %s / %s", j, logs.String())
	}
	var empty integration.Secret
	if err := json.Unmarshal([]byte(`null`), &empty); err != nil || !empty.IsZero() {
		t.Errorf("null secret: %v, zero %v", err, empty.IsZero())
	}
	if err := json.Unmarshal([]byte(`12`), &empty); err == nil {
		t.Error("a number was accepted as a secret")
	}
}

func TestParseInvocation(t *testing.T) {
	env := map[string]string{}
	get := func(k string) string { return env[k] }
	inv, err := integration.ParseInvocation(nil, get)
	if err != nil || inv.ConfigPath != "" || inv.Mode != "" {
		t.Errorf("no args: %+v, %v", inv, err)
	}
	env[integration.ConfigPathEnv], env[integration.ModeEnv] = "/env/config.json", "validate"
	inv, _ = integration.ParseInvocation(nil, get)
	if inv.ConfigPath != "/env/config.json" || inv.Mode != integration.ModeValidate {
		t.Errorf("from the environment: %+v", inv)
	}
	env[integration.ModeEnv] = ""
	inv, _ = integration.ParseInvocation([]string{"--config", "/flag.json", "--validate"}, get)
	if inv.ConfigPath != "/flag.json" || inv.Mode != integration.ModeValidate {
		t.Errorf("flags win: %+v", inv)
	}
	env[integration.ModeEnv] = "sync-everything"
	if _, err := integration.ParseInvocation(nil, get); err == nil {
		t.Error("an unknown mode was accepted: the integration must not collect when asked for something else")
	}
	env[integration.ModeEnv] = ""
	for _, args := range [][]string{{"extra"}, {"--nope"}} {
		if _, err := integration.ParseInvocation(args, get); err == nil {
			t.Errorf("args %v accepted", args)
		}
	}
}

var errQuota = errors.New("quota exceeded")

type codedErr struct{}

func (codedErr) Error() string { return "coded" }
func (codedErr) ExitCode() int { return 42 }

func TestExitCodes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.json")
	os.WriteFile(path, []byte(`{}`), 0o400)
	for _, c := range []struct {
		err  error
		want int
	}{
		{nil, 0},
		{errors.New("x"), integration.ExitFailed},
		{fmt.Errorf("bind: %w", integration.ErrAuth), integration.ExitAuth},
		{fmt.Errorf("dial: %w", integration.ErrUnreachable), integration.ExitUnreachable},
		{fmt.Errorf("tls: %w", integration.ErrCertificate), integration.ExitCertificate},
		{fmt.Errorf("search: %w", integration.ErrAccess), integration.ExitAccess},
		{fmt.Errorf("api: %w", errQuota), 9},
		{fmt.Errorf("wrapped: %w", codedErr{}), 42},
		{integration.WithExitCode(errors.New("y"), 12), 12},
	} {
		var stderr bytes.Buffer
		code := integration.Run("t", path, &bytes.Buffer{}, &stderr, func(context.Context, []byte, *integration.Emitter, *slog.Logger) error { return c.err },
			integration.ExitOn(errQuota, 9))
		if code != c.want {
			t.Errorf("error %v: exit %d, want %d", c.err, code, c.want)
		}
		if c.err != nil && !strings.Contains(stderr.String(), `"reason":"`+integration.ReasonOf(code)+`"`) {
			t.Errorf("error %v: the log does not give the reason: %s", c.err, stderr.String())
		}
	}
}

func TestValidateMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.json")
	os.WriteFile(path, []byte(`{"ok": true}`), 0o400)
	ran := false
	run := func(context.Context, []byte, *integration.Emitter, *slog.Logger) error { ran = true; return nil }
	validate := func(ctx context.Context, cfg []byte, v *integration.Validation, log *slog.Logger) error {
		v.Passed("connect", "reached the target")
		if !strings.Contains(string(cfg), "true") {
			return fmt.Errorf("%w: bind refused", integration.ErrAuth)
		}
		return nil
	}
	inv := integration.Invocation{ConfigPath: path, Mode: integration.ModeValidate}
	var stdout, stderr bytes.Buffer
	code := integration.Execute("t", inv, &stdout, &stderr, run, integration.WithValidate(validate))
	res, err := integration.ParseValidationResult(stdout.Bytes())
	if code != 0 || err != nil || !res.OK || len(res.Checks) != 1 || res.Checks[0].Name != "connect" || ran {
		t.Fatalf("validate ok: exit %d, %+v, %v, ran %v; stdout %q", code, res, err, ran, stdout.String())
	}
	os.WriteFile(path, []byte(`{"ok": false}`), 0o400)
	stdout.Reset()
	code = integration.Execute("t", inv, &stdout, &stderr, run, integration.WithValidate(validate))
	res, err = integration.ParseValidationResult(stdout.Bytes())
	if code != integration.ExitAuth || err != nil || res.OK || res.Reason != "auth" || !strings.Contains(res.Error, "bind refused") {
		t.Fatalf("validate failing: exit %d, %+v, %v", code, res, err)
	}
	// No validate mode: refused with ExitUsage, and nothing collected.
	stdout.Reset()
	code = integration.Execute("t", inv, &stdout, &stderr, run)
	res, _ = integration.ParseValidationResult(stdout.Bytes())
	if code != integration.ExitUsage || ran || res == nil || res.OK || res.Reason != "usage" {
		t.Errorf("validate without a validate mode: exit %d, ran %v, result %+v", code, ran, res)
	}
}

func TestParseValidationResultRefuses(t *testing.T) {
	for _, out := range []string{``, `{}`, `{"validation":{"ok":true,"error":"x"}}`, `{"validation":{"ok":false}}`,
		`{"validation":{"ok":true}}` + "\n" + `{"entity":{}}`, `{"validation":{"ok":true,"extra":1}}`, `{"validation":{"ok":true}} x`} {
		if _, err := integration.ParseValidationResult([]byte(out)); err == nil {
			t.Errorf("ParseValidationResult(%q) accepted", out)
		}
	}
}

func FuzzParseValidationResult(f *testing.F) {
	f.Add([]byte(`{"validation":{"ok":true,"checks":[{"name":"bind","detail":"as cn=x"}]}}`))
	f.Add([]byte(`{"validation":{"ok":false,"reason":"auth","error":"invalid credentials"}}` + "\n"))
	f.Fuzz(func(t *testing.T, out []byte) {
		r, err := integration.ParseValidationResult(out)
		if err != nil {
			return
		}
		if r.OK == (r.Error != "") || len(r.Checks) > integration.MaxValidationChecks {
			t.Fatalf("accepted %q as %+v", out, r)
		}
	})
}

func TestRetry(t *testing.T) {
	ctx := context.Background()
	b := integration.Backoff{Initial: time.Millisecond, Max: 4 * time.Millisecond, Attempts: 4}
	var n int
	err := integration.Retry(ctx, b, func(context.Context) error {
		n++
		if n < 3 {
			return errors.New("transient")
		}
		return nil
	})
	if err != nil || n != 3 {
		t.Errorf("Retry = %v after %d calls, want success on the 3rd", err, n)
	}
	n = 0
	err = integration.Retry(ctx, b, func(context.Context) error { n++; return errors.New("down") })
	if err == nil || n != 4 || !strings.Contains(err.Error(), "after 4 attempts") {
		t.Errorf("Retry = %v after %d calls, want 4 attempts", err, n)
	}
	n = 0
	err = integration.Retry(ctx, b, func(context.Context) error { n++; return integration.Permanent(integration.ErrAuth) })
	if n != 1 || !errors.Is(err, integration.ErrAuth) {
		t.Errorf("Permanent: %v after %d calls", err, n)
	}
	// Retry-After is honoured (bounded by Max).
	n = 0
	start := time.Now()
	integration.Retry(ctx, integration.Backoff{Initial: time.Millisecond, Max: 30 * time.Millisecond, Attempts: 2}, func(context.Context) error {
		n++
		return integration.RetryAfter(errors.New("429"), time.Hour)
	})
	if d := time.Since(start); d < 30*time.Millisecond || d > 5*time.Second {
		t.Errorf("Retry-After wait %v, want the 30ms bound", d)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	err = integration.Retry(cctx, integration.Backoff{Initial: time.Hour}, func(context.Context) error { return errors.New("last") })
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "last") {
		t.Errorf("cancelled Retry = %v, want the context's error and the last error", err)
	}
}

func TestLimiter(t *testing.T) {
	l := integration.NewLimiter(200, 5)
	ctx := context.Background()
	start := time.Now()
	for range 25 {
		if err := l.Wait(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// 5 at once, 20 more at 200/s: about 100 ms.
	if d := time.Since(start); d < 80*time.Millisecond || d > 2*time.Second {
		t.Errorf("25 waits at 200/s with a burst of 5 took %v, want ~100ms", d)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	slow := integration.NewLimiter(0.001, 1)
	slow.Wait(ctx)
	if err := slow.Wait(cctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Wait on a cancelled context = %v", err)
	}
	if err := integration.NewLimiter(0, 0).Wait(ctx); err != nil {
		t.Errorf("unlimited Wait = %v", err)
	}
}

func TestPaginate(t *testing.T) {
	pages := map[string]integration.Page[int]{"": {Items: []int{1, 2}, Next: "b"}, "b": {Items: []int{3}, Next: "c"}, "c": {Items: []int{4}}}
	var got []int
	var calls atomic.Int32
	err := integration.Paginate(context.Background(), func(_ context.Context, tok string) (integration.Page[int], error) {
		calls.Add(1)
		return pages[tok], nil
	}, func(i int) error { got = append(got, i); return nil })
	if err != nil || fmt.Sprint(got) != "[1 2 3 4]" || calls.Load() != 3 {
		t.Errorf("Paginate = %v, %v in %d calls", err, got, calls.Load())
	}
	loop := map[string]integration.Page[int]{"": {Items: []int{1}, Next: "a"}, "a": {Items: []int{2}, Next: "b"}, "b": {Items: []int{3}, Next: "a"}}
	err = integration.Paginate(context.Background(), func(_ context.Context, tok string) (integration.Page[int], error) { return loop[tok], nil },
		func(int) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "never end") {
		t.Errorf("a looping listing: %v", err)
	}
	boom := errors.New("boom")
	err = integration.Paginate(context.Background(), func(context.Context, string) (integration.Page[int], error) { return integration.Page[int]{}, boom },
		func(int) error { return nil })
	if !errors.Is(err, boom) {
		t.Errorf("fetch error: %v", err)
	}
}

// TestRecordsChannel: with the runner's records channel named, records go
// there and stdout carries none; a channel that cannot be opened is
// logged and stdout used.
func TestRecordsChannel(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.json")
	if err := os.WriteFile(cfg, []byte(`{}`), 0o600); err != nil {
		t.Fatal(err)
	}
	channel := filepath.Join(dir, "records")
	if err := os.WriteFile(channel, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(ctx context.Context, config []byte, out *integration.Emitter, log *slog.Logger) error {
		for i := range 3 {
			if err := out.Entity(fmt.Sprintf("k%d", i), "t", "C"); err != nil {
				return err
			}
		}
		return nil
	}
	var stdout, stderr bytes.Buffer
	code := integration.Execute("t", integration.Invocation{ConfigPath: cfg, Records: channel}, &stdout, &stderr, run)
	got, _ := os.ReadFile(channel)
	if code != integration.ExitOK || stdout.Len() != 0 || bytes.Count(got, []byte("\n")) != 3 {
		t.Errorf("exit %d, stdout %q, channel %q; want the 3 records in the channel only\n%s", code, stdout.String(), got, stderr.String())
	}

	stdout.Reset()
	stderr.Reset()
	code = integration.Execute("t", integration.Invocation{ConfigPath: cfg, Records: filepath.Join(dir, "absent", "records")}, &stdout, &stderr, run)
	if code != integration.ExitOK || bytes.Count(stdout.Bytes(), []byte("\n")) != 3 || !strings.Contains(stderr.String(), "records channel cannot be opened") {
		t.Errorf("exit %d, stdout %q, stderr %s; want the records on stdout and a warning", code, stdout.String(), stderr.String())
	}
	inv, err := integration.ParseInvocation(nil, func(k string) string {
		return map[string]string{integration.RecordsEnv: "/run/collector/records/records"}[k]
	})
	if err != nil || inv.Records != "/run/collector/records/records" {
		t.Errorf("ParseInvocation = %+v, %v; want the channel from %s", inv, err, integration.RecordsEnv)
	}
}
