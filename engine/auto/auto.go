// Package auto opens the engine backend that a configuration names, or
// that answers at the usual sockets. It is engine.Open in all but name:
// it lives below engine because the backends import engine.
package auto

import (
	"context"
	"fmt"

	"github.com/collectorhq/collector/engine"
	"github.com/collectorhq/collector/engine/docker"
	"github.com/collectorhq/collector/engine/podman"
)

// Open detects the endpoint cfg describes (see engine.Detect) and connects
// the matching backend: Podman's bindings where libpod answers, else the
// Docker API.
func Open(ctx context.Context, cfg engine.Config) (engine.Engine, error) {
	ep, err := engine.Detect(ctx, cfg)
	if err != nil {
		return nil, err
	}
	switch ep.Kind {
	case engine.KindPodman:
		return podman.New(ctx, ep.URI(), podman.WithSecretDir(cfg.SecretDir))
	case engine.KindDocker:
		return docker.New(ctx, ep.URI(), cfg.SecretDir)
	}
	return nil, fmt.Errorf("engine kind %q: no backend", ep.Kind)
}
