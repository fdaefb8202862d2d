package runner_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/collectorhq/collector/collector/runner"
	"github.com/collectorhq/collector/engine"
	"github.com/collectorhq/collector/integration"
)

// program is what a fake job container does: it writes its output and
// returns its exit code; ctx ends when the container is stopped.
type program func(ctx context.Context, stdout, stderr io.Writer) int

// fakeEngine is the runner's engine in memory: containers run programs
// (as goroutines it owns and waits for), secrets are kept in a map. It
// implements runner.Engine and nothing more.
//
// It can go down as an engine's API service does when it stops (setDown):
// every call then fails with engine.ErrUnavailable, a follow or a wait
// under way is cut, and the programs run on (as containers do under
// conmon, or under dockerd's live restore).
type fakeEngine struct {
	mu         sync.Mutex
	down       bool
	cut        chan struct{} // closed when the engine goes down
	downChecks int           // Ping calls that failed while down
	// before, when set, is called at the start of every call with the
	// call's name ("remove", "logs"...) and its container or secret.
	before     func(op, name string)
	secrets    map[string][]byte
	containers map[string]*fakeContainer // by name, which is also the ID
	programs   map[string]program        // by job ID
	oom        map[string]bool           // job IDs whose container the "kernel" kills at its limit
	events     []string                  // "create NAME", "start NAME", "stop NAME", "remove NAME"
	running    map[string]int            // running containers by integration
	maxRunning map[string]int            // the most that ever ran at once, by integration
	maxAll     int                       // the most containers that ever ran at once
	// imageLabels are the labels of every image; everSecrets every
	// secret ever created, mounts every container's secret mounts and
	// specs its spec, by container name (none forgets a removal).
	imageLabels map[string]string
	// channel: programs write their stdout to the records channel the
	// runner gives, as the SDK does (false: to stdout, as an integration
	// without the SDK does).
	channel     bool
	everSecrets map[string][]byte
	mounts      map[string][]engine.SecretMount
	specs       map[string]engine.ContainerSpec
	procs       sync.WaitGroup
}

var _ runner.Engine = (*fakeEngine)(nil)

// fakeContainer is one container and its output.
type fakeContainer struct {
	spec   *engine.ContainerSpec
	state  string // created, running, exited
	exit   int
	stop   context.CancelFunc
	done   chan struct{} // closed at exit
	stdout bytes.Buffer
	stderr bytes.Buffer
	read   int // bytes of stdout a follow has delivered

	changed chan struct{} // closed, and replaced, when output comes or the state changes
}

func newFakeEngine() *fakeEngine {
	return &fakeEngine{secrets: map[string][]byte{}, containers: map[string]*fakeContainer{}, programs: map[string]program{}, oom: map[string]bool{},
		running: map[string]int{}, maxRunning: map[string]int{}, cut: make(chan struct{}),
		everSecrets: map[string][]byte{}, mounts: map[string][]engine.SecretMount{}, specs: map[string]engine.ContainerSpec{}}
}

// setDown stops (true) or starts (false) the engine's API; what it runs
// runs on.
func (e *fakeEngine) setDown(down bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	switch {
	case down && !e.down:
		close(e.cut)
	case !down && e.down:
		e.cut = make(chan struct{})
	}
	e.down = down
}

// failedChecks returns how many Ping calls failed while the engine was down.
func (e *fakeEngine) failedChecks() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.downChecks
}

// enter starts a call: it runs the test's hook, then fails if the engine
// is down; else it returns a channel closed if the engine goes down.
func (e *fakeEngine) enter(op, name string) (<-chan struct{}, error) {
	e.mu.Lock()
	hook := e.before
	e.mu.Unlock()
	if hook != nil {
		hook(op, name)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.down {
		return nil, fmt.Errorf("%s %s: %w: dial unix /run/podman/podman.sock: connect: connection refused", op, name, engine.ErrUnavailable)
	}
	return e.cut, nil
}

// wait returns once every program has returned.
func (e *fakeEngine) wait() { e.procs.Wait() }

// shutdown stops every program still running (the host going away): a
// test that failed with its engine down leaves some.
func (e *fakeEngine) shutdown() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, c := range e.containers {
		if c.stop != nil {
			c.stop()
		}
	}
}

