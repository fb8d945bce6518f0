package account_test

import (
	"context"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	netmail "net/mail"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"gocloud.dev/blob"

	"github.com/flock-social/flock"
	"github.com/flock-social/flock/internal/account"
	"github.com/flock-social/flock/internal/account/accesstoken"
	"github.com/flock-social/flock/internal/jobs"
	"github.com/flock-social/flock/internal/mail"
	"github.com/flock-social/flock/internal/media/bucket"
	"github.com/flock-social/flock/internal/notify"
	"github.com/flock-social/flock/internal/pubsub"
	"github.com/flock-social/flock/internal/session"
	"github.com/flock-social/flock/internal/store"
	"github.com/flock-social/flock/internal/testutil"
)

// testSecret signs the tests' access tokens and mail links.
var testSecret = []byte("flock-test-secret-0123456789abcdef")

// env is an account.Service on real dependencies: a fresh store, a file
// mailer and a fileblob bucket in temporary directories, and one settable
// clock for the database and the access tokens.
type env struct {
	db      *store.DB
	svc     *account.Service
	clock   *clock
	mailDir string
	bucket  *blob.Bucket
	outbox  *mail.Outbox
}

// clock is a settable time source; it starts at the real time.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// MustEnv returns an env on the given engine, torn down when the test ends.
// configure, when given, adjusts the service's configuration.
func MustEnv(tb testing.TB, engine string, configure ...func(*account.Config)) *env {
	tb.Helper()
	ctx := context.Background()
	e := &env{db: testutil.MustStore(tb, engine), clock: &clock{t: time.Now().UTC()}, mailDir: filepath.Join(tb.TempDir(), "mail")}
	e.db.Now = e.clock.Now
	log := slog.New(slog.NewTextHandler(tb.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	mailer, err := mail.Open("file:"+e.mailDir, "", log)
	if err != nil {
		tb.Fatal(err)
	}
	e.bucket, err = bucket.Open(ctx, "file://"+filepath.Join(tb.TempDir(), "media"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { e.bucket.Close() })
	tokens, err := accesstoken.New(testSecret, 15*time.Minute, e.clock.Now)
	if err != nil {
		tb.Fatal(err)
	}
	broker, err := pubsub.Open("")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { broker.Close() })
	// The session cache is on, as in the server, on the same clock.
	sessions, err := session.New(ctx, broker, e.clock.Now, session.Config{}, log)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(sessions.Close)
	cfg := account.Config{PublicURL: "https://flock.test/", Sessions: sessions}
	for _, f := range configure {
		f(&cfg)
	}
	events := notify.NewService(e.db, broker, log)
	// Wake-ups are published in the background: wait for them before the
	// broker closes, or a late one would fail and log after the test ended
	// (a data race on the test's output).
	tb.Cleanup(events.Wait)
	// Emails go through the outbox on a job queue that works no jobs: the
	// eager path sends them, as in a server.
	queue := jobs.New(jobs.Config{}, log)
	outbox, err := mail.NewOutbox(queue, mailer, testSecret, mail.OutboxConfig{}, log)
	if err != nil {
		tb.Fatal(err)
	}
	e.outbox = outbox
	if err := queue.Open(ctx, e.db, ""); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { queue.Close(ctx) })
	// Eager sends in flight end before the queue and the store close:
	// one that found them closed logged after its test had ended (a data
	// race on the test's output).
	tb.Cleanup(func() { _ = outbox.Close(context.Background()) })
	e.svc, err = account.NewService(e.db, outbox, e.bucket, tokens, events, cfg, log)
	if err != nil {
		tb.Fatal(err)
	}
	// Registered last, so it runs first: no email is still being written
	// when the directories and the store go.
	tb.Cleanup(e.svc.Close)
	return e
}

// forEachEngine runs fn in parallel subtests, one per engine, each with its
// own env.
func forEachEngine(t *testing.T, fn func(t *testing.T, e *env), configure ...func(*account.Config)) {
	t.Helper()
	for _, engine := range testutil.Engines(t) {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			fn(t, MustEnv(t, engine, configure...))
		})
	}
}

// password is a valid password for tests that are not about passwords.
const password = "correct horse battery"

// MustRegister registers username with the email username@example.com.
func (e *env) MustRegister(tb testing.TB, username string) *store.User {
	tb.Helper()
	u, err := e.svc.Register(context.Background(), account.RegisterInput{
		Username: username, Email: strings.ToLower(username) + "@example.com", Password: password, FullName: "Test " + username,
	})
	if err != nil {
		tb.Fatalf("register %s: %v", username, err)
	}
	return u
}

// MustVerifiedUser registers username and verifies its email.
func (e *env) MustVerifiedUser(tb testing.TB, username string) *store.User {
	tb.Helper()
	u := e.MustRegister(tb, username)
	if _, err := e.svc.VerifyEmail(context.Background(), e.LatestToken(tb, u.Email)); err != nil {
		tb.Fatalf("verify %s: %v", username, err)
	}
	return u
}

