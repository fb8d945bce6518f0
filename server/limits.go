package server

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"strings"
	"time"
	"unicode/utf8"

	"connectrpc.com/connect"

	"github.com/flock-social/flock/internal/media"
)

// Defaults of Config.BodyIdleTimeout and Config.BodyMinRate.
const (
	DefaultBodyIdleTimeout = 30 * time.Second
	DefaultBodyMinRate     = 8 << 10 // bytes per second
)

// withBodyGuard bounds how long a request body may take (security.md
// property 23) without a total deadline, so that large uploads on slow
// links still work: a read that brings no byte for idle fails, and once
// idle has passed the body must keep up minRate bytes per second on
// average. Requests without a body (and WebSocket upgrades, whose
// connections outlive the request) are left alone.
//
// net/http has only whole-request timeouts (ReadTimeout), which would end
// live streams and long uploads alike, so the guard sets the connection's
// (or HTTP/2 stream's) read deadline itself, read by read.
func withBodyGuard(idle time.Duration, minRate int64, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 || r.Header.Get("Upgrade") != "" {
			next.ServeHTTP(w, r)
			return
		}
		r.Body = &guardedBody{body: r.Body, w: w, rc: http.NewResponseController(w), start: time.Now(), idle: idle, minRate: minRate}
		next.ServeHTTP(w, r)
	})
}

// errBodyTooSlow ends a body that stalled or trickled.
var errBodyTooSlow = errors.New("the request body arrived too slowly and was cut off")

type guardedBody struct {
	body    io.ReadCloser
	w       http.ResponseWriter
	rc      *http.ResponseController
	start   time.Time
	idle    time.Duration
	minRate int64
	n       int64
	done    bool
}

func (b *guardedBody) Read(p []byte) (int, error) {
	if b.done {
		return b.body.Read(p)
	}
	// ErrNotSupported leaves the guard off for this request; both HTTP/1.1
	// and HTTP/2 connections of net/http support deadlines.
	_ = b.rc.SetReadDeadline(time.Now().Add(b.idle))
	n, err := b.body.Read(p)
	b.n += int64(n)
	switch {
	case err == io.EOF:
		// The body is whole: lift the deadline, which would otherwise end
		// the connection under a long answer (a stream) or the next
		// keep-alive request.
		b.done = true
		_ = b.rc.SetReadDeadline(time.Time{})
	case err != nil:
		if errors.Is(err, os.ErrDeadlineExceeded) {
			err = b.cut(fmt.Errorf("%w: no byte for %s", errBodyTooSlow, b.idle))
		}
		b.done = true
	default:
		if elapsed := time.Since(b.start); b.minRate > 0 && elapsed > b.idle+time.Duration(float64(b.n)/float64(b.minRate)*float64(time.Second)) {
			b.done = true
			return n, b.cut(fmt.Errorf("%w: %d bytes in %s, below the minimum of %d bytes per second", errBodyTooSlow, b.n, elapsed.Round(time.Second), b.minRate))
		}
	}
	return n, err
}

// cut makes sure the connection of a body cut off is closed after the
// answer (HTTP/1.1 would otherwise wait on it for the next request; an
// HTTP/2 stream is reset by the server).
func (b *guardedBody) cut(err error) error {
	b.w.Header().Set("Connection", "close")
	_ = b.rc.SetReadDeadline(time.Now())
	return err
}

func (b *guardedBody) Close() error { return b.body.Close() }

