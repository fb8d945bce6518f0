package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/flock-social/flock"
	"github.com/flock-social/flock/internal/store"
	"github.com/flock-social/flock/internal/testutil"
)

// The store contract: every test here runs once per engine (SQLite always,
// Postgres when it answers) against a fresh, migrated database, so both
// dialects are held to the same behaviour.

// clock is a settable time source for db.Now. It starts at the real time so
// that rows written with it sort among rows written without it.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Now().UTC()} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// useClock makes db read the time from a new clock and returns it.
func useClock(db *store.DB) *clock {
	c := newClock()
	db.Now = c.Now
	return c
}

// MustCreateUser creates a user named username with the email
// username@example.com (lower-cased).
func MustCreateUser(tb testing.TB, db *store.DB, username string) *store.User {
	tb.Helper()
	u := &store.User{Username: username, Email: strings.ToLower(username) + "@example.com", PasswordHash: "not-a-hash", FullName: "Test " + username}
	if err := db.CreateUser(context.Background(), db, u); err != nil {
		tb.Fatalf("create user %s: %v", username, err)
	}
	return u
}

// MustCreateSession creates a live session of userID that ends after ttl.
func MustCreateSession(tb testing.TB, db *store.DB, userID string, ttl time.Duration) *store.Session {
	tb.Helper()
	now := db.Now()
	s := &store.Session{ID: store.NewID(), UserID: userID, CreatedAt: now, ExpiresAt: now.Add(ttl)}
	if err := db.CreateSession(context.Background(), db, s); err != nil {
		tb.Fatalf("create session: %v", err)
	}
	return s
}

// MustCreateRefreshToken stores a refresh token under hash in sessionID,
// valid for ttl.
func MustCreateRefreshToken(tb testing.TB, db *store.DB, sessionID, hash string, ttl time.Duration) {
	tb.Helper()
	now := db.Now()
	rt := &store.RefreshToken{TokenHash: hash, SessionID: sessionID, CreatedAt: now, ExpiresAt: now.Add(ttl)}
	if err := db.CreateRefreshToken(context.Background(), db, rt); err != nil {
		tb.Fatalf("create refresh token: %v", err)
	}
}

// MustCreateEmailVerification stores a verification token under hash for
// userID, valid for ttl.
func MustCreateEmailVerification(tb testing.TB, db *store.DB, userID, hash string, ttl time.Duration) {
	tb.Helper()
	now := db.Now()
	v := &store.EmailVerification{TokenHash: hash, UserID: userID, CreatedAt: now, ExpiresAt: now.Add(ttl)}
	if err := db.CreateEmailVerification(context.Background(), db, v); err != nil {
		tb.Fatalf("create email verification: %v", err)
	}
}

// ptr returns a pointer to v, for update structs.
func ptr[T any](v T) *T { return &v }

// wantNotFound fails the test unless err matches store.IsNotFound.
func wantNotFound(tb testing.TB, what string, err error) {
	tb.Helper()
	if !store.IsNotFound(err) {
		tb.Fatalf("%s: err = %v, want not found", what, err)
	}
}

// wantConflict fails the test unless err is a unique violation both as a
// store error and as a flock error.
func wantConflict(tb testing.TB, what string, err error) {
	tb.Helper()
	if !errors.Is(err, store.ErrConflict) {
		tb.Fatalf("%s: err = %v, want one matching store.ErrConflict", what, err)
	}
	if code := flock.ErrorCode(err); code != flock.ECONFLICT {
		tb.Fatalf("%s: flock.ErrorCode = %q, want %q (err %v)", what, code, flock.ECONFLICT, err)
	}
}

