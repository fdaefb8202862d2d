package install

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/collectorhq/collector/collector/config"
	"github.com/collectorhq/collector/engine"
)

// QuadletDir is where the systemd generator of Podman (Quadlet) reads the
// administrator's units.
const QuadletDir = "/etc/containers/systemd"

// QuadletUnits renders the daemon's and the runner's specs as Quadlet
// .container units, by file name: the same image by digest, mounts,
// labels, limits, capabilities, labels and health check as the containers
// the installer creates, with systemd as their supervisor (Restart=always
// in place of the engine's restart policy, started at boot by
// multi-user.target).
func QuadletUnits(c *config.Config) (map[string]string, error) {
	out := map[string]string{}
	for _, r := range []struct {
		spec *engine.ContainerSpec
		desc string
	}{
		{DaemonSpec(c), "Collector daemon: heartbeats, the runner's health, upgrades"},
		{RunnerSpec(c), "Collector runner: leases and runs jobs"},
	} {
		u, err := QuadletUnit(r.spec, r.desc)
		if err != nil {
			return nil, err
		}
		out[r.spec.Name+".container"] = u
	}
	return out, nil
}

// quadletHeader says where a unit comes from and why it has no AutoUpdate.
const quadletHeader = `# Written by ` + "`collector install --quadlet`" + ` from the container spec the installer
# uses (collector/install/specs.go); run the installer again to change it.
#
# AutoUpdate is not set (off): upgrades are the collector daemon's job. It
# verifies the new image's signature against the collector's own trust root
# before pulling it, and runs it by digest, keeping the previous one to go back
# to. podman auto-update would pull whatever a tag points to, with no signature
# check of ours, and restart the collector behind the daemon's back.
`

// QuadletUnit renders one spec as a Quadlet .container unit. A spec with
// what the collector's own containers never have (secrets, privileges,
// an entrypoint, a user) is refused rather than rendered partly.
func QuadletUnit(s *engine.ContainerSpec, description string) (string, error) {
	if len(s.Secrets) > 0 || s.Privileged || len(s.Entrypoint) > 0 || s.User != "" {
		return "", fmt.Errorf("quadlet unit for %s: the spec has secrets, privileges, an entrypoint or a user, which the renderer does not carry", s.Name)
	}
	if !strings.Contains(s.Image, "@sha256:") {
		return "", fmt.Errorf("quadlet unit for %s: image %q is not a digest reference", s.Name, s.Image)
	}
	var b strings.Builder
	line := func(k, v string) { fmt.Fprintf(&b, "%s=%s\n", k, v) }
	b.WriteString(quadletHeader)
	b.WriteString("\n[Unit]\n")
	line("Description", description)
	line("Documentation", "https://github.com/collectorhq/collector/blob/main/docs/operations.md")
	// The daemon and runner drive the engine through its API socket.
	line("Requires", "podman.socket")
	line("After", "podman.socket network-online.target")
	line("Wants", "network-online.target")

	b.WriteString("\n[Container]\n")
	line("ContainerName", s.Name)
	line("Image", s.Image)
	if len(s.Command) > 0 {
		line("Exec", quoteArgs(s.Command))
	}
	for _, k := range sortedKeys(s.Env) {
		line("Environment", quoteArgs([]string{k + "=" + s.Env[k]}))
	}
	for _, k := range sortedKeys(s.Labels) {
		line("Label", quoteArgs([]string{k + "=" + s.Labels[k]}))
	}
	for _, m := range s.Mounts {
		line("Volume", escapeValue(volume(m)))
	}
	for _, t := range s.Tmpfs {
		line("Tmpfs", escapeValue(t.Target+":"+strings.Join(engine.TmpfsOptions(t), ",")))
	}
	if s.Network != "" {
		line("Network", escapeValue(s.Network))
	}
	for _, c := range s.CapDrop {
		line("DropCapability", c)
	}
	for _, c := range s.CapAdd {
		line("AddCapability", c)
	}
	if s.NoNewPrivileges {
		line("NoNewPrivileges", "true")
	}
	if s.ReadOnlyRootfs {
		line("ReadOnly", "true")
	}
	if err := securityLabel(s.SELinuxOptions, line); err != nil {
		return "", fmt.Errorf("quadlet unit for %s: %w", s.Name, err)
	}
	for _, u := range s.Ulimits {
		line("Ulimit", fmt.Sprintf("%s=%d:%d", u.Name, u.Soft, u.Hard))
	}
	if h := s.HealthCheck; h != nil {
		line("HealthCmd", escapeValue(healthCmd(h.Command)))
		line("HealthInterval", duration(h.Interval))
		line("HealthTimeout", duration(h.Timeout))
		line("HealthStartPeriod", duration(h.StartPeriod))
		line("HealthRetries", strconv.Itoa(h.Retries))
	}
	if s.Log.MaxBytes > 0 {
		// Under systemd the journal keeps the log, bounded by journald's
		// own limits (SystemMaxUse), and `journalctl -u` reads it.
		line("LogDriver", "journald")
	}
	// Memory and pids through PodmanArgs: the Memory= and PidsLimit=
	// keys are newer than the Podman of RHEL 8 and 9.
	if args := resourceArgs(s.Resources); len(args) > 0 {
		line("PodmanArgs", quoteArgs(args))
	}

	b.WriteString("\n[Service]\n")
	line("Restart", "always")
	line("TimeoutStartSec", "300")
	line("TimeoutStopSec", "30")

	b.WriteString("\n[Install]\n")
	line("WantedBy", "multi-user.target default.target")
	return b.String(), nil
}

