// Package joblogs keeps, on the collector's host, the logs of its most
// recent jobs as the runner uploaded them: already redacted of the job's
// secrets (the runner knows them; the host does not). `collector logs
// JOB_ID` and `collector support-bundle` read them here, since a job's
// container is removed when the job ends.
package joblogs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"
)

// Dir is the directory under the collector's state dir.
const Dir = "job-logs"

// Bounds: the newest Keep jobs are kept, each up to MaxBytes (the runner
// uploads at most 4 MiB of logs a job).
const (
	Keep     = 20
	MaxBytes = 4<<20 + 4096
)

// EndMarker starts the line written when a job is finished.
const EndMarker = "[collector: job finished"

// validID is what a job ID looks like (at most 128 bytes, checked apart:
// a counted repetition compiles into that many copies); anything else
// never names a file.
var validID = idPattern{regexp.MustCompile(`^[A-Za-z0-9_-]+$`)}

type idPattern struct{ re *regexp.Regexp }

func (p idPattern) MatchString(s string) bool { return len(s) <= 128 && p.re.MatchString(s) }

// Store appends job logs under one state dir.
type Store struct {
	dir string

	mu      sync.Mutex
	lastSeq map[string]int // per job: the last chunk written, so a retried upload is written once
}

// New returns the store under stateDir.
func New(stateDir string) *Store {
	return &Store{dir: filepath.Join(stateDir, Dir), lastSeq: map[string]int{}}
}

// Path is the file of a job's log.
func Path(stateDir, jobID string) (string, error) {
	if !validID.MatchString(jobID) {
		return "", fmt.Errorf("job ID %q: not a job ID", jobID)
	}
	return filepath.Join(stateDir, Dir, jobID+".log"), nil
}

// Append adds chunk seq of a job's redacted log, once per seq.
func (s *Store) Append(jobID string, seq int, text []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if seq <= s.lastSeq[jobID] {
		return nil
	}
	s.lastSeq[jobID] = seq
	return s.write(jobID, text)
}

// Finish notes that the job ended and how.
func (s *Store) Finish(jobID, how string, at time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.lastSeq, jobID)
	return s.write(jobID, []byte(fmt.Sprintf("%s at %s: %s]\n", EndMarker, at.UTC().Format(time.RFC3339), how)))
}

func (s *Store) write(jobID string, text []byte) error {
	p, err := Path(filepath.Dir(s.dir), jobID)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return err
	}
	fresh := false
	st, err := os.Stat(p)
	switch {
	case errors.Is(err, os.ErrNotExist):
		fresh = true
	case err != nil:
		return err
	case st.Size()+int64(len(text)) > MaxBytes:
		return nil
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	_, werr := f.Write(text)
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if fresh {
		s.prune()
	}
	return werr
}

// prune removes all but the newest Keep logs.
func (s *Store) prune() {
	list, err := List(filepath.Dir(s.dir))
	if err != nil || len(list) <= Keep {
		return
	}
	for _, e := range list[Keep:] {
		os.Remove(e.Path)
	}
}

// Entry is one kept job log.
type Entry struct {
	JobID    string    `json:"job_id"`
	Path     string    `json:"-"`
	Modified time.Time `json:"modified"`
	Bytes    int64     `json:"bytes"`
	Finished bool      `json:"finished"`
}

// List returns the kept job logs under stateDir, newest first.
func List(stateDir string) ([]Entry, error) {
	dir := filepath.Join(stateDir, Dir)
	des, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []Entry
	for _, d := range des {
		id, ok := strings.CutSuffix(d.Name(), ".log")
		if !ok || !validID.MatchString(id) {
			continue
		}
		info, err := d.Info()
		if err != nil {
			continue
		}
		p := filepath.Join(dir, d.Name())
		out = append(out, Entry{JobID: id, Path: p, Modified: info.ModTime(), Bytes: info.Size(), Finished: finished(p)})
	}
	slices.SortFunc(out, func(a, b Entry) int { return b.Modified.Compare(a.Modified) })
	return out, nil
}

// finished reports whether the log ends with the end marker.
func finished(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return false
	}
	off := max(st.Size()-512, 0)
	buf := make([]byte, st.Size()-off)
	if _, err := f.ReadAt(buf, off); err != nil {
		return false
	}
	return strings.Contains(string(buf), EndMarker)
}
