package notify

import "sync"

// Notifier broadcasts "look again" per key (a collector ID). The zero value
// is not usable; call New.
type Notifier struct {
	mu      sync.Mutex
	waiters map[string]*entry
}

type entry struct {
	ch   chan struct{}
	refs int
}

// New returns an empty Notifier.
func New() *Notifier {
	return &Notifier{waiters: make(map[string]*entry)}
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
}
