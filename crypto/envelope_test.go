package crypto_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hpke"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/collectorhq/collector/crypto"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata")

var envelopeSentinels = []error{
	crypto.ErrEnvelopeMalformed,
	crypto.ErrEnvelopeVersion,
	crypto.ErrEnvelopeSignature,
	crypto.ErrEnvelopeCollector,
	crypto.ErrEnvelopeJob,
	crypto.ErrEnvelopeExpired,
	crypto.ErrEnvelopeDecrypt,
}

// Fixed keys, so that golden files and fuzz seeds stay valid across runs.
// Test keys only: they are public.
const (
	testHPKESeed     = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
	testPlatformSeed = "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f"
	testJobID        = "job_42"
)

type envelopeFixture struct {
	hpkeKey     *crypto.HPKEKey
	platformKey ed25519.PrivateKey
	platformPub ed25519.PublicKey
	job         *crypto.Job
}

func newEnvelopeFixture(t testing.TB) *envelopeFixture {
	t.Helper()
	seed, _ := hex.DecodeString(testHPKESeed)
	k, err := crypto.ParseHPKEPrivateKey(seed)
	if err != nil {
		t.Fatal(err)
	}
	pseed, _ := hex.DecodeString(testPlatformSeed)
	pk := ed25519.NewKeyFromSeed(pseed)
	return &envelopeFixture{
		hpkeKey:     k,
		platformKey: pk,
		platformPub: pk.Public().(ed25519.PublicKey),
		job:         testJob(),
	}
}

func testJob() *crypto.Job {
	return &crypto.Job{
		JobID:         testJobID,
		IntegrationID: "int_7",
		Image:         "registry.example/integrations/ldap@sha256:" + strings.Repeat("ab", 32),
		Config:        json.RawMessage(`{"url":"ldaps://dc1","password":"s3cret"}`),
		SecretFields:  []string{"password"},
		Network:       "none",
		Limits:        crypto.Limits{MemoryBytes: 256 << 20, CPUs: 0.5, Pids: 128, TimeoutSec: 600},
		NotAfter:      testNow.Add(10 * time.Minute),
	}
}

func (f *envelopeFixture) seal(t testing.TB) []byte {
	t.Helper()
	env, err := crypto.SealEnvelope(f.job, testCollector, f.hpkeKey.PublicKey(), f.platformKey)
	if err != nil {
		t.Fatal(err)
	}
	return env
}

func (f *envelopeFixture) open(env []byte) (*crypto.Job, error) {
	return crypto.OpenEnvelope(env, testCollector, testJobID, f.hpkeKey, f.platformPub, testNow)
}

// jobsEqual compares jobs as the runner sees them: the same JSON (which
// also compares configs modulo insignificant whitespace) and the same
// not_after instant, whatever its zone.
func jobsEqual(a, b *crypto.Job) bool {
	ca, cb := *a, *b
	ca.NotAfter, cb.NotAfter = time.Time{}, time.Time{}
	ja, errA := json.Marshal(&ca)
	jb, errB := json.Marshal(&cb)
	return errA == nil && errB == nil && bytes.Equal(ja, jb) && a.NotAfter.Equal(b.NotAfter)
}

func TestEnvelopeRoundTrip(t *testing.T) {
	f := newEnvelopeFixture(t)
	env := f.seal(t)
	for _, want := range []string{testJobID, ""} {
		got, err := crypto.OpenEnvelope(env, testCollector, want, f.hpkeKey, f.platformPub, testNow)
		if err != nil {
			t.Fatalf("wantJobID %q: %v", want, err)
		}
		if !jobsEqual(got, f.job) {
			t.Errorf("got job %+v, want %+v", got, f.job)
		}
	}
	if bytes.Contains(env, []byte("s3cret")) || bytes.Contains(env, []byte("ldap")) {
		t.Error("envelope leaks the plaintext")
	}
	if len(env) > 4096 {
		t.Errorf("small job makes a %d-byte envelope", len(env))
	}
}