// setProgram sets what the container of job id does.
func (e *fakeEngine) setProgram(id string, p program) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.programs[id] = p
}

// log returns the events so far.
func (e *fakeEngine) log() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.events...)
}

// has reports whether the event happened.
func (e *fakeEngine) has(event string) bool {
	for _, ev := range e.log() {
		if ev == event {
			return true
		}
	}
	return false
}

func (e *fakeEngine) Ping(ctx context.Context) error {
	if _, err := e.enter("ping", ""); err != nil {
		e.mu.Lock()
		e.downChecks++
		e.mu.Unlock()
		return err
	}
	return nil
}

func (e *fakeEngine) InspectImage(ctx context.Context, ref string) (*engine.Image, error) {
	if _, err := e.enter("inspect-image", ref); err != nil {
		return nil, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return &engine.Image{ID: "sha256:fake", RepoDigests: []string{ref}, User: "1000:1000", Labels: maps.Clone(e.imageLabels)}, nil
}

func (e *fakeEngine) CreateContainer(ctx context.Context, spec *engine.ContainerSpec) (string, error) {
	if _, err := e.enter("create", spec.Name); err != nil {
		return "", err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.containers[spec.Name]; ok {
		return "", fmt.Errorf("create container %s: %w", spec.Name, engine.ErrConflict)
	}
	e.mounts[spec.Name] = slices.Clone(spec.Secrets)
	e.specs[spec.Name] = *spec
	for _, s := range spec.Secrets {
		if _, ok := e.secrets[s.Name]; !ok {
			return "", fmt.Errorf("create container %s: secret %s: %w", spec.Name, s.Name, engine.ErrNotFound)
		}
	}
	e.containers[spec.Name] = &fakeContainer{spec: spec, state: "created", done: make(chan struct{}), changed: make(chan struct{})}
	e.events = append(e.events, "create "+spec.Name)
	return spec.Name, nil
}

func (e *fakeEngine) StartContainer(ctx context.Context, id string) error {
	if _, err := e.enter("start", id); err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	c, ok := e.containers[id]
	if !ok {
		return fmt.Errorf("start %s: %w", id, engine.ErrNotFound)
	}
	prog := e.programs[c.spec.Labels[runner.LabelJob]]
	if prog == nil {
		prog = func(context.Context, io.Writer, io.Writer) int { return 0 }
	}
	pctx, stop := context.WithCancel(context.Background())
	c.state, c.stop = "running", stop
	e.events = append(e.events, "start "+id)
	integ := c.spec.Labels[runner.LabelIntegration]
	e.running[integ]++
	e.maxRunning[integ] = max(e.maxRunning[integ], e.running[integ])
	all := 0
	for _, n := range e.running {
		all += n
	}
	e.maxAll = max(e.maxAll, all)
	c.notify()
	var stdout io.Writer = &fakeOutput{e: e, c: c, b: &c.stdout}
	var channel *os.File
	if path := channelPath(c.spec); e.channel && path != "" {
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			return fmt.Errorf("start %s: open the records channel: %w", id, err)
		}
		stdout, channel = f, f
	}
	e.procs.Go(func() {
		code := prog(pctx, stdout, &fakeOutput{e: e, c: c, b: &c.stderr})
		if channel != nil {
			channel.Close() // the process is gone
		}
		e.mu.Lock()
		defer e.mu.Unlock()
		c.state, c.exit = "exited", code
		e.running[integ]--
		close(c.done)
		c.notify()
		stop()
	})
	return nil
}

// notify wakes whoever follows c; called with the engine's mutex held.
func (c *fakeContainer) notify() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// fakeOutput is a container's stdout or stderr.
type fakeOutput struct {
	e *fakeEngine
	c *fakeContainer
	b *bytes.Buffer
}

func (o *fakeOutput) Write(p []byte) (int, error) {
	o.e.mu.Lock()
	defer o.e.mu.Unlock()
	o.b.Write(p)
	o.c.notify()
	return len(p), nil
}

func (e *fakeEngine) container(id string) (*fakeContainer, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	c, ok := e.containers[id]
	if !ok {
		return nil, fmt.Errorf("container %s: %w", id, engine.ErrNotFound)
	}
	return c, nil
}

// WaitContainer waits for the exit; the engine going down cuts it, as an
// engine's restart does (a connection reset, which the backends map to
// engine.ErrUnavailable).
// InspectContainer reports a container's state; one of a job marked oom
// that exited 137 reads as killed at its memory limit.
func (e *fakeEngine) InspectContainer(ctx context.Context, id string) (*engine.Container, error) {
	if _, err := e.enter("inspect", id); err != nil {
		return nil, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	c, ok := e.containers[id]
	if !ok {
		return nil, fmt.Errorf("inspect %s: %w", id, engine.ErrNotFound)
	}
	return &engine.Container{ID: id, Name: id, Labels: maps.Clone(c.spec.Labels), State: c.state, Running: c.state == "running",
		ExitCode: c.exit, OOMKilled: c.state == "exited" && c.exit == 137 && e.oom[c.spec.Labels[runner.LabelJob]]}, nil
}

func (e *fakeEngine) WaitContainer(ctx context.Context, id string) (int, error) {
	cut, err := e.enter("wait", id)
	if err != nil {
		return -1, err
	}
	c, err := e.container(id)
	if err != nil {
		return -1, err
	}
	select {
	case <-c.done:
		e.mu.Lock()
		defer e.mu.Unlock()
		return c.exit, nil
	case <-cut:
		return -1, fmt.Errorf("wait container %s: %w: read: connection reset by peer", id, engine.ErrUnavailable)
	case <-ctx.Done():
		return -1, ctx.Err()
	}
}

// ContainerLogs copies what the container wrote from its start, and with
// follow what it writes, until it exits with everything copied. The
// engine going down cuts a follow with an error no backend classifies (a
// stream cut half way: "unexpected EOF").
func (e *fakeEngine) ContainerLogs(ctx context.Context, id string, follow bool, stdout, stderr io.Writer) error {
	cut, err := e.enter("logs", id)
	if err != nil {
		return err
	}
	c, err := e.container(id)
	if err != nil {
		return err
	}
	var sent [2]int
	for {
		e.mu.Lock()
		out, errs := c.stdout.Bytes()[sent[0]:], c.stderr.Bytes()[sent[1]:]
		out, errs = bytes.Clone(out), bytes.Clone(errs)
		exited, changed := c.state == "exited", c.changed
		e.mu.Unlock()
		sent[0], sent[1] = sent[0]+len(out), sent[1]+len(errs)
		if _, err := stdout.Write(out); err != nil {
			return err
		}
		e.mu.Lock()
		c.read = max(c.read, sent[0])
		e.mu.Unlock()
		if _, err := stderr.Write(errs); err != nil {
			return err
		}
		if exited || !follow {
			return nil
		}
		select {
		case <-changed:
		case <-cut:
			return fmt.Errorf("logs of container %s: unexpected EOF", id)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (e *fakeEngine) StopContainer(ctx context.Context, id string, timeout time.Duration) error {
	if _, err := e.enter("stop", id); err != nil {
		return err
	}
	c, err := e.container(id)
	if err != nil {
		return err
	}
	e.mu.Lock()
	e.events = append(e.events, "stop "+id)
	stop := c.stop
	e.mu.Unlock()
	if stop != nil {
		stop()
		select {
		case <-c.done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func (e *fakeEngine) RemoveContainer(ctx context.Context, id string, force bool) error {
	if _, err := e.enter("remove", id); err != nil {
		return err
	}
	c, err := e.container(id)
	if err != nil {
		return err
	}
	e.mu.Lock()
	running := c.state == "running"
	e.mu.Unlock()
	if running && !force {
		return fmt.Errorf("remove %s: running: %w", id, engine.ErrConflict)
	}
	if running {
		e.StopContainer(ctx, id, 0)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.containers, id)
	e.events = append(e.events, "remove "+id)
	return nil
}

func (e *fakeEngine) ListContainers(ctx context.Context, labels map[string]string) ([]engine.Container, error) {
	if _, err := e.enter("list", ""); err != nil {
		return nil, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []engine.Container
	for name, c := range e.containers {
		match := true
		for k, v := range labels {
			match = match && c.spec.Labels[k] == v
		}
		if match {
			out = append(out, engine.Container{ID: name, Name: name, Labels: maps.Clone(c.spec.Labels), State: c.state, Running: c.state == "running"})
		}
	}
	return out, nil
}

func (e *fakeEngine) ContainerStats(ctx context.Context, id string) (*engine.Stats, error) {
	if _, err := e.enter("stats", id); err != nil {
		return nil, err
	}
	if _, err := e.container(id); err != nil {
		return nil, err
	}
	return &engine.Stats{MemoryBytes: 8 << 20, CPUPercent: 12.5}, nil
}

func (e *fakeEngine) CreateSecret(ctx context.Context, name string, data []byte) error {
	if _, err := e.enter("create-secret", name); err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.secrets[name]; ok {
		return fmt.Errorf("create secret %s: %w", name, engine.ErrConflict)
	}
	e.secrets[name] = bytes.Clone(data)
	e.everSecrets[name] = bytes.Clone(data)
	return nil
}

func (e *fakeEngine) RemoveSecret(ctx context.Context, name string) error {
	if _, err := e.enter("remove-secret", name); err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.secrets[name]; !ok {
		return fmt.Errorf("remove secret %s: %w", name, engine.ErrNotFound)
	}
	delete(e.secrets, name)
	return nil
}

// hasSecret reports whether the secret exists.
func (e *fakeEngine) hasSecret(name string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	_, ok := e.secrets[name]
	return ok
}

// hasContainer reports whether the container exists.
func (e *fakeEngine) hasContainer(name string) bool {
	_, err := e.container(name)
	return err == nil
}

// fakeImages stands in for the signature check: every image passes, by a
// made-up digest.
type fakeImages struct{}

func (fakeImages) VerifyAndPull(ctx context.Context, ref string) (string, error) {
	return ref + "@sha256:" + fmt.Sprintf("%064x", 1), nil
}

// exited reports whether the container exists and has exited.
func (e *fakeEngine) exited(name string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	c, ok := e.containers[name]
	return ok && c.state == "exited"
}

// vanish removes a container behind the runner's back (an engine that
// lost it in its restart), stopping its program.
func (e *fakeEngine) vanish(name string) {
	e.mu.Lock()
	c, ok := e.containers[name]
	delete(e.containers, name)
	e.mu.Unlock()
	if ok && c.stop != nil {
		c.stop()
		<-c.done
	}
}

// rewrite replaces what the container wrote to stdout so far (a log the
// engine lost or garbled in its restart).
func (e *fakeEngine) rewrite(name string, stdout []byte) {
	e.mu.Lock()
	defer e.mu.Unlock()
	c := e.containers[name]
	c.stdout.Reset()
	c.stdout.Write(stdout)
}

// caughtUp reports whether a follow delivered all the container's stdout
// so far, and there is some.
func (e *fakeEngine) caughtUp(name string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	c, ok := e.containers[name]
	return ok && c.stdout.Len() > 0 && c.read == c.stdout.Len()
}

// channelPath is the host path of the records channel a spec names, "" if
// none.
func channelPath(spec *engine.ContainerSpec) string {
	inside := spec.Env[integration.RecordsEnv]
	for _, m := range spec.Mounts {
		if rest, ok := strings.CutPrefix(inside, m.Target+"/"); ok {
			return filepath.Join(m.Source, rest)
		}
	}
	return ""
}
