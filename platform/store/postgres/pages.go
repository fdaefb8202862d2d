package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// rollupKeep is how long 5-minute heartbeat rollups are kept.
const rollupKeep = 25 * time.Hour

func pruneRollups(ctx context.Context, tx pgx.Tx, now time.Time) error {
	_, err := tx.Exec(ctx, `DELETE FROM heartbeat_rollups WHERE bucket < $1`, now.Add(-rollupKeep).UnixNano())
	return err
}