func TestMigrate_AppliesEveryMigrationOnceAndIsIdempotent(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		ctx := context.Background()
		files, err := os.ReadDir("migrations/" + db.Engine)
		if err != nil {
			t.Fatal(err)
		}
		var want []string
		for _, f := range files {
			if name, ok := strings.CutSuffix(f.Name(), ".up.sql"); ok {
				name, _, _ = strings.Cut(name, "_")
				want = append(want, name)
			}
		}
		var applied []string
		if err := db.NewSelect().Table("bun_migrations").Column("name").Order("name").Scan(ctx, &applied); err != nil {
			t.Fatalf("read bun_migrations: %v", err)
		}
		if !slices.Equal(applied, want) || len(want) == 0 {
			t.Fatalf("applied migrations = %v, want every file in migrations/%s: %v", applied, db.Engine, want)
		}

		again, err := db.Migrate(ctx)
		if err != nil {
			t.Fatalf("second Migrate: %v", err)
		}
		if len(again) != 0 {
			t.Fatalf("second Migrate applied %v, want none", again)
		}
		for _, table := range []string{"users", "user_interests", "sessions", "refresh_tokens", "email_verifications"} {
			if _, err := db.NewSelect().Table(table).Count(ctx); err != nil {
				t.Errorf("table %s after migrating: %v", table, err)
			}
		}
	})
}

func TestCreateUser_GetUserRoundTrip(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		ctx := context.Background()
		in := &store.User{
			Username: "Alice_1", Email: "alice@example.com", PasswordHash: "$argon2id$stub",
			FullName: "Alice Émile", Bio: "héllo 🐦", AvatarKey: "avatars/x/y.jpg",
		}
		if err := db.CreateUser(ctx, db, in); err != nil {
			t.Fatalf("CreateUser: %v", err)
		}
		if in.ID == "" || in.CreatedAt.IsZero() || !in.UpdatedAt.Equal(in.CreatedAt) || in.Role != store.RoleMember {
			t.Fatalf("CreateUser did not fill ID, timestamps and role: %+v", in)
		}

		got, err := db.GetUser(ctx, db, in.ID)
		if err != nil {
			t.Fatalf("GetUser: %v", err)
		}
		for _, c := range []struct{ field, got, want string }{
			{"ID", got.ID, in.ID}, {"Username", got.Username, in.Username}, {"Email", got.Email, in.Email},
			{"PasswordHash", got.PasswordHash, in.PasswordHash}, {"FullName", got.FullName, in.FullName},
			{"Bio", got.Bio, in.Bio}, {"AvatarKey", got.AvatarKey, in.AvatarKey}, {"Role", got.Role, store.RoleMember},
		} {
			if c.got != c.want {
				t.Errorf("%s = %q, want %q", c.field, c.got, c.want)
			}
		}
		if got.EmailVerifiedAt != nil || got.SuspendedAt != nil {
			t.Errorf("new user: EmailVerifiedAt = %v, SuspendedAt = %v, want nil", got.EmailVerifiedAt, got.SuspendedAt)
		}
		if got.FollowersCount != 0 || got.FollowingCount != 0 || got.PostsCount != 0 {
			t.Errorf("new user has counters %d/%d/%d, want 0", got.FollowersCount, got.FollowingCount, got.PostsCount)
		}
		if len(got.Interests) != 0 {
			t.Errorf("Interests = %q, want none", got.Interests)
		}
		// Both engines keep microseconds and hand times back in UTC.
		for _, ts := range []struct {
			name      string
			got, want time.Time
		}{{"CreatedAt", got.CreatedAt, in.CreatedAt}, {"UpdatedAt", got.UpdatedAt, in.UpdatedAt}} {
			if !ts.got.Equal(ts.want.Truncate(time.Microsecond)) {
				t.Errorf("%s = %v, want %v", ts.name, ts.got, ts.want.Truncate(time.Microsecond))
			}
			if name, off := ts.got.Zone(); off != 0 {
				t.Errorf("%s is in zone %s (offset %ds), want UTC", ts.name, name, off)
			}
		}

		interests := []string{"go", "birds"}
		if _, err := db.UpdateUser(ctx, db, in.ID, store.UserUpdate{Interests: &interests}); err != nil {
			t.Fatalf("UpdateUser interests: %v", err)
		}
		got, err = db.GetUser(ctx, db, in.ID)
		if err != nil {
			t.Fatalf("GetUser: %v", err)
		}
		if want := []string{"birds", "go"}; !slices.Equal(got.Interests, want) {
			t.Errorf("Interests = %q, want %q (sorted)", got.Interests, want)
		}

		_, err = db.GetUser(ctx, db, store.NewID())
		wantNotFound(t, "GetUser of an unknown ID", err)
	})
}

