package crypto

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hpke"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
	"unicode/utf8"
)

// EnvelopeVersion is the version of the job envelope format SealEnvelope
// writes and OpenEnvelope reads (docs/envelope.md).
const EnvelopeVersion = 1

// Bounds of the envelope format. OpenEnvelope refuses anything larger before
// parsing it; SealEnvelope refuses a job that would not fit.
const (
	// MaxEnvelopeSize is the largest envelope OpenEnvelope reads, in bytes.
	MaxEnvelopeSize = 16 << 20
	// MaxJobSize is the largest JSON-encoded job SealEnvelope seals; with
	// base64 its envelope stays well under MaxEnvelopeSize.
	MaxJobSize = 8 << 20
	// MaxIDLength is the longest collector or job ID, in bytes.
	MaxIDLength = 256
)

// Domain-separation strings. infoPrefix is the start of the HPKE info;
// sigDomain starts the message the platform signs.
const (
	infoPrefix = "collector-envelope-v1\x00"
	sigDomain  = "collector-envelope-signature\x00"
)

// Errors returned by OpenEnvelope, one per check; see docs/envelope.md for
// the order in which they are made.
var (
	// ErrEnvelopeMalformed reports an envelope too large, not strict JSON,
	// with a field missing or out of bounds, or whose job does not decode.
	ErrEnvelopeMalformed = errors.New("envelope malformed")
	// ErrEnvelopeVersion reports a version this code does not read.
	ErrEnvelopeVersion = errors.New("envelope version not supported")
	// ErrEnvelopeSignature reports a platform signature that does not verify.
	ErrEnvelopeSignature = errors.New("envelope signature invalid")
	// ErrEnvelopeCollector reports an envelope for another collector.
	ErrEnvelopeCollector = errors.New("envelope is for another collector")
	// ErrEnvelopeJob reports an envelope for another job than the one
	// leased, or whose decrypted job does not match its header.
	ErrEnvelopeJob = errors.New("envelope job mismatch")
	// ErrEnvelopeExpired reports an envelope at or past its not_after.
	ErrEnvelopeExpired = errors.New("envelope expired")
	// ErrEnvelopeDecrypt reports a failed HPKE decryption (most often: not
	// this collector's key).
	ErrEnvelopeDecrypt = errors.New("envelope decryption failed")
)

// Limits are the resource limits of a job container.
type Limits struct {
	// MemoryBytes is the memory limit in bytes; 0 means the runner default.
	MemoryBytes int64 `json:"memory_bytes,omitempty"`
	// CPUs is the CPU limit in cores; 0 means the runner default.
	CPUs float64 `json:"cpus,omitempty"`
	// Pids is the process count limit; 0 means the runner default.
	Pids int64 `json:"pids,omitempty"`
	// TimeoutSec is the run time limit in seconds; 0 means the runner default.
	TimeoutSec int64 `json:"timeout_sec,omitempty"`
}

// Job is what the platform tells a collector to run: the plaintext sealed in
// a job envelope.
type Job struct {
	// JobID identifies the job; it is repeated in the envelope header.
	JobID string `json:"job_id"`
	// IntegrationID identifies the integration instance the job runs.
	IntegrationID string `json:"integration_id"`
	// Image is the integration image reference (pinned by digest).
	Image string `json:"image"`
	// Config is the integration config, secrets included.
	Config json.RawMessage `json:"config"`
	// SecretFields names the config fields holding secrets; the runner
	// redacts their values from logs.
	SecretFields []string `json:"secret_fields,omitempty"`
	// Network is the container network mode; empty means the runner default.
	Network string `json:"network,omitempty"`
	// Limits are the container resource limits.
	Limits Limits `json:"limits"`
	// Mode is "validate" for a validation (the integration checks its
	// access and emits no record); empty for a collection.
	Mode string `json:"mode,omitempty"`
	// NotAfter is when the job goes stale; it is repeated in the header.
	NotAfter time.Time `json:"not_after"`
}