func securityLabel(opts []string, line func(k, v string)) error {
	for _, o := range opts {
		switch {
		case o == "disable":
			line("SecurityLabelDisable", "true")
		case strings.HasPrefix(o, "type:"):
			line("SecurityLabelType", strings.TrimPrefix(o, "type:"))
		case strings.HasPrefix(o, "level:"):
			line("SecurityLabelLevel", strings.TrimPrefix(o, "level:"))
		default:
			return fmt.Errorf("SELinux option %q has no Quadlet key", o)
		}
	}
	return nil
}

func volume(m engine.Mount) string {
	v := m.Source + ":" + m.Target
	var opts []string
	if m.ReadOnly {
		opts = append(opts, "ro")
	}
	if m.Relabel != engine.RelabelNone {
		opts = append(opts, string(m.Relabel))
	}
	if len(opts) > 0 {
		v += ":" + strings.Join(opts, ",")
	}
	return v
}

// healthCmd is the exec form of --health-cmd: a JSON array, run without a
// shell (the collector image has none).
func healthCmd(cmd []string) string {
	q := make([]string, len(cmd))
	for i, a := range cmd {
		q[i] = strconv.Quote(a)
	}
	return "[" + strings.Join(q, ",") + "]"
}

func resourceArgs(r engine.Resources) []string {
	var args []string
	if r.MemoryBytes > 0 {
		args = append(args, "--memory", strconv.FormatInt(r.MemoryBytes, 10))
	}
	if r.Pids > 0 {
		args = append(args, "--pids-limit", strconv.FormatInt(r.Pids, 10))
	}
	if r.CPUs > 0 {
		args = append(args, "--cpus", strconv.FormatFloat(r.CPUs, 'f', -1, 64))
	}
	return args
}

func duration(d time.Duration) string {
	if d%time.Second == 0 {
		return strconv.FormatInt(int64(d/time.Second), 10) + "s"
	}
	return d.String()
}

// escapeValue makes v literal in a unit file: systemd expands % specifiers
// and backslash escapes.
func escapeValue(v string) string {
	return strings.NewReplacer(`\`, `\\`, "%", "%%").Replace(v)
}

// quoteArgs writes args as one unit-file value that splits back into
// them: each argument in double quotes when it needs them.
func quoteArgs(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		a = escapeValue(a)
		if a == "" || strings.ContainsAny(a, " \t\"'") {
			a = `"` + strings.ReplaceAll(a, `"`, `\"`) + `"`
		}
		q[i] = a
	}
	return strings.Join(q, " ")
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// WriteQuadletUnits writes the units into dir (0644, as systemd's own
// units are: they hold no secret) and returns their paths and whether any
// changed.
func WriteQuadletUnits(dir string, c *config.Config) ([]string, bool, error) {
	units, err := QuadletUnits(c)
	if err != nil {
		return nil, false, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, false, fmt.Errorf("quadlet dir: %w", err)
	}
	var paths []string
	changed := false
	for _, name := range sortedKeys(units) {
		p := filepath.Join(dir, name)
		paths = append(paths, p)
		old, err := os.ReadFile(p)
		if err == nil && string(old) == units[name] {
			continue
		}
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, false, err
		}
		if err := writeAtomic(p, []byte(units[name]), 0o644); err != nil {
			return nil, false, fmt.Errorf("write %s: %w", p, err)
		}
		changed = true
	}
	return paths, changed, nil
}

func writeAtomic(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return err
	}
	if err := os.Chmod(tmp, mode); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