func TestCreateUser_UsernameUniqueInAnyLetterCase(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		ctx := context.Background()
		MustCreateUser(t, db, "alice")
		for _, name := range []string{"alice", "ALICE", "Alice", "aLiCe"} {
			u := &store.User{Username: name, Email: "other-" + name + "@example.com", PasswordHash: "x"}
			wantConflict(t, "CreateUser "+name, db.CreateUser(ctx, db, u))
		}
		// A different name is fine.
		MustCreateUser(t, db, "alice2")
	})
}

func TestCreateUser_EmailUnique(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		ctx := context.Background()
		MustCreateUser(t, db, "alice")
		u := &store.User{Username: "bob", Email: "alice@example.com", PasswordHash: "x"}
		wantConflict(t, "CreateUser with a taken email", db.CreateUser(ctx, db, u))
		// The failed insert left nothing behind: bob can still register.
		MustCreateUser(t, db, "bob")
	})
}

func TestFindUserByLogin_UsernameInAnyCaseOrExactEmail(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		ctx := context.Background()
		alice := MustCreateUser(t, db, "Alice")
		MustCreateUser(t, db, "bob")
		for _, login := range []string{"Alice", "alice", "ALICE", "alice@example.com"} {
			u, err := db.FindUserByLogin(ctx, db, login)
			if err != nil {
				t.Fatalf("FindUserByLogin(%q): %v", login, err)
			}
			if u.ID != alice.ID {
				t.Fatalf("FindUserByLogin(%q) = %s, want alice %s", login, u.Username, alice.ID)
			}
		}
		// Only whole usernames and whole addresses match, never a fragment.
		for _, login := range []string{"ali", "alice%", "a_ice", "alice@example", "lice@example.com", "@example.com", "%@example.com", "carol", ""} {
			_, err := db.FindUserByLogin(ctx, db, login)
			wantNotFound(t, "FindUserByLogin("+login+")", err)
		}
	})
}

func TestUpdateUser_ChangesOnlyGivenFieldsAndReplacesInterests(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		ctx := context.Background()
		clk := useClock(db)
		u := MustCreateUser(t, db, "alice")

		clk.Advance(time.Minute)
		got, err := db.UpdateUser(ctx, db, u.ID, store.UserUpdate{Bio: ptr("new bio")})
		if err != nil {
			t.Fatalf("UpdateUser bio: %v", err)
		}
		if got.Bio != "new bio" || got.FullName != u.FullName || got.AvatarKey != "" || got.Email != u.Email || got.Role != u.Role {
			t.Fatalf("after a bio-only update: %+v", got)
		}
		if !got.UpdatedAt.Equal(clk.Now().Truncate(time.Microsecond)) || !got.CreatedAt.Equal(u.CreatedAt.Truncate(time.Microsecond)) {
			t.Errorf("UpdatedAt = %v, CreatedAt = %v; want %v and %v", got.UpdatedAt, got.CreatedAt, clk.Now(), u.CreatedAt)
		}

		got, err = db.UpdateUser(ctx, db, u.ID, store.UserUpdate{FullName: ptr("Alice A."), AvatarKey: ptr("avatars/a/b.jpg")})
		if err != nil {
			t.Fatalf("UpdateUser name and avatar: %v", err)
		}
		if got.Bio != "new bio" || got.FullName != "Alice A." || got.AvatarKey != "avatars/a/b.jpg" {
			t.Fatalf("after a name and avatar update: %+v", got)
		}

		steps := []struct {
			name string
			set  *[]string
			want []string
		}{
			{"set", &[]string{"go", "birds"}, []string{"birds", "go"}},
			{"untouched when nil", nil, []string{"birds", "go"}},
			{"replaced", &[]string{"rust"}, []string{"rust"}},
			{"cleared", &[]string{}, nil},
		}
		for _, s := range steps {
			got, err := db.UpdateUser(ctx, db, u.ID, store.UserUpdate{Interests: s.set})
			if err != nil {
				t.Fatalf("interests %s: %v", s.name, err)
			}
			if !slices.Equal(got.Interests, s.want) {
				t.Fatalf("interests %s: got %q, want %q", s.name, got.Interests, s.want)
			}
			if got.Bio != "new bio" || got.FullName != "Alice A." {
				t.Fatalf("interests %s changed other fields: %+v", s.name, got)
			}
			// GetUser reads users.interests; suggestions read the rows.
			if rows := interestRows(t, db, u.ID); !slices.Equal(rows, s.want) {
				t.Fatalf("interests %s: user_interests holds %q, want %q", s.name, rows, s.want)
			}
		}

		_, err = db.UpdateUser(ctx, db, store.NewID(), store.UserUpdate{Bio: ptr("x")})
		wantNotFound(t, "UpdateUser of an unknown ID", err)
	})
}

