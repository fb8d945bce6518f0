package server

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"sync"
	"time"

	web "github.com/flock-social/flock/client/web"
)

// webAppCSP: the app loads its own script and stylesheet and talks to its
// own origin only; no inline script or style, no eval, no frames. Images
// may be data: or blob: URLs (avatar previews), video blob: URLs.
const webAppCSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; " +
	"media-src 'self' blob:; connect-src 'self'; font-src 'none'; object-src 'none'; frame-ancestors 'none'; " +
	"base-uri 'none'; form-action 'self'"

// webAppReserved are the path prefixes of the API and of the server's own
// pages: a request under them that no other route took is a 404, never the
// app's index.html.
var webAppReserved = []string{
	"/api/", "/flock.v1.", "/grpc.", "/media/", "/docs", "/verify-email", "/reset-password",
	"/metrics", "/healthz", "/readyz", "/openapi.yaml",
}

// webAppFile is one embedded file of the app with the headers it is served with.
type webAppFile struct {
	name         string // in web.Dist
	contentType  string
	etag         string
	cacheControl string
	gzipped      []byte // the file gzipped once at start, for text files
}

// webAppHandler serves the web app (client/web/dist, embedded) at "/": the
// content-hashed files under /assets/ are cached for a year as immutable,
// and every other GET of a path that is not the API's (an app route such as
// /p/ID or /settings) gets index.html, revalidated on each load, so that a
// deployment is picked up at once. A path with a file extension that is not
// one of the app's files is a 404.
func webAppHandler() http.Handler {
	files := webAppFiles()
	index, haveIndex := files["/index.html"]

	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		for _, prefix := range webAppReserved {
			if strings.HasPrefix(p, prefix) || p == strings.TrimSuffix(prefix, "/") {
				http.NotFound(w, r)
				return
			}
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		f, ok := files[p]
		if !ok || p == "/index.html" {
			if path.Ext(p) != "" || strings.HasPrefix(p, "/assets/") || !haveIndex {
				http.NotFound(w, r)
				return
			}
			f = index
		}
		h := w.Header()
		h.Set("Content-Type", f.contentType)
		h.Set("Cache-Control", f.cacheControl)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("Content-Security-Policy", webAppCSP)
		if f.gzipped != nil {
			h.Add("Vary", "Accept-Encoding")
			if acceptsGzip(r.Header.Get("Accept-Encoding")) {
				h.Set("Content-Encoding", "gzip")
				h.Set("ETag", strings.TrimSuffix(f.etag, `"`)+`-gz"`)
				http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(f.gzipped))
				return
			}
		}
		file, err := web.Dist.Open(f.name)
		if err != nil {
			http.Error(w, "internal error", http.StatusInternalServerError)
			return
		}
		defer file.Close()
		h.Set("ETag", f.etag)
		// Files in an embed.FS are seekable.
		http.ServeContent(w, r, "", time.Time{}, file.(io.ReadSeeker))
	})
}

// webAppFiles reads and compresses the app's files once per process, not
// once per server opened: gzip at best compression for every server was
// 6 % of the server package's test CPU, and a cost at every start.
var webAppFiles = sync.OnceValue(func() map[string]webAppFile {
	files := map[string]webAppFile{}
	err := fs.WalkDir(web.Dist, "dist", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(web.Dist, name)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		key := "/" + strings.TrimPrefix(name, "dist/")
		f := webAppFile{name: name, contentType: webAppContentType(name), etag: `"` + hex.EncodeToString(sum[:16]) + `"`, cacheControl: "public, max-age=3600"}
		if strings.HasPrefix(key, "/assets/") {
			f.cacheControl = "public, max-age=31536000, immutable"
		}
		if key == "/index.html" {
			f.cacheControl = "no-cache"
		}
		if strings.HasPrefix(f.contentType, "text/") || f.contentType == "image/svg+xml" || f.contentType == "application/json" {
			var buf bytes.Buffer
			zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
			_, _ = zw.Write(b)
			if err := zw.Close(); err != nil {
				return err
			}
			f.gzipped = buf.Bytes()
		}
		files[key] = f
		return nil
	})
	if err != nil {
		// The files are compiled in; reading them cannot fail at run time.
		panic("webapp: " + err.Error())
	}
	return files
})

// acceptsGzip reports whether an Accept-Encoding header allows gzip (and
// does not refuse it with q=0).
func acceptsGzip(header string) bool {
	for _, part := range strings.Split(header, ",") {
		name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(name), "gzip") {
			q := strings.ReplaceAll(strings.TrimSpace(params), " ", "")
			return q != "q=0" && q != "q=0.0" && q != "q=0.00" && q != "q=0.000"
		}
	}
	return false
}

func webAppContentType(name string) string {
	switch path.Ext(name) {
	case ".html":
		return "text/html; charset=utf-8"
	case ".js":
		return "text/javascript; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".svg":
		return "image/svg+xml"
	case ".png":
		return "image/png"
	case ".ico":
		return "image/x-icon"
	case ".json", ".webmanifest":
		return "application/json"
	default:
		return "application/octet-stream"
	}
}
