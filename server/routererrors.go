package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"slices"
	"strings"

	"connectrpc.com/connect"
)

// The routers in front of the handlers refuse some requests at the HTTP
// level, before any handler runs: vanguard for REST (no route, a method
// the route does not take, a body that is not JSON) and Connect's service
// handlers (no such procedure, GET of a procedure that takes POST only, a
// Content-Type of no protocol). They answer those in plain text ("Not
// Found", `"application/x-www-form-urlencoded?" sub-format not
// supported`) or with no body, where every other error of the API is a
// JSON body with a code and a message that says what to do. Neither
// library lets its refusals be written otherwise (vanguard's unknown
// handler covers only its 404), so withRESTRefusals and withConnectRefusals
// rewrite them: an error
// status whose body is not JSON becomes the error body of the API it was
// sent to, with a message that names the fix. gRPC clients are left as
// they are: they read the HTTP status (404 is unimplemented to them).

// withRESTRefusals gives the REST router's refusals a google.rpc.Status
// body (errors.md), as every other REST error has.
func withRESTRefusals(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if msg, ok := restBodyRefusal(r); ok {
			writeStatus(w, http.StatusUnsupportedMediaType, connect.CodeInvalidArgument, msg)
			return
		}
		serveRewritingRefusals(w, r, next, "REST", writeStatus)
	})
}

// withConnectRefusals gives the Connect handlers' HTTP-level refusals the
// Connect protocol's JSON error body, for curl users of /flock.v1.*. A
// gRPC request (application/grpc...) passes untouched.
func withConnectRefusals(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc") {
			next.ServeHTTP(w, r)
			return
		}
		serveRewritingRefusals(w, r, next, "Connect", writeConnectError)
	})
}

// serveRewritingRefusals serves r with next, and an error it answered in
// plain text or with no body again with write, in the words of
// refusalMessage for api ("REST" or "Connect").
func serveRewritingRefusals(w http.ResponseWriter, r *http.Request, next http.Handler, api string,
	write func(w http.ResponseWriter, status int, code connect.Code, msg string)) {
	rw := &refusalWriter{ResponseWriter: w}
	next.ServeHTTP(rw, r)
	if rw.status == 0 {
		return
	}
	code, msg := refusalMessage(r, rw.status, rw.Header().Get("Allow"), rw.text.String(), api)
	write(w, rw.status, code, msg)
}

// methodRefusal answers a request to a plain-HTTP REST route (an upload,
// the export) whose method is not allow: 405 with Allow, worded as the
// REST router's own 405s are.
func methodRefusal(allow string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allow)
		code, msg := refusalMessage(r, http.StatusMethodNotAllowed, allow, "", "REST")
		writeStatus(w, http.StatusMethodNotAllowed, code, msg)
	}
}

// writeConnectError writes a Connect protocol error body.
func writeConnectError(w http.ResponseWriter, status int, code connect.Code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Del("Content-Length")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"code": code.String(), "message": msg})
}

// restBodyRefusal refuses, before vanguard reads it, a REST body that is
// not JSON: curl's -d without -H sends application/x-www-form-urlencoded,
// the most likely first mistake, which vanguard answered with
// `"application/x-www-form-urlencoded?" sub-format not supported`.
// Multipart bodies go on (a profile's avatar, withMultipartProfile, which
// answers for the paths that take none).
func restBodyRefusal(r *http.Request) (string, bool) {
	if r.ContentLength == 0 || r.Body == nil || r.Body == http.NoBody || r.Header.Get("Upgrade") != "" {
		return "", false
	}
	ct := r.Header.Get("Content-Type")
	mt, params, err := mime.ParseMediaType(ct)
	profile := r.Method == http.MethodPatch && strings.TrimRight(r.URL.Path, "/") == "/api/users"
	switch {
	case err == nil && mt == "application/json":
		// JSON is UTF-8 (RFC 8259); vanguard refused any other charset
		// with `"application/json; charset=..."? sub-format not supported`.
		if cs := strings.ToLower(params["charset"]); cs != "" && cs != "utf-8" && cs != "utf8" {
			return fmt.Sprintf("the request body must be JSON in UTF-8, and its Content-Type says charset=%s: send UTF-8 with Content-Type: application/json", params["charset"]), true
		}
		return "", false
	case err == nil && mt == "multipart/form-data" && profile:
		return "", false
	case err == nil && mt == "multipart/form-data":
		return fmt.Sprintf("%s %s takes a JSON body, not a multipart form: send JSON with Content-Type: application/json (only PATCH /api/users/ takes a form, for a profile picture; videos are uploaded with POST /api/posts/videos/)", r.Method, r.URL.Path), true
	}
	if ct == "" {
		ct = "none"
	} else {
		ct = fmt.Sprintf("%q", ct)
	}
	msg := fmt.Sprintf("the request body must be JSON, and its Content-Type was %s: send the header Content-Type: application/json (with curl: -H 'Content-Type: application/json')", ct)
	if profile {
		msg += ", or a multipart/form-data form (with curl: -F avatar=@me.png -F bio=...)"
	}
	return msg, true
}

