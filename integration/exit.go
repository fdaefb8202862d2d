package integration

import (
	"errors"
)

// Exit codes of an integration (docs/integration-contract.md, "Exit
// status"). 0 is a complete run (or a passed validation); anything else
// fails the job. The codes from 3 up say why, so the platform and people
// can tell a wrong password from an unreachable server without reading
// the logs.
const (
	ExitOK          = 0
	ExitFailed      = 1 // any other failure
	ExitUsage       = 2 // bad arguments, or a mode the integration does not have
	ExitBadConfig   = 3 // the config is missing, not JSON, or wrong (ErrBadConfig)
	ExitAuth        = 4 // the target refused the credentials (ErrAuth)
	ExitUnreachable = 5 // the target could not be reached (ErrUnreachable)
	ExitCertificate = 6 // the target's TLS certificate was not trusted (ErrCertificate)
	ExitAccess      = 7 // signed in, but not allowed to read what is needed (ErrAccess)
)

// Errors an integration wraps (fmt.Errorf("%w: ...", integration.ErrAuth))
// to say why it failed; Main exits with their codes.
var (
	ErrBadConfig   = errors.New("bad config")
	ErrAuth        = errors.New("authentication failed")
	ErrUnreachable = errors.New("target unreachable")
	ErrCertificate = errors.New("certificate not trusted")
	ErrAccess      = errors.New("access denied")
)

// Reasons name the exit codes in a validation result.
var reasons = map[int]string{
	ExitFailed: "failed", ExitUsage: "usage", ExitBadConfig: "config", ExitAuth: "auth",
	ExitUnreachable: "unreachable", ExitCertificate: "certificate", ExitAccess: "access",
}

// ReasonOf names an exit code ("auth", "certificate", ...; "failed" for a
// code the contract does not name).
func ReasonOf(code int) string {
	if r, ok := reasons[code]; ok {
		return r
	}
	return reasons[ExitFailed]
}

// ExitCoder is an error that chooses the integration's exit code.
type ExitCoder interface {
	error
	ExitCode() int
}

// exitError is an error with its exit code.
type exitError struct {
	err  error
	code int
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }
func (e *exitError) ExitCode() int { return e.code }

// WithExitCode returns err carrying an exit code (nil stays nil).
func WithExitCode(err error, code int) error {
	if err == nil {
		return nil
	}
	return &exitError{err: err, code: code}
}

// Option changes how Main and Run run an integration.
type Option func(*options)

type options struct {
	codes    []errorCode
	validate ValidateFunc
}

type errorCode struct {
	target error
	code   int
}

// ExitOn makes an error that is target (errors.Is) exit with code; the
// first matching ExitOn wins, before the SDK's own errors.
func ExitOn(target error, code int) Option {
	return func(o *options) { o.codes = append(o.codes, errorCode{target, code}) }
}

// WithValidate gives the integration a validate mode: v runs instead of
// the collection when the runner (or --validate) asks for one.
func WithValidate(v ValidateFunc) Option {
	return func(o *options) { o.validate = v }
}

// exitCode maps a run's error to its exit code: an ExitCoder's own code,
// then the ExitOn options, then the SDK's errors, else ExitFailed.
func (o *options) exitCode(err error) int {
	if err == nil {
		return ExitOK
	}
	var ec ExitCoder
	if errors.As(err, &ec) && ec.ExitCode() != 0 {
		return ec.ExitCode()
	}
	for _, c := range o.codes {
		if errors.Is(err, c.target) {
			return c.code
		}
	}
	for _, c := range []errorCode{{ErrBadConfig, ExitBadConfig}, {ErrAuth, ExitAuth}, {ErrUnreachable, ExitUnreachable},
		{ErrCertificate, ExitCertificate}, {ErrAccess, ExitAccess}} {
		if errors.Is(err, c.target) {
			return c.code
		}
	}
	return ExitFailed
}
