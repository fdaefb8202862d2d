package platform

import (
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/internal/testutil"
)

// handshake connects to ln with the pins and reports the handshake's
// error.
func handshake(ln net.Listener, pins ...string) error {
	tc := api.PinsTLSConfig(func() []string { return pins })
	tc.ServerName = "127.0.0.1"
	conn, err := tls.Dial("tcp", ln.Addr().String(), tc)
	if err != nil {
		return err
	}
	return conn.Close()
}

// TestCARotationServedWithoutRestart: `platform keys ca announce` states
// the next CA's pin beside the current one in the key set while the old
// CA's certificate is served; `switch` has the running platform serve a
// certificate of the new CA at the next handshake (a collector that
// pinned only the old CA is refused, one that pinned both is not), and
// the key set states the old CA as previous until the grace ends. A
// second announcement waits for the grace, a switch for the announcement.
func TestCARotationServedWithoutRestart(t *testing.T) {
	cfg := DefaultConfig()
	cfg.DataDir, cfg.Listen = t.TempDir(), "127.0.0.1:0"
	log := slog.New(slog.NewTextHandler(&testutil.Buffer{}, nil))
	first, oldPin, err := loadTLS(cfg, certHosts(cfg), log)
	if err != nil {
		t.Fatal(err)
	}
	c := newCerts(cfg, first, oldPin, log, time.Now)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{GetCertificate: c.get})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { conn.(*tls.Conn).Handshake(); conn.Close() }()
		}
	}()
	// The platform looks at the CA files once a second: a test looks now.
	lookNow := func() { c.mu.Lock(); c.caChecked = time.Time{}; c.mu.Unlock() }
	if err := handshake(ln, oldPin); err != nil {
		t.Fatalf("before the rotation: %v", err)
	}
	if ca, rotating := c.caPins(time.Now()); rotating || ca.Current != oldPin || ca.Next != "" {
		t.Fatalf("before the rotation: %+v, rotating %v", ca, rotating)
	}

	now := time.Now()
	newPin, err := AnnounceCA(cfg.DataDir, now)
	if err != nil {
		t.Fatal(err)
	}
	lookNow()
	if ca, rotating := c.caPins(now); !rotating || ca.Current != oldPin || ca.Next != newPin {
		t.Fatalf("announced: %+v, rotating %v; want current %s, next %s", ca, rotating, oldPin, newPin)
	}
	if err := handshake(ln, oldPin); err != nil || c.caPin() != oldPin {
		t.Fatalf("announced: the old CA is still served: %v, pin %s", err, c.caPin())
	}
	if _, err := AnnounceCA(cfg.DataDir, now); err == nil {
		t.Error("a second CA was announced over the first")
	}
	if _, err := SwitchCA(cfg.DataDir, time.Hour, false, now.Add(time.Minute)); !errors.Is(err, ErrCAAnnouncedTooRecently) {
		t.Errorf("switch a minute after the announcement: %v, want ErrCAAnnouncedTooRecently", err)
	}

	// The wait counts from the announced file's time, a little after now.
	st, err := SwitchCA(cfg.DataDir, time.Hour, false, time.Now().Add(MinSigningAnnounce))
	if err != nil {
		t.Fatal(err)
	}
	if st.Current != newPin || st.Previous != oldPin || st.Next != "" {
		t.Fatalf("status after the switch: %+v", st)
	}
	lookNow()
	if err := handshake(ln, oldPin); !errors.Is(err, api.ErrPinMismatch) {
		t.Errorf("after the switch, a client that pinned only the old CA: %v, want ErrPinMismatch", err)
	}
	if err := handshake(ln, oldPin, newPin); err != nil {
		t.Errorf("after the switch, a client that pinned both: %v", err)
	}
	if c.caPin() != newPin {
		t.Errorf("enrollment tokens would carry %s, want the new pin %s", c.caPin(), newPin)
	}
	ca, rotating := c.caPins(now)
	if !rotating || ca.Current != newPin || ca.Previous != oldPin || ca.PreviousUntil == nil {
		t.Fatalf("switched: %+v, rotating %v", ca, rotating)
	}
	if got := ca.Accepted(ca.PreviousUntil.Add(-time.Second)); !slices.Equal(got, []string{newPin, oldPin}) {
		t.Errorf("during the grace: %q", got)
	}
	until := *ca.PreviousUntil
	if ca, rotating := c.caPins(until); rotating || ca.Previous != "" {
		t.Errorf("after the grace: %+v, rotating %v; want the new CA alone, no rotation", ca, rotating)
	}
	if _, err := AnnounceCA(cfg.DataDir, until.Add(-time.Minute)); err == nil {
		t.Error("announced during the previous rotation's grace")
	}
	if _, err := AnnounceCA(cfg.DataDir, until); err != nil {
		t.Errorf("announce after the grace: %v", err)
	}
}
