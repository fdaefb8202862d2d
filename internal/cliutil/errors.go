// Package cliutil holds what both binaries' command lines share: the mapping
// from errors to exit codes, in one place.
package cliutil

import (
	"errors"
	"fmt"
	"io"
)

// Exit codes shared by both binaries.
const (
	ExitOK          = 0
	ExitFailure     = 1 // anything not classified below
	ExitUsage       = 2 // bad flags or arguments
	ExitUnavailable = 3 // a service or engine could not be reached
	ExitNotFound    = 4 // the named thing does not exist
	ExitConflict    = 5 // refused because of the current state
	ExitAuth        = 6 // missing or wrong credentials
)

// ExitError carries the exit code a command wants, with its message.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string { return e.Err.Error() }
func (e *ExitError) Unwrap() error { return e.Err }

// Exit wraps err with an exit code.
func Exit(code int, err error) error {
	if err == nil {
		return nil
	}
	return &ExitError{Code: code, Err: err}
}

// Usagef is a usage error: exit code 2.
func Usagef(format string, args ...any) error {
	return &ExitError{Code: ExitUsage, Err: fmt.Errorf(format, args...)}
}

// Classifier maps a library error to an exit code, or 0 when it does not know it.
type Classifier func(error) int

// Code returns the exit code for err: an ExitError's own code, else the first
// classifier that knows it, else ExitFailure.
func Code(err error, classify ...Classifier) int {
	if err == nil {
		return ExitOK
	}
	var ee *ExitError
	if errors.As(err, &ee) {
		return ee.Code
	}
	for _, c := range classify {
		if code := c(err); code != 0 {
			return code
		}
	}
	return ExitFailure
}

// Report writes "NAME: error: MSG" to w and returns the exit code for err.
func Report(w io.Writer, name string, err error, classify ...Classifier) int {
	if err == nil {
		return ExitOK
	}
	fmt.Fprintf(w, "%s: error: %v\n", name, err)
	return Code(err, classify...)
}
