package jobs

import (
	"context"
	"fmt"
	"strings"

	"github.com/collectorhq/collector/internal/units"
	"github.com/collectorhq/collector/queue"
)

// Waiting says why a queued job is not leased when nothing it may run on
// has room for it, e.g. `waiting: needs 1.5 GiB and 1 CPU; largest free on
// pool "dc1": 1.0 GiB and 2 CPUs on col_a`. It is "" for a job that is not
// queued, or that fits somewhere (it is only waiting for a poll).
func (s *Service) Waiting(ctx context.Context, j *queue.Job) (string, error) {
	if j.State != queue.StateQueued {
		return "", nil
	}
	need, err := s.q.Need(ctx, j.IntegrationID)
	if err != nil {
		return "", err
	}
	var members []Member
	where := ""
	if j.Pool != "" {
		if members, err = s.dir.PoolMembers(ctx, j.Pool); err != nil {
			return "", err
		}
		where = fmt.Sprintf("pool %q", j.Pool)
	} else {
		m, err := s.dir.Collector(ctx, j.CollectorID)
		if err != nil {
			return "", err
		}
		members = []Member{m}
		where = "collector " + j.CollectorID
	}
	needs := "needs " + formatNeed(need.MemoryBytes, need.CPUs)
	if !need.Known {
		needs += " (a default: it has not run yet)"
	}
	var best *free
	active := 0
	for _, m := range members {
		if !m.Active {
			continue
		}
		active++
		u, err := s.q.Usage(ctx, m.ID)
		if err != nil {
			return "", err
		}
		f := free{id: m.ID, mem: m.MemoryBytes - u.MemoryBytes, cpus: float64(m.CPUs) - u.CPUs, jobs: u.Jobs,
			memKnown: m.MemoryBytes > 0, cpuKnown: m.CPUs > 0}
		if f.fits(need, s.cfg.MaxJobsPerCollector) {
			return "", nil
		}
		if best == nil || f.mem > best.mem || (f.mem == best.mem && f.cpus > best.cpus) {
			best = &f
		}
	}
	switch {
	case len(members) == 0:
		return fmt.Sprintf("waiting: %s has no members", where), nil
	case active == 0:
		return fmt.Sprintf("waiting: %s has no active collector (offline, degraded or not enrolled)", where), nil
	}
	room := formatNeed(max(best.mem, 0), max(best.cpus, 0))
	if s.cfg.MaxJobsPerCollector > 0 && best.jobs >= s.cfg.MaxJobsPerCollector {
		room += fmt.Sprintf(", and already %d jobs of at most %d", best.jobs, s.cfg.MaxJobsPerCollector)
	}
	return fmt.Sprintf("waiting: %s; largest free on %s: %s on %s", needs, where, room, best.id), nil
}

// free is what a collector has left beside its active jobs.
type free struct {
	id                 string
	mem                int64
	cpus               float64
	jobs               int
	memKnown, cpuKnown bool
}

func (f free) fits(n queue.Need, maxJobs int) bool {
	return (maxJobs <= 0 || f.jobs < maxJobs) &&
		(!f.memKnown || n.MemoryBytes <= f.mem) &&
		(!f.cpuKnown || n.CPUs <= f.cpus)
}

// formatNeed prints memory in binary units and CPUs in cores.
func formatNeed(mem int64, cpus float64) string {
	unit := "CPUs"
	if cpus == 1 {
		unit = "CPU"
	}
	c := strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.2f", cpus), "0"), ".")
	return fmt.Sprintf("%s and %s %s", units.Bytes(mem), c, unit)
}
