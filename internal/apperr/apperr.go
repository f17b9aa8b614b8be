// Package apperr defines the errors the API shows to its callers. Each carries one of the
// codes of API.md, which the GraphQL layer puts in `extensions.code`; anything that is not
// an *Error is reported as INTERNAL without its message.
package apperr

import (
	"errors"
	"fmt"
	"time"
)

// Code is the machine-readable error class (`extensions.code`).
type Code string

// The codes of the API contract.
const (
	Unauthenticated Code = "UNAUTHENTICATED"
	Forbidden       Code = "FORBIDDEN"
	NotFound        Code = "NOT_FOUND"
	BadUserInput    Code = "BAD_USER_INPUT"
	Conflict        Code = "CONFLICT"
	RateLimited     Code = "RATE_LIMITED"
	Internal        Code = "INTERNAL"
)

// Error is an error safe to show to the caller.
type Error struct {
	Code    Code
	Message string
	// Field names the offending input field for BAD_USER_INPUT, if any.
	Field string
	// RetryAfter is how long a RATE_LIMITED caller should wait (extensions.retryAfter, in
	// seconds), if known.
	RetryAfter time.Duration
	// Err is the underlying cause, kept for errors.Is/As and logs, never shown.
	Err error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Message + ": " + e.Err.Error()
	}
	return e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// New returns an *Error with a formatted message.
func New(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Wrap returns an *Error with the given cause.
func Wrap(code Code, err error, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...), Err: err}
}

// Invalid is a BAD_USER_INPUT error about one input field.
func Invalid(field, format string, args ...any) *Error {
	return &Error{Code: BadUserInput, Field: field, Message: fmt.Sprintf(format, args...)}
}

// CodeOf returns the code of the first *Error in err's chain, or "" if there is none.
func CodeOf(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// Is reports whether err carries code.
func Is(err error, code Code) bool { return CodeOf(err) == code }
