package runner

import (
	"context"
	"time"
)

// sampleStats records peak memory and CPU until stop is closed or ctx ends.
func (j *jobRun) sampleStats(ctx context.Context, id string, stop <-chan struct{}) {
	t := time.NewTicker(j.r.cfg.StatsInterval)
	defer t.Stop()
	for {
		j.sampleOnce(ctx, id)
		select {
		case <-ctx.Done():
			return
		case <-stop:
			return
		case <-t.C:
		}
	}
}

// sampleOnce takes one sample of the container's usage.
func (j *jobRun) sampleOnce(ctx context.Context, id string) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	st, err := j.r.eng.ContainerStats(ctx, id)
	if err != nil {
		return
	}
	j.statsMu.Lock()
	j.peakMem = max(j.peakMem, int64(st.MemoryBytes))
	j.peakCPU = max(j.peakCPU, st.CPUPercent)
	j.statsMu.Unlock()
}

// headroom is what the job may still take: its memory limit less the peak
// seen so far (which the host's free memory already reflects).
func (j *jobRun) headroom() int64 {
	limit := j.job.Limits.MemoryBytes
	if limit <= 0 {
		limit = defaultMemory
	}
	j.statsMu.Lock()
	defer j.statsMu.Unlock()
	return max(limit-j.peakMem, 0)
}
