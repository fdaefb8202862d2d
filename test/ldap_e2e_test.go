package test

// The LDAP integration through a collector: a real slapd (ldaptest: its own
// config dir and ports on 127.0.0.1, TLS with a CA the test generates, a
// size limit of 500) loaded with 10,000 users, 1,000 groups (some nested),
// 50 OUs and 2,000 computers; the signed integration-ldap image run as a
// job by an installed collector on Podman.

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/integrations/ldap"
	"github.com/collectorhq/collector/integrations/ldap/ldaptest"
)

// startSlapd starts a slapd with spec for the test.
func startSlapd(t testing.TB, spec ldaptest.Spec) *ldaptest.Server {
	t.Helper()
	ldaptest.Need(t)
	dir, err := os.MkdirTemp("", "e2e-slapd-")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := ldaptest.Start(dir, spec)
	if err != nil {
		os.RemoveAll(dir)
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Stop(); os.RemoveAll(dir) })
	return srv
}

// ldapConfig is the integration's config for srv (StartTLS, the test CA).
func ldapConfig(srv *ldaptest.Server, changes map[string]any) string {
	cfg := map[string]any{"url": srv.URL, "start_tls": true, "bind_dn": srv.BindDN, "bind_password": srv.BindPassword, "ca_cert": srv.CACert}
	for k, v := range changes {
		if v == nil {
			delete(cfg, k)
		} else {
			cfg[k] = v
		}
	}
	b, _ := json.Marshal(cfg)
	return string(b)
}

// ldapIntegration creates an LDAP integration on collector; the secret
// field comes from the image's manifest (its schema's writeOnly), not
// from a flag. The config goes in a file, as an operator would pass it.
func (p *platformProc) ldapIntegration(t *testing.T, collectorID, config string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "config.json")
	os.WriteFile(f, []byte(config), 0o600)
	var in api.Integration
	p.cliJSON(&in, "integrations", "create", "--name", fmt.Sprintf("ldap-%d", time.Now().UnixNano()), "--image", world.ldapImage,
		"--config-file", f, "--collector", collectorID, "--network", "host", "--interval", "24h")
	return in.ID
}