// refusalMessage words a router's refusal: its code and a message that
// says what was wrong and how to fix it (text is the router's own words).
func refusalMessage(r *http.Request, status int, allow, text, api string) (connect.Code, string) {
	text = strings.TrimSpace(text)
	where := r.Method + " " + r.URL.Path
	switch status {
	case http.StatusNotFound:
		if api == "Connect" {
			return connect.CodeUnimplemented, fmt.Sprintf("no procedure %s: the procedures are listed at /docs/ (and by gRPC reflection: grpcurl -plaintext HOST list)", strings.TrimPrefix(r.URL.Path, "/"))
		}
		return connect.CodeNotFound, fmt.Sprintf("no API endpoint %s: the endpoints are listed at /docs/ and in /openapi.yaml", where)
	case http.StatusMethodNotAllowed:
		if allow == "" {
			allow = http.MethodPost
		}
		// vanguard lists the methods in a map's order: sorted, so that the
		// same mistake always reads the same.
		methods := strings.Split(allow, ",")
		for i := range methods {
			methods[i] = strings.TrimSpace(methods[i])
		}
		slices.Sort(methods)
		return connect.CodeUnimplemented, fmt.Sprintf("%s does not take %s: use %s", r.URL.Path, r.Method, strings.Join(methods, " or "))
	case http.StatusUnsupportedMediaType:
		if api == "Connect" {
			return connect.CodeInvalidArgument, fmt.Sprintf("Content-Type %q is not one this procedure takes: a unary call takes application/json or application/proto, "+
				"a stream (Subscribe) application/connect+json or application/connect+proto with an enveloped message (docs/live.md); "+
				"gRPC clients send application/grpc, gRPC-Web ones application/grpc-web", r.Header.Get("Content-Type"))
		}
		if text == "" {
			text = "unsupported request encoding"
		}
		return connect.CodeInvalidArgument, text + ": send a JSON body with Content-Type: application/json, and gzip or no Content-Encoding"
	}
	if text == "" {
		text = http.StatusText(status)
	}
	code := connect.CodeUnknown
	switch {
	case status == http.StatusBadRequest:
		code = connect.CodeInvalidArgument
	case status == http.StatusRequestEntityTooLarge || status == http.StatusTooManyRequests:
		code = connect.CodeResourceExhausted
	case status >= 500:
		code = connect.CodeInternal
	}
	return code, text
}

// refusalWriter passes a response through, unless it is an error status
// whose body is not JSON: that one it holds (status and text) for its
// caller to write again. It keeps http.Flusher (streams) and Unwrap.
type refusalWriter struct {
	http.ResponseWriter
	status int // held: an error answered in plain text or with no body
	passed bool
	text   bytes.Buffer
}

func (w *refusalWriter) WriteHeader(code int) {
	if w.passed || w.status != 0 {
		return
	}
	if code >= 400 && !isJSON(w.Header().Get("Content-Type")) {
		w.status = code
		return
	}
	w.passed = true
	w.ResponseWriter.WriteHeader(code)
}

func (w *refusalWriter) Write(b []byte) (int, error) {
	if w.status != 0 {
		if w.text.Len() < 1024 {
			w.text.Write(b)
		}
		return len(b), nil
	}
	w.passed = true
	return w.ResponseWriter.Write(b)
}

func (w *refusalWriter) Flush() {
	if w.status != 0 {
		return
	}
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		w.passed = true
		f.Flush()
	}
}

func (w *refusalWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func isJSON(contentType string) bool {
	mt, _, _ := mime.ParseMediaType(contentType)
	return mt == "application/json" || strings.HasSuffix(mt, "+json")
}
