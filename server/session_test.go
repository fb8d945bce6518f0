package server_test

import (
	"context"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/uptrace/bun"

	flockv1 "github.com/flock-social/flock/gen/go/flock/v1"
	"github.com/flock-social/flock/gen/go/flock/v1/flockv1connect"
	"github.com/flock-social/flock/internal/store"
	tu "github.com/flock-social/flock/internal/testutil"
	"github.com/flock-social/flock/server"
)

// The session cache (internal/session): most requests authenticate without
// a query, and the end of a session or a suspension is refused on every
// instance as soon as the action has answered, not after the cache's TTL.

// sessionQueries counts the statements that read or change sessions.
type sessionQueries struct{ n atomic.Int64 }

func (c *sessionQueries) BeforeQuery(ctx context.Context, e *bun.QueryEvent) context.Context {
	if strings.Contains(e.Query, "sessions") {
		c.n.Add(1)
	}
	return ctx
}

func (c *sessionQueries) AfterQuery(context.Context, *bun.QueryEvent) {}

// twoInstances starts two servers on one Postgres schema and one Redis,
// with a session cache TTL far longer than the test, so that only the
// broker can explain a refusal.
func twoInstances(t *testing.T, configure ...func(*server.Config)) (one, two *tu.Server) {
	t.Helper()
	redis := tu.RedisURL(t)
	if !slices.Contains(tu.Engines(t), store.Postgres) {
		t.Skip("needs Postgres")
	}
	long := func(c *server.Config) {
		c.RedisURL = redis
		c.SessionCacheTTL = time.Hour
		c.RefreshReuseGrace = -1 // a rotated token presented again revokes at once
	}
	one = tu.MustServer(t, store.Postgres, append(slices.Clip(configure), long)...)
	two = tu.MustServer(t, store.Postgres, append(slices.Clip(configure), long, func(c *server.Config) { c.DatabaseURL = one.Config.DatabaseURL })...)
	return one, two
}

// P5 with several instances: a session ended on one instance (logout, or
// the reuse of a rotated refresh token) is refused on the other at once,
// although that instance had it cached, on every transport.
func TestSession_RevokedRefusedAtOnceOnEveryInstance_P5(t *testing.T) {
	t.Parallel()
	one, two := twoInstances(t)
	for _, tr := range tu.Transports {
		t.Run(string(tr), func(t *testing.T) {
			acc := one.MustAccount(t, "revoked_"+string(tr))
			for _, s := range []*tu.Server{one, two} {
				if err := getMe(t, s, tr, acc.AccessToken); err != nil {
					t.Fatalf("GetMe before logout: %v", err)
				}
			}
			tu.MustCall[flockv1.LogoutResponse](t, one, tr, flockv1connect.UserServiceLogoutProcedure, "", &flockv1.LogoutRequest{RefreshToken: acc.RefreshToken})
			for _, s := range []*tu.Server{two, one} {
				wantCode(t, getMe(t, s, tr, acc.AccessToken), connect.CodeUnauthenticated)
			}

			// A rotated refresh token presented again on instance two
			// revokes the session, which instance one has cached.
			login := tu.MustCall[flockv1.LoginResponse](t, one, tr, flockv1connect.UserServiceLoginProcedure, "",
				&flockv1.LoginRequest{Identifier: &flockv1.LoginRequest_Username{Username: acc.Username}, Password: acc.Password})
			next := tu.MustCall[flockv1.RefreshTokenResponse](t, one, tr, flockv1connect.UserServiceRefreshTokenProcedure, "", &flockv1.RefreshTokenRequest{RefreshToken: login.GetRefreshToken()})
			if err := getMe(t, one, tr, next.GetAccessToken()); err != nil {
				t.Fatalf("GetMe on the refreshed session: %v", err)
			}
			_, err := tu.Call[flockv1.RefreshTokenResponse](t.Context(), two, tr, flockv1connect.UserServiceRefreshTokenProcedure, "", &flockv1.RefreshTokenRequest{RefreshToken: login.GetRefreshToken()})
			wantCode(t, err, connect.CodeUnauthenticated)
			wantCode(t, getMe(t, one, tr, next.GetAccessToken()), connect.CodeUnauthenticated)
		})
	}
}

// P5 with several instances: suspending a user through a report on one
// instance refuses every session of theirs on the other at once.
func TestSession_SuspendedRefusedAtOnceOnEveryInstance_P5(t *testing.T) {
	t.Parallel()
	one, two := twoInstances(t)
	for _, tr := range tu.Transports {
		t.Run(string(tr), func(t *testing.T) {
			a := api{t: t, s: one, tr: tr}
			bad, reporter, mod := one.MustAccount(t, "csusp_"+string(tr)), one.MustAccount(t, "crep_"+string(tr)), one.MustAccount(t, "cmod_"+string(tr))
			mustStaff(t, one, mod)
			p := a.post(bad.AccessToken, "reported")
			if err := getMe(t, two, tr, bad.AccessToken); err != nil {
				t.Fatalf("GetMe on instance two before: %v", err)
			}
			r := a.mustReport(reporter.AccessToken, p.GetId(), flockv1.ReportReason_REPORT_REASON_SPAM, "")
			a.mustResolve(mod.AccessToken, r.GetId(), flockv1.ReportAction_REPORT_ACTION_SUSPEND_AUTHOR)
			wantCode(t, getMe(t, two, tr, bad.AccessToken), connect.CodeUnauthenticated)
			wantCode(t, getMe(t, one, tr, bad.AccessToken), connect.CodeUnauthenticated)
			if err := getMe(t, two, tr, reporter.AccessToken); err != nil {
				t.Errorf("another user's session after the suspension: %v", err)
			}
		})
	}
}

// The point of the cache: once a session has been read, the requests that
// follow on the same instance send no query about it, on every transport
// and engine (a GetMe then costs one query, for the profile).
func TestSession_CachedSessionNeedsNoQuery(t *testing.T) {
	t.Parallel()
	forEachServer(t, func(t *testing.T, s *tu.Server) {
		accs := map[tu.Transport]*tu.Account{}
		for _, tr := range tu.Transports {
			accs[tr] = s.MustAccount(t, "cached_"+string(tr))
		}
		counter := &sessionQueries{}
		s.App.DB().AddQueryHook(counter)
		for _, tr := range tu.Transports {
			before := counter.n.Load()
			if err := getMe(t, s, tr, accs[tr].AccessToken); err != nil {
				t.Fatal(err)
			}
			if n := counter.n.Load() - before; n != 1 {
				t.Errorf("%s: the first request read sessions %d times, want 1", tr, n)
			}
			before = counter.n.Load()
			for range 3 {
				if err := getMe(t, s, tr, accs[tr].AccessToken); err != nil {
					t.Fatal(err)
				}
			}
			if n := counter.n.Load() - before; n != 0 {
				t.Errorf("%s: three more requests read sessions %d times, want 0", tr, n)
			}
		}
	})
}
