package runner

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// maxFinished bounds the record of finished jobs kept on disk.
const maxFinished = 10_000

// state is the runner's small local record: the jobs it finished (a
// replayed envelope for one of them is refused) and the jobs in flight (so
// a restarted runner removes their secrets).
type state struct {
	dir string

	mu       sync.Mutex
	finished map[string]bool
	order    []string
}

func openState(dir string) (*state, error) {
	if err := os.MkdirAll(filepath.Join(dir, "inflight"), 0o700); err != nil {
		return nil, fmt.Errorf("runner state dir: %w", err)
	}
	s := &state{dir: dir, finished: map[string]bool{}}
	f, err := os.Open(s.finishedPath())
	if errors.Is(err, os.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("runner state: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if id := strings.TrimSpace(sc.Text()); id != "" && !s.finished[id] {
			s.finished[id] = true
			s.order = append(s.order, id)
		}
	}
	return s, sc.Err()
}

func (s *state) finishedPath() string { return filepath.Join(s.dir, "finished-jobs") }

// isFinished reports whether job id finished here before.
func (s *state) isFinished(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.finished[id]
}

// markFinished records job id as finished, durably.
func (s *state) markFinished(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.finished[id] {
		return nil
	}
	s.finished[id] = true
	s.order = append(s.order, id)
	if len(s.order) > maxFinished {
		return s.compact()
	}
	f, err := os.OpenFile(s.finishedPath(), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(f, id)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// compact keeps the newest half of the record; called with mu held.
func (s *state) compact() error {
	keep := s.order[len(s.order)-maxFinished/2:]
	for _, id := range s.order[:len(s.order)-len(keep)] {
		delete(s.finished, id)
	}
	s.order = append([]string(nil), keep...)
	tmp := s.finishedPath() + ".tmp"
	if err := os.WriteFile(tmp, []byte(strings.Join(s.order, "\n")+"\n"), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, s.finishedPath())
}

// setInflight records that job id has (or may have) engine objects.
func (s *state) setInflight(id string) error {
	return os.WriteFile(filepath.Join(s.dir, "inflight", id), nil, 0o600)
}

// clearInflight forgets job id's engine objects.
func (s *state) clearInflight(id string) {
	os.Remove(filepath.Join(s.dir, "inflight", id))
}

// inflight lists the jobs an earlier runner left in flight.
func (s *state) inflight() []string {
	entries, _ := os.ReadDir(filepath.Join(s.dir, "inflight"))
	ids := make([]string, 0, len(entries))
	for _, e := range entries {
		ids = append(ids, e.Name())
	}
	return ids
}
