package selinux_test

import (
	"testing"

	"github.com/collectorhq/collector/engine"
	"github.com/collectorhq/collector/selinux"
)

func TestLevelOption(t *testing.T) {
	got, err := selinux.LevelOption("system_u:system_r:container_t:s0:c12,c345")
	if err != nil || got != "level:s0:c12,c345" {
		t.Fatalf("LevelOption = %q, %v; want level:s0:c12,c345", got, err)
	}
	if _, err := selinux.LevelOption("not-a-label"); err == nil {
		t.Errorf("LevelOption(not-a-label): want an error")
	}
}

func TestOffDoesNothing(t *testing.T) {
	off := false
	l := selinux.Labeler{Enabled: &off}
	j, err := l.ForJob()
	if err != nil || j.Options != nil {
		t.Fatalf("ForJob with SELinux off = %+v, %v; want no options", j, err)
	}
	j.Release()
	if r := l.Relabel(false); r != engine.RelabelNone {
		t.Errorf("Relabel with SELinux off = %q, want none", r)
	}
}

func TestRelabelOn(t *testing.T) {
	on := true
	l := selinux.Labeler{Enabled: &on}
	if r := l.Relabel(false); r != engine.RelabelPrivate {
		t.Errorf("Relabel(private) = %q, want Z", r)
	}
	if r := l.Relabel(true); r != engine.RelabelShared {
		t.Errorf("Relabel(shared) = %q, want z", r)
	}
}

// TestRoleAndJobOptions: the daemon and runner run as the module's type
// when it is loaded and with labels disabled otherwise (SELinux on or
// off); a job is always container_t at its own level where SELinux is on,
// and gets no option where it is off.
func TestRoleAndJobOptions(t *testing.T) {
	for _, c := range []struct {
		roleType string
		want     string
	}{
		{"", "disable"}, {"disable", "disable"}, {selinux.CollectorType, "type:collector_container_t"},
	} {
		got := selinux.RoleOptions(c.roleType)
		if len(got) != 1 || got[0] != c.want {
			t.Errorf("RoleOptions(%q) = %q, want [%s]", c.roleType, got, c.want)
		}
	}
	level, err := selinux.LevelOption("system_u:system_r:container_t:s0:c1,c2")
	if err != nil {
		t.Fatal(err)
	}
	if got := selinux.JobOptions(level); len(got) != 2 || got[0] != "type:container_t" || got[1] != "level:s0:c1,c2" {
		t.Errorf("JobOptions on = %q, want [type:container_t level:s0:c1,c2]", got)
	}
	if got := selinux.JobOptions(""); got != nil {
		t.Errorf("JobOptions off = %q, want none", got)
	}
}

// TestForJobOn: with SELinux on, each job reserves its own level and runs
// as container_t (this host has no SELinux kernel: the reservation is
// the test's).
func TestForJobOn(t *testing.T) {
	on := true
	n := 0
	l := selinux.Labeler{Enabled: &on, NewProcessLabel: func() (string, error) {
		n++
		return "system_u:system_r:container_t:s0:c" + string(rune('0'+n)) + ",c9", nil
	}}
	a, err := l.ForJob()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := l.ForJob()
	if len(a.Options) != 2 || a.Options[0] != "type:container_t" || a.Options[1] == b.Options[1] {
		t.Errorf("two jobs' options = %q and %q: want container_t, each at its own level", a.Options, b.Options)
	}
}