// wireEnvelope is the JSON form of an envelope. []byte fields are standard
// base64 with padding, as encoding/json writes them.
type wireEnvelope struct {
	V           int    `json:"v"`
	CollectorID string `json:"collector_id"`
	JobID       string `json:"job_id"`
	NotAfter    string `json:"not_after"`
	Enc         []byte `json:"enc"`
	CT          []byte `json:"ct"`
	Sig         []byte `json:"sig"`
}

// SealEnvelope seals job to one collector and signs the result with the
// platform key. The job is JSON-encoded, sealed with HPKE (MLKEM768X25519,
// HKDF-SHA256, ChaCha20Poly1305) to collectorHPKEPub with an info that
// binds the version, collectorID and the job ID and an aad that binds the
// whole header, and every field of the envelope but the signature itself is
// signed with platformKey. docs/envelope.md gives the format.
func SealEnvelope(job *Job, collectorID string, collectorHPKEPub []byte, platformKey ed25519.PrivateKey) ([]byte, error) {
	if err := checkSealInputs(job, collectorID, platformKey); err != nil {
		return nil, fmt.Errorf("seal envelope: %w", err)
	}
	pub, err := hpkeKEM().NewPublicKey(collectorHPKEPub)
	if err != nil {
		return nil, fmt.Errorf("seal envelope: %w: collector hpke public key: %v", ErrInvalidKey, err)
	}
	// In UTC, so that the sealed not_after is the same instant as the
	// header's even for a zone whose offset has seconds, which RFC 3339
	// cannot write.
	utcJob := *job
	utcJob.NotAfter = job.NotAfter.UTC()
	plaintext, err := json.Marshal(&utcJob)
	if err != nil {
		return nil, fmt.Errorf("seal envelope: encode job %q: %w", job.JobID, err)
	}
	if len(plaintext) > MaxJobSize {
		return nil, fmt.Errorf("seal envelope: job %q is %d bytes encoded, limit %d", job.JobID, len(plaintext), MaxJobSize)
	}
	w := wireEnvelope{
		V:           EnvelopeVersion,
		CollectorID: collectorID,
		JobID:       job.JobID,
		NotAfter:    formatNotAfter(job.NotAfter),
	}
	enc, sender, err := hpke.NewSender(pub, hpkeKDF(), hpkeAEAD(), envelopeInfo(collectorID, job.JobID))
	if err != nil {
		return nil, fmt.Errorf("seal envelope: hpke to collector %q: %w", collectorID, err)
	}
	if w.CT, err = sender.Seal(w.header(), plaintext); err != nil {
		return nil, fmt.Errorf("seal envelope: hpke seal: %w", err)
	}
	w.Enc = enc
	w.Sig = ed25519.Sign(platformKey, w.signedMessage())
	return json.Marshal(&w)
}

func checkSealInputs(job *Job, collectorID string, platformKey ed25519.PrivateKey) error {
	switch {
	case job == nil:
		return errors.New("no job")
	case !validID(collectorID):
		return fmt.Errorf("invalid collector ID %q", collectorID)
	case !validID(job.JobID):
		return fmt.Errorf("invalid job ID %q", job.JobID)
	case job.NotAfter.IsZero():
		return fmt.Errorf("job %q has no not_after", job.JobID)
	case len(platformKey) != ed25519.PrivateKeySize:
		return fmt.Errorf("%w: platform ed25519 private key is %d bytes", ErrInvalidKey, len(platformKey))
	case !validMode(job.Mode):
		return fmt.Errorf("job %q: unknown mode %q", job.JobID, job.Mode)
	}
	// encoding/json would silently turn invalid UTF-8 into U+FFFD: the
	// runner would get another image or network than the platform meant.
	for _, s := range append([]string{job.IntegrationID, job.Image, job.Network}, job.SecretFields...) {
		if !utf8.ValidString(s) {
			return fmt.Errorf("job %q: invalid UTF-8 in %q", job.JobID, s)
		}
	}
	return nil
}

