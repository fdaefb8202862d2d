package runner

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"time"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/crypto"
	"github.com/collectorhq/collector/internal/egressconf"
)

// Config is what a runner needs.
type Config struct {
	CollectorID string
	HPKEKey     *crypto.HPKEKey
	// HPKEKeys, when set, are the keys an envelope is opened with
	// instead, tried in order: a key rotation replaces the key under a
	// running runner, and a job leased before it is sealed to the old
	// key (config.KeyRing.HPKEKeys).
	HPKEKeys    func() []*crypto.HPKEKey
	PlatformKey ed25519.PublicKey
	// PlatformKeys, when set, are the platform keys an envelope's
	// signature is checked with instead, tried in order: a rotation of
	// the platform's signing key changes them under a running runner
	// (config.PlatformKeys.Accepted).
	PlatformKeys func() []ed25519.PublicKey
	// PinPlatformKeys, when set, pins the key set a lease carries during
	// such a rotation, if a key already accepted signed it, and says
	// whether the accepted keys changed (config.PlatformKeys.Apply).
	PinPlatformKeys func(*crypto.SignedKeySet) (bool, error)
	// StateDir keeps the record of finished and in-flight jobs.
	StateDir string
	// MaxParallel bounds the jobs run at once.
	MaxParallel int
	// FreeMemory reports the host's free memory (0 = unknown).
	FreeMemory func() int64
	// DefaultNetwork is the network of jobs whose integration names none
	// ("" = the engine's default).
	DefaultNetwork string
	// PollWait is how long one next call waits (≤ api.MaxLongPoll).
	PollWait time.Duration
	// BatchRecords and BatchBytes bound one records upload. The platform
	// writes a batch in one transaction: records whose keys spread over
	// large tables (directory GUIDs) dirty a page each, and a larger batch
	// shares more of them (BenchmarkLDAPUsers: 5,000 → 20,000 records a
	// batch took the platform's CPU from 34 to 28 s for 400,000 records).
	BatchRecords int
	BatchBytes   int
	// StatsInterval is how often peak memory and CPU are sampled.
	StatsInterval time.Duration
	// StopTimeout is the grace a timed-out or cancelled job gets.
	StopTimeout time.Duration
	// RetryBackoff is the first pause after a failed platform call.
	RetryBackoff time.Duration
	// EngineWait bounds how long a job whose container has not started
	// waits for an engine that stopped answering; past it the job is
	// given back (not reported: its lease expires and it runs again). A
	// job whose container runs waits for the engine up to its time limit.
	EngineWait time.Duration
	// JobEgress is the collector's proxy, handed to the jobs whose
	// integration's manifest asks for it (network.proxy) as a second
	// secret at egressconf.JobPath; nil: the collector has none.
	JobEgress *egressconf.Job
	Now       func() time.Time
	// CrashAt, in tests, ends the process at a step as a kill -9 would:
	// "ended" (the job's container ended and was removed, before the
	// platform is told), "finished" (the platform took the report,
	// before the runner records the job finished).
	CrashAt func(step string) bool
}

// DefaultConfig returns the defaults for the optional fields.
func DefaultConfig() Config {
	return Config{
		MaxParallel:   4,
		PollWait:      api.MaxLongPoll,
		BatchRecords:  20000,
		BatchBytes:    4 << 20,
		StatsInterval: time.Second,
		StopTimeout:   10 * time.Second,
		RetryBackoff:  500 * time.Millisecond,
		EngineWait:    2 * time.Minute,
		Now:           time.Now,
	}
}

// Validate names the first bad field.
func (c Config) Validate() error {
	switch {
	case c.CollectorID == "":
		return errors.New("runner config: CollectorID is empty")
	case c.HPKEKey == nil && c.HPKEKeys == nil:
		return errors.New("runner config: HPKEKey is nil")
	case c.PlatformKeys == nil && len(c.PlatformKey) != ed25519.PublicKeySize:
		return errors.New("runner config: PlatformKey is not an Ed25519 public key")
	case c.StateDir == "":
		return errors.New("runner config: StateDir is empty")
	case c.MaxParallel < 1:
		return fmt.Errorf("runner config: MaxParallel %d: want at least 1", c.MaxParallel)
	case c.BatchRecords < 1 || c.BatchRecords > api.MaxBatchRecords:
		return fmt.Errorf("runner config: BatchRecords %d: want 1..%d", c.BatchRecords, api.MaxBatchRecords)
	case c.BatchBytes < api.MaxRecordBytes || c.BatchBytes > api.MaxBatchBytes-api.MaxRecordBytes:
		return fmt.Errorf("runner config: BatchBytes %d: want %d..%d", c.BatchBytes, api.MaxRecordBytes, api.MaxBatchBytes-api.MaxRecordBytes)
	case c.PollWait <= 0 || c.PollWait > api.MaxLongPoll:
		return fmt.Errorf("runner config: PollWait %v: want up to %v", c.PollWait, api.MaxLongPoll)
	case c.EngineWait < 0:
		return fmt.Errorf("runner config: EngineWait %v: want 0 or more", c.EngineWait)
	}
	return nil
}
