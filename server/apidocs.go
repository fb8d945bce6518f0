package server

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"
)

// apiDocs holds the API reference page: index.html and init.js, written by
// hand, and the Swagger UI files that scripts/apidocs.sh copies from the npm
// package swagger-ui-dist (make generate runs it).
//
//go:embed apidocs
var apiDocs embed.FS

// apiDocsCSP lets the page load its own scripts, stylesheet and icon, fetch
// /openapi.yaml and call the API ("Try it out"), and nothing else. Swagger
// UI's stylesheet draws its icons as data: SVG images; it needs no inline
// script or style, eval, fonts or workers.
const apiDocsCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// apiDocsFile is one embedded file with the headers it is served with.
type apiDocsFile struct {
	name         string // in apiDocs
	contentType  string
	etag         string
	cacheControl string
}

// apiDocsHandler serves the browsable API reference, which reads the OpenAPI
// document at /openapi.yaml: /docs/ is the page, /docs/NAME one of the files
// it loads, and /docs redirects to /docs/. Every file is embedded, so the
// page works without the internet. Bundle files are cached for an hour and
// revalidated by ETag; the page itself is revalidated on every load.
// Answers 404 for any other name and 405 for methods other than GET and HEAD.
func apiDocsHandler() http.Handler {
	files := map[string]apiDocsFile{}
	err := fs.WalkDir(apiDocs, "apidocs", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		file, err := apiDocs.Open(name)
		if err != nil {
			return err
		}
		defer file.Close()
		sum := sha256.New()
		if _, err := io.Copy(sum, file); err != nil {
			return err
		}
		f := apiDocsFile{
			name:         name,
			contentType:  apiDocsContentType(name),
			etag:         `"` + hex.EncodeToString(sum.Sum(nil)[:16]) + `"`,
			cacheControl: "public, max-age=3600",
		}
		key := strings.TrimPrefix(name, "apidocs/")
		if key == "index.html" {
			key, f.cacheControl = "", "no-cache"
		}
		files[key] = f
		return nil
	})
	if err != nil {
		// The files are compiled in; reading them cannot fail at run time.
		panic("apidocs: " + err.Error())
	}

	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		rest, ok := strings.CutPrefix(r.URL.Path, "/docs")
		if !ok {
			http.NotFound(w, r)
			return
		}
		if rest == "" {
			target := "/docs/"
			if r.URL.RawQuery != "" {
				target += "?" + r.URL.RawQuery
			}
			http.Redirect(w, r, target, http.StatusMovedPermanently)
			return
		}
		f, ok := files[strings.TrimPrefix(rest, "/")]
		if !ok {
			http.NotFound(w, r)
			return
		}
		file, err := apiDocs.Open(f.name)
		if err != nil {
			http.Error(w, "internal error", http.StatusInternalServerError)
			return
		}
		defer file.Close()
		h := w.Header()
		h.Set("Content-Type", f.contentType)
		h.Set("Cache-Control", f.cacheControl)
		h.Set("ETag", f.etag)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Content-Security-Policy", apiDocsCSP)
		// Files in an embed.FS are seekable.
		http.ServeContent(w, r, "", time.Time{}, file.(io.ReadSeeker))
	})
}

// apiDocsContentType names the media type of an embedded file by its
// extension; LICENSE, NOTICE and anything else unknown are plain text.
func apiDocsContentType(name string) string {
	switch path.Ext(name) {
	case ".html":
		return "text/html; charset=utf-8"
	case ".js":
		return "text/javascript; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".png":
		return "image/png"
	default:
		return "text/plain; charset=utf-8"
	}
}
