package gotest

import (
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"

	client "github.com/flock-social/flock/client/go"
	flockv1 "github.com/flock-social/flock/gen/go/flock/v1"
	"github.com/flock-social/flock/gen/go/flock/v1/flockv1connect"
	tu "github.com/flock-social/flock/internal/testutil"
	"github.com/flock-social/flock/server"
)

// serverClock is the clock of a test's server: the real time, or behind
// it by a set amount.
type serverClock struct{ behind atomic.Int64 }

func (c *serverClock) now() time.Time { return time.Now().Add(-time.Duration(c.behind.Load())) }

func (c *serverClock) configure(cfg *server.Config) { cfg.Now = c.now }

// loginExpired logs c in as a with an access token that has already
// expired: the server issues it with its clock an hour behind (access
// tokens live 15 minutes), then its clock is set right. Every token issued
// after that lives 15 minutes, so no refresh happens but those the test
// brings about, however slow the machine. Call it before t.Parallel: the
// clock is the whole server's.
func loginExpired(t *testing.T, clk *serverClock, c *client.Client, a *tu.Account) {
	t.Helper()
	clk.behind.Store(int64(time.Hour))
	defer clk.behind.Store(0)
	if _, err := c.Login(t.Context(), a.Username, a.Password); err != nil {
		t.Fatal(err)
	}
}

// getMe calls GetMe through c and fails the test on error.
func getMe(t *testing.T, c *client.Client) *flockv1.User {
	t.Helper()
	res, err := c.Users.GetMe(t.Context(), connect.NewRequest(&flockv1.GetMeRequest{}))
	if err != nil {
		t.Fatalf("GetMe: %v", err)
	}
	return res.Msg.GetUser()
}

// mustRefused fails the test unless the server refuses token for GetMe.
func mustRefused(t *testing.T, s *tu.Server, token string) {
	t.Helper()
	_, err := tu.Call[flockv1.GetMeResponse](t.Context(), s, tu.Connect, flockv1connect.UserServiceGetMeProcedure, token, &flockv1.GetMeRequest{})
	mustRPCCode(t, err, connect.CodeUnauthenticated)
}

// A call after the access token expired succeeds: the Client refreshes
// first, keeps the rotated pair and hands it to OnTokens.
func TestClient_RefreshesExpiredAccessToken(t *testing.T) {
	t.Parallel()
	clk := &serverClock{}
	s := tu.MustServer(t, "sqlite", clk.configure)
	for _, p := range protocols(s) {
		t.Run(p.name, func(t *testing.T) {
			a := s.MustAccount(t, "expiring_"+p.name)
			c := client.New(s.URL, p.opts...)
			loginExpired(t, clk, c, a)
			t.Parallel()
			oldAccess, oldRefresh := c.Tokens()
			var log tokenLog
			c.OnTokens(log.record)

			mustRefused(t, s, oldAccess) // the server's own verdict
			if me := getMe(t, c); me.GetId() != a.ID {
				t.Fatalf("GetMe after expiry = %v", me)
			}
			access, refresh := c.Tokens()
			if access == oldAccess || refresh == oldRefresh || access == "" || refresh == "" {
				t.Fatalf("tokens not rotated: %q, %q", access, refresh)
			}
			if got := log.get(); len(got) != 1 || got[0] != [2]string{access, refresh} {
				t.Fatalf("OnTokens got %d pairs, want the new pair once", len(got))
			}
		})
	}
}

// An access token the server refuses (here one that is no JWT, so the
// Client cannot see it expire) is refreshed and the call retried once; a
// Client with only a refresh token refreshes before its first call.
func TestClient_RefreshesRefusedAccessToken(t *testing.T) {
	t.Parallel()
	s := tu.MustServer(t, "sqlite")
	for _, tc := range []struct {
		name, user string
		access     string
	}{
		{"refused token", "refused_bad", "not-a-jwt"},
		{"no access token", "refused_empty", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a := s.MustAccount(t, tc.user)
			c := client.New(s.URL, client.WithHTTPClient(s.HTTP), client.WithTokens(tc.access, a.RefreshToken))
			var log tokenLog
			c.OnTokens(log.record)
			if me := getMe(t, c); me.GetId() != a.ID {
				t.Fatalf("GetMe = %v", me)
			}
			access, refresh := c.Tokens()
			if access == tc.access || refresh == a.RefreshToken {
				t.Fatalf("tokens not rotated")
			}
			if got := log.get(); len(got) != 1 || got[0] != [2]string{access, refresh} {
				t.Fatalf("OnTokens got %d pairs, want the new pair once", len(got))
			}
		})
	}
}

