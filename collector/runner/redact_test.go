package runner

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/crypto"
)

func TestRedactionCoversNestedAndMultiLineSecrets(t *testing.T) {
	job := &crypto.Job{
		Config:       []byte(`{"key":"-----BEGIN KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END KEY-----","sa":{"private":"nested-secret-value","n":[1,"list-secret-value"]},"url":"https://example"}`),
		SecretFields: []string{"key", "sa"},
	}
	red, err := redactorFor(job, nil)
	if err != nil {
		t.Fatal(err)
	}
	l := newLogSink(nil, red)
	l.consume(strings.NewReader("parse key: -----BEGIN KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END KEY-----\n" +
		"sa=nested-secret-value and list-secret-value\nurl https://example\n"))
	got := l.buf.String()
	for _, leak := range []string{"MIIEvQIBADANBgkqhkiG9w0BAQEFAASC", "nested-secret-value", "list-secret-value"} {
		if strings.Contains(got, leak) {
			t.Errorf("logs hold %q:\n%s", leak, got)
		}
	}
	if !strings.Contains(got, "https://example") {
		t.Errorf("a value that is not secret was redacted:\n%s", got)
	}
}

func TestLongLogLineCutNotTheRest(t *testing.T) {
	l := newLogSink(nil, nil)
	l.consume(strings.NewReader("first\n" + strings.Repeat("x", 200<<10) + "\nlast line\n"))
	got := l.buf.String()
	if !strings.Contains(got, "first\n") || !strings.Contains(got, "line cut at 64 KiB") || !strings.HasSuffix(got, "last line\n") {
		t.Errorf("logs after a long line: %q", got[len(got)-min(len(got), 200):])
	}
	if len(got) > 70<<10 {
		t.Errorf("the long line was kept whole: %d bytes", len(got))
	}
}

// redactedLogs runs stderr through the log sink of a job whose config is
// cfg with the given secret fields, and returns what would be uploaded.
func redactedLogs(t *testing.T, cfg map[string]any, secretFields []string, stderr string) string {
	t.Helper()
	conf, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	red, err := redactorFor(&crypto.Job{Config: conf, SecretFields: secretFields}, nil)
	if err != nil {
		t.Fatal(err)
	}
	l := newLogSink(nil, red)
	l.consume(strings.NewReader(stderr))
	return l.buf.String()
}

// base64Of returns the characters of the base64 encoding of
// prefix+s+suffix that only s determines: what would reveal s.
func base64Of(enc *base64.Encoding, prefix, s, suffix string) string {
	full := enc.EncodeToString([]byte(prefix + s + suffix))
	from, to := (8*len(prefix)+5)/6, 8*(len(prefix)+len(s))/6
	return full[from:to]
}

func TestRedactionOfSlogLineWithQuoteAndHTMLCharacters(t *testing.T) {
	const secret = `p"a&s<s>w0rd`
	var line bytes.Buffer
	slog.New(slog.NewJSONHandler(&line, nil)).Error("login failed", "token", secret, "err", fmt.Errorf("bad token %s", secret))
	got := redactedLogs(t, map[string]any{"token": secret}, []string{"token"}, line.String())
	var rec map[string]any
	if err := json.Unmarshal([]byte(got), &rec); err != nil {
		t.Fatalf("the redacted slog line is not JSON any more: %v\n%s", err, got)
	}
	for k, v := range rec {
		if s, _ := v.(string); strings.Contains(s, secret) {
			t.Errorf("slog attribute %q still holds the secret: %q", k, s)
		}
	}
	if !strings.Contains(got, redactedMark) {
		t.Errorf("nothing redacted: %s", got)
	}
}

func TestRedactionOfASecretThatIsAPrefixOfAnother(t *testing.T) {
	cfg := map[string]any{"short": "hunter2-pw", "long": "hunter2-pw-and-its-tail"}
	for _, fields := range [][]string{{"short", "long"}, {"long", "short"}} {
		got := redactedLogs(t, cfg, fields, "using hunter2-pw-and-its-tail and hunter2-pw\n")
		if strings.Contains(got, "and-its-tail") || strings.Contains(got, "hunter2") {
			t.Errorf("secret fields %v: logs hold part of a secret: %q", fields, got)
		}
	}
}

