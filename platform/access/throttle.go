package access

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"strings"
	"time"
)

// ThrottleConfig tunes the back-off after failed sign-ins.
//
// Locking an account after N failures (Teleport: 20–30 min after 5,
// Grafana: after 5 in 5 min) hands an attacker a way to lock a real user
// out. Here nothing locks: failures only make the next attempt wait, the
// wait doubling with each failure up to MaxBackoff, and the counters are
// split so an attacker's failures slow the attacker:
//
//   - per source address: every attempt from it;
//   - per login, for browsers the user has not signed in from before;
//   - per login and known device: a browser that signed in as that login
//     before carries a device cookie (signed by the platform) and is
//     counted apart, so a flood of failures from elsewhere does not slow
//     the real user's own browser (OWASP's "device cookies").
//
// The per-login counter keys on the login as typed (normalized), whether
// or not it exists, so its behaviour reveals nothing either.
type ThrottleConfig struct {
	// FreeFailures are allowed before any wait: per login, per known
	// device, and per source address.
	LoginFree, DeviceFree, SourceFree int
	// FirstBackoff is the first wait; each failure after doubles it, up to
	// MaxBackoff.
	FirstBackoff, MaxBackoff time.Duration
	// Window forgets failures older than this.
	Window time.Duration
}

// DefaultThrottleConfig: 5 free failures per login (and per known
// device), 20 per source; then 1 s, 2 s, 4 s ... at most 15 min; failures
// forgotten after an hour without one.
func DefaultThrottleConfig() ThrottleConfig {
	return ThrottleConfig{LoginFree: 5, DeviceFree: 5, SourceFree: 20, FirstBackoff: time.Second, MaxBackoff: 15 * time.Minute, Window: time.Hour}
}

func (c ThrottleConfig) free(key string) int {
	switch {
	case strings.HasPrefix(key, "source:"):
		return c.SourceFree
	case strings.HasPrefix(key, "device:"):
		return c.DeviceFree
	}
	return c.LoginFree
}

// backoff is the wait after failures failures on a key with free allowed.
func (c ThrottleConfig) backoff(failures, free int) time.Duration {
	if failures <= free {
		return 0
	}
	d := c.FirstBackoff
	for i := free + 1; i < failures && d < c.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, c.MaxBackoff)
}

// throttleKeys are the counters an attempt is checked against and, if it
// fails, counted in.
func (s *Service) throttleKeys(login, deviceID string, m Meta) []string {
	keys := []string{"source:" + m.Source}
	if deviceID != "" {
		keys = append(keys, "device:"+deviceID+":"+login)
	} else {
		keys = append(keys, "login:"+login)
	}
	return keys
}

// checkThrottle returns a *ThrottledError if any key is blocked now.
func (s *Service) checkThrottle(ctx context.Context, keys []string) error {
	ts, err := s.st.Throttles(ctx, keys...)
	if err != nil {
		return err
	}
	now := s.now()
	var wait time.Duration
	for _, t := range ts {
		if t.BlockedUntil.After(now) {
			wait = max(wait, t.BlockedUntil.Sub(now))
		}
	}
	if wait > 0 {
		return &ThrottledError{RetryAfter: wait}
	}
	return nil
}

// recordFailure counts a failure on each key and sets its wait.
func (s *Service) recordFailure(ctx context.Context, keys []string) {
	now := s.now()
	for _, k := range keys {
		free := s.cfg.Throttle.free(k)
		block := func(failures int) time.Duration { return s.cfg.Throttle.backoff(failures, free) }
		if _, err := s.st.RecordFailure(ctx, k, now, s.cfg.Throttle.Window, block); err != nil {
			s.log.Warn("recording a failed sign-in failed", "err", err)
		}
	}
}

// clearAfterSuccess drops the login's (or device's) counter.
func (s *Service) clearAfterSuccess(ctx context.Context, keys []string) {
	for _, k := range keys {
		if !strings.HasPrefix(k, "source:") {
			s.st.ClearThrottle(ctx, k, nil)
		}
	}
}

// Throttles lists the counters with a failure in the window, for admins.
func (s *Service) Throttles(ctx context.Context) ([]Throttle, error) {
	return s.st.ActiveThrottles(ctx, s.now().Add(-s.cfg.Throttle.Window))
}

// ClearThrottle drops a counter (or all, with "").
func (s *Service) ClearThrottle(ctx context.Context, key, actor string, m Meta) error {
	ev := EventFor(s.now(), actor, "access.throttle_cleared", key, m, nil)
	return s.st.ClearThrottle(ctx, key, &ev)
}

// A device cookie is "<device id>.<login mac>": the browser signed in as
// that login before. Its MAC (keyed outside the database) binds it to the
// login, so it cannot be forged or moved to another login.

// DeviceCookieName is the device cookie's name (__Host-: HTTPS, no Domain,
// Path=/).
const DeviceCookieName = "__Host-collector-device"

func (s *Service) deviceMAC(id, login string) string {
	m := hmac.New(sha256.New, s.deviceKey)
	m.Write([]byte(id))
	m.Write([]byte{0})
	m.Write([]byte(login))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// NewDeviceCookie returns a device cookie value for login.
func (s *Service) NewDeviceCookie(login string) string {
	var b [16]byte
	rand.Read(b[:])
	id := base64.RawURLEncoding.EncodeToString(b[:])
	return id + "." + s.deviceMAC(id, login)
}

// deviceID returns the device ID of cookie if it is valid for login.
func (s *Service) deviceID(cookie, login string) string {
	id, mac, ok := strings.Cut(cookie, ".")
	if !ok || len(id) != 22 || !hmac.Equal([]byte(mac), []byte(s.deviceMAC(id, login))) {
		return ""
	}
	return id
}
