// Package flockproc runs the flock binary as a child process for the load
// tools under bench/, so that the server's memory and CPU are measured
// apart from the client's, and makes verified, logged-in users on it
// through the API (reading verification tokens from the file mailer).
package flockproc

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"mime/quotedprintable"
	"net"
	"net/http"
	"net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"connectrpc.com/connect"

	flockv1 "github.com/flock-social/flock/gen/go/flock/v1"
	"github.com/flock-social/flock/gen/go/flock/v1/flockv1connect"
)

// Password is the password of every user MakeUser makes.
const Password = "benchmark-password"

// Server is a running flock process.
type Server struct {
	// URL is its base URL, http://127.0.0.1:<port>.
	URL string
	// Cmd is the process, e.g. for its pid.
	Cmd *exec.Cmd
	// MailDir is where its file mailer writes.
	MailDir string

	stop sync.Once
}

// Start runs binary on a free loopback port with its data in dir, the file
// mailer, rate limits off and warn-level logs, plus env (KEY=value, taking
// precedence), and waits up to 30s for /readyz. Stop ends it.
func Start(ctx context.Context, binary, dir string, env ...string) (*Server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	s := &Server{URL: "http://" + addr, MailDir: filepath.Join(dir, "mail")}
	s.Cmd = exec.CommandContext(ctx, binary)
	s.Cmd.Env = append(os.Environ(), "FLOCK_ADDR="+addr, "FLOCK_DATA_DIR="+dir, "FLOCK_MAILER=file:"+s.MailDir,
		"FLOCK_RATE_LIMITS=off", "FLOCK_LOG_LEVEL=warn")
	s.Cmd.Env = append(s.Cmd.Env, env...)
	s.Cmd.Stdout, s.Cmd.Stderr = os.Stdout, os.Stderr
	if err := s.Cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s (build it with: go build -o bin/flock ./server/cmd/flock): %w", binary, err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if res, err := http.Get(s.URL + "/readyz"); err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return s, nil
			}
		}
		if time.Now().After(deadline) {
			s.Stop()
			return nil, errors.New("server did not become ready in 30s")
		}
	}
}

// Stop interrupts the server (a graceful shutdown) and waits for it.
func (s *Server) Stop() {
	s.stop.Do(func() {
		_ = s.Cmd.Process.Signal(os.Interrupt)
		_ = s.Cmd.Wait()
	})
}

// MakeUser registers name (email <name>@example.com, password Password),
// verifies it with the token from its email, logs in, and returns the user
// ID and an access token.
func (s *Server) MakeUser(ctx context.Context, api flockv1connect.UserServiceClient, name string) (id, token string, err error) {
	email := name + "@example.com"
	reg, err := api.Register(ctx, connect.NewRequest(&flockv1.RegisterRequest{Username: name, Email: email, Password: Password}))
	if err != nil {
		return "", "", fmt.Errorf("register %s: %w", name, err)
	}
	var verify string
	for deadline := time.Now().Add(30 * time.Second); verify == ""; time.Sleep(20 * time.Millisecond) {
		if verify, err = FindToken(s.MailDir, email); err != nil {
			return "", "", err
		}
		if verify == "" && time.Now().After(deadline) {
			return "", "", fmt.Errorf("no verification email for %s", email)
		}
	}
	if _, err := api.VerifyEmail(ctx, connect.NewRequest(&flockv1.VerifyEmailRequest{Token: verify})); err != nil {
		return "", "", fmt.Errorf("verify %s: %w", name, err)
	}
	login, err := api.Login(ctx, connect.NewRequest(&flockv1.LoginRequest{
		Identifier: &flockv1.LoginRequest_Username{Username: name}, Password: Password}))
	if err != nil {
		return "", "", fmt.Errorf("login %s: %w", name, err)
	}
	return reg.Msg.GetUser().GetId(), login.Msg.GetAccessToken(), nil
}

var tokenInLink = regexp.MustCompile(`/verify-email\?token=([A-Za-z0-9_-]+)`)

// FindToken reads the verification token sent to email from the file
// mailer's .eml files in dir; "" while there is none yet.
func FindToken(dir, email string) (string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	} else if err != nil {
		return "", err
	}
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".eml") {
			continue
		}
		f, err := os.Open(filepath.Join(dir, e.Name()))
		if err != nil {
			return "", err
		}
		msg, err := mail.ReadMessage(bufio.NewReader(f))
		if err != nil {
			f.Close()
			continue // still being written
		}
		if !strings.Contains(msg.Header.Get("To"), email) {
			f.Close()
			continue
		}
		b, _ := io.ReadAll(quotedprintable.NewReader(msg.Body))
		f.Close()
		if m := tokenInLink.FindSubmatch(b); m != nil {
			return string(m[1]), nil
		}
	}
	return "", nil
}
