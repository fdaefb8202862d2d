package access_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pquerna/otp/totp"

	"github.com/collectorhq/collector/crypto"
	"github.com/collectorhq/collector/internal/pgtest"
	"github.com/collectorhq/collector/platform/access"
	"github.com/collectorhq/collector/platform/store"
	"github.com/collectorhq/collector/platform/store/postgres"
	"github.com/collectorhq/collector/platform/store/sqlite"
	"github.com/collectorhq/collector/queue"
)

// TestMain starts the PostgreSQL server of the tests that run on it too;
// without PostgreSQL those subtests skip and the SQLite ones still run.
func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

var ctx = context.Background()

// clock is real time plus an offset the tests move.
type clock struct {
	mu     sync.Mutex
	offset time.Duration
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.offset += d
	c.mu.Unlock()
}

// sealer seals with a fixed key, as the platform does with its data key.
type sealer struct{ key []byte }

func (s sealer) Seal(p, aad []byte) ([]byte, error) { return crypto.SealAtRest(s.key, p, aad) }
func (s sealer) Open(c, aad []byte) ([]byte, error) { return crypto.OpenAtRest(s.key, c, aad) }

// testParams keep argon2 cheap in tests (the defaults are benchmarked).
var testParams = access.PasswordParams{MemoryKiB: 1024, Time: 1, Threads: 1, SaltBytes: 16, KeyBytes: 32}

// testStore is what the tests use of a backend's store.
type testStore interface {
	access.Store
	AuditEntries(ctx context.Context, after int64, limit int) ([]store.AuditEntry, error)
}

// sqlDB is a connection to the store's database behind its back (the
// tampering tests' attacker); queries take ? placeholders on every
// backend.
type sqlDB interface {
	Exec(query string, args ...any) (sql.Result, error)
	QueryRow(query string, args ...any) *sql.Row
	Query(query string, args ...any) (*sql.Rows, error)
}

// backend is a store the service's tests run on.
type backend struct {
	name string
	// open opens a new, empty store with the integrity key and clock,
	// and returns how to reach its database directly.
	open func(t *testing.T, key []byte, now func() time.Time) (testStore, func(*testing.T) sqlDB)
}

var (
	onSQLite   = backend{"sqlite", openSQLite}
	onPostgres = backend{"postgres", openPostgres}
)

// eachBackend runs test once per backend, as subtests named for them.
func eachBackend(t *testing.T, test func(*testing.T, backend)) {
	for _, b := range []backend{onSQLite, onPostgres} {
		t.Run(b.name, func(t *testing.T) { test(t, b) })
	}
}

func openSQLite(t *testing.T, key []byte, now func() time.Time) (testStore, func(*testing.T) sqlDB) {
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "p.db"), sqlite.Options{IntegrityKey: key, Queue: queue.DefaultConfig(), Now: now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st, func(t *testing.T) sqlDB {
		t.Helper()
		db, err := sql.Open("sqlite", "file:"+st.Path()+"?_pragma=busy_timeout(5000)")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}
}

