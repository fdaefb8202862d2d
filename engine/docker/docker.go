package docker

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/registry"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/jsonmessage"

	"github.com/collectorhq/collector/engine"
)

var _ engine.Engine = (*Engine)(nil)

// Engine talks to one Docker-API endpoint.
type Engine struct {
	cli     *client.Client
	secrets engine.SecretFiles
	follow  engine.FollowMode
	// podman: the API is Podman's Docker-compatible one, whose own API
	// (libpod) answers on the same socket.
	podman bool
}

// New connects to the Docker API at uri ("unix:///var/run/docker.sock"),
// keeping secret files in secretDir (engine.DefaultSecretDir if empty).
func New(ctx context.Context, uri, secretDir string) (*Engine, error) {
	if !strings.HasPrefix(uri, "unix://") {
		uri = "unix://" + uri
	}
	if secretDir == "" {
		secretDir = engine.DefaultSecretDir
	}
	cli, err := client.NewClientWithOpts(client.WithHost(uri), client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, fmt.Errorf("docker client for %s: %w", uri, err)
	}
	if _, err := cli.Ping(ctx); err != nil {
		cli.Close()
		return nil, fmt.Errorf("%w: ping docker API at %s: %v", engine.ErrUnavailable, uri, err)
	}
	follow, err := followMode(ctx, cli)
	if err != nil {
		cli.Close()
		return nil, fmt.Errorf("%w: version of the docker API at %s: %v", engine.ErrUnavailable, uri, err)
	}
	return &Engine{cli: cli, secrets: engine.SecretFiles{Dir: secretDir}, follow: follow, podman: follow == engine.FollowStored}, nil
}

// followMode trusts the follow of a log to dockerd, not to Podman's
// compatible API, which names itself among the version's components.
func followMode(ctx context.Context, cli *client.Client) (engine.FollowMode, error) {
	v, err := cli.ServerVersion(ctx)
	if err != nil {
		return engine.FollowStored, err
	}
	for _, c := range v.Components {
		if strings.Contains(strings.ToLower(c.Name), "podman") {
			return engine.FollowStored, nil
		}
	}
	return engine.FollowLive, nil
}

// Kind returns engine.KindDocker.
func (e *Engine) Kind() engine.Kind { return engine.KindDocker }

// Close releases the client.
func (e *Engine) Close() error { return e.cli.Close() }

