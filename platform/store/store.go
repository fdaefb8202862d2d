package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Sentinel errors every backend returns, so that callers map them to API
// errors without knowing the backend.
var (
	ErrNotFound      = errors.New("not found")
	ErrConflict      = errors.New("conflict")
	ErrTokenInvalid  = errors.New("enrollment token invalid")
	ErrTokenExpired  = errors.New("enrollment token expired")
	ErrTokenUsed     = errors.New("enrollment token already used")
	ErrTokenRevoked  = errors.New("enrollment token replaced by a newer one")
	ErrReplay        = errors.New("assertion jti already used")
	ErrNotEnrolled   = errors.New("collector not enrolled")
	ErrAccessInvalid = errors.New("access token invalid or expired")
)

// AssignedError refuses to delete a collector that still has integrations.
type AssignedError struct {
	CollectorID  string
	Integrations []IntegrationRef
}

// IntegrationRef names an integration in an error.
type IntegrationRef struct{ ID, Name string }

func (e *AssignedError) Error() string {
	names := make([]string, len(e.Integrations))
	for i, in := range e.Integrations {
		names[i] = fmt.Sprintf("%s (%s)", in.Name, in.ID)
	}
	return fmt.Sprintf("collector %s still has integrations assigned: %s; assign them to another collector or delete them first",
		e.CollectorID, strings.Join(names, ", "))
}

// Is makes errors.Is(err, ErrConflict) true for an AssignedError.
func (e *AssignedError) Is(target error) bool { return target == ErrConflict }

// Collector is a collector as stored. Keys are nil until it enrolls.
type Collector struct {
	ID          string
	Name        string
	Pool        string
	CreatedAt   time.Time
	EnrolledAt  time.Time // zero until enrolled
	IdentityKey []byte    // Ed25519 public key
	HPKEKey     []byte    // MLKEM768X25519 public key
	LastSeenAt  time.Time // zero until the first heartbeat
	LastBeat    *Heartbeat
}

// EnrollmentToken is a one-time token, stored only as its hash.
type EnrollmentToken struct {
	Hash        string
	CollectorID string
	CreatedAt   time.Time
	ExpiresAt   time.Time
}

// Enrollment is what a collector sends to enroll, with the token's hash.
type Enrollment struct {
	CollectorID string
	TokenHash   string
	IdentityKey []byte
	HPKEKey     []byte
	Now         time.Time
}

// AccessToken is a short-lived collector credential, stored only as its hash.
type AccessToken struct {
	Hash        string
	CollectorID string
	ExpiresAt   time.Time
}

// Heartbeat is one heartbeat as stored. Backends may keep it as JSON: the
// tags are part of the stored format.
type Heartbeat struct {
	At          time.Time `json:"at"`
	Version     string    `json:"version"`
	EngineKind  string    `json:"engine_kind"`
	EngineVer   string    `json:"engine_version"`
	CPUs        int       `json:"cpus"`
	MemTotal    int64     `json:"memory_total_bytes"`
	MemFree     int64     `json:"memory_free_bytes"`
	Running     int       `json:"running_jobs"`
	RunnerState string    `json:"runner_state"`
}

// Integration is an integration instance. Config is sealed (encrypted) by the
// caller; the store never sees it in clear.
type Integration struct {
	ID           string
	Name         string
	Image        string
	SealedConfig []byte
	SecretFields []string
	Interval     time.Duration
	CollectorID  string // "" when unassigned
	Network      string
	CreatedAt    time.Time
	UpdatedAt    time.Time
}

// StatusCounts counts collectors by status.
type StatusCounts struct{ Pending, Active, Offline int }

// Store is what the platform needs from its storage. Every method that writes
// more than one row does so in one transaction, and every administrative act
// appends its audit event in that same transaction.
type Store interface {
	// Setting and PutSetting keep small platform values (the admin token hash).
	Setting(ctx context.Context, key string) (string, error)
	PutSetting(ctx context.Context, key, value string) error

	CreateCollector(ctx context.Context, c Collector, tok EnrollmentToken, ev Event) error
	Collector(ctx context.Context, id string) (Collector, error)
	Collectors(ctx context.Context) ([]Collector, error)
	CountCollectors(ctx context.Context, activeSince time.Time) (StatusCounts, error)
	// DeleteCollector removes the collector with its tokens, keys and
	// heartbeats, or returns an *AssignedError.
	DeleteCollector(ctx context.Context, id string, ev Event) error
	// ReplaceEnrollmentToken revokes the collector's live tokens and adds tok.
	ReplaceEnrollmentToken(ctx context.Context, tok EnrollmentToken, ev Event) error
	// Enroll burns the token and records the keys, revoking earlier access
	// tokens; on any error nothing changes.
	Enroll(ctx context.Context, e Enrollment, ev Event) error

	// IssueAccessToken records the assertion's jti (ErrReplay if seen) and the
	// new access token, in one transaction.
	IssueAccessToken(ctx context.Context, jti string, jtiExpires time.Time, tok AccessToken, now time.Time) error
	// AccessTokenCollector returns the collector a live access token belongs to.
	AccessTokenCollector(ctx context.Context, hash string, now time.Time) (string, error)
	// RecordHeartbeat updates last-seen and keeps at most keep heartbeats.
	RecordHeartbeat(ctx context.Context, collectorID string, hb Heartbeat, keep int) error
	Heartbeats(ctx context.Context, collectorID string, limit int) ([]Heartbeat, error)

	CreateIntegration(ctx context.Context, in Integration, ev Event) error
	Integration(ctx context.Context, id string) (Integration, error)
	Integrations(ctx context.Context) ([]Integration, error)
	// UpdateIntegration replaces every field but ID and CreatedAt.
	UpdateIntegration(ctx context.Context, in Integration, ev Event) error
	DeleteIntegration(ctx context.Context, id string, ev Event) error

	// AuditEntries returns entries with seq > after, oldest first.
	AuditEntries(ctx context.Context, after int64, limit int) ([]AuditEntry, error)
	// VerifyAudit walks the whole chain.
	VerifyAudit(ctx context.Context) (VerifyResult, error)
	// AppendAudit records an event on its own (for acts with no other write).
	AppendAudit(ctx context.Context, ev Event) error

	// Prune drops expired tokens and jtis.
	Prune(ctx context.Context, now time.Time) error
	Close() error
}
