package podman

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/containers/podman/v5/libpod/define"
	"github.com/containers/podman/v5/pkg/bindings"
	"github.com/containers/podman/v5/pkg/bindings/images"
	"github.com/containers/podman/v5/pkg/bindings/secrets"
	"github.com/containers/podman/v5/pkg/bindings/system"
	"github.com/containers/podman/v5/pkg/errorhandling"

	"github.com/collectorhq/collector/engine"
)

var _ engine.Engine = (*Engine)(nil)

// Engine talks to one Podman service.
type Engine struct {
	conn    context.Context // carries the bindings' connection
	socket  string
	secrets engine.SecretFiles
}

// Option is an optional setting of New.
type Option func(*Engine)

// WithSecretDir keeps secret files in dir, a directory on a tmpfs visible at
// the same path to the service and to this process (default:
// engine.DefaultSecretDir).
func WithSecretDir(dir string) Option {
	return func(e *Engine) {
		if dir != "" {
			e.secrets.Dir = dir
		}
	}
}

// New connects to the Podman service at uri ("unix:///run/podman/podman.sock").
func New(ctx context.Context, uri string, opts ...Option) (*Engine, error) {
	if !strings.HasPrefix(uri, "unix://") {
		uri = "unix://" + uri
	}
	// The bindings keep the connection in a context; keep it apart from the
	// caller's, whose cancellation must not kill later calls.
	conn, err := bindings.NewConnection(context.WithoutCancel(ctx), uri)
	if err != nil {
		return nil, fmt.Errorf("%w: connect to podman at %s: %v", engine.ErrUnavailable, uri, err)
	}
	e := &Engine{conn: conn, socket: strings.TrimPrefix(uri, "unix://"), secrets: engine.SecretFiles{Dir: engine.DefaultSecretDir}}
	for _, o := range opts {
		o(e)
	}
	return e, nil
}

// Kind returns engine.KindPodman.
func (e *Engine) Kind() engine.Kind { return engine.KindPodman }

// Close releases idle connections.
func (e *Engine) Close() error {
	if c, err := bindings.GetClient(e.conn); err == nil {
		c.Client.CloseIdleConnections()
	}
	return nil
}

// call returns a context that carries the connection and ends with ctx.
// ended says whether ctx is done or past its deadline. The call's own
// context has ctx's deadline on a timer of its own, which may fire a
// moment before ctx's: a call cut by it ended with ctx.
func ended(ctx context.Context) bool {
	dl, ok := ctx.Deadline()
	return ctx.Err() != nil || (ok && !time.Now().Before(dl))
}

func (e *Engine) call(ctx context.Context) (context.Context, context.CancelFunc) {
	c, cancel := context.WithCancel(e.conn)
	stop := context.AfterFunc(ctx, cancel)
	if dl, ok := ctx.Deadline(); ok {
		var cancelDL context.CancelFunc
		c, cancelDL = context.WithDeadline(c, dl)
		return c, func() { stop(); cancelDL(); cancel() }
	}
	return c, func() { stop(); cancel() }
}

// Ping asks the service's _ping endpoint, which only answers.
func (e *Engine) Ping(ctx context.Context) error {
	c, cancel := e.call(ctx)
	defer cancel()
	conn, err := bindings.GetClient(c)
	if err != nil {
		return mapErr(err, "ping")
	}
	res, err := conn.DoRequest(c, nil, http.MethodGet, "/_ping", nil, nil)
	if err != nil {
		return mapErr(err, "ping")
	}
	defer res.Body.Close()
	if err := res.Process(nil); err != nil {
		return mapErr(err, "ping")
	}
	return nil
}