func TestRedactionBeforeTheLineCut(t *testing.T) {
	const secret = "Zq9-straddling-secret-value"
	cfg := map[string]any{"token": secret}
	for _, tail := range []int{10, 200 << 10} { // the line ends just past the cut, or far past it
		for _, before := range []int{maxLogLine - 10, maxLogLine - 1, maxLogLine - len(secret) + 1} {
			line := strings.Repeat("x", before) + secret + strings.Repeat("y", tail) + "\nnext line\n"
			got := redactedLogs(t, cfg, []string{"token"}, line)
			if strings.Contains(got, secret[:4]) {
				t.Errorf("secret at %d, %d bytes after it: a part of it is left at the cut: ...%q", before, tail, got[max(0, len(got)-120):])
			}
			wantCut := before+len(redactedMark)+tail >= maxLogLine
			if wantCut != strings.Contains(got, "line cut at 64 KiB") || !strings.HasSuffix(got, "next line\n") {
				t.Errorf("secret at %d, %d bytes after it: the cut or the next line is wrong: ...%q", before, tail, got[max(0, len(got)-120):])
			}
		}
	}
}

func TestRedactionCoversPrintedForms(t *testing.T) {
	secrets := []string{
		`q"uo'te"d`,
		`amp&less<greater>`,
		`back\slash\\end`,
		`ünïcødé-🔑-ключ`,
		"first-line-of-secret\nsecond-line-of-secret",
		"tab\there\tand-more",
		"mixed \"&<>\\ \n\t é🔑",
		"pw12", // short: its base64 run alone is too short, its Basic pair is not
	}
	type printed struct {
		name, line string
		needles    []string // what would reveal the secret in line
	}
	printers := func(s string) []printed {
		unq := func(q string) string { return q[1 : len(q)-1] }
		js, _ := json.Marshal(s)
		var slogLine, slogText bytes.Buffer
		slog.New(slog.NewJSONHandler(&slogLine, nil)).Info("x", "v", s)
		slog.New(slog.NewTextHandler(&slogText, nil)).Info("x", "v", s)
		u := url.URL{Scheme: "https", User: url.UserPassword("admin", s), Host: "h.example", Path: "/p/" + s, RawQuery: url.Values{"token": {s}}.Encode()}
		basic := base64.StdEncoding.EncodeToString([]byte("admin:" + s))
		out := []printed{
			{"plain", s + "\n", strings.Split(s, "\n")},
			{"%q", fmt.Sprintf("%q\n", s), []string{unq(fmt.Sprintf("%q", s))}},
			{"%+q", fmt.Sprintf("%+q\n", s), []string{unq(fmt.Sprintf("%+q", s))}},
			{"encoding/json", string(js) + "\n", []string{unq(string(js))}},
			{"slog JSON", slogLine.String(), nil},
			{"slog text", slogText.String(), []string{unq(strconv.Quote(s))}},
			{"URL", u.String() + "\n", []string{url.QueryEscape(s), url.PathEscape(s)}},
			{"Basic auth", "Authorization: Basic " + basic + "\n", []string{base64Of(base64.StdEncoding, "admin:", s, "")}},
		}
		if len(s) < 6 {
			out[len(out)-1].needles = []string{strings.TrimRight(basic, "=")}
		}
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
			out = append(out, printed{"base64", enc.EncodeToString([]byte(s)) + "\n", []string{strings.TrimRight(enc.EncodeToString([]byte(s)), "=")}})
			if len(s) < 6 {
				continue
			}
			for _, prefix := range []string{"a", "ab", "abc"} {
				line := enc.EncodeToString([]byte(prefix+s+"tail")) + "\n"
				out = append(out, printed{"base64 inside", line, []string{base64Of(enc, prefix, s, "tail")}})
			}
		}
		return out
	}
	for _, s := range secrets {
		cfg := map[string]any{"user": "admin", "password": s, "url": "https://example"}
		for _, p := range printers(s) {
			got := redactedLogs(t, cfg, []string{"password"}, p.line)
			for _, n := range p.needles {
				if strings.Contains(got, n) {
					t.Errorf("secret %q printed as %s: logs hold %q:\n%s", s, p.name, n, got)
				}
			}
			if p.name == "slog JSON" {
				var rec map[string]any
				if err := json.Unmarshal([]byte(got), &rec); err != nil || strings.Contains(fmt.Sprint(rec["v"]), s) {
					t.Errorf("secret %q printed as %s: %v, logs %s", s, p.name, err, got)
				}
			}
			if !strings.Contains(got, redactedMark) {
				t.Errorf("secret %q printed as %s: nothing redacted in %q", s, p.name, got)
			}
		}
	}
}

