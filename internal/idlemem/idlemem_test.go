package idlemem

import (
	"os"
	"testing"
)

// Trim unmaps the executable's read-only pages: fewer of them are resident
// after, and the program (this test) runs on, faulting back what it uses.
func TestTrimGivesBackTheExecutable(t *testing.T) {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	resident := func() int64 {
		b, err := os.ReadFile("/proc/self/smaps")
		if err != nil {
			t.Fatal(err)
		}
		maps, err := parseSmaps(b)
		if err != nil {
			t.Fatal(err)
		}
		var kb int64
		for _, m := range maps {
			if droppable(m, exe) {
				kb += m.rssKB
			}
		}
		return kb
	}
	before := resident()
	if before == 0 {
		t.Fatalf("no resident read-only page of %s before Trim", exe)
	}
	dropped, err := Trim()
	if err != nil {
		t.Fatal(err)
	}
	after := resident()
	t.Logf("executable resident: %d KiB before, %d KiB after (Trim dropped %d KiB)", before, after, dropped)
	if dropped == 0 || after >= before {
		t.Fatalf("resident %d KiB before, %d KiB after, %d dropped: want fewer after", before, after, dropped)
	}
}

// Only the executable's read-only private mappings without a written
// page are unmapped: never its data, a written page, nor another file.
func TestDroppable(t *testing.T) {
	smaps := []byte(`00400000-00c00000 r-xp 00000000 08:01 123 /usr/bin/collector
Size:               8192 kB
Rss:                6000 kB
Anonymous:             0 kB
VmFlags: rd ex mr mw me dw
00c00000-01000000 r--p 00800000 08:01 123 /usr/bin/collector
Rss:                1000 kB
Anonymous:             0 kB
01000000-01100000 rw-p 00c00000 08:01 123 /usr/bin/collector
Rss:                 500 kB
Anonymous:           400 kB
01100000-01200000 r--p 00d00000 08:01 123 /usr/bin/collector
Rss:                 100 kB
Anonymous:             4 kB
7f0000000000-7f0000100000 r-xp 00000000 08:01 456 /usr/lib/other.so
Rss:                 100 kB
Anonymous:             0 kB
7f0000200000-7f0000300000 rw-p 00000000 00:00 0
Rss:                 100 kB
Anonymous:           100 kB
7f0000400000-7f0000500000 r--p 00000000 08:01 789 /path with spaces/collector
Rss:                 100 kB
Anonymous:             0 kB
`)
	maps, err := parseSmaps(smaps)
	if err != nil {
		t.Fatal(err)
	}
	if len(maps) != 7 {
		t.Fatalf("%d mappings, want 7", len(maps))
	}
	var got []int
	for i, m := range maps {
		if droppable(m, "/usr/bin/collector") {
			got = append(got, i)
		}
	}
	if len(got) != 2 || got[0] != 0 || got[1] != 1 {
		t.Fatalf("droppable mappings %v, want [0 1] (text and read-only data)", got)
	}
	if maps[6].path != "/path with spaces/collector" || maps[0].rssKB != 6000 || maps[2].anonKB != 400 {
		t.Fatalf("parsed %+v", maps)
	}
	if _, err := parseSmaps([]byte("garbage line\n")); err == nil {
		t.Fatal("parseSmaps accepted a malformed line")
	}
}