// Info pings the service and describes it.
func (e *Engine) Info(ctx context.Context) (*engine.Info, error) {
	c, cancel := e.call(ctx)
	defer cancel()
	info, err := system.Info(c, nil)
	if err != nil {
		return nil, mapErr(err, "info")
	}
	cg := strings.TrimPrefix(info.Host.CgroupsVersion, "v")
	return &engine.Info{
		Kind:           engine.KindPodman,
		Version:        info.Version.Version,
		APIVersion:     info.Version.APIVersion,
		Rootless:       info.Host.Security.Rootless,
		SELinuxEnabled: info.Host.Security.SELinuxEnabled,
		CgroupVersion:  cg,
		OS:             info.Host.OS,
		Arch:           info.Host.Arch,
		CPUs:           info.Host.CPUs,
		MemoryBytes:    info.Host.MemTotal,
		LogDriver:      info.Host.LogDriver,
		Runtime:        runtimeName(info.Host.OCIRuntime),
		Storage:        storage(info.Store),
	}, nil
}

func runtimeName(r *define.OCIRuntimeInfo) string {
	if r == nil {
		return ""
	}
	return r.Name
}

func storage(s *define.StoreInfo) engine.Storage {
	if s == nil {
		return engine.Storage{}
	}
	return engine.Storage{Root: s.GraphRoot, TotalBytes: int64(s.GraphRootAllocated), UsedBytes: int64(s.GraphRootUsed)}
}

// ListImages lists the local images.
func (e *Engine) ListImages(ctx context.Context) ([]engine.Image, error) {
	c, cancel := e.call(ctx)
	defer cancel()
	list, err := images.List(c, new(images.ListOptions).WithAll(false))
	if err != nil {
		return nil, mapErr(err, "list images")
	}
	out := make([]engine.Image, 0, len(list))
	for _, l := range list {
		out = append(out, engine.Image{ID: l.ID, RepoTags: l.RepoTags, RepoDigests: l.RepoDigests, Labels: l.Labels, Size: l.Size})
	}
	return out, nil
}

// mapErr turns the bindings' errors into the engine's typed errors.
func mapErr(err error, op string) error {
	if err == nil {
		return nil
	}
	var em *errorhandling.ErrorModel
	if errors.As(err, &em) {
		return fmt.Errorf("%s: %w: %s", op, classify(em.ResponseCode, em.Error()), em.Error())
	}
	var emv errorhandling.ErrorModel
	if errors.As(err, &emv) {
		return fmt.Errorf("%s: %w: %s", op, classify(emv.ResponseCode, emv.Error()), emv.Error())
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s: %w", op, err)
	}
	var ce bindings.ConnectError
	var ne net.Error
	if errors.As(err, &ce) || errors.As(err, &ne) || strings.Contains(err.Error(), "connection refused") {
		return fmt.Errorf("%s: %w: %v", op, engine.ErrUnavailable, err)
	}
	if typed := classify(0, err.Error()); typed != nil {
		return fmt.Errorf("%s: %w: %v", op, typed, err)
	}
	return fmt.Errorf("%s: %v", op, err)
}

// classify maps a status code, or failing that the message Podman gives
// (the 4.3 service answers 500 for some conflicts), to a typed error.
func classify(code int, msg string) error {
	switch code {
	case 404:
		return engine.ErrNotFound
	case 409:
		return engine.ErrConflict
	}
	m := strings.ToLower(msg)
	switch {
	case strings.Contains(m, "no such"), strings.Contains(m, "not found"),
		strings.Contains(m, "manifest unknown"), strings.Contains(m, "name unknown"):
		return engine.ErrNotFound
	case strings.Contains(m, "already in use"), strings.Contains(m, "in use"),
		strings.Contains(m, "already exists"):
		return engine.ErrConflict
	}
	if code == 0 {
		return nil
	}
	return errors.New("engine error")
}

// ImageExists reports whether ref is present locally.
func (e *Engine) ImageExists(ctx context.Context, ref string) (bool, error) {
	c, cancel := e.call(ctx)
	defer cancel()
	ok, err := images.Exists(c, ref, nil)
	return ok, mapErr(err, "image exists "+ref)
}

// InspectImage describes a local image.
func (e *Engine) InspectImage(ctx context.Context, ref string) (*engine.Image, error) {
	c, cancel := e.call(ctx)
	defer cancel()
	r, err := images.GetImage(c, ref, nil)
	if err != nil {
		return nil, mapErr(err, "inspect image "+ref)
	}
	img := &engine.Image{
		ID:          r.ID,
		RepoTags:    r.RepoTags,
		RepoDigests: r.RepoDigests,
		Labels:      r.Labels,
		Size:        r.Size,
	}
	if r.Config != nil {
		img.User = r.Config.User
	}
	return img, nil
}

