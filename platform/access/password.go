package access

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	_ "embed"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"
	"golang.org/x/text/unicode/norm"
)

// PasswordParams are argon2id's cost parameters. A stored hash carries
// the parameters it was made with (PHC string format), so they can be
// raised later: a hash made with weaker ones still verifies, and is
// replaced with a new one at the next successful sign-in (NeedsRehash).
type PasswordParams struct {
	// MemoryKiB is the memory cost in KiB.
	MemoryKiB uint32
	// Time is the number of passes.
	Time uint32
	// Threads is the parallelism.
	Threads uint8
	// SaltBytes and KeyBytes size the salt and the hash.
	SaltBytes, KeyBytes uint32
}

// DefaultPasswordParams: argon2id, 64 MiB, 2 passes, one lane, 16-byte
// salt, 32-byte hash. That is RFC 9106's memory-constrained setting (64
// MiB) with one pass fewer, above OWASP's minimum (19 MiB, 2 passes), so
// that a sign-in stays under 250 ms of CPU on this project's 2-core test
// machine (BenchmarkPasswordHash reports the CPU time per hash). Raise them
// on bigger machines: stored hashes say which parameters made them.
var DefaultPasswordParams = PasswordParams{MemoryKiB: 64 << 10, Time: 2, Threads: 1, SaltBytes: 16, KeyBytes: 32}

// MinPasswordLength is the shortest password accepted, in characters.
const MinPasswordLength = 12

// MaxPasswordBytes bounds a password: argon2 takes any length, but a
// megabyte "password" is an attack on the server, not a secret.
const MaxPasswordBytes = 1024

//go:embed common-passwords.txt
var commonPasswordList []byte

// common is the set of common passwords, lowercased.
var common = func() map[string]bool {
	m := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(commonPasswordList))
	for sc.Scan() {
		if w := strings.TrimSpace(sc.Text()); w != "" && !strings.HasPrefix(w, "#") {
			m[strings.ToLower(w)] = true
		}
	}
	return m
}()

// CheckPassword says why a new password is refused: too short or long,
// on the list of common passwords (compared lowercased, and with trailing
// digits and symbols removed, so "password2024!" counts as "password"),
// or containing the login name.
func CheckPassword(password, login string) error {
	n := utf8.RuneCountInString(password)
	switch {
	case !utf8.ValidString(password):
		return fmt.Errorf("%w: the password is not valid UTF-8", ErrWeakPassword)
	case n < MinPasswordLength:
		return fmt.Errorf("%w: at least %d characters (got %d); a passphrase of a few words is easy to type and hard to guess", ErrWeakPassword, MinPasswordLength, n)
	case len(password) > MaxPasswordBytes:
		return fmt.Errorf("%w: at most %d bytes", ErrWeakPassword, MaxPasswordBytes)
	}
	low := strings.ToLower(password)
	stem := strings.TrimRightFunc(low, func(r rune) bool { return !unicode.IsLetter(r) })
	stem = strings.TrimLeftFunc(stem, func(r rune) bool { return !unicode.IsLetter(r) })
	if common[low] || (len(stem) >= 4 && common[stem]) {
		return fmt.Errorf("%w: it is on the list of common passwords", ErrWeakPassword)
	}
	if l := strings.ToLower(login); len(l) >= 3 && strings.Contains(low, l) {
		return fmt.Errorf("%w: it contains the login name", ErrWeakPassword)
	}
	if allSame(low) {
		return fmt.Errorf("%w: it repeats one character", ErrWeakPassword)
	}
	return nil
}

func allSame(s string) bool {
	first, _ := utf8.DecodeRuneInString(s)
	return strings.Trim(s, string(first)) == ""
}

