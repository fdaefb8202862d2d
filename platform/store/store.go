package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/collectorhq/collector/queue"
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
	// ErrStaleKey: the assertion was verified with a key the collector no
	// longer has (it re-enrolled meanwhile).
	ErrStaleKey = errors.New("collector identity key changed")
	// ErrInvalid: a filter or cursor is wrong.
	ErrInvalid = errors.New("invalid request")
)

// CollectorFilter selects a page of collectors, by name.
type CollectorFilter struct {
	// Query matches a part of the name, or the whole ID.
	Query  string
	Pool   string
	Status string // pending, active, degraded, offline; "" for all
	// ActiveSince is the last heartbeat an active collector has (now less
	// three intervals).
	ActiveSince time.Time
	After       string // the cursor of the previous page
	Limit       int
}

// IntegrationFilter selects a page of integrations, by name.
type IntegrationFilter struct {
	Query       string // a part of the name or image, or the whole ID
	CollectorID string
	Pool        string
	After       string
	Limit       int
}

// AuditFilter selects a page of the audit log, newest first.
type AuditFilter struct {
	Actor, Action, Target string
	Since, Until          time.Time
	Before                string // the cursor of the previous page
	Limit                 int
}

// Rollup is a collector's heartbeats over 5 minutes.
type Rollup struct {
	At         time.Time
	Beats      int
	MemTotal   int64
	MemFreeMin int64
	CPUs       int
	RunningMax int
}

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
	// Tampered is set (and the keys cleared) when the keys' integrity MAC
	// does not verify: the row was edited outside the platform. Collector
	// returns ErrIntegrity instead; lists show the row flagged.
	Tampered bool
	// PoolTampered is set (and Pool cleared) when the pool membership's
	// integrity MAC does not verify: the row was moved into its pool
	// outside the platform. The collector is then in no pool, so it is
	// sealed none of a pool's jobs; Collector still returns it (its keys
	// are not in doubt), and setting its pool again repairs it.
	PoolTampered bool
	// DesiredImage is the image (by digest) an admin asked it to run, ""
	// when none; DesiredVersion is that image's version label.
	DesiredImage   string
	DesiredVersion string
}

// UpgradeTarget is one collector, a pool's collectors, or all.
type UpgradeTarget struct {
	CollectorID string
	Pool        string
	All         bool
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
	// KeyFingerprint is the fingerprint of the identity key the assertion
	// was verified with: the token is issued only if that is still the
	// collector's key, and dies with it (a re-enrollment revokes at once).
	KeyFingerprint string
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
	EngineError string    `json:"engine_error,omitempty"`
	// What the collector says of its runner's health and its container
	// storage, stored as it came (api.Heartbeat).
	RunnerHealth string `json:"runner_health,omitempty"`
	StorageTotal int64  `json:"storage_total_bytes,omitempty"`
	StorageUsed  int64  `json:"storage_used_bytes,omitempty"`
	// Image is the digest reference the daemon runs; Upgrade* where its
	// last upgrade stands (api.UpgradeStatus).
	Image         string   `json:"image,omitempty"`
	UpgradeState  string   `json:"upgrade_state,omitempty"`
	UpgradeImage  string   `json:"upgrade_image,omitempty"`
	UpgradeReason string   `json:"upgrade_reason,omitempty"`
	UpgradeSteps  []string `json:"upgrade_steps,omitempty"`
	// ClockOffsetMs is the platform's clock minus the host's, as the
	// collector measured it.
	ClockOffsetMs int64 `json:"clock_offset_ms,omitempty"`
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
	CollectorID  string // "" when unassigned or on a pool
	// Pool is the pool whose active members may run it ("" when it
	// targets one collector or none).
	Pool    string
	Network string
	// ConfigSchema is the JSON Schema the image declares for its config
	// (nil: none; the console shows a JSON editor).
	ConfigSchema []byte
	CreatedAt    time.Time
	UpdatedAt    time.Time
}

// StatusCounts counts collectors by status. Degraded ones heartbeat but
// reported an engine error or a runner that is not running.
type StatusCounts struct{ Pending, Active, Degraded, Offline int }

