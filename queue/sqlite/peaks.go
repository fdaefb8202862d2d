package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
)

// recordPeak adds a run's peak memory and CPU (cores) to the integration's
// recent samples (the last keep of each) and stores their maxima, which
// Next counts against a collector's capacity. The maximum, not the mean: a
// job that fits only on average would still be killed by the OOM killer.
// A zero sample (not measured) is not recorded.
func recordPeak(ctx context.Context, c *wtx, integrationID string, peak int64, cpu float64, keep int) error {
	var raw, rawCPU string
	err := c.QueryRowContext(ctx, peaksSQL, integrationID).Scan(&raw, &rawCPU)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("read peaks of integration %q: %w", integrationID, err)
	}
	recent, recentCPU := samples[int64](raw), samples[float64](rawCPU)
	if peak > 0 {
		recent = last(append(recent, peak), keep)
	}
	if cpu > 0 {
		recentCPU = last(append(recentCPU, cpu), keep)
	}
	buf, err := json.Marshal(recent)
	if err != nil {
		return err
	}
	bufCPU, err := json.Marshal(recentCPU)
	if err != nil {
		return err
	}
	_, err = c.ExecContext(ctx, savePeaksSQL, integrationID, string(buf), maxOf(recent), string(bufCPU), maxOf(recentCPU))
	if err != nil {
		return fmt.Errorf("record peak of integration %q: %w", integrationID, err)
	}
	return nil
}

// samples decodes a JSON array of samples; a damaged record only costs
// the history.
func samples[T int64 | float64](raw string) []T {
	var xs []T
	if raw == "" || json.Unmarshal([]byte(raw), &xs) != nil {
		return nil
	}
	return xs
}

func last[T any](xs []T, keep int) []T {
	if len(xs) > keep {
		return xs[len(xs)-keep:]
	}
	return xs
}

func maxOf[T int64 | float64](xs []T) T {
	var m T
	for _, x := range xs {
		m = max(m, x)
	}
	return m
}
