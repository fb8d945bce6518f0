package server_test

import (
	"slices"
	"testing"
	"time"

	"connectrpc.com/connect"

	flockv1 "github.com/flock-social/flock/gen/go/flock/v1"
	"github.com/flock-social/flock/gen/go/flock/v1/flockv1connect"
	"github.com/flock-social/flock/internal/store"
	tu "github.com/flock-social/flock/internal/testutil"
	"github.com/flock-social/flock/server"
)

func (a api) read(tok, postID string) {
	a.t.Helper()
	must[flockv1.GetPostResponse](a, flockv1connect.PostServiceGetPostProcedure, tok, &flockv1.GetPostRequest{PostId: postID})
}

func (a api) analytics(tok, postID string, days int32) (*flockv1.GetPostAnalyticsResponse, error) {
	return call[flockv1.GetPostAnalyticsResponse](a, flockv1connect.PostServiceGetPostAnalyticsProcedure, tok,
		&flockv1.GetPostAnalyticsRequest{PostId: postID, Days: days})
}

func (a api) mustAnalytics(tok, postID string, days int32) *flockv1.GetPostAnalyticsResponse {
	a.t.Helper()
	res, err := a.analytics(tok, postID, days)
	if err != nil {
		a.t.Fatalf("%s GetPostAnalytics: %v", a.tr, err)
	}
	return res
}

// storedViews reads what the database holds for a post: its views over all
// days and its viewer rows.
func storedViews(t *testing.T, s *tu.Server, postID string) (views, viewers int64) {
	t.Helper()
	db := s.App.DB()
	if err := db.NewRaw("SELECT COALESCE(SUM(views), 0) FROM post_views_daily WHERE post_id = ?", postID).Scan(t.Context(), &views); err != nil {
		t.Fatal(err)
	}
	if err := db.NewRaw("SELECT COUNT(*) FROM post_viewers WHERE post_id = ?", postID).Scan(t.Context(), &viewers); err != nil {
		t.Fatal(err)
	}
	return views, viewers
}

func wantAnalytics(t *testing.T, what string, r *flockv1.GetPostAnalyticsResponse, views, unique int32) {
	t.Helper()
	if r.GetViews() != views || r.GetUniqueViewers() != unique {
		t.Errorf("%s: %d views by %d viewers, want %d by %d", what, r.GetViews(), r.GetUniqueViewers(), views, unique)
	}
}

func utcToday() time.Time {
	now := time.Now().UTC()
	return time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
}

func hourly(c *server.Config) { c.ViewFlushInterval = time.Hour }

// Contract row 11 "counts a view" and S7: each GetPost counts a view in
// memory, not in the database; the author sees it at once, and a flush
// writes it once. Transports run one after another: a flush writes every
// post's views, and each asserts that its own are not written before.
func TestPostAnalytics_ViewsCountedNotWrittenPerRead(t *testing.T) {
	t.Parallel()
	for _, engine := range tu.Engines(t) {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			s := tu.MustServer(t, engine, hourly)
			for _, tr := range tu.Transports {
				t.Run(string(tr), func(t *testing.T) {
					a := api{t: t, s: s, tr: tr}
					alice, bob, carol := s.MustAccount(t, name(a, "alice")), s.MustAccount(t, name(a, "bob")), s.MustAccount(t, name(a, "carol"))
					p := a.post(alice.AccessToken, "count me")
					a.read(bob.AccessToken, p.GetId())
					a.read(bob.AccessToken, p.GetId())
					a.read(carol.AccessToken, p.GetId())
					if v, n := storedViews(t, s, p.GetId()); v != 0 || n != 0 {
						t.Fatalf("three reads wrote %d views and %d viewers to the database; want none before a flush", v, n)
					}

					r := a.mustAnalytics(alice.AccessToken, p.GetId(), 0)
					wantAnalytics(t, "before the flush", r, 3, 2)
					if len(r.GetDaily()) != 30 {
						t.Fatalf("default series has %d days, want 30", len(r.GetDaily()))
					}
					today := r.GetDaily()[29]
					if !today.GetDate().AsTime().Equal(utcToday()) || today.GetViews() != 3 || today.GetUniqueViewers() != 2 {
						t.Errorf("last day = %v, want today (%v) with 3 views by 2 viewers", today, utcToday())
					}

					if err := s.App.Analytics().Flush(t.Context()); err != nil {
						t.Fatal(err)
					}
					if v, n := storedViews(t, s, p.GetId()); v != 3 || n != 2 {
						t.Fatalf("after the flush the database holds %d views and %d viewers, want 3 and 2", v, n)
					}
					wantAnalytics(t, "after the flush", a.mustAnalytics(alice.AccessToken, p.GetId(), 0), 3, 2)
					// Reading again: one more view, no new viewer.
					a.read(carol.AccessToken, p.GetId())
					wantAnalytics(t, "read again", a.mustAnalytics(alice.AccessToken, p.GetId(), 0), 4, 2)
				})
			}
		})
	}
}

