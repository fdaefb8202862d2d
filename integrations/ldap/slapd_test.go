package ldap_test

// Tests of the integration against a real slapd (ldaptest): the directory
// of the e2e suite (10,000 users, 1,000 groups, 50 OUs, 2,000 computers)
// collected in full over StartTLS and over ldaps:// past a size limit of
// 500, asserted against the LDIF; a wrong password, a wrong CA, validate
// mode; and the program itself run with --config.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/collectorhq/collector/integration"
	"github.com/collectorhq/collector/integrations/ldap"
	"github.com/collectorhq/collector/integrations/ldap/ldaptest"
	"github.com/collectorhq/collector/internal/testutil"
)

var srv *ldaptest.Server

func TestMain(m *testing.M) {
	flag.Parse()
	code := func() int {
		if ldaptest.Require() != nil || testing.Short() {
			return m.Run() // each test skips (or fails under CI=true)
		}
		dir, err := os.MkdirTemp("", "ldap-slapd-")
		if err != nil {
			panic(err)
		}
		defer os.RemoveAll(dir)
		srv, err = ldaptest.Start(dir, ldaptest.DefaultSpec)
		if err != nil {
			fmt.Fprintln(os.Stderr, "start slapd:", err)
			return 1
		}
		defer srv.Stop()
		return m.Run()
	}()
	os.Exit(code)
}

func need(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts slapd: not in -short")
	}
	ldaptest.Need(t)
	if srv == nil {
		t.Fatal("slapd did not start")
	}
}

// config is the integration's config for srv, with changes.
func config(t *testing.T, changes map[string]any) []byte {
	cfg := map[string]any{"url": srv.URL, "start_tls": true, "bind_dn": srv.BindDN, "bind_password": srv.BindPassword, "ca_cert": srv.CACert}
	for k, v := range changes {
		if v == nil {
			delete(cfg, k)
		} else {
			cfg[k] = v
		}
	}
	b, _ := json.Marshal(cfg)
	return b
}

// execute runs the integration in process as its program would.
func execute(t *testing.T, cfg []byte, mode string) (code int, stdout, stderr string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.json")
	os.WriteFile(path, cfg, 0o400)
	var out, errb bytes.Buffer
	code = integration.Execute(ldap.Name, integration.Invocation{ConfigPath: path, Mode: mode}, &out, &errb, ldap.Run, integration.WithValidate(ldap.Validate))
	return code, out.String(), errb.String()
}

// collected is a run's output: entities by key, and relationships as
// "type fromDN -> toDN" (DNs lower-cased).
type collected struct {
	byType map[string]int
	dn     map[string]string // key → dn
	rels   map[string]bool
}

func parseOutput(t *testing.T, stdout string) *collected {
	t.Helper()
	c := &collected{byType: map[string]int{}, dn: map[string]string{}, rels: map[string]bool{}}
	type rel struct{ typ, from, to string }
	var rels []rel
	sc := bufio.NewScanner(strings.NewReader(stdout))
	sc.Buffer(nil, integration.MaxRecordBytes)
	for sc.Scan() {
		r, err := integration.ParseRecord(sc.Bytes())
		if err != nil {
			t.Fatalf("record %q: %v", sc.Text(), err)
		}
		c.byType[r.Type]++
		if r.Kind == integration.KindEntity {
			var body struct{ DN string }
			json.Unmarshal(r.Body, &body)
			if _, dup := c.dn[r.Key]; dup {
				t.Errorf("entity key %s emitted twice", r.Key)
			}
			c.dn[r.Key] = strings.ToLower(body.DN)
		} else {
			rels = append(rels, rel{r.Type, r.From, r.To})
		}
	}
	for _, r := range rels {
		from, ok1 := c.dn[r.from]
		to, ok2 := c.dn[r.to]
		if !ok1 || !ok2 {
			t.Errorf("relationship %s %s -> %s: an endpoint was not emitted", r.typ, r.from, r.to)
		}
		c.rels[r.typ+" "+from+" -> "+to] = true
	}
	return c
}

