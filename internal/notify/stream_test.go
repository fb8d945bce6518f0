package notify_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/flock-social/flock/internal/notify"
	"github.com/flock-social/flock/internal/pubsub"
	"github.com/flock-social/flock/internal/store"
	tu "github.com/flock-social/flock/internal/testutil"
)

// notificationReads counts the SQL statements that read notifications.
type notificationReads struct{ n atomic.Int64 }

func (h *notificationReads) BeforeQuery(ctx context.Context, _ *bun.QueryEvent) context.Context {
	return ctx
}

func (h *notificationReads) AfterQuery(_ context.Context, ev *bun.QueryEvent) {
	// A list of notifications (store.ListNotifications' statement), not a
	// count of the unread ones.
	if strings.HasPrefix(ev.Query, "SELECT n.") && strings.Contains(ev.Query, "FROM notifications AS n") {
		h.n.Add(1)
	}
}

// fixture is a store with a recipient (logged in) and an actor, and a
// notify.Service on it.
type fixture struct {
	db             *store.DB
	events         *notify.Service
	reads          *notificationReads
	user, actor    string
	session        string
	notificationsN int
}

func mustFixture(t *testing.T, db *store.DB) *fixture {
	t.Helper()
	f := &fixture{db: db, reads: &notificationReads{}}
	// Before anything runs on db: the hook replaces its bun.DB.
	db.AddQueryHook(f.reads)
	ctx := t.Context()
	for _, u := range []*string{&f.user, &f.actor} {
		row := &store.User{Username: fmt.Sprintf("u%s", store.NewID()[16:]), Email: store.NewID() + "@example.com", Role: "user"}
		if err := db.CreateUser(ctx, db, row); err != nil {
			t.Fatal(err)
		}
		*u = row.ID
	}
	f.session = store.NewID()
	if err := db.CreateSession(ctx, db, &store.Session{ID: f.session, UserID: f.user, CreatedAt: db.Now(), ExpiresAt: db.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	broker, err := pubsub.Open("")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { broker.Close() })
	f.events = notify.NewService(db, broker, slog.New(slog.NewTextHandler(io.Discard, nil)))
	f.events.Poll = time.Hour // only wake-ups read
	t.Cleanup(f.events.Shutdown)
	return f
}

// notify records one notification for the recipient and wakes its streams.
func (f *fixture) notify(t *testing.T) string {
	t.Helper()
	f.notificationsN++
	var ev notify.Events
	n := &store.Notification{UserID: f.user, ActorID: f.actor, Type: notify.TypeFollow}
	if err := f.events.Notify(t.Context(), f.db, &ev, n); err != nil {
		t.Fatal(err)
	}
	f.events.Publish(t.Context(), &ev)
	return n.ID
}

// stream is one StreamNotifications call running in the background.
type stream struct {
	ids  chan string
	done chan error
}

func (f *fixture) open(t *testing.T, ctx context.Context, since string) *stream {
	t.Helper()
	s := &stream{ids: make(chan string, 10000), done: make(chan error, 1)}
	ready := make(chan struct{})
	go func() {
		s.done <- f.events.StreamNotifications(ctx, f.user, f.session, since, func(string) error { close(ready); return nil }, func(e notify.Event) error {
			s.ids <- e.ID
			return nil
		})
	}()
	select {
	case <-ready:
	case err := <-s.done:
		t.Fatalf("stream refused: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("stream not listening within 10s")
	}
	return s
}

func (s *stream) next(t *testing.T) string {
	t.Helper()
	select {
	case id := <-s.ids:
		return id
	case err := <-s.done:
		t.Fatalf("stream ended: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("no event within 10s")
	}
	return ""
}

// P24: ten streams of one user cost one SQL read of notifications per
// event, not ten (counted on the database connection itself).
func TestStreams_OneSQLReadPerEventForAllStreams_P24(t *testing.T) {
	t.Parallel()
	tu.ForEachEngine(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		f := mustFixture(t, db)
		const streams, events = 10, 5
		start := f.reads.n.Load()
		var open []*stream
		for range streams {
			open = append(open, f.open(t, t.Context(), ""))
		}
		// Once all have the first event, each is past its opening read.
		first := f.notify(t)
		for _, s := range open {
			if got := s.next(t); got != first {
				t.Fatalf("got %s, want %s", got, first)
			}
		}
		// A stream still opening when the first event committed has it
		// from its own opening read, so the hub's read of it may still be
		// under way: wait for the streams' opening reads and the hub's.
		for deadline := time.Now().Add(10 * time.Second); f.reads.n.Load()-start < streams+1; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%d reads of notifications after %d streams opened and one event, want at least %d", f.reads.n.Load()-start, streams, streams+1)
			}
		}
		before := f.reads.n.Load()
		for range events {
			id := f.notify(t)
			for _, s := range open {
				if got := s.next(t); got != id {
					t.Fatalf("got %s, want %s", got, id)
				}
			}
		}
		reads := f.reads.n.Load() - before
		t.Logf("%d events to %d streams: %d SQL reads of notifications", events, streams, reads)
		if reads > events {
			t.Fatalf("%d events to %d streams of one user took %d SQL reads of notifications; want at most %d (one per event)", events, streams, reads, events)
		}
	})
}