// editWire decodes an envelope into a map, lets edit change it and
// re-encodes it.
func editWire(t testing.TB, env []byte, edit func(m map[string]any)) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(env, &m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// flipB64 flips one bit of byte i of the base64 field name; a negative i
// counts from the end.
func flipB64(name string, i int) func(map[string]any) {
	return func(m map[string]any) {
		var b []byte
		raw, _ := json.Marshal(m[name])
		_ = json.Unmarshal(raw, &b)
		if i < 0 {
			i += len(b)
		}
		b[i] ^= 0x01
		m[name] = b
	}
}

func TestOpenEnvelopeRejects(t *testing.T) {
	f := newEnvelopeFixture(t)
	env := f.seal(t)
	otherKey, err := crypto.GenerateHPKEKey()
	if err != nil {
		t.Fatal(err)
	}
	otherPub, _, _ := ed25519.GenerateKey(nil)
	set := func(k string, v any) func(map[string]any) { return func(m map[string]any) { m[k] = v } }

	tests := []struct {
		name       string
		env        []byte
		collector  string
		wantJob    string
		key        *crypto.HPKEKey
		platform   ed25519.PublicKey
		now        time.Time
		wantErrAll error
	}{
		{name: "tampered ct first byte", env: editWire(t, env, flipB64("ct", 0)), wantErrAll: crypto.ErrEnvelopeSignature},
		{name: "tampered ct last byte", env: editWire(t, env, flipB64("ct", -1)), wantErrAll: crypto.ErrEnvelopeSignature},
		{name: "tampered enc", env: editWire(t, env, flipB64("enc", 100)), wantErrAll: crypto.ErrEnvelopeSignature},
		{name: "tampered sig", env: editWire(t, env, flipB64("sig", 5)), wantErrAll: crypto.ErrEnvelopeSignature},
		{name: "tampered header job_id", env: editWire(t, env, set("job_id", "job_43")), wantJob: "job_43", wantErrAll: crypto.ErrEnvelopeSignature},
		{name: "tampered header collector_id", env: editWire(t, env, set("collector_id", "col_other")), collector: "col_other", wantErrAll: crypto.ErrEnvelopeSignature},
		{name: "tampered header not_after", env: editWire(t, env, set("not_after", "2099-01-01T00:00:00Z")), wantErrAll: crypto.ErrEnvelopeSignature},
		{name: "wrong platform key", env: env, platform: otherPub, wantErrAll: crypto.ErrEnvelopeSignature},
		{name: "wrong collector", env: env, collector: "col_other", wantErrAll: crypto.ErrEnvelopeCollector},
		{name: "wrong job ID", env: env, wantJob: "job_41", wantErrAll: crypto.ErrEnvelopeJob},
		{name: "expired at not_after", env: env, now: f.job.NotAfter, wantErrAll: crypto.ErrEnvelopeExpired},
		{name: "expired after not_after", env: env, now: f.job.NotAfter.Add(time.Hour), wantErrAll: crypto.ErrEnvelopeExpired},
		{name: "wrong hpke key", env: env, key: otherKey, wantErrAll: crypto.ErrEnvelopeDecrypt},
		{name: "version 2", env: editWire(t, env, set("v", 2)), wantErrAll: crypto.ErrEnvelopeVersion},
		{name: "version 0", env: editWire(t, env, set("v", 0)), wantErrAll: crypto.ErrEnvelopeVersion},
		{name: "version 2 with new fields", env: editWire(t, env, func(m map[string]any) { m["v"] = 2; m["kid"] = "x" }), wantErrAll: crypto.ErrEnvelopeVersion},
		{name: "no version", env: editWire(t, env, func(m map[string]any) { delete(m, "v") }), wantErrAll: crypto.ErrEnvelopeMalformed},
		{name: "version as string", env: editWire(t, env, set("v", "1")), wantErrAll: crypto.ErrEnvelopeMalformed},
		{name: "unknown field", env: editWire(t, env, set("extra", 1)), wantErrAll: crypto.ErrEnvelopeMalformed},
		{name: "missing sig", env: editWire(t, env, func(m map[string]any) { delete(m, "sig") }), wantErrAll: crypto.ErrEnvelopeMalformed},
		{name: "short enc", env: editWire(t, env, set("enc", []byte{1, 2, 3})), wantErrAll: crypto.ErrEnvelopeMalformed},
		{name: "empty ct", env: editWire(t, env, set("ct", []byte{})), wantErrAll: crypto.ErrEnvelopeMalformed},
		{name: "bad base64", env: editWire(t, env, set("ct", "***")), wantErrAll: crypto.ErrEnvelopeMalformed},
		{name: "non-canonical not_after", env: editWire(t, env, set("not_after", f.job.NotAfter.Add(time.Hour).In(time.FixedZone("X", 3600)).Format(time.RFC3339))), wantErrAll: crypto.ErrEnvelopeMalformed},
		{name: "not_after not a time", env: editWire(t, env, set("not_after", "tomorrow")), wantErrAll: crypto.ErrEnvelopeMalformed},
		{name: "NUL in job ID", env: editWire(t, env, set("job_id", "job\x0042")), wantJob: "job\x0042", wantErrAll: crypto.ErrEnvelopeMalformed},
		{name: "trailing data", env: append(bytes.Clone(env), []byte(`{}`)...), wantErrAll: crypto.ErrEnvelopeMalformed},
		{name: "not JSON", env: []byte("hello"), wantErrAll: crypto.ErrEnvelopeMalformed},
		{name: "empty", env: nil, wantErrAll: crypto.ErrEnvelopeMalformed},
		{name: "JSON null", env: []byte("null"), wantErrAll: crypto.ErrEnvelopeMalformed},
		{name: "too large", env: append(bytes.Clone(env), bytes.Repeat([]byte(" "), crypto.MaxEnvelopeSize)...), wantErrAll: crypto.ErrEnvelopeMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			collector, wantJob, key, platform, now := testCollector, testJobID, f.hpkeKey, f.platformPub, testNow
			if tt.collector != "" {
				collector = tt.collector
			}
			if tt.wantJob != "" {
				wantJob = tt.wantJob
			}
			if tt.key != nil {
				key = tt.key
			}
			if tt.platform != nil {
				platform = tt.platform
			}
			if !tt.now.IsZero() {
				now = tt.now
			}
			job, err := crypto.OpenEnvelope(tt.env, collector, wantJob, key, platform, now)
			if job != nil {
				t.Errorf("got job %+v with error %v", job, err)
			}
			assertOnly(t, err, tt.wantErrAll, envelopeSentinels)
		})
	}
}