func TestLDAPThroughCollector(t *testing.T) {
	need(t)
	srv := startSlapd(t, ldaptest.DefaultSpec)
	p := startPlatform(t)
	k := podmanKit(t)
	h := install(t, p, k)
	waitFor(t, "collector active", 60*time.Second, func() bool { return p.collector(t, h.id).Status == api.CollectorStatusActive })
	want := ldifTotals(t, srv)

	var startTLS string
	t.Run("StartTLSCollectsEverything", func(t *testing.T) {
		startTLS = p.ldapIntegration(t, h.id, ldapConfig(srv, nil))
		var in api.Integration
		p.cliJSON(&in, "integrations", "show", startTLS)
		if len(in.SecretFields) != 1 || in.SecretFields[0] != "bind_password" {
			t.Errorf("secret fields %v: want bind_password, from the image's manifest", in.SecretFields)
		}
		inspected := watchJobContainers(t, k)
		j := p.waitJob(t, p.runJob(t, startTLS).ID, 5*time.Minute)
		inspected.stop()
		if j.State != api.JobSucceeded || j.RefusedRecords != 0 {
			logs, _ := p.cli("jobs", "logs", j.ID)
			t.Fatalf("job %+v\nlogs:\n%s", j, logs)
		}
		if j.Records != want.records {
			t.Errorf("job reports %d records, the LDIF says %d", j.Records, want.records)
		}
		checkStored(t, p, startTLS, want)
		if inspected.n() == 0 {
			t.Error("never saw the job container to inspect it")
		}
		if strings.Contains(inspected.text(), srv.BindPassword) {
			t.Error("podman inspect of the job container holds the bind password")
		}
		// integrations/ldap/integration.yaml asks for 256Mi, 1 CPU and 64
		// pids, under the platform's 512 MiB and 512; its Go runtime is
		// told the CPU and the memory, which it reads from no cgroup v1
		// host, as this one is.
		for _, c := range inspected.containers(t) {
			if hc := c.HostConfig; hc.Memory != 256<<20 || hc.PidsLimit != 64 {
				t.Errorf("job container's memory limit %d, pids limit %d: want the manifest's 256Mi and 64", hc.Memory, hc.PidsLimit)
			}
			if env := c.Config.Env; !slices.Contains(env, "GOMAXPROCS=1") || !slices.Contains(env, "GOMEMLIMIT=241591910") {
				t.Errorf("job container's environment %q: want GOMAXPROCS=1 and GOMEMLIMIT=241591910 (90%% of 256Mi)", env)
			}
		}
		t.Logf("%d records in %v (job peak memory %.1f MiB)", j.Records, j.FinishedAt.Sub(*j.StartedAt), float64(j.PeakMemoryBytes)/(1<<20))
	})

	t.Run("LDAPSCollectsEverything", func(t *testing.T) {
		id := p.ldapIntegration(t, h.id, ldapConfig(srv, map[string]any{"url": srv.LDAPSURL, "start_tls": nil}))
		j := p.waitJob(t, p.runJob(t, id).ID, 5*time.Minute)
		if j.State != api.JobSucceeded || j.Records != want.records {
			logs, _ := p.cli("jobs", "logs", j.ID)
			t.Fatalf("job %+v (want %d records)\nlogs:\n%s", j, want.records, logs)
		}
		checkStored(t, p, id, want)
	})

	t.Run("WrongPasswordFailsClearly", func(t *testing.T) {
		id := p.ldapIntegration(t, h.id, ldapConfig(srv, map[string]any{"bind_password": "wrong-password-e2e"}))
		j := p.waitJob(t, p.runJob(t, id).ID, 3*time.Minute)
		logs, _ := p.cli("jobs", "logs", j.ID)
		if j.State != api.JobFailed || j.ExitCode == nil || *j.ExitCode != 4 || !strings.Contains(logs, "invalid credentials") || j.Records != 0 {
			t.Fatalf("job %+v: want failed, exit 4 (auth), no records, logs naming invalid credentials:\n%s", j, logs)
		}
	})

	t.Run("WrongCAFailsWithCertificateError", func(t *testing.T) {
		id := p.ldapIntegration(t, h.id, ldapConfig(srv, map[string]any{"ca_cert": srv.OtherCACert}))
		j := p.waitJob(t, p.runJob(t, id).ID, 3*time.Minute)
		logs, _ := p.cli("jobs", "logs", j.ID)
		if j.State != api.JobFailed || j.ExitCode == nil || *j.ExitCode != 6 || !strings.Contains(logs, "certificate") {
			t.Fatalf("job %+v: want failed, exit 6 (certificate), logs naming the certificate:\n%s", j, logs)
		}
	})

	// "Test credentials" through the collector: validate mode binds and
	// checks read access where the directory is, and ingests nothing.
	t.Run("ValidateThroughCollector", func(t *testing.T) {
		if startTLS == "" {
			t.Fatal("needs the StartTLS integration")
		}
		asked := time.Now()
		var ok api.Job
		out, err := p.cli("integrations", "validate", startTLS, "--json")
		if err != nil || jsonInto(out, &ok) != nil {
			t.Fatalf("validate a good config: %v\n%s", err, out)
		}
		took := time.Since(asked)
		if ok.Mode != api.JobModeValidate || ok.State != api.JobSucceeded || ok.Validation == nil || !ok.Validation.OK || len(ok.Validation.Checks) == 0 || ok.Records != 0 {
			t.Errorf("validation of a good config: %+v (%+v)", ok, ok.Validation)
		}
		t.Logf("a validation through the collector: %v from the CLI's request to its result (checks %+v)", took.Round(time.Millisecond), ok.Validation.Checks)
		if took > time.Minute {
			t.Errorf("a validation took %v, want seconds", took)
		}

		bad := p.ldapIntegration(t, h.id, ldapConfig(srv, map[string]any{"bind_password": "wrong-password-validate"}))
		var failed api.Job
		out, err = p.cli("integrations", "validate", bad, "--json")
		if err == nil {
			t.Fatalf("validate a wrong password: exit 0\n%s", out)
		}
		if jerr := jsonInto(firstJSON(out), &failed); jerr != nil {
			t.Fatalf("validate a wrong password: %v", jerr)
		}
		if failed.State != api.JobFailed || failed.Validation == nil || failed.Validation.OK || failed.Validation.Reason != "auth" ||
			!strings.Contains(strings.ToLower(failed.Error), "invalid credentials") {
			t.Errorf("validation of a wrong password: %+v (%+v), want failed for auth naming invalid credentials", failed, failed.Validation)
		}
		// Only the validation ran: no collection, nothing stored.
		var jobs api.JobList
		p.cliJSON(&jobs, "jobs", "list", "--integration", bad)
		if len(jobs.Jobs) != 1 || jobs.Jobs[0].ID != failed.ID {
			t.Errorf("jobs of the integration validated: %+v, want the validation alone", jobs.Jobs)
		}
		var text string
		text, _ = p.cli("integrations", "validate", bad)
		if !strings.Contains(text, "FAILED (auth)") {
			t.Errorf("the CLI's text for a failed validation does not say why:\n%s", text)
		}
	})

	t.Run("BindPasswordNeverLeaks", func(t *testing.T) {
		pw := srv.BindPassword
		for _, id := range []string{startTLS} {
			var jobs api.JobList
			p.cliJSON(&jobs, "jobs", "list", "--integration", id)
			for _, j := range jobs.Jobs {
				logs, _ := p.cli("jobs", "logs", j.ID)
				if strings.Contains(logs, pw) {
					t.Errorf("job %s's logs hold the bind password", j.ID)
				}
			}
		}
		for _, name := range []string{"collector-daemon", "collector-runner"} {
			out, _ := k.run("logs", name)
			insp, _ := k.run("inspect", name)
			if strings.Contains(out+insp, pw) {
				t.Errorf("%s's logs or inspect hold the bind password", name)
			}
		}
		if strings.Contains(p.log.String(), pw) {
			t.Error("the platform's log holds the bind password")
		}
		for _, f := range []string{"platform.db", "platform.db-wal"} {
			db, _ := os.ReadFile(filepath.Join(p.dataDir, f))
			if strings.Contains(string(db), pw) {
				t.Errorf("%s holds the bind password in clear", f)
			}
		}
	})
}

