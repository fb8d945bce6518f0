package testutil

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"github.com/flock-social/flock/internal/store"
)

// MustDatabaseURL returns the URL of a fresh, empty database of the given
// engine that no other test shares, for code that opens its own connection
// (a server): a SQLite file in tb.TempDir(), or a Postgres schema with a
// random name, named as the search_path of every connection and dropped
// when the test ends. It skips the test when Postgres is asked for and
// unreachable (fails it when CI=true).
func MustDatabaseURL(tb testing.TB, engine string) string {
	tb.Helper()
	switch engine {
	case store.SQLite:
		return "sqlite:" + filepath.Join(tb.TempDir(), "flock.db")
	case store.Postgres:
	default:
		tb.Fatalf("unknown engine %q: want %q or %q", engine, store.SQLite, store.Postgres)
	}
	if err := postgresErr(); err != nil {
		if inCI() {
			tb.Fatalf("postgres at %s is unreachable: %v", redact(DatabaseURL()), err)
		}
		tb.Skipf("postgres at %s is unreachable (set FLOCK_TEST_DATABASE_URL): %v", redact(DatabaseURL()), err)
	}
	ctx := context.Background()
	base := DatabaseURL()
	var suffix [8]byte
	_, _ = rand.Read(suffix[:]) // crypto/rand.Read never fails
	schema := "flock_test_" + hex.EncodeToString(suffix[:])
	// The admin connection is opened for the moment it is needed, not
	// held for the whole test: Postgres allows a limited number of clients
	// and many tests run at once.
	adminExec := func(ctx context.Context, sql string) error {
		admin, err := store.Open(ctx, base, "")
		if err != nil {
			return err
		}
		defer admin.Close()
		_, err = admin.ExecContext(ctx, sql)
		return err
	}
	if err := adminExec(ctx, "CREATE SCHEMA "+schema); err != nil {
		tb.Fatalf("create schema %s: %v", schema, err)
	}
	tb.Cleanup(func() {
		// Cleanups run last-registered first, so whatever the test opened
		// on this URL after this call is closed before the schema goes.
		dctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := adminExec(dctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			tb.Errorf("drop schema %s: %v", schema, err)
		}
	})
	// pgdriver hands query parameters it does not know to the server as
	// run-time parameters of every connection (SET search_path TO ...).
	u, err := url.Parse(base)
	if err != nil {
		tb.Fatalf("parse FLOCK_TEST_DATABASE_URL: %v", err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}
