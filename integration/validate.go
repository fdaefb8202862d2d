package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"unicode/utf8"
)

// ValidateFunc is an integration's validate mode: it connects to the
// target with the config's credentials and checks it may read what a
// collection needs, emitting nothing. It reports each check passed on v;
// a returned error fails the validation (wrap ErrAuth, ErrUnreachable,
// ErrCertificate, ErrAccess or ErrBadConfig to say why).
type ValidateFunc func(ctx context.Context, config []byte, v *Validation, log *slog.Logger) error

// Validation collects the checks a validation passed.
type Validation struct {
	checks []Check
}

// Passed records a passed check: a short name ("bind") and what it found,
// never a secret.
func (v *Validation) Passed(name, detail string) {
	if len(v.checks) < MaxValidationChecks {
		v.checks = append(v.checks, Check{Name: clip(name, 64), Detail: clip(detail, 512)})
	}
}

// Check is one passed check of a validation.
type Check struct {
	Name   string `json:"name"`
	Detail string `json:"detail,omitempty"`
}

// ValidationResult is the one line a validation writes on stdout:
// {"validation": {"ok": ..., "reason": ..., "error": ..., "checks": [...]}}.
type ValidationResult struct {
	OK bool `json:"ok"`
	// Reason names the failure's exit code ("auth", "certificate", ...).
	Reason string `json:"reason,omitempty"`
	// Error is the failure, as the integration logged it.
	Error  string  `json:"error,omitempty"`
	Checks []Check `json:"checks,omitempty"`
}

// Bounds of a validation result.
const (
	MaxValidationLine   = 64 << 10
	MaxValidationChecks = 32
	maxValidationError  = 4 << 10
)

// runValidate runs the validate mode and writes its result line.
func (o *options) runValidate(ctx context.Context, configPath string, stdout io.Writer, log *slog.Logger) int {
	log = log.With("mode", ModeValidate)
	var v Validation
	err := errNoValidate
	code := ExitUsage
	if o.validate != nil {
		var config []byte
		if config, err = ReadConfig(configPath); err == nil {
			err = o.validate(ctx, config, &v, log)
		}
		code = o.exitCode(err)
	}
	res := ValidationResult{OK: err == nil, Checks: v.checks}
	if err != nil {
		res.Reason, res.Error = ReasonOf(code), clip(err.Error(), maxValidationError)
		log.Error("validation failed", "exit", code, "reason", res.Reason, "err", err)
	} else {
		log.Info("validation passed", "checks", len(v.checks))
	}
	line, _ := json.Marshal(map[string]ValidationResult{"validation": res})
	if _, werr := stdout.Write(append(line, '\n')); werr != nil && code == ExitOK {
		return ExitFailed
	}
	return code
}

// ParseValidationResult reads a validation's output (its stdout): exactly
// one line holding {"validation": {...}}, at most MaxValidationLine bytes.
// The runner's side of validate mode reads with it; the output is
// untrusted.
func ParseValidationResult(out []byte) (*ValidationResult, error) {
	out = bytes.TrimRight(out, "\r\n")
	switch {
	case len(out) == 0:
		return nil, errors.New("validation wrote no result line")
	case len(out) > MaxValidationLine:
		return nil, fmt.Errorf("validation result: more than %d bytes", MaxValidationLine)
	case bytes.ContainsAny(out, "\n"):
		return nil, errors.New("validation result: want exactly one line on stdout (a validation emits no records)")
	case !utf8.Valid(out):
		return nil, errors.New("validation result: not UTF-8")
	}
	var wrapper struct {
		Validation *ValidationResult `json:"validation"`
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&wrapper); err != nil || wrapper.Validation == nil || dec.More() {
		return nil, fmt.Errorf(`validation result: want {"validation": {"ok": ...}}: %v`, err)
	}
	r := wrapper.Validation
	switch {
	case r.OK && (r.Error != "" || r.Reason != ""):
		return nil, errors.New("validation result: ok with an error")
	case !r.OK && r.Error == "":
		return nil, errors.New("validation result: failed without an error")
	case len(r.Checks) > MaxValidationChecks:
		return nil, fmt.Errorf("validation result: more than %d checks", MaxValidationChecks)
	}
	return r, nil
}

// ReadValidation reads a validation's stdout to its end, keeping no more
// than a result line may be, and returns its result. An output that is no
// valid result line gives a failed result that says why; err is only a
// failure to read. The runner and run-local read with it.
func ReadValidation(r io.Reader) (*ValidationResult, error) {
	var b bytes.Buffer
	_, err := io.Copy(&b, io.LimitReader(r, MaxValidationLine+2))
	if err == nil {
		_, err = io.Copy(io.Discard, r)
	}
	if err != nil {
		return nil, err
	}
	v, perr := ParseValidationResult(b.Bytes())
	if perr != nil {
		return &ValidationResult{OK: false, Reason: "failed", Error: "the integration's validation output: " + perr.Error()}, nil
	}
	return v, nil
}

// clip cuts s to at most n bytes on a character boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return strings.TrimSpace(s) + "…"
}
