package platform

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/collectorhq/collector/crypto"
	"github.com/collectorhq/collector/internal/files"
)

// Files of a signing key rotation in the data directory, beside
// SigningKeyFile (docs/auth.md, "Rotating the platform's signing key").
const (
	// SigningNextFile is the announced key: collectors pin it from the
	// leases before any envelope is signed with it.
	SigningNextFile = SigningKeyFile + ".next"
	// SigningPreviousFile is the key a switch replaced, still announced
	// (and signing the announcements, for collectors that missed the
	// next key) until the time in SigningPreviousUntilFile.
	SigningPreviousFile      = SigningKeyFile + ".previous"
	SigningPreviousUntilFile = SigningKeyFile + ".previous-until"
)

// DefaultSigningGrace is how long collectors accept the replaced key after
// a switch: far longer than an envelope lives (jobs.Config.EnvelopeTTL),
// so a job leased before the switch still opens.
const DefaultSigningGrace = 24 * time.Hour

// MinSigningAnnounce is how long a key must have been announced before a
// switch goes ahead without --force: a pause in which the announcement
// reaches the collectors that take jobs, and the operator copies the new
// file to every replica's data directory. (A collector that missed it
// still takes the switch: its statement is signed by the old key too.)
const MinSigningAnnounce = 5 * time.Minute

// signingFiles are the files a SigningRing reads.
var signingFiles = []string{SigningKeyFile, SigningNextFile, SigningPreviousFile, SigningPreviousUntilFile}

// SigningRing is the platform's envelope-signing keys as they stand in
// the data directory now. `platform keys signing announce` and `switch`
// change the files under running replicas (which share the directory's
// keys, docs/scaling.md); each use reads them again when they changed, so
// no replica restarts.
type SigningRing struct {
	dir string
	log *slog.Logger

	mu       sync.Mutex
	stamp    string
	current  ed25519.PrivateKey
	next     ed25519.PrivateKey
	previous ed25519.PrivateKey
	until    time.Time
}

// openSigningRing loads the ring of dir, creating the current key on the
// first start.
func openSigningRing(dir string, log *slog.Logger) (*SigningRing, error) {
	k, err := loadSigningKey(dir, log)
	if err != nil {
		return nil, err
	}
	r := &SigningRing{dir: dir, log: log, current: k}
	if err := r.load(); err != nil {
		return nil, err
	}
	return r, nil
}

// Current is the key envelopes are signed with now.
func (r *SigningRing) Current() ed25519.PrivateKey {
	r.reload()
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.current
}

// Public is the current key's public half: what enrollment pins.
func (r *SigningRing) Public() ed25519.PublicKey {
	return r.Current().Public().(ed25519.PublicKey)
}

// Announcement is the signed key set leases carry while a
// rotation is under way (an announced key, or a replaced one still in the
// ring), nil otherwise. It is signed by the current key and, during the
// grace, by the previous one too: a collector that was away for the
// announcement still pins only that.
//
// ca is the CA section every set states (the platform's CA pins), and
// caRotating says a rotation of the CA is under way: a set is handed out
// then too, signed by the current key (docs/auth.md, "Rotating the
// platform CA").
func (r *SigningRing) Announcement(now time.Time, ca *crypto.CAPins, caRotating bool) (*crypto.SignedKeySet, error) {
	r.reload()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.next == nil && r.previous == nil && !caRotating {
		return nil, nil
	}
	ks := &crypto.KeySet{V: crypto.KeySetVersion, IssuedAt: now.UTC(), Current: r.current.Public().(ed25519.PublicKey), CA: ca}
	signers := []ed25519.PrivateKey{r.current}
	if r.next != nil {
		ks.Next = r.next.Public().(ed25519.PublicKey)
	}
	if r.previous != nil && now.Before(r.until) && !r.previous.Equal(r.current) {
		until := r.until.UTC()
		ks.Previous, ks.PreviousUntil = r.previous.Public().(ed25519.PublicKey), &until
		signers = append(signers, r.previous)
	}
	return crypto.SignKeySet(ks, signers...)
}

