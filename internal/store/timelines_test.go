package store_test

import (
	"context"
	"slices"
	"testing"

	"github.com/uptrace/bun"

	"github.com/flock-social/flock/internal/store"
	"github.com/flock-social/flock/internal/testutil"
)

// One FanOut call takes posts of every kind together: a post to its
// author's followers, a big author's post to the author alone, a group post
// to the group's active members, and a post deleted before its fan-out to
// nobody; each post once, however often it is asked for.
func TestFanOut_OneBatchWritesEachPostToItsOwnReaders(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		ctx := context.Background()
		must := func(err error) {
			t.Helper()
			if err != nil {
				t.Fatal(err)
			}
		}
		u := map[string]*store.User{}
		for _, n := range []string{"author", "bigauthor", "grouper", "reader", "reader2", "outsider"} {
			u[n] = MustCreateUser(t, db, n)
		}
		for _, f := range [][2]string{{"reader", "author"}, {"reader2", "author"}, {"reader", "bigauthor"}, {"reader2", "bigauthor"}, {"outsider", "bigauthor"}} {
			_, err := db.CreateFollow(ctx, db, u[f[0]].ID, u[f[1]].ID)
			must(err)
		}
		g := &store.Group{Name: "club", Privacy: "public", OwnerID: u["grouper"].ID}
		must(db.CreateGroup(ctx, db, g))
		must(db.PutMembership(ctx, db, &store.GroupMember{GroupID: g.ID, UserID: u["reader"].ID, Role: store.GroupRoleMember, State: store.MemberActive}))
		for _, n := range []string{"author", "bigauthor", "grouper", "reader", "reader2", "outsider"} {
			_, err := db.StartTimeline(ctx, db, u[n].ID)
			must(err)
			must(db.FillTimeline(ctx, db, u[n].ID, store.TimelineSize))
		}
		post := func(author string, group *string) string {
			p := &store.Post{AuthorID: u[author].ID, Content: "hello", Visibility: store.VisibilityPublic, GroupID: group}
			if group != nil {
				p.Visibility = store.VisibilityGroup
			}
			must(db.CreatePost(ctx, db, p))
			must(db.AddPendingPost(ctx, db, p.ID))
			return p.ID
		}
		plain, big, grouped, gone := post("author", nil), post("bigauthor", nil), post("grouper", &g.ID), post("author", nil)
		must(db.InTx(ctx, func(ctx context.Context, tx bun.Tx) error {
			return db.DeletePost(ctx, tx, &store.Post{ID: gone, AuthorID: u["author"].ID})
		}))

		var posts, entries int64
		must(db.InTx(ctx, func(ctx context.Context, tx bun.Tx) error {
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
			must(db.NewSelect().Table("timeline_entries").Column("post_id").Where("user_id = ?", u[n].ID).Scan(ctx, &got))
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
		must(db.InTx(ctx, func(ctx context.Context, tx bun.Tx) error {
			var err error
			posts, entries, err = db.FanOut(ctx, tx, []string{plain, big, grouped}, 3)
			return err
		}))
		if posts != 0 || entries != 0 {
			t.Errorf("FanOut again = %d posts, %d entries; want nothing", posts, entries)
		}
	})
}