// totals is what the LDIF says a full run stores.
type totals struct {
	records  int64
	entities map[string]int64 // by type
	rels     map[string]int64
	members  map[string]bool // "userDN -> groupDN", lower-case
	nested   map[string]bool // "parentDN -> childDN"
}

// ldifTotals reads the loaded LDIF (the file slapd was loaded from).
func ldifTotals(t *testing.T, srv *ldaptest.Server) totals {
	t.Helper()
	data, err := os.ReadFile(srv.LDIF)
	if err != nil {
		t.Fatal(err)
	}
	w := totals{entities: map[string]int64{}, rels: map[string]int64{}, members: map[string]bool{}, nested: map[string]bool{}}
	kind := map[string]string{}
	type entry struct {
		dn      string
		members []string
	}
	var entries []entry
	for _, block := range strings.Split(string(data), "\n\n") {
		var e entry
		for _, l := range strings.Split(block, "\n") {
			switch {
			case strings.HasPrefix(l, "dn: "):
				e.dn = strings.ToLower(l[4:])
			case strings.HasPrefix(l, "member: "):
				e.members = append(e.members, strings.ToLower(l[8:]))
			case l == "objectClass: inetOrgPerson":
				kind[e.dn] = ldap.TypeUser
			case l == "objectClass: groupOfNames":
				kind[e.dn] = ldap.TypeGroup
			case l == "objectClass: organizationalUnit":
				kind[e.dn] = ldap.TypeOU
			case l == "objectClass: device":
				kind[e.dn] = ldap.TypeComputer
			}
		}
		if e.dn != "" {
			entries = append(entries, e)
		}
	}
	for _, e := range entries {
		typ := kind[e.dn]
		if typ == "" {
			continue
		}
		w.entities[typ]++
		parent := e.dn[strings.Index(e.dn, ",")+1:]
		if kind[parent] == ldap.TypeOU && typ == ldap.TypeUser {
			w.rels[ldap.TypeOUHasUser]++
		}
		if kind[parent] == ldap.TypeOU && typ == ldap.TypeComputer {
			w.rels[ldap.TypeOUHasComputer]++
		}
		for _, m := range e.members {
			switch kind[m] {
			case ldap.TypeUser:
				w.rels[ldap.TypeUserMemberOfGroup]++
				w.members[m+" -> "+e.dn] = true
			case ldap.TypeGroup:
				w.rels[ldap.TypeGroupHasGroup]++
				w.nested[e.dn+" -> "+m] = true
			}
		}
	}
	for _, n := range w.entities {
		w.records += n
	}
	for _, n := range w.rels {
		w.records += n
	}
	spec := ldaptest.DefaultSpec
	if w.entities[ldap.TypeUser] != int64(spec.Users) || w.entities[ldap.TypeGroup] != int64(spec.Groups) || len(w.nested) == 0 {
		t.Fatalf("the LDIF does not hold the directory asked for: %v, %d nested", w.entities, len(w.nested))
	}
	return w
}

