package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/flock-social/flock/internal/store"
	"github.com/flock-social/flock/internal/testutil"
)

// The row caches (rowcache.go) take a row's updated_at for its version: each
// write of a column they keep must move it, or a page would go on showing
// the old value.
func TestRowCache_EveryWriteOfACachedUserColumnMovesUpdatedAt(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		ctx := context.Background()
		clk := useClock(db)
		u := MustCreateUser(t, db, "versioned")
		writes := []struct {
			name string
			fn   func() error
		}{
			{"UpdateUser", func() error {
				_, err := db.UpdateUser(ctx, db, u.ID, store.UserUpdate{Bio: ptr("new bio"), FullName: ptr("New Name"), AvatarKey: ptr("avatars/x.jpg")})
				return err
			}},
			{"SetUserRole", func() error { _, err := db.SetUserRole(ctx, db, u.Username, store.RoleStaff); return err }},
			{"MarkEmailVerified", func() error { return db.MarkEmailVerified(ctx, db, u.ID) }},
			{"SetUserEmail", func() error { return db.SetUserEmail(ctx, db, u.ID, "moved@example.com") }},
			{"SuspendUser", func() error { return db.SuspendUser(ctx, db, u.ID) }},
		}
		for _, w := range writes {
			before, err := db.GetUser(ctx, db, u.ID)
			if err != nil {
				t.Fatal(err)
			}
			clk.Advance(time.Second)
			if err := w.fn(); err != nil {
				t.Fatalf("%s: %v", w.name, err)
			}
			after, err := db.GetUser(ctx, db, u.ID)
			if err != nil {
				t.Fatal(err)
			}
			if !after.UpdatedAt.After(before.UpdatedAt) {
				t.Errorf("%s left updated_at at %v", w.name, after.UpdatedAt)
			}
		}
	})
}

// Users listed with the viewer's relationships (notifications, comments,
// group members) come from the authors' row cache since item 49 of
// docs/performance.md: a profile's change shows at the next read, and the
// counts and the suspension are each read's own. No password hash leaves
// the store that way.
func TestGetUsersWithRelationships_ShowsEachWriteAtTheNextRead(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		ctx := context.Background()
		clk := useClock(db)
		viewer, u := MustCreateUser(t, db, "viewer"), MustCreateUser(t, db, "listed")
		get := func() *store.User {
			t.Helper()
			users, rels, err := db.GetUsersWithRelationships(ctx, db, viewer.ID, []string{u.ID})
			if err != nil || users[u.ID] == nil {
				t.Fatalf("GetUsersWithRelationships = %v, %v", users, err)
			}
			if got := users[u.ID]; got.PasswordHash != "" {
				t.Fatalf("the password hash was read: %q", got.PasswordHash)
			}
			_ = rels
			return users[u.ID]
		}
		if got := get(); got.Bio != "" || got.FollowersCount != 0 {
			t.Fatalf("first read: bio %q, %d followers", got.Bio, got.FollowersCount)
		}
		clk.Advance(time.Second)
		if _, err := db.UpdateUser(ctx, db, u.ID, store.UserUpdate{Bio: ptr("new bio")}); err != nil {
			t.Fatal(err)
		}
		if _, err := db.CreateFollow(ctx, db, viewer.ID, u.ID); err != nil {
			t.Fatal(err)
		}
		got := get()
		if got.Bio != "new bio" || got.FollowersCount != 1 || got.Username != "listed" {
			t.Fatalf("after a new bio and a follower: bio %q, %d followers, username %q", got.Bio, got.FollowersCount, got.Username)
		}
		users, rels, err := db.GetUsersWithRelationships(ctx, db, viewer.ID, []string{u.ID})
		if err != nil || !rels[u.ID].FollowedByMe || users[u.ID] == nil {
			t.Fatalf("the viewer follows them: %+v, %v", rels, err)
		}
		clk.Advance(time.Second)
		if err := db.SuspendUser(ctx, db, u.ID); err != nil {
			t.Fatal(err)
		}
		if got := get(); got.SuspendedAt == nil {
			t.Fatal("a suspension is not seen at the next read")
		}
	})
}
