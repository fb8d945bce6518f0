package server

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// mustAPIDocs serves apiDocsHandler on /docs and /docs/ as routes mounts it.
func mustAPIDocs(tb testing.TB) *httptest.Server {
	tb.Helper()
	mux := http.NewServeMux()
	mux.Handle("GET /docs/", apiDocsHandler())
	s := httptest.NewServer(mux)
	tb.Cleanup(s.Close)
	return s
}

// mustGet fetches path without following redirects and returns the response
// with its body read.
func mustGet(tb testing.TB, s *httptest.Server, method, path string, header http.Header) (*http.Response, string) {
	tb.Helper()
	req, err := http.NewRequest(method, s.URL+path, nil)
	if err != nil {
		tb.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := client.Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		tb.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return res, string(body)
}

// pageRefs are the src and href attributes of the reference page.
var pageRefs = regexp.MustCompile(`(?:src|href)="([^"]*)"`)

func TestAPIDocs(t *testing.T) {
	t.Parallel()
	s := mustAPIDocs(t)

	t.Run("/docs redirects to /docs/", func(t *testing.T) {
		t.Parallel()
		for _, path := range []string{"/docs", "/docs?x=1"} {
			res, _ := mustGet(t, s, http.MethodGet, path, nil)
			// The mux redirects a subtree's root itself, with a 307.
			if res.StatusCode/100 != 3 || !strings.HasPrefix(res.Header.Get("Location"), "/docs/") {
				t.Errorf("GET %s = %d to %q, want a redirect to /docs/", path, res.StatusCode, res.Header.Get("Location"))
			}
		}
		// Mounted on "GET /docs" too, the handler redirects by itself.
		rec := httptest.NewRecorder()
		apiDocsHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/docs?x=1", nil))
		if rec.Code != http.StatusMovedPermanently || rec.Header().Get("Location") != "/docs/?x=1" {
			t.Errorf("handler: GET /docs?x=1 = %d to %q", rec.Code, rec.Header().Get("Location"))
		}
	})

	t.Run("the page loads the bundle by relative URLs and nothing from outside", func(t *testing.T) {
		t.Parallel()
		res, page := mustGet(t, s, http.MethodGet, "/docs/", nil)
		if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "text/html; charset=utf-8" {
			t.Fatalf("GET /docs/ = %d %q", res.StatusCode, res.Header.Get("Content-Type"))
		}
		if !strings.Contains(page, "<title>Flock API reference</title>") {
			t.Errorf("page has no title Flock API reference:\n%s", page)
		}
		if strings.Contains(page, "http://") || strings.Contains(page, "https://") || strings.Contains(page, `"//`) {
			t.Errorf("page names an external URL:\n%s", page)
		}
		wantType := map[string]string{
			"swagger-ui-bundle.js": "text/javascript; charset=utf-8",
			"init.js":              "text/javascript; charset=utf-8",
			"swagger-ui.css":       "text/css; charset=utf-8",
			"favicon-32x32.png":    "image/png",
		}
		for _, m := range pageRefs.FindAllStringSubmatch(page, -1) {
			ref := m[1]
			if ref == "/openapi.yaml" { // the <noscript> link
				continue
			}
			want, ok := wantType[ref]
			if !ok {
				t.Errorf("page refers to %q, want only %v and /openapi.yaml", ref, wantType)
				continue
			}
			delete(wantType, ref)
			res, body := mustGet(t, s, http.MethodGet, "/docs/"+ref, nil)
			if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != want || body == "" {
				t.Errorf("GET /docs/%s = %d %q, %d bytes; want 200 %q", ref, res.StatusCode, res.Header.Get("Content-Type"), len(body), want)
			}
		}
		for ref := range wantType {
			t.Errorf("page does not load %s", ref)
		}
	})

	t.Run("Swagger UI reads /openapi.yaml and sends nothing to the validator", func(t *testing.T) {
		t.Parallel()
		_, initJS := mustGet(t, s, http.MethodGet, "/docs/init.js", nil)
		for _, want := range []string{`url: "/openapi.yaml"`, "validatorUrl: null"} {
			if !strings.Contains(initJS, want) {
				t.Errorf("init.js has no %s:\n%s", want, initJS)
			}
		}
		if strings.Contains(initJS, "http://") || strings.Contains(initJS, "https://") {
			t.Errorf("init.js names an external URL:\n%s", initJS)
		}
	})

	t.Run("the bundle fetches no fonts, scripts or styles from outside", func(t *testing.T) {
		t.Parallel()
		// The bundle names many URLs as text (RFCs, JSON Schema ids, links
		// shown to the reader); what would be fetched for the page to work
		// is a script, stylesheet or font file, anything from a CDN or Google
		// Fonts, or a CSS url(), @import or @font-face.
		fetched := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+/[^\s"'()]*\.(js|mjs|css|woff2?|ttf|otf|eot)([?#"'\s)]|$)` +
			`|fonts\.googleapis|fonts\.gstatic|unpkg\.com|jsdelivr|\bcdn[a-z]*\.`)
		cssExternal := regexp.MustCompile(`(?i)url\(\s*['"]?(https?:)?//|@import|@font-face`)
		for _, file := range []string{"swagger-ui-bundle.js", "swagger-ui.css"} {
			_, body := mustGet(t, s, http.MethodGet, "/docs/"+file, nil)
			if m := fetched.FindAllString(body, 5); m != nil {
				t.Errorf("%s names resources it may fetch from outside: %q", file, m)
			}
			if m := cssExternal.FindAllString(body, 5); m != nil {
				t.Errorf("%s loads from outside in CSS: %q", file, m)
			}
		}
	})

	t.Run("every answer carries the security headers; the bundle is cached", func(t *testing.T) {
		t.Parallel()
		testCases := []struct {
			path, cacheControl string
		}{
			{"/docs/", "no-cache"},
			{"/docs/init.js", "public, max-age=3600"},
			{"/docs/swagger-ui-bundle.js", "public, max-age=3600"},
			{"/docs/swagger-ui.css", "public, max-age=3600"},
			{"/docs/LICENSE", "public, max-age=3600"},
		}
		for _, tc := range testCases {
			res, _ := mustGet(t, s, http.MethodGet, tc.path, nil)
			if res.StatusCode != http.StatusOK {
				t.Errorf("GET %s = %d", tc.path, res.StatusCode)
			}
			if got := res.Header.Get("Cache-Control"); got != tc.cacheControl {
				t.Errorf("GET %s: Cache-Control %q, want %q", tc.path, got, tc.cacheControl)
			}
			if got := res.Header.Get("X-Content-Type-Options"); got != "nosniff" {
				t.Errorf("GET %s: X-Content-Type-Options %q", tc.path, got)
			}
			csp := res.Header.Get("Content-Security-Policy")
			for _, want := range []string{"default-src 'none'", "script-src 'self';", "connect-src 'self'", "frame-ancestors 'none'"} {
				if !strings.Contains(csp, want) {
					t.Errorf("GET %s: Content-Security-Policy %q has no %s", tc.path, csp, want)
				}
			}
			if strings.Contains(csp, "unsafe-") {
				t.Errorf("GET %s: Content-Security-Policy %q allows unsafe sources", tc.path, csp)
			}
		}
	})

	t.Run("a cached bundle is revalidated by ETag", func(t *testing.T) {
		t.Parallel()
		res, _ := mustGet(t, s, http.MethodGet, "/docs/swagger-ui-bundle.js", nil)
		etag := res.Header.Get("ETag")
		if etag == "" {
			t.Fatal("bundle has no ETag")
		}
		res, body := mustGet(t, s, http.MethodGet, "/docs/swagger-ui-bundle.js", http.Header{"If-None-Match": {etag}})
		if res.StatusCode != http.StatusNotModified || body != "" {
			t.Errorf("GET with If-None-Match = %d, %d bytes; want 304, none", res.StatusCode, len(body))
		}
	})

	t.Run("HEAD answers without a body", func(t *testing.T) {
		t.Parallel()
		res, body := mustGet(t, s, http.MethodHead, "/docs/swagger-ui-bundle.js", nil)
		if res.StatusCode != http.StatusOK || body != "" || res.ContentLength <= 0 {
			t.Errorf("HEAD = %d, length %d, %d bytes of body", res.StatusCode, res.ContentLength, len(body))
		}
	})

	t.Run("unknown names are not found", func(t *testing.T) {
		t.Parallel()
		for _, path := range []string{"/docs/nope.js", "/docs/../openapi.yaml", "/docs/apidocs/init.js", "/docs//init.js"} {
			if res, _ := mustGet(t, s, http.MethodGet, path, nil); res.StatusCode != http.StatusNotFound && res.StatusCode/100 != 3 {
				t.Errorf("GET %s = %d, want 404 (or the mux's redirect to a clean path)", path, res.StatusCode)
			}
		}
	})

	t.Run("only GET and HEAD", func(t *testing.T) {
		t.Parallel()
		rec := httptest.NewRecorder()
		apiDocsHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/docs/", nil))
		if rec.Code != http.StatusMethodNotAllowed || rec.Header().Get("Allow") != "GET, HEAD" {
			t.Errorf("POST /docs/ = %d, Allow %q", rec.Code, rec.Header().Get("Allow"))
		}
	})
}

// openAPIDoc is the part of server/openapi.yaml the tests below read.
type openAPIDoc struct {
	Security   []map[string][]string `yaml:"security"`
	Components struct {
		SecuritySchemes map[string]struct {
			Type         string `yaml:"type"`
			Scheme       string `yaml:"scheme"`
			BearerFormat string `yaml:"bearerFormat"`
		} `yaml:"securitySchemes"`
	} `yaml:"components"`
	Paths map[string]map[string]struct {
		OperationID string                 `yaml:"operationId"`
		Tags        []string               `yaml:"tags"`
		Security    *[]map[string][]string `yaml:"security"`
		RequestBody struct {
			Content map[string]struct {
				Schema struct {
					Required   []string `yaml:"required"`
					Properties map[string]struct {
						Type, Format string
					} `yaml:"properties"`
				} `yaml:"schema"`
			} `yaml:"content"`
		} `yaml:"requestBody"`
		Parameters []struct {
			Name, In string
		} `yaml:"parameters"`
		Responses map[string]struct {
			Content map[string]any `yaml:"content"`
		} `yaml:"responses"`
	} `yaml:"paths"`
	Tags []struct {
		Name string `yaml:"name"`
	} `yaml:"tags"`
}

func mustOpenAPIDoc(t *testing.T) *openAPIDoc {
	t.Helper()
	var doc openAPIDoc
	if err := yaml.Unmarshal(openAPISpec, &doc); err != nil {
		t.Fatalf("server/openapi.yaml: %v", err)
	}
	return &doc
}

// The reference can send the access token: the document declares a bearer
// scheme required by every operation, except the RPCs the server lets in
// without a token (publicProcedures) and the media, which answer no
// token. So "Authorize" once at /docs, and every RPC works from the page.
func TestOpenAPI_BearerTokenForAllButThePublicRPCs(t *testing.T) {
	t.Parallel()
	doc := mustOpenAPIDoc(t)
	bearer, ok := doc.Components.SecuritySchemes["bearer"]
	if !ok || bearer.Type != "http" || bearer.Scheme != "bearer" || bearer.BearerFormat != "JWT" {
		t.Errorf("components.securitySchemes.bearer = %+v, want type http, scheme bearer, bearerFormat JWT", bearer)
	}
	if len(doc.Security) != 1 || doc.Security[0]["bearer"] == nil || len(doc.Security[0]) != 1 {
		t.Errorf("security = %v, want [{bearer: []}] for every operation", doc.Security)
	}

	wantPublic := map[string]bool{"Media_Get": true}
	for procedure := range publicProcedures { // "/flock.v1.UserService/Login"
		service, method, _ := strings.Cut(strings.TrimPrefix(procedure, "/flock.v1."), "/")
		wantPublic[service+"_"+method] = true
	}
	if len(wantPublic) != 9 {
		t.Fatalf("public operations %v: want the 8 public RPCs and Media_Get", wantPublic)
	}
	seen := map[string]bool{}
	for path, ops := range doc.Paths {
		for method, op := range ops {
			seen[op.OperationID] = true
			public := op.Security != nil && len(*op.Security) == 0
			switch {
			case wantPublic[op.OperationID] && !public:
				t.Errorf("%s %s (%s) is public in the server but has security %v, want []", method, path, op.OperationID, op.Security)
			case !wantPublic[op.OperationID] && op.Security != nil:
				t.Errorf("%s %s (%s) sets security %v; want the document's bearer", method, path, op.OperationID, *op.Security)
			}
		}
	}
	for id := range wantPublic {
		if !seen[id] {
			t.Errorf("no operation %s in the document", id)
		}
	}
}

// The plain-HTTP endpoints are operations of the document, so the
// reference shows (and "Try it out" sends) the video upload, the export
// and the media.
func TestOpenAPI_PlainHTTPEndpointsAreOperations(t *testing.T) {
	t.Parallel()
	doc := mustOpenAPIDoc(t)

	upload, ok := doc.Paths["/api/posts/videos/"]["post"]
	if !ok {
		t.Fatal("no POST /api/posts/videos/")
	}
	form := upload.RequestBody.Content["multipart/form-data"].Schema
	if file := form.Properties["file"]; file.Type != "string" || file.Format != "binary" || !slices.Contains(form.Required, "file") {
		t.Errorf("POST /api/posts/videos/ body = %+v, want multipart/form-data with a required binary file", form)
	}
	if _, ok := upload.Responses["202"].Content["application/json"]; !ok || !slices.Contains(upload.Tags, "PostService") {
		t.Errorf("POST /api/posts/videos/: tags %v, responses %v; want PostService and a 202 JSON answer", upload.Tags, upload.Responses)
	}

	export, ok := doc.Paths["/api/users/export/"]["get"]
	if !ok {
		t.Fatal("no GET /api/users/export/")
	}
	if _, ok := export.Responses["200"].Content["application/zip"]; !ok || !slices.Contains(export.Tags, "UserService") {
		t.Errorf("GET /api/users/export/: tags %v, responses %v; want UserService and a 200 application/zip", export.Tags, export.Responses)
	}

	media, ok := doc.Paths["/media/{key}"]["get"]
	if !ok {
		t.Fatal("no GET /media/{key}")
	}
	var params []string
	for _, p := range media.Parameters {
		params = append(params, p.In+":"+p.Name)
	}
	for _, want := range []string{"path:key", "query:exp", "query:sig", "header:Range"} {
		if !slices.Contains(params, want) {
			t.Errorf("GET /media/{key} parameters %v lack %s", params, want)
		}
	}
}

// Accounts come first in the reference: Swagger UI shows the tags in the
// order of the document, and every tag an operation uses is one of them.
func TestOpenAPI_TagsStartWithAccounts(t *testing.T) {
	t.Parallel()
	doc := mustOpenAPIDoc(t)
	var names []string
	for _, tag := range doc.Tags {
		names = append(names, tag.Name)
	}
	want := []string{"UserService", "PostService", "GroupService", "NotificationService", "ActivityService", "ModerationService", "Media"}
	if !slices.Equal(names, want) {
		t.Errorf("tags = %v, want %v", names, want)
	}
	for path, ops := range doc.Paths {
		for method, op := range ops {
			for _, tag := range op.Tags {
				if !slices.Contains(names, tag) {
					t.Errorf("%s %s has tag %q, which the document does not list", method, path, tag)
				}
			}
		}
	}
}
