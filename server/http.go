package server

import (
	"context"
	"crypto/rand"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"runtime/debug"
	"strings"
	"time"

	"connectrpc.com/connect"
	connectcors "connectrpc.com/cors"
	"github.com/rs/cors"
)

type requestIDKey struct{}

// requestID returns the id of the request that ctx belongs to.
func requestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// RequestID returns the id of the HTTP request that ctx belongs to; ""
// for work outside requests (jobs, streams' background reads). Tests use
// it to count a request's queries apart from background jobs'.
func RequestID(ctx context.Context) string { return requestID(ctx) }

var validRequestID = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// statusRecorder remembers the status a handler wrote, for the access log.
// It keeps http.Flusher (streams) and Unwrap (http.ResponseController).
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

func (r *statusRecorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// withRequestLog gives every request an id (a sane incoming X-Request-Id is
// kept), echoes it in the response, logs one line per request (with the
// client's address) and turns a panic outside the Connect handlers into a 500.
func withRequestLog(log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Request-Id")
		if !validRequestID.MatchString(id) {
			id = rand.Text()[:16]
		}
		w.Header().Set("X-Request-Id", id)
		ctx := context.WithValue(r.Context(), requestIDKey{}, id)
		rec := &statusRecorder{ResponseWriter: w}
		start := time.Now()
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				log.ErrorContext(ctx, "panic", "request_id", id, "panic", p, "stack", string(debug.Stack()))
				if rec.status == 0 {
					http.Error(rec, "internal error (request id "+id+")", http.StatusInternalServerError)
				}
			}
			log.InfoContext(ctx, "request", "request_id", id, "method", r.Method, "path", r.URL.Path,
				"status", rec.status, "duration_ms", time.Since(start).Milliseconds(), "proto", r.Proto,
				"client", clientHost(r.RemoteAddr))
		}()
		next.ServeHTTP(rec, r.WithContext(ctx))
	})
}

// clientHost is the address part of a RemoteAddr: the client's, behind a
// trusted proxy (withClientIP).
func clientHost(remoteAddr string) string {
	if host, _, err := net.SplitHostPort(remoteAddr); err == nil {
		return host
	}
	return remoteAddr
}

// withCORS lets browsers in the allowed origins call every transport.
// Tokens travel in headers, never cookies, so credentials stay off.
func withCORS(origins []string, next http.Handler) http.Handler {
	c := cors.New(cors.Options{
		AllowedOrigins: origins,
		AllowedMethods: append(connectcors.AllowedMethods(), http.MethodPatch, http.MethodDelete, http.MethodPut),
		AllowedHeaders: append(connectcors.AllowedHeaders(), "Authorization", "Idempotency-Key", "X-Request-Id"),
		ExposedHeaders: append(connectcors.ExposedHeaders(), "X-Request-Id", "Retry-After", "Content-Disposition", SinceIDHeader,
			"RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"),
		MaxAge: 7200,
	})
	return c.Handler(next)
}

// withNoStore marks API answers private: they carry account data and must
// not be kept by shared caches (security.md property 15).
func withNoStore(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}

// withoutTrailingSlash removes a trailing slash from /api/ paths, since
// vanguard's path templates have none and the contract allows both forms.
func withoutTrailingSlash(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p := r.URL.Path; len(p) > len("/api/") && strings.HasSuffix(p, "/") {
			r2 := r.Clone(r.Context())
			r2.URL.Path = strings.TrimRight(p, "/")
			r2.URL.RawPath = ""
			r = r2
		}
		next.ServeHTTP(w, r)
	})
}

// recoverHandler turns a panic inside a Connect handler into an internal
// error carrying the request id; the stack goes to the log.
func recoverHandler(log *slog.Logger) connect.HandlerOption {
	return connect.WithRecover(func(ctx context.Context, spec connect.Spec, _ http.Header, p any) error {
		id := requestID(ctx)
		log.ErrorContext(ctx, "panic", "procedure", spec.Procedure, "request_id", id, "panic", p, "stack", string(debug.Stack()))
		return connect.NewError(connect.CodeInternal, errInternal(id))
	})
}

type internalError string

func (e internalError) Error() string { return string(e) }

func errInternal(id string) error { return internalError("internal error (request id " + id + ")") }