// reload reads the files again if one changed. A file that cannot be read
// leaves the ring as it was (files are replaced by rename, so a half
// written one is never seen): the keys in use are better than none.
func (r *SigningRing) reload() {
	if err := r.load(); err != nil {
		r.log.Error("reading the signing key ring failed: keeping the keys in use", "dir", r.dir, "err", err)
	}
}

func (r *SigningRing) load() error {
	stamp := files.Stamp(r.dir, signingFiles...)
	r.mu.Lock()
	defer r.mu.Unlock()
	if stamp == r.stamp {
		return nil
	}
	st, err := readSigningState(r.dir)
	if err != nil {
		return err
	}
	r.stamp, r.current, r.next, r.previous, r.until = stamp, st.current, st.next, st.previous, st.until
	return nil
}

// signingState is the ring's files, read.
type signingState struct {
	current, next, previous ed25519.PrivateKey
	until                   time.Time
}

func readSigningState(dir string) (*signingState, error) {
	var st signingState
	var err error
	if st.current, err = readSigningKeyFile(filepath.Join(dir, SigningKeyFile)); err != nil {
		return nil, err
	}
	if st.next, err = readOptionalSigningKey(filepath.Join(dir, SigningNextFile)); err != nil {
		return nil, err
	}
	if st.previous, err = readOptionalSigningKey(filepath.Join(dir, SigningPreviousFile)); err != nil || st.previous == nil {
		return &st, err
	}
	if st.until, err = readGraceFile(filepath.Join(dir, SigningPreviousUntilFile), SigningPreviousFile); err != nil {
		return nil, err
	}
	return &st, nil
}

func readSigningKeyFile(path string) (ed25519.PrivateKey, error) {
	b, err := readSecretFile(path)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", path, err)
	}
	k, err := crypto.ParseEd25519PrivateKeyPEM(b)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", path, err)
	}
	return k, nil
}

func readOptionalSigningKey(path string) (ed25519.PrivateKey, error) {
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return readSigningKeyFile(path)
}

// RotationStatus is where a rotation of a key (the signing key, the CA)
// stands: each key by its fingerprint or pin.
type RotationStatus struct {
	Current string `json:"current"`
	Next    string `json:"next,omitempty"`
	// AnnouncedAt is when Next was announced.
	AnnouncedAt *time.Time `json:"announced_at,omitempty"`
	Previous    string     `json:"previous,omitempty"`
	// PreviousUntil is when collectors stop accepting Previous.
	PreviousUntil *time.Time `json:"previous_until,omitempty"`
}

// SigningStatus is where a signing key rotation stands.
type SigningStatus = RotationStatus

// announcedAt is the time of the announcement file at path, if any.
func announcedAt(path string) *time.Time {
	fi, err := os.Stat(path)
	if err != nil {
		return nil
	}
	at := fi.ModTime().UTC()
	return &at
}

// readyToSwitch refuses, with tooRecently, a switch less than
// MinSigningAnnounce after the announcement file at path was written
// (unless force), and a negative grace; pinnedFrom says where collectors
// take the announced key.
func readyToSwitch(path string, grace time.Duration, force bool, now time.Time, tooRecently error, pinnedFrom string) error {
	if at := announcedAt(path); at != nil && !force && now.Sub(*at) < MinSigningAnnounce {
		return fmt.Errorf("%w (%s ago): collectors pin it from %s, and replicas need a copy; wait until %s, or pass --force",
			tooRecently, now.Sub(*at).Round(time.Second), pinnedFrom, at.Add(MinSigningAnnounce).Format(time.RFC3339))
	}
	if grace < 0 {
		return fmt.Errorf("grace %v: want 0 or more", grace)
	}
	return nil
}

// readGraceFile reads the end of a grace (RFC 3339, one line) from path,
// which goes with the previous key's file, named goesWith.
func readGraceFile(path, goesWith string) (time.Time, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return time.Time{}, fmt.Errorf("grace %s: %w (it goes with %s)", path, err, goesWith)
	}
	t, err := time.Parse(time.RFC3339, strings.TrimSpace(string(b)))
	if err != nil {
		return time.Time{}, fmt.Errorf("grace %s: %w", path, err)
	}
	return t, nil
}

