package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
)

// recordPeak adds a successful run's peak memory to the integration's recent
// samples (the last keep of them) and stores their maximum, which Next
// compares with a collector's free memory. The maximum, not the mean: a job
// that fits only on average would still be killed by the OOM killer.
func recordPeak(ctx context.Context, c *wtx, integrationID string, peak int64, keep int) error {
	var raw string
	err := c.QueryRowContext(ctx, peaksSQL, integrationID).Scan(&raw)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("read peaks of integration %q: %w", integrationID, err)
	}
	var recent []int64
	if raw != "" {
		if err := json.Unmarshal([]byte(raw), &recent); err != nil {
			recent = nil // A damaged record only costs the history.
		}
	}
	recent = append(recent, peak)
	if len(recent) > keep {
		recent = recent[len(recent)-keep:]
	}
	buf, err := json.Marshal(recent)
	if err != nil {
		return err
	}
	_, err = c.ExecContext(ctx, savePeaksSQL, integrationID, string(buf), maxOf(recent))
	if err != nil {
		return fmt.Errorf("record peak of integration %q: %w", integrationID, err)
	}
	return nil
}

func maxOf(xs []int64) int64 {
	var m int64
	for _, x := range xs {
		m = max(m, x)
	}
	return m
}
