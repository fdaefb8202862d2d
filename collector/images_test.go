package collector

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/collectorhq/collector/engine"
	"github.com/collectorhq/collector/trust"
)

// fixedVerifier stands in for the signature check (tested in trust/).
type fixedVerifier struct{ err error }

func (v fixedVerifier) Verify(ctx context.Context, ref string) (string, error) {
	if v.err != nil {
		return "", v.err
	}
	return ref + "@sha256:" + fmt.Sprintf("%064x", 7), nil
}

// pullEngine is an engine whose image calls and Info fail as a case says.
type pullEngine struct {
	engine.Engine
	inspectErr, pullErr, infoErr error
	pulls                        int
}

func (e *pullEngine) Info(ctx context.Context) (*engine.Info, error) {
	if e.infoErr != nil {
		return nil, e.infoErr
	}
	return &engine.Info{Kind: engine.KindDocker}, nil
}

func (e *pullEngine) InspectImage(ctx context.Context, ref string) (*engine.Image, error) {
	if e.inspectErr != nil {
		return nil, e.inspectErr
	}
	return &engine.Image{ID: "sha256:x"}, nil
}

func (e *pullEngine) PullImage(ctx context.Context, ref string, opts engine.PullOptions) (*engine.Image, error) {
	e.pulls++
	if e.pullErr != nil {
		return nil, e.pullErr
	}
	return &engine.Image{ID: "sha256:x"}, nil
}

// TestPullFailuresAreNoRefusals: only the signature check refuses an image
// (a *trust.RefusalError); a pull the engine could not answer, whether
// its socket refused or its stream was cut as it stopped, is
// engine.ErrUnavailable, which the runner retries.
func TestPullFailuresAreNoRefusals(t *testing.T) {
	down := fmt.Errorf("info: %w: dial unix /run/podman/podman.sock: connect: connection refused", engine.ErrUnavailable)
	absent := fmt.Errorf("inspect image: %w", engine.ErrNotFound)
	for _, c := range []struct {
		name                 string
		verifyErr            error
		eng                  *pullEngine
		refusal, unavailable bool
		pulls                int
	}{
		{name: "unsigned", verifyErr: &trust.RefusalError{Image: "r/i:1", Reason: trust.ErrUnsigned}, eng: &pullEngine{}, refusal: true},
		{name: "socket refused", eng: &pullEngine{inspectErr: down, pullErr: down, infoErr: down}, unavailable: true},
		{name: "stream cut as the engine stopped", eng: &pullEngine{inspectErr: absent, pullErr: errors.New("pull: unexpected EOF"), infoErr: down},
			unavailable: true, pulls: 1},
		{name: "not in the registry", eng: &pullEngine{inspectErr: absent, pullErr: fmt.Errorf("pull: %w: manifest unknown", engine.ErrNotFound)}, pulls: 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			imgs := &verifiedImages{v: fixedVerifier{c.verifyErr}, eng: c.eng}
			_, err := imgs.VerifyAndPull(context.Background(), "registry.example/job:1")
			if err == nil {
				t.Fatal("VerifyAndPull passed")
			}
			var refusal *trust.RefusalError
			if got := errors.As(err, &refusal); got != c.refusal {
				t.Errorf("a refusal: %v, want %v (%v)", got, c.refusal, err)
			}
			if got := errors.Is(err, engine.ErrUnavailable); got != c.unavailable {
				t.Errorf("engine unavailable: %v, want %v (%v)", got, c.unavailable, err)
			}
			if c.eng.pulls != c.pulls {
				t.Errorf("%d pulls, want %d", c.eng.pulls, c.pulls)
			}
		})
	}
}