// interestRows returns userID's rows of user_interests, sorted.
func interestRows(t *testing.T, db *store.DB, userID string) []string {
	t.Helper()
	var rows []string
	if err := db.NewSelect().Table("user_interests").Column("interest").Where("user_id = ?", userID).Order("interest").Scan(context.Background(), &rows); err != nil {
		t.Fatal(err)
	}
	return rows
}

// The migration that made users.interests, GetUser's copy of the rows of
// user_interests, copied every user's rows there, sorted; a user without
// any kept the empty list. Its statements after the ALTER TABLE run again
// here on users whose copy is emptied.
func TestMigration_UsersInterestsCopiesEveryUsersRows(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		ctx := context.Background()
		alice, bob := MustCreateUser(t, db, "alice"), MustCreateUser(t, db, "bob")
		if _, err := db.UpdateUser(ctx, db, alice.ID, store.UserUpdate{Interests: &[]string{"rust", "birds", "go"}}); err != nil {
			t.Fatal(err)
		}
		if _, err := db.NewUpdate().Table("users").Set("interests = '[]'").Where("id IN (?)", bun.List([]string{alice.ID, bob.ID})).Exec(ctx); err != nil {
			t.Fatal(err)
		}
		sqlFile, err := os.ReadFile(filepath.Join("migrations", db.Engine, "20261209000001_users_interests.tx.up.sql"))
		if err != nil {
			t.Fatal(err)
		}
		_, update, ok := strings.Cut(string(sqlFile), "DEFAULT '[]';")
		if !ok {
			t.Fatal("the migration has no ALTER TABLE ... DEFAULT '[]'; to skip")
		}
		if _, err := db.ExecContext(ctx, update); err != nil {
			t.Fatalf("the migration's UPDATE: %v", err)
		}
		for _, c := range []struct {
			id   string
			want []string
		}{{alice.ID, []string{"birds", "go", "rust"}}, {bob.ID, nil}} {
			got, err := db.GetUser(ctx, db, c.id)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got.Interests, c.want) {
				t.Errorf("%s's interests after the migration = %q, want %q", got.Username, got.Interests, c.want)
			}
		}
		var raw string
		if err := db.NewSelect().Table("users").Column("interests").Where("id = ?", alice.ID).Scan(ctx, &raw); err != nil {
			t.Fatal(err)
		}
		var list []string
		if err := json.Unmarshal([]byte(raw), &list); err != nil || !slices.Equal(list, []string{"birds", "go", "rust"}) {
			t.Errorf("alice's users.interests = %s (%v), want the sorted JSON array", raw, err)
		}
	})
}

func TestSetUserRole_ByUsernameInAnyCase(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		ctx := context.Background()
		alice := MustCreateUser(t, db, "alice")
		bob := MustCreateUser(t, db, "bob")
		got, err := db.SetUserRole(ctx, db, "ALICE", store.RoleStaff)
		if err != nil {
			t.Fatalf("SetUserRole: %v", err)
		}
		if got.ID != alice.ID || got.Role != store.RoleStaff {
			t.Fatalf("SetUserRole returned %s with role %q, want alice as staff", got.Username, got.Role)
		}
		for id, want := range map[string]string{alice.ID: store.RoleStaff, bob.ID: store.RoleMember} {
			u, err := db.GetUser(ctx, db, id)
			if err != nil {
				t.Fatal(err)
			}
			if u.Role != want {
				t.Errorf("%s has role %q, want %q", u.Username, u.Role, want)
			}
		}
		_, err = db.SetUserRole(ctx, db, "carol", store.RoleStaff)
		wantNotFound(t, "SetUserRole of an unknown user", err)
	})
}

