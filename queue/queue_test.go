package queue_test

import (
	"errors"
	"testing"
	"time"

	"github.com/collectorhq/collector/queue"
)

func TestDefaultConfigIsValid(t *testing.T) {
	cfg := queue.DefaultConfig()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("DefaultConfig().Validate() = %v", err)
	}
	if cfg.MaxAttempts != 3 || cfg.LeaseTTL != 60*time.Second || cfg.DefaultPeakMemoryBytes != 256<<20 {
		t.Errorf("DefaultConfig() = %+v, want 3 attempts, 60s lease, 256 MiB", cfg)
	}
}

func TestValidateNamesTheField(t *testing.T) {
	cases := []struct {
		field string
		edit  func(*queue.Config)
	}{
		{"MaxAttempts", func(c *queue.Config) { c.MaxAttempts = 0 }},
		{"LeaseTTL", func(c *queue.Config) { c.LeaseTTL = -time.Second }},
		{"DefaultPeakMemoryBytes", func(c *queue.Config) { c.DefaultPeakMemoryBytes = -1 }},
		{"PeakSamples", func(c *queue.Config) { c.PeakSamples = 0 }},
		{"PollInterval", func(c *queue.Config) { c.PollInterval = 0 }},
	}
	for _, c := range cases {
		cfg := queue.DefaultConfig()
		c.edit(&cfg)
		err := cfg.Validate()
		var ce *queue.ConfigError
		if !errors.As(err, &ce) || ce.Field != c.field {
			t.Errorf("Validate with bad %s = %v, want a ConfigError on %s", c.field, err, c.field)
		}
	}
}

func TestStates(t *testing.T) {
	for _, s := range queue.States {
		if !s.Valid() {
			t.Errorf("%s not valid", s)
		}
		if s.Active() == s.Final() {
			t.Errorf("%s: Active %v, Final %v; want exactly one", s, s.Active(), s.Final())
		}
	}
	if queue.State("bogus").Valid() || queue.State("bogus").Final() {
		t.Error("bogus state is valid or final")
	}
}
