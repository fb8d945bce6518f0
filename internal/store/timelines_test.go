package store_test

import (
	"context"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/flock-social/flock/internal/store"
	"github.com/flock-social/flock/internal/testutil"
)

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// fill fills userID's timeline if it is building, outside a transaction.
func fill(t *testing.T, db *store.DB, userID string) {
	t.Helper()
	_, gone, err := db.FillTimelines(context.Background(), db, []string{userID}, store.TimelineSize)
	must(t, err)
	if len(gone) > 0 {
		t.Fatalf("timeline of %s deleted during its fill", userID)
	}
}

// entries counts userID's timeline entries.
func entries(t *testing.T, db *store.DB, userID string) int {
	t.Helper()
	n, err := db.NewSelect().Table("timeline_entries").Where("user_id = ?", userID).Count(context.Background())
	must(t, err)
	return int(n)
}

// One FanOut call takes posts of every kind together: a post to its
// author's followers, a big author's post to the author alone, a group post
// to the group's active members, and a post deleted before its fan-out to
// nobody; each post once, however often it is asked for.
func TestFanOut_OneBatchWritesEachPostToItsOwnReaders(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		ctx := context.Background()
		u := map[string]*store.User{}
		for _, n := range []string{"author", "bigauthor", "grouper", "reader", "reader2", "outsider"} {
			u[n] = MustCreateUser(t, db, n)
		}
		for _, f := range [][2]string{{"reader", "author"}, {"reader2", "author"}, {"reader", "bigauthor"}, {"reader2", "bigauthor"}, {"outsider", "bigauthor"}} {
			_, err := db.CreateFollow(ctx, db, u[f[0]].ID, u[f[1]].ID)
			must(t, err)
		}
		g := &store.Group{Name: "club", Privacy: "public", OwnerID: u["grouper"].ID}
		must(t, db.CreateGroup(ctx, db, g))
		must(t, db.PutMembership(ctx, db, &store.GroupMember{GroupID: g.ID, UserID: u["reader"].ID, Role: store.GroupRoleMember, State: store.MemberActive}))
		for _, n := range []string{"author", "bigauthor", "grouper", "reader", "reader2", "outsider"} {
			_, err := db.StartTimeline(ctx, db, u[n].ID)
			must(t, err)
			fill(t, db, u[n].ID)
		}
		post := func(author string, group *string) string {
			p := &store.Post{AuthorID: u[author].ID, Content: "hello", Visibility: store.VisibilityPublic, GroupID: group}
			if group != nil {
				p.Visibility = store.VisibilityGroup
			}
			must(t, db.CreatePost(ctx, db, p))
			must(t, db.AddPendingPost(ctx, db, p.ID))
			return p.ID
		}
		plain, big, grouped, gone := post("author", nil), post("bigauthor", nil), post("grouper", &g.ID), post("author", nil)
		must(t, db.InTx(ctx, func(ctx context.Context, tx bun.Tx) error {
			return db.DeletePost(ctx, tx, &store.Post{ID: gone, AuthorID: u["author"].ID})
		}))

		var posts, entries int64
		must(t, db.InTx(ctx, func(ctx context.Context, tx bun.Tx) error {
			var err error
			posts, entries, err = db.FanOut(ctx, tx, []string{gone, grouped, plain, big, plain}, 3) // 3 followers make a big author
			return err
		}))
		if posts != 3 || entries != 6 {
			t.Errorf("FanOut = %d posts, %d entries; want 3 posts, 6 entries", posts, entries)
		}
		want := map[string][]string{
			"author": {plain}, "bigauthor": {big}, "grouper": {grouped},
			"reader": {plain, grouped}, "reader2": {plain}, "outsider": nil,
		}
		for n, ids := range want {
			var got []string
			must(t, db.NewSelect().Table("timeline_entries").Column("post_id").Where("user_id = ?", u[n].ID).Scan(ctx, &got))
			slices.Sort(got)
			slices.Sort(ids)
			if !slices.Equal(got, ids) {
				t.Errorf("%s's timeline holds %v, want %v", n, got, ids)
			}
		}
		if n, err := db.NewSelect().Table("timeline_big_authors").Where("user_id = ?", u["bigauthor"].ID).Count(ctx); err != nil || n != 1 {
			t.Errorf("bigauthor marked big: %d, %v", n, err)
		}
		if n, err := db.NewSelect().Table("timeline_pending").Count(ctx); err != nil || n != 0 {
			t.Errorf("%d posts still pending, %v", n, err)
		}
		must(t, db.InTx(ctx, func(ctx context.Context, tx bun.Tx) error {
			var err error
			posts, entries, err = db.FanOut(ctx, tx, []string{plain, big, grouped}, 3)
			return err
		}))
		if posts != 0 || entries != 0 {
			t.Errorf("FanOut again = %d posts, %d entries; want nothing", posts, entries)
		}
	})
}

