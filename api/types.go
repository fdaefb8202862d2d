package api

import (
	"encoding/json"
	"time"
)

// Paths of the endpoints.
const (
	PathCollectors         = "/api/v1/collectors"
	PathIntegrations       = "/api/v1/integrations"
	PathAudit              = "/api/v1/audit"
	PathAuditVerify        = "/api/v1/audit/verify"
	PathEnroll             = "/api/v1/collector/enroll"
	PathToken              = "/api/v1/collector/token"
	PathHeartbeat          = "/api/v1/collector/heartbeat"
	PathMetrics            = "/metrics"
	PathHealthz            = "/healthz"
	MaxRequestBodyBytes    = 1 << 20
	SecretMask             = "********"
	CollectorStatusPending = "pending"
	CollectorStatusActive  = "active"
	CollectorStatusOffline = "offline"
	// CollectorStatusDegraded: heartbeats arrive, but the collector cannot
	// run jobs (its engine is unreachable, or its runner is not running);
	// Collector.StatusReason says why.
	CollectorStatusDegraded = "degraded"
)

// ErrorBody is the body of every error response: {"error": {...}}.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail is a machine-readable code and a message for people.
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Error codes the server returns (see docs/api.md).
const (
	CodeInvalidRequest   = "invalid_request"        // 400: malformed or invalid body or parameters
	CodeTooLarge         = "request_too_large"      // 413
	CodeUnauthorized     = "unauthorized"           // 401: missing or wrong credentials
	CodeInvalidToken     = "invalid_token"          // 401: unknown enrollment token, or not this collector's
	CodeTokenExpired     = "token_expired"          // 401
	CodeTokenRevoked     = "token_revoked"          // 401: replaced by a newer token
	CodeTokenUsed        = "token_used"             // 409: enrollment token already used
	CodeInvalidAssert    = "invalid_assertion"      // 401
	CodeNotFound         = "not_found"              // 404
	CodeConflict         = "conflict"               // 409
	CodeAssigned         = "integrations_assigned"  // 409
	CodeMethodNotAllowed = "method_not_allowed"     // 405
	CodeUnsupportedMedia = "unsupported_media_type" // 415
	CodeInternal         = "internal"               // 500
	CodeLeaseLost        = "lease_lost"             // 409: the job's lease is not the caller's any more
	CodeUnavailable      = "unavailable"            // 503: retry later
	CodeBusy             = "busy"                   // 429: too many uploads in flight; retry with backoff
	CodeIntegrity        = "integrity"              // 500: a stored record failed its integrity check
	CodeStorageFull      = "storage_full"           // 503: the platform's disk is full; retry after Retry-After
	CodeNoImagePolicy    = "no_image_policy"        // 503: enrollment refused before the token is used: the platform has no image policy
	CodeForbidden        = "forbidden"              // 403: signed in, but the role does not allow it
	CodeStepUp           = "step_up_required"       // 403: verify the second factor again (destructive act)
	CodeMFARequired      = "mfa_required"           // 401: the session waits for its second factor
	CodeBadCredentials   = "bad_credentials"        // 401: wrong login or password (never says which)
	CodeSecondFactor     = "second_factor_refused"  // 401: wrong, replayed or unknown code or passkey
	CodeThrottled        = "throttled"              // 429: too many failed sign-ins; Retry-After says when
	CodeImageRefused     = "image_refused"          // 400: the integration's image fails the signature policy or is not in its registry
	CodeImageUnchecked   = "image_unchecked"        // 502: strict: the image could not be checked now (its registry did not answer)
	CodeRequestTimeout   = "request_timeout"        // 408: the body did not arrive in time; retry (smaller)
)

// CreateCollectorRequest asks for a new collector.
type CreateCollectorRequest struct {
	Name string `json:"name"`
	Pool string `json:"pool,omitempty"`
}

// Collector is a collector as the admin API shows it.
type Collector struct {
	ID                     string     `json:"id"`
	Name                   string     `json:"name"`
	Pool                   string     `json:"pool,omitempty"`
	Status                 string     `json:"status"`
	StatusReason           string     `json:"status_reason,omitempty"`
	CreatedAt              time.Time  `json:"created_at"`
	EnrolledAt             *time.Time `json:"enrolled_at,omitempty"`
	LastHeartbeatAt        *time.Time `json:"last_heartbeat_at,omitempty"`
	LastHeartbeat          *Heartbeat `json:"last_heartbeat,omitempty"`
	IdentityKeyFingerprint string     `json:"identity_key_fingerprint,omitempty"`
	HPKEKeyFingerprint     string     `json:"hpke_key_fingerprint,omitempty"`
	// DesiredImage is the image an admin asked it to run (by digest),
	// until it runs it or its upgrade fails.
	DesiredImage   string `json:"desired_image,omitempty"`
	DesiredVersion string `json:"desired_version,omitempty"`
}