func TestMarkEmailVerified_KeepsTheFirstTime(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		ctx := context.Background()
		clk := useClock(db)
		u := MustCreateUser(t, db, "alice")
		first := clk.Now()
		if err := db.MarkEmailVerified(ctx, db, u.ID); err != nil {
			t.Fatal(err)
		}
		clk.Advance(time.Hour)
		if err := db.MarkEmailVerified(ctx, db, u.ID); err != nil {
			t.Fatal(err)
		}
		got, err := db.GetUser(ctx, db, u.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.EmailVerifiedAt == nil || !got.EmailVerifiedAt.Equal(first.Truncate(time.Microsecond)) {
			t.Fatalf("EmailVerifiedAt = %v, want the first time %v", got.EmailVerifiedAt, first)
		}
	})
}

func TestInTx_RollsBackWhenFnFails(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		ctx := context.Background()
		boom := errors.New("boom")
		var id string
		err := db.InTx(ctx, func(ctx context.Context, tx bun.Tx) error {
			u := &store.User{Username: "alice", Email: "alice@example.com", PasswordHash: "x"}
			if err := db.CreateUser(ctx, tx, u); err != nil {
				return err
			}
			id = u.ID
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatalf("InTx = %v, want fn's error", err)
		}
		_, err = db.GetUser(ctx, db, id)
		wantNotFound(t, "user created in a rolled-back transaction", err)
	})
}

func TestUseRefreshToken_SingleUse(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		ctx := context.Background()
		u := MustCreateUser(t, db, "alice")
		s := MustCreateSession(t, db, u.ID, time.Hour)
		MustCreateRefreshToken(t, db, s.ID, "hash-1", time.Hour)

		for i, want := range []bool{true, false, false} {
			ok, err := db.UseRefreshToken(ctx, db, "hash-1", 0)
			if err != nil {
				t.Fatalf("use %d: %v", i+1, err)
			}
			if ok != want {
				t.Fatalf("use %d = %v, want %v", i+1, ok, want)
			}
		}
		rt, err := db.GetRefreshToken(ctx, db, "hash-1")
		if err != nil {
			t.Fatal(err)
		}
		if rt.UsedAt == nil {
			t.Fatal("a used refresh token has no UsedAt")
		}
		ok, err := db.UseRefreshToken(ctx, db, "unknown-hash", 0)
		if err != nil || ok {
			t.Fatalf("UseRefreshToken of an unknown hash = %v, %v; want false, nil", ok, err)
		}
		_, err = db.GetRefreshToken(ctx, db, "unknown-hash")
		wantNotFound(t, "GetRefreshToken of an unknown hash", err)
	})
}

// useConcurrently makes n transactions use the refresh token hash at once,
// each running then (when not nil) after a successful use, and returns how
// many uses succeeded; errors fail the test.
func useConcurrently(t *testing.T, db *store.DB, n int, hash string, grace time.Duration, then func(ctx context.Context, tx bun.Tx) error) int {
	t.Helper()
	var (
		wins  atomic.Int32
		wg    sync.WaitGroup
		start = make(chan struct{})
		errs  = make(chan error, n)
	)
	for range n {
		wg.Go(func() {
			<-start
			// In a transaction, as Refresh uses it.
			err := db.InTx(context.Background(), func(ctx context.Context, tx bun.Tx) error {
				ok, err := db.UseRefreshToken(ctx, tx, hash, grace)
				if err != nil || !ok {
					return err
				}
				wins.Add(1)
				if then != nil {
					return then(ctx, tx)
				}
				return nil
			})
			if err != nil {
				errs <- err
			}
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent UseRefreshToken (grace %s): %v", grace, err)
	}
	return int(wins.Load())
}

func TestUseRefreshToken_ConcurrentUsesExactlyOneWins(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		u := MustCreateUser(t, db, "alice")
		s := MustCreateSession(t, db, u.ID, time.Hour)
		MustCreateRefreshToken(t, db, s.ID, "hash-1", time.Hour)
		const n = 16
		if got := useConcurrently(t, db, n, "hash-1", 0, nil); got != 1 {
			t.Fatalf("%d of %d concurrent uses of one refresh token succeeded, want exactly 1", got, n)
		}
	})
}

