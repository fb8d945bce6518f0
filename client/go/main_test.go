package client_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/quotedprintable"
	"net/http"
	"net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"

	client "github.com/flock-social/flock/client/go"
	flockv1 "github.com/flock-social/flock/gen/go/flock/v1"
)

// flockURL is the base URL of the server the examples talk to, started by
// TestMain: examples have no testing.TB to start one with. The tests of the
// SDK against servers started in process are in client/gotest (the server
// module): this module requires nothing of the server.
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

// repoRoot is the root of the Flock checkout this module sits in (two
// directories up), or "" when it is not in one (a copy from the module
// proxy).
func repoRoot() string {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		return ""
	}
	b, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil || !strings.HasPrefix(string(b), "module github.com/flock-social/flock\n") {
		return ""
	}
	return root
}

// run builds the server of this checkout and starts it as a process, as
// a user of the SDK would have it: on SQLite, with the file mailer, no
// video processing and no rate limits. It registers the account "alice",
// runs the tests and examples, and stops the server.
func run(m *testing.M) (code int, err error) {
	root := repoRoot()
	if root == "" {
		fmt.Println("client tests: not in a Flock checkout, no server to run the examples against: skipped")
		return 0, nil
	}
	dir, err := os.MkdirTemp("", "flock-client-examples-")
	if err != nil {
		return 1, err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "flock")
	build := exec.Command("go", "build", "-o", bin, "./server/cmd/flock")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		return 1, fmt.Errorf("build the server: %v\n%s", err, out)
	}
	mailDir := filepath.Join(dir, "mail")
	srv := exec.Command(bin,
		"-addr", "127.0.0.1:0",
		"-data-dir", filepath.Join(dir, "data"),
		"-mailer", "file:"+mailDir,
		"-jwt-secret", "client-examples-secret-of-at-least-32-bytes",
		// Uploads are queued, never processed: no ffmpeg needed, and a
		// video stays VIDEO_STATUS_PROCESSING.
		"-video-workers", "-1",
		"-rate-limits", "off",
		"-log-format", "json",
		"-shutdown-drain", "0",
	)
	srv.Env = append(os.Environ(), "FLOCK_ENV=development")
	logs, err := srv.StderrPipe()
	if err != nil {
		return 1, err
	}
	if err := srv.Start(); err != nil {
		return 1, fmt.Errorf("start the server: %w", err)
	}
	exited := make(chan error, 1)
	defer func() {
		http.DefaultClient.CloseIdleConnections()
		_ = srv.Process.Signal(syscall.SIGTERM)
		if werr := <-exited; werr != nil && err == nil && code == 0 {
			err = fmt.Errorf("the server: %w", werr)
		}
	}()
	addr, rest, err := serving(logs)
	go func() {
		_, _ = io.Copy(io.Discard, rest) // the server must never block on its log
		exited <- srv.Wait()
	}()
	if err != nil {
		return 1, err
	}

	flockURL = "http://" + addr
	examples = &exampleServer{url: flockURL, mailDir: mailDir}
	if err := examples.register(context.Background(), "alice"); err != nil {
		return 1, err
	}
	return m.Run(), nil
}

// serving reads the server's JSON log up to its "flock serving" line and
// returns the address it listens on, and the rest of the log.
func serving(logs io.Reader) (addr string, rest io.Reader, err error) {
	r := bufio.NewReader(logs)
	var seen []string
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return "", r, fmt.Errorf("the server stopped before serving (%v); its log:\n%s", err, strings.Join(seen, ""))
		}
		seen = append(seen, line)
		var rec struct {
			Msg  string `json:"msg"`
			Addr string `json:"addr"`
		}
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "flock serving" {
			return rec.Addr, r, nil
		}
	}
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