// Entries have no foreign key to their timeline (timelines.go, "Entries
// and their timeline"): each way a timeline goes takes its entries with it
// (an account's deletion, an idle timeline's drop), and a new timeline
// starts without any.
func TestTimeline_EveryDeletionTakesItsEntries(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		ctx := context.Background()
		author, doomed, idle := MustCreateUser(t, db, "author"), MustCreateUser(t, db, "doomed"), MustCreateUser(t, db, "idle")
		for range 3 {
			must(t, db.CreatePost(ctx, db, &store.Post{AuthorID: author.ID, Content: "hello", Visibility: store.VisibilityPublic}))
		}
		for _, u := range []*store.User{doomed, idle} {
			// Their timelines: one new (filled), one their account began
			// with (the follow's backfill writes to it).
			if u == doomed {
				must(t, db.DeleteTimeline(ctx, db, u.ID))
				_, err := db.StartTimeline(ctx, db, u.ID)
				must(t, err)
			}
			_, err := db.CreateFollow(ctx, db, u.ID, author.ID)
			must(t, err)
			if u == doomed {
				fill(t, db, u.ID)
			}
			if n := entries(t, db, u.ID); n != 3 {
				t.Fatalf("%s's timeline has %d entries, want 3", u.Username, n)
			}
		}

		must(t, db.InTx(ctx, func(ctx context.Context, tx bun.Tx) error {
			_, err := db.DeleteAccount(ctx, tx, doomed.ID, time.Now())
			return err
		}))
		if n := entries(t, db, doomed.ID); n != 0 {
			t.Errorf("a deleted account's timeline left %d entries", n)
		}

		var dropped int64
		must(t, db.InTx(ctx, func(ctx context.Context, tx bun.Tx) error {
			var err error
			dropped, err = db.DropTimelines(ctx, tx, time.Now().Add(time.Hour))
			return err
		}))
		if dropped != 2 || entries(t, db, idle.ID) != 0 { // author's and idle's
			t.Errorf("dropped %d timelines, leaving %d entries of idle's; want 2 and 0", dropped, entries(t, db, idle.ID))
		}

		// A timeline row lost by other means (by hand) leaves its entries
		// behind; the next timeline starts without them.
		_, err := db.StartTimeline(ctx, db, idle.ID)
		must(t, err)
		fill(t, db, idle.ID)
		_, err = db.NewDelete().Table("timelines").Where("user_id = ?", idle.ID).Exec(ctx)
		must(t, err)
		_, err = db.StartTimeline(ctx, db, idle.ID)
		must(t, err)
		if n := entries(t, db, idle.ID); n != 0 {
			t.Errorf("a new timeline starts with %d entries, want 0", n)
		}
	})
}