// The background flusher writes views by itself, on its interval.
func TestPostAnalytics_BackgroundFlush(t *testing.T) {
	t.Parallel()
	for _, engine := range tu.Engines(t) {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			s := tu.MustServer(t, engine, func(c *server.Config) { c.ViewFlushInterval = 50 * time.Millisecond })
			a := api{t: t, s: s, tr: tu.Connect}
			alice, bob := s.MustAccount(t, "alice"), s.MustAccount(t, "bob")
			p := a.post(alice.AccessToken, "flushed in the background")
			a.read(bob.AccessToken, p.GetId())
			deadline := time.Now().Add(10 * time.Second)
			for {
				if v, n := storedViews(t, s, p.GetId()); v == 1 && n == 1 {
					break
				} else if time.Now().After(deadline) {
					t.Fatalf("after 10s the database holds %d views and %d viewers, want 1 and 1", v, n)
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
}

// Two instances on one Postgres database each buffer and flush their own
// views: the author sees the sum once both have flushed, and a reader seen
// by both counts once.
func TestPostAnalytics_TwoInstancesAddUp(t *testing.T) {
	t.Parallel()
	if !slices.Contains(tu.Engines(t), store.Postgres) {
		t.Skip("needs Postgres")
	}
	first := tu.MustServer(t, store.Postgres, hourly)
	second := tu.MustServer(t, store.Postgres, hourly, func(c *server.Config) { c.DatabaseURL = first.Config.DatabaseURL })
	one, two := api{t: t, s: first, tr: tu.Connect}, api{t: t, s: second, tr: tu.GRPC}
	alice, bob, carol := first.MustAccount(t, "alice"), first.MustAccount(t, "bob"), first.MustAccount(t, "carol")
	p := one.post(alice.AccessToken, "read everywhere")

	one.read(bob.AccessToken, p.GetId())
	one.read(bob.AccessToken, p.GetId())
	for range 3 {
		two.read(carol.AccessToken, p.GetId())
	}
	two.read(bob.AccessToken, p.GetId())
	// Each instance sees its own buffer only, until the other flushes.
	wantAnalytics(t, "first, nothing flushed", one.mustAnalytics(alice.AccessToken, p.GetId(), 0), 2, 1)
	wantAnalytics(t, "second, nothing flushed", two.mustAnalytics(alice.AccessToken, p.GetId(), 0), 4, 2)

	if err := second.App.Analytics().Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	wantAnalytics(t, "first, second flushed", one.mustAnalytics(alice.AccessToken, p.GetId(), 0), 6, 2)
	if err := first.App.Analytics().Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	if v, n := storedViews(t, first, p.GetId()); v != 6 || n != 2 {
		t.Fatalf("after both flushed the database holds %d views and %d viewers, want 6 and 2", v, n)
	}
	for _, a := range []api{one, two} {
		r := a.mustAnalytics(alice.AccessToken, p.GetId(), 1)
		wantAnalytics(t, "both flushed", r, 6, 2)
		if d := r.GetDaily(); len(d) != 1 || d[0].GetViews() != 6 || d[0].GetUniqueViewers() != 2 {
			t.Errorf("today = %v, want 6 views by 2 viewers", d)
		}
	}
}

// The series covers the asked days, oldest first, ending today (UTC), with
// zero days; likes and comments count on the day they were made.
func TestPostAnalytics_DailySeries(t *testing.T) {
	t.Parallel()
	forEachTransport(t, func(t *testing.T, a api) {
		alice, bob, carol := a.s.MustAccount(t, name(a, "alice")), a.s.MustAccount(t, name(a, "bob")), a.s.MustAccount(t, name(a, "carol"))
		p := a.post(alice.AccessToken, "a week of it")
		must[flockv1.LikePostResponse](a, flockv1connect.PostServiceLikePostProcedure, bob.AccessToken, &flockv1.LikePostRequest{PostId: p.GetId()})
		must[flockv1.CreateCommentResponse](a, flockv1connect.PostServiceCreateCommentProcedure, carol.AccessToken, &flockv1.CreateCommentRequest{PostId: p.GetId(), Content: "nice"})
		a.read(bob.AccessToken, p.GetId())
		// Three days ago, flushed long since: 5 views by carol.
		threeAgo := utcToday().AddDate(0, 0, -3).Format(store.DayLayout)
		db := a.s.App.DB()
		if _, err := db.NewRaw("INSERT INTO post_views_daily (post_id, day, views) VALUES (?, ?, 5)", p.GetId(), threeAgo).Exec(t.Context()); err != nil {
			t.Fatal(err)
		}
		if _, err := db.NewRaw("INSERT INTO post_viewers (post_id, viewer_id, day) VALUES (?, ?, ?)", p.GetId(), carol.ID, threeAgo).Exec(t.Context()); err != nil {
			t.Fatal(err)
		}

		r := a.mustAnalytics(alice.AccessToken, p.GetId(), 7)
		if r.GetViews() != 6 || r.GetUniqueViewers() != 2 || r.GetLikes() != 1 || r.GetComments() != 1 {
			t.Errorf("totals = %d views, %d viewers, %d likes, %d comments; want 6, 2, 1, 1", r.GetViews(), r.GetUniqueViewers(), r.GetLikes(), r.GetComments())
		}
		if len(r.GetDaily()) != 7 {
			t.Fatalf("series has %d days, want 7", len(r.GetDaily()))
		}
		type day struct{ views, viewers, likes, comments int32 }
		want := map[int]day{3: {5, 1, 0, 0}, 0: {1, 1, 1, 1}} // by days ago; others zero
		for i, d := range r.GetDaily() {
			ago := 6 - i
			if wantDate := utcToday().AddDate(0, 0, -ago); !d.GetDate().AsTime().Equal(wantDate) {
				t.Errorf("daily[%d].date = %v, want %v", i, d.GetDate().AsTime(), wantDate)
			}
			if got := (day{d.GetViews(), d.GetUniqueViewers(), d.GetLikes(), d.GetComments()}); got != want[ago] {
				t.Errorf("%d days ago = %+v, want %+v", ago, got, want[ago])
			}
		}
		if got := len(a.mustAnalytics(alice.AccessToken, p.GetId(), 365).GetDaily()); got != 365 {
			t.Errorf("365 days asked, %d answered", got)
		}
		_, err := a.analytics(alice.AccessToken, p.GetId(), 366)
		wantCode(t, err, connect.CodeInvalidArgument)
	})
}

// S7 "author only", on every transport: someone who sees the post is
// refused (403), someone who does not is told it does not exist (404),
// and an anonymous caller must sign in (401).
func TestPostAnalytics_AuthorOnly(t *testing.T) {
	t.Parallel()
	forEachTransport(t, func(t *testing.T, a api) {
		alice, bob, mallory := a.s.MustAccount(t, name(a, "alice")), a.s.MustAccount(t, name(a, "bob")), a.s.MustAccount(t, name(a, "mallory"))
		public := a.post(alice.AccessToken, "for all")
		private := a.post(alice.AccessToken, "for followers", flockv1.Visibility_VISIBILITY_FOLLOWERS)
		must[flockv1.BlockResponse](a, flockv1connect.UserServiceBlockProcedure, alice.AccessToken, &flockv1.BlockRequest{UserId: mallory.ID})
		const ok = connect.Code(0)
		for _, c := range []struct {
			who, tok, post string
			want           connect.Code
		}{
			{"author", alice.AccessToken, public.GetId(), ok},
			{"author", alice.AccessToken, private.GetId(), ok},
			{"other", bob.AccessToken, public.GetId(), connect.CodePermissionDenied},
			{"other", bob.AccessToken, private.GetId(), connect.CodeNotFound},
			{"blocked", mallory.AccessToken, public.GetId(), connect.CodeNotFound},
			{"anonymous", "", public.GetId(), connect.CodeUnauthenticated},
			{"author", alice.AccessToken, "01NOSUCHPOST00000000000000", connect.CodeNotFound},
		} {
			_, err := a.analytics(c.tok, c.post, 0)
			if (c.want == ok && err != nil) || (c.want != ok && connect.CodeOf(err) != c.want) {
				t.Errorf("%s on %s: got %v, want %s", c.who, c.post, err, codeName(c.want))
			}
		}
	})
}
