package config_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"os"
	"path/filepath"
	"testing"

	"github.com/collectorhq/collector/collector/config"
)

func TestSaveLoadRoundTripAndModes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "collector")
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	c := &config.Config{CollectorID: "col_1", PlatformURL: "https://127.0.0.1:8443", CAPin: "sha256:" + string(make([]byte, 0)),
		Audience: "https://127.0.0.1:8443", PlatformSigningKey: pub, HeartbeatIntervalSec: 30, StateDir: "/var/lib/collector"}
	c.CAPin = "sha256:0000000000000000000000000000000000000000000000000000000000000000"
	k, err := config.NewKeys()
	if err != nil {
		t.Fatal(err)
	}
	if err := config.Save(dir, c, k); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(dir)
	if st.Mode().Perm() != 0o700 {
		t.Errorf("dir mode %v, want 0700", st.Mode().Perm())
	}
	for _, f := range []string{config.ConfigFile, config.IdentityFile, config.HPKEFile} {
		st, err := os.Stat(filepath.Join(dir, f))
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, %v; want 0600", f, st.Mode().Perm(), err)
		}
	}
	got, gk, err := config.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got.CollectorID != "col_1" || !gk.Identity.Equal(k.Identity) || string(gk.HPKE.PublicKey()) != string(k.HPKE.PublicKey()) {
		t.Errorf("round trip lost something: %+v", got)
	}
	// A config naming an unknown field is refused, not half-read.
	os.WriteFile(filepath.Join(dir, config.ConfigFile), []byte(`{"collector_id":"x","bogus":1}`), 0o600)
	if _, _, err := config.Load(dir); err == nil {
		t.Errorf("Load with an unknown field: want an error")
	}
}
