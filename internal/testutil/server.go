package testutil

import (
	"bufio"
	"context"
	"errors"
	"github.com/alexedwards/argon2id"
	"io"
	"log/slog"
	"mime/quotedprintable"
	"net"
	"net/http"
	"net/mail"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flock-social/flock/internal/store"
	"github.com/flock-social/flock/internal/timeline"
	"github.com/flock-social/flock/internal/video"
	"github.com/flock-social/flock/server"
)

// Server is a Flock server on a real listener of this machine, with the
// file mailer, so tests read the emails it sends.
type Server struct {
	// URL is the base URL, http://127.0.0.1:<port>.
	URL string
	// App is the wired server, for reaching the store in assertions.
	App *server.App
	// MailDir is where the file mailer writes one .eml per message.
	MailDir string
	// HTTP speaks HTTP/1.1, as browsers and curl do against plain http://.
	HTTP *http.Client
	// H2C speaks cleartext HTTP/2 with prior knowledge, as gRPC clients do.
	H2C *http.Client
	// Config is the configuration the server was opened with.
	Config server.Config
}

// MustServer starts a server on engine's database (see Engines) and stops
// it when the test ends. configure, when given, adjusts the configuration.
func MustServer(tb testing.TB, engine string, configure ...func(*server.Config)) *Server {
	tb.Helper()
	dir := tb.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("listen: %v", err)
	}
	cfg := server.Config{
		Addr:        ln.Addr().String(),
		DataDir:     dir,
		DatabaseURL: MustDatabaseURL(tb, engine),
		Mailer:      "file:" + filepath.Join(dir, "mail"),
		JWTSecret:   "test-secret-that-is-at-least-32-bytes-long",
		// Videos are queued but not processed unless a test asks for it
		// (Video.Workers > 0), so that most servers run no ffmpeg.
		Video: video.Config{Workers: -1, JobPoll: 50 * time.Millisecond},
		// No timeline jobs run: a working job queue polls (SQLite) or holds
		// a pgx pool (Postgres) per server, and with dozens of test servers
		// alive at once under -race that tripled the suite's time and
		// exhausted Postgres's max_connections. Posts then stay pending
		// and every feed read merges them (the same read path); the
		// timeline tests (server/timeline_test.go) ask for workers.
		Timeline: timeline.Config{Workers: -1},
		// Like the queues above: tests that need the general queue's
		// workers (email retries, file removal) set JobWorkers.
		JobWorkers: -1,
		// Cheap password hashes: MustAccount would otherwise spend ~0.4 s
		// of CPU per account under -race. internal/account's tests keep
		// the production parameters.
		PasswordParams: &argon2id.Params{Memory: 64, Iterations: 1, Parallelism: 1, SaltLength: 16, KeyLength: 32},
		Logger:         slog.New(slog.NewTextHandler(testWriter{tb}, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
	for _, f := range configure {
		f(&cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	app, err := server.Open(ctx, cfg)
	if err != nil {
		cancel()
		ln.Close()
		tb.Fatalf("open server: %v", err)
	}
	if app.DB().Engine == store.Postgres {
		LimitPool(app.DB())
	}
	done := make(chan error, 1)
	go func() { done <- app.Serve(ctx, ln, 10*time.Second) }()
	srv := &Server{
		URL:     "http://" + cfg.Addr,
		App:     app,
		MailDir: filepath.Join(dir, "mail"),
		HTTP:    &http.Client{Timeout: 30 * time.Second},
		H2C:     NewH2CClient(),
		Config:  cfg,
	}
	tb.Cleanup(func() {
		// The test's own connections go first, so that shutdown has no
		// half-open client connection to wait for.
		srv.HTTP.CloseIdleConnections()
		srv.H2C.CloseIdleConnections()
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("serve: %v", err)
		}
		if err := app.Close(); err != nil {
			tb.Errorf("close server: %v", err)
		}
	})
	return srv
}

// NewH2CClient returns an HTTP client that speaks only cleartext HTTP/2
// with prior knowledge (h2c), as gRPC clients do. Streams may stay open, so
// it sets no overall timeout.
func NewH2CClient() *http.Client {
	var protocols http.Protocols
	protocols.SetUnencryptedHTTP2(true)
	return &http.Client{Transport: &http.Transport{Protocols: &protocols}}
}

// testWriter sends server logs to the test log, shown only on failure.
type testWriter struct{ tb testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.tb.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

var tokenInLink = regexp.MustCompile(`/verify-email\?token=([A-Za-z0-9_-]+)`)

// MustVerificationToken waits (up to 10s) for the newest verification email
// to address and returns the token of its link.
func (s *Server) MustVerificationToken(tb testing.TB, address string) string {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if tok, err := s.latestToken(address); err == nil && tok != "" {
			return tok
		} else if time.Now().After(deadline) {
			tb.Fatalf("no verification email to %s in %s (err %v)", address, s.MailDir, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Emails returns the decoded text of every email sent to address, oldest first.
func (s *Server) Emails(tb testing.TB, address string) []string {
	tb.Helper()
	bodies, err := s.emails(address)
	if err != nil {
		tb.Fatalf("read emails: %v", err)
	}
	return bodies
}

func (s *Server) latestToken(address string) (string, error) {
	bodies, err := s.emails(address)
	if err != nil || len(bodies) == 0 {
		return "", err
	}
	m := tokenInLink.FindStringSubmatch(bodies[len(bodies)-1])
	if m == nil {
		return "", errors.New("newest email has no verification link")
	}
	return m[1], nil
}

func (s *Server) emails(address string) ([]string, error) {
	entries, err := os.ReadDir(s.MailDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".eml") {
			continue
		}
		f, err := os.Open(filepath.Join(s.MailDir, e.Name()))
		if err != nil {
			return nil, err
		}
		msg, err := mail.ReadMessage(f)
		if err != nil {
			f.Close()
			return nil, err
		}
		to, _ := msg.Header.AddressList("To")
		if !slices.ContainsFunc(to, func(a *mail.Address) bool { return strings.EqualFold(a.Address, address) }) {
			f.Close()
			continue
		}
		var body io.Reader = msg.Body
		if strings.EqualFold(msg.Header.Get("Content-Transfer-Encoding"), "quoted-printable") {
			body = quotedprintable.NewReader(body)
		}
		b, err := io.ReadAll(body)
		f.Close()
		if err != nil {
			return nil, err
		}
		out = append(out, string(b))
	}
	return out, nil // ReadDir sorts by name, and the file mailer's names sort by time
}

// Metric reads one sample of the server's /metrics, e.g.
// `flock_streams_open` or `flock_stream_store_reads_total{read="events"}`.
func (s *Server) Metric(tb testing.TB, sample string) float64 {
	tb.Helper()
	res, err := s.HTTP.Get(s.URL + "/metrics")
	if err != nil {
		tb.Fatal(err)
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), sample+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				tb.Fatal(err)
			}
			return f
		}
	}
	tb.Fatalf("/metrics has no %s", sample)
	return 0
}
