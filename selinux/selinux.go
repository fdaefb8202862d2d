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
}

func (l Labeler) enabled() bool {
	if l.Enabled != nil {
		return *l.Enabled
	}
	return goselinux.GetEnabled()
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
	process, _, err := label.InitLabels(nil)
	if err != nil {
		return JobLabel{}, fmt.Errorf("selinux: reserve a job label: %w", err)
	}
	opt, err := LevelOption(process)
	if err != nil {
		goselinux.ReleaseLabel(process)
		return JobLabel{}, err
	}
	return JobLabel{Options: []string{opt}, process: process}, nil
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
