package api

import "time"

// Paths of the account endpoints (docs/access.md).
const (
	PathSetup         = "/api/v1/setup"
	PathLogin         = "/api/v1/auth/login"
	PathLogout        = "/api/v1/auth/logout"
	PathLogoutAll     = "/api/v1/auth/logout-all"
	PathMFATOTP       = "/api/v1/auth/mfa/totp"
	PathMFARecovery   = "/api/v1/auth/mfa/recovery"
	PathMe            = "/api/v1/me"
	PathTOTPBegin     = "/api/v1/me/totp/begin"
	PathTOTPConfirm   = "/api/v1/me/totp/confirm"
	PathRecoveryCodes = "/api/v1/me/recovery-codes"
	PathMyTokens      = "/api/v1/me/tokens"
	PathUsers         = "/api/v1/users"
	PathTokens        = "/api/v1/tokens"
	PathThrottles     = "/api/v1/access/throttles"
	PathDeviceStart   = "/api/v1/device/start"
	PathDeviceToken   = "/api/v1/device/token"
	PathDeviceApprove = "/api/v1/device/approve"
)

// SetupRequest creates the first admin with the one-time setup token.
type SetupRequest struct {
	Token       string `json:"token"`
	Login       string `json:"login"`
	DisplayName string `json:"display_name"`
	Password    string `json:"password"`
}

// LoginRequest signs in with a login and password.
type LoginRequest struct {
	Login    string `json:"login"`
	Password string `json:"password"`
}

// SignInResponse says where a sign-in stands: "full", or "mfa" (verify
// the second factor next), or "enroll" (enroll one next).
type SignInResponse struct {
	Stage string `json:"stage"`
	User  User   `json:"user"`
}

// User is a user as the API shows it (never a password hash).
type User struct {
	ID          string    `json:"id"`
	Login       string    `json:"login"`
	DisplayName string    `json:"display_name"`
	Role        string    `json:"role"`
	Disabled    bool      `json:"disabled"`
	SSO         bool      `json:"sso,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
	MFA         *MFAState `json:"mfa,omitempty"`
}

// MFAState lists a user's second factors.
type MFAState struct {
	TOTP          bool `json:"totp"`
	Passkeys      int  `json:"passkeys"`
	RecoveryCodes int  `json:"recovery_codes"`
}

// UserList is the list response.
type UserList struct {
	Users []User `json:"users"`
}

// Me is the caller.
type Me struct {
	User             User       `json:"user"`
	Role             string     `json:"role"` // effective (a token's may be lower)
	Stage            string     `json:"stage,omitempty"`
	SessionExpiresAt *time.Time `json:"session_expires_at,omitempty"`
	Token            *APIToken  `json:"token,omitempty"`
}

// CreateUserRequest creates a user (admin).
type CreateUserRequest struct {
	Login       string `json:"login"`
	DisplayName string `json:"display_name"`
	Password    string `json:"password,omitempty"`
	Role        string `json:"role"`
}

// RoleRequest changes a user's role.
type RoleRequest struct {
	Role string `json:"role"`
}

// TOTPEnrollment is a new TOTP seed for an authenticator app.
type TOTPEnrollment struct {
	Secret string `json:"secret"`
	URL    string `json:"otpauth_url"`
}

// RecoveryCodes are shown once.
type RecoveryCodes struct {
	Codes []string `json:"recovery_codes"`
}

// APIToken is a token as listed (never its value).
type APIToken struct {
	ID         string     `json:"id"`
	UserID     string     `json:"user_id"`
	Name       string     `json:"name"`
	Role       string     `json:"role"`
	CreatedAt  time.Time  `json:"created_at"`
	ExpiresAt  time.Time  `json:"expires_at"`
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
	RevokedAt  *time.Time `json:"revoked_at,omitempty"`
}

// APITokenList is the list response.
type APITokenList struct {
	Tokens []APIToken `json:"tokens"`
}

// CreateTokenRequest asks for an API token.
type CreateTokenRequest struct {
	Name       string `json:"name"`
	Role       string `json:"role,omitempty"`
	TTLSeconds int64  `json:"ttl_seconds,omitempty"`
}

// CreatedToken is a new token with its value, shown once.
type CreatedToken struct {
	APIToken
	Token string `json:"token"`
}

// Throttle is a sign-in failure counter.
type Throttle struct {
	Key          string     `json:"key"`
	Failures     int        `json:"failures"`
	LastFailure  time.Time  `json:"last_failure"`
	BlockedUntil *time.Time `json:"blocked_until,omitempty"`
}

// ThrottleList is the list response.
type ThrottleList struct {
	Throttles []Throttle `json:"throttles"`
}

// DeviceStart answers `platform login`'s first call.
type DeviceStart struct {
	DeviceCode      string    `json:"device_code"`
	UserCode        string    `json:"user_code"`
	VerificationURL string    `json:"verification_url"`
	IntervalSec     int       `json:"interval_sec"`
	ExpiresAt       time.Time `json:"expires_at"`
}

// DeviceTokenRequest polls for the device's token.
type DeviceTokenRequest struct {
	DeviceCode string `json:"device_code"`
}

// DeviceApproveRequest approves a device sign-in from the browser.
type DeviceApproveRequest struct {
	UserCode string `json:"user_code"`
}

// CodeAuthorizationPending: the device sign-in is not approved yet (428).
const CodeAuthorizationPending = "authorization_pending"
