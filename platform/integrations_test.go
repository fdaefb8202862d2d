package platform_test

import (
	"database/sql"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	_ "modernc.org/sqlite"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/crypto"
	"github.com/collectorhq/collector/platform"
	"github.com/collectorhq/collector/platform/platformtest"
)

const secretValue = "hunter2-very-secret-password-7f3a"

// storedConfig decrypts an integration's config straight from the database
// with the data key from the data dir: what the runner will eventually get.
func storedConfig(t *testing.T, e *platformtest.Env, id string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(e.DataDir, platform.DataKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	keys, err := crypto.ParseDataKeyFile(b)
	if err != nil {
		t.Fatal(err)
	}
	key := keys[0]
	in, err := e.Store.Integration(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := crypto.OpenAtRest(key, in.SealedConfig, platform.ConfigAAD(in))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(plain, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// openRaw opens the database file behind the server's back.
func openRaw(t *testing.T, e *platformtest.Env) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+e.DBPath+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func config(t *testing.T, in *api.Integration) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(in.Config, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestIntegrations(t *testing.T) {
	e := platformtest.Start(t)
	c1 := e.EnrollNew(t, "c1")
	c2 := e.EnrollNew(t, "c2")
	req := api.IntegrationRequest{Name: "ldap", Image: "localhost/ldap@sha256:" + strings.Repeat("a", 64),
		Config:       json.RawMessage(`{"url":"ldaps://dc.example","bind_dn":"cn=reader","password":"` + secretValue + `","page_size":500}`),
		SecretFields: []string{"password"}, IntervalSec: 3600, CollectorID: c1.ID, Network: "host"}
	in, err := e.Admin.CreateIntegration(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if got := config(t, in); got["password"] != api.SecretMask || got["url"] != "ldaps://dc.example" || got["page_size"] != 500.0 {
		t.Errorf("create response config = %v", got)
	}
	shown, _ := e.Admin.Integration(ctx, in.ID)
	list, _ := e.Admin.Integrations(ctx)
	for _, v := range []*api.Integration{shown, &list[0]} {
		if strings.Contains(string(v.Config), secretValue) || config(t, v)["password"] != api.SecretMask {
			t.Errorf("secret not masked: %s", v.Config)
		}
	}
	grepDB(t, e, secretValue)
	if got := storedConfig(t, e, in.ID); got["password"] != secretValue {
		t.Fatalf("stored config = %v", got)
	}

	t.Run("update keeps masked secrets", func(t *testing.T) {
		cfg := config(t, shown) // as read back: masked
		cfg["page_size"] = 100
		raw, _ := json.Marshal(cfg)
		name := "ldap-users"
		up, err := e.Admin.UpdateIntegration(ctx, in.ID, api.IntegrationUpdate{Name: &name, Config: raw})
		if err != nil {
			t.Fatal(err)
		}
		if up.Name != name || config(t, up)["page_size"] != 100.0 || config(t, up)["password"] != api.SecretMask {
			t.Errorf("updated = %+v %s", up, up.Config)
		}
		if got := storedConfig(t, e, in.ID); got["password"] != secretValue || got["page_size"] != 100.0 {
			t.Errorf("stored after update = %v", got)
		}
	})
	t.Run("new secret value", func(t *testing.T) {
		raw := json.RawMessage(`{"url":"ldaps://dc.example","bind_dn":"cn=reader","password":"rotated-` + secretValue + `"}`)
		if _, err := e.Admin.UpdateIntegration(ctx, in.ID, api.IntegrationUpdate{Config: raw}); err != nil {
			t.Fatal(err)
		}
		if got := storedConfig(t, e, in.ID); got["password"] != "rotated-"+secretValue {
			t.Errorf("stored = %v", got)
		}
		grepDB(t, e, "rotated-"+secretValue)
	})
	t.Run("assign keeps credentials", func(t *testing.T) {
		moved, err := e.Admin.AssignIntegration(ctx, in.ID, c2.ID)
		if err != nil {
			t.Fatal(err)
		}
		if moved.CollectorID != c2.ID {
			t.Errorf("collector = %s", moved.CollectorID)
		}
		if got := storedConfig(t, e, in.ID); got["password"] != "rotated-"+secretValue {
			t.Errorf("stored after assign = %v", got)
		}
		_, err = e.Admin.AssignIntegration(ctx, in.ID, "col_"+strings.Repeat("b", 26))
		wantAPIError(t, err, 404, api.CodeNotFound)
	})
	t.Run("refused", func(t *testing.T) {
		audit := e.AuditLen(t)
		bad := req
		bad.Name = "ldap-users" // taken
		_, err := e.Admin.CreateIntegration(ctx, bad)
		wantAPIError(t, err, 409, api.CodeConflict)
		bad = req
		bad.Name, bad.SecretFields = "x", []string{"nope"}
		_, err = e.Admin.CreateIntegration(ctx, bad)
		wantAPIError(t, err, 400, api.CodeInvalidRequest)
		bad = req
		bad.Name, bad.Config = "x", json.RawMessage(`[1,2]`)
		_, err = e.Admin.CreateIntegration(ctx, bad)
		wantAPIError(t, err, 400, api.CodeInvalidRequest)
		bad = req
		bad.Name, bad.CollectorID = "x", "col_"+strings.Repeat("c", 26)
		_, err = e.Admin.CreateIntegration(ctx, bad)
		wantAPIError(t, err, 404, api.CodeNotFound)
		bad = req
		bad.Name, bad.Config = "x", json.RawMessage(`{"password":"`+api.SecretMask+`"}`)
		_, err = e.Admin.CreateIntegration(ctx, bad)
		wantAPIError(t, err, 400, api.CodeInvalidRequest)
		fields := []string{"url", "bind_dn"} // bind_dn was in clear: a mask cannot stand for it
		_, err = e.Admin.UpdateIntegration(ctx, in.ID, api.IntegrationUpdate{SecretFields: &fields,
			Config: json.RawMessage(`{"url":"********","bind_dn":"********"}`)})
		wantAPIError(t, err, 400, api.CodeInvalidRequest)
		none := []string{} // un-secreting a field without a new value would reveal it
		_, err = e.Admin.UpdateIntegration(ctx, in.ID, api.IntegrationUpdate{SecretFields: &none})
		wantAPIError(t, err, 400, api.CodeInvalidRequest)
		_, err = e.Admin.UpdateIntegration(ctx, in.ID, api.IntegrationUpdate{SecretFields: &none,
			Config: json.RawMessage(`{"url":"u","bind_dn":"b","password":"********"}`)})
		wantAPIError(t, err, 400, api.CodeInvalidRequest)
		if n := e.AuditLen(t); n != audit {
			t.Errorf("audit grew from %d to %d on refused calls", audit, n)
		}
		_, err = e.Admin.Integration(ctx, "int_"+strings.Repeat("z", 26))
		wantAPIError(t, err, 404, api.CodeNotFound)
	})
	t.Run("delete", func(t *testing.T) {
		if err := e.Admin.DeleteIntegration(ctx, in.ID); err != nil {
			t.Fatal(err)
		}
		wantAPIError(t, e.Admin.DeleteIntegration(ctx, in.ID), 404, api.CodeNotFound)
		if err := e.Admin.DeleteCollector(ctx, c2.ID); err != nil {
			t.Errorf("delete collector after its integration went: %v", err)
		}
	})
}
