package account_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/flock-social/flock"
	"github.com/flock-social/flock/internal/account"
)

// The refresh reuse grace (security.md property 8): two tabs refreshing one
// token at once stay signed in; reuse after the grace still revokes the
// family.

const testGrace = 30 * time.Second

func withGrace(d time.Duration) func(*account.Config) {
	return func(c *account.Config) { c.RefreshReuseGrace = d }
}

func TestRefresh_ConcurrentRefreshesWithinTheGraceAllSucceed_P8(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		e.MustVerifiedUser(t, "alice")
		pair := e.MustLogin(t, "alice", password)
		session := e.MustAuthenticate(t, pair.AccessToken).SessionID

		const n = 6
		var (
			wg    sync.WaitGroup
			start = make(chan struct{})
			pairs = make([]*account.TokenPair, n)
			errs  = make([]error, n)
		)
		for i := range n {
			wg.Go(func() {
				<-start
				pairs[i], errs[i] = e.svc.Refresh(ctx, pair.RefreshToken)
			})
		}
		close(start)
		wg.Wait()
		seen := map[string]bool{pair.RefreshToken: true}
		for i, err := range errs {
			if err != nil {
				t.Fatalf("concurrent refresh %d of %d within the grace: %v", i+1, n, err)
			}
			if seen[pairs[i].RefreshToken] {
				t.Fatalf("refresh %d returned a refresh token already handed out", i+1)
			}
			seen[pairs[i].RefreshToken] = true
		}
		// Every caller goes on in the same session with its own token: the
		// access tokens work, and each refresh token rotates once more.
		for i, p := range pairs {
			if got := e.MustAuthenticate(t, p.AccessToken).SessionID; got != session {
				t.Fatalf("refresh %d: access token in session %s, want %s", i+1, got, session)
			}
			next, err := e.svc.Refresh(ctx, p.RefreshToken)
			if err != nil {
				t.Fatalf("refresh %d: rotating its refresh token: %v", i+1, err)
			}
			e.MustAuthenticate(t, next.AccessToken)
		}
	}, withGrace(testGrace))
}

func TestRefresh_ReuseAfterTheGraceRevokesTheFamily_P8(t *testing.T) {
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
		// A second tab presents the rotated token 20 s later: a pair of its own.
		e.clock.Advance(20 * time.Second)
		inGrace, err := e.svc.Refresh(ctx, first.RefreshToken)
		if err != nil {
			t.Fatalf("Refresh with the rotated token within the grace: %v", err)
		}
		if inGrace.RefreshToken == second.RefreshToken {
			t.Fatal("two refreshes of one token returned the same refresh token")
		}
		if got := e.MustAuthenticate(t, inGrace.AccessToken).SessionID; got != session {
			t.Fatalf("the pair issued in the grace is in session %s, want %s", got, session)
		}
		// 35 s after the rotation the grace, counted from the first use, is
		// over: the same token now revokes the whole family.
		e.clock.Advance(15 * time.Second)
		_, err = e.svc.Refresh(ctx, first.RefreshToken)
		wantCode(t, "Refresh with the rotated token after the grace", err, flock.EUNAUTHORIZED)
		for name, refresh := range map[string]string{"successor": second.RefreshToken, "grace": inGrace.RefreshToken} {
			_, err := e.svc.Refresh(ctx, refresh)
			wantCode(t, "Refresh with the "+name+" token after reuse", err, flock.EUNAUTHORIZED)
		}
		for name, access := range map[string]string{"first": first.AccessToken, "successor": second.AccessToken, "grace": inGrace.AccessToken} {
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
	}, withGrace(testGrace))
}

func TestRefresh_WithinTheGraceAfterTheSessionEndedFails_P8(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		u := e.MustVerifiedUser(t, "alice")

		t.Run("logout with the successor", func(t *testing.T) {
			first := e.MustLogin(t, "alice", password)
			second, err := e.svc.Refresh(ctx, first.RefreshToken)
			if err != nil {
				t.Fatalf("Refresh: %v", err)
			}
			if err := e.svc.Logout(ctx, second.RefreshToken); err != nil {
				t.Fatalf("Logout: %v", err)
			}
			_, err = e.svc.Refresh(ctx, first.RefreshToken)
			wantCode(t, "Refresh with the rotated token within the grace after logout", err, flock.EUNAUTHORIZED)
		})
		t.Run("logout with the rotated token", func(t *testing.T) {
			first := e.MustLogin(t, "alice", password)
			second, err := e.svc.Refresh(ctx, first.RefreshToken)
			if err != nil {
				t.Fatalf("Refresh: %v", err)
			}
			if err := e.svc.Logout(ctx, first.RefreshToken); err != nil {
				t.Fatalf("Logout: %v", err)
			}
			for name, tok := range map[string]string{"rotated": first.RefreshToken, "successor": second.RefreshToken} {
				_, err = e.svc.Refresh(ctx, tok)
				wantCode(t, "Refresh with the "+name+" token within the grace after logout", err, flock.EUNAUTHORIZED)
			}
			_, err = e.svc.Authenticate(ctx, second.AccessToken)
			wantCode(t, "Authenticate after logout", err, flock.EUNAUTHORIZED)
		})
		t.Run("suspension", func(t *testing.T) {
			first := e.MustLogin(t, "alice", password)
			if _, err := e.svc.Refresh(ctx, first.RefreshToken); err != nil {
				t.Fatalf("Refresh: %v", err)
			}
			if err := e.db.RevokeUserSessions(ctx, e.db, u.ID, "suspended"); err != nil {
				t.Fatal(err)
			}
			_, err := e.svc.Refresh(ctx, first.RefreshToken)
			wantCode(t, "Refresh with the rotated token within the grace after suspension", err, flock.EUNAUTHORIZED)
		})
	}, withGrace(testGrace))
}
