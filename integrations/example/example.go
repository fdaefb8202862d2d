// Package example is the example integration: it emits as many entities
// (and relationships between consecutive ones) as its config asks, which
// makes it the load generator of the benchmarks, proves it received its
// secret without printing it, and can be told to fail or to run long, for
// tests. It is written against the integration SDK (package integration).
package example

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"time"

	"github.com/collectorhq/collector/integration"
)

// Name is the integration's name in its logs.
const Name = "example"

// Record types the integration emits.
const (
	EntityType       = "example_entity"
	RelationshipType = "example_entity_connects_example_entity"
	ProofKey         = "example-secret-proof"
	ProofType        = "example_secret_proof"
)

// ErrRequestedFailure is the error of a run configured with fail: true.
var ErrRequestedFailure = errors.New("failing as configured (fail: true)")

// Config is the integration's config document.
type Config struct {
	// Count is the number of entities to emit.
	Count int `json:"count"`
	// Relationships asks for Count-1 relationships between consecutive entities.
	Relationships bool `json:"relationships"`
	// Fail makes the run fail after emitting some records.
	Fail bool `json:"fail"`
	// SleepSeconds makes the run last at least that long.
	SleepSeconds float64 `json:"sleep_seconds"`
	// Token is a secret; the run proves it has it with its SHA-256.
	Token integration.Secret `json:"token"`
	// Prefix starts every key, so two instances do not collide.
	Prefix string `json:"prefix"`
	// Stdout writes the records to stdout even where the runner offers
	// its records channel: the path of an integration without the SDK,
	// the baseline of the benchmarks.
	Stdout bool `json:"stdout"`
}

// Validate names the first bad field.
func (c *Config) Validate() error {
	if c.Count < 0 {
		return fmt.Errorf("%w: count must be >= 0, got %d", integration.ErrBadConfig, c.Count)
	}
	if c.SleepSeconds < 0 {
		return fmt.Errorf("%w: sleep_seconds must be >= 0, got %v", integration.ErrBadConfig, c.SleepSeconds)
	}
	return nil
}

// TokenProof is the value of the proof entity's sha256 property.
func TokenProof(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// EntityKey is the key of entity i.
func EntityKey(prefix string, i int) string { return prefix + "entity-" + strconv.Itoa(i) }

// Run is the integration's body (an integration.RunFunc).
func Run(ctx context.Context, raw []byte, out *integration.Emitter, log *slog.Logger) error {
	var cfg Config
	if err := integration.DecodeConfig(raw, &cfg); err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	log.Info("run started", "count", cfg.Count, "relationships", cfg.Relationships,
		"fail", cfg.Fail, "sleep_seconds", cfg.SleepSeconds, "token_set", !cfg.Token.IsZero())
	deadline := time.Now().Add(time.Duration(cfg.SleepSeconds * float64(time.Second)))
	if cfg.Stdout {
		out = integration.NewEmitter(os.Stdout)
		defer out.Flush()
	}
	if !cfg.Token.IsZero() {
		if err := out.Entity(cfg.Prefix+ProofKey, ProofType, "Record", integration.String("sha256", TokenProof(cfg.Token.Reveal()))); err != nil {
			return err
		}
	}
	if err := emit(ctx, &cfg, out, log); err != nil {
		return err
	}
	return sleepUntil(ctx, deadline)
}

// Validate is the integration's validate mode (an integration.ValidateFunc):
// it checks the config as a run would and, with fail: true, fails as
// the run would, with ErrRequestedFailure. It emits nothing.
func Validate(ctx context.Context, raw []byte, v *integration.Validation, log *slog.Logger) error {
	var cfg Config
	if err := integration.DecodeConfig(raw, &cfg); err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	v.Passed("config", fmt.Sprintf("count %d, token set: %v", cfg.Count, !cfg.Token.IsZero()))
	if cfg.Fail {
		return ErrRequestedFailure
	}
	return nil
}

// emit writes the entities and relationships; with Fail it stops half way.
func emit(ctx context.Context, cfg *Config, out *integration.Emitter, log *slog.Logger) error {
	failAt := -1
	if cfg.Fail {
		failAt = cfg.Count / 2
	}
	prev := ""
	for i := range cfg.Count {
		if i == failAt {
			break
		}
		if i&0xffff == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		key := EntityKey(cfg.Prefix, i)
		if err := out.Entity(key, EntityType, "Record",
			integration.Int("index", int64(i)), integration.String("name", "entity "+strconv.Itoa(i))); err != nil {
			return err
		}
		if cfg.Relationships && prev != "" {
			if err := out.Relationship(prev+"-connects-"+key, RelationshipType, "CONNECTS", prev, key); err != nil {
				return err
			}
		}
		prev = key
	}
	if cfg.Fail {
		log.Error("example integration failing on request", "emitted", out.Count())
		return ErrRequestedFailure
	}
	return nil
}

func sleepUntil(ctx context.Context, deadline time.Time) error {
	d := time.Until(deadline)
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
