// Package flock holds what every layer of the Flock server shares: the error
// type that the domain packages return and the transport maps onto Connect
// codes. It has no dependencies beyond the standard library.
package flock

import (
	"errors"
	"fmt"
)

// Error codes. Each maps 1:1 onto a Connect code in server/ (and from there
// onto an HTTP status for REST); the domain never speaks in transport terms.
const (
	EINVALID      = "invalid_argument"
	ENOTFOUND     = "not_found"
	ECONFLICT     = "already_exists"
	EFORBIDDEN    = "permission_denied"
	EUNAUTHORIZED = "unauthenticated"
	EPRECONDITION = "failed_precondition"
	ERATELIMIT    = "resource_exhausted"
	EUNAVAILABLE  = "unavailable"
	EINTERNAL     = "internal"
)

// Error is a failure the caller can act on. Message is shown to the client
// as it is, so it must never carry SQL, paths or secrets.
type Error struct {
	Code    string
	Message string
	// Field names the request field at fault, for invalid_argument errors.
	Field string
}

// Error implements the error interface.
func (e *Error) Error() string {
	return fmt.Sprintf("flock error: code=%s message=%s", e.Code, e.Message)
}

// Errorf returns an *Error with the given code and a formatted message.
func Errorf(code string, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// FieldErrorf returns an invalid_argument *Error that names the field at fault.
func FieldErrorf(field string, format string, args ...any) *Error {
	return &Error{Code: EINVALID, Field: field, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first *Error in err's chain, EINTERNAL
// for any other non-nil error, and "" for nil.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the client-safe message of err: the message of an
// *Error, or "internal error" for anything else.
func ErrorMessage(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}