// openPostgres opens a store on a new database of the test server (it
// skips t without PostgreSQL).
func openPostgres(t *testing.T, key []byte, now func() time.Time) (testStore, func(*testing.T) sqlDB) {
	st, err := postgres.Open(ctx, pgtest.NewDB(t), postgres.Options{IntegrityKey: key, Queue: queue.DefaultConfig(), Now: now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st, func(t *testing.T) sqlDB {
		db := stdlib.OpenDBFromPool(st.Pool())
		t.Cleanup(func() { db.Close() })
		return pgDB{db}
	}
}

// pgDB numbers the tests' ? placeholders as PostgreSQL's $1, $2, ...
type pgDB struct{ db *sql.DB }

func numbered(query string) string {
	var b strings.Builder
	n := 0
	for _, r := range query {
		if r == '?' {
			n++
			fmt.Fprintf(&b, "$%d", n)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func (p pgDB) Exec(query string, args ...any) (sql.Result, error) {
	return p.db.Exec(numbered(query), args...)
}

func (p pgDB) QueryRow(query string, args ...any) *sql.Row {
	return p.db.QueryRow(numbered(query), args...)
}

func (p pgDB) Query(query string, args ...any) (*sql.Rows, error) {
	return p.db.Query(numbered(query), args...)
}

type env struct {
	svc   *access.Service
	st    testStore
	raw   func(*testing.T) sqlDB
	clock *clock
}

func newEnv(t *testing.T, b backend, edit ...func(*access.Config)) *env {
	t.Helper()
	key := bytes.Repeat([]byte{5}, 32)
	c := &clock{}
	st, raw := b.open(t, key, c.Now)
	cfg := access.DefaultConfig()
	cfg.Password = testParams
	for _, e := range edit {
		e(&cfg)
	}
	svc, err := access.New(cfg, st, sealer{key}, key, slog.New(slog.NewTextHandler(io.Discard, nil)), c.Now)
	if err != nil {
		t.Fatal(err)
	}
	return &env{svc: svc, st: st, raw: raw, clock: c}
}

var meta = access.Meta{Source: "192.0.2.1", UserAgent: "test"}

const goodPassword = "correct horse battery stapler"

func (e *env) user(t *testing.T, login string, role access.Role) access.User {
	t.Helper()
	u, err := e.svc.CreateUser(ctx, access.CreateUserRequest{Login: login, DisplayName: login, Password: goodPassword, Role: role}, "test", meta)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// request returns a request carrying the session cookie or bearer token.
func request(cookie, bearer string) *http.Request {
	r := httptest.NewRequest("GET", "https://platform.test/", nil)
	if cookie != "" {
		r.AddCookie(&http.Cookie{Name: access.SessionCookieName, Value: cookie})
	}
	if bearer != "" {
		r.Header.Set("Authorization", "Bearer "+bearer)
	}
	return r
}

func TestPasswordPolicy(t *testing.T) {
	for _, tc := range []struct {
		pw, login string
		ok        bool
	}{
		{"short", "ann", false},
		{"passwordpassword", "ann", false},
		{"Password2024!!", "ann", false}, // "password" once digits and symbols are cut
		{"qwertyuiop123", "ann", false},
		{"aaaaaaaaaaaaaaaa", "ann", false},
		{"annabelle-is-me-2024", "annabelle", false},
		{goodPassword, "ann", true},
		{"ünïcødé pässphrase wörks", "ann", true},
		{strings.Repeat("x", access.MaxPasswordBytes+1), "ann", false},
	} {
		err := access.CheckPassword(tc.pw, tc.login)
		if (err == nil) != tc.ok {
			t.Errorf("CheckPassword(%.20q) = %v, want ok %v", tc.pw, err, tc.ok)
		}
		if err != nil && !errors.Is(err, access.ErrWeakPassword) {
			t.Errorf("CheckPassword(%.20q) error %v is not ErrWeakPassword", tc.pw, err)
		}
	}
}

func TestPasswordHashSelfDescribing(t *testing.T) {
	h, err := access.HashPassword(goodPassword, testParams)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=1024,t=1,p=1$") {
		t.Errorf("hash %q is not a PHC argon2id string", h)
	}
	if ok, err := access.VerifyPassword(goodPassword, h); !ok || err != nil {
		t.Errorf("verify = %v, %v", ok, err)
	}
	if ok, _ := access.VerifyPassword(goodPassword+"x", h); ok {
		t.Error("a wrong password verified")
	}
	// NFC: the same characters typed decomposed.
	h2, _ := access.HashPassword("café au lait please", testParams)
	if ok, _ := access.VerifyPassword("cafe\u0301 au lait please", h2); !ok {
		t.Error("a decomposed é does not match the composed one")
	}
	if !access.NeedsRehash(h, access.DefaultPasswordParams) || access.NeedsRehash(h, testParams) {
		t.Error("NeedsRehash does not compare the parameters")
	}
	for _, bad := range []string{"", "$argon2i$v=19$m=1,t=1,p=1$AAAA$AAAA", "$argon2id$v=19$m=99999999,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"} {
		if _, err := access.VerifyPassword("x", bad); err == nil {
			t.Errorf("VerifyPassword accepted hash %q", bad)
		}
	}
}

func TestLogins(t *testing.T) { eachBackend(t, testLogins) }

func testLogins(t *testing.T, b backend) {
	e := newEnv(t, b)
	long := strings.Repeat("é", access.MaxLoginRunes)
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"  Alice ", "alice", true},
		{"ÁLVARO", "álvaro", true},
		{"A\u0301lvaro", "álvaro", true}, // decomposed: the same login
		{long, long, true},
		{long + "e", "", false},
		{"bob smith", "", false},
		{"bob\u202eevil", "", false},
		{"bob\x1b[2J", "", false},
		{"", "", false},
	} {
		got, err := access.NormalizeLogin(tc.in)
		if (err == nil) != tc.ok || (tc.ok && got != tc.want) {
			t.Errorf("NormalizeLogin(%q) = %q, %v; want %q ok %v", tc.in, got, err, tc.want, tc.ok)
		}
	}
	e.user(t, "Álvaro", access.RoleViewer)
	if _, err := e.svc.CreateUser(ctx, access.CreateUserRequest{Login: "A\u0301LVARO", Password: goodPassword, Role: access.RoleViewer}, "test", meta); !errors.Is(err, access.ErrConflict) {
		t.Errorf("a login that looks the same was created: %v", err)
	}
}

// TestSignInRefusalsAreOne: a wrong password, an unknown login and a
// disabled user get the same error.
func TestSignInRefusalsAreOne(t *testing.T) { eachBackend(t, testSignInRefusalsAreOne) }

func testSignInRefusalsAreOne(t *testing.T, b backend) {
	e := newEnv(t, b)
	u := e.user(t, "ann", access.RoleViewer)
	if _, err := e.svc.SetDisabled(ctx, e.user(t, "dan", access.RoleViewer).ID, true, "test", meta); err != nil {
		t.Fatal(err)
	}
	for _, tc := range [][2]string{{"ann", "wrong password!!"}, {"nobody", goodPassword}, {"dan", goodPassword}} {
		if _, err := e.svc.SignIn(ctx, tc[0], tc[1], "", meta); !errors.Is(err, access.ErrBadCredentials) || err.Error() != access.ErrBadCredentials.Error() {
			t.Errorf("sign-in %s: %v, want exactly ErrBadCredentials", tc[0], err)
		}
	}
	in, err := e.svc.SignIn(ctx, "ANN", goodPassword, "", meta)
	if err != nil || in.User.ID != u.ID || in.Session.Stage != access.StageFull || in.Token == "" {
		t.Fatalf("sign-in = %+v, %v", in, err)
	}
	p, err := e.svc.Authenticate(ctx, request(in.Token, ""))
	if err != nil || p.User.ID != u.ID || p.Role != access.RoleViewer || !p.Full() {
		t.Fatalf("authenticate = %+v, %v", p, err)
	}
}

// TestThrottleBacksOffAndKnownDeviceGoesOn: failures make the next attempt
// wait, doubling; an attacker's failures from elsewhere do not slow the
// user's own browser (device cookie); nothing locks for good.
func TestThrottleBacksOffAndKnownDeviceGoesOn(t *testing.T) {
	eachBackend(t, testThrottleBacksOffAndKnownDeviceGoesOn)
}

func testThrottleBacksOffAndKnownDeviceGoesOn(t *testing.T, b backend) {
	e := newEnv(t, b)
	e.user(t, "ann", access.RoleViewer)
	own, err := e.svc.SignIn(ctx, "ann", goodPassword, "", access.Meta{Source: "198.51.100.7"})
	if err != nil {
		t.Fatal(err)
	}
	device := own.DeviceCookie
	attacker := access.Meta{Source: "203.0.113.9"}
	var throttled *access.ThrottledError
	for i := 1; i <= 8; i++ {
		_, err := e.svc.SignIn(ctx, "ann", "guess number "+strings.Repeat("x", i), "", attacker)
		if errors.As(err, &throttled) {
			if i <= 6 {
				t.Fatalf("throttled after %d failures, want 5 free", i-1)
			}
			break
		}
	}
	if throttled == nil || throttled.RetryAfter <= 0 || throttled.RetryAfter > 5*time.Second {
		t.Fatalf("no back-off after 8 failures (%v)", throttled)
	}
	// Even the right password waits, from an unknown browser.
	if _, err := e.svc.SignIn(ctx, "ann", goodPassword, "", attacker); !errors.Is(err, access.ErrThrottled) {
		t.Errorf("right password during the back-off from an unknown browser: %v, want throttled", err)
	}
	// The user's own browser is not slowed.
	if _, err := e.svc.SignIn(ctx, "ann", goodPassword, device, access.Meta{Source: "198.51.100.7"}); err != nil {
		t.Errorf("the user's known browser during the attack: %v", err)
	}
	// A device cookie of another login does not help.
	if _, err := e.svc.SignIn(ctx, "bob", goodPassword, device, attacker); !errors.Is(err, access.ErrThrottled) && !errors.Is(err, access.ErrBadCredentials) {
		t.Errorf("unexpected: %v", err)
	}
	// It is a wait, not a lock: after it, the attempt is judged again.
	e.clock.Advance(throttled.RetryAfter + time.Second)
	if _, err := e.svc.SignIn(ctx, "ann", goodPassword, "", attacker); err != nil {
		t.Errorf("after the back-off: %v", err)
	}
	// Visible to admins, and clearable.
	ts, err := e.svc.Throttles(ctx)
	if err != nil || len(ts) == 0 {
		t.Fatalf("throttles = %v, %v", ts, err)
	}
	if err := e.svc.ClearThrottle(ctx, "", "admin", meta); err != nil {
		t.Fatal(err)
	}
	if ts, _ := e.svc.Throttles(ctx); len(ts) != 0 {
		t.Errorf("throttles after clearing: %v", ts)
	}
}

// TestSourceThrottle: one address spraying many logins is slowed too.
func TestSourceThrottle(t *testing.T) { eachBackend(t, testSourceThrottle) }

func testSourceThrottle(t *testing.T, b backend) {
	e := newEnv(t, b)
	spray := access.Meta{Source: "203.0.113.50"}
	var err error
	for i := 0; i < 30 && !errors.Is(err, access.ErrThrottled); i++ {
		_, err = e.svc.SignIn(ctx, "user"+string(rune('a'+i)), "whatever password", "", spray)
	}
	if !errors.Is(err, access.ErrThrottled) {
		t.Errorf("30 logins sprayed from one address were never slowed: %v", err)
	}
}

// TestAdminMustEnrollThenVerify: an admin without a second factor signs
// in to the enrolment stage only; TOTP enrolment completes it; the next
// sign-in asks for a code, once per code (replay refused), and recovery
// codes work once.
func TestAdminMustEnrollThenVerify(t *testing.T) { eachBackend(t, testAdminMustEnrollThenVerify) }

func testAdminMustEnrollThenVerify(t *testing.T, b backend) {
	e := newEnv(t, b)
	e.user(t, "root", access.RoleAdmin)
	in, err := e.svc.SignIn(ctx, "root", goodPassword, "", meta)
	if err != nil || in.Session.Stage != access.StageEnroll {
		t.Fatalf("admin without MFA: %+v, %v; want the enrolment stage", in, err)
	}
	p, err := e.svc.Authenticate(ctx, request(in.Token, ""))
	if err != nil || p.Full() {
		t.Fatalf("an enrolling session is full: %+v, %v", p, err)
	}
	enr, err := e.svc.BeginTOTP(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.svc.ConfirmTOTP(ctx, p, "000000"); !errors.Is(err, access.ErrSecondFactor) {
		t.Errorf("confirm with a wrong code: %v", err)
	}
	code, _ := totp.GenerateCode(enr.Secret, e.clock.Now())
	codes, cookie, err := e.svc.ConfirmTOTP(ctx, p, code)
	if err != nil || len(codes) != 10 || cookie == "" || cookie == in.Token {
		t.Fatalf("confirm = %d codes, cookie %q, %v", len(codes), cookie, err)
	}
	if _, err := e.svc.Authenticate(ctx, request(in.Token, "")); !errors.Is(err, access.ErrUnauthenticated) {
		t.Errorf("the pre-enrolment session still works after rotation: %v", err)
	}
	if p2, err := e.svc.Authenticate(ctx, request(cookie, "")); err != nil || !p2.Full() || !p2.RecentMFA(e.clock.Now(), time.Minute) {
		t.Errorf("rotated session = %+v, %v", p2, err)
	}

	e.clock.Advance(time.Minute)
	in2, err := e.svc.SignIn(ctx, "root", goodPassword, "", meta)
	if err != nil || in2.Session.Stage != access.StageMFA {
		t.Fatalf("second sign-in: %+v, %v; want the MFA stage", in2, err)
	}
	p3, _ := e.svc.Authenticate(ctx, request(in2.Token, ""))
	code, _ = totp.GenerateCode(enr.Secret, e.clock.Now())
	full, err := e.svc.VerifyTOTP(ctx, p3, code)
	if err != nil || full == "" {
		t.Fatalf("verify: %v", err)
	}
	// The same code again (a replay within its 30 s window) is refused.
	in3, _ := e.svc.SignIn(ctx, "root", goodPassword, "", meta)
	p4, _ := e.svc.Authenticate(ctx, request(in3.Token, ""))
	if _, err := e.svc.VerifyTOTP(ctx, p4, code); !errors.Is(err, access.ErrSecondFactor) {
		t.Errorf("replayed TOTP code: %v, want refused", err)
	}
	if _, err := e.svc.VerifyRecoveryCode(ctx, p4, strings.ToUpper(codes[0])); err != nil {
		t.Errorf("recovery code: %v", err)
	}
	in5, _ := e.svc.SignIn(ctx, "root", goodPassword, "", meta)
	p5, _ := e.svc.Authenticate(ctx, request(in5.Token, ""))
	if _, err := e.svc.VerifyRecoveryCode(ctx, p5, codes[0]); !errors.Is(err, access.ErrSecondFactor) {
		t.Errorf("a recovery code used twice: %v", err)
	}
	if m, _ := e.svc.MFA(ctx, in.User.ID); !m.TOTP || m.RecoveryCodes != 9 {
		t.Errorf("mfa = %+v, want TOTP and 9 codes left", m)
	}
}

// TestTokens: a token's role is at most its user's, it expires, it can be
// revoked, and a disabled user's tokens and sessions stop at once.
func TestTokens(t *testing.T) { eachBackend(t, testTokens) }

func testTokens(t *testing.T, b backend) {
	e := newEnv(t, b)
	op := e.user(t, "olga", access.RoleOperator)
	in, err := e.svc.SignIn(ctx, "olga", goodPassword, "", meta)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := e.svc.Authenticate(ctx, request(in.Token, ""))
	if _, _, err := e.svc.CreateToken(ctx, p, access.CreateTokenRequest{Name: "ci", Role: access.RoleAdmin}); !errors.Is(err, access.ErrForbidden) {
		t.Errorf("a token above the user's role: %v", err)
	}
	if _, _, err := e.svc.CreateToken(ctx, p, access.CreateTokenRequest{Name: "ci", TTL: 400 * 24 * time.Hour}); !errors.Is(err, access.ErrInvalid) {
		t.Errorf("a token over a year: %v", err)
	}
	tk, secret, err := e.svc.CreateToken(ctx, p, access.CreateTokenRequest{Name: "ci", Role: access.RoleViewer})
	if err != nil || !strings.HasPrefix(secret, access.APITokenPrefix) || tk.ExpiresAt.Sub(tk.CreatedAt) != 90*24*time.Hour {
		t.Fatalf("token = %+v %q, %v", tk, secret, err)
	}
	tp, err := e.svc.Authenticate(ctx, request("", secret))
	if err != nil || tp.Role != access.RoleViewer || tp.Token == nil || !strings.HasPrefix(tp.Actor(), "token:") {
		t.Fatalf("token principal = %+v, %v", tp, err)
	}
	// Expired.
	short, shortSecret, _ := e.svc.CreateToken(ctx, p, access.CreateTokenRequest{Name: "short", TTL: time.Minute})
	e.clock.Advance(2 * time.Minute)
	if _, err := e.svc.Authenticate(ctx, request("", shortSecret)); !errors.Is(err, access.ErrUnauthenticated) {
		t.Errorf("expired token: %v", err)
	}
	_ = short
	// Revoked.
	if err := e.svc.RevokeToken(ctx, tp, tk.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Authenticate(ctx, request("", secret)); !errors.Is(err, access.ErrUnauthenticated) {
		t.Errorf("revoked token: %v", err)
	}
	// Disabled: live session and tokens refused at once.
	in2, _ := e.svc.SignIn(ctx, "olga", goodPassword, "", meta)
	_, secret2, _ := e.svc.CreateToken(ctx, p, access.CreateTokenRequest{Name: "ci2"})
	if _, err := e.svc.SetDisabled(ctx, op.ID, true, "admin", meta); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Authenticate(ctx, request(in2.Token, "")); !errors.Is(err, access.ErrUnauthenticated) {
		t.Errorf("a disabled user's session: %v", err)
	}
	if _, err := e.svc.Authenticate(ctx, request("", secret2)); !errors.Is(err, access.ErrUnauthenticated) {
		t.Errorf("a disabled user's token: %v", err)
	}
}

// TestSessionTimeouts: idle and absolute.
func TestSessionTimeouts(t *testing.T) { eachBackend(t, testSessionTimeouts) }

func testSessionTimeouts(t *testing.T, b backend) {
	e := newEnv(t, b)
	e.user(t, "ann", access.RoleViewer)
	in, _ := e.svc.SignIn(ctx, "ann", goodPassword, "", meta)
	e.clock.Advance(31 * time.Minute)
	if _, err := e.svc.Authenticate(ctx, request(in.Token, "")); !errors.Is(err, access.ErrUnauthenticated) {
		t.Errorf("a session idle 31 min: %v", err)
	}
	in2, _ := e.svc.SignIn(ctx, "ann", goodPassword, "", meta)
	for i := 0; i < 25; i++ { // active every 29 min for 12 h+
		e.clock.Advance(29 * time.Minute)
		if _, err := e.svc.Authenticate(ctx, request(in2.Token, "")); err != nil {
			if i < 24 {
				t.Fatalf("an active session ended after %d min: %v", (i+1)*29, err)
			}
			return
		}
	}
	t.Error("an active session outlived its 12 h")
}

// TestSetupOnce: the setup token creates the first admin once.
func TestSetupOnce(t *testing.T) { eachBackend(t, testSetupOnce) }

func testSetupOnce(t *testing.T, b backend) {
	e := newEnv(t, b)
	tok, err := e.svc.NewSetupToken(ctx)
	if err != nil || !strings.HasPrefix(tok, access.SetupTokenPrefix) {
		t.Fatalf("setup token %q, %v", tok, err)
	}
	req := access.CreateUserRequest{Login: "root", DisplayName: "Root", Password: goodPassword}
	if _, err := e.svc.CompleteSetup(ctx, tok+"x", req, meta); !errors.Is(err, access.ErrUnauthenticated) {
		t.Errorf("setup with a wrong token: %v", err)
	}
	var wg sync.WaitGroup
	results := make(chan error, 4)
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			r := req
			r.Login = "root" + string(rune('a'+i))
			_, err := e.svc.CompleteSetup(ctx, tok, r, meta)
			results <- err
		}(i)
	}
	wg.Wait()
	close(results)
	ok := 0
	for err := range results {
		if err == nil {
			ok++
		}
	}
	if ok != 1 {
		t.Errorf("%d setups succeeded with one token, want 1", ok)
	}
	if tok2, err := e.svc.NewSetupToken(ctx); err != nil || tok2 != "" {
		t.Errorf("a setup token after setup: %q, %v", tok2, err)
	}
}

// TestTamperedUserRowGrantsNothing: raising a role in the database
// (without the integrity key) makes the user unusable, not an admin.
func TestTamperedUserRowGrantsNothing(t *testing.T) { eachBackend(t, testTamperedUserRowGrantsNothing) }

func testTamperedUserRowGrantsNothing(t *testing.T, b backend) {
	e := newEnv(t, b)
	u := e.user(t, "vic", access.RoleViewer)
	in, _ := e.svc.SignIn(ctx, "vic", goodPassword, "", meta)
	db := rawDB(t, e)
	if _, err := db.Exec(`UPDATE users SET role = 'admin' WHERE id = ?`, u.ID); err != nil {
		t.Fatal(err)
	}
	if p, err := e.svc.Authenticate(ctx, request(in.Token, "")); err == nil && p.Role == access.RoleAdmin {
		t.Fatal("a role raised in the database was honoured")
	}
	// An admin's session waiting for its enrolment, made full in the
	// database: the session is gone, not upgraded.
	e.user(t, "root", access.RoleAdmin)
	in2, _ := e.svc.SignIn(ctx, "root", goodPassword, "", meta)
	if in2.Session.Stage != access.StageEnroll {
		t.Fatalf("stage %q", in2.Session.Stage)
	}
	if _, err := db.Exec(`UPDATE sessions SET stage = 'full', mfa_at = 1 WHERE user_id = ?`, in2.User.ID); err != nil {
		t.Fatal(err)
	}
	if p, err := e.svc.Authenticate(ctx, request(in2.Token, "")); err == nil && p.Full() {
		t.Fatal("a session made full in the database was honoured")
	}
}

// BenchmarkPasswordHash reports the CPU time of one argon2id hash with the
// default parameters (the cost of a sign-in), from the process's rusage.
func BenchmarkPasswordHash(b *testing.B) {
	var before, after syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &before)
	n := 0
	for b.Loop() {
		if _, err := access.HashPassword(goodPassword, access.DefaultPasswordParams); err != nil {
			b.Fatal(err)
		}
		n++
	}
	syscall.Getrusage(syscall.RUSAGE_SELF, &after)
	cpu := time.Duration(after.Utime.Nano()+after.Stime.Nano()-before.Utime.Nano()-before.Stime.Nano()) / time.Duration(n)
	b.ReportMetric(float64(cpu)/float64(time.Millisecond), "cpu-ms/op")
}

func rawDB(t *testing.T, e *env) sqlDB {
	t.Helper()
	return e.raw(t)
}
