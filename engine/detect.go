package engine

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/collectorhq/collector/internal/env"
)

// Default sockets, probed in this order when nothing else is configured.
const (
	DefaultPodmanSocket = "/run/podman/podman.sock"
	DefaultDockerSocket = "/var/run/docker.sock"
)

// Config selects and configures an engine.
type Config struct {
	// Kind forces a backend; empty means detect it by probing the socket.
	Kind Kind
	// Host is the engine's address, "unix:///path" or a bare socket path.
	// Empty means CONTAINER_HOST, then DOCKER_HOST, then the default sockets.
	Host string
	// SecretDir is where both backends keep secret files: a directory on a
	// tmpfs (anything else is refused with ErrSecretDirNotTmpfs), visible at
	// the same path to the engine and to this process. Empty means
	// DefaultSecretDir.
	SecretDir string
	// Getenv reads the environment; nil means os.Getenv.
	Getenv func(string) string
}

// DefaultSecretDir is the default SecretDir: on /run, a tmpfs on RHEL and
// most systemd hosts. The installer creates it.
const DefaultSecretDir = "/run/collector/secrets"

// Validate names the first bad field.
func (c Config) Validate() error {
	switch c.Kind {
	case "", KindPodman, KindDocker:
	default:
		return fmt.Errorf("engine config: kind %q: want podman or docker", c.Kind)
	}
	if c.Host != "" && !strings.HasPrefix(c.Host, "unix://") && !strings.HasPrefix(c.Host, "/") {
		return fmt.Errorf("engine config: host %q: want unix:///path/to/socket", c.Host)
	}
	return nil
}

// Endpoint is a detected engine: which API answers at which socket.
type Endpoint struct {
	Kind   Kind
	Socket string // filesystem path of the unix socket
}

// URI returns the endpoint as unix:///path.
func (e Endpoint) URI() string { return "unix://" + e.Socket }

// Detect resolves cfg to one reachable engine endpoint. With an explicit
// kind and host it only checks the socket answers; otherwise it probes
// libpod's ping to tell Podman from Docker.
func Detect(ctx context.Context, cfg Config) (Endpoint, error) {
	if err := cfg.Validate(); err != nil {
		return Endpoint{}, err
	}
	getenv := cfg.Getenv
	if getenv == nil {
		getenv = env.Get
	}
	type candidate struct {
		socket string
		kind   Kind // hint; "" means probe
	}
	var cands []candidate
	switch {
	case cfg.Host != "":
		cands = []candidate{{socketPath(cfg.Host), cfg.Kind}}
	case getenv("CONTAINER_HOST") != "":
		cands = []candidate{{socketPath(getenv("CONTAINER_HOST")), cfg.Kind}}
	case getenv("DOCKER_HOST") != "":
		cands = []candidate{{socketPath(getenv("DOCKER_HOST")), cfg.Kind}}
	default:
		cands = []candidate{{DefaultPodmanSocket, cfg.Kind}, {DefaultDockerSocket, cfg.Kind}}
	}
	var tried []string
	for _, c := range cands {
		kind, err := probe(ctx, c.socket)
		if err != nil {
			tried = append(tried, fmt.Sprintf("%s (%v)", c.socket, err))
			continue
		}
		if c.kind != "" {
			if c.kind == KindPodman && kind != KindPodman {
				return Endpoint{}, fmt.Errorf("%w: %s answers the Docker API, not libpod: use kind docker or Podman's socket", ErrUnavailable, c.socket)
			}
			kind = c.kind // Docker's API is spoken by both engines
		}
		return Endpoint{Kind: kind, Socket: c.socket}, nil
	}
	return Endpoint{}, fmt.Errorf("%w: no container engine answered at %s; start Podman's API socket with `systemctl enable --now podman.socket` (or `podman system service --time=0 unix://%s`), or point CONTAINER_HOST/DOCKER_HOST or --engine-host at a running engine",
		ErrUnavailable, strings.Join(tried, ", "), DefaultPodmanSocket)
}

func socketPath(host string) string {
	return strings.TrimPrefix(host, "unix://")
}

// probe asks the socket for libpod's ping, then Docker's.
func probe(ctx context.Context, socket string) (Kind, error) {
	if _, err := os.Stat(socket); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "", errors.New("no such socket")
		}
		return "", err
	}
	client := &http.Client{
		Timeout: 5 * time.Second,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", socket)
			},
		},
	}
	defer client.CloseIdleConnections()
	get := func(path string) (int, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://d"+path, nil)
		if err != nil {
			return 0, err
		}
		resp, err := client.Do(req)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	code, err := get("/libpod/_ping")
	if err != nil {
		return "", err
	}
	if code == http.StatusOK {
		return KindPodman, nil
	}
	if code, err = get("/_ping"); err != nil {
		return "", err
	}
	if code == http.StatusOK {
		return KindDocker, nil
	}
	return "", fmt.Errorf("ping answered HTTP %d", code)
}
