package crypto_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/collectorhq/collector/crypto"
)

// FuzzOpenEnvelope feeds mutated envelopes to OpenEnvelope. It must never
// panic, every refusal must carry one of the envelope sentinels, and an
// accepted envelope must decrypt to the one job the fixture's platform key
// ever signed: no mutation may change what the runner would run.
func FuzzOpenEnvelope(f *testing.F) {
	fx := newEnvelopeFixture(f)
	env := fx.seal(f)
	f.Add(env)
	if golden, err := os.ReadFile(filepath.Join("testdata", "envelope-v1.json")); err == nil {
		f.Add(bytes.TrimSpace(golden))
	}
	f.Add(editWire(f, env, func(m map[string]any) { m["v"] = 2 }))
	f.Add(editWire(f, env, flipB64("ct", 0)))
	f.Add(editWire(f, env, func(m map[string]any) { delete(m, "sig") }))
	f.Add([]byte(`{"v":1}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		job, err := crypto.OpenEnvelope(data, testCollector, "", fx.hpkeKey, fx.platformPub, testNow)
		if err != nil {
			if job != nil {
				t.Fatalf("job %+v returned with error %v", job, err)
			}
			if !slices.ContainsFunc(envelopeSentinels, func(s error) bool { return errors.Is(err, s) }) {
				t.Fatalf("error %q matches no envelope sentinel", err)
			}
			return
		}
		if !jobsEqual(job, fx.job) {
			t.Fatalf("mutated envelope accepted with another job:\n got %+v\nwant %+v", job, fx.job)
		}
	})
}

// fuzzAssertionKey is a fixed identity key so that the valid seeds, signed
// deterministically by Ed25519, are the same in every run and in the
// stored corpus.
const fuzzAssertionSeed = "404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f"

// FuzzParseAssertion feeds mutated assertions to ParseAssertion. It must
// never panic, every refusal must carry an assertion sentinel, and the only
// assertions it may accept are the exact valid seeds: with strict base64
// and Ed25519's canonical signatures, no other string verifies.
func FuzzParseAssertion(f *testing.F) {
	seed, _ := hex.DecodeString(fuzzAssertionSeed)
	priv := ed25519.NewKeyFromSeed(seed)
	pub := priv.Public().(ed25519.PublicKey)
	keyFor := func(id string) (ed25519.PublicKey, error) {
		if id != testCollector {
			return nil, errUnknownCollector
		}
		return pub, nil
	}
	signed := func(c jwt.RegisteredClaims) string {
		tok, err := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c).SignedString(priv)
		if err != nil {
			f.Fatal(err)
		}
		return tok
	}
	base := validClaims(testNow)
	multiAud := validClaims(testNow)
	multiAud.Audience = jwt.ClaimStrings{"https://other.example", testAudience}
	valid := []string{signed(base), signed(multiAud)}
	for _, tok := range valid {
		f.Add(tok)
	}
	long := validClaims(testNow)
	long.ExpiresAt = jwt.NewNumericDate(testNow.Add(time.Hour))
	f.Add(signed(long))
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, base).SignedString(jwt.UnsafeAllowNoneSignatureType)
	f.Add(none)
	f.Add("")
	f.Add("a.b.c")

	f.Fuzz(func(t *testing.T, token string) {
		a, err := crypto.ParseAssertion(token, testAudience, testNow, keyFor)
		if err != nil {
			if a != nil {
				t.Fatalf("assertion %+v returned with error %v", a, err)
			}
			if !errors.Is(err, errUnknownCollector) &&
				!slices.ContainsFunc(assertionSentinels, func(s error) bool { return errors.Is(err, s) }) {
				t.Fatalf("error %q matches no assertion sentinel", err)
			}
			return
		}
		if !slices.Contains(valid, token) {
			t.Fatalf("mutated assertion accepted: %q -> %+v", token, a)
		}
		if a.CollectorID != testCollector || a.JTI != base.ID {
			t.Fatalf("accepted assertion has claims %+v", a)
		}
	})
}

// FuzzSealOpenRoundTrip seals arbitrary jobs: SealEnvelope may refuse one,
// but what it seals must open to the same job.
func FuzzSealOpenRoundTrip(f *testing.F) {
	fx := newEnvelopeFixture(f)
	f.Add(testJobID, "int_7", []byte(`{"password":"s3cret"}`), "none", int64(600), testNow.Unix(), int64(0), 0)
	f.Add("j", "", []byte(`null`), "", int64(0), int64(1), int64(999999999), 19*60+32)
	f.Add("ü\u2028", "<&>", []byte(` [1, "\u00e9"] `), "host", int64(-1), int64(-62135596800), int64(1), -3600)
	f.Fuzz(func(t *testing.T, jobID, integrationID string, config []byte, network string, timeout, sec, nsec int64, offset int) {
		job := &crypto.Job{
			JobID:         jobID,
			IntegrationID: integrationID,
			Config:        config,
			Network:       network,
			Limits:        crypto.Limits{TimeoutSec: timeout},
			NotAfter:      time.Unix(sec, nsec).In(time.FixedZone("z", offset%(24*3600))),
		}
		env, err := crypto.SealEnvelope(job, testCollector, fx.hpkeKey.PublicKey(), fx.platformKey)
		if err != nil {
			return
		}
		got, err := crypto.OpenEnvelope(env, testCollector, jobID, fx.hpkeKey, fx.platformPub, job.NotAfter.Add(-time.Second))
		if err != nil {
			t.Fatalf("sealed job does not open: %v\njob %+v", err, job)
		}
		if !jobsEqual(got, job) {
			t.Fatalf("got job %+v, want %+v", got, job)
		}
	})
}
