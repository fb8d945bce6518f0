package store

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/uptrace/bun/driver/pgdriver"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/flock-social/flock"
)

// ErrConflict is wrapped by errors that a unique constraint caused. The
// domain decides what the conflict means to the user (a taken username, a
// like that already exists).
var ErrConflict = errors.New("store: unique constraint violated")

// translate maps driver errors onto flock errors by their type and code,
// never by message text: a unique violation (Postgres SQLSTATE 23505, SQLite
// SQLITE_CONSTRAINT_UNIQUE or _PRIMARYKEY) wraps ErrConflict and carries
// flock.ECONFLICT; a foreign key violation (23503, SQLITE_CONSTRAINT_FOREIGNKEY),
// which means that what the write refers to was deleted meanwhile, carries
// flock.ENOTFOUND; a lost or refused connection, and a deadlock or
// serialization failure (40P01, 40001) that InTx's retries did not
// overcome, carry flock.EUNAVAILABLE. Other errors pass through unchanged,
// so the transport reports them as internal.
func translate(err error) error {
	if err == nil {
		return nil
	}
	var pgErr pgdriver.Error
	if errors.As(err, &pgErr) {
		code := pgErr.Field('C')
		switch {
		case code == "23505":
			return &conflictError{err: err}
		case code == "23503":
			return goneError(err)
		case code == sqlstateSerializationFailure, code == sqlstateDeadlock:
			return busy(err)
		case strings.HasPrefix(code, "08"), code == "57P01", code == "57P02", code == "57P03":
			return unavailable(err)
		}
		return err
	}
	var liteErr *sqlite.Error
	if errors.As(err, &liteErr) {
		switch liteErr.Code() {
		case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			return &conflictError{err: err}
		case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
			return goneError(err)
		}
		return err
	}
	var netErr net.Error
	if errors.As(err, &netErr) || errors.Is(err, driver.ErrBadConn) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return unavailable(err)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return unavailable(err)
	}
	return err
}

// Postgres SQLSTATEs after which a transaction may simply run again.
const (
	sqlstateSerializationFailure = "40001"
	sqlstateDeadlock             = "40P01"
)

// Retryable reports whether err is Postgres aborting a transaction as a
// deadlock victim or a serialization failure (SQLSTATE 40P01, 40001),
// by the driver's error code, or the transaction's own errRerun: nothing
// of the transaction was committed, and running it again is expected to
// succeed.
func Retryable(err error) bool {
	if errors.Is(err, errRerun) {
		return true
	}
	var pgErr pgdriver.Error
	if !errors.As(err, &pgErr) {
		return false
	}
	code := pgErr.Field('C')
	return code == sqlstateSerializationFailure || code == sqlstateDeadlock
}

// errRerun is a transaction's own finding that what it locked no longer
// covers what it is about to change (see DeleteAccount): InTx runs it
// again, as it does a serialization failure, and counts it as one.
var errRerun = errors.New("the rows this transaction locked changed before it could use them; running it again")

// isDeadlock reports whether err is Postgres aborting a deadlock victim.
func isDeadlock(err error) bool {
	var pgErr pgdriver.Error
	return errors.As(err, &pgErr) && pgErr.Field('C') == sqlstateDeadlock
}

// busy marks a deadlock or serialization failure that retries did not
// overcome: the client may try again.
func busy(err error) error {
	return fmt.Errorf("%w: %w", flock.Errorf(flock.EUNAVAILABLE, "the database is busy with conflicting changes; try again"), err)
}

func goneError(err error) error {
	return fmt.Errorf("%w: %w", flock.Errorf(flock.ENOTFOUND, "what this refers to no longer exists; reload it"), err)
}

func unavailable(err error) error {
	return fmt.Errorf("%w: %w", flock.Errorf(flock.EUNAVAILABLE, "the database is unavailable; try again shortly"), err)
}

// conflictError is a unique violation: it matches ErrConflict with errors.Is
// and carries flock.ECONFLICT for errors.As.
type conflictError struct{ err error }

func (e *conflictError) Error() string        { return "store: unique constraint violated: " + e.err.Error() }
func (e *conflictError) Unwrap() error        { return e.err }
func (e *conflictError) Is(target error) bool { return target == ErrConflict }

// As makes flock.ErrorCode see ECONFLICT without an extra wrapping layer.
func (e *conflictError) As(target any) bool {
	fe, ok := target.(**flock.Error)
	if ok {
		*fe = flock.Errorf(flock.ECONFLICT, "this already exists")
	}
	return ok
}
