package integration

import (
	"context"
	"sync"
	"time"
)

// Limiter spaces requests to a target: at most Rate per second on
// average, with bursts of up to Burst (a token bucket). It is safe for
// concurrent use.
type Limiter struct {
	mu     sync.Mutex
	rate   float64 // tokens per second
	burst  float64
	tokens float64
	last   time.Time
	now    func() time.Time
}

// NewLimiter returns a limiter allowing perSecond requests a second on
// average and burst at once (at least 1); perSecond <= 0 allows all.
func NewLimiter(perSecond float64, burst int) *Limiter {
	b := float64(max(burst, 1))
	return &Limiter{rate: perSecond, burst: b, tokens: b, now: time.Now}
}

// Wait blocks until a request may go, or ctx ends.
func (l *Limiter) Wait(ctx context.Context) error {
	for {
		d := l.reserve()
		if d == 0 {
			return nil
		}
		if err := sleep(ctx, d); err != nil {
			return err
		}
	}
}

// reserve takes a token if there is one (0), else says how long until
// there is.
func (l *Limiter) reserve() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.rate <= 0 {
		return 0
	}
	now := l.now()
	if !l.last.IsZero() {
		l.tokens = min(l.burst, l.tokens+now.Sub(l.last).Seconds()*l.rate)
	}
	l.last = now
	if l.tokens >= 1 {
		l.tokens--
		return 0
	}
	return max(time.Duration((1-l.tokens)/l.rate*float64(time.Second)), time.Millisecond)
}