// fromLDIF is what the LDIF says a full run must find, read from the file
// itself (not from the generator's bookkeeping).
func fromLDIF(t *testing.T, path string) *collected {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	want := &collected{byType: map[string]int{}, rels: map[string]bool{}}
	type entry struct {
		dn      string
		classes []string
		members []string
	}
	var entries []entry
	var cur entry
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if cur.dn != "" {
				entries = append(entries, cur)
			}
			cur = entry{}
		case strings.HasPrefix(line, "dn: "):
			cur.dn = strings.ToLower(line[4:])
		case strings.HasPrefix(line, "objectClass: "):
			cur.classes = append(cur.classes, line[13:])
		case strings.HasPrefix(line, "member: "):
			cur.members = append(cur.members, strings.ToLower(line[8:]))
		}
	}
	if cur.dn != "" {
		entries = append(entries, cur)
	}
	kind := map[string]string{}
	for _, e := range entries {
		for _, c := range e.classes {
			switch c {
			case "inetOrgPerson":
				kind[e.dn] = ldap.TypeUser
			case "groupOfNames":
				kind[e.dn] = ldap.TypeGroup
			case "organizationalUnit":
				kind[e.dn] = ldap.TypeOU
			case "device":
				kind[e.dn] = ldap.TypeComputer
			}
		}
		if kind[e.dn] != "" {
			want.byType[kind[e.dn]]++
		}
	}
	for _, e := range entries {
		parent := e.dn[strings.Index(e.dn, ",")+1:]
		if kind[parent] == ldap.TypeOU && (kind[e.dn] == ldap.TypeUser || kind[e.dn] == ldap.TypeComputer) {
			typ := map[string]string{ldap.TypeUser: ldap.TypeOUHasUser, ldap.TypeComputer: ldap.TypeOUHasComputer}[kind[e.dn]]
			want.rels[typ+" "+parent+" -> "+e.dn] = true
			want.byType[typ]++
		}
		for _, m := range e.members {
			switch kind[m] {
			case ldap.TypeUser:
				want.rels[ldap.TypeUserMemberOfGroup+" "+m+" -> "+e.dn] = true
				want.byType[ldap.TypeUserMemberOfGroup]++
			case ldap.TypeGroup:
				want.rels[ldap.TypeGroupHasGroup+" "+e.dn+" -> "+m] = true
				want.byType[ldap.TypeGroupHasGroup]++
			}
		}
	}
	return want
}

// checkFull compares a run's output with the LDIF.
func checkFull(t *testing.T, stdout string) {
	t.Helper()
	got, want := parseOutput(t, stdout), fromLDIF(t, srv.LDIF)
	spec := ldaptest.DefaultSpec
	for typ, n := range map[string]int{ldap.TypeUser: spec.Users, ldap.TypeGroup: spec.Groups, ldap.TypeOU: spec.OUs, ldap.TypeComputer: spec.Computers} {
		if want.byType[typ] != n || got.byType[typ] != n {
			t.Errorf("%s: collected %d, the LDIF has %d, the spec %d", typ, got.byType[typ], want.byType[typ], n)
		}
	}
	if want.byType[ldap.TypeGroupHasGroup] == 0 {
		t.Fatal("the LDIF has no nested group: the test would prove nothing about nesting")
	}
	for typ, n := range want.byType {
		if got.byType[typ] != n {
			t.Errorf("%s: %d records, the LDIF says %d", typ, got.byType[typ], n)
		}
	}
	missing, extra := 0, 0
	for r := range want.rels {
		if !got.rels[r] {
			if missing++; missing <= 5 {
				t.Errorf("missing relationship %s", r)
			}
		}
	}
	for r := range got.rels {
		if !want.rels[r] {
			if extra++; extra <= 5 {
				t.Errorf("relationship not in the LDIF: %s", r)
			}
		}
	}
	t.Logf("%d entities and %d relationships match the LDIF (%d memberships, %d nested)", len(got.dn), len(got.rels),
		want.byType[ldap.TypeUserMemberOfGroup], want.byType[ldap.TypeGroupHasGroup])
}

// The size limit is real: a search that does not page stops at 500.
func TestSizeLimitInForce(t *testing.T) {
	need(t)
	out, err := srv.Search(context.Background(), false, "(objectClass=inetOrgPerson)", "1.1")
	if err == nil || !strings.Contains(out, "Size limit exceeded") {
		t.Fatalf("a search without paging was not cut at %d: %v\n%.300s", ldaptest.SizeLimit, err, out)
	}
	paged, err := srv.Search(context.Background(), true, "(objectClass=inetOrgPerson)", "1.1")
	if err != nil || strings.Count(paged, "dn: ") != ldaptest.DefaultSpec.Users {
		t.Fatalf("a paged search found %d users (%v), want %d", strings.Count(paged, "dn: "), err, ldaptest.DefaultSpec.Users)
	}
}

