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
