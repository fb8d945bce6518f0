package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/flock-social/flock/internal/store"
	"github.com/flock-social/flock/internal/testutil"
)

// A prepared statement whose context ends while Postgres is still answering
// leaves that answer unread on its connection. The connection must not be
// used again: pgdriver kept it, and the next statement on it read the old
// answer ("pgdriver: Exec: unexpected message '2'", seen once in the soak
// test, where streams reconnect on a deadline). One connection, so that the
// next statements get the same one if it is kept.
func TestPrepared_StatementCutOffByItsDeadlineLeavesNoAnswerBehind(t *testing.T) {
	db := testutil.MustStore(t, store.Postgres)
	pool := db.DB.DB
	pool.SetMaxOpenConns(1)
	ctx := t.Context()
	slow, err := pool.PrepareContext(ctx, "SELECT pg_sleep($1::float8)::text")
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	for i := range 3 {
		cut, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		_, err := slow.ExecContext(cut, 0.3)
		cancel()
		if err == nil {
			t.Fatalf("round %d: a 300 ms statement with a 50 ms deadline succeeded", i)
		}
		time.Sleep(400 * time.Millisecond) // the old answer arrives
		var got int
		if err := pool.QueryRowContext(ctx, "SELECT $1::int", 40+i).Scan(&got); err != nil || got != 40+i {
			t.Fatalf("round %d: the statement after a cut-off one = %d, %v; want %d", i, got, err, 40+i)
		}
		if _, err := slow.ExecContext(ctx, 0); err != nil {
			t.Fatalf("round %d: the prepared statement after a cut-off one: %v", i, err)
		}
	}
}
