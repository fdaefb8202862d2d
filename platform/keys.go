package platform

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path/filepath"
	"slices"
	"time"

	"github.com/collectorhq/collector/crypto"
	"github.com/collectorhq/collector/internal/files"
	"github.com/collectorhq/collector/platform/access"
	"github.com/collectorhq/collector/platform/store"
)

// Data key rotation (docs/auth.md §6.1, "Rotating the data key"): the key file
// holds a ring whose first key is current: every replica seals and MACs
// under it and reads under any key of the ring. A new key first joins
// every replica's ring as a key that only reads, then becomes the current
// one; `platform keys rotate` then moves what is still under the old key
// to it, after which the old key can leave the files. In that order no
// replica ever meets a value under a key it does not have.

// DataKeyPath is the data key file cfg uses: --data-key-file, else the
// data directory's data.key.
func DataKeyPath(cfg Config) string {
	if cfg.DataKeyFile != "" {
		return cfg.DataKeyFile
	}
	return filepath.Join(cfg.DataDir, DataKeyFile)
}

// AddDataKey adds a new random key to the data key file at path (creating
// the file, 0600, if there is none: the key is then current) and returns
// its ID. With current it becomes the current key, else it only reads
// until PromoteDataKey.
func AddDataKey(path string, current bool) (string, error) {
	key, err := crypto.NewDataKey()
	if err != nil {
		return "", err
	}
	err = editKeyFile(path, true, func(keys [][]byte) ([][]byte, error) {
		if current {
			return append([][]byte{key}, keys...), nil
		}
		return append(keys, key), nil
	})
	return crypto.DataKeyID(key), err
}

// PromoteDataKey makes the key id of the file at path the current one.
func PromoteDataKey(path, id string) error {
	return editKeyFile(path, false, func(keys [][]byte) ([][]byte, error) {
		i, err := keyIndexOf(keys, id)
		if err != nil {
			return nil, err
		}
		k := keys[i]
		return append([][]byte{k}, slices.Delete(keys, i, i+1)...), nil
	})
}

// RemoveDataKey removes the key id from the file at path; not the current
// key (promote another first).
func RemoveDataKey(path, id string) error {
	return editKeyFile(path, false, func(keys [][]byte) ([][]byte, error) {
		i, err := keyIndexOf(keys, id)
		switch {
		case err != nil:
			return nil, err
		case i == 0:
			return nil, fmt.Errorf("key %s is the current key: promote another key first", id)
		}
		return slices.Delete(keys, i, i+1), nil
	})
}

func keyIndexOf(keys [][]byte, id string) (int, error) {
	for i, k := range keys {
		if crypto.DataKeyID(k) == id {
			return i, nil
		}
	}
	var ids []string
	for _, k := range keys {
		ids = append(ids, crypto.DataKeyID(k))
	}
	return 0, fmt.Errorf("no key %q in the file (it has %v)", id, ids)
}

// editKeyFile rewrites the data key file at path with edit's keys (in
// crypto.FormatDataKeyFile's form: comments are not kept), atomically.
// create: a missing file is an empty ring.
func editKeyFile(path string, create bool, edit func([][]byte) ([][]byte, error)) error {
	var keys [][]byte
	b, err := readSecretFile(path)
	switch {
	case create && errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return fmt.Errorf("data key file %s: %w", path, err)
	default:
		if keys, err = crypto.ParseDataKeyFile(b); err != nil {
			return fmt.Errorf("data key file %s: %w", path, err)
		}
	}
	if keys, err = edit(keys); err != nil {
		return fmt.Errorf("data key file %s: %w", path, err)
	}
	if _, err := crypto.NewKeyRing(keys...); err != nil {
		return fmt.Errorf("data key file %s: %w", path, err)
	}
	if err := files.WriteAtomic(path, crypto.FormatDataKeyFile(keys)); err != nil {
		return fmt.Errorf("write data key file %s: %w", path, err)
	}
	return nil
}

// accessKeyAAD binds the sealed account service key to its use.
var accessKeyAAD = []byte("collector access key v1")

// settingStore is the part of a store that keeps settings.
type settingStore interface {
	Setting(ctx context.Context, key string) (string, error)
	PutSetting(ctx context.Context, key, value string, ev *store.Event) error
}

