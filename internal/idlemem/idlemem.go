// Package idlemem gives back, once a long-running process has started,
// the memory it touched only to start.
//
// A Go program's start touches much of its own executable: every
// package's init, type data, and the kernel maps the pages around each
// one it faults in (fault-around, 64 KiB). Those pages stay mapped, and
// counted in the process's resident set, for as long as it runs, although
// an idle collector role uses a small part of them. Trim unmaps the
// executable's read-only pages that were never written (they stay in the
// page cache, shared and reclaimable; the next use of one maps it again
// with a minor fault), and returns the heap the start freed to the system.
package idlemem

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"runtime/debug"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// mapping is one line of /proc/self/smaps and the fields Trim reads.
type mapping struct {
	start, end uintptr
	perms      string
	path       string
	rssKB      int64
	anonKB     int64
}

// Trim unmaps the pages of the executable's read-only mappings that hold
// no private (written) page, and frees the heap's unused memory. It
// returns how many kilobytes of the executable were resident before.
func Trim() (int64, error) {
	debug.FreeOSMemory()
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return 0, err
	}
	b, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		return 0, err
	}
	maps, err := parseSmaps(b)
	if err != nil {
		return 0, err
	}
	var dropped int64
	for _, m := range maps {
		if !droppable(m, exe) {
			continue
		}
		if _, _, errno := unix.Syscall(unix.SYS_MADVISE, m.start, m.end-m.start, unix.MADV_DONTNEED); errno != 0 {
			return dropped, fmt.Errorf("madvise %x-%x: %w", m.start, m.end, errno)
		}
		dropped += m.rssKB
	}
	return dropped, nil
}

// droppable reports whether m is a mapping of the executable that Trim may
// unmap: read-only and private, and no page of it written (a written
// page of a private mapping exists nowhere else).
func droppable(m mapping, exe string) bool {
	return m.path == exe && (m.perms == "r-xp" || m.perms == "r--p") && m.anonKB == 0 && m.rssKB > 0
}

// parseSmaps reads /proc/self/smaps: a header line per mapping
// ("start-end perms offset dev inode [path]") followed by "Key: value kB"
// lines.
func parseSmaps(b []byte) ([]mapping, error) {
	var out []mapping
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if k, ok := strings.CutSuffix(f[0], ":"); ok {
			if len(out) == 0 || len(f) < 2 {
				continue
			}
			v, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				continue // VmFlags and the like
			}
			switch k {
			case "Rss":
				out[len(out)-1].rssKB = v
			case "Anonymous":
				out[len(out)-1].anonKB = v
			}
			continue
		}
		lo, hi, ok := strings.Cut(f[0], "-")
		if !ok || len(f) < 5 {
			return nil, fmt.Errorf("smaps: unexpected line %q", line)
		}
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil || end < start {
			return nil, fmt.Errorf("smaps: unexpected range %q", f[0])
		}
		m := mapping{start: uintptr(start), end: uintptr(end), perms: f[1]}
		if len(f) >= 6 {
			m.path = strings.Join(f[5:], " ")
		}
		out = append(out, m)
	}
	return out, sc.Err()
}