// Eight calls that all need a refresh at once share one: the old refresh
// token is presented once only. Were it presented twice, the server (with
// no grace for a reused refresh token) would revoke the session and the
// later checks would fail.
func TestClient_ConcurrentCallsShareOneRefresh(t *testing.T) {
	t.Parallel()
	clk := &serverClock{}
	s := tu.MustServer(t, "sqlite", clk.configure, func(c *server.Config) { c.RefreshReuseGrace = -1 })
	for _, tc := range []struct {
		name, user string
		start      func(t *testing.T, a *tu.Account) *client.Client
	}{
		{"expired token", "crowd_expired", func(t *testing.T, a *tu.Account) *client.Client {
			c := client.New(s.URL, client.WithHTTPClient(s.HTTP))
			loginExpired(t, clk, c, a)
			return c
		}},
		{"refused token", "crowd_refused", func(t *testing.T, a *tu.Account) *client.Client {
			return client.New(s.URL, client.WithHTTPClient(s.HTTP), client.WithTokens("not-a-jwt", a.RefreshToken))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := s.MustAccount(t, tc.user)
			c := tc.start(t, a)
			t.Parallel()
			_, oldRefresh := c.Tokens()
			var log tokenLog
			c.OnTokens(log.record)

			const n = 8
			var wg sync.WaitGroup
			errs := make([]error, n)
			start := make(chan struct{})
			for i := range n {
				wg.Go(func() {
					<-start
					_, errs[i] = c.Users.GetMe(t.Context(), connect.NewRequest(&flockv1.GetMeRequest{}))
				})
			}
			close(start)
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					t.Errorf("call %d: %v", i, err)
				}
			}
			if got := log.get(); len(got) != 1 {
				t.Fatalf("%d refreshes, want 1", len(got))
			}
			access, refresh := c.Tokens()
			if refresh == oldRefresh {
				t.Fatal("refresh token not rotated")
			}
			// The session lives on: its new tokens work and refresh again.
			if err := c.Refresh(t.Context()); err != nil {
				t.Fatalf("a later refresh: %v", err)
			}
			if next, _ := c.Tokens(); next == access {
				t.Fatal("Refresh kept the access token")
			}
			if me := getMe(t, c); me.GetId() != a.ID {
				t.Fatalf("GetMe = %v", me)
			}
			if got := log.get(); len(got) != 2 {
				t.Fatalf("OnTokens got %d pairs after the explicit refresh, want 2", len(got))
			}
		})
	}
}

// A refresh token the server refuses ends the session: the call fails as
// unauthenticated, and the Client forgets its tokens and tells OnTokens.
func TestClient_RefusedRefreshEndsSession(t *testing.T) {
	t.Parallel()
	s := tu.MustServer(t, "sqlite")
	a := s.MustAccount(t, "revoked")
	c := client.New(s.URL, client.WithHTTPClient(s.HTTP), client.WithTokens("not-a-jwt", "not-a-refresh-token"))
	var log tokenLog
	c.OnTokens(log.record)
	_, err := c.Users.GetMe(t.Context(), connect.NewRequest(&flockv1.GetMeRequest{}))
	mustRPCCode(t, err, connect.CodeUnauthenticated)
	if access, refresh := c.Tokens(); access != "" || refresh != "" {
		t.Errorf("Tokens() = %q, %q; want none", access, refresh)
	}
	if got := log.get(); len(got) != 1 || got[0] != [2]string{} {
		t.Errorf("OnTokens got %v, want one empty pair", got)
	}
	// Logging in again starts over.
	if _, err := c.Login(t.Context(), a.Username, a.Password); err != nil {
		t.Fatal(err)
	}
	getMe(t, c)
}

// A call that the server refused with the old token, but whose answer
// arrives after another call already refreshed, is retried with the new
// token without a second refresh.
func TestClient_LateRefusalUsesTheNewToken(t *testing.T) {
	t.Parallel()
	s := tu.MustServer(t, "sqlite")
	a := s.MustAccount(t, "late")
	transport := &http.Transport{}
	t.Cleanup(transport.CloseIdleConnections)
	refused := make(chan struct{})   // the slow call's refusal came back
	refreshed := make(chan struct{}) // the other call refreshed
	var slow atomic.Bool
	hc := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		res, err := transport.RoundTrip(r)
		if r.Header.Get("Authorization") == "Bearer not-a-jwt" && slow.CompareAndSwap(false, true) {
			close(refused)
			<-refreshed
		}
		return res, err
	})}
	c := client.New(s.URL, client.WithHTTPClient(hc), client.WithTokens("not-a-jwt", a.RefreshToken))
	var log tokenLog
	var once sync.Once
	c.OnTokens(func(access, refresh string) {
		log.record(access, refresh)
		once.Do(func() { close(refreshed) })
	})

	slowDone := make(chan error, 1)
	go func() {
		_, err := c.Users.GetMe(t.Context(), connect.NewRequest(&flockv1.GetMeRequest{}))
		slowDone <- err
	}()
	<-refused
	getMe(t, c) // refused too, refreshes, retries
	if err := <-slowDone; err != nil {
		t.Fatalf("the slow call: %v", err)
	}
	if got := log.get(); len(got) != 1 {
		t.Fatalf("%d refreshes, want 1", len(got))
	}
}