// PullImage pulls ref and returns the pulled image.
func (e *Engine) PullImage(ctx context.Context, ref string, opts engine.PullOptions) (*engine.Image, error) {
	c, cancel := e.call(ctx)
	defer cancel()
	o := new(images.PullOptions).WithQuiet(true).WithPolicy("always")
	if opts.Insecure {
		o = o.WithSkipTLSVerify(true)
	}
	if opts.Auth != nil {
		o = o.WithUsername(opts.Auth.Username).WithPassword(opts.Auth.Password)
	}
	ids, err := images.Pull(c, ref, o)
	if err != nil {
		return nil, mapErr(err, "pull "+ref)
	}
	if len(ids) == 0 {
		return nil, fmt.Errorf("pull %s: the engine reported no image", ref)
	}
	return e.InspectImage(ctx, ids[0])
}

// LoadImage loads a docker-archive tar (POST /images/load).
func (e *Engine) LoadImage(ctx context.Context, archive io.Reader) error {
	c, cancel := e.call(ctx)
	defer cancel()
	rep, err := images.Load(c, archive)
	if err != nil {
		return mapErr(err, "load image")
	}
	if len(rep.Names) == 0 {
		return errors.New("load image: the engine reported no image")
	}
	return nil
}

// RemoveImage removes a local image.
func (e *Engine) RemoveImage(ctx context.Context, ref string, force bool) error {
	c, cancel := e.call(ctx)
	defer cancel()
	_, errs := images.Remove(c, []string{ref}, new(images.RemoveOptions).WithForce(force))
	return mapErr(errors.Join(errs...), "remove image "+ref)
}

// CreateSecret writes data to a root-only file in the secret dir, which
// must be on a tmpfs: Podman's own secrets reach the disk (see
// engine.SecretFiles). A taken name gives engine.ErrConflict.
func (e *Engine) CreateSecret(ctx context.Context, name string, data []byte) error {
	return e.secrets.Create(name, data)
}

// RemoveSecret deletes the secret's file. A Podman secret of that name,
// left by an older collector that used them, is removed as well.
func (e *Engine) RemoveSecret(ctx context.Context, name string) error {
	err := e.secrets.Remove(name)
	if !errors.Is(err, engine.ErrNotFound) {
		return err
	}
	c, cancel := e.call(ctx)
	defer cancel()
	// secrets.Exists always answers false on 4.3: ask Inspect.
	if _, ierr := secrets.Inspect(c, name, nil); ierr != nil {
		return err
	}
	return mapErr(secrets.Remove(c, name), fmt.Sprintf("remove secret %q", name))
}

// logWriter adapts the bindings' string channel to an io.Writer.
func pump(ctx context.Context, run func(out, errc chan string) error, stdout, stderr io.Writer) error {
	outc, errc := make(chan string), make(chan string)
	done := make(chan error, 1)
	go func() { done <- run(outc, errc) }()
	var werr error
	write := func(w io.Writer, s string) {
		if werr == nil && w != nil {
			_, werr = io.WriteString(w, s)
		}
	}
	for {
		select {
		case s := <-outc:
			write(stdout, s)
		case s := <-errc:
			write(stderr, s)
		case err := <-done:
			if werr != nil {
				return werr
			}
			return err
		case <-ctx.Done():
			// The bindings may be blocked sending: keep receiving until
			// the cancelled request returns.
			go func() {
				for {
					select {
					case <-outc:
					case <-errc:
					case <-done:
						return
					}
				}
			}()
			return ctx.Err()
		}
	}
}

// durationSeconds rounds d up to whole seconds, at least 0.
func durationSeconds(d time.Duration) uint {
	if d <= 0 {
		return 0
	}
	return uint((d + time.Second - 1) / time.Second)
}
