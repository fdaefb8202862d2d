package store

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"strconv"
	"time"
)

// GenesisHash is the prev_hash of the first audit entry.
const GenesisHash = "0000000000000000000000000000000000000000000000000000000000000000"

// auditHashVersion is mixed into every hash so the encoding can change later.
const auditHashVersion = "collector-audit-v1"

// Event is an administrative act, appended to the audit log by the store in
// the same transaction as the act itself.
type Event struct {
	Time    time.Time
	Actor   string
	Action  string
	Target  string
	Details map[string]any
}

// AuditEntry is one row of the hash-chained audit log.
type AuditEntry struct {
	Seq      int64
	Time     time.Time
	Actor    string
	Action   string
	Target   string
	Details  string // canonical JSON, stored and hashed byte for byte
	PrevHash string
	Hash     string
	// MAC is the HMAC of Hash under the platform's integrity key (hex):
	// without the key, an edited, inserted or re-chained entry cannot carry
	// a valid one.
	MAC string
}

// Checkpoint is a chain head saved outside the database (the platform's
// checkpoint file, or a value an administrator noted): a chain that no
// longer holds it lost its newest entries or was rewritten.
type Checkpoint struct {
	Seq  int64
	Hash string
}

// VerifyResult says whether the chain holds, and where it first breaks.
type VerifyResult struct {
	OK      bool
	Entries int64
	BadSeq  int64  // first bad seq, 0 when OK
	Reason  string // why that seq is bad
	Head    string // hash of the last entry
	HeadSeq int64  // seq of the last entry
}

// NewEntry builds the entry that follows prev (seq 0, GenesisHash for the first).
func NewEntry(prevSeq int64, prevHash string, ev Event) (AuditEntry, error) {
	details := []byte("{}")
	if len(ev.Details) > 0 {
		var err error
		// encoding/json sorts map keys, which makes the text canonical.
		if details, err = json.Marshal(ev.Details); err != nil {
			return AuditEntry{}, fmt.Errorf("encode audit details: %w", err)
		}
	}
	e := AuditEntry{
		Seq: prevSeq + 1, Time: ev.Time.UTC(), Actor: ev.Actor, Action: ev.Action,
		Target: ev.Target, Details: string(details), PrevHash: prevHash,
	}
	e.Hash = e.ComputeHash()
	return e, nil
}

// ComputeHash is SHA-256 over the length-prefixed fields of e (all but Hash).
// Length prefixes make the encoding unambiguous whatever the fields contain.
func (e AuditEntry) ComputeHash() string {
	h := sha256.New()
	for _, f := range []string{
		auditHashVersion,
		strconv.FormatInt(e.Seq, 10),
		strconv.FormatInt(e.Time.UnixNano(), 10),
		e.Actor, e.Action, e.Target, e.Details, e.PrevHash,
	} {
		writeField(h, f)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func writeField(h hash.Hash, s string) {
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(s)))
	h.Write(n[:])
	h.Write([]byte(s))
}

// SealEntry sets e.MAC under in.
func SealEntry(in *Integrity, e *AuditEntry) {
	e.MAC = hex.EncodeToString(in.Sum(MACAudit, []byte(e.Hash)))
}

// Verifier checks entries one by one, in seq order.
type Verifier struct {
	res      VerifyResult
	prevSeq  int64
	prevHash string
	in       *Integrity
	expect   map[int64]string // checkpoints: seq -> hash
	maxSeq   int64            // the newest checkpoint's seq
}

// NewVerifier starts a verification at the beginning of the chain. With
// in, every entry's MAC is checked; the chain must hold every checkpoint
// in expect (a zero checkpoint, of an empty chain, holds always).
func NewVerifier(in *Integrity, expect ...Checkpoint) *Verifier {
	v := &Verifier{prevHash: GenesisHash, res: VerifyResult{OK: true}, in: in, expect: map[int64]string{}}
	for _, c := range expect {
		if c.Seq > 0 {
			v.expect[c.Seq] = c.Hash
			v.maxSeq = max(v.maxSeq, c.Seq)
		}
	}
	return v
}

// Next checks e; it returns false once the chain is known broken.
func (v *Verifier) Next(e AuditEntry) bool {
	if !v.res.OK {
		return false
	}
	switch {
	case e.Seq != v.prevSeq+1:
		v.fail(v.prevSeq+1, fmt.Sprintf("entry missing (next entry found is seq %d)", e.Seq))
	case e.PrevHash != v.prevHash:
		v.fail(e.Seq, "prev_hash does not match the previous entry's hash")
	case e.ComputeHash() != e.Hash:
		v.fail(e.Seq, "hash does not match the entry's contents (entry edited)")
	case v.in != nil && !v.validMAC(e):
		v.fail(e.Seq, "MAC does not verify: the entry was not written by this platform (edited, inserted or re-chained)")
	case v.expect[e.Seq] != "" && e.Hash != v.expect[e.Seq]:
		v.fail(e.Seq, "entry differs from the saved checkpoint: the chain was rewritten")
	default:
		v.prevSeq, v.prevHash = e.Seq, e.Hash
		v.res.Entries++
		v.res.Head, v.res.HeadSeq = e.Hash, e.Seq
	}
	return v.res.OK
}

func (v *Verifier) validMAC(e AuditEntry) bool {
	mac, err := hex.DecodeString(e.MAC)
	return err == nil && v.in.Verify(mac, MACAudit, []byte(e.Hash))
}

func (v *Verifier) fail(seq int64, reason string) {
	v.res.OK, v.res.BadSeq, v.res.Reason = false, seq, reason
}

// Result returns the verdict. Called at the end of the chain: a chain that
// stops before the expected checkpoint lost its newest entries.
func (v *Verifier) Result() VerifyResult {
	if v.res.OK && v.prevSeq < v.maxSeq {
		v.fail(v.prevSeq+1, fmt.Sprintf("the chain ends at seq %d, before the saved checkpoint (seq %d): its newest entries were deleted", v.prevSeq, v.maxSeq))
	}
	return v.res
}
