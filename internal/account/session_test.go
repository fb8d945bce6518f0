package account_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/flock-social/flock"
)

// Sessions: login, refresh rotation with reuse detection, logout and
// authentication of access tokens (security.md properties 7 and 8).

func TestAuthenticate_AccessTokenOfALiveSession_P7(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		u := e.MustVerifiedUser(t, "alice")
		pair := e.MustLogin(t, "alice", password)
		if pair.AccessToken == "" || pair.RefreshToken == "" || pair.ExpiresIn != 15*time.Minute || pair.User.ID != u.ID {
			t.Fatalf("Login = %+v", pair)
		}
		p := e.MustAuthenticate(t, pair.AccessToken)
		if p.UserID != u.ID || p.SessionID == "" || p.IsStaff() {
			t.Fatalf("principal = %+v, want member alice", p)
		}

		_, err := e.svc.Authenticate(ctx, pair.RefreshToken)
		wantCode(t, "Authenticate with a refresh token", err, flock.EUNAUTHORIZED)
		_, err = e.svc.Refresh(ctx, pair.AccessToken)
		wantCode(t, "Refresh with an access token", err, flock.EUNAUTHORIZED)

		e.clock.Advance(16 * time.Minute)
		_, err = e.svc.Authenticate(ctx, pair.AccessToken)
		wantCode(t, "Authenticate with an expired access token", err, flock.EUNAUTHORIZED)
		// The refresh token still works and gives a fresh access token.
		next, err := e.svc.Refresh(ctx, pair.RefreshToken)
		if err != nil {
			t.Fatalf("Refresh after the access token expired: %v", err)
		}
		if p2 := e.MustAuthenticate(t, next.AccessToken); p2.SessionID != p.SessionID {
			t.Fatalf("refreshed token is in session %s, want %s", p2.SessionID, p.SessionID)
		}
	})
}

func TestRefresh_RotatesAndReuseRevokesTheFamily_P8(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		e.MustVerifiedUser(t, "alice")
		first := e.MustLogin(t, "alice", password)
		session := e.MustAuthenticate(t, first.AccessToken).SessionID

		second, err := e.svc.Refresh(ctx, first.RefreshToken)
		if err != nil {
			t.Fatalf("Refresh: %v", err)
		}
		if second.RefreshToken == first.RefreshToken || second.AccessToken == first.AccessToken {
			t.Fatal("Refresh returned the same tokens")
		}
		if got := e.MustAuthenticate(t, second.AccessToken).SessionID; got != session {
			t.Fatalf("rotated access token is in session %s, want %s", got, session)
		}

		// The rotated token is refused, and presenting it again revokes
		// the whole family: the newest refresh token and every access token.
		_, err = e.svc.Refresh(ctx, first.RefreshToken)
		wantCode(t, "Refresh with a rotated token", err, flock.EUNAUTHORIZED)
		_, err = e.svc.Refresh(ctx, second.RefreshToken)
		wantCode(t, "Refresh with the newest token after reuse", err, flock.EUNAUTHORIZED)
		for name, access := range map[string]string{"first": first.AccessToken, "second": second.AccessToken} {
			_, err := e.svc.Authenticate(ctx, access)
			wantCode(t, "Authenticate with the "+name+" access token after reuse", err, flock.EUNAUTHORIZED)
		}
		s, err := e.db.GetSession(ctx, e.db, session)
		if err != nil {
			t.Fatal(err)
		}
		if s.RevokedAt == nil || s.RevokedWhy != "refresh token reused" {
			t.Fatalf("session after reuse: RevokedAt %v, RevokedWhy %q", s.RevokedAt, s.RevokedWhy)
		}

		// The account is not locked out: a new login starts a new family.
		again := e.MustLogin(t, "alice", password)
		if got := e.MustAuthenticate(t, again.AccessToken).SessionID; got == session {
			t.Fatal("a new login reused the revoked session")
		}
	})
}