func TestCollectsEverythingStartTLS(t *testing.T) {
	need(t)
	code, stdout, stderr := execute(t, config(t, nil), "")
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, stderr)
	}
	checkFull(t, stdout)
	if strings.Contains(stdout+stderr, srv.BindPassword) {
		t.Error("the bind password appears in the output or the logs")
	}
}

func TestCollectsEverythingLDAPS(t *testing.T) {
	need(t)
	code, stdout, stderr := execute(t, config(t, map[string]any{"url": srv.LDAPSURL, "start_tls": nil}), "")
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, stderr)
	}
	checkFull(t, stdout)
}

func TestWrongPasswordFailsClearly(t *testing.T) {
	need(t)
	const wrong = "not-the-password-51"
	code, stdout, stderr := execute(t, config(t, map[string]any{"bind_password": wrong}), "")
	if code != integration.ExitAuth || !strings.Contains(stderr, "invalid credentials") || stdout != "" {
		t.Fatalf("exit %d (want %d), stdout %q, stderr:\n%s", code, integration.ExitAuth, stdout, stderr)
	}
	if strings.Contains(stderr, wrong) || strings.Contains(stderr, srv.BindPassword) {
		t.Error("a password appears in the logs")
	}
}

func TestWrongCAFailsWithCertificateError(t *testing.T) {
	need(t)
	for name, cfg := range map[string][]byte{
		"StartTLS": config(t, map[string]any{"ca_cert": srv.OtherCACert}),
		"LDAPS":    config(t, map[string]any{"url": srv.LDAPSURL, "start_tls": nil, "ca_cert": srv.OtherCACert}),
		"no CA":    config(t, map[string]any{"ca_cert": nil}),
	} {
		code, _, stderr := execute(t, cfg, "")
		if code != integration.ExitCertificate || !strings.Contains(stderr, "certificate") {
			t.Errorf("%s: exit %d (want %d):\n%s", name, code, integration.ExitCertificate, stderr)
		}
	}
}

func TestSkipVerifyIsWarned(t *testing.T) {
	need(t)
	code, _, stderr := execute(t, config(t, map[string]any{"ca_cert": nil, "insecure_skip_verify": true, "user_filter": "(uid=user-000001)"}), "")
	if code != 0 || !strings.Contains(stderr, `"level":"WARN"`) || !strings.Contains(stderr, "verification is OFF") {
		t.Errorf("exit %d; want 0 and a warning:\n%s", code, stderr)
	}
}

func TestValidateMode(t *testing.T) {
	need(t)
	code, stdout, stderr := execute(t, config(t, nil), integration.ModeValidate)
	res, err := integration.ParseValidationResult([]byte(stdout))
	if code != 0 || err != nil || !res.OK || len(res.Checks) != 6 {
		t.Fatalf("validate: exit %d, %+v, %v\n%s", code, res, err, stderr)
	}
	code, stdout, _ = execute(t, config(t, map[string]any{"bind_password": "wrong-password"}), integration.ModeValidate)
	res, _ = integration.ParseValidationResult([]byte(stdout))
	if code != integration.ExitAuth || res == nil || res.OK || res.Reason != "auth" || !strings.Contains(res.Error, "invalid credentials") {
		t.Errorf("validate with a wrong password: exit %d, %+v", code, res)
	}
	code, stdout, _ = execute(t, config(t, map[string]any{"ca_cert": srv.OtherCACert}), integration.ModeValidate)
	if res, _ = integration.ParseValidationResult([]byte(stdout)); code != integration.ExitCertificate || res == nil || res.Reason != "certificate" {
		t.Errorf("validate with a wrong CA: exit %d, %+v", code, res)
	}
}