// HashPassword returns the PHC string of password's argon2id hash:
// $argon2id$v=19$m=65536,t=3,p=1$<salt>$<hash> (unpadded standard base64).
// The password is NFC-normalized first, so the same characters typed on
// two keyboards hash the same.
func HashPassword(password string, p PasswordParams) (string, error) {
	salt := make([]byte, p.SaltBytes)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	key := argon2.IDKey([]byte(norm.NFC.String(password)), salt, p.Time, p.MemoryKiB, p.Threads, p.KeyBytes)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.MemoryKiB, p.Time, p.Threads,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key)), nil
}

// errBadHash: a stored hash that is not a PHC argon2id string.
var errBadHash = errors.New("stored password hash is not an argon2id PHC string")

// parseHash reads a PHC argon2id string.
func parseHash(h string) (PasswordParams, []byte, []byte, error) {
	parts := strings.Split(h, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" || parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return PasswordParams{}, nil, nil, errBadHash
	}
	var p PasswordParams
	var threads uint32
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.MemoryKiB, &p.Time, &threads); err != nil || threads == 0 || threads > 255 || p.Time == 0 || p.MemoryKiB < 8*threads || p.MemoryKiB > 4<<20 || p.Time > 100 {
		return PasswordParams{}, nil, nil, errBadHash
	}
	p.Threads = uint8(threads)
	salt, err := base64.RawStdEncoding.DecodeString(parts[4])
	if err != nil || len(salt) < 8 {
		return PasswordParams{}, nil, nil, errBadHash
	}
	key, err := base64.RawStdEncoding.DecodeString(parts[5])
	if err != nil || len(key) < 16 || len(key) > 128 {
		return PasswordParams{}, nil, nil, errBadHash
	}
	p.SaltBytes, p.KeyBytes = uint32(len(salt)), uint32(len(key))
	return p, salt, key, nil
}

// VerifyPassword reports whether password matches the stored hash, in
// constant time over the hash.
func VerifyPassword(password, hash string) (bool, error) {
	p, salt, key, err := parseHash(hash)
	if err != nil {
		return false, err
	}
	got := argon2.IDKey([]byte(norm.NFC.String(password)), salt, p.Time, p.MemoryKiB, p.Threads, p.KeyBytes)
	return subtle.ConstantTimeCompare(got, key) == 1, nil
}

// NeedsRehash reports whether hash was made with other parameters than p.
func NeedsRehash(hash string, p PasswordParams) bool {
	q, _, _, err := parseHash(hash)
	return err != nil || q.MemoryKiB != p.MemoryKiB || q.Time != p.Time || q.Threads != p.Threads || q.KeyBytes != p.KeyBytes
}

// hasher bounds the argon2 computations in flight: each takes MemoryKiB,
// so a burst of sign-ins must queue rather than exhaust the server.
type hasher struct {
	slots chan struct{}
	p     PasswordParams
	// dummy is verified when the login does not exist, so that a wrong
	// login costs what a wrong password costs.
	dummy string
}

func newHasher(p PasswordParams, concurrent int) (*hasher, error) {
	dummy, err := HashPassword("collector-dummy-password", p)
	if err != nil {
		return nil, err
	}
	return &hasher{slots: make(chan struct{}, max(concurrent, 1)), p: p, dummy: dummy}, nil
}

func (h *hasher) acquire(ctx context.Context) error {
	select {
	case h.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (h *hasher) release() { <-h.slots }

// verify checks password against hash (or the dummy when hash is ""),
// within the concurrency bound.
func (h *hasher) verify(ctx context.Context, password, hash string) (bool, error) {
	if err := h.acquire(ctx); err != nil {
		return false, err
	}
	defer h.release()
	if hash == "" {
		VerifyPassword(password, h.dummy)
		return false, nil
	}
	return VerifyPassword(password, hash)
}

// hash makes a new hash within the concurrency bound.
func (h *hasher) hash(ctx context.Context, password string) (string, error) {
	if err := h.acquire(ctx); err != nil {
		return "", err
	}
	defer h.release()
	return HashPassword(password, h.p)
}
