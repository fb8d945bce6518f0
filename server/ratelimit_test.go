package server_test

import (
	"errors"
	"net/http"
	"strconv"
	"testing"

	"connectrpc.com/connect"

	flockv1 "github.com/flock-social/flock/gen/go/flock/v1"
	"github.com/flock-social/flock/gen/go/flock/v1/flockv1connect"
	tu "github.com/flock-social/flock/internal/testutil"
	"github.com/flock-social/flock/server"
)

func withRateLimits(c *server.Config) { c.RateLimits = true }

// P12: login is limited per account (5 a minute) and answers 429 with
// Retry-After on every transport; another account still gets in.
func TestRateLimits_LoginPerAccount429_P12(t *testing.T) {
	t.Parallel()
	for _, tr := range tu.Transports {
		t.Run(string(tr), func(t *testing.T) {
			t.Parallel()
			s := tu.MustServer(t, "sqlite", withRateLimits) // one server each: the IP budget is per server
			victim, other := s.MustAccount(t, "victim"), s.MustAccount(t, "other")
			login := func(username, password string) error {
				_, err := tu.Call[flockv1.LoginResponse](t.Context(), s, tr, flockv1connect.UserServiceLoginProcedure, "",
					&flockv1.LoginRequest{Identifier: &flockv1.LoginRequest_Username{Username: username}, Password: password})
				return err
			}
			// MustAccount logged each in once; four more wrong guesses use up the five.
			for range 4 {
				wantCode(t, login("VICTIM", "wrong guess"), connect.CodeUnauthenticated)
			}
			err := login("victim", victim.Password)
			wantCode(t, err, connect.CodeResourceExhausted)
			var ce *connect.Error
			if tr != tu.REST && (!errors.As(err, &ce) || ce.Meta().Get("Retry-After") == "") {
				t.Errorf("no Retry-After on the refusal: %v", err)
			}
			if err := login("other", other.Password); err != nil {
				t.Errorf("another account is limited too: %v", err)
			}
		})
	}
}

// P12 over REST: 429, Retry-After and RateLimit-* headers, google.rpc.Status body.
func TestRateLimits_RESTHeaders_P12(t *testing.T) {
	t.Parallel()
	s := tu.MustServer(t, "sqlite", withRateLimits)
	s.MustAccount(t, "limited")
	var res *http.Response
	var body map[string]any
	for range 5 {
		res, body = rawJSON(t, s, http.MethodPost, "/api/users/login/", "", `{"username":"limited","password":"wrong password"}`)
	}
	if res.StatusCode != http.StatusTooManyRequests || body["code"] != float64(8) {
		t.Fatalf("sixth login = %d %v, want 429", res.StatusCode, body)
	}
	if n, err := strconv.Atoi(res.Header.Get("Retry-After")); err != nil || n < 1 {
		t.Errorf("Retry-After = %q", res.Header.Get("Retry-After"))
	}
	for _, h := range []string{"RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"} {
		if res.Header.Get(h) == "" {
			t.Errorf("no %s header: %v", h, res.Header)
		}
	}
	// Answers that pass carry the headers too.
	a := s.MustAccount(t, "poster")
	res, _ = rawJSON(t, s, http.MethodPost, "/api/posts/", a.AccessToken, `{"content":"counted"}`)
	if res.StatusCode != http.StatusOK || res.Header.Get("RateLimit-Remaining") == "" {
		t.Errorf("create post = %d, headers %v", res.StatusCode, res.Header)
	}
}

// With FLOCK_RATE_LIMITS=off nothing is limited (load tests, harnesses).
func TestRateLimits_Off(t *testing.T) {
	t.Parallel()
	s := tu.MustServer(t, "sqlite")
	s.MustAccount(t, "free")
	for range 8 {
		res, _ := rawJSON(t, s, http.MethodPost, "/api/users/login/", "", `{"username":"free","password":"wrong password"}`)
		if res.StatusCode != http.StatusUnauthorized {
			t.Fatalf("login with limits off = %d", res.StatusCode)
		}
	}
}
