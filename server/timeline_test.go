package server_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	flockv1 "github.com/flock-social/flock/gen/go/flock/v1"
	"github.com/flock-social/flock/gen/go/flock/v1/flockv1connect"
	"github.com/flock-social/flock/internal/store"
	tu "github.com/flock-social/flock/internal/testutil"
	"github.com/flock-social/flock/server"
)

// waitFanouts waits until every post's fan-out is done and every timeline
// being filled is ready.
func waitFanouts(t *testing.T, s *tu.Server) {
	t.Helper()
	db := s.App.DB()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var pending, building int
		if err := db.NewRaw("SELECT (SELECT count(*) FROM timeline_pending), (SELECT count(*) FROM timelines WHERE state <> 'ready')").
			Scan(context.Background(), &pending, &building); err != nil {
			t.Fatal(err)
		}
		if pending == 0 && building == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timeline jobs not done after 30s: %d fan-outs pending, %d timelines filling", pending, building)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// inTimeline reports whether postID is an entry of userID's timeline.
func inTimeline(t *testing.T, s *tu.Server, userID, postID string) bool {
	t.Helper()
	n, err := s.App.DB().NewSelect().Table("timeline_entries").Where("user_id = ? AND post_id = ?", userID, postID).Count(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n > 0
}

// wholeFeed pages through a feed with small pages and returns every id.
func wholeFeed(a api, tok string) []string {
	a.t.Helper()
	var all []string
	token := ""
	for range 100 {
		posts, next := a.feed(tok, 7, token)
		all = append(all, ids(posts)...)
		if next == "" {
			return all
		}
		token = next
	}
	a.t.Fatal("feed did not end after 100 pages")
	return nil
}

// Each event that hides a post takes effect on a timeline that already
// holds the post: the entry may stay, the page never shows it (P4 for
// blocks). Each event that adds posts adds them to the timeline.
func TestTimeline_EventsOnCachedTimeline_P4(t *testing.T) {
	t.Parallel()
	forEachServer(t, func(t *testing.T, s *tu.Server) {
		for _, tr := range tu.Transports {
			t.Run(string(tr), func(t *testing.T) {
				t.Parallel()
				eventsOnCachedTimeline(t, api{t: t, s: s, tr: tr})
			})
		}
	}, withTimelineWorkers)
}

func eventsOnCachedTimeline(t *testing.T, a api) {
	s := a.s
	pfx := string(a.tr) + "_"
	reader := s.MustAccount(t, pfx+"reader")
	staff := s.MustAccount(t, pfx+"staff")
	mustStaff(t, s, staff)
	names := []string{"unfollowed", "blocksreader", "blockedbyreader", "suspended", "deleter", "grouper", "earlier"}
	w := map[string]*tu.Account{}
	for _, n := range names {
		w[n] = s.MustAccount(t, pfx+n)
	}
	for _, n := range names[:5] {
		if err := a.follow(reader.AccessToken, w[n].ID); err != nil {
			t.Fatal(err)
		}
	}
	g := a.createGroup(w["grouper"].AccessToken, "club", flockv1.GroupPrivacy_GROUP_PRIVACY_PUBLIC)
	if _, err := a.join(reader.AccessToken, g.GetId()); err != nil {
		t.Fatal(err)
	}
	posts := map[string]*flockv1.Post{}
	for _, n := range names[:5] {
		posts[n] = a.post(w[n].AccessToken, "hello from "+n, flockv1.Visibility_VISIBILITY_FOLLOWERS)
	}
	gp, err := a.groupPost(w["grouper"].AccessToken, g.GetId(), "club news")
	if err != nil {
		t.Fatal(err)
	}
	posts["grouper"] = gp
	waitFanouts(t, s)
	for n, p := range posts {
		if !inTimeline(t, s, reader.ID, p.GetId()) {
			t.Fatalf("%s's post is not in the reader's timeline after its fan-out", n)
		}
	}
	feed, _ := a.feed(reader.AccessToken, 100, "")
	if len(feed) != len(posts) {
		t.Fatalf("feed has %d posts, want %d", len(feed), len(posts))
	}

	// The hiding events, on posts the timeline holds.
	must[flockv1.UnfollowResponse](a, flockv1connect.UserServiceUnfollowProcedure, reader.AccessToken, &flockv1.UnfollowRequest{UserId: w["unfollowed"].ID})
	a.block(w["blocksreader"].AccessToken, reader.ID)
	a.block(reader.AccessToken, w["blockedbyreader"].ID)
	a.mustResolve(staff.AccessToken, a.mustReport(reader.AccessToken, posts["suspended"].GetId(), flockv1.ReportReason_REPORT_REASON_SPAM, "").GetId(), suspendAuthor)
	must[flockv1.DeletePostResponse](a, flockv1connect.PostServiceDeletePostProcedure, w["deleter"].AccessToken, &flockv1.DeletePostRequest{PostId: posts["deleter"].GetId()})
	must[flockv1.LeaveGroupResponse](a, flockv1connect.GroupServiceLeaveGroupProcedure, reader.AccessToken, &flockv1.LeaveGroupRequest{GroupId: g.GetId()})
	if got := wholeFeed(a, reader.AccessToken); len(got) != 0 {
		t.Fatalf("after unfollow, blocks both ways, suspension, deletion and leaving the group the feed still has %v", got)
	}

	// The adding events: a follow brings the followee's earlier posts,
	// a join the group's, into the timeline and the feed.
	early := a.post(w["earlier"].AccessToken, "posted before the follow")
	waitFanouts(t, s)
	if err := a.follow(reader.AccessToken, w["earlier"].ID); err != nil {
		t.Fatal(err)
	}
	if _, err := a.join(reader.AccessToken, g.GetId()); err != nil {
		t.Fatal(err)
	}
	if !inTimeline(t, s, reader.ID, early.GetId()) || !inTimeline(t, s, reader.ID, gp.GetId()) {
		t.Fatal("a follow or a join did not add the source's earlier posts to the timeline")
	}
	if got, want := wholeFeed(a, reader.AccessToken), []string{early.GetId(), gp.GetId()}; !slices.Equal(got, want) {
		t.Fatalf("feed after follow and join = %v, want %v", got, want)
	}
}

// withTimelineWorkers runs timeline jobs on a test server (test servers
// run none by default, see testutil).
func withTimelineWorkers(c *server.Config) { c.Timeline.Workers = 1 }

// A post is in its readers' feeds from its commit on, before any fan-out
// runs: reads merge the pending ones. Here no instance runs fan-outs.
func TestTimeline_PendingPostsReadBeforeFanout(t *testing.T) {
	t.Parallel()
	forEachServer(t, func(t *testing.T, s *tu.Server) {
		a := api{t: t, s: s, tr: tu.Connect}
		reader, author := s.MustAccount(t, "reader"), s.MustAccount(t, "author")
		if err := a.follow(reader.AccessToken, author.ID); err != nil {
			t.Fatal(err)
		}
		p := a.post(author.AccessToken, "fresh")
		if inTimeline(t, s, reader.ID, p.GetId()) {
			t.Fatal("the post was fanned out with no worker running")
		}
		if got := wholeFeed(a, reader.AccessToken); !slices.Equal(got, []string{p.GetId()}) {
			t.Fatalf("feed = %v, want the pending post %s", got, p.GetId())
		}
		if got := wholeFeed(a, author.AccessToken); !slices.Equal(got, []string{p.GetId()}) {
			t.Fatalf("author's feed = %v, want their pending post", got)
		}
	}, func(c *server.Config) { c.Timeline.Workers = -1 })
}

// Posts of authors with at least FLOCK_TIMELINE_BIG_AUTHOR followers are
// not written to followers' timelines; reads merge them in order.
func TestTimeline_BigAuthorsMergedAtRead(t *testing.T) {
	t.Parallel()
	forEachServer(t, func(t *testing.T, s *tu.Server) {
		a := api{t: t, s: s, tr: tu.Connect}
		reader, other := s.MustAccount(t, "reader"), s.MustAccount(t, "other")
		big, small := s.MustAccount(t, "big"), s.MustAccount(t, "small")
		a.mustFollow(reader.AccessToken, big.ID, small.ID)
		a.mustFollow(other.AccessToken, big.ID)
		var want []string
		for i := range 12 {
			author := small
			if i%3 == 0 {
				author = big
			}
			want = append([]string{a.post(author.AccessToken, fmt.Sprintf("post %d", i)).GetId()}, want...)
		}
		waitFanouts(t, s)
		for _, id := range want {
			p := must[flockv1.GetPostResponse](a, flockv1connect.PostServiceGetPostProcedure, reader.AccessToken, &flockv1.GetPostRequest{PostId: id}).GetPost()
			if isBig := p.GetAuthor().GetId() == big.ID; inTimeline(t, s, reader.ID, id) == isBig {
				t.Fatalf("post by big=%v in timeline=%v: big authors are merged, others written", isBig, !isBig)
			}
		}
		if got := wholeFeed(a, reader.AccessToken); !slices.Equal(got, want) {
			t.Fatalf("feed = %v\nwant  %v", got, want)
		}
		// The big author still sees their own posts from their timeline.
		if !inTimeline(t, s, big.ID, want[len(want)-1]) {
			t.Fatal("a big author's own post is not in their own timeline")
		}
	}, withTimelineWorkers, func(c *server.Config) { c.Timeline.BigAuthor = 2 })
}

// A user without a timeline (new deployment, or dropped after idling) is
// served from the posts while it fills in the background; below a
// timeline's floor, older pages come from the posts too. Every page is the
// same as with no timeline at all.
func TestTimeline_ColdAndOlderPagesReadFromPosts(t *testing.T) {
	t.Parallel()
	forEachServer(t, func(t *testing.T, s *tu.Server) {
		a := api{t: t, s: s, tr: tu.REST}
		reader := s.MustAccount(t, "reader")
		var want []string
		for i := range 3 {
			w := s.MustAccount(t, fmt.Sprintf("writer%d", i))
			a.mustFollow(reader.AccessToken, w.ID)
			for j := range 8 {
				want = append(want, a.post(w.AccessToken, fmt.Sprintf("w%d p%d", i, j)).GetId())
			}
		}
		slices.Reverse(want) // posted one after another: newest last
		waitFanouts(t, s)
		ctx := context.Background()
		db := s.App.DB()
		if _, err := db.NewDelete().Table("timelines").Where("user_id = ?", reader.ID).Exec(ctx); err != nil {
			t.Fatal(err)
		}
		if got := wholeFeed(a, reader.AccessToken); !slices.Equal(got, want) {
			t.Fatalf("cold feed = %v\nwant      %v", got, want)
		}
		waitFanouts(t, s) // the first read queued the fill
		if n, _ := db.NewSelect().Table("timeline_entries").Where("user_id = ?", reader.ID).Count(ctx); n != int64(len(want)) {
			t.Fatalf("filled timeline has %d entries, want %d", n, len(want))
		}
		if got := wholeFeed(a, reader.AccessToken); !slices.Equal(got, want) {
			t.Fatalf("feed from the filled timeline = %v\nwant %v", got, want)
		}
		// Keep only the newest 5: the floor moves up, older pages are read
		// from the posts.
		if err := db.TouchTimeline(ctx, db, reader.ID, 5); err != nil {
			t.Fatal(err)
		}
		if n, _ := db.NewSelect().Table("timeline_entries").Where("user_id = ?", reader.ID).Count(ctx); n != 5 {
			t.Fatalf("trimmed timeline has %d entries, want 5", n)
		}
		if got := wholeFeed(a, reader.AccessToken); !slices.Equal(got, want) {
			t.Fatalf("feed over the floor = %v\nwant %v", got, want)
		}
		if reads, falls := s.Metric(t, "flock_timeline_reads_total"), s.Metric(t, "flock_timeline_fallbacks_total"); reads == 0 || falls == 0 {
			t.Fatalf("timeline reads %v, fallbacks %v: want both used", reads, falls)
		}
		// Dropped again (idle): the next read fills it again, although a
		// fill of it ran before.
		if _, err := db.NewDelete().Table("timelines").Where("user_id = ?", reader.ID).Exec(ctx); err != nil {
			t.Fatal(err)
		}
		wholeFeed(a, reader.AccessToken)
		waitFanouts(t, s)
		if n, _ := db.NewSelect().Table("timeline_entries").Where("user_id = ?", reader.ID).Count(ctx); n != int64(len(want)) {
			t.Fatalf("timeline filled again has %d entries, want %d", n, len(want))
		}
	}, withTimelineWorkers)
}

// Signing in starts the user's timeline and its fill, so the first page
// after a login or a refresh reads a ready timeline instead of the posts:
// here a timeline dropped (as after idling) comes back at the next login,
// and again at the next refresh. A refused login starts none.
func TestTimeline_SignInStartsTheTimeline(t *testing.T) {
	t.Parallel()
	forEachServer(t, func(t *testing.T, s *tu.Server) {
		a := api{t: t, s: s, tr: tu.REST}
		author, reader := s.MustAccount(t, "author"), s.MustAccount(t, "reader")
		post := a.post(author.AccessToken, "hello")
		a.mustFollow(reader.AccessToken, author.ID)
		ctx := context.Background()
		db := s.App.DB()
		exists := func() bool {
			n, err := db.NewSelect().Table("timelines").Where("user_id = ?", reader.ID).Count(ctx)
			if err != nil {
				t.Fatal(err)
			}
			return n > 0
		}
		drop := func() {
			waitFanouts(t, s)
			if err := db.DeleteTimeline(ctx, db, reader.ID); err != nil {
				t.Fatal(err)
			}
		}

		drop()
		if _, err := a.login(reader.Username, "not the password"); connect.CodeOf(err) != connect.CodeUnauthenticated {
			t.Fatalf("login with a wrong password: %v, want unauthenticated", err)
		}
		if exists() {
			t.Fatal("a refused login started a timeline")
		}
		signIns := []struct {
			how string
			do  func() string // signs in, returns the new access token
		}{
			{"login", func() string {
				res, err := a.login(reader.Username, reader.Password)
				if err != nil {
					t.Fatal(err)
				}
				return res.GetAccessToken()
			}},
			{"refresh", func() string {
				res, err := tu.Call[flockv1.RefreshTokenResponse](ctx, s, tu.Connect, flockv1connect.UserServiceRefreshTokenProcedure, "", &flockv1.RefreshTokenRequest{RefreshToken: reader.RefreshToken})
				if err != nil {
					t.Fatal(err)
				}
				return res.GetAccessToken()
			}},
		}
		for _, in := range signIns {
			drop()
			tok := in.do()
			if !exists() {
				t.Fatalf("%s: no timeline after signing in", in.how)
			}
			waitFanouts(t, s)
			if !inTimeline(t, s, reader.ID, post.GetId()) {
				t.Fatalf("%s: the timeline filled at sign-in lacks the post", in.how)
			}
			reads, falls := s.Metric(t, "flock_timeline_reads_total"), s.Metric(t, "flock_timeline_fallbacks_total")
			if got, _ := a.feed(tok, 5, ""); len(got) != 1 || got[0].GetId() != post.GetId() {
				t.Fatalf("%s: first page = %v, want the post", in.how, ids(got))
			}
			if dr, df := s.Metric(t, "flock_timeline_reads_total")-reads, s.Metric(t, "flock_timeline_fallbacks_total")-falls; dr != 1 || df != 0 {
				t.Fatalf("%s: the first page made %v timeline reads and %v reads from the posts, want 1 and 0", in.how, dr, df)
			}
		}
	}, withTimelineWorkers)
}

// Timelines started together are filled together, by one job; a timeline
// whose job is lost (here: started with none) is filled by the periodic
// sweep.
func TestTimeline_FillsOfTimelinesStartedTogetherAndOfLostJobs(t *testing.T) {
	t.Parallel()
	forEachServer(t, func(t *testing.T, s *tu.Server) {
		a := api{t: t, s: s, tr: tu.Connect}
		author := s.MustAccount(t, "author")
		post := a.post(author.AccessToken, "hello")
		var readers []*tu.Account
		for i := range 4 {
			r := s.MustAccount(t, fmt.Sprintf("reader%d", i))
			a.mustFollow(r.AccessToken, author.ID)
			readers = append(readers, r)
		}
		waitFanouts(t, s)
		ctx := context.Background()
		db := s.App.DB()
		for _, r := range readers {
			if err := db.DeleteTimeline(ctx, db, r.ID); err != nil {
				t.Fatal(err)
			}
		}
		before := s.Metric(t, "flock_timeline_fills_total")
		for _, r := range readers[:3] {
			a.feed(r.AccessToken, 5, "") // starts the timeline and queues its fill
		}
		waitFanouts(t, s)
		if _, err := db.StartTimeline(ctx, db, readers[3].ID); err != nil {
			t.Fatal(err)
		}
		waitFanouts(t, s)
		for _, r := range readers {
			if !inTimeline(t, s, r.ID, post.GetId()) {
				t.Errorf("%s's timeline lacks the post", r.Username)
			}
		}
		if n := s.Metric(t, "flock_timeline_fills_total") - before; n != 4 {
			t.Errorf("%v timelines filled, want 4", n)
		}
	}, withTimelineWorkers)
}

// A timeline whose fill keeps failing (here a trigger refuses its
// entries) does not hold back the timelines filled with it: they are
// filled one by one, and it stays building, its reader served from the
// posts.
func TestTimeline_AFailingFillDoesNotHoldBackTheOthers(t *testing.T) {
	t.Parallel()
	forEachServer(t, func(t *testing.T, s *tu.Server) {
		a := api{t: t, s: s, tr: tu.Connect}
		author, poisoned, other := s.MustAccount(t, "author"), s.MustAccount(t, "poisoned"), s.MustAccount(t, "other")
		post := a.post(author.AccessToken, "hello")
		a.mustFollow(poisoned.AccessToken, author.ID)
		a.mustFollow(other.AccessToken, author.ID)
		waitFanouts(t, s)
		ctx := context.Background()
		db := s.App.DB()
		trigger := []string{`CREATE TRIGGER poison BEFORE INSERT ON timeline_entries WHEN NEW.user_id = '` + poisoned.ID + `'
BEGIN SELECT RAISE(ABORT, 'poisoned'); END`}
		if db.Engine == store.Postgres {
			trigger = []string{`CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN IF NEW.user_id = '` + poisoned.ID + `' THEN RAISE EXCEPTION 'poisoned'; END IF; RETURN NEW; END $$`,
				`CREATE TRIGGER poison BEFORE INSERT ON timeline_entries FOR EACH ROW EXECUTE FUNCTION poison()`}
		}
		for _, q := range trigger {
			if _, err := db.ExecContext(ctx, q); err != nil {
				t.Fatal(err)
			}
		}
		for _, u := range []*tu.Account{poisoned, other} {
			if err := db.DeleteTimeline(ctx, db, u.ID); err != nil {
				t.Fatal(err)
			}
			if got, _ := a.feed(u.AccessToken, 5, ""); len(got) != 1 || got[0].GetId() != post.GetId() {
				t.Fatalf("%s's cold page = %v", u.Username, ids(got))
			}
		}
		for deadline := time.Now().Add(20 * time.Second); !inTimeline(t, s, other.ID, post.GetId()); {
			if time.Now().After(deadline) {
				t.Fatal("the other timeline was not filled")
			}
			time.Sleep(20 * time.Millisecond)
		}
		var state string
		if err := db.NewSelect().Table("timelines").Column("state").Where("user_id = ?", poisoned.ID).Scan(ctx, &state); err != nil {
			t.Fatal(err)
		}
		if state != store.TimelineBuilding {
			t.Fatalf("the poisoned timeline is %q", state)
		}
		if got, _ := a.feed(poisoned.AccessToken, 5, ""); len(got) != 1 {
			t.Fatalf("the poisoned reader's page = %v", ids(got))
		}
	}, withTimelineWorkers)
}

// A page read without a timeline takes the newest ids of the feed's
// sources and filters them like a timeline's entries: when the newest are
// all hidden (here by a suspended followee), it reads on in larger rounds
// and still returns full pages, then the rest of the feed.
func TestTimeline_ColdPagesReadOnPastHiddenPosts(t *testing.T) {
	t.Parallel()
	forEachServer(t, func(t *testing.T, s *tu.Server) {
		a := api{t: t, s: s, tr: tu.Connect}
		reader, shown, hidden := s.MustAccount(t, "reader"), s.MustAccount(t, "shown"), s.MustAccount(t, "hidden")
		a.mustFollow(reader.AccessToken, shown.ID)
		a.mustFollow(reader.AccessToken, hidden.ID)
		var want []string
		for i := range 9 {
			want = append(want, a.post(shown.AccessToken, fmt.Sprintf("shown %d", i)).GetId())
		}
		slices.Reverse(want)
		for i := range 40 {
			a.post(hidden.AccessToken, fmt.Sprintf("hidden %d", i))
		}
		waitFanouts(t, s)
		ctx := context.Background()
		db := s.App.DB()
		if _, err := db.NewUpdate().Table("users").Set("suspended_at = ?", time.Now()).Where("id = ?", hidden.ID).Exec(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := db.NewDelete().Table("timelines").Where("user_id = ?", reader.ID).Exec(ctx); err != nil {
			t.Fatal(err)
		}
		before := s.Metric(t, "flock_timeline_fallbacks_total")
		if got, _ := a.feed(reader.AccessToken, 5, ""); !slices.Equal(ids(got), want[:5]) {
			t.Fatalf("first cold page = %v\nwant %v", ids(got), want[:5])
		}
		if got := wholeFeed(a, reader.AccessToken); !slices.Equal(got, want) {
			t.Fatalf("cold feed = %v\nwant %v", got, want)
		}
		if falls := s.Metric(t, "flock_timeline_fallbacks_total"); falls == before {
			t.Fatal("the pages were not read from the posts")
		}
	}, withTimelineWorkers)
}

// Users post, delete, follow, unfollow, join and leave a group, all at
// once, while fan-outs run: afterwards every user's feed read from their
// timeline is the feed read from the posts themselves (a timeline may lack
// nothing a reader may see, and show nothing they may not). On Postgres
// this also proves that a follow or a join racing a fan-out leaves no
// post out (the fan-out locks the author or group the follow or join
// locks; P27: no deadlock either).
func TestTimeline_SameFeedAsFromPostsAfterConcurrentChanges_P27(t *testing.T) {
	t.Parallel()
	forEachServer(t, func(t *testing.T, s *tu.Server) {
		users := accounts(t, s, "tl", 6)
		a := api{t: t, s: s, tr: tu.Connect}
		g := a.createGroup(users[0].AccessToken, "storm", flockv1.GroupPrivacy_GROUP_PRIVACY_PUBLIC)
		for _, u := range users {
			wholeFeed(a, u.AccessToken) // every timeline exists
		}
		st := newStorm(connect.CodeNotFound, connect.CodeFailedPrecondition, connect.CodeAlreadyExists)
		run(len(users), func(w int) {
			me := users[w]
			var mine []string
			for i := range 24 {
				other := users[(w+1+i%5)%len(users)]
				switch i % 8 {
				case 0, 4:
					p := rpc[flockv1.CreatePostResponse](t, s, st, "post", flockv1connect.PostServiceCreatePostProcedure, me.AccessToken,
						&flockv1.CreatePostRequest{Content: fmt.Sprintf("%d/%d", w, i), Visibility: flockv1.Visibility(1 + i%2)})
					mine = append(mine, p.GetPost().GetId())
				case 1, 5:
					rpc[flockv1.FollowResponse](t, s, st, "follow", flockv1connect.UserServiceFollowProcedure, me.AccessToken, &flockv1.FollowRequest{UserId: other.ID})
				case 2:
					rpc[flockv1.JoinGroupResponse](t, s, st, "join", flockv1connect.GroupServiceJoinGroupProcedure, me.AccessToken, &flockv1.JoinGroupRequest{GroupId: g.GetId()})
					rpc[flockv1.CreatePostResponse](t, s, st, "group post", flockv1connect.PostServiceCreatePostProcedure, me.AccessToken,
						&flockv1.CreatePostRequest{Content: fmt.Sprintf("group %d/%d", w, i), GroupId: g.GetId()})
				case 3:
					rpc[flockv1.UnfollowResponse](t, s, st, "unfollow", flockv1connect.UserServiceUnfollowProcedure, me.AccessToken, &flockv1.UnfollowRequest{UserId: other.ID})
				case 6:
					if w != 0 {
						rpc[flockv1.LeaveGroupResponse](t, s, st, "leave", flockv1connect.GroupServiceLeaveGroupProcedure, me.AccessToken, &flockv1.LeaveGroupRequest{GroupId: g.GetId()})
					}
				case 7:
					if len(mine) > 0 {
						rpc[flockv1.DeletePostResponse](t, s, st, "delete", flockv1connect.PostServiceDeletePostProcedure, me.AccessToken, &flockv1.DeletePostRequest{PostId: mine[0]})
						mine = mine[1:]
					}
				}
			}
		})
		st.check(t)
		waitFanouts(t, s)
		ctx := context.Background()
		for _, u := range users {
			fromTimeline := wholeFeed(a, u.AccessToken)
			if _, err := s.App.DB().NewDelete().Table("timelines").Where("user_id = ?", u.ID).Exec(ctx); err != nil {
				t.Fatal(err)
			}
			if fromPosts := wholeFeed(a, u.AccessToken); !slices.Equal(fromTimeline, fromPosts) {
				t.Errorf("%s: feed from the timeline differs from the feed from the posts:\ntimeline %v\nposts    %v", u.Username, fromTimeline, fromPosts)
			}
		}
	}, withTimelineWorkers)
}

// Followers unfollow and follow an author again and again while the author
// deletes their posts. An unfollow holds both users and then removes the
// author's posts from the follower's timeline; a post's deletion holds the
// post and then, before its timeline entries go with it, its author: the
// other way round (entries first, author after) the two deadlocked and ran
// again. No transaction is aborted, and every timeline still gives the
// feed that the posts give.
func TestTimeline_UnfollowWhileTheAuthorDeletesPostsNeverDeadlocks_P27(t *testing.T) {
	t.Parallel()
	forEachServer(t, func(t *testing.T, s *tu.Server) {
		users := accounts(t, s, "ud", 7)
		author, followers := users[0], users[1:]
		a := api{t: t, s: s, tr: tu.Connect}
		var posts []string
		for i := range 40 {
			posts = append(posts, a.post(author.AccessToken, fmt.Sprintf("doomed %d", i)).GetId())
		}
		for _, f := range followers {
			a.follow(f.AccessToken, author.ID)
			wholeFeed(a, f.AccessToken) // every timeline exists and holds the posts
		}
		waitFanouts(t, s)
		before := s.App.DB().TxConflicts()
		st := newStorm()
		run(len(users), func(w int) {
			if w == 0 {
				for _, id := range posts {
					rpc[flockv1.DeletePostResponse](t, s, st, "delete", flockv1connect.PostServiceDeletePostProcedure, author.AccessToken, &flockv1.DeletePostRequest{PostId: id})
				}
				return
			}
			me := users[w]
			for range 12 {
				rpc[flockv1.UnfollowResponse](t, s, st, "unfollow", flockv1connect.UserServiceUnfollowProcedure, me.AccessToken, &flockv1.UnfollowRequest{UserId: author.ID})
				rpc[flockv1.FollowResponse](t, s, st, "follow", flockv1connect.UserServiceFollowProcedure, me.AccessToken, &flockv1.FollowRequest{UserId: author.ID})
			}
		})
		st.check(t)
		if got := s.App.DB().TxConflicts(); got != before {
			t.Errorf("transactions aborted by Postgres during the storm: %+v, before it %+v", got, before)
		}
		countersMatchRows(t, s)
		waitFanouts(t, s)
		ctx := context.Background()
		for _, f := range followers {
			fromTimeline := wholeFeed(a, f.AccessToken)
			if _, err := s.App.DB().NewDelete().Table("timelines").Where("user_id = ?", f.ID).Exec(ctx); err != nil {
				t.Fatal(err)
			}
			if fromPosts := wholeFeed(a, f.AccessToken); !slices.Equal(fromTimeline, fromPosts) {
				t.Errorf("%s: feed from the timeline differs from the feed from the posts:\ntimeline %v\nposts    %v", f.Username, fromTimeline, fromPosts)
			}
		}
	}, withTimelineWorkers)
}

// A timeline page shows its posts and their authors exactly as reading
// each post does, also right after they changed: an edit and its hashtags,
// a profile, counts and relationships. Pages keep the rarely changing part
// of posts and authors in a cache per instance (internal/store/rowcache.go);
// a change made on another instance sharing the database shows at once too.
func TestTimeline_PageShowsChangesAtOnceOnEveryInstance(t *testing.T) {
	t.Parallel()
	// Two Postgres servers with job workers in all (each holds a pool of
	// its own): the same-instance case runs on the first of them.
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		s := tu.MustServer(t, store.SQLite, withTimelineWorkers)
		for _, tr := range tu.Transports {
			t.Run(string(tr), func(t *testing.T) {
				pageShowsChanges(t, "same", api{t: t, s: s, tr: tr}, api{t: t, s: s, tr: tr})
			})
		}
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		one, two := twoInstances(t, withTimelineWorkers)
		for _, tr := range tu.Transports {
			t.Run(string(tr)+"/one instance", func(t *testing.T) {
				pageShowsChanges(t, "same", api{t: t, s: one, tr: tr}, api{t: t, s: one, tr: tr})
			})
			t.Run(string(tr)+"/two instances", func(t *testing.T) {
				pageShowsChanges(t, "cross", api{t: t, s: one, tr: tr}, api{t: t, s: two, tr: tr})
			})
		}
	})
}

// pageShowsChanges makes every change through w and reads pages through r,
// with accounts named after tag and the transport.
func pageShowsChanges(t *testing.T, tag string, w, r api) {
	pfx := tag + "_" + string(w.tr) + "_"
	reader, author, fan := w.s.MustAccount(t, pfx+"pcreader"), w.s.MustAccount(t, pfx+"pcauthor"), w.s.MustAccount(t, pfx+"pcfan")
	w.mustFollow(reader.AccessToken, author.ID)
	w.mustFollow(author.AccessToken, reader.ID)
	theirs := w.post(author.AccessToken, "first words #alpha")
	mine := w.post(reader.AccessToken, "my own #home")
	long := w.post(author.AccessToken, strings.Repeat("too long to keep in a cache ", 60)) // read each time
	// A group post by someone the reader does not follow: their
	// relationship is read, not implied by the feed's rule.
	g := w.createGroup(fan.AccessToken, pfx+"pcclub", flockv1.GroupPrivacy_GROUP_PRIVACY_PUBLIC)
	if _, err := w.join(reader.AccessToken, g.GetId()); err != nil {
		t.Fatal(err)
	}
	club, err := w.groupPost(fan.AccessToken, g.GetId(), "club news")
	if err != nil {
		t.Fatal(err)
	}
	r.feed(reader.AccessToken, 20, "") // starts the reader's timeline
	waitFanouts(t, w.s)
	if !inTimeline(t, w.s, reader.ID, theirs.GetId()) {
		t.Fatal("the post is not in the reader's timeline: this test is about timeline pages")
	}

	// page returns the reader's first page, each post checked against
	// GetPost of it, by id.
	page := func(step string) map[string]*flockv1.Post {
		t.Helper()
		posts, _ := r.feed(reader.AccessToken, 20, "")
		byID := map[string]*flockv1.Post{}
		for _, p := range posts {
			one := must[flockv1.GetPostResponse](r, flockv1connect.PostServiceGetPostProcedure, reader.AccessToken, &flockv1.GetPostRequest{PostId: p.GetId()}).GetPost()
			if !proto.Equal(p, one) {
				t.Errorf("%s: the page shows\n%v\nGetPost shows\n%v", step, p, one)
			}
			byID[p.GetId()] = p
		}
		if byID[theirs.GetId()] == nil || byID[mine.GetId()] == nil || byID[club.GetId()] == nil || byID[long.GetId()] == nil {
			t.Fatalf("%s: page %v lacks a post", step, ids(posts))
		}
		return byID
	}
	before := page("before the changes")
	if got := before[mine.GetId()].GetAuthor(); got.GetEmail() == "" {
		t.Errorf("the reader's own post: author %v, want their own profile with its email", got)
	}
	if got := before[theirs.GetId()].GetAuthor(); !got.GetFollowedByMe() || !got.GetFollowsMe() {
		t.Errorf("before: relationship to the author %v, want followed both ways", got)
	}
	hits := r.s.App.DB().RowCacheStats()
	if got := before[club.GetId()].GetAuthor(); got.GetFollowedByMe() {
		t.Errorf("group post: the reader follows its author %v, who they do not follow", got)
	}
	page("again, from the caches")
	if now := r.s.App.DB().RowCacheStats(); now.PostHits <= hits.PostHits || now.AuthorHits <= hits.AuthorHits {
		t.Errorf("a page read again hit no cache: %+v, then %+v", hits, now)
	}

	must[flockv1.UpdatePostResponse](w, flockv1connect.PostServiceUpdatePostProcedure, author.AccessToken,
		&flockv1.UpdatePostRequest{PostId: theirs.GetId(), Content: "edited words #beta #gamma"})
	must[flockv1.UpdateMeResponse](w, flockv1connect.UserServiceUpdateMeProcedure, author.AccessToken,
		&flockv1.UpdateMeRequest{FullName: proto.String("Renamed Author"), Bio: proto.String("a new bio")})
	must[flockv1.UpdateMeResponse](w, flockv1connect.UserServiceUpdateMeProcedure, reader.AccessToken,
		&flockv1.UpdateMeRequest{Bio: proto.String("the reader's bio")})
	w.like(fan.AccessToken, theirs.GetId())
	w.like(reader.AccessToken, theirs.GetId())
	w.comment(fan.AccessToken, theirs.GetId(), "nice")
	w.mustFollow(fan.AccessToken, author.ID)
	must[flockv1.UnfollowResponse](w, flockv1connect.UserServiceUnfollowProcedure, author.AccessToken, &flockv1.UnfollowRequest{UserId: reader.ID})

	after := page("after the changes")
	p := after[theirs.GetId()]
	if p.GetContent() != "edited words #beta #gamma" || !slices.Equal(p.GetHashtags(), []string{"beta", "gamma"}) {
		t.Errorf("edited post: %q %v", p.GetContent(), p.GetHashtags())
	}
	if p.GetLikesCount() != 2 || p.GetCommentsCount() != 1 || !p.GetLikedByMe() {
		t.Errorf("counts: %d likes, %d comments, liked by me %v; want 2, 1, true", p.GetLikesCount(), p.GetCommentsCount(), p.GetLikedByMe())
	}
	a := p.GetAuthor()
	if a.GetFullName() != "Renamed Author" || a.GetBio() != "a new bio" || a.GetFollowersCount() != 2 || !a.GetFollowedByMe() || a.GetFollowsMe() {
		t.Errorf("author: %v; want the new name and bio, 2 followers, followed by me, not following me", a)
	}
	if got := after[mine.GetId()].GetAuthor().GetBio(); got != "the reader's bio" {
		t.Errorf("the reader's own post shows bio %q", got)
	}
}