func TestUseRefreshToken_AcceptedAgainWithinTheGraceOnly_P8(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		ctx := context.Background()
		clk := useClock(db)
		const grace = 30 * time.Second
		u := MustCreateUser(t, db, "alice")
		s := MustCreateSession(t, db, u.ID, time.Hour)
		MustCreateRefreshToken(t, db, s.ID, "hash-1", time.Hour)

		use := func(what string, want bool) {
			t.Helper()
			ok, err := db.UseRefreshToken(ctx, db, "hash-1", grace)
			if err != nil || ok != want {
				t.Fatalf("UseRefreshToken %s = %v, %v; want %v", what, ok, err, want)
			}
		}
		use("first", true)
		first, err := db.GetRefreshToken(ctx, db, "hash-1")
		if err != nil || first.UsedAt == nil {
			t.Fatalf("after the first use: %+v, %v", first, err)
		}
		clk.Advance(20 * time.Second)
		use("20 s after the first use", true)
		again, err := db.GetRefreshToken(ctx, db, "hash-1")
		if err != nil || again.UsedAt == nil || !again.UsedAt.Equal(*first.UsedAt) {
			t.Fatalf("a use within the grace moved UsedAt from %v to %+v (%v); the grace runs from the first use", first.UsedAt, again, err)
		}
		clk.Advance(15 * time.Second)
		use("35 s after the first use", false)

		// Within the grace, a revoked session still refuses.
		MustCreateRefreshToken(t, db, s.ID, "hash-2", time.Hour)
		if ok, err := db.UseRefreshToken(ctx, db, "hash-2", grace); err != nil || !ok {
			t.Fatalf("first use of hash-2 = %v, %v", ok, err)
		}
		if err := db.RevokeSession(ctx, db, s.ID, "logout"); err != nil {
			t.Fatal(err)
		}
		if ok, err := db.UseRefreshToken(ctx, db, "hash-2", grace); err != nil || ok {
			t.Fatalf("use within the grace after the session was revoked = %v, %v; want false", ok, err)
		}
	})
}

func TestUseRefreshToken_ConcurrentUsesWithinTheGraceAllWin_P8(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		u := MustCreateUser(t, db, "alice")
		s := MustCreateSession(t, db, u.ID, time.Hour)
		MustCreateRefreshToken(t, db, s.ID, "hash-1", time.Hour)
		const n = 16
		// Each also writes a new token, as Refresh does.
		got := useConcurrently(t, db, n, "hash-1", time.Minute, func(ctx context.Context, tx bun.Tx) error {
			now := db.Now()
			return db.CreateRefreshToken(ctx, tx, &store.RefreshToken{TokenHash: store.NewID(), SessionID: s.ID, CreatedAt: now, ExpiresAt: now.Add(time.Hour)})
		})
		if got != n {
			t.Fatalf("%d of %d concurrent uses of one refresh token within the grace succeeded, want all", got, n)
		}
	})
}

