package store_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/flock-social/flock/internal/store"
	"github.com/flock-social/flock/internal/testutil"
)

// Event ids of one user increase in commit order, even when transactions
// that took their ids early commit late, and even when the head is ahead of
// this instance's clock (another instance's clock runs ahead): what a
// stream's "id > cursor" relies on (P21).
func TestNextEventID_IncreasesInCommitOrder_P21(t *testing.T) {
	t.Parallel()
	testutil.ForEachEngine(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		ctx := context.Background()
		alice, bob := MustCreateUser(t, db, "alice"), MustCreateUser(t, db, "bob")

		// A head an hour ahead of this clock: the next id is just above it.
		var ahead string
		if err := db.InTx(ctx, func(ctx context.Context, tx bun.Tx) error {
			ahead = store.IDAt(time.Now().Add(time.Hour))
			_, err := tx.ExecContext(ctx, "INSERT INTO event_heads (user_id, kind, last_id) VALUES (?, ?, ?)", alice.ID, store.ActivityEvents, ahead)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		a := &store.Activity{UserID: alice.ID, Type: "post_created"}
		if err := db.InTx(ctx, func(ctx context.Context, tx bun.Tx) error { return db.CreateActivity(ctx, tx, a) }); err != nil {
			t.Fatal(err)
		}
		if a.ID <= ahead {
			t.Fatalf("activity id %s is not above the head %s", a.ID, ahead)
		}

		// Writers that hold their transaction open for a while after taking
		// an id, and a reader that pages forward from its cursor as a
		// stream does: it sees every notification, once, in id order.
		var (
			wg      sync.WaitGroup
			seen    []string
			reading = make(chan struct{})
			read    = make(chan error, 1)
		)
		go func() {
			cursor := store.MinID
			readOnce := func() error {
				rows, err := db.ListNotifications(ctx, db, store.EventFilter{UserID: alice.ID, AfterID: cursor, Limit: 100})
				for _, n := range rows {
					seen = append(seen, n.ID)
					cursor = n.ID
				}
				return err
			}
			for {
				select {
				case <-reading:
					read <- readOnce() // the last read, after every commit
					return
				default:
				}
				if err := readOnce(); err != nil {
					read <- err
					return
				}
			}
		}()
		for i := range 48 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				n := &store.Notification{UserID: alice.ID, ActorID: bob.ID, Type: "comment"}
				err := db.InTx(ctx, func(ctx context.Context, tx bun.Tx) error {
					if _, err := db.CreateNotification(ctx, tx, n); err != nil {
						return err
					}
					time.Sleep(time.Duration(i%4) * 3 * time.Millisecond)
					return nil
				})
				if err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		close(reading)
		if err := <-read; err != nil {
			t.Fatal(err)
		}
		listed, err := db.ListNotifications(ctx, db, store.EventFilter{UserID: alice.ID, AfterID: store.MinID, Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, n := range listed {
			ids = append(ids, n.ID)
		}
		if len(ids) != 48 || !slices.Equal(seen, ids) {
			t.Fatalf("a reader moving its cursor saw %d notifications %v; listed %d %v: want the same", len(seen), seen, len(ids), ids)
		}
	})
}

// createNotificationULID is how a notification was made before event
// heads: an id from the clock, no lock. For the benchmark's "before".
func createNotificationULID(ctx context.Context, db *store.DB, tx bun.IDB, n *store.Notification) error {
	n.ID = store.NewID()
	n.CreatedAt = db.Now()
	_, err := tx.NewInsert().Model(n).On("CONFLICT DO NOTHING").Exec(ctx)
	return err
}

// BenchmarkCreateNotification measures one transaction that records one
// notification, with the id from the clock alone ("ulid", before) and from
// the recipient's event head ("event_head"), for different recipients
// (one writer) and for one hot recipient (4 × GOMAXPROCS writers at once).
func BenchmarkCreateNotification(b *testing.B) {
	for _, engine := range testutil.Engines(b) {
		b.Run(engine, func(b *testing.B) {
			d := testutil.MustStore(b, engine)
			ctx := context.Background()
			actor := MustCreateUser(b, d, "actor")
			var recipients []*store.User
			for _, name := range []string{"r0", "r1", "r2", "r3", "r4", "r5", "r6", "r7"} {
				recipients = append(recipients, MustCreateUser(b, d, name))
			}
			paths := map[string]func(ctx context.Context, tx bun.Tx, n *store.Notification) error{
				"ulid": func(ctx context.Context, tx bun.Tx, n *store.Notification) error {
					return createNotificationULID(ctx, d, tx, n)
				},
				"event_head": func(ctx context.Context, tx bun.Tx, n *store.Notification) error {
					_, err := d.CreateNotification(ctx, tx, n)
					return err
				},
			}
			for _, path := range []string{"ulid", "event_head"} {
				create := paths[path]
				b.Run(path+"/spread", func(b *testing.B) {
					for i := 0; b.Loop(); i++ {
						n := &store.Notification{UserID: recipients[i%len(recipients)].ID, ActorID: actor.ID, Type: "comment"}
						if err := d.InTx(ctx, func(ctx context.Context, tx bun.Tx) error { return create(ctx, tx, n) }); err != nil {
							b.Fatal(err)
						}
					}
				})
				b.Run(path+"/hot_user", func(b *testing.B) {
					b.SetParallelism(4) // 4 × GOMAXPROCS (2 here) writers
					hot := recipients[0].ID
					b.RunParallel(func(pb *testing.PB) {
						for pb.Next() {
							n := &store.Notification{UserID: hot, ActorID: actor.ID, Type: "comment"}
							if err := d.InTx(ctx, func(ctx context.Context, tx bun.Tx) error { return create(ctx, tx, n) }); err != nil {
								b.Error(err)
								return
							}
						}
					})
				})
			}
		})
	}
}

// The unread count leaves out what a list of notifications leaves out (a
// suspended actor, a block either way, read ones) and stops at
// MaxUnreadCount, whatever the backlog: every list of notifications and
// every mark-read counts (docs/performance.md, item 47).
func TestCountUnread_LeavesOutHiddenActorsAndStopsAtTheBound(t *testing.T) {
	t.Parallel()
	testutil.ForEachEngine(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		ctx := context.Background()
		me := MustCreateUser(t, db, "me")
		fan, blocked, blocker, suspended := MustCreateUser(t, db, "fan"), MustCreateUser(t, db, "blocked"), MustCreateUser(t, db, "blocker"), MustCreateUser(t, db, "suspended")
		notify := func(actor *store.User, n int) {
			t.Helper()
			if err := db.InTx(ctx, func(ctx context.Context, tx bun.Tx) error {
				for range n {
					if _, err := db.CreateNotification(ctx, tx, &store.Notification{UserID: me.ID, Type: "follow", ActorID: actor.ID}); err != nil {
						return err
					}
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
		}
		count := func() int {
			t.Helper()
			n, err := db.CountUnread(ctx, db, me.ID)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
		notify(fan, 3)
		notify(blocked, 2)
		notify(blocker, 2)
		notify(suspended, 2)
		if got := count(); got != 9 {
			t.Fatalf("unread = %d, want 9", got)
		}
		if _, err := db.CreateBlock(ctx, db, me.ID, blocked.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := db.CreateBlock(ctx, db, blocker.ID, me.ID); err != nil {
			t.Fatal(err)
		}
		if err := db.SuspendUser(ctx, db, suspended.ID); err != nil {
			t.Fatal(err)
		}
		if got := count(); got != 3 {
			t.Fatalf("unread with a blocked, a blocking and a suspended actor = %d, want the fan's 3", got)
		}

		notify(fan, store.MaxUnreadCount)
		if got := count(); got != store.MaxUnreadCount {
			t.Fatalf("unread with %d visible = %d, want the bound %d", store.MaxUnreadCount+3, got, store.MaxUnreadCount)
		}
		if err := db.MarkNotificationsRead(ctx, db, me.ID, nil); err != nil {
			t.Fatal(err)
		}
		if got := count(); got != 0 {
			t.Fatalf("unread after marking all read = %d", got)
		}
	})
}

// ListActivities reads one user's log in both directions: newest first,
// a page at a time below a bound (ListActivity's pages), and oldest first
// above one (a stream catching up), with no other user's entries.
func TestListActivities_PagesBothWaysForItsUserOnly(t *testing.T) {
	t.Parallel()
	testutil.ForEachEngine(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		ctx := context.Background()
		alice, bob := MustCreateUser(t, db, "alice"), MustCreateUser(t, db, "bob")
		var ids []string
		for range 5 {
			for _, u := range []*store.User{alice, bob} {
				a := &store.Activity{UserID: u.ID, Type: "post_created"}
				if err := db.InTx(ctx, func(ctx context.Context, tx bun.Tx) error { return db.CreateActivity(ctx, tx, a) }); err != nil {
					t.Fatal(err)
				}
				if u == alice {
					ids = append(ids, a.ID)
				}
			}
		}
		list := func(f store.EventFilter) []string {
			t.Helper()
			f.UserID = alice.ID
			rows, err := db.ListActivities(ctx, db, f)
			if err != nil {
				t.Fatal(err)
			}
			var out []string
			for _, a := range rows {
				out = append(out, a.ID)
			}
			return out
		}
		newest := slices.Clone(ids)
		slices.Reverse(newest)
		if got := list(store.EventFilter{Limit: 2}); !slices.Equal(got, newest[:2]) {
			t.Errorf("first page %v, want %v", got, newest[:2])
		}
		if got := list(store.EventFilter{BeforeID: newest[1], Limit: 2}); !slices.Equal(got, newest[2:4]) {
			t.Errorf("page below %s: %v, want %v", newest[1], got, newest[2:4])
		}
		if got := list(store.EventFilter{AfterID: ids[1], Limit: 10}); !slices.Equal(got, ids[2:]) {
			t.Errorf("after %s: %v, want %v", ids[1], got, ids[2:])
		}
	})
}
