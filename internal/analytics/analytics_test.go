package analytics_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flock-social/flock"
	"github.com/flock-social/flock/internal/account"
	"github.com/flock-social/flock/internal/analytics"
	"github.com/flock-social/flock/internal/store"
	tu "github.com/flock-social/flock/internal/testutil"
)

// clock is a settable db.Now, so views, likes and comments land on chosen days.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

func useClock(db *store.DB) *clock {
	c := &clock{t: time.Now().UTC()}
	db.Now = c.Now
	return c
}

func mustUser(t *testing.T, db *store.DB, name string) *account.Principal {
	t.Helper()
	u := &store.User{Username: name, Email: name + "@example.com", PasswordHash: "x", FullName: name, Role: store.RoleMember}
	if err := db.CreateUser(context.Background(), db, u); err != nil {
		t.Fatalf("create user %s: %v", name, err)
	}
	return &account.Principal{UserID: u.ID, Role: store.RoleMember}
}

func mustPost(t *testing.T, db *store.DB, author *account.Principal, visibility string) string {
	t.Helper()
	p := &store.Post{AuthorID: author.UserID, Content: "hello", Visibility: visibility}
	if err := db.CreatePost(context.Background(), db, p); err != nil {
		t.Fatalf("create post: %v", err)
	}
	return p.ID
}

// newService returns a Service with no background flusher: tests flush.
func newService(db *store.DB, cfg analytics.Config) *analytics.Service {
	if cfg.FlushInterval == 0 {
		cfg.FlushInterval = time.Hour
	}
	return analytics.NewService(db, slog.New(slog.DiscardHandler), cfg)
}

// stored returns the views and viewer rows the database holds for a post.
func stored(t *testing.T, db *store.DB, postID string) (views, viewerRows int64) {
	t.Helper()
	ctx := context.Background()
	if err := db.NewRaw("SELECT COALESCE(SUM(views), 0) FROM post_views_daily WHERE post_id = ?", postID).Scan(ctx, &views); err != nil {
		t.Fatal(err)
	}
	if err := db.NewRaw("SELECT COUNT(*) FROM post_viewers WHERE post_id = ?", postID).Scan(ctx, &viewerRows); err != nil {
		t.Fatal(err)
	}
	return views, viewerRows
}

func mustGet(t *testing.T, svc *analytics.Service, p *account.Principal, postID string, days int) *analytics.Report {
	t.Helper()
	r, err := svc.Get(context.Background(), p, postID, days)
	if err != nil {
		t.Fatalf("get analytics: %v", err)
	}
	return r
}

func wantTotals(t *testing.T, what string, r *analytics.Report, views, unique int64) {
	t.Helper()
	if r.Views != views || r.UniqueViewers != unique {
		t.Errorf("%s: views %d, unique viewers %d; want %d, %d", what, r.Views, r.UniqueViewers, views, unique)
	}
}

// Reads are counted in memory, not written; a flush writes them once, and
// the author sees buffered and stored views alike, each viewer once.
func TestCountView_BufferedUntilFlushThenStoredOnce(t *testing.T) {
	t.Parallel()
	tu.ForEachEngine(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		alice, bob, carol := mustUser(t, db, "alice"), mustUser(t, db, "bob"), mustUser(t, db, "carol")
		post := mustPost(t, db, alice, store.VisibilityPublic)
		svc := newService(db, analytics.Config{})

		svc.CountView(post, bob.UserID)
		svc.CountView(post, bob.UserID)
		svc.CountView(post, carol.UserID)
		if v, n := stored(t, db, post); v != 0 || n != 0 {
			t.Fatalf("before a flush the database holds %d views, %d viewers; want none", v, n)
		}
		wantTotals(t, "buffered", mustGet(t, svc, alice, post, 0), 3, 2)

		if err := svc.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		if v, n := stored(t, db, post); v != 3 || n != 2 {
			t.Fatalf("after a flush the database holds %d views, %d viewers; want 3, 2", v, n)
		}
		if got := svc.Buffered(); got != 0 {
			t.Errorf("buffered after a flush = %d, want 0", got)
		}
		wantTotals(t, "stored", mustGet(t, svc, alice, post, 0), 3, 2)

		// bob again (stored already) and alice herself: one new viewer.
		svc.CountView(post, bob.UserID)
		svc.CountView(post, alice.UserID)
		r := mustGet(t, svc, alice, post, 0)
		wantTotals(t, "stored and buffered", r, 5, 3)
		if today := r.Daily[len(r.Daily)-1]; today.Views != 5 || today.UniqueViewers != 3 {
			t.Errorf("today = %+v, want 5 views by 3 viewers", today)
		}
		if err := svc.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		if v, n := stored(t, db, post); v != 5 || n != 3 {
			t.Fatalf("after the second flush the database holds %d views, %d viewers; want 5, 3", v, n)
		}
		wantTotals(t, "stored again", mustGet(t, svc, alice, post, 0), 5, 3)
		// A flush with nothing buffered writes nothing and succeeds.
		if err := svc.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	})
}