// withRESTHygiene guards the REST routes (/api/...) before vanguard sees a
// request (security.md properties 22 and 23):
//   - a path or query parameter that is not valid UTF-8 or holds a NUL
//     byte answers 400 (vanguard would otherwise fail to encode it and
//     answer 500), and so does a parameter its field cannot take, or a
//     field given twice (restQueries, which also writes the values it
//     takes as vanguard parses them);
//   - a body over maxBytes answers 413, from Content-Length before a byte
//     is read when it is known, and as soon as the limit is passed when it
//     is not (vanguard would answer 429, which clients retry).
func withRESTHygiene(maxBytes int64, queries *restQueries, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := checkURLText(r); err != nil {
			writeStatus(w, http.StatusBadRequest, connect.CodeInvalidArgument, err.Error())
			return
		}
		if err := queries.check(r); err != nil {
			writeRESTError(w, err)
			return
		}
		plainJSONType(r)
		if r.ContentLength > maxBytes {
			writeBodyTooLarge(w, r, maxBytes)
			return
		}
		if r.ContentLength < 0 && r.Body != nil && r.Header.Get("Upgrade") == "" {
			// Length unknown (chunked): read it here, at most maxBytes+1.
			body, err := io.ReadAll(io.LimitReader(r.Body, maxBytes+1))
			switch {
			case err != nil:
				writeStatus(w, http.StatusBadRequest, connect.CodeInvalidArgument, "could not read the request body: "+err.Error())
				return
			case int64(len(body)) > maxBytes:
				writeBodyTooLarge(w, r, maxBytes)
				return
			}
			r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
		}
		if status, code, msg := restBody(r, maxBytes); status != 0 {
			if status == http.StatusRequestEntityTooLarge {
				w.Header().Set("Connection", "close")
			}
			writeStatus(w, status, code, msg)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// plainJSONType writes a JSON Content-Type as vanguard takes it: vanguard
// refused every spelling but "application/json" and "application/json;
// charset=utf-8" with a garbled 415 (`"application/json;charset=UTF-8?"
// sub-format not supported`), though Java's and Spring's clients send
// "application/json;charset=UTF-8" with every request. Media types and
// charset names are case-insensitive (RFC 9110).
func plainJSONType(r *http.Request) {
	ct := r.Header.Get("Content-Type")
	if ct == "" || ct == "application/json" {
		return
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" {
		return
	}
	if cs := strings.ToLower(params["charset"]); cs == "" || cs == "utf-8" || cs == "utf8" {
		r.Header.Set("Content-Type", "application/json")
	}
}

// restBody makes a REST request's body what vanguard can take, or says why
// it cannot (a status, 0 when it can):
//   - a gzip body (Content-Encoding: gzip) is inflated here, at most
//     maxBytes: vanguard inflated it whole before its size check (a
//     400 KiB body of zeros became 400 MiB in memory, before any login)
//     and answered 429 for one too large, 500 for one not gzip; another
//     coding answers 415;
//   - GET and DELETE routes take no body: an empty JSON object (emptyJSON),
//     which some clients send with every request, is dropped, and so is
//     the Content-Type of no body; anything else answers 400 (vanguard
//     answered 500).
func restBody(r *http.Request, maxBytes int64) (int, connect.Code, string) {
	noBody := r.Method == http.MethodGet || r.Method == http.MethodDelete
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 || r.Header.Get("Upgrade") != "" {
		if noBody && r.Header.Get("Upgrade") == "" {
			r.Header.Del("Content-Type") // of no body: nothing to refuse
		}
		return 0, 0, ""
	}
	switch coding := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); coding {
	case "", "identity":
	case "gzip":
		zr, err := gzip.NewReader(r.Body)
		var body []byte
		if err == nil {
			body, err = io.ReadAll(io.LimitReader(zr, maxBytes+1))
		}
		switch {
		case err != nil && !errors.Is(err, errBodyTooSlow):
			return http.StatusBadRequest, connect.CodeInvalidArgument, "the request body is not valid gzip, as its header Content-Encoding: gzip says (" + err.Error() + "): send it compressed whole, or uncompressed without that header"
		case err != nil:
			return http.StatusBadRequest, connect.CodeInvalidArgument, err.Error()
		case int64(len(body)) > maxBytes:
			return http.StatusRequestEntityTooLarge, connect.CodeResourceExhausted, fmt.Sprintf("the request body is too large once decompressed: the limit is %d MiB", maxBytes>>20)
		}
		r.Header.Del("Content-Encoding")
		r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
	default:
		return http.StatusUnsupportedMediaType, connect.CodeInvalidArgument, fmt.Sprintf("Content-Encoding %q is not supported: send the body uncompressed, or with gzip", coding)
	}
	if !noBody {
		return 0, 0, ""
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBytes+1))
	if err != nil {
		return http.StatusBadRequest, connect.CodeInvalidArgument, "could not read the request body: " + err.Error()
	}
	if !emptyJSON(body) {
		return http.StatusBadRequest, connect.CodeInvalidArgument, fmt.Sprintf("%s %s takes no request body: send its fields in the path or the query string (e.g. ?pageSize=50), or send no body", r.Method, r.URL.Path)
	}
	r.Body, r.ContentLength = http.NoBody, 0
	r.Header.Del("Content-Type")
	return 0, 0, ""
}

