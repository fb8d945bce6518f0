package server_test

import (
	"io/fs"
	"net/http"
	"regexp"
	"strings"
	"testing"

	web "github.com/flock-social/flock/client/web"
	tu "github.com/flock-social/flock/internal/testutil"
)

// The web app is served at / (contract: "GET / serves the web app; the API
// stays under /api/, /flock.v1.*, /media/"): index.html for every app
// route with a strict CSP and no caching, its hashed assets cached as
// immutable, and never the app for a path of the API or the server's pages.
func TestWebApp_ServedAtRootWithStrictCSP_P28(t *testing.T) {
	t.Parallel()
	s := tu.MustServer(t, "sqlite")
	get := func(method, path string) (*http.Response, string) { return rawBody(t, s, method, path, "", "") }

	res, index := get(http.MethodGet, "/")
	if res.StatusCode != http.StatusOK || !strings.Contains(index, `<div id="root">`) {
		t.Fatalf("GET /: %d %.200s", res.StatusCode, index)
	}
	if ct := res.Header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("GET /: Content-Type %q", ct)
	}
	if cc := res.Header.Get("Cache-Control"); cc != "no-cache" {
		t.Errorf("GET /: Cache-Control %q, want no-cache", cc)
	}
	csp := res.Header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'self'", "script-src 'self';", "connect-src 'self'", "frame-ancestors 'none'", "base-uri 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("Content-Security-Policy %q has no %s", csp, want)
		}
	}
	if strings.Contains(csp, "unsafe") || strings.Contains(csp, "http") || strings.Contains(csp, "*") {
		t.Errorf("Content-Security-Policy %q allows more than the origin", csp)
	}
	if strings.Contains(index, "<script>") || regexp.MustCompile(`(src|href)="(https?:)?//`).MatchString(index) {
		t.Errorf("index.html has an inline script or another origin:\n%s", index)
	}

	for _, route := range []string{"/p/01J0000000000000000000000X", "/settings", "/u/x", "/verify?token=abc", "/search?tag=go"} {
		res, body := get(http.MethodGet, route)
		if res.StatusCode != http.StatusOK || body != index {
			t.Errorf("GET %s: %d, want index.html", route, res.StatusCode)
		}
	}

	assets, err := fs.Glob(web.Dist, "dist/assets/*")
	if err != nil || len(assets) == 0 {
		t.Fatalf("no built assets in client/web/dist (%v): run make web", err)
	}
	for _, a := range assets {
		p := strings.TrimPrefix(a, "dist")
		res, _ := get(http.MethodGet, p)
		if res.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %d", p, res.StatusCode)
		}
		if cc := res.Header.Get("Cache-Control"); cc != "public, max-age=31536000, immutable" {
			t.Errorf("GET %s: Cache-Control %q", p, cc)
		}
	}

	for _, path := range []string{"/assets/missing-abc.js", "/favicon.ico", "/api/nope", "/flock.v1.Nope/Call", "/media/x/y", "/docs/nope.js", "/verify-email/x", "/metrics/x"} {
		res, body := get(http.MethodGet, path)
		if res.StatusCode != http.StatusNotFound || body == index {
			t.Errorf("GET %s: %d, want 404 and not the app", path, res.StatusCode)
		}
	}
	// Text files go gzipped to clients that accept it (the bundle is ~150 KB gzipped, 3.5 times smaller).
	req, _ := http.NewRequest(http.MethodGet, s.URL+strings.TrimPrefix(assets[0], "dist"), nil)
	req.Header.Set("Accept-Encoding", "gzip")
	if res, err := http.DefaultTransport.RoundTrip(req); err != nil {
		t.Fatal(err)
	} else {
		res.Body.Close()
		if vary := strings.Join(res.Header.Values("Vary"), ", "); res.Header.Get("Content-Encoding") != "gzip" || !strings.Contains(vary, "Accept-Encoding") {
			t.Errorf("GET %s with Accept-Encoding: gzip: Content-Encoding %q, Vary %q", req.URL.Path, res.Header.Get("Content-Encoding"), vary)
		}
	}
	if res, _ := get(http.MethodPost, "/settings"); res.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /settings: %d, want 405", res.StatusCode)
	}
	// The server's own pages stay where the emailed links point.
	if res, body := get(http.MethodGet, "/verify-email?token=x"); res.StatusCode != http.StatusOK || body == index {
		t.Errorf("GET /verify-email: %d, want the server's page", res.StatusCode)
	}
}
