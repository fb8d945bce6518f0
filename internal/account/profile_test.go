package account_test

import (
	"bytes"
	"context"
	"image"
	"image/color"
	"image/png"
	"slices"
	"strings"
	"testing"

	"github.com/flock-social/flock"
	"github.com/flock-social/flock/internal/account"
	"github.com/flock-social/flock/internal/store"
)

// pngImage returns a small PNG picture.
func pngImage(tb testing.TB, w, h int) []byte {
	tb.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for x := range w {
		for y := range h {
			img.Set(x, y, color.RGBA{uint8(x * 8), uint8(y * 8), 200, 255})
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

func TestUpdateMe_ChangesOnlyWhatIsGiven_P2(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		e.MustVerifiedUser(t, "alice")
		p := e.MustAuthenticate(t, e.MustLogin(t, "alice", password).AccessToken)
		before, err := e.svc.GetMe(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		// untouched fails the test if update changed anything but the
		// profile fields.
		untouched := func(step string, u *store.User) {
			t.Helper()
			if u.ID != before.ID || u.Username != before.Username || u.Email != before.Email ||
				u.PasswordHash != before.PasswordHash || u.Role != before.Role ||
				!u.EmailVerifiedAt.Equal(*before.EmailVerifiedAt) || u.SuspendedAt != nil ||
				u.FollowersCount != 0 || u.FollowingCount != 0 || u.PostsCount != 0 || !u.CreatedAt.Equal(before.CreatedAt) {
				t.Fatalf("%s changed account fields: %+v", step, u)
			}
		}
		str := func(s string) *string { return &s }

		u, err := e.svc.UpdateMe(ctx, p, account.ProfileUpdate{Bio: str("  birds and Go  ")})
		if err != nil {
			t.Fatalf("UpdateMe bio: %v", err)
		}
		if u.Bio != "birds and Go" || u.FullName != before.FullName || len(u.Interests) != 0 || u.AvatarKey != "" {
			t.Fatalf("after a bio-only update: %+v", u)
		}
		untouched("bio update", u)

		u, err = e.svc.UpdateMe(ctx, p, account.ProfileUpdate{Interests: &[]string{" #Go ", "go", "Birds", "GO"}})
		if err != nil {
			t.Fatalf("UpdateMe interests: %v", err)
		}
		if want := []string{"birds", "go"}; !slices.Equal(u.Interests, want) {
			t.Fatalf("interests = %q, want %q (lower-cased, without '#', deduplicated)", u.Interests, want)
		}
		if u.Bio != "birds and Go" || u.FullName != before.FullName {
			t.Fatalf("an interests update changed the profile: %+v", u)
		}
		untouched("interests update", u)

		avatar := pngImage(t, 32, 24)
		u, err = e.svc.UpdateMe(ctx, p, account.ProfileUpdate{Avatar: &avatar})
		if err != nil {
			t.Fatalf("UpdateMe avatar: %v", err)
		}
		key := u.AvatarKey
		if !strings.HasPrefix(key, "avatars/"+p.UserID+"/") || !strings.HasSuffix(key, ".jpg") {
			t.Fatalf("avatar key %q", key)
		}
		if ok, err := e.bucket.Exists(ctx, key); err != nil || !ok {
			t.Fatalf("avatar %s is not in the bucket: %v", key, err)
		}
		if u.Bio != "birds and Go" || !slices.Equal(u.Interests, []string{"birds", "go"}) {
			t.Fatalf("an avatar update changed the profile: %+v", u)
		}

		u, err = e.svc.UpdateMe(ctx, p, account.ProfileUpdate{FullName: str("Alice Liddell")})
		if err != nil {
			t.Fatal(err)
		}
		if u.FullName != "Alice Liddell" || u.AvatarKey != key || u.Bio != "birds and Go" || !slices.Equal(u.Interests, []string{"birds", "go"}) {
			t.Fatalf("after a name-only update: %+v", u)
		}
		untouched("name update", u)

		// An empty picture removes the avatar, and its object.
		u, err = e.svc.UpdateMe(ctx, p, account.ProfileUpdate{Avatar: &[]byte{}, Interests: &[]string{}})
		if err != nil {
			t.Fatal(err)
		}
		if u.AvatarKey != "" || len(u.Interests) != 0 || u.FullName != "Alice Liddell" {
			t.Fatalf("after removing the avatar and interests: %+v", u)
		}
		if ok, _ := e.bucket.Exists(ctx, key); ok {
			t.Fatalf("removed avatar %s is still in the bucket", key)
		}
	})
}

func TestUpdateMe_RefusesFieldsOutOfLimitsAndChangesNothing_P2(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		e.MustVerifiedUser(t, "alice")
		p := e.MustAuthenticate(t, e.MustLogin(t, "alice", password).AccessToken)
		str := func(s string) *string { return &s }
		many := make([]string, account.MaxInterests+1)
		for i := range many {
			many[i] = "topic" + string(rune('a'+i))
		}
		for _, tc := range []struct {
			name  string
			in    account.ProfileUpdate
			field string
		}{
			{"bio of 501 characters", account.ProfileUpdate{Bio: str(strings.Repeat("é", account.MaxBioLen+1))}, "bio"},
			{"name of 101 characters", account.ProfileUpdate{FullName: str(strings.Repeat("x", account.MaxFullNameLen+1))}, "full_name"},
			{"name with NUL", account.ProfileUpdate{FullName: str("a\x00b")}, "full_name"},
			{"21 interests", account.ProfileUpdate{Interests: &many}, "interests"},
			{"empty interest", account.ProfileUpdate{Interests: &[]string{"go", " # "}}, "interests"},
			{"interest of 51 characters", account.ProfileUpdate{Interests: &[]string{strings.Repeat("ü", account.MaxInterestLen+1)}}, "interests"},
			{"avatar that is not a picture", account.ProfileUpdate{Avatar: &[]byte{'h', 'e', 'l', 'l', 'o'}, Bio: str("changed")}, "avatar"},
		} {
			_, err := e.svc.UpdateMe(ctx, p, tc.in)
			wantCode(t, tc.name, err, flock.EINVALID)
			if fe := asFlockError(err); fe.Field != tc.field {
				t.Errorf("%s: field %q, want %q", tc.name, fe.Field, tc.field)
			}
		}
		u, err := e.svc.GetMe(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		if u.Bio != "" || u.FullName != "Test alice" || len(u.Interests) != 0 || u.AvatarKey != "" {
			t.Fatalf("refused updates changed the profile: %+v", u)
		}
		// The limits themselves are allowed, counted in characters.
		u, err = e.svc.UpdateMe(ctx, p, account.ProfileUpdate{
			Bio:       str(strings.Repeat("é", account.MaxBioLen)),
			Interests: &[]string{strings.Repeat("ü", account.MaxInterestLen)},
		})
		if err != nil {
			t.Fatalf("UpdateMe at the limits: %v", err)
		}
		if len([]rune(u.Bio)) != account.MaxBioLen || len(u.Interests) != 1 {
			t.Fatalf("at the limits: %+v", u)
		}
	})
}
