package server_test

import (
	"net"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	flockv1 "github.com/flock-social/flock/gen/go/flock/v1"
	"github.com/flock-social/flock/gen/go/flock/v1/flockv1connect"
	"github.com/flock-social/flock/internal/store"
	tu "github.com/flock-social/flock/internal/testutil"
	"github.com/flock-social/flock/internal/testutil/faultproxy"
	"github.com/flock-social/flock/server"
)

func hostOf(t *testing.T, raw string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := net.SplitHostPort(u.Host); err != nil {
		return u.Host + ":6379"
	}
	return u.Host
}

// P16: with Redis gone for seconds, writes still succeed (the database is
// the truth), an open stream still gets the events (from its periodic
// re-read) and, once Redis is back, live wake-ups work again.
func TestRedisLostForSeconds_WritesSucceedStreamsCatchUp_P16(t *testing.T) {
	t.Parallel()
	redisURL := tu.RedisURL(t)
	proxy := faultproxy.New(t, hostOf(t, redisURL))
	s := tu.MustServer(t, store.SQLite, func(c *server.Config) {
		c.RedisURL = faultproxy.Via(t, redisURL, proxy)
		c.StreamPoll = 500 * time.Millisecond
	})
	a := api{t: t, s: s, tr: tu.Connect}
	alice, bob := s.MustAccount(t, "redisalice"), s.MustAccount(t, "redisbob")
	p := a.post(alice.AccessToken, "through the outage")
	sub := subscribe(t, s, tu.GRPC, alice.AccessToken, "")

	proxy.Stop() // Redis unreachable
	for i := range 3 {
		t0 := time.Now()
		if _, err := call[flockv1.CreateCommentResponse](a, flockv1connect.PostServiceCreateCommentProcedure, bob.AccessToken,
			&flockv1.CreateCommentRequest{PostId: p.GetId(), Content: "during " + string(rune('a'+i))}); err != nil {
			t.Fatalf("a write failed while Redis was away: %v", err)
		}
		t.Logf("comment %d took %s", i, time.Since(t0))
	}
	for range 3 {
		if n := sub.next(t); n.GetType() != flockv1.NotificationType_NOTIFICATION_TYPE_COMMENT {
			t.Fatalf("got %v", n)
		}
	}
	if err := proxy.Start(); err != nil {
		t.Fatal(err)
	}
	must[flockv1.CreateCommentResponse](a, flockv1connect.PostServiceCreateCommentProcedure, bob.AccessToken, &flockv1.CreateCommentRequest{PostId: p.GetId(), Content: "after"})
	if n := sub.next(t); n.GetType() != flockv1.NotificationType_NOTIFICATION_TYPE_COMMENT {
		t.Fatalf("after Redis came back: %v", n)
	}
	if got := len(a.notifications(alice.AccessToken).GetNotifications()); got != 4 {
		t.Errorf("%d notifications stored, want 4", got)
	}
}

// P17: while Postgres is unreachable, requests fail fast with unavailable
// (503 over REST); once it is back they succeed, with no restart of Flock.
func TestPostgresLost_FailsFastThenRecovers_P17(t *testing.T) {
	t.Parallel()
	if !slices.Contains(tu.Engines(t), store.Postgres) {
		t.Skip("needs Postgres")
	}
	dbURL := tu.MustDatabaseURL(t, store.Postgres)
	proxy := faultproxy.New(t, hostOf(t, dbURL))
	s := tu.MustServer(t, store.Postgres, func(c *server.Config) { c.DatabaseURL = faultproxy.Via(t, dbURL, proxy) })
	a := api{t: t, s: s, tr: tu.Connect}
	alice := s.MustAccount(t, "pgalice")

	proxy.Stop()
	for _, tr := range tu.Transports {
		start := time.Now()
		_, err := tu.Call[flockv1.GetMeResponse](t.Context(), s, tr, flockv1connect.UserServiceGetMeProcedure, alice.AccessToken, &flockv1.GetMeRequest{})
		wantCode(t, err, connect.CodeUnavailable)
		if strings.Contains(err.Error(), "SQLSTATE") || strings.Contains(err.Error(), "127.0.0.1") {
			t.Errorf("%s: the error leaks driver details: %v", tr, err)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("%s: failing took %s", tr, d)
		}
	}
	if res, _ := rawBody(t, s, "GET", "/readyz", "", ""); res.StatusCode != 503 {
		t.Errorf("/readyz = %d while the database is away, want 503", res.StatusCode)
	}
	if err := proxy.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		_, err := call[flockv1.GetMeResponse](a, flockv1connect.UserServiceGetMeProcedure, alice.AccessToken, &flockv1.GetMeRequest{})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still failing 15s after Postgres came back: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if _, err := call[flockv1.CreatePostResponse](a, flockv1connect.PostServiceCreatePostProcedure, alice.AccessToken, &flockv1.CreatePostRequest{Content: "back"}); err != nil {
		t.Errorf("a write after recovery: %v", err)
	}
}
