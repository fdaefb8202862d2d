package testutil

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// MachineCPUSeconds is the CPU time the machine has spent busy, all cores
// together: /proc/stat's user, nice, system, irq and softirq (guest time
// is within user; idle, iowait and steal are not busy). Benchmarks report
// the difference of two readings next to their rates: on a saturated
// machine it is what a unit of work costs, whichever process spends it.
func MachineCPUSeconds() float64 {
	data, _ := os.ReadFile("/proc/stat")
	line, _, _ := strings.Cut(string(data), "\n")
	f := strings.Fields(line)
	busy := 0.0
	for _, i := range []int{1, 2, 3, 6, 7} { // user nice system, irq softirq
		if i < len(f) {
			n, _ := strconv.ParseFloat(f[i], 64)
			busy += n
		}
	}
	return busy / 100
}

// CPUSeconds is a process's user+system CPU time so far (0 if unknown).
func CPUSeconds(pid int) float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil || pid <= 0 {
		return 0
	}
	// Fields after the command's closing parenthesis; utime and stime are
	// the 14th and 15th fields of the line, in clock ticks (100 Hz here).
	f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+2:]))
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseFloat(f[11], 64)
	s, _ := strconv.ParseFloat(f[12], 64)
	return (u + s) / 100
}