// checkStored compares what the platform stored for the integration with
// the LDIF: counts by type, and every membership and nesting by DN.
func checkStored(t *testing.T, p *platformProc, integ string, want totals) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(p.dataDir, "platform.db")+"?mode=ro&_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	count := func(table string) map[string]int64 {
		rows, err := db.Query(`SELECT type, count(*) FROM `+table+` WHERE integration_id = ? AND deleted_at IS NULL GROUP BY type`, integ)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		m := map[string]int64{}
		for rows.Next() {
			var typ string
			var n int64
			rows.Scan(&typ, &n)
			m[typ] = n
		}
		return m
	}
	ents, rels := count("data_entities"), count("data_relationships")
	for typ, n := range want.entities {
		if ents[typ] != n {
			t.Errorf("%s: %d stored, the LDIF has %d", typ, ents[typ], n)
		}
	}
	for typ, n := range want.rels {
		if rels[typ] != n {
			t.Errorf("%s: %d stored, the LDIF has %d", typ, rels[typ], n)
		}
	}
	rows, err := db.Query(`SELECT r.type, lower(json_extract(f.properties, '$.dn')), lower(json_extract(o.properties, '$.dn'))
		FROM data_relationships r
		JOIN data_entities f ON f.integration_id = r.integration_id AND f.key = r.from_key
		JOIN data_entities o ON o.integration_id = r.integration_id AND o.key = r.to_key
		WHERE r.integration_id = ? AND r.deleted_at IS NULL AND r.type IN (?, ?)`, integ, ldap.TypeUserMemberOfGroup, ldap.TypeGroupHasGroup)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	members, nested := map[string]bool{}, map[string]bool{}
	for rows.Next() {
		var typ, from, to string
		if err := rows.Scan(&typ, &from, &to); err != nil {
			t.Fatal(err)
		}
		if typ == ldap.TypeUserMemberOfGroup {
			members[from+" -> "+to] = true
		} else {
			nested[from+" -> "+to] = true
		}
	}
	for what, pair := range map[string][2]map[string]bool{"membership": {want.members, members}, "nesting": {want.nested, nested}} {
		missing := 0
		for m := range pair[0] {
			if !pair[1][m] {
				if missing++; missing <= 3 {
					t.Errorf("%s in the LDIF not stored: %s", what, m)
				}
			}
		}
		if len(pair[1]) != len(pair[0]) {
			t.Errorf("%d %ss stored, the LDIF has %d", len(pair[1]), what, len(pair[0]))
		}
	}
}

// jobInspector inspects every job container it sees while it runs.
type jobInspector struct {
	mu     sync.Mutex
	seen   map[string]bool
	texts  []string
	cancel context.CancelFunc
	done   chan struct{}
}

func watchJobContainers(t *testing.T, k *kit) *jobInspector {
	ctx, cancel := context.WithCancel(context.Background())
	w := &jobInspector{seen: map[string]bool{}, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for ctx.Err() == nil {
			out, _ := k.run("ps", "-a", "--filter", "label=io.collector.role=job", "--format", "{{.ID}}")
			for _, id := range strings.Fields(out) {
				w.mu.Lock()
				seen := w.seen[id]
				w.mu.Unlock()
				if seen {
					continue
				}
				if insp, err := k.run("inspect", id); err == nil {
					w.mu.Lock()
					w.seen[id] = true
					w.texts = append(w.texts, insp)
					w.mu.Unlock()
				}
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	t.Cleanup(w.stop)
	return w
}

func (w *jobInspector) stop() {
	w.cancel()
	<-w.done
}

func (w *jobInspector) n() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.texts)
}

// containers are the engine's inspect of each container inspected.
func (w *jobInspector) containers(t *testing.T) []inspectedContainer {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []inspectedContainer
	for _, text := range w.texts {
		var insp []inspectedContainer
		if err := json.Unmarshal([]byte(text), &insp); err != nil || len(insp) != 1 {
			t.Errorf("inspect output is not one container (%v): %.300s", err, text)
			continue
		}
		out = append(out, insp[0])
	}
	return out
}

// inspectedContainer is what the test reads of an engine's inspect of a
// container: its limits and its environment.
type inspectedContainer struct {
	HostConfig struct {
		Memory    int64
		PidsLimit int64
	}
	Config struct{ Env []string }
}

func (w *jobInspector) text() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.Join(w.texts, "\n")
}

// firstJSON is the first JSON value of a command's combined output (a
// failing command prints its --json result, then its error).
func firstJSON(out string) string {
	var v json.RawMessage
	if err := json.NewDecoder(strings.NewReader(out)).Decode(&v); err != nil {
		return out
	}
	return string(v)
}