// OpenEnvelope verifies and decrypts an envelope for collectorID and returns
// its job. wantJobID, if not empty, is the job ID the caller leased. The
// checks run in this order, each with its own error: size and strict JSON
// (ErrEnvelopeMalformed), version (ErrEnvelopeVersion), header fields
// (ErrEnvelopeMalformed), platform signature (ErrEnvelopeSignature),
// collector ID (ErrEnvelopeCollector), job ID (ErrEnvelopeJob), not_after >
// now (ErrEnvelopeExpired), HPKE decryption (ErrEnvelopeDecrypt), decoding
// of the job (ErrEnvelopeMalformed), and last that the job's ID and
// not_after equal the header's (ErrEnvelopeJob).
//
// Replay of an envelope within its validity is not checked here: the runner
// must refuse a job ID it has already run.
func OpenEnvelope(envelope []byte, collectorID, wantJobID string, key *HPKEKey, platformPub ed25519.PublicKey, now time.Time) (*Job, error) {
	if key == nil || key.priv == nil {
		return nil, fmt.Errorf("open envelope: %w: no hpke key", ErrInvalidKey)
	}
	if len(platformPub) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("open envelope: %w: platform ed25519 public key is %d bytes", ErrInvalidKey, len(platformPub))
	}
	w, notAfter, err := parseEnvelope(envelope)
	if err != nil {
		return nil, err
	}
	if err := w.checkHeader(collectorID, wantJobID, platformPub, notAfter, now); err != nil {
		return nil, err
	}
	r, err := hpke.NewRecipient(w.Enc, key.priv, hpkeKDF(), hpkeAEAD(), envelopeInfo(w.CollectorID, w.JobID))
	if err != nil {
		return nil, fmt.Errorf("%w: job %q: %v", ErrEnvelopeDecrypt, w.JobID, err)
	}
	plaintext, err := r.Open(w.header(), w.CT)
	if err != nil {
		return nil, fmt.Errorf("%w: job %q: %v", ErrEnvelopeDecrypt, w.JobID, err)
	}
	return decodeJob(plaintext, w.JobID, notAfter)
}

// parseEnvelope decodes the wire form and checks every header field is
// present and in bounds. The version is read first, leniently, so that a
// newer envelope (which may carry fields this version does not know) is
// reported as ErrEnvelopeVersion rather than as malformed.
func parseEnvelope(b []byte) (*wireEnvelope, time.Time, error) {
	if len(b) > MaxEnvelopeSize {
		return nil, time.Time{}, fmt.Errorf("%w: %d bytes, limit %d", ErrEnvelopeMalformed, len(b), MaxEnvelopeSize)
	}
	var peek struct {
		V *int `json:"v"`
	}
	if err := json.Unmarshal(b, &peek); err != nil || peek.V == nil {
		return nil, time.Time{}, fmt.Errorf("%w: no version: %v", ErrEnvelopeMalformed, err)
	}
	if *peek.V != EnvelopeVersion {
		return nil, time.Time{}, fmt.Errorf("%w: version %d, this collector reads %d", ErrEnvelopeVersion, *peek.V, EnvelopeVersion)
	}
	var w wireEnvelope
	if err := decodeStrict(b, &w); err != nil {
		return nil, time.Time{}, fmt.Errorf("%w: %v", ErrEnvelopeMalformed, err)
	}
	notAfter, err := w.checkFields()
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("%w: %v", ErrEnvelopeMalformed, err)
	}
	return &w, notAfter, nil
}

func (w *wireEnvelope) checkFields() (time.Time, error) {
	switch {
	case !validID(w.CollectorID):
		return time.Time{}, errors.New("collector_id missing or invalid")
	case !validID(w.JobID):
		return time.Time{}, errors.New("job_id missing or invalid")
	case len(w.Enc) != HPKEEncSize:
		return time.Time{}, fmt.Errorf("enc is %d bytes, want %d", len(w.Enc), HPKEEncSize)
	case len(w.CT) < hpkeAEADOverhead:
		return time.Time{}, fmt.Errorf("ct is %d bytes, shorter than the AEAD tag", len(w.CT))
	case len(w.Sig) != ed25519.SignatureSize:
		return time.Time{}, fmt.Errorf("sig is %d bytes, want %d", len(w.Sig), ed25519.SignatureSize)
	}
	return parseNotAfter(w.NotAfter)
}

// ModeValidate is Job.Mode of a validation.
const ModeValidate = "validate"

