package trust_test

import (
	"errors"
	"log/slog"
	"testing"

	"github.com/collectorhq/collector/trust"
)

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg   trust.Config
		field string
	}{
		{trust.Config{Policy: []byte(`{"default":[{"type":"reject"}]}`)}, "Logger"},
		{trust.Config{Logger: slog.New(slog.DiscardHandler)}, "Policy"},
		{trust.Config{Logger: slog.New(slog.DiscardHandler), Policy: []byte(`{"default":[{"type":"nope"}]}`)}, "Policy"},
		{trust.Config{Logger: slog.New(slog.DiscardHandler), Policy: []byte(`{}`)}, "Policy"},
	} {
		err := tc.cfg.Validate()
		var ce *trust.ConfigError
		if !errors.As(err, &ce) || ce.Field != tc.field {
			t.Errorf("Validate(%s) = %v, want an error naming %s", tc.cfg.Policy, err, tc.field)
		}
	}
}

func TestSigstorePolicyParses(t *testing.T) {
	p := trust.SigstorePolicy([]byte("-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----\n"), "127.0.0.1:5000/x")
	if _, err := trust.ParsePolicy(p); err != nil {
		t.Fatalf("ParsePolicy(SigstorePolicy) = %v\n%s", err, p)
	}
}

// FuzzParsePolicy: the policy file comes from the operator's disk; parsing
// must never panic, and an empty document is always refused.
func FuzzParsePolicy(f *testing.F) {
	f.Add([]byte(`{"default":[{"type":"reject"}]}`))
	f.Add([]byte(`{"default":[{"type":"insecureAcceptAnything"}],"transports":{"docker":{"":[{"type":"reject"}]}}}`))
	f.Add([]byte(`{"default":[{"type":"reject"}],"transports":{"docker":{"127.0.0.1:5000/x":[{"type":"sigstoreSigned","keyData":"eA==","signedIdentity":{"type":"matchRepository"}}]}}}`))
	f.Add([]byte(`  `))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := trust.ParsePolicy(data)
		if err != nil {
			if !errors.Is(err, trust.ErrInvalidPolicy) {
				t.Fatalf("ParsePolicy error %v is not ErrInvalidPolicy", err)
			}
			return
		}
		if p == nil {
			t.Fatal("nil policy without error")
		}
	})
}
