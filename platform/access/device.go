package access

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/collectorhq/collector/crypto"
	"github.com/collectorhq/collector/platform/store"
)

// The device flow signs the CLI in (`platform login`), in the manner of
// RFC 8628: the CLI asks for a device code and a short user code, prints
// a URL; the user opens it in a browser where they are signed in (with
// their second factor), checks the code and approves; the CLI's next poll
// gets an API token of the user, short-lived.

// DeviceGrant is one device sign-in in progress.
type DeviceGrant struct {
	CodeHash   string
	UserCode   string
	CreatedAt  time.Time
	ExpiresAt  time.Time
	Source     string
	UserID     string
	ApprovedAt time.Time
	ConsumedAt time.Time
}

// DeviceStore keeps device grants.
type DeviceStore interface {
	PutDeviceGrant(ctx context.Context, g DeviceGrant) error
	DeviceGrant(ctx context.Context, codeHash string) (DeviceGrant, error)
	// ApproveDevice approves the live, unapproved grant with userCode for
	// userID; ErrNotFound if there is none.
	ApproveDevice(ctx context.Context, userCode, userID string, at time.Time, ev store.Event) error
	// ConsumeDevice marks an approved grant used, once; ErrNotFound else.
	ConsumeDevice(ctx context.Context, codeHash string, at time.Time) error
}

// Device flow timings.
const (
	DeviceTTL      = 10 * time.Minute
	DevicePoll     = 2 * time.Second
	DeviceTokenTTL = 12 * time.Hour
)

// ErrPending: the device grant is not approved yet (the CLI polls again).
var ErrPending = errors.New("authorization pending")

const userCodeAlphabet = "BCDFGHJKLMNPQRSTVWXZ" // no vowels: no words; no 0/O, 1/I

// StartDevice begins a device sign-in and returns the device code (the
// CLI keeps it) and the user code (the user checks it in the browser).
func (s *Service) StartDevice(ctx context.Context, m Meta) (deviceCode, userCode string, expires time.Time, err error) {
	if deviceCode, err = crypto.NewToken("cdev_"); err != nil {
		return "", "", time.Time{}, err
	}
	var b [8]byte
	rand.Read(b[:])
	var sb strings.Builder
	for i, x := range b {
		if i == 4 {
			sb.WriteByte('-')
		}
		sb.WriteByte(userCodeAlphabet[int(x)%len(userCodeAlphabet)])
	}
	userCode = sb.String()
	now := s.now()
	expires = now.Add(DeviceTTL)
	err = s.st.PutDeviceGrant(ctx, DeviceGrant{CodeHash: tokenHash(deviceCode), UserCode: userCode, CreatedAt: now, ExpiresAt: expires, Source: m.Source})
	return deviceCode, userCode, expires, err
}

// NormalizeUserCode uppercases a user code and puts its dash back.
func NormalizeUserCode(c string) string {
	c = strings.ToUpper(strings.NewReplacer("-", "", " ", "").Replace(strings.TrimSpace(c)))
	if len(c) == 8 {
		c = c[:4] + "-" + c[4:]
	}
	return c
}

// ApproveDevice lets the device with userCode sign in as the principal.
func (s *Service) ApproveDevice(ctx context.Context, p *Principal, userCode string) error {
	if p.Session == nil {
		return fmt.Errorf("%w: approve a device from a signed-in browser, not with a token", ErrInvalid)
	}
	code := NormalizeUserCode(userCode)
	ev := EventFor(s.now(), p.Actor(), "device.approved", p.User.ID, p.Meta, map[string]any{"user_code": code})
	if err := s.st.ApproveDevice(ctx, code, p.User.ID, s.now(), ev); err != nil {
		return fmt.Errorf("%w: no pending sign-in has that code (it expires after %s)", ErrNotFound, DeviceTTL)
	}
	return nil
}

// PollDevice returns the API token of an approved device grant, once;
// ErrPending before the approval; ErrUnauthenticated once it expired or
// was used.
func (s *Service) PollDevice(ctx context.Context, deviceCode string, m Meta) (string, APIToken, error) {
	g, err := s.st.DeviceGrant(ctx, tokenHash(deviceCode))
	now := s.now()
	switch {
	case errors.Is(err, ErrNotFound), err == nil && (!now.Before(g.ExpiresAt) || !g.ConsumedAt.IsZero()):
		return "", APIToken{}, fmt.Errorf("%w: the sign-in expired or was used; run `platform login` again", ErrUnauthenticated)
	case err != nil:
		return "", APIToken{}, err
	case g.ApprovedAt.IsZero():
		return "", APIToken{}, ErrPending
	}
	u, err := s.activeUser(ctx, g.UserID)
	if err != nil {
		return "", APIToken{}, err
	}
	if err := s.st.ConsumeDevice(ctx, g.CodeHash, now); err != nil {
		return "", APIToken{}, fmt.Errorf("%w: the sign-in was used already", ErrUnauthenticated)
	}
	t, tok, err := s.CreateTokenFor(ctx, u, "user:"+u.Login, m, CreateTokenRequest{
		Name: "platform login " + now.UTC().Format("2006-01-02 15:04"), TTL: DeviceTokenTTL})
	return tok, t, err
}
