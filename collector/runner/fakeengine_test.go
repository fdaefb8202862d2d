package runner_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"sync"
	"time"

	"github.com/collectorhq/collector/collector/runner"
	"github.com/collectorhq/collector/engine"
)

// program is what a fake job container does: it writes its output and
// returns its exit code; ctx ends when the container is stopped.
type program func(ctx context.Context, stdout, stderr io.Writer) int

// fakeEngine is the runner's engine in memory: containers run programs
// (as goroutines it owns and waits for), secrets are kept in a map. It
// implements runner.Engine and nothing more.
type fakeEngine struct {
	mu         sync.Mutex
	infoErr    error
	secrets    map[string][]byte
	containers map[string]*fakeContainer // by name, which is also the ID
	programs   map[string]program        // by job ID
	events     []string                  // "create NAME", "start NAME", "stop NAME", "remove NAME"
	running    map[string]int            // running containers by integration
	maxRunning map[string]int            // the most that ever ran at once, by integration
	maxAll     int                       // the most containers that ever ran at once
	procs      sync.WaitGroup
}

var _ runner.Engine = (*fakeEngine)(nil)

// fakeContainer is one container and its output.
type fakeContainer struct {
	spec    *engine.ContainerSpec
	state   string // created, running, exited
	exit    int
	stop    context.CancelFunc
	done    chan struct{} // closed at exit
	stdout  bytes.Buffer
	stderr  bytes.Buffer
	changed chan struct{} // closed, and replaced, when output comes or the state changes
}

func newFakeEngine() *fakeEngine {
	return &fakeEngine{secrets: map[string][]byte{}, containers: map[string]*fakeContainer{}, programs: map[string]program{},
		running: map[string]int{}, maxRunning: map[string]int{}}
}

// wait returns once every program has returned.
func (e *fakeEngine) wait() { e.procs.Wait() }

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

func (e *fakeEngine) Info(ctx context.Context) (*engine.Info, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.infoErr != nil {
		return nil, e.infoErr
	}
	return &engine.Info{Kind: engine.KindPodman, Version: "4.3.1"}, nil
}

func (e *fakeEngine) InspectImage(ctx context.Context, ref string) (*engine.Image, error) {
	return &engine.Image{ID: "sha256:fake", RepoDigests: []string{ref}, User: "1000:1000"}, nil
}

func (e *fakeEngine) CreateContainer(ctx context.Context, spec *engine.ContainerSpec) (string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.containers[spec.Name]; ok {
		return "", fmt.Errorf("create container %s: %w", spec.Name, engine.ErrConflict)
	}
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
	e.procs.Go(func() {
		code := prog(pctx, &fakeOutput{e: e, c: c, b: &c.stdout}, &fakeOutput{e: e, c: c, b: &c.stderr})
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

func (e *fakeEngine) WaitContainer(ctx context.Context, id string) (int, error) {
	c, err := e.container(id)
	if err != nil {
		return -1, err
	}
	select {
	case <-c.done:
		e.mu.Lock()
		defer e.mu.Unlock()
		return c.exit, nil
	case <-ctx.Done():
		return -1, ctx.Err()
	}
}

// ContainerLogs copies what the container wrote, and with follow what it
// writes, until it exits with everything copied.
func (e *fakeEngine) ContainerLogs(ctx context.Context, id string, follow bool, stdout, stderr io.Writer) error {
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
		if _, err := stderr.Write(errs); err != nil {
			return err
		}
		if exited || !follow {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (e *fakeEngine) StopContainer(ctx context.Context, id string, timeout time.Duration) error {
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
	if _, err := e.container(id); err != nil {
		return nil, err
	}
	return &engine.Stats{MemoryBytes: 8 << 20, CPUPercent: 12.5}, nil
}

func (e *fakeEngine) CreateSecret(ctx context.Context, name string, data []byte) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.secrets[name]; ok {
		return fmt.Errorf("create secret %s: %w", name, engine.ErrConflict)
	}
	e.secrets[name] = bytes.Clone(data)
	return nil
}

func (e *fakeEngine) RemoveSecret(ctx context.Context, name string) error {
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
