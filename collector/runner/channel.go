package runner

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"github.com/collectorhq/collector/engine"
	"github.com/collectorhq/collector/integration"
)

// The records channel: a FIFO per job that the integration writes its
// records to and the runner reads directly, so that records do not travel
// through the engine's log path (conmon's log file and the logs API, or
// dockerd's). The SDK writes there when the runner names it
// (integration.RecordsEnv); stdout stays read as well, for integrations
// that write records there. docs/integration-contract.md, section 2.

// ChannelDir is the directory of the channel inside the job container.
const ChannelDir = "/run/collector/records"

// channelFile is the FIFO's name in it.
const channelFile = "records"

// channelsDir is where the runner keeps the channels, under its state dir
// (a host path: the job container mounts its channel from there).
func channelsDir(stateDir string) string { return filepath.Join(stateDir, "channels") }

// channelDir is a job's channel directory on the host.
func (r *Runner) channelDir(jobID string) string {
	return filepath.Join(channelsDir(r.cfg.StateDir), jobID)
}

// recordsChannel is one job's FIFO, as the runner reads it. The runner
// holds the read end, and a write end of its own until the container has
// ended: reads then wait for data rather than end while the integration
// has not opened the channel yet, and end, once the runner lets its write
// end go, when the integration's has gone too (an integration that wrote
// to stdout never opened it). Neither open blocks, and the integration's
// open does not either.
type recordsChannel struct {
	r, w *os.File
}

// newChannel makes the job's channel: a directory only the runner may
// list (0711, the runner's) and in it a 0600 FIFO owned by the image's
// user (the integration opens it for writing), and opens both ends. It
// returns the mount the job container gets (relabelled shared: the job
// runs with its own MCS pair, the runner without one) and the environment
// naming the FIFO.
func (r *Runner) newChannel(jobID string, uid, gid int) (*recordsChannel, engine.Mount, map[string]string, error) {
	dir := r.channelDir(jobID)
	if err := os.RemoveAll(dir); err != nil {
		return nil, engine.Mount{}, nil, fmt.Errorf("records channel: %w", err)
	}
	c, err := makeChannel(dir, uid, gid)
	if err != nil {
		os.RemoveAll(dir)
		return nil, engine.Mount{}, nil, fmt.Errorf("records channel: %w", err)
	}
	m := engine.Mount{Source: dir, Target: ChannelDir, Relabel: engine.RelabelShared}
	return c, m, map[string]string{integration.RecordsEnv: ChannelDir + "/" + channelFile}, nil
}

// makeChannel makes the FIFO and opens it before handing it to the
// image's user: the runner runs without CAP_DAC_OVERRIDE, so it could not
// open it afterwards.
func makeChannel(dir string, uid, gid int) (*recordsChannel, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if err := os.Chmod(dir, 0o711); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, channelFile)
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		return nil, err
	}
	// O_NONBLOCK: the read end opens without a writer, and the write end
	// then opens since a reader is there. Reads wait in Go's poller.
	rd, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	wr, err := os.OpenFile(path, os.O_WRONLY|syscall.O_NONBLOCK, 0)
	if err == nil {
		err = os.Chown(path, uid, gid)
	}
	if err != nil {
		rd.Close()
		if wr != nil {
			wr.Close()
		}
		return nil, err
	}
	return &recordsChannel{r: rd, w: wr}, nil
}

// removeChannel removes a job's channel directory.
func (r *Runner) removeChannel(jobID string) error {
	if r.cfg.StateDir == "" {
		return nil
	}
	return os.RemoveAll(r.channelDir(jobID))
}

// consume reads the channel into the sink to its end: after ended, once
// the integration's write end is gone too; or until abort.
func (c *recordsChannel) consume(ctx context.Context, s *recordSink) error {
	err := s.consume(ctx, c.r, srcChannel)
	if errors.Is(err, os.ErrClosed) {
		return nil // aborted: the run ended without the channel's end, judged elsewhere
	}
	return err
}

// ended lets the runner's write end go: the container has ended, so the
// integration's has (a process that holds it is gone with its container).
func (c *recordsChannel) ended() { c.w.Close() }

// abort stops the reading at once: the run ended (timed out, stopped, its
// container lost) while the integration may hold the channel open.
func (c *recordsChannel) abort() {
	c.w.Close()
	c.r.Close() // a Read under way returns os.ErrClosed
}

// close releases both ends once the reading is over.
func (c *recordsChannel) close() {
	c.w.Close()
	c.r.Close()
}