func TestOpenEnvelopeBadKeys(t *testing.T) {
	f := newEnvelopeFixture(t)
	env := f.seal(t)
	if _, err := crypto.OpenEnvelope(env, testCollector, "", nil, f.platformPub, testNow); !errors.Is(err, crypto.ErrInvalidKey) {
		t.Errorf("nil hpke key: got %v", err)
	}
	if _, err := crypto.OpenEnvelope(env, testCollector, "", &crypto.HPKEKey{}, f.platformPub, testNow); !errors.Is(err, crypto.ErrInvalidKey) {
		t.Errorf("zero hpke key: got %v", err)
	}
	if _, err := crypto.OpenEnvelope(env, testCollector, "", f.hpkeKey, f.platformPub[:5], testNow); !errors.Is(err, crypto.ErrInvalidKey) {
		t.Errorf("short platform key: got %v", err)
	}
}

func TestSealEnvelopeBadInput(t *testing.T) {
	f := newEnvelopeFixture(t)
	pub := f.hpkeKey.PublicKey()
	withJob := func(edit func(j *crypto.Job)) *crypto.Job {
		j := testJob()
		edit(j)
		return j
	}
	tests := []struct {
		name      string
		job       *crypto.Job
		collector string
		pub       []byte
		key       ed25519.PrivateKey
	}{
		{"nil job", nil, testCollector, pub, f.platformKey},
		{"empty collector", testJob(), "", pub, f.platformKey},
		{"NUL in collector", testJob(), "a\x00b", pub, f.platformKey},
		{"long collector", testJob(), strings.Repeat("c", crypto.MaxIDLength+1), pub, f.platformKey},
		{"empty job ID", withJob(func(j *crypto.Job) { j.JobID = "" }), testCollector, pub, f.platformKey},
		{"zero not_after", withJob(func(j *crypto.Job) { j.NotAfter = time.Time{} }), testCollector, pub, f.platformKey},
		{"bad hpke key", testJob(), testCollector, pub[:100], f.platformKey},
		{"bad platform key", testJob(), testCollector, pub, f.platformKey[:32]},
		{"invalid UTF-8 in image", withJob(func(j *crypto.Job) { j.Image = "reg/img\xff" }), testCollector, pub, f.platformKey},
		{"invalid config JSON", withJob(func(j *crypto.Job) { j.Config = json.RawMessage("{") }), testCollector, pub, f.platformKey},
		{"unknown mode", withJob(func(j *crypto.Job) { j.Mode = "collect-everything" }), testCollector, pub, f.platformKey},
		{"job too large", withJob(func(j *crypto.Job) {
			j.Config = json.RawMessage(`"` + strings.Repeat("x", crypto.MaxJobSize) + `"`)
		}), testCollector, pub, f.platformKey},
	}
	for _, tt := range tests {
		if _, err := crypto.SealEnvelope(tt.job, tt.collector, tt.pub, tt.key); err == nil {
			t.Errorf("%s: SealEnvelope succeeded", tt.name)
		}
	}
}