// SigningKeyStatus reads the ring of the data directory dir.
func SigningKeyStatus(dir string) (SigningStatus, error) {
	st, err := readSigningState(dir)
	if err != nil {
		return SigningStatus{}, err
	}
	s := SigningStatus{Current: fingerprint(st.current)}
	if st.next != nil {
		s.Next, s.AnnouncedAt = fingerprint(st.next), announcedAt(filepath.Join(dir, SigningNextFile))
	}
	if st.previous != nil {
		s.Previous, s.PreviousUntil = fingerprint(st.previous), &st.until
	}
	return s, nil
}

func fingerprint(k ed25519.PrivateKey) string {
	return crypto.Fingerprint(k.Public().(ed25519.PublicKey))
}

// AnnounceSigningKey creates the next signing key in the data directory
// dir: running replicas announce it in the leases they hand out from now
// on. It refuses while a key is already announced, or while
// the previous rotation's grace lasts; it removes a previous key whose
// grace is over. It returns the new key's fingerprint.
func AnnounceSigningKey(dir string, now time.Time) (string, error) {
	st, err := readSigningState(dir)
	if err != nil {
		return "", err
	}
	switch {
	case st.next != nil:
		return "", fmt.Errorf("key %s is already announced: switch to it (platform keys signing switch) before announcing another", fingerprint(st.next))
	case st.previous != nil && now.Before(st.until):
		return "", fmt.Errorf("the previous rotation's grace lasts until %s (collectors still accept key %s): announce after it",
			st.until.UTC().Format(time.RFC3339), fingerprint(st.previous))
	}
	for _, name := range []string{SigningPreviousFile, SigningPreviousUntilFile} {
		if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("remove the retired signing key: %w", err)
		}
	}
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", err
	}
	if err := files.WriteAtomic(filepath.Join(dir, SigningNextFile), crypto.MarshalEd25519PrivateKeyPEM(k)); err != nil {
		return "", fmt.Errorf("write the next signing key: %w", err)
	}
	return fingerprint(k), nil
}

// ErrAnnouncedTooRecently: a switch asked before MinSigningAnnounce has
// passed since the announcement.
var ErrAnnouncedTooRecently = errors.New("the next signing key was announced too recently")

// SwitchSigningKey makes the announced key current in the data directory
// dir; the replaced key stays accepted by collectors until now + grace.
// Unless force, it refuses a key announced less than MinSigningAnnounce
// ago. Each step is a rename, and a switch interrupted half way is
// finished by running it again.
func SwitchSigningKey(dir string, grace time.Duration, force bool, now time.Time) (SigningStatus, error) {
	st, err := readSigningState(dir)
	if err != nil {
		return SigningStatus{}, err
	}
	next := filepath.Join(dir, SigningNextFile)
	if st.next == nil {
		return SigningStatus{}, errors.New("no signing key is announced: run `platform keys signing announce` first")
	}
	if err := readyToSwitch(next, grace, force, now, ErrAnnouncedTooRecently, "their next heartbeat or lease"); err != nil {
		return SigningStatus{}, err
	}
	// The grace first, then the old key as previous, then the new key as
	// current: a reader between two steps sees a ring that still works.
	until := now.Add(grace).UTC().Format(time.RFC3339) + "\n"
	if err := files.WriteAtomic(filepath.Join(dir, SigningPreviousUntilFile), []byte(until)); err != nil {
		return SigningStatus{}, fmt.Errorf("write the signing key grace: %w", err)
	}
	if st.previous == nil || !st.previous.Equal(st.current) {
		if err := files.WriteAtomic(filepath.Join(dir, SigningPreviousFile), crypto.MarshalEd25519PrivateKeyPEM(st.current)); err != nil {
			return SigningStatus{}, fmt.Errorf("keep the replaced signing key: %w", err)
		}
	}
	if err := os.Rename(next, filepath.Join(dir, SigningKeyFile)); err != nil {
		return SigningStatus{}, fmt.Errorf("make the next signing key current: %w", err)
	}
	return SigningKeyStatus(dir)
}
