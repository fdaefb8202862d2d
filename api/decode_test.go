package api_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/crypto"
)

func TestDecodeRefuses(t *testing.T) {
	for name, body := range map[string]string{
		"empty":         ``,
		"malformed":     `{"name":`,
		"unknown field": `{"name":"x","extra":1}`,
		"wrong type":    `{"name":5}`,
		"trailing":      `{"name":"x"} {}`,
		"trailing junk": `{"name":"x"}]`,
		"array":         `["x"]`,
	} {
		var v api.CreateCollectorRequest
		if err := api.Decode(strings.NewReader(body), &v); !errors.Is(err, api.ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", name, err)
		}
	}
	var v api.CreateCollectorRequest
	if err := api.Decode(strings.NewReader(" {\"name\":\"x\"}\n"), &v); err != nil || v.Name != "x" {
		t.Errorf("valid body: %v %+v", err, v)
	}
}

// roundTrip checks that what a decoder accepts, encoded again, decodes to
// the same value.
func roundTrip[T any](t *testing.T, dec func(*bytes.Reader) (T, error), v T) {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("re-encode: %v", err)
	}
	again, err := dec(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("re-decode of %s: %v", b, err)
	}
	if !reflect.DeepEqual(normalize(t, v), normalize(t, again)) {
		t.Fatalf("round trip changed the value:\n%+v\n%+v", v, again)
	}
}

func normalize(t *testing.T, v any) any {
	b, _ := json.Marshal(v)
	var m any
	json.Unmarshal(b, &m)
	return m
}

func seedEnroll(f *testing.F) {
	hk, err := crypto.GenerateHPKEKey()
	if err != nil {
		f.Fatal(err)
	}
	good, _ := json.Marshal(api.EnrollRequest{CollectorID: "col_" + strings.Repeat("a", 26), Token: "cenr_" + strings.Repeat("b", 43),
		IdentityPublicKey: make([]byte, 32), HPKEPublicKey: hk.PublicKey()})
	f.Add(good)
	f.Add([]byte(`{"collector_id":"col_x","token":"cenr_x","identity_public_key":"AAAA","hpke_public_key":"AAAA"}`))
	f.Add([]byte(`{"collector_id":1}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"token":"\u0000"}`))
}

func FuzzDecodeEnroll(f *testing.F) {
	seedEnroll(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := api.DecodeEnroll(bytes.NewReader(b))
		if err != nil {
			if !errors.Is(err, api.ErrInvalid) {
				t.Fatalf("error does not wrap ErrInvalid: %v", err)
			}
			return
		}
		if v.Validate() != nil || len(v.IdentityPublicKey) != 32 || !api.ValidCollectorID(v.CollectorID) {
			t.Fatalf("accepted an invalid request: %+v", v)
		}
		roundTrip(t, func(r *bytes.Reader) (api.EnrollRequest, error) { return api.DecodeEnroll(r) }, v)
	})
}

func FuzzDecodeIntegration(f *testing.F) {
	f.Add([]byte(`{"name":"ldap","image":"localhost/ldap:1","config":{"pw":"x","n":1},"secret_fields":["pw"],"interval_sec":3600}`))
	f.Add([]byte(`{"name":"x","image":"i","config":[],"interval_sec":60}`))
	f.Add([]byte(`{"name":"x","image":"i","config":{"a":{"b":[1,2,{"c":null}]}},"secret_fields":["a","a"],"interval_sec":60,"network":"host"}`))
	f.Add([]byte(`{"config":"{}"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := api.DecodeIntegration(bytes.NewReader(b))
		if err != nil {
			if !errors.Is(err, api.ErrInvalid) {
				t.Fatalf("error does not wrap ErrInvalid: %v", err)
			}
			return
		}
		obj, err := api.ConfigObject(v.Config)
		if err != nil {
			t.Fatalf("accepted a config that is not an object: %s", v.Config)
		}
		for _, f := range v.SecretFields {
			if _, ok := obj[f]; !ok {
				t.Fatalf("accepted secret field %q not in config", f)
			}
		}
		roundTrip(t, func(r *bytes.Reader) (api.IntegrationRequest, error) { return api.DecodeIntegration(r) }, v)
	})
}

func FuzzDecodeIntegrationUpdate(f *testing.F) {
	f.Add([]byte(`{"name":"n","config":{"pw":"********"},"secret_fields":["pw"]}`))
	f.Add([]byte(`{"interval_sec":null}`))
	f.Add([]byte(`{"secret_fields":[]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := api.DecodeIntegrationUpdate(bytes.NewReader(b))
		if err != nil {
			if !errors.Is(err, api.ErrInvalid) {
				t.Fatalf("error does not wrap ErrInvalid: %v", err)
			}
			return
		}
		if v.Validate() != nil {
			t.Fatalf("accepted an invalid update: %+v", v)
		}
	})
}

func FuzzDecodeHeartbeat(f *testing.F) {
	f.Add([]byte(`{"version":"1","engine":{"kind":"podman","version":"4.3"},"capacity":{"cpus":2,"memory_total_bytes":1,"memory_free_bytes":1},"running_jobs":0,"runner_state":"ok"}`))
	f.Add([]byte(`{"running_jobs":-1}`))
	f.Add([]byte(`{"capacity":{"cpus":1e400}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := api.DecodeHeartbeat(bytes.NewReader(b))
		if err != nil {
			if !errors.Is(err, api.ErrInvalid) {
				t.Fatalf("error does not wrap ErrInvalid: %v", err)
			}
			return
		}
		if v.RunningJobs < 0 || v.Capacity.CPUs < 0 {
			t.Fatalf("accepted negative values: %+v", v)
		}
		roundTrip(t, func(r *bytes.Reader) (api.Heartbeat, error) { return api.DecodeHeartbeat(r) }, v)
	})
}

func FuzzDecodeToken(f *testing.F) {
	f.Add([]byte(`{"assertion":"a.b.c"}`))
	f.Add([]byte(`{"assertion":""}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := api.DecodeToken(bytes.NewReader(b))
		if err != nil {
			if !errors.Is(err, api.ErrInvalid) {
				t.Fatalf("error does not wrap ErrInvalid: %v", err)
			}
			return
		}
		if v.Assertion == "" || len(v.Assertion) > crypto.MaxAssertionSize {
			t.Fatalf("accepted %q", v.Assertion)
		}
	})
}

func TestCompareVersions(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want int
		ok   bool
	}{
		{"1.2.3", "1.2.3", 0, true}, {"v1.2.3", "1.2.3", 0, true}, {"1.2", "1.2.0", 0, true},
		{"1.10.0", "1.9.9", 1, true}, {"0.9", "1.0", -1, true}, {"2.0.0-rc1", "2.0.0", -1, true},
		{"2.0.0", "2.0.0-rc1", 1, true}, {"dev", "1.0", 0, false}, {"", "1.0", 0, false},
	} {
		got, ok := api.CompareVersions(c.a, c.b)
		if got != c.want || ok != c.ok {
			t.Errorf("CompareVersions(%q, %q) = %d, %v; want %d, %v", c.a, c.b, got, ok, c.want, c.ok)
		}
	}
}
