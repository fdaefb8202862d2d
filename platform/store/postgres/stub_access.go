package postgres

import (
	"context"
	"time"

	"github.com/collectorhq/collector/platform/access"
	"github.com/collectorhq/collector/platform/store"
)

// Methods not ported yet: each is removed here as its port lands.

func (*Store) ActiveThrottles(_ context.Context, _ time.Time) ([]access.Throttle, error) {
	panic("not ported yet")
}

func (*Store) ApproveDevice(_ context.Context, _ string, _ string, _ time.Time, _ store.Event) error {
	panic("not ported yet")
}

func (*Store) ClearThrottle(_ context.Context, _ string, _ *store.Event) error {
	panic("not ported yet")
}

func (*Store) ConsumeDevice(_ context.Context, _ string, _ time.Time) error { panic("not ported yet") }

func (*Store) CountAdmins(_ context.Context) (int, error) { panic("not ported yet") }

func (*Store) CreateFirstUser(_ context.Context, _ access.User, _ string, _ time.Time, _ store.Event) error {
	panic("not ported yet")
}

func (*Store) CreatePasskey(_ context.Context, _ access.Passkey, _ *store.Event) error {
	panic("not ported yet")
}

func (*Store) CreateSession(_ context.Context, _ access.Session, _ *store.Event) error {
	panic("not ported yet")
}

func (*Store) CreateToken(_ context.Context, _ access.APIToken, _ store.Event) error {
	panic("not ported yet")
}

func (*Store) CreateUser(_ context.Context, _ access.User, _ store.Event) error {
	panic("not ported yet")
}

func (*Store) DeletePasskey(_ context.Context, _ string, _ string, _ store.Event) error {
	panic("not ported yet")
}

func (*Store) DeleteSSOSettings(_ context.Context, _ store.Event) error { panic("not ported yet") }

func (*Store) DeleteSession(_ context.Context, _ string, _ *store.Event) error {
	panic("not ported yet")
}

func (*Store) DeleteSessions(_ context.Context, _ string, _ string, _ store.Event) (int, error) {
	panic("not ported yet")
}

func (*Store) DeviceGrant(_ context.Context, _ string) (access.DeviceGrant, error) {
	panic("not ported yet")
}

func (*Store) EnsurePasskeyHandle(_ context.Context, _ string, _ []uint8) ([]uint8, error) {
	panic("not ported yet")
}

func (*Store) MFA(_ context.Context, _ string) (access.MFA, error) { panic("not ported yet") }

func (*Store) PasskeyHandle(_ context.Context, _ string) ([]uint8, error) { panic("not ported yet") }

func (*Store) Passkeys(_ context.Context, _ string) ([]access.Passkey, error) {
	panic("not ported yet")
}

func (*Store) PutDeviceGrant(_ context.Context, _ access.DeviceGrant) error { panic("not ported yet") }

func (*Store) PutPasskeyCeremony(_ context.Context, _ access.PasskeyCeremony) error {
	panic("not ported yet")
}

func (*Store) PutSSOSettings(_ context.Context, _ access.SSOSettings, _ store.Event) error {
	panic("not ported yet")
}

func (*Store) PutSetupToken(_ context.Context, _ string, _ time.Time) error { panic("not ported yet") }

func (*Store) PutTOTP(_ context.Context, _ string, _ access.TOTPRecord, _ *store.Event) error {
	panic("not ported yet")
}

func (*Store) RecordFailure(_ context.Context, _ access.Throttle) error { panic("not ported yet") }

func (*Store) ResetMFA(_ context.Context, _ string, _ store.Event) error { panic("not ported yet") }

func (*Store) RevokeToken(_ context.Context, _ string, _ time.Time, _ store.Event) error {
	panic("not ported yet")
}

func (*Store) RotateSession(_ context.Context, _ string, _ access.Session, _ *store.Event) error {
	panic("not ported yet")
}

func (*Store) SSOSettings(_ context.Context) (access.SSOSettings, error) { panic("not ported yet") }

func (*Store) SessionByHash(_ context.Context, _ string) (access.Session, error) {
	panic("not ported yet")
}

func (*Store) SetRecoveryCodes(_ context.Context, _ string, _ []string, _ *store.Event) error {
	panic("not ported yet")
}

func (*Store) SetupToken(_ context.Context) (string, time.Time, error) { panic("not ported yet") }

func (*Store) TOTP(_ context.Context, _ string) (access.TOTPRecord, error) { panic("not ported yet") }

func (*Store) TakePasskeyCeremony(_ context.Context, _ string, _ string, _ time.Time) (access.PasskeyCeremony, error) {
	panic("not ported yet")
}

func (*Store) Throttles(_ context.Context, _ ...string) ([]access.Throttle, error) {
	panic("not ported yet")
}

func (*Store) Token(_ context.Context, _ string) (access.APIToken, error) { panic("not ported yet") }

func (*Store) TokenByHash(_ context.Context, _ string) (access.APIToken, error) {
	panic("not ported yet")
}

func (*Store) Tokens(_ context.Context, _ string) ([]access.APIToken, error) { panic("not ported yet") }

func (*Store) TouchSession(_ context.Context, _ string, _ time.Time) error { panic("not ported yet") }

func (*Store) TouchToken(_ context.Context, _ string, _ time.Time) error { panic("not ported yet") }

func (*Store) UpdateUser(_ context.Context, _ access.User, _ bool, _ store.Event) error {
	panic("not ported yet")
}

func (*Store) UsePasskey(_ context.Context, _ string, _ uint32, _ bool, _ time.Time) error {
	panic("not ported yet")
}

func (*Store) UseRecoveryCode(_ context.Context, _ string, _ string, _ time.Time) error {
	panic("not ported yet")
}

func (*Store) UseSSOFlow(_ context.Context, _ string, _ time.Time, _ time.Time) error {
	panic("not ported yet")
}

func (*Store) UseTOTPStep(_ context.Context, _ string, _ int64) error { panic("not ported yet") }

func (*Store) User(_ context.Context, _ string) (access.User, error) { panic("not ported yet") }

func (*Store) UserByLogin(_ context.Context, _ string) (access.User, error) { panic("not ported yet") }

func (*Store) UserBySSO(_ context.Context, _ string, _ string) (access.User, error) {
	panic("not ported yet")
}

func (*Store) Users(_ context.Context) ([]access.User, error) { panic("not ported yet") }
