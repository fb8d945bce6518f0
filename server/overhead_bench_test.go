package server_test

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"syscall"
	"testing"
	"time"

	"github.com/flock-social/flock/internal/store"
	tu "github.com/flock-social/flock/internal/testutil"
	"github.com/flock-social/flock/server"
)

// The fixed cost of a request (issue 13, "Per-request overhead"): GetMe
// through the whole handler tree (client address, body guard, request
// log, CORS, mux, vanguard for REST, the interceptors, the session check,
// one row, JSON) against a no-op, called in process so that only the
// server's own work is measured. With -cpu 1 ns/op is the CPU of one
// request, and cpu-µs/req the process's CPU per request; the server logs at
// info, as in production, into io.Discard.
//
//	go test -run '^$' -bench 'Overhead' -benchtime 20000x -cpu 1 ./server/
func benchServer(b *testing.B, configure ...func(*server.Config)) (*tu.Server, string) {
	b.Helper()
	s := tu.MustServer(b, store.SQLite, append([]func(*server.Config){func(c *server.Config) {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}}, configure...)...)
	return s, s.MustAccount(b, "bencher").AccessToken
}

func benchRequests(b *testing.B, h http.Handler, newReq func() *http.Request) {
	b.Helper()
	// Warm up: the first request reads the session from the database.
	for range 10 {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, newReq())
		if rec.Code != http.StatusOK {
			b.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := processCPU(b)
	for range b.N {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, newReq())
		if rec.Code != http.StatusOK {
			b.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
	}
	b.ReportMetric(float64((processCPU(b)-cpu0).Microseconds())/float64(b.N), "cpu-µs/req")
}

// processCPU is the user and system CPU time this process has used: on a
// shared machine it is steadier than ns/op, and like the figure it
// counts everything the server does for a request (GC included).
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func BenchmarkOverhead_GetMe_REST(b *testing.B) {
	s, token := benchServer(b)
	benchRequests(b, s.App.Handler(), func() *http.Request {
		r := httptest.NewRequest(http.MethodGet, "/api/users/", nil)
		r.Header.Set("Authorization", "Bearer "+token)
		return r
	})
}

// Without the session cache every request also reads its session.
func BenchmarkOverhead_GetMe_REST_NoSessionCache(b *testing.B) {
	s, token := benchServer(b, func(c *server.Config) { c.SessionCacheTTL = -1 })
	benchRequests(b, s.App.Handler(), func() *http.Request {
		r := httptest.NewRequest(http.MethodGet, "/api/users/", nil)
		r.Header.Set("Authorization", "Bearer "+token)
		return r
	})
}

func BenchmarkOverhead_GetMe_Connect(b *testing.B) {
	s, token := benchServer(b)
	benchRequests(b, s.App.Handler(), func() *http.Request {
		r := httptest.NewRequest(http.MethodPost, "/flock.v1.UserService/GetMe", bytes.NewReader([]byte("{}")))
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set("Authorization", "Bearer "+token)
		return r
	})
}

func BenchmarkOverhead_Healthz(b *testing.B) {
	s, _ := benchServer(b)
	benchRequests(b, s.App.Handler(), func() *http.Request {
		return httptest.NewRequest(http.MethodGet, "/healthz", nil)
	})
}
