package access_test

import (
	"errors"
	"testing"

	"github.com/collectorhq/collector/platform/access"
)

// TestDeviceFlow: the CLI's sign-in waits for the approval, then gets one
// token of the approving user; a code is approved once, and a used or
// expired grant gives nothing.
func TestDeviceFlow(t *testing.T) { eachBackend(t, testDeviceFlow) }

func testDeviceFlow(t *testing.T, b backend) {
	e := newEnv(t, b)
	u := e.user(t, "olga", access.RoleOperator)
	p, _ := e.signIn(t, "olga")
	device, userCode, _, err := e.svc.StartDevice(ctx, meta)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.svc.PollDevice(ctx, device, meta); !errors.Is(err, access.ErrPending) {
		t.Fatalf("poll before the approval: %v, want ErrPending", err)
	}
	if err := e.svc.ApproveDevice(ctx, p, "nope-nope"); !errors.Is(err, access.ErrNotFound) {
		t.Errorf("approve an unknown code: %v, want ErrNotFound", err)
	}
	// Typed in lowercase without the dash, as people do.
	typed := userCode[:4] + userCode[5:]
	if err := e.svc.ApproveDevice(ctx, p, typed); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.ApproveDevice(ctx, p, userCode); !errors.Is(err, access.ErrNotFound) {
		t.Errorf("approve twice: %v, want ErrNotFound", err)
	}
	secret, tok, err := e.svc.PollDevice(ctx, device, meta)
	if err != nil || secret == "" || tok.UserID != u.ID {
		t.Fatalf("poll after the approval: %+v, %v", tok, err)
	}
	if tp, err := e.svc.Authenticate(ctx, request("", secret)); err != nil || tp.User.ID != u.ID {
		t.Errorf("the device's token: %+v, %v", tp, err)
	}
	if _, _, err := e.svc.PollDevice(ctx, device, meta); !errors.Is(err, access.ErrUnauthenticated) {
		t.Errorf("poll again: %v, want ErrUnauthenticated", err)
	}
	late, lateCode, _, err := e.svc.StartDevice(ctx, meta)
	if err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(access.DeviceTTL + 1)
	if err := e.svc.ApproveDevice(ctx, e.must(t, "olga"), lateCode); !errors.Is(err, access.ErrNotFound) {
		t.Errorf("approve an expired code: %v, want ErrNotFound", err)
	}
	if _, _, err := e.svc.PollDevice(ctx, late, meta); !errors.Is(err, access.ErrUnauthenticated) {
		t.Errorf("poll an expired grant: %v, want ErrUnauthenticated", err)
	}
}
