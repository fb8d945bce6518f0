package server_test

import (
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"

	flockv1 "github.com/flock-social/flock/gen/go/flock/v1"
	"github.com/flock-social/flock/gen/go/flock/v1/flockv1connect"
	tu "github.com/flock-social/flock/internal/testutil"
	"github.com/flock-social/flock/server"
)

// The refresh reuse grace of security.md property 8, on every transport and
// engine: two tabs refreshing one token at once both stay signed in, and a
// rotated token presented after the grace still revokes its whole family.

// offsetClock is the real time moved forward by Advance; the server reads it
// through server.Config.Now, so tests pass the grace without sleeping.
type offsetClock struct{ offset atomic.Int64 }

func (c *offsetClock) Now() time.Time           { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *offsetClock) Advance(by time.Duration) { c.offset.Add(int64(by)) }

func refreshCall(t *testing.T, s *tu.Server, tr tu.Transport, refreshToken string) (*flockv1.RefreshTokenResponse, error) {
	t.Helper()
	return tu.Call[flockv1.RefreshTokenResponse](t.Context(), s, tr, flockv1connect.UserServiceRefreshTokenProcedure, "",
		&flockv1.RefreshTokenRequest{RefreshToken: refreshToken})
}

func getMe(t *testing.T, s *tu.Server, tr tu.Transport, access string) error {
	t.Helper()
	_, err := tu.Call[flockv1.GetMeResponse](t.Context(), s, tr, flockv1connect.UserServiceGetMeProcedure, access, &flockv1.GetMeRequest{})
	return err
}

func TestRefresh_TwoTabsAtOnceBothStaySignedIn_P8(t *testing.T) {
	t.Parallel()
	// The default configuration: a 30 s grace.
	forEachServer(t, func(t *testing.T, s *tu.Server) {
		for _, tr := range tu.Transports {
			t.Run(string(tr), func(t *testing.T) {
				t.Parallel()
				a := s.MustAccount(t, "tabs_"+string(tr))
				const tabs = 3
				var (
					wg    sync.WaitGroup
					start = make(chan struct{})
					res   = make([]*flockv1.RefreshTokenResponse, tabs)
					errs  = make([]error, tabs)
				)
				for i := range tabs {
					wg.Go(func() {
						<-start
						res[i], errs[i] = refreshCall(t, s, tr, a.RefreshToken)
					})
				}
				close(start)
				wg.Wait()
				for i := range tabs {
					if errs[i] != nil {
						t.Fatalf("tab %d of %d refreshing the same token at once: %v", i+1, tabs, errs[i])
					}
				}
				// Every tab is signed in, in the one session, and keeps
				// rotating its own refresh token.
				for i, r := range res {
					if err := getMe(t, s, tr, r.GetAccessToken()); err != nil {
						t.Fatalf("tab %d: GetMe with its refreshed access token: %v", i+1, err)
					}
					next, err := refreshCall(t, s, tr, r.GetRefreshToken())
					if err != nil {
						t.Fatalf("tab %d: rotating its refresh token again: %v", i+1, err)
					}
					if err := getMe(t, s, tr, next.GetAccessToken()); err != nil {
						t.Fatalf("tab %d: GetMe after its second refresh: %v", i+1, err)
					}
				}
				if err := getMe(t, s, tr, a.AccessToken); err != nil {
					t.Fatalf("the login's own access token after the refreshes: %v", err)
				}
			})
		}
	})
}

func TestRefresh_ReuseAfterTheGraceRevokesTheFamily_P8(t *testing.T) {
	t.Parallel()
	for _, engine := range tu.Engines(t) {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			clock := new(offsetClock)
			s := tu.MustServer(t, engine, func(c *server.Config) {
				c.RefreshReuseGrace = 30 * time.Second
				c.Now = clock.Now
			})
			// One transport after another: they share the clock.
			for _, tr := range tu.Transports {
				t.Run(string(tr), func(t *testing.T) {
					a := s.MustAccount(t, "late_"+string(tr))
					successor, err := refreshCall(t, s, tr, a.RefreshToken)
					if err != nil {
						t.Fatalf("refresh: %v", err)
					}
					clock.Advance(20 * time.Second)
					inGrace, err := refreshCall(t, s, tr, a.RefreshToken)
					if err != nil {
						t.Fatalf("the rotated token 20 s after its rotation (within the grace): %v", err)
					}
					if inGrace.GetRefreshToken() == successor.GetRefreshToken() {
						t.Fatal("two refreshes of one token returned the same refresh token")
					}
					if err := getMe(t, s, tr, inGrace.GetAccessToken()); err != nil {
						t.Fatalf("GetMe with the pair issued in the grace: %v", err)
					}

					clock.Advance(15 * time.Second) // 35 s after the rotation
					// Refused, and told why: the reuse ended the session.
					const why = "one of its refresh tokens was used twice"
					_, err = refreshCall(t, s, tr, a.RefreshToken)
					if connect.CodeOf(err) != connect.CodeUnauthenticated || !strings.Contains(err.Error(), why) {
						t.Errorf("refresh with the reused token after the grace: %v, want unauthenticated saying %q", err, why)
					}
					for name, tok := range map[string]string{"successor": successor.GetRefreshToken(), "grace": inGrace.GetRefreshToken()} {
						if _, err := refreshCall(t, s, tr, tok); connect.CodeOf(err) != connect.CodeUnauthenticated || !strings.Contains(err.Error(), why) {
							t.Errorf("refresh with the %s token after the family was revoked: %v, want unauthenticated saying %q", name, err, why)
						}
					}
					for name, tok := range map[string]string{"login": a.AccessToken, "successor": successor.GetAccessToken(), "grace": inGrace.GetAccessToken()} {
						if err := getMe(t, s, tr, tok); connect.CodeOf(err) != connect.CodeUnauthenticated {
							t.Errorf("GetMe with the %s access token after the family was revoked: %v, want unauthenticated", name, err)
						}
					}
				})
			}
		})
	}
}

func TestRefresh_WithinTheGraceAfterLogoutFails_P8(t *testing.T) {
	t.Parallel()
	forEachServer(t, func(t *testing.T, s *tu.Server) {
		for _, tr := range tu.Transports {
			t.Run(string(tr), func(t *testing.T) {
				t.Parallel()
				a := s.MustAccount(t, "out_"+string(tr))
				successor, err := refreshCall(t, s, tr, a.RefreshToken)
				if err != nil {
					t.Fatalf("refresh: %v", err)
				}
				if _, err := tu.Call[flockv1.LogoutResponse](t.Context(), s, tr, flockv1connect.UserServiceLogoutProcedure, "",
					&flockv1.LogoutRequest{RefreshToken: successor.GetRefreshToken()}); err != nil {
					t.Fatalf("logout: %v", err)
				}
				// The other tab still holds the rotated token, within the grace.
				_, err = refreshCall(t, s, tr, a.RefreshToken)
				wantCode(t, err, connect.CodeUnauthenticated)
				err = getMe(t, s, tr, successor.GetAccessToken())
				wantCode(t, err, connect.CodeUnauthenticated)
			})
		}
	})
}
