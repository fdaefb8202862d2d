package test

// BenchmarkLDAPUsers: 100,000 LDAP users (the e2e generator, with its
// 1,000 groups and 50 OUs) collected end to end through a freshly
// installed collector: the integration-ldap job against a real slapd over
// StartTLS, every record uploaded and stored. It reports entities per
// second, the runner's peak RSS and the integration's peak memory:
//
//	go test -tags containers_image_openpgp,exclude_graphdriver_btrfs,exclude_graphdriver_devicemapper \
//	    -run '^$' -bench LDAPUsers -benchtime 1x -timeout 30m ./test/

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/integrations/ldap/ldaptest"
	"github.com/collectorhq/collector/internal/testutil"
)

func BenchmarkLDAPUsers(b *testing.B) {
	benchNeed(b)
	srv := startSlapd(b, ldaptest.BenchSpec)
	r := newBenchRig(b)
	ctx := context.Background()
	raw := ldapConfig(srv, nil)
	in, err := r.admin.CreateIntegration(ctx, api.IntegrationRequest{
		Name: fmt.Sprintf("bench-ldap-%d", time.Now().UnixNano()), Image: world.ldapImage, Config: json.RawMessage(raw),
		IntervalSec: 86400, CollectorID: r.h.id, Network: "host"})
	if err != nil {
		b.Fatal(err)
	}
	pid := containerPid(b, r.h.kit, "collector-runner")
	idleHWM, _ := procStatus(pid, "VmHWM")
	entities := int64(ldaptest.BenchSpec.Entities())
	procs := map[string]int{"runner": pid, "platform": r.p.cmd.Process.Pid, "podman-service": podmanServicePid(), "slapd": srv.Pid()}
	b.ResetTimer()
	for range b.N {
		cpu0 := map[string]float64{}
		for k, p := range procs {
			cpu0[k] = testutil.CPUSeconds(p)
		}
		machine0 := testutil.MachineCPUSeconds()
		started := newProcesses()
		t0 := time.Now()
		q, err := r.admin.RunIntegration(ctx, in.ID)
		if err != nil {
			b.Fatal(err)
		}
		j := r.waitJob(b, q.ID, 20*time.Minute, 50*time.Millisecond)
		wall := time.Since(t0)
		if j.State != api.JobSucceeded {
			logs, _ := r.admin.JobLogs(ctx, j.ID)
			b.Fatalf("job %+v\nlogs:\n%s", j, logs)
		}
		n, err := liveEntities(r.p.dataDir, in.ID)
		if err != nil || n != entities {
			b.Errorf("the platform holds %d live entities (%v), want %d", n, err, entities)
		}
		run := j.FinishedAt.Sub(*j.StartedAt)
		peak, _ := procStatus(pid, "VmHWM")
		var cpu []string
		rest := testutil.MachineCPUSeconds() - machine0
		for _, k := range []string{"runner", "platform", "podman-service", "slapd"} {
			used := testutil.CPUSeconds(procs[k]) - cpu0[k]
			rest -= used
			cpu = append(cpu, fmt.Sprintf("%s %.1f s", k, used))
		}
		// The processes started during the job: the integration's
		// container, its conmon, the OCI runtime's calls.
		byComm := started()
		comms := slices.SortedFunc(maps.Keys(byComm), func(a, b string) int {
			return cmp.Or(cmp.Compare(byComm[b], byComm[a]), strings.Compare(a, b))
		})
		for _, c := range comms {
			if byComm[c] >= 0.05 {
				rest -= byComm[c]
				cpu = append(cpu, fmt.Sprintf("%s (started during the job) %.1f s", c, byComm[c]))
			}
		}
		// The rest: the kernel's own work (softirqs, the network) and
		// processes too short-lived to read.
		cpu = append(cpu, fmt.Sprintf("everything else %.1f s", rest))
		b.Logf("CPU during the job: %s; load average %s", strings.Join(cpu, ", "), loadAverage())
		b.ReportMetric(float64(entities)/wall.Seconds(), "entities/s-run..succeeded")
		b.ReportMetric(float64(entities)/run.Seconds(), "entities/s-started..finished")
		b.ReportMetric(float64(j.Records)/wall.Seconds(), "records/s-run..succeeded")
		b.ReportMetric(mib(peak), "runner-peak-MiB")
		b.ReportMetric(mib(idleHWM), "runner-idle-peak-MiB")
		b.ReportMetric(mib(j.PeakMemoryBytes), "integration-peak-MiB")
		b.Logf("job %s: %d entities, %d records (%d refused), started..finished %v, run..succeeded %v, runner VmHWM %.1f MiB (idle %.1f), integration peak %.1f MiB",
			j.ID, n, j.Records, j.RefusedRecords, run, wall, mib(peak), mib(idleHWM), mib(j.PeakMemoryBytes))
		if logs, err := r.admin.JobLogs(ctx, j.ID); err == nil {
			b.Logf("job logs (the integration's own timing):\n%s", lastLines(string(logs), 6))
		}
		if rate := float64(entities) / wall.Seconds(); rate < 20_000 {
			b.Errorf("%.0f entities/s end to end: below the 20,000/s bound", rate)
		}
		if mib(peak) > 64 {
			b.Errorf("runner peak RSS %.1f MiB: above the 64 MiB bound", mib(peak))
		}
	}
	b.ReportMetric(0, "ns/op")
}

// loadAverage is /proc/loadavg's first three fields: the benchmark shares
// the machine with whatever else runs.
func loadAverage() string {
	data, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// newProcesses follows the processes started after it is called (the job
// container's integration, its conmon, the OCI runtime's calls), reading
// each one's CPU time every 100 ms until stop is called, which returns
// their CPU seconds by command name. A process that ends between two reads
// counts what the last read saw.
func newProcesses() (stop func() map[string]float64) {
	before := map[int]bool{}
	for _, pid := range pids() {
		before[pid] = true
	}
	type proc struct {
		comm string
		cpu  float64
	}
	seen := map[int]*proc{}
	read := func() {
		for _, pid := range pids() {
			if before[pid] {
				continue
			}
			// Read each time: a container's first process is named
			// after the OCI runtime until it execs the image's program.
			comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
			if err != nil {
				continue
			}
			p := seen[pid]
			if p == nil {
				p = &proc{}
				seen[pid] = p
			}
			p.comm = strings.TrimSpace(string(comm))
			if c := testutil.CPUSeconds(pid); c > 0 {
				p.cpu = c
			}
		}
	}
	done, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				read()
				return
			case <-t.C:
				read()
			}
		}
	}()
	return func() map[string]float64 {
		close(done)
		<-finished
		by := map[string]float64{}
		for _, p := range seen {
			by[p.comm] += p.cpu
		}
		return by
	}
}

// pids are the processes running now.
func pids() []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			out = append(out, pid)
		}
	}
	return out
}
