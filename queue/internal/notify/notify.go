package notify

import (
	"sync"
	"time"
)

// Notifier broadcasts "look again" per key (a collector ID). The zero value
// is not usable; call New.
//
// It also remembers which keys' queues are known to be empty: a look at
// the store (Look, then End) that found nothing left to take marks its key
// quiet until a Notify of that key, a Forget, or the time End was given.
// A caller may then wait for a notification instead of looking again.
type Notifier struct {
	mu      sync.Mutex
	waiters map[string]*entry
	looks   map[string]map[*Look]struct{} // in flight
	quiet   map[string]time.Time          // key: until
	pruneAt int                           // len(quiet) that prunes it
}

// A Look is one look at a key's queue in the store, begun before the look
// so that a Notify during it is not missed.
type Look struct {
	n     *Notifier
	key   string
	dirty bool // notified (or forgotten) since it began
}

// minPrune is the size of the quiet map below which it is never pruned.
const minPrune = 1024

type entry struct {
	ch   chan struct{}
	refs int
}

// New returns an empty Notifier.
func New() *Notifier {
	return &Notifier{waiters: make(map[string]*entry), looks: map[string]map[*Look]struct{}{},
		quiet: map[string]time.Time{}, pruneAt: minPrune}
}

// Subscribe returns a channel closed by the next Notify(key) and a release
// func the caller must call when it stops waiting on that channel. Subscribe
// before looking at the store, so a notification between the look and the
// wait is not lost.
func (n *Notifier) Subscribe(key string) (<-chan struct{}, func()) {
	n.mu.Lock()
	defer n.mu.Unlock()
	e := n.waiters[key]
	if e == nil {
		e = &entry{ch: make(chan struct{})}
		n.waiters[key] = e
	}
	e.refs++
	var once sync.Once
	return e.ch, func() { once.Do(func() { n.release(key, e) }) }
}

func (n *Notifier) release(key string, e *entry) {
	n.mu.Lock()
	defer n.mu.Unlock()
	e.refs--
	if e.refs == 0 && n.waiters[key] == e {
		delete(n.waiters, key)
	}
}

// Notify wakes everyone subscribed to key. Later subscribers get a new
// channel.
func (n *Notifier) Notify(key string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if e := n.waiters[key]; e != nil {
		close(e.ch)
		delete(n.waiters, key)
	}
	delete(n.quiet, key)
	for l := range n.looks[key] {
		l.dirty = true
	}
}

// Look begins a look at key's queue. Its End must be called.
func (n *Notifier) Look(key string) *Look {
	n.mu.Lock()
	defer n.mu.Unlock()
	l := &Look{n: n, key: key}
	m := n.looks[key]
	if m == nil {
		m = map[*Look]struct{}{}
		n.looks[key] = m
	}
	m[l] = struct{}{}
	return l
}

// End ends the look. When it found the queue empty (nothing left that a
// later look could take), and no Notify of its key or Forget came since
// it began, the key is quiet until until.
func (l *Look) End(empty bool, until time.Time) {
	n := l.n
	n.mu.Lock()
	defer n.mu.Unlock()
	m := n.looks[l.key]
	if _, ok := m[l]; !ok {
		return // ended already
	}
	delete(m, l)
	if len(m) == 0 {
		delete(n.looks, l.key)
	}
	if !empty || l.dirty {
		if !empty {
			delete(n.quiet, l.key)
		}
		return
	}
	n.quiet[l.key] = until
	if len(n.quiet) >= n.pruneAt {
		now := time.Now()
		for k, u := range n.quiet {
			if !now.Before(u) {
				delete(n.quiet, k)
			}
		}
		n.pruneAt = max(minPrune, 2*len(n.quiet))
	}
}

// Quiet reports whether key's queue is known to be empty at now.
func (n *Notifier) Quiet(key string, now time.Time) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	u, ok := n.quiet[key]
	return ok && now.Before(u)
}

// Forget drops what is known of every key: for when notifications may have
// been lost.
func (n *Notifier) Forget() {
	n.mu.Lock()
	defer n.mu.Unlock()
	clear(n.quiet)
	for _, m := range n.looks {
		for l := range m {
			l.dirty = true
		}
	}
}
