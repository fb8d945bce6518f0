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