func TestUseRefreshToken_RefusedForDeadSessionsAndExpiredTokens(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		ctx := context.Background()
		clk := useClock(db)
		u := MustCreateUser(t, db, "alice")
		other := MustCreateUser(t, db, "bob")

		revoked := MustCreateSession(t, db, u.ID, time.Hour)
		MustCreateRefreshToken(t, db, revoked.ID, "revoked", time.Hour)
		shortSession := MustCreateSession(t, db, u.ID, time.Minute)
		MustCreateRefreshToken(t, db, shortSession.ID, "session-expires", time.Hour)
		live := MustCreateSession(t, db, u.ID, time.Hour)
		MustCreateRefreshToken(t, db, live.ID, "token-expires", time.Minute)
		MustCreateRefreshToken(t, db, live.ID, "fine", time.Hour)

		if _, err := db.GetSessionUser(ctx, db, live.ID, u.ID); err != nil {
			t.Fatalf("GetSessionUser of a live session: %v", err)
		}
		_, err := db.GetSessionUser(ctx, db, live.ID, other.ID)
		wantNotFound(t, "GetSessionUser with another user's ID", err)
		// GetSessionAuth (every request's check, prepared) follows the same rules.
		if a, err := db.GetSessionAuth(ctx, db, live.ID, u.ID); err != nil || a.UserID != u.ID || !a.ExpiresAt.Equal(live.ExpiresAt.Truncate(time.Microsecond)) {
			t.Fatalf("GetSessionAuth of a live session = %+v, %v", a, err)
		}
		_, err = db.GetSessionAuth(ctx, db, live.ID, other.ID)
		wantNotFound(t, "GetSessionAuth with another user's ID", err)

		if err := db.RevokeSession(ctx, db, revoked.ID, "test"); err != nil {
			t.Fatalf("RevokeSession: %v", err)
		}
		s, err := db.GetSession(ctx, db, revoked.ID)
		if err != nil {
			t.Fatal(err)
		}
		if s.RevokedAt == nil || s.RevokedWhy != "test" {
			t.Fatalf("revoked session: RevokedAt = %v, RevokedWhy = %q", s.RevokedAt, s.RevokedWhy)
		}
		clk.Advance(2 * time.Minute) // past shortSession's end and token-expires' expiry

		for _, c := range []struct {
			hash, session, why string
		}{
			{"revoked", revoked.ID, "revoked session"},
			{"session-expires", shortSession.ID, "expired session"},
		} {
			ok, err := db.UseRefreshToken(ctx, db, c.hash, 0)
			if err != nil || ok {
				t.Errorf("UseRefreshToken in a %s = %v, %v; want false", c.why, ok, err)
			}
			_, err = db.GetSessionUser(ctx, db, c.session, u.ID)
			wantNotFound(t, "GetSessionUser of a "+c.why, err)
			_, err = db.GetSessionAuth(ctx, db, c.session, u.ID)
			wantNotFound(t, "GetSessionAuth of a "+c.why, err)
		}
		ok, err := db.UseRefreshToken(ctx, db, "token-expires", 0)
		if err != nil || ok {
			t.Errorf("UseRefreshToken of an expired token = %v, %v; want false", ok, err)
		}
		ok, err = db.UseRefreshToken(ctx, db, "fine", 0)
		if err != nil || !ok {
			t.Errorf("UseRefreshToken of a live token in a live session = %v, %v; want true", ok, err)
		}

		// Suspension: every live session of the user ends at once.
		second := MustCreateSession(t, db, u.ID, time.Hour)
		bobs := MustCreateSession(t, db, other.ID, time.Hour)
		if err := db.RevokeUserSessions(ctx, db, u.ID, "suspended"); err != nil {
			t.Fatalf("RevokeUserSessions: %v", err)
		}
		for _, id := range []string{live.ID, second.ID} {
			_, err = db.GetSessionUser(ctx, db, id, u.ID)
			wantNotFound(t, "GetSessionUser after RevokeUserSessions", err)
		}
		if _, err := db.GetSessionUser(ctx, db, bobs.ID, other.ID); err != nil {
			t.Fatalf("another user's session after RevokeUserSessions: %v", err)
		}
		// Revoking keeps the first reason.
		if err := db.RevokeSession(ctx, db, revoked.ID, "again"); err != nil {
			t.Fatal(err)
		}
		if s, err := db.GetSession(ctx, db, revoked.ID); err != nil || s.RevokedWhy != "test" {
			t.Fatalf("revoking twice: RevokedWhy = %q, %v; want the first reason", s.RevokedWhy, err)
		}
	})
}