// P24: a stream that opens or resumes while events keep coming gets every
// event after its since_id exactly once, in order: it joins the user's hub
// before reading its backlog, and skips what both delivered.
func TestStreams_ResumeWhileLiveNoGapNoDuplicate_P24(t *testing.T) {
	t.Parallel()
	tu.ForEachEngine(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		f := mustFixture(t, db)
		f.events.MaxStreamsPerUser = 0
		const total = 150
		var (
			mu  sync.Mutex
			all []string
		)
		f.open(t, t.Context(), "") // a hub already runs when the others join
		type joined struct {
			since string
			s     *stream
		}
		var streams []joined
		for i := range total {
			id := f.notify(t)
			mu.Lock()
			all = append(all, id)
			mu.Unlock()
			if i%15 == 7 {
				// Resume from an event a few back, while events flow.
				since := all[max(0, len(all)-5)]
				streams = append(streams, joined{since, f.open(t, t.Context(), since)})
			}
		}
		for _, j := range streams {
			want := all[slices.Index(all, j.since)+1:]
			var got []string
			for range want {
				got = append(got, j.s.next(t))
			}
			if !slices.Equal(got, want) {
				t.Fatalf("resumed after %s: got %d events %v, want %d %v", j.since, len(got), got, len(want), want)
			}
			select {
			case extra := <-j.s.ids:
				t.Fatalf("resumed after %s: an extra event %s", j.since, extra)
			default:
			}
		}
	})
}

// P24: the cap counts a user's streams of both kinds together and frees a
// slot when a stream ends.
func TestStreams_CapCountsBothKindsAndFreesSlots_P24(t *testing.T) {
	t.Parallel()
	tu.ForEachEngine(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		f := mustFixture(t, db)
		f.events.MaxStreamsPerUser = 2
		ctx, cancel := context.WithCancel(t.Context())
		first := f.open(t, ctx, "")
		ready := func(string) error { return nil }
		go f.events.StreamActivities(t.Context(), f.user, f.session, "", ready, func(notify.Event) error { return nil })
		deadline := time.Now().Add(10 * time.Second)
		for f.events.StreamStats().Open != 2 {
			if time.Now().After(deadline) {
				t.Fatal("the activity stream did not open")
			}
			time.Sleep(10 * time.Millisecond)
		}
		err := f.events.StreamNotifications(t.Context(), f.user, f.session, "", ready, func(notify.Event) error { return nil })
		if err == nil || !strings.Contains(err.Error(), "resource_exhausted") {
			t.Fatalf("third stream: %v, want resource_exhausted", err)
		}
		cancel()
		if err := <-first.done; err != nil {
			t.Fatalf("first stream ended with %v", err)
		}
		last, stop := context.WithCancel(t.Context())
		s := f.open(t, last, "") // the freed slot
		if st := f.events.StreamStats(); st.Open != 2 || st.Refused != 1 || st.Hubs != 2 {
			t.Fatalf("stats %+v, want 2 open (one hub per kind) and 1 refused", st)
		}
		stop()
		if err := <-s.done; err != nil {
			t.Fatalf("stream ended with %v", err)
		}
		// The notifications hub stops with its last stream; the activity one stays.
		if st := f.events.StreamStats(); st.Open != 1 || st.Hubs != 1 {
			t.Fatalf("stats %+v after the last notification stream ended, want 1 open and 1 hub", st)
		}
	})
}