// accessKey returns the account service's own key (it keys device
// cookies, the hashes of recovery codes and sign-in flows). It is kept
// in the database sealed with the data key, not derived from the current
// data key, so that a rotation re-seals it instead of changing it: a
// recovery code cannot be re-hashed without the code. The first start of
// this version stores the key older versions derived from their data key
// (the current key's integrity key), so nothing issued before changes.
func accessKey(ctx context.Context, st settingStore, keys *crypto.KeyRing) ([]byte, error) {
	v, err := st.Setting(ctx, store.SettingAccessKey)
	if errors.Is(err, store.ErrNotFound) {
		k, err := integrityKey(keys.Current())
		if err != nil {
			return nil, err
		}
		sealed, err := keys.Seal(k, accessKeyAAD)
		if err != nil {
			return nil, err
		}
		if err := st.PutSetting(ctx, store.SettingAccessKey, base64.StdEncoding.EncodeToString(sealed), nil); err != nil {
			return nil, fmt.Errorf("store the account service key: %w", err)
		}
		return k, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the account service key: %w", err)
	}
	sealed, err := store.AccessKeySetting.Get(v)
	if err != nil {
		return nil, fmt.Errorf("read the account service key: %w", err)
	}
	k, err := keys.Open(sealed, accessKeyAAD)
	if err != nil {
		return nil, fmt.Errorf("open the account service key: %w (is a data key missing from the key file?)", err)
	}
	return k, nil
}

// KeyReport says which key of the ring each kind of value is under.
type KeyReport struct {
	// Keys are the ring's key IDs, the current first.
	Keys   []string      `json:"keys"`
	Sealed []SealedCount `json:"sealed"`
	MACs   []MACCount    `json:"macs"`
}

// SealedCount counts the values of one kind sealed with the data key.
type SealedCount struct {
	Kind store.SealedKind `json:"kind"`
	// ByKey[i] counts the values under the ring's key i.
	ByKey []int `json:"by_key"`
	// NoKeyID counts values sealed before key IDs existed (rotation
	// re-seals them with one).
	NoKeyID int `json:"no_key_id"`
	// NotInRing counts values under a key missing from the ring: they do
	// not open until that key is added back.
	NotInRing int `json:"not_in_ring"`
	// Resealed counts the values a rotation re-sealed under the current key.
	Resealed int `json:"resealed"`
	// Failed lists the rows whose value a rotation could not open.
	Failed []string `json:"failed,omitempty"`
}

// MACCount counts the rows of one kind by the key their MAC is under.
type MACCount struct {
	Kind store.MACKind `json:"kind"`
	// ByKey[i] counts the rows under the ring's key i.
	ByKey []int `json:"by_key"`
	// Unverified counts rows whose MAC verifies under no key of the ring.
	Unverified int `json:"unverified"`
	// Rekeyed counts the rows a rotation moved to the current key.
	Rekeyed int `json:"rekeyed"`
}

// Behind counts the values not under the current key: zero means nothing
// needs the ring's other keys.
func (r KeyReport) Behind() int {
	n := 0
	for _, s := range r.Sealed {
		n += sumInts(s.ByKey[1:]) + s.NoKeyID + s.NotInRing
	}
	for _, m := range r.MACs {
		n += sumInts(m.ByKey[1:]) + m.Unverified
	}
	return n
}

// Moved counts what a rotation moved to the current key.
func (r KeyReport) Moved() int {
	n := 0
	for _, s := range r.Sealed {
		n += s.Resealed
	}
	for _, m := range r.MACs {
		n += m.Rekeyed
	}
	return n
}

func sumInts(xs []int) int {
	n := 0
	for _, x := range xs {
		n += x
	}
	return n
}

// DataKeyStatus counts, for each kind of value the data key protects,
// the values under each key of the ring.
func DataKeyStatus(ctx context.Context, st store.Store, keys *crypto.KeyRing) (KeyReport, error) {
	r := &rotation{st: st, keys: keys, batch: rotateBatch, log: slog.New(slog.DiscardHandler)}
	return r.run(ctx, false)
}

// RotateOptions tune a rotation.
type RotateOptions struct {
	// Batch is how many rows each step reads and rewrites (one short
	// transaction per step); 0 is 500.
	Batch int
	// Actor is who the audit log names.
	Actor string
	Log   *slog.Logger
	// Now is the clock (time.Now if nil).
	Now func() time.Time
}

const rotateBatch = 500

// Rotation is what RotateDataKey did and what it left.
type Rotation struct {
	// Done counts the values as the rotation found them, and what it
	// moved (Resealed, Rekeyed) or could not open (Failed).
	Done KeyReport `json:"done"`
	// After is DataKeyStatus once it finished.
	After KeyReport `json:"after"`
}

