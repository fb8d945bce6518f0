package store_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/uptrace/bun"

	"github.com/flock-social/flock"
	"github.com/flock-social/flock/internal/store"
	"github.com/flock-social/flock/internal/testutil"
)

// Two transactions lock two users in opposite orders and deadlock for real
// on Postgres: the one Postgres aborts (SQLSTATE 40P01) runs again by
// itself inside InTx, and both commit (security.md property 27).
func TestInTx_DeadlockVictimRunsAgainAndBothCommit_P27(t *testing.T) {
	t.Parallel()
	db := testutil.MustStore(t, store.Postgres)
	ctx := context.Background()
	a := &store.User{Username: "lockera", Email: "lockera@example.com", PasswordHash: "x", FullName: "A"}
	b := &store.User{Username: "lockerb", Email: "lockerb@example.com", PasswordHash: "x", FullName: "B"}
	for _, u := range []*store.User{a, b} {
		if err := db.CreateUser(ctx, db, u); err != nil {
			t.Fatal(err)
		}
	}
	bump := func(ctx context.Context, tx bun.Tx, id string) error {
		_, err := tx.NewUpdate().Model((*store.User)(nil)).Set("posts_count = posts_count + 1").Where("id = ?", id).Exec(ctx)
		return err
	}
	var runs atomic.Int32
	// Each transaction, on its first run only, takes its first row and
	// waits until the other has taken its own before taking the second.
	cross := func(first, second string, mine, theirs chan struct{}, once *sync.Once) error {
		return db.InTx(ctx, func(ctx context.Context, tx bun.Tx) error {
			runs.Add(1)
			if err := bump(ctx, tx, first); err != nil {
				return err
			}
			once.Do(func() {
				close(mine)
				<-theirs
			})
			return bump(ctx, tx, second)
		})
	}
	aTaken, bTaken := make(chan struct{}), make(chan struct{})
	var onceA, onceB sync.Once
	errs := make(chan error, 2)
	go func() { errs <- cross(a.ID, b.ID, aTaken, bTaken, &onceA) }()
	go func() { errs <- cross(b.ID, a.ID, bTaken, aTaken, &onceB) }()
	for range 2 {
		if err := <-errs; err != nil {
			t.Errorf("transaction failed: %v", err)
		}
	}
	if got := runs.Load(); got != 3 {
		t.Errorf("transaction runs = %d, want 3 (two, and the deadlock victim once more)", got)
	}
	for _, u := range []*store.User{a, b} {
		got, err := db.GetUser(ctx, db, u.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.PostsCount != 2 {
			t.Errorf("%s posts_count = %d, want 2: each transaction committed once", u.Username, got.PostsCount)
		}
	}
}

// A serialization failure or deadlock (raised here by its SQLSTATE) makes
// InTx run the function again, a few times at most, and then answer
// unavailable; other errors, and every error on SQLite, end it at once.
func TestInTx_RunsAgainOnlyAfterSerializationFailures_P27(t *testing.T) {
	t.Parallel()
	testutil.ForEachEngine(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		ctx := context.Background()
		raise := func(ctx context.Context, tx bun.Tx, code string) error {
			if db.Engine != store.Postgres {
				return errors.New("not retryable on sqlite")
			}
			_, err := tx.ExecContext(ctx, "DO $$ BEGIN RAISE EXCEPTION 'test' USING ERRCODE = '"+code+"'; END $$")
			return err
		}
		for _, tc := range []struct {
			code     string
			failRuns int
			wantRuns int
			wantErr  string
		}{
			{code: "40001", failRuns: 1, wantRuns: 2},
			{code: "40P01", failRuns: 2, wantRuns: 3},
			{code: "40P01", failRuns: 100, wantRuns: 4, wantErr: flock.EUNAVAILABLE},
			{code: "23505", failRuns: 100, wantRuns: 1, wantErr: flock.EINTERNAL},
		} {
			if db.Engine != store.Postgres {
				tc.wantRuns, tc.wantErr = 1, flock.EINTERNAL
			}
			runs := 0
			err := db.InTx(ctx, func(ctx context.Context, tx bun.Tx) error {
				runs++
				if runs <= tc.failRuns {
					if err := raise(ctx, tx, tc.code); err != nil {
						return err
					}
				}
				return nil
			})
			if runs != tc.wantRuns {
				t.Errorf("%s failing %d times: %d runs, want %d", tc.code, tc.failRuns, runs, tc.wantRuns)
			}
			if got := flock.ErrorCode(err); (tc.wantErr == "" && err != nil) || (tc.wantErr != "" && got != tc.wantErr) {
				t.Errorf("%s failing %d times: err = %v (code %q), want code %q", tc.code, tc.failRuns, err, got, tc.wantErr)
			}
		}
		// Every aborted run is counted, the last one given up included.
		want := store.TxConflictStats{Deadlocks: 2 + 4, SerializationFailures: 1}
		if db.Engine != store.Postgres {
			want = store.TxConflictStats{}
		}
		if got := db.TxConflicts(); got != want {
			t.Errorf("TxConflicts = %+v, want %+v", got, want)
		}
	})
}
