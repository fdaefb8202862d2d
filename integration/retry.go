package integration

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
)

// Backoff says how Retry waits between attempts: the first pause is
// Initial, each next one Multiplier times longer up to Max, each drawn at
// random from its upper half (jitter, so many clients do not retry in
// step). Attempts bounds the tries (the first included).
type Backoff struct {
	Initial    time.Duration
	Max        time.Duration
	Multiplier float64
	Attempts   int
}

// DefaultBackoff: 5 tries, pauses from 0.5 s doubling up to 30 s.
var DefaultBackoff = Backoff{Initial: 500 * time.Millisecond, Max: 30 * time.Second, Multiplier: 2, Attempts: 5}

// Permanent marks an error that a retry would not cure (a wrong password,
// a 404): Retry returns it at once.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err}
}

type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// RetryAfter marks an error whose target said when to try again (an HTTP
// 429 or 503 with Retry-After): Retry waits d (bounded by Max) instead of
// its own pause.
func RetryAfter(err error, d time.Duration) error {
	if err == nil {
		return nil
	}
	return &retryAfterError{err, d}
}

type retryAfterError struct {
	err error
	d   time.Duration
}

func (e *retryAfterError) Error() string { return e.err.Error() }
func (e *retryAfterError) Unwrap() error { return e.err }

// Retry calls fn until it succeeds, returns a Permanent error, ctx ends or
// the attempts run out; it returns fn's last error (unwrapped from
// Permanent), with the attempt count when they ran out.
func Retry(ctx context.Context, b Backoff, fn func(ctx context.Context) error) error {
	b = b.withDefaults()
	pause := b.Initial
	for attempt := 1; ; attempt++ {
		err := fn(ctx)
		if err == nil {
			return nil
		}
		var perm *permanentError
		if errors.As(err, &perm) {
			return perm.err
		}
		if attempt >= b.Attempts {
			return fmt.Errorf("after %d attempts: %w", attempt, err)
		}
		wait := pause/2 + rand.N(pause/2+1)
		var ra *retryAfterError
		if errors.As(err, &ra) && ra.d > 0 {
			wait = min(ra.d, b.Max)
		}
		if cerr := sleep(ctx, wait); cerr != nil {
			return fmt.Errorf("%w (last error: %w)", cerr, err)
		}
		pause = min(time.Duration(float64(pause)*b.Multiplier), b.Max)
	}
}

func (b Backoff) withDefaults() Backoff {
	d := DefaultBackoff
	if b.Initial > 0 {
		d.Initial = b.Initial
	}
	if b.Max > 0 {
		d.Max = b.Max
	}
	if b.Multiplier >= 1 {
		d.Multiplier = b.Multiplier
	}
	if b.Attempts > 0 {
		d.Attempts = b.Attempts
	}
	return d
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