func TestUseEmailVerification_SingleUseExpiringAndInvalidated(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		ctx := context.Background()
		clk := useClock(db)
		u := MustCreateUser(t, db, "alice")

		t.Run("single use", func(t *testing.T) {
			MustCreateEmailVerification(t, db, u.ID, "once", time.Hour)
			got, err := db.UseEmailVerification(ctx, db, "once")
			if err != nil || got != u.ID {
				t.Fatalf("first use = %q, %v; want %q", got, err, u.ID)
			}
			_, err = db.UseEmailVerification(ctx, db, "once")
			wantNotFound(t, "second use", err)
			_, err = db.UseEmailVerification(ctx, db, "unknown")
			wantNotFound(t, "unknown token", err)
		})

		t.Run("concurrent uses: one wins", func(t *testing.T) {
			MustCreateEmailVerification(t, db, u.ID, "race", time.Hour)
			const n = 12
			var wins atomic.Int32
			var wg sync.WaitGroup
			start := make(chan struct{})
			for range n {
				wg.Go(func() {
					<-start
					id, err := db.UseEmailVerification(ctx, db, "race")
					switch {
					case err == nil && id == u.ID:
						wins.Add(1)
					case !store.IsNotFound(err):
						t.Errorf("concurrent UseEmailVerification: %q, %v", id, err)
					}
				})
			}
			close(start)
			wg.Wait()
			if got := wins.Load(); got != 1 {
				t.Fatalf("%d of %d concurrent uses succeeded, want 1", got, n)
			}
		})

		t.Run("expires", func(t *testing.T) {
			MustCreateEmailVerification(t, db, u.ID, "short", time.Minute)
			clk.Advance(time.Minute) // expires_at > now no longer holds at the instant of expiry
			_, err := db.UseEmailVerification(ctx, db, "short")
			wantNotFound(t, "expired token", err)
		})

		t.Run("invalidated", func(t *testing.T) {
			MustCreateEmailVerification(t, db, u.ID, "old-1", time.Hour)
			MustCreateEmailVerification(t, db, u.ID, "old-2", time.Hour)
			bob := MustCreateUser(t, db, "bob")
			MustCreateEmailVerification(t, db, bob.ID, "bobs", time.Hour)
			if err := db.InvalidateEmailVerifications(ctx, db, u.ID); err != nil {
				t.Fatalf("InvalidateEmailVerifications: %v", err)
			}
			MustCreateEmailVerification(t, db, u.ID, "new", time.Hour)
			for _, h := range []string{"old-1", "old-2"} {
				_, err := db.UseEmailVerification(ctx, db, h)
				wantNotFound(t, "token issued before InvalidateEmailVerifications", err)
			}
			if got, err := db.UseEmailVerification(ctx, db, "new"); err != nil || got != u.ID {
				t.Fatalf("token issued after invalidation = %q, %v; want %q", got, err, u.ID)
			}
			if got, err := db.UseEmailVerification(ctx, db, "bobs"); err != nil || got != bob.ID {
				t.Fatalf("another user's token after invalidation = %q, %v; want %q", got, err, bob.ID)
			}
		})
	})
}

func TestNewID_SortsInCreationOrderAndIsUnique(t *testing.T) {
	t.Parallel()
	const n = 5000
	ids := make([]string, n)
	for i := range ids {
		ids[i] = store.NewID()
		if i > 0 && ids[i] <= ids[i-1] {
			t.Fatalf("ID %d %q does not sort after ID %d %q", i, ids[i], i-1, ids[i-1])
		}
		if len(ids[i]) != 26 {
			t.Fatalf("ID %q is %d characters, want 26", ids[i], len(ids[i]))
		}
	}
	// IDs made later, after a pause, sort after all of them.
	time.Sleep(2 * time.Millisecond)
	if later := store.NewID(); later <= ids[n-1] {
		t.Fatalf("ID %q made later sorts before %q", later, ids[n-1])
	}

	const goroutines, each = 8, 2000
	var mu sync.Mutex
	seen := make(map[string]bool, goroutines*each)
	var wg sync.WaitGroup
	for range goroutines {
		wg.Go(func() {
			local := make([]string, each)
			for i := range local {
				local[i] = store.NewID()
			}
			if !slices.IsSorted(local) {
				t.Error("IDs made one after another in one goroutine are not sorted")
			}
			mu.Lock()
			defer mu.Unlock()
			for _, id := range local {
				if seen[id] {
					t.Errorf("duplicate ID %q", id)
				}
				seen[id] = true
			}
		})
	}
	wg.Wait()
}