// The program, run directly with --config (as an author would), collects
// the same directory.
func TestProgramWithConfigFlag(t *testing.T) {
	need(t)
	bin := filepath.Join(t.TempDir(), "integration-ldap")
	build := exec.Command("go", "build", "-o", bin, "github.com/collectorhq/collector/cmd/integration-ldap")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	cfg := filepath.Join(t.TempDir(), "config.json")
	os.WriteFile(cfg, config(t, map[string]any{"url": srv.LDAPSURL, "start_tls": nil}), 0o400)
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(bin, "--config", cfg)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	checkFull(t, stdout.String())
	if strings.Contains(stdout.String()+stderr.String(), srv.BindPassword) {
		t.Error("the bind password appears in the program's output")
	}
}

// BenchmarkCollect runs the integration in process, its records thrown
// away: what reading a directory costs with nothing downstream (no
// container, runner, upload or platform). "e2e" reads the e2e suite's
// directory, "bench" test's BenchmarkLDAPUsers' (ldaptest.BenchSpec) on a
// slapd of its own. Besides entities/s it reports the CPU per entity of
// this process (the integration), of slapd and of the whole machine: at
// 20,000 entities/s end to end a machine has NumCPU × 50 µs per entity
// for all of it, downstream included.
func BenchmarkCollect(b *testing.B) {
	b.Run("e2e", func(b *testing.B) {
		if srv == nil {
			b.Skip("no slapd")
		}
		benchCollect(b, srv, ldaptest.DefaultSpec)
	})
	b.Run("bench", func(b *testing.B) {
		ldaptest.Need(b)
		s, err := ldaptest.Start(b.TempDir(), ldaptest.BenchSpec)
		if err != nil {
			b.Fatal(err)
		}
		defer s.Stop()
		benchCollect(b, s, ldaptest.BenchSpec)
	})
}

func benchCollect(b *testing.B, s *ldaptest.Server, spec ldaptest.Spec) {
	cfg := map[string]any{"url": s.LDAPSURL, "bind_dn": s.BindDN, "bind_password": s.BindPassword, "ca_cert": s.CACert}
	raw, _ := json.Marshal(cfg)
	self, slapd := testutil.CPUSeconds(os.Getpid()), testutil.CPUSeconds(s.Pid())
	machine := testutil.MachineCPUSeconds()
	var records int64
	b.ResetTimer()
	for b.Loop() {
		e := integration.NewEmitter(io.Discard)
		if err := ldap.Run(context.Background(), raw, e, slog.New(slog.DiscardHandler)); err != nil {
			b.Fatal(err)
		}
		e.Flush()
		records += e.Count()
	}
	b.StopTimer()
	n := float64(b.N * spec.Entities())
	b.ReportMetric(float64(records)/float64(b.N), "records/op")
	b.ReportMetric(n/b.Elapsed().Seconds(), "entities/s")
	b.ReportMetric((testutil.CPUSeconds(os.Getpid())-self)*1e6/n, "integration-us/entity")
	b.ReportMetric((testutil.CPUSeconds(s.Pid())-slapd)*1e6/n, "slapd-us/entity")
	b.ReportMetric((testutil.MachineCPUSeconds()-machine)*1e6/n, "machine-us/entity")
}

// TestGroupsComeInSmallPages: every page of a group search asks for at
// most 50 entries (a group carries its members: go-ldap holds a page
// whole, every value in a buffer of 512 bytes or more, while the page
// before it is worked through), the other kinds' pages page_size.
func TestGroupsComeInSmallPages(t *testing.T) {
	need(t)
	var mu sync.Mutex
	sizes := map[string][]uint32{}
	defer ldap.OnPage(func(filter string, size uint32) {
		mu.Lock()
		defer mu.Unlock()
		sizes[filter] = append(sizes[filter], size)
	})()
	e := integration.NewEmitter(io.Discard)
	if err := ldap.Run(context.Background(), config(t, map[string]any{"page_size": 400}), e, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	groups, users := sizes["(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames))"], sizes["(|(objectClass=inetOrgPerson)(objectClass=posixAccount))"]
	// 1,000 groups in pages of 50; 10,000 users in pages of 400.
	if len(groups) != 20 || slices.Max(groups) != 50 {
		t.Errorf("group pages %v: want 20 pages of 50", groups)
	}
	if len(users) != 25 || slices.Min(users) != 400 {
		t.Errorf("user pages %v: want 25 pages of 400", users)
	}
}