// Store is what the platform needs from its storage. Every method that writes
// more than one row does so in one transaction, and every administrative act
// appends its audit event in that same transaction. Acts on an integration
// or a collector that touch its jobs (assignment, deletion, "run now",
// cancel) change the job queue in that same transaction too: a backend
// keeps the queue in its own database.
type Store interface {
	// Setting and PutSetting keep small platform values (the metrics
	// token's hash, the SSO settings), each with an integrity MAC: Setting returns ErrIntegrity for a
	// value the platform did not write. PutSetting audits ev, if given, in
	// the same transaction.
	Setting(ctx context.Context, key string) (string, error)
	PutSetting(ctx context.Context, key, value string, ev *Event) error

	// Rekeyer moves what the data key protects to the ring's current key.
	Rekeyer

	CreateCollector(ctx context.Context, c Collector, tok EnrollmentToken, ev Event) error
	// Collector returns one collector; ErrIntegrity if its keys' MAC fails.
	Collector(ctx context.Context, id string) (Collector, error)
	Collectors(ctx context.Context) ([]Collector, error)
	CountCollectors(ctx context.Context, activeSince time.Time) (StatusCounts, error)
	// CollectorsPage returns a page of collectors and the next cursor.
	CollectorsPage(ctx context.Context, f CollectorFilter) ([]Collector, string, error)
	// Rollups returns a collector's 5-minute heartbeat rollups since since.
	Rollups(ctx context.Context, collectorID string, since time.Time) ([]Rollup, error)
	// DeleteCollector removes the collector with its tokens, keys and
	// heartbeats, or returns an *AssignedError. The jobs queued for it are
	// canceled; a job in flight on it goes where its integration moved, or
	// back to its pool, and is canceled when it has nowhere else to go
	// (never requeued onto the deleted collector). It reports how many
	// jobs it canceled.
	DeleteCollector(ctx context.Context, id string, ev Event) (int, error)
	// SetCollectorPool moves a collector into pool ("" for none). The jobs
	// it runs finish; it leases from its new pool from then on.
	SetCollectorPool(ctx context.Context, id, pool string, ev Event) error
	// PoolMembers returns the collectors of pool, by name (at most limit).
	PoolMembers(ctx context.Context, pool string, limit int) ([]Collector, error)
	// SetDesiredImage asks the target's collectors to run image, audits
	// ev, and returns their IDs (ErrNotFound when there is none).
	SetDesiredImage(ctx context.Context, t UpgradeTarget, image, version string, ev Event) ([]string, error)
	// ClearDesiredImage stops asking a collector for image (if it still
	// is) and audits ev; it reports whether it was still asked.
	ClearDesiredImage(ctx context.Context, id, image string, ev Event) (bool, error)
	// ReplaceEnrollmentToken revokes the collector's live tokens and adds tok.
	ReplaceEnrollmentToken(ctx context.Context, tok EnrollmentToken, ev Event) error
	// Enroll burns the token and records the keys, revoking earlier access
	// tokens; on any error nothing changes.
	Enroll(ctx context.Context, e Enrollment, ev Event) error

	// RotateCollectorKeys replaces an enrolled collector's public keys if
	// r.OldIdentityKey is still its identity key (else ErrStaleKey), keeps
	// the old identity key as its previous key until r.PreviousUntil, and
	// audits ev, in one transaction.
	RotateCollectorKeys(ctx context.Context, r KeyRotation, ev Event) error
	// PreviousCollectorKey returns the identity key the collector's last
	// rotation replaced (ErrNotFound when there is none, ErrIntegrity when
	// its MAC fails); the caller checks PreviousKey.LiveFor.
	PreviousCollectorKey(ctx context.Context, id string) (PreviousKey, error)

	// IssueAccessToken records the assertion's jti (ErrReplay if seen) and the
	// new access token, in one transaction, if tok.KeyFingerprint is still
	// the collector's identity key, or its previous key while that is
	// live (else ErrStaleKey).
	IssueAccessToken(ctx context.Context, jti string, jtiExpires time.Time, tok AccessToken, now time.Time) error
	// AccessTokenCollector returns the collector a live access token belongs
	// to, if it was issued for the collector's current key (or its
	// previous key while that is live).
	AccessTokenCollector(ctx context.Context, hash string, now time.Time) (string, error)
	// RecordHeartbeat updates last-seen and keeps at most keep heartbeats.
	RecordHeartbeat(ctx context.Context, collectorID string, hb Heartbeat, keep int) error
	Heartbeats(ctx context.Context, collectorID string, limit int) ([]Heartbeat, error)

	CreateIntegration(ctx context.Context, in Integration, ev Event) error
	Integration(ctx context.Context, id string) (Integration, error)
	Integrations(ctx context.Context) ([]Integration, error)
	// IntegrationsPage returns a page of integrations and the next cursor.
	IntegrationsPage(ctx context.Context, f IntegrationFilter) ([]Integration, string, error)
	// UpdateIntegration replaces every field but ID, CreatedAt and
	// CollectorID (see AssignIntegration).
	UpdateIntegration(ctx context.Context, in Integration, ev Event) error
	// AssignIntegration replaces every field but ID and CreatedAt, moving
	// the integration to in.CollectorID with its queued job; a leased or
	// running job finishes where it is, or goes to the new target if its
	// lease ends first. It reports the queued jobs moved.
	AssignIntegration(ctx context.Context, in Integration, ev Event) (int, error)
	// DeleteIntegration deletes one integration and cancels its active jobs
	// (their runners' next calls find their leases lost); it reports how
	// many. With purge, its entities, relationships, jobs and job logs are
	// queued for deletion in the same transaction (the record store's
	// Purge deletes them in the background).
	DeleteIntegration(ctx context.Context, id string, purge bool, ev Event) (int, error)

	// EnqueueJob is queue.Queue's Enqueue as an administrative act: ev(job)
	// is appended to the audit log in the same transaction when a job is
	// added (not when the integration already had one).
	EnqueueJob(ctx context.Context, req queue.EnqueueRequest, ev func(*queue.Job) Event) (*queue.Job, bool, error)
	// CancelJob cancels an active job and audits ev(job), in one transaction.
	CancelJob(ctx context.Context, jobID string, ev func(*queue.Job) Event) (*queue.Job, error)

	// AuditEntries returns entries with seq > after, oldest first.
	AuditEntries(ctx context.Context, after int64, limit int) ([]AuditEntry, error)
	// AuditPage returns a page of the audit log, newest first, filtered.
	AuditPage(ctx context.Context, f AuditFilter) ([]AuditEntry, string, error)
	// VerifyAudit walks the whole chain, checking hashes, MACs and that the
	// chain still holds every checkpoint in expect.
	VerifyAudit(ctx context.Context, expect ...Checkpoint) (VerifyResult, error)
	// AuditHead returns the newest entry's seq and hash (zero when empty).
	AuditHead(ctx context.Context) (Checkpoint, error)
	// AppendAudit records an event on its own (for acts with no other write).
	AppendAudit(ctx context.Context, ev Event) error

	// Prune drops expired tokens and jtis.
	Prune(ctx context.Context, now time.Time) error
	Close() error
}
