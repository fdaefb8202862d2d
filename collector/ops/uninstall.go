package ops

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/collector/config"
	"github.com/collectorhq/collector/collector/install"
	"github.com/collectorhq/collector/collector/runner"
	"github.com/collectorhq/collector/engine"
	"github.com/collectorhq/collector/internal/termsafe"
)

// UninstallOptions say how far `collector uninstall` goes.
type UninstallOptions struct {
	// Purge removes the config dir and the state dir too.
	Purge bool
	// Deregister asks the platform to delete the collector first, with
	// an API token of an operator read from Token (stdin or a file).
	Deregister bool
	Token      io.Reader
	Out        io.Writer
}

// Errors of Uninstall.
var (
	// ErrDeregisterRefused: the platform refused to delete the collector
	// (integrations still assigned to it): nothing was removed.
	ErrDeregisterRefused = errors.New("deregistration refused")
	// ErrAuth: the API token was missing or refused.
	ErrAuth = errors.New("not authorised")
)

// Uninstall stops and removes the collector's containers (daemon first,
// so that it does not bring the runner back), its job containers and job
// secrets, and with Purge its config and state dirs; with Deregister it
// first has the platform delete the collector. Run again, it finds
// nothing and says so.
func Uninstall(ctx context.Context, e *Env, o UninstallOptions) ([]string, error) {
	p := func(format string, args ...any) { fmt.Fprintf(o.Out, format+"\n", args...) }
	cfg, err := e.loadConfig()
	if err != nil && !errors.Is(err, ErrNotInstalled) {
		p("note: the config cannot be read (%v): removing what is found by name and label", err)
	}
	if o.Deregister {
		if cfg == nil {
			return nil, fmt.Errorf("%w: --deregister needs the collector's config (its ID and platform), and %s holds none", ErrNotInstalled, e.Dir)
		}
		if err := deregister(ctx, e, cfg, o.Token); err != nil {
			return nil, err
		}
		p("deregistered: the platform deleted collector %s and revoked its credentials", cfg.CollectorID)
	}
	var removed []string
	note := func(what string) { removed = append(removed, what); p("removed %s", what) }
	if cfg != nil && cfg.SystemdManaged() {
		stopUnits(e, p)
	}
	removeUnits(e, note)
	jobs, others, err := removeContainers(ctx, e, cfg, note, p)
	if err != nil {
		return removed, err
	}
	removeSecrets(e, cfg, note, p, jobs, others)
	if o.Purge {
		dirs := []string{e.Dir, e.stateDir()}
		for _, d := range dirs {
			if _, err := os.Lstat(d); err == nil {
				if err := os.RemoveAll(d); err != nil {
					return removed, fmt.Errorf("remove %s: %w", d, err)
				}
				note(d)
			}
		}
	}
	if len(removed) == 0 {
		p("nothing left to remove: no collector container, job, secret%s here", map[bool]string{true: " or directory", false: ""}[o.Purge])
	} else {
		p("done: the collector is uninstalled%s", map[bool]string{true: " and its config and state are gone", false: "; its config and state stay (--purge removes them)"}[o.Purge])
	}
	return removed, nil
}

// deregister deletes the collector on the platform with an operator's API
// token, over TLS pinned to the collector's CA pin.
func deregister(ctx context.Context, e *Env, cfg *config.Config, tokenIn io.Reader) error {
	tok, err := readSecretLine(tokenIn)
	if err != nil || tok == "" {
		return fmt.Errorf("%w: --deregister needs an API token of a platform operator on stdin (or --token-file): %v", ErrAuth, err)
	}
	hc, err := e.pinnedClient(cfg)
	if err != nil {
		return err
	}
	err = api.NewAdminClient(cfg.PlatformURL, tok, hc).DeleteCollector(ctx, cfg.CollectorID)
	switch status := api.StatusOf(err); {
	case err == nil, status == http.StatusNotFound:
		return nil
	case status == http.StatusConflict:
		return fmt.Errorf("%w: %s; nothing was removed (move its integrations to another collector, then run this again)",
			ErrDeregisterRefused, termsafe.String(err.Error()))
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return fmt.Errorf("%w: %s; nothing was removed", ErrAuth, termsafe.String(err.Error()))
	}
	return fmt.Errorf("deregister collector %s: %s; nothing was removed", cfg.CollectorID, termsafe.String(err.Error()))
}

