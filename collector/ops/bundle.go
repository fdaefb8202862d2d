package ops

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/collectorhq/collector/collector/housekeeping"
	"github.com/collectorhq/collector/collector/joblogs"
	"github.com/collectorhq/collector/engine"
	"github.com/collectorhq/collector/internal/buildinfo"
	"github.com/collectorhq/collector/internal/termsafe"
)

// Bounds of what a bundle takes of each log.
const (
	bundleLogLines = 20000
	bundleLogBytes = 8 << 20
)

// BundleFiles are the files of a support bundle, by name, as Bundle
// writes them (tests and the command's listing read them).
type bundle struct {
	tw   *tar.Writer
	red  *Redactor
	now  time.Time
	list []string
}

// add writes one file, redacted.
func (b *bundle) add(name string, data []byte) error {
	data = b.red.Bytes(data)
	hdr := &tar.Header{Name: "collector-support/" + name, Mode: 0o600, Size: int64(len(data)), ModTime: b.now, Typeflag: tar.TypeReg}
	if err := b.tw.WriteHeader(hdr); err != nil {
		return err
	}
	_, err := b.tw.Write(data)
	b.list = append(b.list, name)
	return err
}

func (b *bundle) addJSON(name string, v any) error {
	j, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return b.add(name, termsafe.JSON(append(j, '\n')))
}

// Versions is versions.json of a bundle.
type Versions struct {
	CLI      string       `json:"cli"`
	Engine   *engine.Info `json:"engine,omitempty"`
	Image    string       `json:"collector_image,omitempty"`
	Roles    []RoleImage  `json:"containers"`
	Gathered time.Time    `json:"gathered_at"`
}

// RoleImage is the image and version label of a collector container.
type RoleImage struct {
	Name, Image, Version string
}

// SupportBundle writes a tar.gz to w for the collector's vendor or the
// operator's colleagues: versions, `status --json`, `doctor --json`, the
// installer's, daemon's and runner's logs, the kept logs of recent jobs,
// the collector's containers as the engine describes them (no
// environment), and the image bookkeeping. Never a key, token, secret or
// config value: everything goes through the Redactor (the config and the
// keys are not copied at all), and job logs were redacted of the jobs'
// own secrets when the runner kept them. It returns the files' names.
func SupportBundle(ctx context.Context, e *Env, w io.Writer) ([]string, error) {
	gz := gzip.NewWriter(w)
	b := &bundle{tw: tar.NewWriter(gz), red: NewRedactor(e.Dir), now: e.now().UTC()}
	if err := b.fill(ctx, e); err != nil {
		return nil, err
	}
	if err := b.tw.Close(); err != nil {
		return nil, err
	}
	return b.list, gz.Close()
}

func (b *bundle) fill(ctx context.Context, e *Env) error {
	v := Versions{CLI: buildinfo.String(), Gathered: b.now}
	if cfg, err := e.loadConfig(); err == nil {
		v.Image = cfg.Image
	}
	if e.Engine != nil {
		cctx, cancel := engineCtx(ctx)
		v.Engine, _ = e.Engine.Info(cctx)
		cancel()
	}
	status, serr := GetStatus(ctx, e)
	if serr != nil {
		status = nil
	}
	if status != nil {
		for _, c := range status.Containers {
			v.Roles = append(v.Roles, RoleImage{Name: c.Name, Image: c.Image, Version: c.Version})
		}
	}
	steps := []func() error{
		func() error { return b.addJSON("versions.json", v) },
		func() error {
			if serr != nil {
				return b.add("status.txt", []byte(serr.Error()+"\n"))
			}
			return b.addJSON("status.json", status)
		},
		func() error { return b.addJSON("doctor.json", Doctor(ctx, e)) },
		func() error { return b.addFile("logs/install.log", filepath.Join(e.stateDir(), InstallLogFile)) },
		func() error { return b.addContainers(ctx, e) },
		func() error { return b.addJobLogs(e) },
		func() error { return b.addFile("images.json", filepath.Join(e.stateDir(), housekeeping.LedgerFile)) },
	}
	for _, s := range steps {
		if err := s(); err != nil {
			return err
		}
	}
	return nil
}

// addFile adds a host file if it is there, its tail if it is large.
func (b *bundle) addFile(name, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > bundleLogBytes {
		f.Seek(st.Size()-bundleLogBytes, io.SeekStart)
	}
	data, err := io.ReadAll(io.LimitReader(f, bundleLogBytes))
	if err != nil {
		return nil
	}
	return b.add(name, []byte(termsafe.Text(string(data))))
}

// addContainers adds the engine's description and logs of the daemon and
// runner.
func (b *bundle) addContainers(ctx context.Context, e *Env) error {
	if e.Engine == nil {
		return nil
	}
	for _, n := range e.roleNames() {
		cctx, cancel := engineCtx(ctx)
		c, err := e.Engine.InspectContainer(cctx, n)
		cancel()
		if err != nil {
			continue
		}
		if err := b.addJSON("inspect/"+n+".json", c); err != nil {
			return err
		}
		var out bytes.Buffer
		lw := &lineWriter{w: &limitWriter{w: &out, n: bundleLogBytes}, r: &Redactor{}, esc: termsafe.Text}
		lctx, cancel := context.WithTimeout(ctx, time.Minute)
		e.Engine.ReadLogs(lctx, n, engine.LogOptions{Tail: bundleLogLines, Timestamps: true}, lw, lw)
		cancel()
		lw.Flush()
		if err := b.add("logs/"+n+".log", out.Bytes()); err != nil {
			return err
		}
	}
	return nil
}

// addJobLogs adds the kept logs of recent jobs.
func (b *bundle) addJobLogs(e *Env) error {
	list, err := joblogs.List(e.stateDir())
	if err != nil {
		return nil
	}
	for _, j := range list {
		if err := b.addFile("logs/jobs/"+j.JobID+".log", j.Path); err != nil {
			return err
		}
	}
	return nil
}

// limitWriter keeps the first n bytes and drops the rest.
type limitWriter struct {
	w io.Writer
	n int
}

func (l *limitWriter) Write(p []byte) (int, error) {
	if l.n <= 0 {
		return len(p), nil
	}
	k := min(len(p), l.n)
	l.n -= k
	if _, err := l.w.Write(p[:k]); err != nil {
		return 0, err
	}
	return len(p), nil
}

// DefaultBundleName is the bundle's file name when -o is not given.
func DefaultBundleName(now time.Time) string {
	return fmt.Sprintf("collector-support-%s.tar.gz", now.UTC().Format("20060102T150405Z"))
}