// A fill whose timeline is deleted while it runs is undone, alone among
// the fills of its transaction: on Postgres the deletion commits while
// the fill, its entries written, waits to lock the timelines it marks
// ready; it then finds that row gone and removes its entries, so none
// outlives its timeline, and marks the other timeline ready.
func TestFillTimeline_UndoneWhenItsTimelineIsDeletedMeanwhile(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		ctx := context.Background()
		author, reader, other := MustCreateUser(t, db, "author"), MustCreateUser(t, db, "reader"), MustCreateUser(t, db, "other")
		if err := db.CreatePost(ctx, db, &store.Post{AuthorID: author.ID, Content: "hello", Visibility: store.VisibilityPublic}); err != nil {
			t.Fatal(err)
		}
		// Their timelines made again, to fill.
		for _, u := range []*store.User{reader, other} {
			if _, err := db.CreateFollow(ctx, db, u.ID, author.ID); err != nil {
				t.Fatal(err)
			}
			if err := db.DeleteTimeline(ctx, db, u.ID); err != nil {
				t.Fatal(err)
			}
			if tl, err := db.StartTimeline(ctx, db, u.ID); err != nil || tl == nil {
				t.Fatalf("start timeline = %v, %v", tl, err)
			}
		}
		type result struct {
			filled, gone []string
			err          error
		}
		fillBoth := func() (r result) {
			r.err = db.InTx(ctx, func(ctx context.Context, tx bun.Tx) error {
				var err error
				r.filled, r.gone, err = db.FillTimelines(ctx, tx, []string{reader.ID, other.ID}, store.FillSize)
				return err
			})
			return r
		}
		if db.Engine == store.Postgres {
			del, err := db.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer del.Rollback()
			if err := db.DeleteTimeline(ctx, del, reader.ID); err != nil {
				t.Fatal(err)
			}
			done := make(chan result, 1)
			go func() { done <- fillBoth() }()
			// The fill, its entries written, waits to lock the timelines
			// it marks ready (the backend is seen waiting on a lock).
			for {
				var waiting int
				if err := db.NewRaw(`SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
  AND wait_event_type = 'Lock' AND query LIKE '%FROM "timelines"%FOR NO KEY UPDATE%'`).Scan(ctx, &waiting); err != nil {
					t.Fatal(err)
				}
				if waiting > 0 {
					break
				}
				select {
				case r := <-done:
					t.Fatalf("the fill ended (%+v) without waiting for the deletion", r)
				case <-time.After(10 * time.Millisecond):
				}
			}
			if err := del.Commit(); err != nil {
				t.Fatal(err)
			}
			if r := <-done; r.err != nil || !slices.Equal(r.gone, []string{reader.ID}) || !slices.Equal(r.filled, []string{other.ID}) {
				t.Fatalf("fill = %+v; want the reader's gone and the other's filled", r)
			}
		} else {
			// One writer at a time: the deletion comes before the fill.
			if err := db.DeleteTimeline(ctx, db, reader.ID); err != nil {
				t.Fatal(err)
			}
			if r := fillBoth(); r.err != nil || len(r.gone) != 0 || !slices.Equal(r.filled, []string{other.ID}) {
				t.Fatalf("fill = %+v; want only the other's filled", r)
			}
		}
		if n := entries(t, db, reader.ID); n != 0 {
			t.Errorf("%d entries outlived their timeline", n)
		}
		ids, err := db.BuildingTimelines(ctx, db, 10)
		if err != nil {
			t.Fatal(err)
		}
		if n := entries(t, db, other.ID); n != 1 || len(ids) != 0 {
			t.Errorf("the other timeline has %d entries and %d timelines are building; want 1 and 0", n, len(ids))
		}
	})
}

