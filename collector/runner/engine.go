package runner

import (
	"context"
	"io"
	"time"

	"github.com/collectorhq/collector/engine"
)

// Engine is the part of a container engine the runner uses: engine.Engine
// has it all, and the runner's tests run on an in-memory one.
type Engine interface {
	// Ping is the runner's check that the engine answers (before each
	// long poll: not Info, which costs Podman a second of CPU).
	Ping(ctx context.Context) error
	InspectImage(ctx context.Context, ref string) (*engine.Image, error)

	CreateContainer(ctx context.Context, spec *engine.ContainerSpec) (string, error)
	StartContainer(ctx context.Context, id string) error
	WaitContainer(ctx context.Context, id string) (int, error)
	InspectContainer(ctx context.Context, id string) (*engine.Container, error)
	ContainerLogs(ctx context.Context, id string, follow bool, stdout, stderr io.Writer) error
	StopContainer(ctx context.Context, id string, timeout time.Duration) error
	RemoveContainer(ctx context.Context, id string, force bool) error
	ListContainers(ctx context.Context, labels map[string]string) ([]engine.Container, error)
	ContainerStats(ctx context.Context, id string) (*engine.Stats, error)

	CreateSecret(ctx context.Context, name string, data []byte) error
	RemoveSecret(ctx context.Context, name string) error
}

var _ Engine = engine.Engine(nil)
