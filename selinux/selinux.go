// Package selinux computes the SELinux labels of the collector's
// containers with github.com/opencontainers/selinux: a unique MCS level for
// each job container, so two jobs can never read each other's files, and
// the relabel option for bind mounts. Where SELinux is off it does nothing.
package selinux

import (
	"fmt"

	goselinux "github.com/opencontainers/selinux/go-selinux"
	"github.com/opencontainers/selinux/go-selinux/label"

	"github.com/collectorhq/collector/engine"
)

// Labeler hands out labels. The zero value asks the host whether SELinux
// is enabled.
type Labeler struct {
	// Enabled overrides the host's answer when set (tests, or an engine
	// whose Info says otherwise).
	Enabled *bool
	// NewProcessLabel reserves a new process label with a unique MCS
	// level (default: go-selinux's, which needs an SELinux kernel; tests
	// of labels on hosts without one set it).
	NewProcessLabel func() (string, error)
}

func (l Labeler) enabled() bool {
	if l.Enabled != nil {
		return *l.Enabled
	}
	return goselinux.GetEnabled()
}

// CollectorType is the SELinux process type of the collector-daemon and
// collector-runner containers under the collector's policy module
// (packaging/selinux, the collector-selinux RPM; docs/selinux.md):
// container_t's rules plus a connection to the engine's socket. It exists
// only where that module is installed. The mounts of /etc/collector and
// /var/lib/collector into these containers are not relabelled, so they
// keep the module's file types.
const CollectorType = "collector_container_t"

// JobType is the type of every job container: the engines' confined
// default, named so that a host's containers.conf cannot widen it.
const JobType = "container_t"

// Option values of engine.ContainerSpec.SELinuxOptions.
const (
	// OptionDisable runs a container unconfined ("label=disable").
	OptionDisable = "disable"
)

// RoleOptions are the label options of the daemon and runner containers.
// Both hold the rootful engine socket, which makes them root-equivalent
// whatever their label; what the label decides is whether SELinux lets
// them reach the socket at all. With the collector's module loaded they
// run as its type (roleType, normally CollectorType). Without it, the
// default container_t is refused the socket on an enforcing host, so they
// run with labels disabled. That is also the choice where SELinux is off
// now: it keeps working if SELinux is turned on at the next boot, where a
// container created with no option would start confined and be refused.
func RoleOptions(roleType string) []string {
	if roleType == "" || roleType == OptionDisable {
		return []string{OptionDisable}
	}
	return []string{"type:" + roleType}
}

// JobOptions are the label options of a job container whose MCS level is
// level ("level:s0:c1,c2", from LevelOption): always confined, always its
// own level. Where SELinux is off (level empty) there are none.
func JobOptions(level string) []string {
	if level == "" {
		return nil
	}
	return []string{"type:" + JobType, level}
}

// ModuleLoaded reports whether the running kernel's policy knows
// CollectorType, i.e. the collector's module is installed and loaded. It
// asks selinuxfs, so it answers false where SELinux is off, and inside a
// container that does not see the host's selinuxfs.
func ModuleLoaded() bool {
	if !goselinux.GetEnabled() {
		return false
	}
	return goselinux.SecurityCheckContext("system_u:system_r:"+CollectorType+":s0") == nil
}

// JobLabel is the label of one job container and how to give its MCS
// level back when the job is done.
type JobLabel struct {
	// Options go into engine.ContainerSpec.SELinuxOptions; nil where
	// SELinux is off.
	Options []string
	process string
}

// Release returns the job's MCS level to the pool.
func (j JobLabel) Release() {
	if j.process != "" {
		goselinux.ReleaseLabel(j.process)
	}
}

// ForJob reserves a unique MCS level for a job container.
func (l Labeler) ForJob() (JobLabel, error) {
	if !l.enabled() {
		return JobLabel{}, nil
	}
	newLabel := l.NewProcessLabel
	if newLabel == nil {
		newLabel = func() (string, error) {
			process, _, err := label.InitLabels(nil)
			return process, err
		}
	}
	process, err := newLabel()
	if err != nil {
		return JobLabel{}, fmt.Errorf("selinux: reserve a job label: %w", err)
	}
	opt, err := LevelOption(process)
	if err != nil {
		goselinux.ReleaseLabel(process)
		return JobLabel{}, err
	}
	return JobLabel{Options: JobOptions(opt), process: process}, nil
}

// LevelOption turns a process label ("system_u:system_r:container_t:s0:c1,c2")
// into the engines' label option "level:s0:c1,c2".
func LevelOption(processLabel string) (string, error) {
	ctx, err := goselinux.NewContext(processLabel)
	if err != nil {
		return "", fmt.Errorf("selinux: label %q: %w", processLabel, err)
	}
	level := ctx["level"]
	if level == "" {
		return "", fmt.Errorf("selinux: label %q has no level", processLabel)
	}
	return "level:" + level, nil
}

// Relabel is the relabel option for a bind mount: private (Z) for a mount
// only this container uses, shared (z) for one several containers use, and
// none where SELinux is off. Engines ignore the option where SELinux is
// off, so it is set either way only when the host has SELinux.
func (l Labeler) Relabel(shared bool) engine.Relabel {
	switch {
	case !l.enabled():
		return engine.RelabelNone
	case shared:
		return engine.RelabelShared
	}
	return engine.RelabelPrivate
}
