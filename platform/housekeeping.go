package platform

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/crypto"
	"github.com/collectorhq/collector/platform/access"
	"github.com/collectorhq/collector/platform/store"
)

// housekeepingBatch bounds the rows one step deletes (one short write).
const housekeepingBatch = 5000

// housekeepingLoop applies the job retention and the purges of deleted
// integrations until ctx ends.
func (s *Server) housekeepingLoop(ctx context.Context) {
	t := time.NewTicker(s.cfg.HousekeepingInterval)
	defer t.Stop()
	for {
		s.housekeep(ctx)
		s.certs.refresh(false)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// housekeep runs one round: purges until none is pending, then retention
// until nothing is past it (each step a short transaction).
func (s *Server) housekeep(ctx context.Context) {
	recs := s.jobs.RecordStore()
	for ctx.Err() == nil {
		done, err := recs.Purge(ctx, housekeepingBatch)
		if err != nil {
			s.log.Warn("purging a deleted integration's data failed; retrying later", "err", err)
			break
		}
		if done {
			break
		}
	}
	if s.cfg.JobRetention <= 0 {
		return
	}
	cutoff := s.now().Add(-s.cfg.JobRetention)
	for ctx.Err() == nil {
		n, err := recs.PruneJobs(ctx, cutoff, housekeepingBatch)
		if err != nil {
			s.log.Warn("pruning finished jobs failed; retrying later", "err", err)
			return
		}
		if n > 0 {
			s.log.Info("finished jobs past retention removed", "count", n, "retention", s.cfg.JobRetention)
		}
		if n < housekeepingBatch {
			return
		}
	}
}

// adoptSealedConfigs re-seals, once, the integration configs written
// before configs were bound to their target (collector, image, network
// and secret fields): they open only under their ID.
func (s *Server) adoptSealedConfigs(ctx context.Context) error {
	list, err := s.st.Integrations(ctx)
	if err != nil {
		return err
	}
	for _, in := range list {
		if _, err := s.open(in); err == nil {
			continue
		}
		plain, err := s.keys.Open(in.SealedConfig, []byte(in.ID))
		if err != nil {
			return fmt.Errorf("integration %s: its config opens neither as it is nor as an older version wrote it: %w", in.ID, err)
		}
		var cfg map[string]json.RawMessage
		if err := json.Unmarshal(plain, &cfg); err != nil {
			return fmt.Errorf("integration %s: %w", in.ID, err)
		}
		if in.SealedConfig, err = s.seal(in, cfg); err != nil {
			return err
		}
		ev := store.Event{Time: s.now(), Actor: "platform", Action: "integration.config_resealed", Target: in.ID,
			Details: map[string]any{"reason": "configs are now bound to their target"}}
		if err := s.st.UpdateIntegration(ctx, in, ev); err != nil {
			return err
		}
	}
	return nil
}

// checkpointAudit saves the chain's head outside the database, so that a
// later verification notices newest entries deleted.
func (s *Server) checkpointAudit(ctx context.Context) {
	s.checkpointMu.Lock()
	defer s.checkpointMu.Unlock()
	if err := WriteAuditCheckpoint(ctx, s.st, s.cfg.DataDir); err != nil {
		s.log.Warn("the audit checkpoint was not updated", "err", err)
	}
}

// WriteAuditCheckpoint saves the audit chain's head in dataDir's
// checkpoint file when it is past the one saved there: after every
// administrative act, the server's and the host commands' (users, sso,
// keys) alike, so deleting the newest entries — a break-glass admin among
// them — is noticed by the next verification. A head at or behind the
// saved one (entries deleted since) leaves the file as it is.
func WriteAuditCheckpoint(ctx context.Context, st store.Store, dataDir string) error {
	head, err := st.AuditHead(ctx)
	if err != nil {
		return fmt.Errorf("read the audit head: %w", err)
	}
	if cur, err := readAuditCheckpoint(dataDir); err == nil && cur.Seq >= head.Seq {
		return nil
	}
	path := filepath.Join(dataDir, AuditCheckpointFile)
	if err := writeFileAtomic(path, []byte(fmt.Sprintf("%d:%s\n", head.Seq, head.Hash))); err != nil {
		return fmt.Errorf("write the audit checkpoint: %w", err)
	}
	return nil
}

// auditCheckpoint reads the saved head (zero when none was saved yet).
func (s *Server) auditCheckpoint() (store.Checkpoint, error) {
	return readAuditCheckpoint(s.cfg.DataDir)
}

func readAuditCheckpoint(dataDir string) (store.Checkpoint, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, AuditCheckpointFile))
	if errors.Is(err, os.ErrNotExist) {
		return store.Checkpoint{}, nil
	}
	if err != nil {
		return store.Checkpoint{}, err
	}
	return parseCheckpoint(strings.TrimSpace(string(b)))
}

// parseCheckpoint reads "SEQ:HASH", as `audit verify` prints it.
func parseCheckpoint(v string) (store.Checkpoint, error) {
	seq, hash, ok := strings.Cut(v, ":")
	n, err := strconv.ParseInt(seq, 10, 64)
	if !ok || err != nil || n < 1 || len(hash) != 64 || strings.Trim(hash, "0123456789abcdef") != "" {
		return store.Checkpoint{}, fmt.Errorf("audit checkpoint %q: want SEQ:HASH as `audit verify` prints it", v)
	}
	return store.Checkpoint{Seq: n, Hash: hash}, nil
}

// writeFileAtomic writes b to path (0600) through a temporary file.
func writeFileAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// ensureMetricsToken creates the /metrics bearer token on first start
// (a 0600 file in the data dir; only its hash in the store).
func (s *Server) ensureMetricsToken(ctx context.Context) error {
	if _, err := s.st.Setting(ctx, settingMetricsTokenHash); err == nil || !errors.Is(err, store.ErrNotFound) {
		return err
	}
	tok, err := crypto.NewToken(api.MetricsTokenPrefix)
	if err != nil {
		return err
	}
	path := filepath.Join(s.cfg.DataDir, MetricsTokenFile)
	os.Remove(path)
	if err := writeSecretFile(path, []byte(tok+"\n")); err != nil {
		return fmt.Errorf("write metrics token: %w", err)
	}
	return s.st.PutSetting(ctx, settingMetricsTokenHash, crypto.HashToken(tok), nil)
}

// metricsAuth guards /metrics: the metrics token or an admin's API token, unless
// the operator opened it (cfg.MetricsPublic, for a trusted network).
func (s *Server) metricsAuth(next http.Handler) http.Handler {
	return s.public(func(w http.ResponseWriter, r *http.Request) error {
		if !s.cfg.MetricsPublic && !s.metricsAllowed(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="platform-metrics"`)
			return errorf(http.StatusUnauthorized, api.CodeUnauthorized,
				"metrics need a bearer token: the metrics-token file in the data dir (or start with --metrics-public on a trusted network)")
		}
		next.ServeHTTP(w, r)
		return nil
	})
}

func (s *Server) metricsAllowed(r *http.Request) bool {
	tok, ok := bearer(r)
	if !ok {
		return false
	}
	if want, err := s.st.Setting(r.Context(), settingMetricsTokenHash); err == nil &&
		subtle.ConstantTimeCompare([]byte(crypto.HashToken(tok)), []byte(want)) == 1 {
		return true
	}
	p, err := s.access.Authenticate(r.Context(), r)
	return err == nil && p.Full() && access.Allows(p.Role, access.PermAdmin)
}