// TestEnvelopeCarriesMode: a validation's mode is sealed and signed with
// the job, and comes out as it went in.
func TestEnvelopeCarriesMode(t *testing.T) {
	f := newEnvelopeFixture(t)
	f.job.Mode = crypto.ModeValidate
	got, err := crypto.OpenEnvelope(f.seal(t), testCollector, testJobID, f.hpkeKey, f.platformPub, testNow)
	if err != nil || got.Mode != crypto.ModeValidate {
		t.Fatalf("opened %+v, %v; want mode validate", got, err)
	}
}

func TestEnvelopeLargestJob(t *testing.T) {
	f := newEnvelopeFixture(t)
	j := testJob()
	j.Config = json.RawMessage(`"` + strings.Repeat("x", crypto.MaxJobSize-1000) + `"`)
	j.JobID = strings.Repeat("j", crypto.MaxIDLength)
	collector := strings.Repeat("<", crypto.MaxIDLength) // JSON escapes it to 6 bytes a character
	env, err := crypto.SealEnvelope(j, collector, f.hpkeKey.PublicKey(), f.platformKey)
	if err != nil {
		t.Fatal(err)
	}
	if len(env) > crypto.MaxEnvelopeSize {
		t.Fatalf("largest job makes a %d-byte envelope, over %d", len(env), crypto.MaxEnvelopeSize)
	}
	if _, err := crypto.OpenEnvelope(env, collector, j.JobID, f.hpkeKey, f.platformPub, testNow); err != nil {
		t.Fatal(err)
	}
}

// rawEnvelope builds an envelope from the description in docs/envelope.md,
// independently of SealEnvelope, so that the test checks the document as
// well as the code, and can build envelopes the platform would not.
type rawEnvelope struct {
	v                         uint32
	collectorID, jobID, notAt string
	infoCollector, infoJob    string
	plaintext                 []byte
}

func appendLP(b, f []byte) []byte {
	return append(binary.BigEndian.AppendUint32(b, uint32(len(f))), f...)
}

