package client_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime/quotedprintable"
	"net"
	"net/http"
	"net/mail"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"

	client "github.com/flock-social/flock/client/go"
	flockv1 "github.com/flock-social/flock/gen/go/flock/v1"
	"github.com/flock-social/flock/internal/video"
	"github.com/flock-social/flock/server"
)

// flockURL is the base URL of the server the examples talk to, started by
// TestMain: examples have no testing.TB to start one with. Tests start
// their own through testutil.MustServer.
var flockURL string

// examples is the server behind flockURL.
var examples *exampleServer

// examplePassword is the password of every account the examples use.
const examplePassword = "correct horse"

func TestMain(m *testing.M) {
	code, err := run(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "client tests:", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

// run starts the examples' server with the account "alice", runs the
// tests and examples, and stops the server.
func run(m *testing.M) (code int, err error) {
	dir, err := os.MkdirTemp("", "flock-client-examples-")
	if err != nil {
		return 1, err
	}
	defer os.RemoveAll(dir)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 1, err
	}
	cfg := server.Config{
		Addr:      ln.Addr().String(),
		DataDir:   dir,
		Mailer:    "file:" + filepath.Join(dir, "mail"),
		JWTSecret: "client-examples-secret-of-at-least-32-bytes",
		// Uploads are queued, never processed: no ffmpeg needed, and a
		// video stays VIDEO_STATUS_PROCESSING.
		Video:  video.Config{Workers: -1},
		Logger: slog.New(slog.DiscardHandler),
	}
	ctx, cancel := context.WithCancel(context.Background())
	app, err := server.Open(ctx, cfg)
	if err != nil {
		cancel()
		ln.Close()
		return 1, fmt.Errorf("open server: %w", err)
	}
	served := make(chan error, 1)
	go func() { served <- app.Serve(ctx, ln, time.Second) }()
	defer func() {
		http.DefaultClient.CloseIdleConnections()
		cancel()
		err = errors.Join(err, <-served, app.Close())
	}()

	flockURL = "http://" + cfg.Addr
	examples = &exampleServer{url: flockURL, mailDir: filepath.Join(dir, "mail")}
	if err := examples.register(context.Background(), "alice"); err != nil {
		return 1, err
	}
	return m.Run(), nil
}

// exampleServer registers the accounts examples log in with.
type exampleServer struct {
	url     string
	mailDir string
	seq     atomic.Int64
}

// newExampleUser registers and verifies a fresh account whose username
// starts with prefix, with examplePassword, and returns its username.
// Examples that change an account's state use fresh ones, so that they
// give the same output however often they run.
func newExampleUser(prefix string) string {
	username := fmt.Sprintf("%s_%d", prefix, examples.seq.Add(1))
	if err := examples.register(context.Background(), username); err != nil {
		panic(err)
	}
	return username
}

// register creates username (email <username>@example.com) and verifies
// its email through the token of the link the server mailed.
func (s *exampleServer) register(ctx context.Context, username string) error {
	users := client.New(s.url).Users
	email := strings.ToLower(username) + "@example.com"
	_, err := users.Register(ctx, connect.NewRequest(&flockv1.RegisterRequest{Username: username, Email: email, Password: examplePassword}))
	if err != nil {
		return fmt.Errorf("register %s: %w", username, err)
	}
	token, err := s.verificationToken(email)
	if err != nil {
		return err
	}
	if _, err := users.VerifyEmail(ctx, connect.NewRequest(&flockv1.VerifyEmailRequest{Token: token})); err != nil {
		return fmt.Errorf("verify %s: %w", email, err)
	}
	return nil
}

var tokenInLink = regexp.MustCompile(`/verify-email\?token=([A-Za-z0-9_-]+)`)

// verificationToken waits (up to 10s) for the verification email to
// address and returns the token of its link.
func (s *exampleServer) verificationToken(address string) (string, error) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		token, err := s.latestToken(address)
		if token != "" {
			return token, nil
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("no verification email to %s in %s (err %v)", address, s.mailDir, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// latestToken reads the newest email to address; the file mailer's names
// sort by time.
func (s *exampleServer) latestToken(address string) (string, error) {
	entries, err := os.ReadDir(s.mailDir)
	if err != nil {
		return "", err
	}
	token := ""
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".eml") {
			continue
		}
		body, to, err := readEmail(filepath.Join(s.mailDir, e.Name()))
		if err != nil {
			return "", err
		}
		if !strings.EqualFold(to, address) {
			continue
		}
		if m := tokenInLink.FindStringSubmatch(body); m != nil {
			token = m[1]
		}
	}
	return token, nil
}

// readEmail returns the decoded body of an .eml file and its first recipient.
func readEmail(path string) (body, to string, err error) {
	f, err := os.Open(path)
	if err != nil {
		return "", "", err
	}
	defer f.Close()
	msg, err := mail.ReadMessage(f)
	if err != nil {
		return "", "", fmt.Errorf("read %s: %w", path, err)
	}
	if list, err := msg.Header.AddressList("To"); err == nil && len(list) > 0 {
		to = list[0].Address
	}
	var r io.Reader = msg.Body
	if strings.EqualFold(msg.Header.Get("Content-Transfer-Encoding"), "quoted-printable") {
		r = quotedprintable.NewReader(r)
	}
	b, err := io.ReadAll(r)
	return string(b), to, err
}