func readSecretLine(r io.Reader) (string, error) {
	if r == nil {
		return "", errors.New("no input")
	}
	line, err := bufio.NewReader(io.LimitReader(r, 4096)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	return strings.TrimSpace(line), nil
}

// stopUnits stops the Quadlet services when this runs on the host with
// systemd, so that systemd does not bring back what is removed next.
func stopUnits(e *Env, p func(string, ...any)) {
	units := []string{e.roleNames()[0] + ".service", e.roleNames()[1] + ".service"}
	if _, err := os.Stat("/run/systemd/system"); err != nil || e.hostRoot() != "/" {
		p("note: systemd runs the collector: on the host, run `systemctl stop %s` before this", strings.Join(units, " "))
		return
	}
	if out, err := exec.Command("systemctl", append([]string{"stop"}, units...)...).CombinedOutput(); err != nil {
		p("note: systemctl stop: %v: %s", err, termsafe.String(strings.TrimSpace(string(out))))
		return
	}
	p("stopped %s", strings.Join(units, ", "))
}

// removeUnits removes the Quadlet units the installer wrote.
func removeUnits(e *Env, note func(string)) {
	found := false
	for _, n := range e.roleNames() {
		p := filepath.Join(e.hostRoot(), install.QuadletDir, n+".container")
		if err := os.Remove(p); err == nil {
			note(p)
			found = true
		}
	}
	if found {
		if _, err := os.Stat("/run/systemd/system"); err == nil && e.hostRoot() == "/" {
			exec.Command("systemctl", "daemon-reload").Run()
		}
	}
}

// jobSettle is how long Uninstall waits, after removing a runner, for a
// job container the engine was still creating for it: the runner may have
// sent the create just before it was killed, and the engine finishes it
// whether or not the runner is there to read the answer.
var jobSettle = 3 * time.Second

// removeContainers removes the daemon, the runner and the job containers
// of this collector: those labelled with its ID, the config's or, when the
// config cannot be read, that of the daemon and runner found by name. An
// engine may be shared by several collectors (COLLECTOR_NAME_PREFIX): a
// job container no collector found here owns is never removed, only
// counted. When it removed a runner, it sweeps the job containers again
// after jobSettle, until a sweep finds none, so that a create the engine
// finished after the first sweep leaves nothing behind.
//
// It returns the names of the job containers it removed, and how many
// job containers of other collectors it left.
func removeContainers(ctx context.Context, e *Env, cfg *config.Config, note func(string), p func(string, ...any)) ([]string, int, error) {
	if e.Engine == nil {
		return nil, 0, fmt.Errorf("%w: %v (the collector's containers cannot be removed without it)", ErrEngine, e.EngineErr)
	}
	var ids []string
	if cfg != nil {
		ids = append(ids, cfg.CollectorID)
	}
	removedRunner := false
	for i, n := range e.roleNames() {
		cctx, cancel := engineCtx(ctx)
		c, err := e.Engine.InspectContainer(cctx, n)
		cancel()
		if err == nil && c.Labels[install.LabelCollector] != "" && !slices.Contains(ids, c.Labels[install.LabelCollector]) {
			ids = append(ids, c.Labels[install.LabelCollector])
		}
		cctx, cancel = context.WithTimeout(ctx, time.Minute)
		err = e.Engine.RemoveContainer(cctx, n, true)
		cancel()
		switch {
		case err == nil:
			note("container " + n)
			removedRunner = removedRunner || i == 1
		case !errors.Is(err, engine.ErrNotFound):
			return nil, 0, fmt.Errorf("remove %s: %w", n, err)
		}
	}
	var jobNames []string
	const maxSweeps = 5
	for sweep := 1; ; sweep++ {
		found, err := removeJobContainers(ctx, e, ids, note, &jobNames)
		if err != nil {
			return nil, 0, err
		}
		if !removedRunner || (found == 0 && sweep > 1) {
			break
		}
		if sweep == maxSweeps {
			return nil, 0, fmt.Errorf("job containers keep appearing after the runner was removed (%d sweeps): is another runner of this collector running?", maxSweeps)
		}
		select {
		case <-ctx.Done():
			return nil, 0, ctx.Err()
		case <-time.After(jobSettle):
		}
	}
	cctx, cancel := engineCtx(ctx)
	others, err := e.Engine.ListContainers(cctx, map[string]string{runner.LabelRole: runner.RoleJob})
	cancel()
	if err != nil {
		return nil, 0, err
	}
	if len(others) > 0 {
		p("note: %d job container(s) of other collectors (label %s) are left: not this collector's, or its ID is unknown without its config",
			len(others), runner.LabelCollector)
	}
	return jobNames, len(others), nil
}

// removeJobContainers removes the job containers of the collectors ids,
// adds their names to names and says how many it found.
func removeJobContainers(ctx context.Context, e *Env, ids []string, note func(string), names *[]string) (int, error) {
	found := 0
	for _, id := range ids {
		cctx, cancel := engineCtx(ctx)
		jobs, err := e.Engine.ListContainers(cctx, map[string]string{runner.LabelRole: runner.RoleJob, runner.LabelCollector: id})
		cancel()
		if err != nil {
			return found, err
		}
		found += len(jobs)
		for _, j := range jobs {
			cctx, cancel := context.WithTimeout(ctx, time.Minute)
			err := e.Engine.RemoveContainer(cctx, j.ID, true)
			cancel()
			if err != nil && !errors.Is(err, engine.ErrNotFound) {
				return found, fmt.Errorf("remove job container %s: %w", termsafe.String(j.Name), err)
			}
			if err == nil {
				note("job container " + termsafe.String(j.Name))
			}
			*names = append(*names, strings.TrimPrefix(j.Name, "/"))
		}
	}
	return found, nil
}

// removeSecrets removes the job secret files (and Podman secrets an older
// runner made) of jobs: every job container of this collector is gone by
// now. A secret file is named after its job (its container's name), not
// its collector: those of the jobs removed (jobs) go; the others only
// when no other collector's job container is left on the engine (others),
// or they may be another collector's running job's.
func removeSecrets(e *Env, cfg *config.Config, note func(string), p func(string, ...any), jobs []string, others int) {
	dir := engine.DefaultSecretDir
	if cfg != nil {
		dir = secretDir(cfg)
	}
	des, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	left := 0
	for _, de := range des {
		name := de.Name()
		if !strings.HasPrefix(name, "collector-job-") {
			continue
		}
		if others > 0 && !slices.Contains(jobs, name) && !slices.Contains(jobs, strings.TrimSuffix(name, "-egress")) {
			left++
			continue
		}
		if err := os.Remove(filepath.Join(dir, name)); err == nil {
			note("job secret " + filepath.Join(dir, name))
		}
	}
	if left > 0 {
		p("note: %d job secret(s) in %s are left: other collectors' jobs run on this engine", left, dir)
	}
}