// mapErr turns the Docker client's errors into the engine's typed errors.
func mapErr(err error, op string) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%s: %w", op, err)
	case cerrdefs.IsNotFound(err):
		return fmt.Errorf("%s: %w: %v", op, engine.ErrNotFound, err)
	case cerrdefs.IsConflict(err), cerrdefs.IsAlreadyExists(err):
		return fmt.Errorf("%s: %w: %v", op, engine.ErrConflict, err)
	case client.IsErrConnectionFailed(err):
		return fmt.Errorf("%s: %w: %v", op, engine.ErrUnavailable, err)
	}
	m := strings.ToLower(err.Error())
	switch {
	case strings.Contains(m, "manifest unknown"), strings.Contains(m, "not found"),
		strings.Contains(m, "name unknown"), strings.Contains(m, "no such"):
		return fmt.Errorf("%s: %w: %v", op, engine.ErrNotFound, err)
	case strings.Contains(m, "already in use"):
		return fmt.Errorf("%s: %w: %v", op, engine.ErrConflict, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}

// Ping asks the daemon's _ping endpoint, which only answers.
func (e *Engine) Ping(ctx context.Context) error {
	if _, err := e.cli.Ping(ctx); err != nil {
		return mapErr(err, "ping")
	}
	return nil
}

// Info pings the engine and describes it.
func (e *Engine) Info(ctx context.Context) (*engine.Info, error) {
	info, err := e.cli.Info(ctx)
	if err != nil {
		return nil, mapErr(err, "info")
	}
	out := &engine.Info{
		Kind:          engine.KindDocker,
		Version:       info.ServerVersion,
		APIVersion:    e.cli.ClientVersion(),
		CgroupVersion: info.CgroupVersion,
		OS:            info.OSType,
		Arch:          info.Architecture,
		CPUs:          info.NCPU,
		MemoryBytes:   info.MemTotal,
	}
	out.Runtime, out.LogDriver = info.DefaultRuntime, info.LoggingDriver
	out.Storage.Root = info.DockerRootDir
	for _, o := range info.SecurityOptions {
		switch {
		case strings.Contains(o, "name=selinux"):
			out.SELinuxEnabled = true
		case strings.Contains(o, "name=rootless"):
			out.Rootless = true
		}
	}
	return out, nil
}

// ImageExists reports whether ref is present locally.
func (e *Engine) ImageExists(ctx context.Context, ref string) (bool, error) {
	_, err := e.InspectImage(ctx, ref)
	if errors.Is(err, engine.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// InspectImage describes a local image.
func (e *Engine) InspectImage(ctx context.Context, ref string) (*engine.Image, error) {
	r, err := e.cli.ImageInspect(ctx, ref)
	if err != nil {
		return nil, mapErr(err, "inspect image "+ref)
	}
	img := &engine.Image{ID: r.ID, RepoTags: r.RepoTags, RepoDigests: r.RepoDigests, Size: r.Size}
	if r.Config != nil {
		img.Labels = r.Config.Labels
		img.User = r.Config.User
	}
	return img, nil
}

// PullImage pulls ref, reading the progress stream to its end so that an
// error reported inside it (with HTTP 200) fails the pull.
func (e *Engine) PullImage(ctx context.Context, ref string, opts engine.PullOptions) (*engine.Image, error) {
	var po image.PullOptions
	if opts.Auth != nil {
		b, err := json.Marshal(registry.AuthConfig{Username: opts.Auth.Username, Password: opts.Auth.Password})
		if err != nil {
			return nil, err
		}
		po.RegistryAuth = base64.URLEncoding.EncodeToString(b)
	}
	rc, err := e.cli.ImagePull(ctx, ref, po)
	if err != nil {
		return nil, mapErr(err, "pull "+ref)
	}
	defer rc.Close()
	if err := jsonmessage.DisplayJSONMessagesStream(rc, io.Discard, 0, false, nil); err != nil {
		return nil, mapErr(err, "pull "+ref)
	}
	return e.InspectImage(ctx, ref)
}

// LoadImage loads a docker-archive tar (POST /images/load), reading the
// progress stream to its end so that an error reported inside it fails
// the load.
func (e *Engine) LoadImage(ctx context.Context, archive io.Reader) error {
	resp, err := e.cli.ImageLoad(ctx, archive, client.ImageLoadWithQuiet(true))
	if err != nil {
		return mapErr(err, "load image")
	}
	defer resp.Body.Close()
	if err := jsonmessage.DisplayJSONMessagesStream(resp.Body, io.Discard, 0, false, nil); err != nil {
		return mapErr(err, "load image")
	}
	return nil
}

// RemoveImage removes a local image.
func (e *Engine) RemoveImage(ctx context.Context, ref string, force bool) error {
	_, err := e.cli.ImageRemove(ctx, ref, image.RemoveOptions{Force: force, PruneChildren: true})
	return mapErr(err, "remove image "+ref)
}

// CreateSecret writes data to a root-only file on the secret tmpfs.
func (e *Engine) CreateSecret(ctx context.Context, name string, data []byte) error {
	return e.secrets.Create(name, data)
}

// RemoveSecret deletes the secret's file.
func (e *Engine) RemoveSecret(ctx context.Context, name string) error {
	return e.secrets.Remove(name)
}

// ListImages lists the local images.
func (e *Engine) ListImages(ctx context.Context) ([]engine.Image, error) {
	list, err := e.cli.ImageList(ctx, image.ListOptions{})
	if err != nil {
		return nil, mapErr(err, "list images")
	}
	out := make([]engine.Image, 0, len(list))
	for _, l := range list {
		out = append(out, engine.Image{ID: l.ID, RepoTags: l.RepoTags, RepoDigests: l.RepoDigests, Labels: l.Labels, Size: l.Size})
	}
	return out, nil
}

// libpod asks Podman's own API on the same socket (GET path, JSON answer),
// for what its Docker API leaves out.
func (e *Engine) libpod(ctx context.Context, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://podman/v4.0.0/libpod"+path, nil)
	if err != nil {
		return err
	}
	resp, err := e.cli.HTTPClient().Do(req)
	if err != nil {
		return fmt.Errorf("%w: %v", engine.ErrUnavailable, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return fmt.Errorf("%w: %s", engine.ErrNotFound, bytes.TrimSpace(body))
	case resp.StatusCode == http.StatusConflict:
		return fmt.Errorf("%w: %s", engine.ErrConflict, bytes.TrimSpace(body))
	case resp.StatusCode != http.StatusOK:
		return fmt.Errorf("podman API %s: %s: %s", path, resp.Status, bytes.TrimSpace(body))
	}
	return json.Unmarshal(body, out)
}