// MustLogin logs in and fails the test if that does not work.
func (e *env) MustLogin(tb testing.TB, login, pw string) *account.TokenPair {
	tb.Helper()
	pair, err := e.svc.Login(context.Background(), login, pw)
	if err != nil {
		tb.Fatalf("login %s: %v", login, err)
	}
	return pair
}

// MustAuthenticate returns the principal of an access token.
func (e *env) MustAuthenticate(tb testing.TB, access string) *account.Principal {
	tb.Helper()
	p, err := e.svc.Authenticate(context.Background(), access)
	if err != nil {
		tb.Fatalf("authenticate: %v", err)
	}
	return p
}

var tokenInLink = regexp.MustCompile(`/verify-email\?token=([A-Za-z0-9_-]+)`)

// Emails returns the text of every email sent to address, in the order they
// were written. Emails go out in the background, so two sent close together
// may be written in either order. Emails waits for those still being sent,
// so it must not run beside a call that sends one.
func (e *env) Emails(tb testing.TB, address string) []string {
	tb.Helper()
	e.svc.Close()                            // the work done after answering
	_ = e.outbox.Close(context.Background()) // the emails it and the requests queued
	entries, err := os.ReadDir(e.mailDir)    // sorted by name: the time of sending
	if err != nil {
		tb.Fatal(err)
	}
	var texts []string
	for _, entry := range entries {
		if !strings.HasSuffix(entry.Name(), ".eml") {
			continue
		}
		to, text, err := readEmail(filepath.Join(e.mailDir, entry.Name()))
		if err != nil {
			tb.Fatalf("read %s: %v", entry.Name(), err)
		}
		if to == address {
			texts = append(texts, text)
		}
	}
	return texts
}

// Tokens returns the verification tokens sent to address, in the order
// their emails were written.
func (e *env) Tokens(tb testing.TB, address string) []string {
	tb.Helper()
	var tokens []string
	for _, text := range e.Emails(tb, address) {
		m := tokenInLink.FindStringSubmatch(text)
		if m == nil {
			tb.Fatalf("email to %s has no verification link:\n%s", address, text)
		}
		tokens = append(tokens, m[1])
	}
	return tokens
}

// LatestToken returns the verification token of the email to address that
// was written last.
func (e *env) LatestToken(tb testing.TB, address string) string {
	tb.Helper()
	tokens := e.Tokens(tb, address)
	if len(tokens) == 0 {
		tb.Fatalf("no email was sent to %s", address)
	}
	return tokens[len(tokens)-1]
}

// readEmail parses an .eml file and returns its one recipient and its plain
// text, decoded from its transfer encoding.
func readEmail(path string) (to, text string, err error) {
	f, err := os.Open(path)
	if err != nil {
		return "", "", err
	}
	defer f.Close()
	msg, err := netmail.ReadMessage(f)
	if err != nil {
		return "", "", err
	}
	addr, err := netmail.ParseAddress(msg.Header.Get("To"))
	if err != nil {
		return "", "", err
	}
	text, err = plainText(msg.Header.Get("Content-Type"), msg.Header.Get("Content-Transfer-Encoding"), msg.Body)
	return addr.Address, text, err
}

// plainText returns the first text/plain body in a (possibly multipart) body.
func plainText(contentType, encoding string, body io.Reader) (string, error) {
	mediaType, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		return "", err
	}
	if strings.HasPrefix(mediaType, "multipart/") {
		r := multipart.NewReader(body, params["boundary"])
		for {
			part, err := r.NextPart()
			if err != nil {
				return "", err // io.EOF: no text part
			}
			// multipart decodes quoted-printable itself and drops the header.
			text, err := plainText(part.Header.Get("Content-Type"), part.Header.Get("Content-Transfer-Encoding"), part)
			if err == nil && text != "" {
				return text, nil
			}
		}
	}
	if mediaType != "text/plain" {
		return "", nil
	}
	switch strings.ToLower(encoding) {
	case "quoted-printable":
		body = quotedprintable.NewReader(body)
	case "base64":
		body = base64.NewDecoder(base64.StdEncoding, body)
	}
	b, err := io.ReadAll(body)
	return string(b), err
}

// wantCode fails the test unless err carries the flock error code.
func wantCode(tb testing.TB, what string, err error, code string) {
	tb.Helper()
	if got := flock.ErrorCode(err); got != code {
		tb.Fatalf("%s: code %q (err %v), want %q", what, got, err, code)
	}
}

// isCode reports whether err carries the flock error code.
func isCode(err error, code string) bool { return flock.ErrorCode(err) == code }

// asFlockError returns the *flock.Error in err's chain, or one that only
// carries flock.ErrorCode(err).
func asFlockError(err error) *flock.Error {
	var fe *flock.Error
	if !errors.As(err, &fe) {
		return &flock.Error{Code: flock.ErrorCode(err)}
	}
	return fe
}