// Instances flush their own increments into the same rows: the totals are
// the sums, a viewer seen by both counts once, and flushes running at the
// same moment neither lose counts nor deadlock.
func TestFlush_ManyInstancesAddUp(t *testing.T) {
	t.Parallel()
	tu.ForEachEngine(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		alice := mustUser(t, db, "alice")
		var viewers []*account.Principal
		for i := range 5 {
			viewers = append(viewers, mustUser(t, db, fmt.Sprintf("viewer%d", i)))
		}
		var posts []string
		for range 20 {
			posts = append(posts, mustPost(t, db, alice, store.VisibilityPublic))
		}
		instances := []*analytics.Service{newService(db, analytics.Config{}), newService(db, analytics.Config{}), newService(db, analytics.Config{})}
		const rounds = 3
		for round := range rounds {
			var wg sync.WaitGroup
			for _, svc := range instances {
				for _, post := range posts {
					for _, v := range viewers {
						svc.CountView(post, v.UserID)
					}
				}
				wg.Go(func() {
					if err := svc.Flush(ctx); err != nil {
						t.Errorf("round %d: flush: %v", round, err)
					}
				})
			}
			wg.Wait()
		}
		for _, post := range posts {
			v, n := stored(t, db, post)
			if want := int64(rounds * len(instances) * len(viewers)); v != want || n != int64(len(viewers)) {
				t.Fatalf("post %s: %d views by %d viewers, want %d by %d", post, v, n, want, len(viewers))
			}
			wantTotals(t, "all instances", mustGet(t, instances[0], alice, post, 0), int64(rounds*len(instances)*len(viewers)), int64(len(viewers)))
		}
	})
}

// Views counted while flushes run are each written once.
func TestCountView_ConcurrentWithFlushes(t *testing.T) {
	t.Parallel()
	tu.ForEachEngine(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		alice, bob := mustUser(t, db, "alice"), mustUser(t, db, "bob")
		post := mustPost(t, db, alice, store.VisibilityPublic)
		svc := newService(db, analytics.Config{})
		const readers, reads = 8, 250
		var wg sync.WaitGroup
		for range readers {
			wg.Go(func() {
				for range reads {
					svc.CountView(post, bob.UserID)
				}
			})
		}
		stop := make(chan struct{})
		flusher := make(chan struct{})
		go func() {
			defer close(flusher)
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := svc.Flush(ctx); err != nil {
					t.Errorf("flush: %v", err)
					return
				}
				// Get may run beside flushes: never more than what was counted.
				if r, err := svc.Get(ctx, alice, post, 1); err != nil || r.Views > readers*reads {
					t.Errorf("get during flushes: %+v, %v", r, err)
					return
				}
			}
		}()
		wg.Wait()
		close(stop)
		<-flusher
		if err := svc.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		if v, n := stored(t, db, post); v != readers*reads || n != 1 {
			t.Fatalf("stored %d views by %d viewers, want %d by 1", v, n, readers*reads)
		}
	})
}

// A failed flush puts its views back for the next one; the buffer is
// bounded, and views beyond the bound are dropped and logged.
func TestFlush_FailureKeepsViews_BufferBounded(t *testing.T) {
	t.Parallel()
	tu.ForEachEngine(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		alice := mustUser(t, db, "alice")
		post := mustPost(t, db, alice, store.VisibilityPublic)
		var viewers []string
		for i := range 15 {
			viewers = append(viewers, mustUser(t, db, fmt.Sprintf("v%d", i)).UserID)
		}
		var logs bytes.Buffer
		var logMu sync.Mutex
		svc := analytics.NewService(db, slog.New(slog.NewTextHandler(lockedWriter{&logs, &logMu}, nil)),
			analytics.Config{FlushInterval: time.Hour, MaxKeys: 5, MaxHeld: 10})
		for _, v := range viewers[:5] {
			svc.CountView(post, v)
		}
		// 1 counter + 5 viewers = 6 entries.
		if got := svc.Buffered(); got != 6 {
			t.Fatalf("buffered = %d, want 6", got)
		}
		failed, cancel := context.WithCancel(ctx)
		cancel()
		if err := svc.Flush(failed); err == nil {
			t.Fatal("flush with a cancelled context succeeded")
		}
		if got := svc.Buffered(); got != 6 {
			t.Fatalf("buffered after a failed flush = %d, want the 6 entries back", got)
		}
		if v, _ := stored(t, db, post); v != 0 {
			t.Fatalf("a failed flush stored %d views", v)
		}
		// Up to MaxHeld entries: 4 more viewers fit, the other 6 are dropped;
		// views by viewers already held still count (they add no entry).
		for _, v := range viewers[5:] {
			svc.CountView(post, v)
		}
		svc.CountView(post, viewers[0])
		if got := svc.Buffered(); got != 10 {
			t.Fatalf("buffered = %d, want the bound of 10", got)
		}
		wantTotals(t, "bounded buffer", mustGet(t, svc, alice, post, 0), 10, 9)
		if err := svc.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		if v, n := stored(t, db, post); v != 10 || n != 9 {
			t.Fatalf("stored %d views by %d viewers, want 10 by 9", v, n)
		}
		logMu.Lock()
		defer logMu.Unlock()
		if !strings.Contains(logs.String(), "dropped=6") {
			t.Errorf("the flush did not log the 6 dropped views: %s", logs.String())
		}
	})
}

