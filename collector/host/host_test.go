package host

import "testing"

func TestOffered(t *testing.T) {
	h := Capacity{CPUs: 8, MemoryTotalBytes: 16 << 30, MemoryFreeBytes: 10 << 30}
	cases := []struct {
		cpus int
		mem  int64
		want Capacity
	}{
		{0, 0, h},
		{2, 4 << 30, Capacity{CPUs: 2, MemoryTotalBytes: 4 << 30, MemoryFreeBytes: 4 << 30}},
		// An offer above the host is the host.
		{64, 64 << 30, h},
	}
	for _, c := range cases {
		if got := h.Offered(c.cpus, c.mem); got != c.want {
			t.Errorf("Offered(%d, %d) = %+v, want %+v", c.cpus, c.mem, got, c.want)
		}
	}
}