// FeedCandidates (and so every fill) is exactly the newest posts of the
// reader's sources, whatever their mix: a prolific followee beside rare
// ones, the reader's own posts, a group's, a followee's post in the
// reader's group (once), and nothing of an author they do not follow or
// a group they are not in. Its threshold merge reads a few posts of each
// source and goes back only to some; this compares it with the sources
// read whole, for page and fill sizes and cursors all through the feed.
func TestFeedCandidates_AreTheNewestPostsOfEverySource(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		ctx := context.Background()
		reader := MustCreateUser(t, db, "reader")
		stranger := MustCreateUser(t, db, "stranger")
		var followees []*store.User
		for i := range 8 {
			u := MustCreateUser(t, db, "followee"+strconv.Itoa(i))
			_, err := db.CreateFollow(ctx, db, reader.ID, u.ID)
			must(t, err)
			followees = append(followees, u)
		}
		club := &store.Group{Name: "club", Privacy: "public", OwnerID: followees[0].ID}
		must(t, db.CreateGroup(ctx, db, club))
		must(t, db.PutMembership(ctx, db, &store.GroupMember{GroupID: club.ID, UserID: reader.ID, Role: store.GroupRoleMember, State: store.MemberActive}))
		other := &store.Group{Name: "other", Privacy: "public", OwnerID: stranger.ID}
		must(t, db.CreateGroup(ctx, db, other))

		// Who posts, weighted: followee 0 a post in three, the reader and
		// the club sometimes, a few followees rarely, two never.
		rng := rand.New(rand.NewPCG(1, 2))
		inFeed := map[string]bool{}
		var all []string
		for range 240 {
			p := &store.Post{Content: "hello", Visibility: store.VisibilityPublic}
			feed := true
			switch r := rng.IntN(30); {
			case r < 10:
				p.AuthorID = followees[0].ID
			case r < 13:
				p.AuthorID = reader.ID
			case r < 16:
				p.AuthorID, p.GroupID, p.Visibility = stranger.ID, &club.ID, store.VisibilityGroup
			case r < 18:
				p.AuthorID, p.GroupID, p.Visibility = followees[1].ID, &club.ID, store.VisibilityGroup
			case r < 21:
				p.AuthorID, feed = stranger.ID, false
			case r < 23:
				p.AuthorID, p.GroupID, p.Visibility, feed = stranger.ID, &other.ID, store.VisibilityGroup, false
			default:
				p.AuthorID = followees[1+rng.IntN(5)].ID // followees 6 and 7 never post
			}
			must(t, db.CreatePost(ctx, db, p))
			all = append(all, p.ID)
			inFeed[p.ID] = feed
		}
		slices.Sort(all)
		slices.Reverse(all)
		var feed []string
		for _, id := range all {
			if inFeed[id] {
				feed = append(feed, id)
			}
		}

		cursors := []string{""}
		for i := 0; i < len(all); i += 17 {
			cursors = append(cursors, all[i])
		}
		for _, limit := range []int{1, 3, 8, 24, 96, store.FillSize} {
			for _, before := range cursors {
				var want []string
				for _, id := range feed {
					if before == "" || id < before {
						want = append(want, id)
					}
				}
				want = want[:min(len(want), limit)]
				got, err := db.FeedCandidates(ctx, db, reader.ID, before, limit)
				must(t, err)
				if !slices.Equal(got, want) {
					t.Fatalf("FeedCandidates(limit %d, before %q) = %d ids %v\nwant %d ids %v", limit, before, len(got), got, len(want), want)
				}
			}
		}
	})
}

