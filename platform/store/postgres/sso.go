package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/collectorhq/collector/platform/access"
	"github.com/collectorhq/collector/platform/store"
)

// settingSSO holds the single sign-on settings (JSON, the client secret
// sealed by the access service) in a settings row with its MAC: a
// provider or a group mapping written outside the platform is refused.
const settingSSO = "sso_oidc"

// SSOSettings implements access.Store.
func (s *Store) SSOSettings(ctx context.Context) (access.SSOSettings, error) {
	var c access.SSOSettings
	v, err := s.Setting(ctx, settingSSO)
	if errors.Is(err, store.ErrNotFound) {
		return c, access.ErrNotFound
	}
	if err != nil {
		return c, err
	}
	if err := json.Unmarshal([]byte(v), &c); err != nil {
		return c, fmt.Errorf("sso settings: %w", err)
	}
	return c, nil
}

// PutSSOSettings implements access.Store.
func (s *Store) PutSSOSettings(ctx context.Context, c access.SSOSettings, ev store.Event) error {
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	return s.PutSetting(ctx, settingSSO, string(b), &ev)
}

// DeleteSSOSettings implements access.Store.
func (s *Store) DeleteSSOSettings(ctx context.Context, ev store.Event) error {
	return s.tx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM settings WHERE key = $1`, settingSSO)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return access.ErrNotFound
		}
		return s.appendAudit(ctx, tx, ev)
	})
}

// UseSSOFlow implements access.Store: the primary key makes the second
// use of a flow fail; expired rows go on the way. ON CONFLICT DO NOTHING
// rather than catching the unique violation: a second replica inserting
// the same hash at once waits for the first's commit, then inserts
// nothing, and is refused.
func (s *Store) UseSSOFlow(ctx context.Context, hash string, expires, now time.Time) error {
	return s.tx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM sso_used_flows WHERE expires_at <= $1`, nanos(now)); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `INSERT INTO sso_used_flows(hash, expires_at) VALUES ($1, $2) ON CONFLICT(hash) DO NOTHING`, hash, nanos(expires))
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return access.ErrConflict
		}
		return nil
	})
}
