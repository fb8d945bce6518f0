package store_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/flock-social/flock/internal/store"
	"github.com/flock-social/flock/internal/testutil"
)

type hookRecorder struct {
	n       atomic.Int64
	queries []string
}

func (h *hookRecorder) BeforeQuery(ctx context.Context, _ *bun.QueryEvent) context.Context {
	return ctx
}
func (h *hookRecorder) AfterQuery(_ context.Context, e *bun.QueryEvent) {
	h.n.Add(1)
	h.queries = append(h.queries, e.Query)
}

// The prepared reads (a feed page's: authors with relationships here) are
// seen by query hooks like every other query, with their arguments written
// in, and take any number of ids as one parameter, quotes and backslashes
// included, on the pool and in a transaction.
func TestPrepared_HookedAndAnyIDsOnPoolAndInTx(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		alice, bob := MustCreateUser(t, db, "alice"), MustCreateUser(t, db, "bob")
		rec := &hookRecorder{}
		db.AddQueryHook(rec)
		odd := []string{`a"b`, `c\d`, `e'f`, "", alice.ID, bob.ID}
		users, _, err := db.GetUsersWithRelationships(ctx, db, alice.ID, odd)
		if err != nil {
			t.Fatal(err)
		}
		if len(users) != 2 || users[alice.ID] == nil || users[bob.ID] == nil {
			t.Fatalf("users = %v, want alice and bob only", users)
		}
		// Two statements on a cold row cache: the users with their
		// relationships, then the cache's read of the rows it lacks.
		if rec.n.Load() != 2 || strings.Contains(rec.queries[0], "$1") || strings.Contains(rec.queries[1], "$1") ||
			!strings.Contains(rec.queries[0], alice.ID) || !strings.Contains(rec.queries[1], bob.ID) {
			t.Fatalf("hooks saw %d queries %q, want two with their arguments written in", rec.n.Load(), rec.queries)
		}
		err = db.InTx(ctx, func(ctx context.Context, tx bun.Tx) error {
			users, _, err := db.GetUsersWithRelationships(ctx, tx, bob.ID, []string{alice.ID})
			if err == nil && (len(users) != 1 || users[alice.ID] == nil) {
				t.Errorf("in a transaction: users = %v, want alice", users)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if users, _, err := db.GetUsersWithRelationships(ctx, db, alice.ID, nil); err != nil || len(users) != 0 {
			t.Fatalf("no ids: %v, %v", users, err)
		}
	})
}

// A column added while the server runs (another instance's migration in a
// rolling deploy) does not break the statements this instance prepared:
// they name their columns, so their result type stays the same.
func TestPrepared_SurviveAColumnAddedWhileRunning(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		alice := MustCreateUser(t, db, "alice")
		db.DB.DB.SetMaxOpenConns(1) // one connection, so the second read reuses its statement
		read := func() {
			t.Helper()
			users, _, err := db.GetUsersWithRelationships(ctx, db, alice.ID, []string{alice.ID})
			if err != nil || len(users) != 1 {
				t.Fatalf("GetUsersWithRelationships = %v, %v", users, err)
			}
			if _, err := db.ListPosts(ctx, db, store.PostFilter{ViewerID: alice.ID, FeedOf: alice.ID, Timeline: true, Candidates: []string{"x"}, Limit: 5}); err != nil {
				t.Fatalf("ListPosts: %v", err)
			}
		}
		read()
		for _, table := range []string{"users", "posts"} {
			if _, err := db.ExecContext(ctx, "ALTER TABLE "+table+" ADD COLUMN added_later TEXT"); err != nil {
				t.Fatal(err)
			}
		}
		read()
	})
}

// A prepared statement first used inside a transaction, while that
// transaction holds the pool's every connection, runs without waiting for
// a connection of the pool (preparing it on the pool waited for ever), and
// the pool prepares it for later.
func TestPrepared_FirstUseInATransactionHoldingThePoolsLastConnection(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, db *store.DB) {
		alice := MustCreateUser(t, db, "alice")
		db.SetMaxOpenConns(1)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for round := range 2 { // unprepared, then as the pool's statement
			err := db.InTx(ctx, func(ctx context.Context, tx bun.Tx) error {
				u, err := db.GetUser(ctx, tx, alice.ID)
				if err == nil && u.ID != alice.ID {
					t.Errorf("round %d: user %q, want %q", round, u.ID, alice.ID)
				}
				return err
			})
			if err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
			if _, err := db.GetUser(ctx, db, alice.ID); err != nil { // on the pool: prepared there now
				t.Fatalf("round %d, after the transaction: %v", round, err)
			}
		}
	})
}

// Prepared writes store times as bun's own queries do (on SQLite, text in
// UTC with microseconds), so that rows written either way compare as text
// in time order: a post given a time in another zone with nanoseconds.
func TestPrepared_WritesTimesAsBunDoes(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		alice := MustCreateUser(t, db, "alice")
		at := time.Date(2026, 1, 2, 5, 4, 5, 123456789, time.FixedZone("UTC+2", 2*3600))
		p := &store.Post{AuthorID: alice.ID, Content: "then", Visibility: store.VisibilityPublic, CreatedAt: at}
		if err := db.CreatePost(ctx, db, p); err != nil {
			t.Fatal(err)
		}
		var got time.Time
		if err := db.NewSelect().Table("posts").Column("created_at").Where("id = ?", p.ID).Scan(ctx, &got); err != nil {
			t.Fatal(err)
		}
		if want := at.Truncate(time.Microsecond); !got.Equal(want) {
			t.Fatalf("created_at = %v, want %v", got, want)
		}
		if db.Engine == store.SQLite {
			var text string
			if err := db.QueryRowContext(ctx, "SELECT CAST(created_at AS TEXT) FROM posts WHERE id = ?", p.ID).Scan(&text); err != nil {
				t.Fatal(err)
			}
			if want := "2026-01-02 03:04:05.123456+00:00"; text != want {
				t.Fatalf("created_at stored as %q, want %q as bun writes it", text, want)
			}
		}
	})
}
