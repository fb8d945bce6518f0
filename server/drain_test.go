package server_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptrace"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/coder/websocket"
	healthv1 "google.golang.org/grpc/health/grpc_health_v1"

	tu "github.com/flock-social/flock/internal/testutil"
	"github.com/flock-social/flock/server"
)

// drainFor is long enough for the requests the test sends during the drain;
// nothing is asserted about how long anything takes.
const drainFor = 4 * time.Second

// P19: once shutdown begins, /readyz and gRPC health say "not serving" while
// requests are still answered, every HTTP/1.1 answer closes its connection,
// and a keep-alive client whose idle connections were opened before the
// signal gets an answer to every POST it sends during the drain (no reset,
// no EOF on a reused connection); a WebSocket upgrade is refused with 503
// for a proxy to retry elsewhere; then Serve returns without error.
func TestShutdown_DrainAnswersWithConnectionCloseAndNotReady_P19(t *testing.T) {
	t.Parallel()
	for _, engine := range tu.Engines(t) {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			testDrain(t, tu.MustDatabaseURL(t, engine))
		})
	}
}

func testDrain(t *testing.T, databaseURL string) {
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	app, err := server.Open(t.Context(), server.Config{
		Addr: ln.Addr().String(), DataDir: dir, DatabaseURL: databaseURL, Mailer: "file:" + filepath.Join(dir, "mail"),
		JWTSecret:     "test-secret-that-is-at-least-32-bytes-long",
		ShutdownDrain: drainFor,
		Logger:        slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelError})),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	served := make(chan error, 1)
	go func() { served <- app.Serve(ctx, ln, 10*time.Second) }()
	base := "http://" + ln.Addr().String()

	// A keep-alive client, as nginx's upstream keepalive pool: 8 connections
	// opened and left idle before the signal.
	const conns = 8
	keepAlive := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conns, IdleConnTimeout: time.Minute}}
	defer keepAlive.CloseIdleConnections()
	var reused atomic.Int32
	post := func() (*http.Response, error) {
		trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) {
			if i.Reused {
				reused.Add(1)
			}
		}}
		req, err := http.NewRequestWithContext(httptrace.WithClientTrace(t.Context(), trace), http.MethodPost,
			base+"/flock.v1.UserService/GetMe", strings.NewReader("{}"))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", "application/json")
		res, err := keepAlive.Do(req)
		if err != nil {
			return nil, err
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		return res, nil
	}
	burst := func(t *testing.T) []*http.Response {
		var wg sync.WaitGroup
		out := make([]*http.Response, conns)
		for i := range conns {
			wg.Go(func() {
				res, err := post()
				if err != nil {
					t.Errorf("POST on a kept-alive connection: %v", err)
					return
				}
				out[i] = res
			})
		}
		wg.Wait()
		return out
	}
	for _, res := range burst(t) {
		if res != nil && res.Close {
			t.Fatalf("before shutdown, an answer closed its connection: %v", res.Header)
		}
	}

	fresh := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	readyz := func() int {
		res, err := fresh.Get(base + "/readyz")
		if err != nil {
			t.Fatalf("/readyz during the drain: %v", err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	if code := readyz(); code != http.StatusOK {
		t.Fatalf("/readyz before shutdown: %d", code)
	}

	stop()
	for i := 0; readyz() != http.StatusServiceUnavailable; i++ {
		if i == 100 {
			t.Fatal("/readyz still 200 after shutdown began")
		}
		time.Sleep(10 * time.Millisecond)
	}

	// The idle connections are reused: each answer comes back whole and
	// closes its connection.
	reused.Store(0)
	for _, res := range burst(t) {
		if res != nil && (!res.Close || res.StatusCode != http.StatusUnauthorized) {
			t.Errorf("during the drain: %d, Connection %q, closes=%v; want 401 (no token) with Connection: close",
				res.StatusCode, res.Header.Get("Connection"), res.Close)
		}
	}
	if reused.Load() == 0 {
		t.Error("no idle keep-alive connection was reused during the drain; the test proves nothing")
	}
	// New connections are still accepted and answered, and close too.
	for range 3 {
		res, err := post()
		if err != nil {
			t.Fatalf("POST during the drain: %v", err)
		}
		if !res.Close {
			t.Errorf("during the drain, an answer kept its connection open: %v", res.Header)
		}
	}
	// A WebSocket upgrade is refused before it is upgraded, with 503 and
	// Retry-After, so that a proxy retries it on another instance.
	_, wsRes, err := websocket.Dial(t.Context(), "ws"+strings.TrimPrefix(base, "http")+"/api/notifications/", nil)
	if err == nil || wsRes == nil || wsRes.StatusCode != http.StatusServiceUnavailable || wsRes.Header.Get("Retry-After") == "" {
		t.Errorf("WebSocket upgrade during the drain: %v, %v; want 503 with Retry-After", wsRes, err)
	}
	// HTTP/2: still served; gRPC health says not serving.
	h2c := tu.NewH2CClient()
	health := connect.NewClient[healthv1.HealthCheckRequest, healthv1.HealthCheckResponse](
		h2c, base+"/grpc.health.v1.Health/Check", connect.WithGRPC())
	hres, err := health.CallUnary(t.Context(), connect.NewRequest(&healthv1.HealthCheckRequest{}))
	if err != nil || hres.Msg.GetStatus() != healthv1.HealthCheckResponse_NOT_SERVING {
		t.Errorf("gRPC health during the drain: %v, %v; want NOT_SERVING", hres, err)
	}

	select {
	case err := <-served:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Serve did not return after the drain")
	}
	if _, err := fresh.Get(base + "/healthz"); err == nil {
		t.Error("the listener still answers after Serve returned")
	}
}
