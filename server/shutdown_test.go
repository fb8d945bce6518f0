package server_test

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/coder/websocket"

	tu "github.com/flock-social/flock/internal/testutil"
	"github.com/flock-social/flock/server"
)

// P19: on shutdown, open streams end at once with a reconnect hint (gRPC
// unavailable, WebSocket 1001) and Serve returns within its drain bound.
func TestShutdown_ClosesStreamsWithReconnectHint_P19(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	app, err := server.Open(t.Context(), server.Config{
		Addr: ln.Addr().String(), DataDir: dir, Mailer: "file:" + filepath.Join(dir, "mail"),
		JWTSecret: "test-secret-that-is-at-least-32-bytes-long",
		Logger:    slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelError})),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- app.Serve(ctx, ln, 10*time.Second) }()
	s := &tu.Server{URL: "http://" + ln.Addr().String(), App: app, MailDir: filepath.Join(dir, "mail"), HTTP: &http.Client{Timeout: 30 * time.Second}, H2C: tu.NewH2CClient()}
	a := s.MustAccount(t, "stayer")

	sub := subscribe(t, s, tu.GRPC, a.AccessToken, "")
	ws, _, err := wsDial(t, s, "/api/activity-log/", a.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()

	start := time.Now()
	stop()
	if err := sub.end(t); connect.CodeOf(err) != connect.CodeUnavailable || !strings.Contains(err.Error(), "reconnect") {
		t.Errorf("gRPC stream ended with %v, want unavailable with a reconnect hint", err)
	}
	rctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if _, _, err := ws.Read(rctx); websocket.CloseStatus(err) != websocket.StatusGoingAway {
		t.Errorf("WebSocket ended with %v, want close 1001", err)
	}
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Serve did not return after shutdown")
	}
	if d := time.Since(start); d > 12*time.Second {
		t.Errorf("shutdown took %s", d)
	}
}