// Entries have no foreign key to posts (timelines.go, "Entries and their
// posts"): each way a post goes takes its entries out of every timeline
// its fan-out wrote to: its deletion, its group's, its author's account's.
func TestTimeline_EveryPostDeletionTakesItsEntries(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		ctx := context.Background()
		author, follower, member := MustCreateUser(t, db, "author"), MustCreateUser(t, db, "follower"), MustCreateUser(t, db, "member")
		_, err := db.CreateFollow(ctx, db, follower.ID, author.ID)
		must(t, err)
		club := &store.Group{Name: "club", Privacy: "public", OwnerID: member.ID}
		must(t, db.CreateGroup(ctx, db, club))
		for _, u := range []*store.User{member, author} {
			must(t, db.PutMembership(ctx, db, &store.GroupMember{GroupID: club.ID, UserID: u.ID, Role: store.GroupRoleMember, State: store.MemberActive}))
		}
		for _, u := range []*store.User{author, follower, member} {
			_, err := db.StartTimeline(ctx, db, u.ID)
			must(t, err)
			fill(t, db, u.ID)
		}
		post := func(group *string) string {
			p := &store.Post{AuthorID: author.ID, Content: "hello", Visibility: store.VisibilityPublic, GroupID: group}
			if group != nil {
				p.Visibility = store.VisibilityGroup
			}
			must(t, db.CreatePost(ctx, db, p))
			must(t, db.AddPendingPost(ctx, db, p.ID))
			return p.ID
		}
		deleted, grouped, kept := post(nil), post(&club.ID), post(nil)
		must(t, db.InTx(ctx, func(ctx context.Context, tx bun.Tx) error {
			_, _, err := db.FanOut(ctx, tx, []string{deleted, grouped, kept}, 1000)
			return err
		}))
		in := func(postID string) int {
			t.Helper()
			n, err := db.NewSelect().Table("timeline_entries").Where("post_id = ?", postID).Count(ctx)
			must(t, err)
			return int(n)
		}
		// The author's and the follower's timelines; the author's and the member's.
		if in(deleted) != 2 || in(grouped) != 2 || in(kept) != 2 {
			t.Fatalf("fanned out to %d, %d, %d timelines; want 2 each", in(deleted), in(grouped), in(kept))
		}

		must(t, db.InTx(ctx, func(ctx context.Context, tx bun.Tx) error {
			return db.DeletePost(ctx, tx, &store.Post{ID: deleted, AuthorID: author.ID})
		}))
		if n := in(deleted); n != 0 {
			t.Errorf("a deleted post is left in %d timelines", n)
		}
		must(t, db.InTx(ctx, func(ctx context.Context, tx bun.Tx) error {
			return db.DeleteGroup(ctx, tx, club.ID)
		}))
		if n := in(grouped); n != 0 {
			t.Errorf("a deleted group's post is left in %d timelines", n)
		}
		if n := in(kept); n != 2 {
			t.Fatalf("another post is in %d timelines, want 2", n)
		}
		must(t, db.InTx(ctx, func(ctx context.Context, tx bun.Tx) error {
			_, err := db.DeleteAccount(ctx, tx, author.ID, time.Now())
			return err
		}))
		if n := in(kept); n != 0 {
			t.Errorf("a deleted account's post is left in %d timelines", n)
		}
	})
}

// A timeline page holds only the candidates in [FloorID, BeforeID): a
// read merges its entries with every pending post below BeforeID, and
// those below the page's floor belong to a later page (shown on this one
// too, they would appear twice and out of order). With and without the big
// authors' posts merged.
func TestTimelinePosts_OnlyCandidatesBetweenTheBounds(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		ctx := context.Background()
		reader := MustCreateUser(t, db, "reader")
		author := MustCreateUser(t, db, "author")
		_, err := db.CreateFollow(ctx, db, reader.ID, author.ID)
		must(t, err)
		var ids []string
		for range 6 {
			p := &store.Post{AuthorID: author.ID, Content: "hello", Visibility: store.VisibilityPublic}
			must(t, db.CreatePost(ctx, db, p))
			ids = append(ids, p.ID)
		}
		slices.Sort(ids)
		for _, merge := range []bool{false, true} {
			for _, c := range []struct{ floor, before string }{
				{ids[2], ids[4]}, {ids[0], ids[1]}, {ids[3], ""}, {"", ids[2]}, {"", ""},
			} {
				var want []string
				for _, id := range slices.Backward(ids) {
					if id >= c.floor && (c.before == "" || id < c.before) {
						want = append(want, id)
					}
				}
				posts, err := db.ListPosts(ctx, db, store.PostFilter{ViewerID: reader.ID, FeedOf: reader.ID, Timeline: true,
					Candidates: ids, MergeBig: merge, FloorID: c.floor, BeforeID: c.before, Limit: 20})
				must(t, err)
				var got []string
				for _, p := range posts {
					got = append(got, p.ID)
				}
				if !slices.Equal(got, want) {
					t.Errorf("merged %v, [%q, %q): page %v, want %v", merge, c.floor, c.before, got, want)
				}
			}
		}
	})
}