// InstallCommands are ready-to-paste installer command lines.
type InstallCommands struct {
	Podman string `json:"podman"`
	Docker string `json:"docker"`
}

// EnrollmentGrant is a new collector's (or a new token's) enrollment token.
// The token is not in the install commands: the installer reads it on stdin.
type EnrollmentGrant struct {
	Collector       Collector       `json:"collector"`
	EnrollmentToken string          `json:"enrollment_token"`
	ExpiresAt       time.Time       `json:"expires_at"`
	CAPin           string          `json:"ca_pin,omitempty"`
	InstallCommands InstallCommands `json:"install_commands"`
}

// CollectorList is the list response.
type CollectorList struct {
	Collectors []Collector `json:"collectors"`
	// Next is the cursor of the next page (?after=), "" on the last.
	Next string `json:"next,omitempty"`
}

// HeartbeatList is a collector's recent heartbeats, newest first.
type HeartbeatList struct {
	Heartbeats []Heartbeat `json:"heartbeats"`
}

// EnrollRequest is what a collector sends to enroll.
type EnrollRequest struct {
	CollectorID       string `json:"collector_id"`
	Token             string `json:"token"`
	IdentityPublicKey []byte `json:"identity_public_key"` // base64 (std), 32-byte Ed25519
	HPKEPublicKey     []byte `json:"hpke_public_key"`     // base64 (std), MLKEM768X25519
}

// EnrollResponse tells the collector what to pin and how often to beat.
type EnrollResponse struct {
	CollectorID          string `json:"collector_id"`
	PlatformSigningKey   []byte `json:"platform_signing_key"` // base64, Ed25519 public key
	HeartbeatIntervalSec int    `json:"heartbeat_interval_sec"`
	Audience             string `json:"audience"`
	// ImagePolicy is the containers/image policy.json (sigstoreSigned
	// requirements) every image the collector runs must pass.
	ImagePolicy json.RawMessage `json:"image_policy,omitempty"`
}

// TokenRequest exchanges a signed assertion for an access token.
type TokenRequest struct {
	Assertion string `json:"assertion"`
}

// TokenResponse is a short-lived access token scoped to one collector.
type TokenResponse struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int    `json:"expires_in"` // seconds
}

// Heartbeat is what a collector reports every interval.
type Heartbeat struct {
	At          *time.Time `json:"at,omitempty"` // set by the server; ignored on input
	Version     string     `json:"version"`
	Engine      Engine     `json:"engine"`
	Capacity    Capacity   `json:"capacity"`
	RunningJobs int        `json:"running_jobs"`
	RunnerState string     `json:"runner_state"`
	// EngineError is empty while the collector reaches its container
	// engine, else why it cannot (at most 512 bytes); the platform then
	// shows the collector degraded.
	EngineError string `json:"engine_error,omitempty"`
	// RunnerHealth is the runner's health check result (starting,
	// healthy, unhealthy; empty when it has none or the engine did not
	// say).
	RunnerHealth string `json:"runner_health,omitempty"`
	// Storage is the disk use of the engine's container storage, when the
	// engine reports it (Podman does; Docker does not).
	Storage *StorageUse `json:"storage,omitempty"`
	// Image is the digest reference the daemon runs.
	Image string `json:"image,omitempty"`
	// Upgrade is where its last upgrade stands, if it had one.
	Upgrade *UpgradeStatus `json:"upgrade,omitempty"`
	// ClockOffsetMs is the platform's clock minus the collector host's,
	// as the collector measures it from the platform's answers (to about
	// a second). The collector works in platform time; a large offset is
	// the host's time sync to fix.
	ClockOffsetMs int64 `json:"clock_offset_ms,omitempty"`
}

// StorageUse is the file system holding a collector's container storage.
type StorageUse struct {
	TotalBytes int64 `json:"total_bytes"`
	UsedBytes  int64 `json:"used_bytes"`
}

// Runner states a heartbeat reports. A collector whose runner is in any
// other state is degraded.
const (
	RunnerRunning   = "running"
	RunnerRestarted = "restarted" // the daemon just brought it back
)

// Engine names the container engine of a collector.
type Engine struct {
	Kind    string `json:"kind"`
	Version string `json:"version"`
}

// Capacity is what the collector's host has.
type Capacity struct {
	CPUs             int   `json:"cpus"`
	MemoryTotalBytes int64 `json:"memory_total_bytes"`
	MemoryFreeBytes  int64 `json:"memory_free_bytes"`
}