// validMode: a collection ("") or a validation.
func validMode(m string) bool { return m == "" || m == ModeValidate }

// hpkeAEADOverhead is the tag size of ChaCha20Poly1305.
const hpkeAEADOverhead = 16

// checkHeader runs the checks that need no private key, cheapest trust
// decision first: nothing from the header is believed before the signature
// verifies.
func (w *wireEnvelope) checkHeader(collectorID, wantJobID string, platformPub ed25519.PublicKey, notAfter, now time.Time) error {
	if !ed25519.Verify(platformPub, w.signedMessage(), w.Sig) {
		return fmt.Errorf("%w: job %q", ErrEnvelopeSignature, w.JobID)
	}
	if w.CollectorID != collectorID {
		return fmt.Errorf("%w: envelope for %q, this is %q", ErrEnvelopeCollector, w.CollectorID, collectorID)
	}
	if wantJobID != "" && w.JobID != wantJobID {
		return fmt.Errorf("%w: envelope for job %q, leased %q", ErrEnvelopeJob, w.JobID, wantJobID)
	}
	if !now.Before(notAfter) {
		return fmt.Errorf("%w: job %q not_after %s, now %s", ErrEnvelopeExpired, w.JobID, w.NotAfter, now.UTC().Format(time.RFC3339))
	}
	return nil
}

// decodeJob decodes the decrypted job and checks it against the header.
func decodeJob(plaintext []byte, jobID string, notAfter time.Time) (*Job, error) {
	var job Job
	if err := decodeStrict(plaintext, &job); err != nil {
		return nil, fmt.Errorf("%w: job %q: %v", ErrEnvelopeMalformed, jobID, err)
	}
	if job.JobID != jobID {
		return nil, fmt.Errorf("%w: sealed job %q, header %q", ErrEnvelopeJob, job.JobID, jobID)
	}
	if !job.NotAfter.Equal(notAfter) {
		return nil, fmt.Errorf("%w: job %q sealed not_after %s, header %s", ErrEnvelopeJob, jobID, job.NotAfter.Format(time.RFC3339Nano), notAfter.Format(time.RFC3339Nano))
	}
	if !validMode(job.Mode) {
		return nil, fmt.Errorf("%w: job %q: unknown mode %q", ErrEnvelopeMalformed, jobID, job.Mode)
	}
	return &job, nil
}

// header encodes the header fields: u32 version, then collector_id, job_id
// and not_after, each as u32 length + bytes. It is the HPKE aad and the
// start of the signed message.
func (w *wireEnvelope) header() []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(w.V))
	b = appendField(b, []byte(w.CollectorID))
	b = appendField(b, []byte(w.JobID))
	return appendField(b, []byte(w.NotAfter))
}

// signedMessage is what the platform signs: a domain string, the header,
// enc and ct, every field but sig, length-prefixed so that no two envelopes
// share a message.
func (w *wireEnvelope) signedMessage() []byte {
	b := append([]byte(sigDomain), w.header()...)
	b = appendField(b, w.Enc)
	return appendField(b, w.CT)
}

func appendField(b, field []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(field)))
	return append(b, field...)
}

// envelopeInfo is the HPKE info. IDs cannot hold NUL (validID), so the
// separators make it unambiguous.
func envelopeInfo(collectorID, jobID string) []byte {
	return []byte(infoPrefix + collectorID + "\x00" + jobID)
}

// formatNotAfter gives the one header form of t: RFC 3339 in UTC with
// nanoseconds and no trailing zeros.
func formatNotAfter(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// parseNotAfter parses a header not_after and insists on the form
// formatNotAfter writes.
func parseNotAfter(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("not_after: %v", err)
	}
	if formatNotAfter(t) != s {
		return time.Time{}, fmt.Errorf("not_after %q is not in canonical form", s)
	}
	return t, nil
}

// validID reports whether s can be a collector or job ID: 1 to MaxIDLength
// bytes of UTF-8 without control characters.
func validID(s string) bool {
	if s == "" || len(s) > MaxIDLength || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

// decodeStrict decodes exactly one JSON value into v, refusing unknown
// fields and trailing data.
func decodeStrict(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("trailing data after JSON value")
	}
	return nil
}