// emptyJSON is whether body holds nothing, or JSON with nothing in it: an
// object without members (`{}`, `{ }`, `{\n}`) or null.
func emptyJSON(body []byte) bool {
	t := bytes.TrimSpace(body)
	if len(t) == 0 || bytes.Equal(t, []byte("null")) {
		return true
	}
	var members map[string]json.RawMessage
	return t[0] == '{' && json.Unmarshal(t, &members) == nil && len(members) == 0
}

// checkURLText refuses a path or query that is not text.
func checkURLText(r *http.Request) error {
	bad := func(s string) bool { return !utf8.ValidString(s) || strings.IndexByte(s, 0) >= 0 }
	if bad(r.URL.Path) {
		return errors.New("the URL path is not valid UTF-8 text or holds a NUL byte (%00); percent-encode UTF-8 text only")
	}
	for key, values := range r.URL.Query() {
		if bad(key) {
			return errors.New("a query parameter name is not valid UTF-8 text or holds a NUL byte (%00); percent-encode UTF-8 text only")
		}
		for _, v := range values {
			if bad(v) {
				return fmt.Errorf("query parameter %s: not valid UTF-8 text or holds a NUL byte (%%00); percent-encode UTF-8 text only", key)
			}
		}
	}
	return nil
}

func writeBodyTooLarge(w http.ResponseWriter, r *http.Request, maxBytes int64) {
	hint := "send media as multipart/form-data where an endpoint takes a file"
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt == "multipart/form-data" {
		hint = fmt.Sprintf("a profile picture may be at most %d MiB", media.MaxAvatarBytes>>20)
	}
	w.Header().Set("Connection", "close")
	writeStatus(w, http.StatusRequestEntityTooLarge, connect.CodeResourceExhausted,
		fmt.Sprintf("the request body is too large: the limit is %d MiB (%s)", maxBytes>>20, hint))
}

// writeStatus writes a REST error: a google.rpc.Status in JSON, as vanguard
// does (details always present, so that every REST error has one shape).
func writeStatus(w http.ResponseWriter, status int, code connect.Code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"code": int(code), "message": msg, "details": []any{}})
}

// streamStall is how long a live stream over HTTP/1.1 may wait for its
// client to accept bytes before the connection is closed. HTTP/2 streams
// have the server's WriteByteTimeout (NewHTTPServer); HTTP/1.1 had
// nothing, so a Connect or gRPC-Web client that stopped reading held its
// stream, and its place under the per-account cap, until it read again
// (73-154 s in the live-events audit, with the stream long fallen behind).
const streamStall = 30 * time.Second

// withStreamStall gives live streams (…/Subscribe) over HTTP/1.1 a write
// deadline that moves forward as bytes go out: a client that accepts
// nothing for stall loses the connection, and the stream ends; a slow but
// steady one, or a quiet stream, does not.
func withStreamStall(stall time.Duration, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor != 1 || !strings.HasSuffix(r.URL.Path, "/Subscribe") {
			next.ServeHTTP(w, r)
			return
		}
		sw := &stallingStream{ResponseWriter: w, rc: http.NewResponseController(w), stall: stall}
		defer func() { _ = sw.rc.SetWriteDeadline(time.Time{}) }()
		next.ServeHTTP(sw, r)
	})
}

type stallingStream struct {
	http.ResponseWriter
	rc    *http.ResponseController
	stall time.Duration
	set   time.Time
}

// move sets the deadline stall from now, at most every quarter of it (not
// on every write); ErrNotSupported leaves the guard off (net/http
// supports it).
func (s *stallingStream) move() {
	if now := time.Now(); now.Sub(s.set) > s.stall/4 {
		_ = s.rc.SetWriteDeadline(now.Add(s.stall))
		s.set = now
	}
}

func (s *stallingStream) Write(p []byte) (int, error) {
	s.move()
	return s.ResponseWriter.Write(p)
}

// Flush is what connect calls after each message: the write that blocks.
func (s *stallingStream) Flush() {
	s.move()
	_ = s.rc.Flush()
}

func (s *stallingStream) Unwrap() http.ResponseWriter { return s.ResponseWriter }