// RotateDataKey re-seals every value sealed under an older key of the
// ring, and re-computes every integrity MAC under an older key, under the
// current key: in batches of short compare-and-swap transactions, so the
// replicas keep serving (each already writes under the current key). A
// value changed meanwhile was written under the current key and is left
// alone; a value that does not open is reported and left as it is. A
// second run finds nothing to do. The audit chain's hashes do not change,
// only its per-entry MACs. A run that moved something is audited.
func RotateDataKey(ctx context.Context, st store.Store, keys *crypto.KeyRing, o RotateOptions) (Rotation, error) {
	if o.Batch <= 0 {
		o.Batch = rotateBatch
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	var rot Rotation
	var err error
	r := &rotation{st: st, keys: keys, batch: o.Batch, log: o.Log}
	if rot.Done, err = r.run(ctx, true); err == nil {
		rot.After, err = DataKeyStatus(ctx, st, keys)
	}
	if n := rot.Done.Moved(); n > 0 || len(rot.Done.failed()) > 0 {
		details := map[string]any{"key": keys.IDs()[0], "moved": n, "complete": err == nil && rot.After.Behind() == 0}
		if failed := rot.Done.failed(); len(failed) > 0 {
			details["failed"] = failed
		}
		ev := store.Event{Time: o.Now(), Actor: o.Actor, Action: "data_key.rotated", Target: keys.IDs()[0], Details: details}
		if aerr := st.AppendAudit(ctx, ev); aerr != nil && err == nil {
			err = fmt.Errorf("audit the rotation: %w", aerr)
		}
	}
	return rot, err
}

// failed lists the values a rotation could not open, as "kind row".
func (r KeyReport) failed() []string {
	var out []string
	for _, s := range r.Sealed {
		for _, id := range s.Failed {
			out = append(out, string(s.Kind)+" "+id)
		}
	}
	return out
}

// rotation walks the values the data key protects.
type rotation struct {
	st    store.Store
	keys  *crypto.KeyRing
	batch int
	log   *slog.Logger
}

func (r *rotation) run(ctx context.Context, rekey bool) (KeyReport, error) {
	rep := KeyReport{Keys: r.keys.IDs()}
	for _, kind := range store.SealedKinds {
		c, err := r.sealed(ctx, kind, rekey)
		rep.Sealed = append(rep.Sealed, c)
		if err != nil {
			return rep, err
		}
	}
	for _, kind := range store.MACKinds {
		var mc store.MACCount
		var err error
		if rekey {
			mc, err = r.st.RekeyMACs(ctx, kind, r.batch)
		} else {
			mc, err = r.st.CountMACKeys(ctx, kind)
		}
		rep.MACs = append(rep.MACs, MACCount{Kind: kind, ByKey: mc.ByKey, Unverified: mc.Unverified, Rekeyed: mc.Rekeyed})
		if err != nil {
			return rep, err
		}
	}
	return rep, nil
}

// sealed walks the values of kind, counting them by key and, if rekey,
// re-sealing under the current key each one that is not.
func (r *rotation) sealed(ctx context.Context, kind store.SealedKind, rekey bool) (SealedCount, error) {
	ids := r.keys.IDs()
	c := SealedCount{Kind: kind, ByKey: make([]int, len(ids))}
	after := ""
	for {
		vals, err := r.st.SealedValues(ctx, kind, after, r.batch)
		if err != nil {
			return c, err
		}
		for _, v := range vals {
			id, ok := crypto.SealedKeyID(v.Value)
			i := slices.Index(ids, id)
			switch {
			case i == 0:
				c.ByKey[0]++
				continue
			case i > 0:
				c.ByKey[i]++
			case !ok:
				c.NoKeyID++
			default:
				c.NotInRing++
			}
			if !rekey {
				continue
			}
			done, err := r.reseal(ctx, kind, v)
			switch {
			case errors.Is(err, crypto.ErrAtRestDecrypt):
				r.log.Warn("a sealed value does not open: left as it is", "kind", kind, "row", v.ID, "err", err)
				c.Failed = append(c.Failed, v.ID)
			case err != nil:
				return c, fmt.Errorf("re-seal %s of %s: %w", kind, v.ID, err)
			case done:
				c.Resealed++
			}
		}
		if len(vals) < r.batch {
			return c, nil
		}
		after = vals[len(vals)-1].ID
	}
}

// reseal opens v and seals it again under the current key, if it is still
// what it was (false: changed meanwhile, by a writer that used the
// current key, or deleted).
func (r *rotation) reseal(ctx context.Context, kind store.SealedKind, v store.Sealed) (bool, error) {
	aad, err := r.aad(ctx, kind, v.ID)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	plain, err := r.keys.Open(v.Value, aad)
	if err != nil {
		return false, err
	}
	sealed, err := r.keys.Seal(plain, aad)
	if err != nil {
		return false, err
	}
	return r.st.Reseal(ctx, kind, v.ID, v.Value, sealed)
}

// aad returns what a sealed value of kind in row id is bound to.
func (r *rotation) aad(ctx context.Context, kind store.SealedKind, id string) ([]byte, error) {
	switch kind {
	case store.SealedIntegrationConfigs:
		in, err := r.st.Integration(ctx, id)
		if err != nil {
			return nil, err
		}
		return ConfigAAD(in), nil
	case store.SealedTOTPSecrets, store.SealedTOTPPending:
		return access.TOTPSecretAAD(id), nil
	case store.SealedSSOSecret:
		return access.SSOSecretAAD(), nil
	case store.SealedAccessKey:
		return accessKeyAAD, nil
	}
	return nil, fmt.Errorf("no aad known for %s", kind)
}