func (r rawEnvelope) build(t testing.TB, f *envelopeFixture) []byte {
	t.Helper()
	header := binary.BigEndian.AppendUint32(nil, r.v)
	header = appendLP(header, []byte(r.collectorID))
	header = appendLP(header, []byte(r.jobID))
	header = appendLP(header, []byte(r.notAt))
	pub, err := hpke.MLKEM768X25519().NewPublicKey(f.hpkeKey.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	info := "collector-envelope-v1\x00" + r.infoCollector + "\x00" + r.infoJob
	enc, sender, err := hpke.NewSender(pub, hpke.HKDFSHA256(), hpke.ChaCha20Poly1305(), []byte(info))
	if err != nil {
		t.Fatal(err)
	}
	ct, err := sender.Seal(header, r.plaintext)
	if err != nil {
		t.Fatal(err)
	}
	msg := append([]byte("collector-envelope-signature\x00"), header...)
	msg = appendLP(appendLP(msg, enc), ct)
	out, err := json.Marshal(map[string]any{
		"v": r.v, "collector_id": r.collectorID, "job_id": r.jobID, "not_after": r.notAt,
		"enc": enc, "ct": ct, "sig": ed25519.Sign(f.platformKey, msg),
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestEnvelopeMatchesDocs(t *testing.T) {
	f := newEnvelopeFixture(t)
	plain, _ := json.Marshal(f.job)
	notAt := f.job.NotAfter.UTC().Format(time.RFC3339Nano)
	base := rawEnvelope{v: 1, collectorID: testCollector, jobID: testJobID, notAt: notAt,
		infoCollector: testCollector, infoJob: testJobID, plaintext: plain}

	job, err := f.open(base.build(t, f))
	if err != nil {
		t.Fatalf("envelope built from docs/envelope.md: %v", err)
	}
	if !jobsEqual(job, f.job) {
		t.Errorf("got job %+v", job)
	}

	otherJob := testJob()
	otherJob.JobID = "job_99"
	otherPlain, _ := json.Marshal(otherJob)
	laterJob := testJob()
	laterJob.NotAfter = laterJob.NotAfter.Add(time.Hour)
	laterPlain, _ := json.Marshal(laterJob)

	tests := []struct {
		name string
		edit func(r *rawEnvelope)
		want error
	}{
		{"sealed job has another ID", func(r *rawEnvelope) { r.plaintext = otherPlain }, crypto.ErrEnvelopeJob},
		{"sealed job has another not_after", func(r *rawEnvelope) { r.plaintext = laterPlain }, crypto.ErrEnvelopeJob},
		{"info names another job", func(r *rawEnvelope) { r.infoJob = "job_99" }, crypto.ErrEnvelopeDecrypt},
		{"info names another collector", func(r *rawEnvelope) { r.infoCollector = "col_other" }, crypto.ErrEnvelopeDecrypt},
		{"plaintext not JSON", func(r *rawEnvelope) { r.plaintext = []byte("hello") }, crypto.ErrEnvelopeMalformed},
		{"plaintext unknown field", func(r *rawEnvelope) {
			r.plaintext = append(bytes.TrimSuffix(plain, []byte("}")), []byte(`,"privileged":true}`)...)
		}, crypto.ErrEnvelopeMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := base
			tt.edit(&r)
			job, err := f.open(r.build(t, f))
			if job != nil {
				t.Errorf("got job %+v", job)
			}
			assertOnly(t, err, tt.want, envelopeSentinels)
		})
	}
}

// TestGoldenEnvelope opens a version 1 envelope written by an earlier build,
// so a change that breaks the wire format fails here. Regenerate only for a
// new version: go test ./crypto -run TestGoldenEnvelope -update
func TestGoldenEnvelope(t *testing.T) {
	f := newEnvelopeFixture(t)
	path := filepath.Join("testdata", "envelope-v1.json")
	if *update {
		if err := os.WriteFile(path, append(f.seal(t), '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	env, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	job, err := f.open(bytes.TrimSpace(env))
	if err != nil {
		t.Fatal(err)
	}
	if !jobsEqual(job, f.job) {
		t.Errorf("got job %+v, want %+v", job, f.job)
	}
}
