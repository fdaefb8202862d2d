// Package host reads what the collector's host has: CPUs and memory, from
// /proc (a container sees the host's /proc/meminfo).
package host

import (
	"bufio"
	"os"
	"runtime"
	"strconv"
	"strings"
)

// Capacity is the host's CPUs and memory.
type Capacity struct {
	CPUs             int
	MemoryTotalBytes int64
	MemoryFreeBytes  int64 // MemAvailable: what new work can take
}

// Read reads /proc/meminfo; missing figures stay zero.
func Read() Capacity {
	c := Capacity{CPUs: runtime.NumCPU()}
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return c
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		fields := strings.Fields(v)
		if len(fields) == 0 {
			continue
		}
		n, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil {
			continue
		}
		switch k {
		case "MemTotal":
			c.MemoryTotalBytes = n << 10
		case "MemAvailable":
			c.MemoryFreeBytes = n << 10
		}
	}
	return c
}

// FreeMemory returns MemAvailable in bytes (0 if unknown).
func FreeMemory() int64 { return Read().MemoryFreeBytes }

// Offered is c bounded by what the operator offers jobs (0: no bound):
// the capacity the collector reports.
func (c Capacity) Offered(cpus int, memory int64) Capacity {
	if cpus > 0 && (c.CPUs == 0 || cpus < c.CPUs) {
		c.CPUs = cpus
	}
	if memory > 0 && (c.MemoryTotalBytes == 0 || memory < c.MemoryTotalBytes) {
		c.MemoryTotalBytes = memory
		c.MemoryFreeBytes = min(c.MemoryFreeBytes, memory)
	}
	return c
}