type lockedWriter struct {
	b  *bytes.Buffer
	mu *sync.Mutex
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// The background flusher writes on its interval, early when the buffer
// reaches MaxKeys, and once more on Close.
func TestRun_FlushesOnIntervalEarlyAndOnClose(t *testing.T) {
	t.Parallel()
	tu.ForEachEngine(t, func(t *testing.T, db *store.DB) {
		alice := mustUser(t, db, "alice")
		post := mustPost(t, db, alice, store.VisibilityPublic)
		waitStored := func(svc *analytics.Service, want int64) {
			t.Helper()
			deadline := time.Now().Add(10 * time.Second)
			for {
				if v, _ := stored(t, db, post); v == want {
					return
				} else if time.Now().After(deadline) {
					t.Fatalf("stored views = %d after 10s, want %d", v, want)
				}
				time.Sleep(10 * time.Millisecond)
			}
		}

		ticking := newService(db, analytics.Config{FlushInterval: 20 * time.Millisecond})
		ticking.Start()
		ticking.CountView(post, alice.UserID)
		waitStored(ticking, 1)
		if err := ticking.Close(); err != nil {
			t.Fatal(err)
		}

		// MaxKeys 3: a counter and two viewers fill it.
		early := newService(db, analytics.Config{FlushInterval: time.Hour, MaxKeys: 3})
		early.Start()
		bob, carol := mustUser(t, db, "bob"), mustUser(t, db, "carol")
		early.CountView(post, bob.UserID)
		early.CountView(post, carol.UserID)
		waitStored(early, 3)

		early.CountView(post, "")
		if err := early.Close(); err != nil {
			t.Fatal(err)
		}
		if v, _ := stored(t, db, post); v != 4 {
			t.Fatalf("stored views after Close = %d, want 4", v)
		}
		if err := early.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
	})
}

// The series covers the asked days, oldest first, ending today (UTC), with
// zero days; views, viewers, likes and comments land on their own days.
func TestGet_DailySeries(t *testing.T) {
	t.Parallel()
	tu.ForEachEngine(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		clk := useClock(db)
		now := time.Now().UTC()
		today := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
		at := func(daysAgo int) time.Time { return today.AddDate(0, 0, -daysAgo).Add(13*time.Hour + 7*time.Minute) }

		clk.Set(at(60))
		alice, bob, carol := mustUser(t, db, "alice"), mustUser(t, db, "bob"), mustUser(t, db, "carol")
		post := mustPost(t, db, alice, store.VisibilityPublic)
		svc := newService(db, analytics.Config{})

		clk.Set(at(40)) // outside a 7-day window: totals only
		svc.CountView(post, carol.UserID)
		clk.Set(at(5))
		if err := db.CreateComment(ctx, db, &store.Comment{PostID: post, AuthorID: carol.UserID, Content: "hi"}); err != nil {
			t.Fatal(err)
		}
		clk.Set(at(3))
		svc.CountView(post, bob.UserID)
		svc.CountView(post, bob.UserID)
		if err := svc.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		clk.Set(at(2))
		if _, err := db.CreateLike(ctx, db, post, bob.UserID); err != nil {
			t.Fatal(err)
		}
		clk.Set(at(0))
		if _, err := db.CreateLike(ctx, db, post, carol.UserID); err != nil {
			t.Fatal(err)
		}
		svc.CountView(post, bob.UserID) // buffered, today

		r := mustGet(t, svc, alice, post, 7)
		if r.Views != 4 || r.UniqueViewers != 2 || r.Likes != 2 || r.Comments != 1 {
			t.Errorf("totals = %d views, %d viewers, %d likes, %d comments; want 4, 2, 2, 1", r.Views, r.UniqueViewers, r.Likes, r.Comments)
		}
		want := map[int]analytics.Day{ // by days ago
			5: {Comments: 1},
			3: {Views: 2, UniqueViewers: 1},
			2: {Likes: 1},
			0: {Views: 1, UniqueViewers: 1, Likes: 1},
		}
		if len(r.Daily) != 7 {
			t.Fatalf("daily has %d entries, want 7", len(r.Daily))
		}
		for i, d := range r.Daily {
			ago := 6 - i
			w := want[ago]
			w.Date = today.AddDate(0, 0, -ago)
			if d != w {
				t.Errorf("daily[%d] (%d days ago) = %+v, want %+v", i, ago, d, w)
			}
		}

		if got := len(mustGet(t, svc, alice, post, 0).Daily); got != analytics.DefaultDays {
			t.Errorf("default series has %d days, want %d", got, analytics.DefaultDays)
		}
		long := mustGet(t, svc, alice, post, 1000)
		if len(long.Daily) != analytics.MaxDays || !long.Daily[len(long.Daily)-1].Date.Equal(today) {
			t.Errorf("long series has %d days ending %v, want %d ending %v", len(long.Daily), long.Daily[len(long.Daily)-1].Date, analytics.MaxDays, today)
		}
		var views int64
		for _, d := range long.Daily {
			views += d.Views
		}
		if views != 4 {
			t.Errorf("a year of days sums to %d views, want 4", views)
		}
	})
}