func TestRefresh_ConcurrentRefreshesDoNotBothSucceed_P8(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		e.MustVerifiedUser(t, "alice")
		pair := e.MustLogin(t, "alice", password)

		const n = 6
		var (
			wg      sync.WaitGroup
			start   = make(chan struct{})
			results = make(chan error, n)
		)
		for range n {
			wg.Go(func() {
				<-start
				_, err := e.svc.Refresh(ctx, pair.RefreshToken)
				results <- err
			})
		}
		close(start)
		wg.Wait()
		close(results)
		wins := 0
		for err := range results {
			switch {
			case err == nil:
				wins++
			case !isCode(err, flock.EUNAUTHORIZED):
				t.Errorf("a losing concurrent Refresh failed with %v, want unauthenticated", err)
			}
		}
		if wins != 1 {
			t.Fatalf("%d of %d concurrent refreshes of one token succeeded, want exactly 1", wins, n)
		}
	})
}

func TestLogout_EndsThatSessionOnly_P8(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		e.MustVerifiedUser(t, "alice")
		laptop := e.MustLogin(t, "alice", password)
		phone := e.MustLogin(t, "alice@example.com", password)

		if err := e.svc.Logout(ctx, laptop.RefreshToken); err != nil {
			t.Fatalf("Logout: %v", err)
		}
		_, err := e.svc.Refresh(ctx, laptop.RefreshToken)
		wantCode(t, "Refresh after logout", err, flock.EUNAUTHORIZED)
		_, err = e.svc.Authenticate(ctx, laptop.AccessToken)
		wantCode(t, "Authenticate after logout", err, flock.EUNAUTHORIZED)

		e.MustAuthenticate(t, phone.AccessToken)
		if _, err := e.svc.Refresh(ctx, phone.RefreshToken); err != nil {
			t.Fatalf("the other session's Refresh after logout: %v", err)
		}
		// Logging out twice, or with a token nobody issued, is not an error.
		for _, tok := range []string{laptop.RefreshToken, "never-issued"} {
			if err := e.svc.Logout(ctx, tok); err != nil {
				t.Fatalf("Logout(%q): %v", tok, err)
			}
		}
	})
}

func TestSuspendedAccount_CannotLoginRefreshOrAuthenticate_P5(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		u := e.MustVerifiedUser(t, "alice")
		pair := e.MustLogin(t, "alice", password)
		if _, err := e.db.NewUpdate().Table("users").Set("suspended_at = ?", e.clock.Now()).Where("id = ?", u.ID).Exec(ctx); err != nil {
			t.Fatal(err)
		}
		_, err := e.svc.Authenticate(ctx, pair.AccessToken)
		wantCode(t, "Authenticate of a suspended account", err, flock.EUNAUTHORIZED)
		_, err = e.svc.Refresh(ctx, pair.RefreshToken)
		wantCode(t, "Refresh of a suspended account", err, flock.EFORBIDDEN)
		_, err = e.svc.Login(ctx, "alice", password)
		wantCode(t, "Login of a suspended account", err, flock.EFORBIDDEN)
		// Suspension is told only to whoever knows the password.
		_, err = e.svc.Login(ctx, "alice", "wrong password!")
		wantCode(t, "Login of a suspended account with a wrong password", err, flock.EUNAUTHORIZED)
	})
}

func TestPromote_TakesEffectOnTheNextRequest(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		e.MustVerifiedUser(t, "alice")
		pair := e.MustLogin(t, "alice", password)
		if e.MustAuthenticate(t, pair.AccessToken).IsStaff() {
			t.Fatal("a new account is staff")
		}
		u, err := e.svc.Promote(ctx, "ALICE")
		if err != nil {
			t.Fatalf("Promote: %v", err)
		}
		if u.Role != "staff" {
			t.Fatalf("Promote returned role %q", u.Role)
		}
		if !e.MustAuthenticate(t, pair.AccessToken).IsStaff() {
			t.Fatal("an access token issued before the promotion does not see it")
		}
		_, err = e.svc.Promote(ctx, "nobody")
		wantCode(t, "Promote of an unknown user", err, flock.ENOTFOUND)
	})
}