// IntegrationRequest creates an integration.
type IntegrationRequest struct {
	Name         string          `json:"name"`
	Image        string          `json:"image"`
	Config       json.RawMessage `json:"config"`
	SecretFields []string        `json:"secret_fields,omitempty"`
	IntervalSec  int             `json:"interval_sec"`
	CollectorID  string          `json:"collector_id,omitempty"`
	// Pool, instead of CollectorID: any active member of the pool may run it.
	Pool    string `json:"pool,omitempty"`
	Network string `json:"network,omitempty"`
	// Strict refuses the integration when its image cannot be checked now
	// (the registry does not answer, or has no such image): without it
	// the integration is saved with a warning, and the collector verifies
	// the image before each run anyway. An image the signature policy
	// refuses is refused either way.
	Strict bool `json:"strict,omitempty"`
}

// IntegrationUpdate changes the fields it carries and leaves the rest. In
// Config, a secret field whose value is SecretMask keeps its stored value,
// so a masked config read back can be edited and sent again.
type IntegrationUpdate struct {
	Name         *string         `json:"name,omitempty"`
	Image        *string         `json:"image,omitempty"`
	Config       json.RawMessage `json:"config,omitempty"`
	SecretFields *[]string       `json:"secret_fields,omitempty"`
	IntervalSec  *int            `json:"interval_sec,omitempty"`
	Network      *string         `json:"network,omitempty"`
	// Strict: as IntegrationRequest's, for a new image.
	Strict bool `json:"strict,omitempty"`
}

// AssignRequest moves an integration to another collector.
// AssignRequest moves an integration to one collector or to one pool.
type AssignRequest struct {
	CollectorID string `json:"collector_id,omitempty"`
	Pool        string `json:"pool,omitempty"`
}

// SetPoolRequest moves a collector into a pool ("" for none).
type SetPoolRequest struct {
	Pool string `json:"pool"`
}

// Integration is an integration as the admin API shows it: secret config
// values are replaced by SecretMask.
type Integration struct {
	ID           string          `json:"id"`
	Name         string          `json:"name"`
	Image        string          `json:"image"`
	Config       json.RawMessage `json:"config"`
	SecretFields []string        `json:"secret_fields"`
	IntervalSec  int             `json:"interval_sec"`
	CollectorID  string          `json:"collector_id,omitempty"`
	Pool         string          `json:"pool,omitempty"`
	Network      string          `json:"network,omitempty"`
	// ConfigSchema is the JSON Schema the image declares for its config
	// (its label ConfigSchemaLabel), when it declares one.
	ConfigSchema json.RawMessage `json:"config_schema,omitempty"`
	CreatedAt    time.Time       `json:"created_at"`
	UpdatedAt    time.Time       `json:"updated_at"`
	// Warnings, in the answer to a create or an update, say what could
	// not be checked (an image whose registry did not answer).
	Warnings []string `json:"warnings,omitempty"`
}

// ConfigSchemaLabel is the image label in which an integration declares
// the JSON Schema of its config (docs/integration-contract.md).
const ConfigSchemaLabel = "io.collectorhq.integration.config-schema"

// IntegrationList is the list response.
type IntegrationList struct {
	Integrations []Integration `json:"integrations"`
	// Next is the cursor of the next page (?after=), "" on the last.
	Next string `json:"next,omitempty"`
}

// AuditEntry is one hash-chained audit log entry.
type AuditEntry struct {
	Seq      int64           `json:"seq"`
	Time     time.Time       `json:"time"`
	Actor    string          `json:"actor"`
	Action   string          `json:"action"`
	Target   string          `json:"target"`
	Details  json.RawMessage `json:"details"`
	PrevHash string          `json:"prev_hash"`
	Hash     string          `json:"hash"`
}

// AuditList is a page of the audit log; pass NextAfter as ?after= for more.
type AuditList struct {
	Entries   []AuditEntry `json:"entries"`
	NextAfter int64        `json:"next_after,omitempty"`
}

// AuditVerification is the verdict on the whole chain.
type AuditVerification struct {
	OK      bool   `json:"ok"`
	Entries int64  `json:"entries"`
	BadSeq  int64  `json:"bad_seq,omitempty"`
	Reason  string `json:"reason,omitempty"`
	Head    string `json:"head,omitempty"`
	// HeadSeq is the newest entry's seq; save "HeadSeq:Head" and pass it
	// to a later verification (?expect=) to detect deleted newest entries.
	HeadSeq int64 `json:"head_seq,omitempty"`
	// Checkpoint is the head the platform saved outside the database, that
	// this verification checked the chain against.
	Checkpoint string `json:"checkpoint,omitempty"`
}