func TestRedactionOfJSONInsideJSONAndASCIIOnlyJSON(t *testing.T) {
	secret := "mixed \"&<>\\ \n\t é🔑"
	conf, _ := json.Marshal(map[string]any{"password": secret})
	var line bytes.Buffer
	slog.New(slog.NewJSONHandler(&line, nil)).Info("config read", "raw", string(conf))
	// What Python's json.dumps (ASCII only) prints for the secret.
	line.WriteString(`"mixed \"&<>\\ \n\t \u00e9\ud83d\udd11"` + "\n")
	got := redactedLogs(t, map[string]any{"password": secret}, []string{"password"}, line.String())
	first, second, _ := strings.Cut(got, "\n")
	var rec struct{ Raw string }
	if err := json.Unmarshal([]byte(first), &rec); err != nil {
		t.Fatalf("the redacted slog line is not JSON: %v\n%s", err, first)
	}
	var inner map[string]string
	if err := json.Unmarshal([]byte(rec.Raw), &inner); err != nil || inner["password"] == secret {
		t.Errorf("the config logged as a string still holds the secret (%v): %s", err, first)
	}
	if second != `"`+redactedMark+`"`+"\n" {
		t.Errorf("ASCII-only JSON of the secret: got %q", second)
	}
}

func TestRedactionSkipsValuesTooShortToTellFromText(t *testing.T) {
	got := redactedLogs(t, map[string]any{"token": "t", "opts": map[string]any{"tls": true, "pin": 123456}}, []string{"token", "opts"},
		"the tls setting is true; pin 123456\n")
	if got != "the tls setting is true; pin [REDACTED]\n" {
		t.Errorf("got %q: a one-letter secret or a boolean blanks ordinary text, a number of 4 digits or more must go", got)
	}
}

// TestRedactionOfLongNumbers: a number of 7 digits or more in a secret
// field goes as written and as a program prints it (a float64 printed
// 12345678 as 1.2345678e+07, so the secret itself stayed in the logs).
func TestRedactionOfLongNumbers(t *testing.T) {
	job := &crypto.Job{Config: []byte(`{"token":12345678,"opts":{"account":9007199254740993,"pin":1.2e7}}`), SecretFields: []string{"token", "opts"}}
	red, err := redactorFor(job, nil)
	if err != nil {
		t.Fatal(err)
	}
	l := newLogSink(nil, red)
	l.consume(strings.NewReader("connecting with pin 12345678\naccount 9007199254740993\nalt pin 12000000 or 1.2e7\n"))
	want := "connecting with pin [REDACTED]\naccount [REDACTED]\nalt pin [REDACTED] or [REDACTED]\n"
	if got := l.buf.String(); got != want {
		t.Errorf("logs\n%q\nwant\n%q", got, want)
	}
}

func TestFinishErrorAndCollectorLinesRedacted(t *testing.T) {
	const secret = `s3cr3t&"pass"`
	rec := &finishRecorder{}
	r := &Runner{cfg: DefaultConfig(), api: rec, log: slog.New(slog.DiscardHandler)}
	var err error
	if r.state, err = openState(t.TempDir()); err != nil {
		t.Fatal(err)
	}
	red, _ := redactorFor(&crypto.Job{Config: []byte(`{"token":` + strconv.Quote(secret) + `}`), SecretFields: []string{"token"}}, nil)
	j := &jobRun{r: r, lease: &api.Lease{JobID: "job_1", LeaseID: "lease_1"}, log: r.log, job: &crypto.Job{JobID: "job_1"}}
	j.logs = newLogSink(j, red)
	j.finish(context.Background(), outcome{exitCode: -1, err: fmt.Errorf("connect to https://admin:%s@h.example: %q refused", url.PathEscape(secret), secret)})
	for what, text := range map[string]string{"finish error": rec.req.Error, "job logs": rec.logs.String()} {
		if strings.Contains(text, url.PathEscape(secret)) || strings.Contains(text, "s3cr3t") || !strings.Contains(text, redactedMark) {
			t.Errorf("%s not redacted: %q", what, text)
		}
	}
}

// finishRecorder is the job API of TestFinishErrorAndCollectorLinesRedacted.
type finishRecorder struct {
	JobAPI
	req  api.FinishRequest
	logs bytes.Buffer
}

func (f *finishRecorder) UploadLogs(ctx context.Context, jobID, leaseID string, seq int, text []byte) error {
	f.logs.Write(text)
	return nil
}

func (f *finishRecorder) Finish(ctx context.Context, jobID string, req api.FinishRequest) error {
	f.req = req
	return nil
}