// Only the author sees analytics: others who see the post are refused,
// others who do not see it are told it does not exist.
func TestGet_AuthorOnly(t *testing.T) {
	t.Parallel()
	tu.ForEachEngine(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		alice, bob, mallory := mustUser(t, db, "alice"), mustUser(t, db, "bob"), mustUser(t, db, "mallory")
		public := mustPost(t, db, alice, store.VisibilityPublic)
		private := mustPost(t, db, alice, store.VisibilityFollowers)
		if _, err := db.CreateBlock(ctx, db, alice.UserID, mallory.UserID); err != nil {
			t.Fatal(err)
		}
		svc := newService(db, analytics.Config{})
		for _, c := range []struct {
			who    *account.Principal
			post   string
			expect string
		}{
			{alice, public, ""},
			{alice, private, ""},
			{bob, public, flock.EFORBIDDEN},
			{bob, private, flock.ENOTFOUND},
			{mallory, public, flock.ENOTFOUND},
			{alice, "01NOSUCHPOST00000000000000", flock.ENOTFOUND},
		} {
			_, err := svc.Get(ctx, c.who, c.post, 0)
			if got := flock.ErrorCode(err); (c.expect == "" && err != nil) || (c.expect != "" && got != c.expect) {
				t.Errorf("%s on %s: err %v (code %q), want %q", c.who.UserID, c.post, err, got, c.expect)
			}
		}
	})
}

// Views of a post deleted before the flush are left out without failing
// the batch, and deleting a post deletes its analytics.
func TestFlush_DeletedPosts(t *testing.T) {
	t.Parallel()
	tu.ForEachEngine(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		alice, bob := mustUser(t, db, "alice"), mustUser(t, db, "bob")
		kept, gone, later := mustPost(t, db, alice, store.VisibilityPublic), mustPost(t, db, alice, store.VisibilityPublic), mustPost(t, db, alice, store.VisibilityPublic)
		svc := newService(db, analytics.Config{})
		for _, p := range []string{kept, gone, later} {
			svc.CountView(p, bob.UserID)
		}
		p, err := db.GetPost(ctx, db, gone)
		if err != nil {
			t.Fatal(err)
		}
		if err := db.DeletePost(ctx, db, p); err != nil {
			t.Fatal(err)
		}
		if err := svc.Flush(ctx); err != nil {
			t.Fatalf("flush with a deleted post: %v", err)
		}
		if v, n := stored(t, db, kept); v != 1 || n != 1 {
			t.Errorf("kept post: %d views, %d viewers; want 1, 1", v, n)
		}
		if v, n := stored(t, db, gone); v != 0 || n != 0 {
			t.Errorf("deleted post: %d views, %d viewers; want none", v, n)
		}
		p, err = db.GetPost(ctx, db, later)
		if err != nil {
			t.Fatal(err)
		}
		if err := db.DeletePost(ctx, db, p); err != nil {
			t.Fatal(err)
		}
		if v, n := stored(t, db, later); v != 0 || n != 0 {
			t.Errorf("post deleted after its flush: %d views, %d viewers remain", v, n)
		}
	})
}
