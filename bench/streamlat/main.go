// Command streamlat measures Flock's live notifications: the delay from an
// action to its arrival on open streams (p50/p99) while many streams are
// open on one instance, and the memory each idle stream costs the server.
//
// It starts the flock binary as a child process on a loopback port (so the
// server's memory is measured alone, from its /metrics), makes the users it
// needs through the API, opens the streams over gRPC (h2c), then comments
// on each user's post in turn and times each notification's arrival on
// each of that user's streams. Traffic stays on 127.0.0.1 and every loop
// is bounded.
//
//	go build -o bin/flock ./server/cmd/flock
//	go run ./bench/streamlat -streams 1000 -users 200 -actions 400
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
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
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"connectrpc.com/connect"

	flockv1 "github.com/flock-social/flock/gen/go/flock/v1"
	"github.com/flock-social/flock/gen/go/flock/v1/flockv1connect"
)

func main() {
	var (
		binary  = flag.String("flock", "bin/flock", "path of the flock binary to start")
		streams = flag.Int("streams", 1000, "streams to hold open")
		users   = flag.Int("users", 200, "users the streams belong to (streams/users each)")
		actions = flag.Int("actions", 400, "comments to time (spread over the users)")
		dbURL   = flag.String("database-url", "", "FLOCK_DATABASE_URL for the server (default: SQLite in a temp dir)")
		redis   = flag.String("redis-url", "", "FLOCK_REDIS_URL for the server (default: in-process broker)")
	)
	flag.Parse()
	if err := run(*binary, *streams, *users, *actions, *dbURL, *redis); err != nil {
		fmt.Fprintln(os.Stderr, "streamlat:", err)
		os.Exit(1)
	}
}

type account struct {
	id, name, token string
	post            string
}

func run(binary string, nStreams, nUsers, nActions int, dbURL, redisURL string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("", "streamlat")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	base, stop, err := startServer(ctx, binary, dir, dbURL, redisURL)
	if err != nil {
		return err
	}
	defer stop()

	h1 := &http.Client{Timeout: time.Minute}
	var protocols http.Protocols
	protocols.SetUnencryptedHTTP2(true)
	h2c := &http.Client{Transport: &http.Transport{Protocols: &protocols}}
	usersAPI := flockv1connect.NewUserServiceClient(h1, base)
	postsAPI := flockv1connect.NewPostServiceClient(h1, base)
	notes := flockv1connect.NewNotificationServiceClient(h2c, base, connect.WithGRPC())

	fmt.Printf("making %d users (argon2id makes this the slow part)\n", nUsers+1)
	accounts, err := makeUsers(ctx, usersAPI, filepath.Join(dir, "mail"), nUsers+1)
	if err != nil {
		return err
	}
	actor, targets := accounts[0], accounts[1:]
	for _, a := range targets {
		res, err := postsAPI.CreatePost(ctx, authed(&flockv1.CreatePostRequest{Content: "comment here"}, a.token))
		if err != nil {
			return fmt.Errorf("create post: %w", err)
		}
		a.post = res.Msg.GetPost().GetId()
	}

	idle, err := serverMemory(ctx, h1, base)
	if err != nil {
		return err
	}
	fmt.Printf("opening %d streams\n", nStreams)
	type arrival struct {
		id string
		at time.Time
	}
	arrivals := make(chan arrival, nStreams*4)
	var open sync.WaitGroup
	streamsCtx, closeStreams := context.WithCancel(ctx)
	defer closeStreams()
	perUser := make(map[string]int)
	var wg sync.WaitGroup
	for i := range nStreams {
		a := targets[i%len(targets)]
		perUser[a.id]++
		open.Add(1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := notes.Subscribe(streamsCtx, authed(&flockv1.NotificationServiceSubscribeRequest{}, a.token))
			open.Done()
			if err != nil {
				if streamsCtx.Err() == nil {
					fmt.Fprintln(os.Stderr, "subscribe:", err)
				}
				return
			}
			defer s.Close()
			for s.Receive() {
				arrivals <- arrival{id: s.Msg().GetCommentId(), at: time.Now()}
			}
		}()
	}
	open.Wait()
	time.Sleep(2 * time.Second) // let the server settle before measuring
	held, err := serverMemory(ctx, h1, base)
	if err != nil {
		return err
	}

	fmt.Printf("timing %d comments\n", nActions)
	// Arrivals are matched to actions afterwards: a notification may well
	// arrive before the comment's own response does.
	var (
		mu   sync.Mutex
		got  []arrival
		sent = make(map[string]time.Time, nActions)
	)
	go func() {
		for ar := range arrivals {
			mu.Lock()
			got = append(got, ar)
			mu.Unlock()
		}
	}()
	expected := 0
	for i := range nActions {
		a := targets[i%len(targets)]
		expected += perUser[a.id]
		t0 := time.Now()
		res, err := postsAPI.CreateComment(ctx, authed(&flockv1.CreateCommentRequest{PostId: a.post, Content: fmt.Sprintf("timed %d", i)}, actor.token))
		if err != nil {
			return fmt.Errorf("comment: %w", err)
		}
		sent[res.Msg.GetComment().GetId()] = t0
		time.Sleep(5 * time.Millisecond) // a steady rate, not a burst
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n >= expected {
			break
		}
		if time.Now().After(deadline) {
			fmt.Printf("warning: %d of %d notifications arrived within 30s\n", n, expected)
			break
		}
	}
	closeStreams()
	mu.Lock()
	defer mu.Unlock()
	var delays []time.Duration
	for _, ar := range got {
		if t0, ok := sent[ar.id]; ok {
			delays = append(delays, ar.at.Sub(t0))
		}
	}
	slices.Sort(delays)
	pct := func(p float64) time.Duration {
		if len(delays) == 0 {
			return 0
		}
		return delays[min(len(delays)-1, int(float64(len(delays))*p))]
	}
	fmt.Printf("\nstreams open: %d (over %d users); comments: %d; deliveries: %d of %d\n", nStreams, len(targets), nActions, len(delays), expected)
	fmt.Printf("action -> arrival: p50 %s  p90 %s  p99 %s  max %s\n", pct(0.50).Round(10*time.Microsecond), pct(0.90).Round(10*time.Microsecond),
		pct(0.99).Round(10*time.Microsecond), pct(1).Round(10*time.Microsecond))
	per := func(after, before float64) string {
		return fmt.Sprintf("%.1f KiB", (after-before)/float64(nStreams)/1024)
	}
	fmt.Printf("server memory per idle stream: heap %s, goroutine stacks %s, process RSS %s (goroutines %.0f -> %.0f)\n",
		per(held.heap, idle.heap), per(held.stack, idle.stack), per(held.rss, idle.rss), idle.goroutines, held.goroutines)
	return nil
}

func authed[T any](msg *T, token string) *connect.Request[T] {
	req := connect.NewRequest(msg)
	req.Header().Set("Authorization", "Bearer "+token)
	return req
}

// startServer runs the flock binary on a free loopback port until stop.
func startServer(ctx context.Context, binary, dir, dbURL, redisURL string) (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.CommandContext(ctx, binary)
	cmd.Env = append(os.Environ(), "FLOCK_ADDR="+addr, "FLOCK_DATA_DIR="+dir, "FLOCK_MAILER=file:"+filepath.Join(dir, "mail"),
		"FLOCK_RATE_LIMITS=off", "FLOCK_LOG_LEVEL=warn", "FLOCK_DATABASE_URL="+dbURL, "FLOCK_REDIS_URL="+redisURL,
		// Frequent collections keep the heap in use close to the live heap,
		// so the per-stream memory is not lost in the garbage that making
		// users (argon2id, 19 MiB a hash) leaves behind.
		"GOGC=10")
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Start(); err != nil {
		return "", nil, fmt.Errorf("start %s (build it with: go build -o bin/flock ./server/cmd/flock): %w", binary, err)
	}
	stop := func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
	}
	base := "http://" + addr
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if res, err := http.Get(base + "/readyz"); err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return base, stop, nil
			}
		}
		if time.Now().After(deadline) {
			stop()
			return "", nil, errors.New("server did not become ready in 30s")
		}
	}
}

var tokenInLink = regexp.MustCompile(`/verify-email\?token=([A-Za-z0-9_-]+)`)

// makeUsers registers, verifies and logs in n users, 8 at a time.
func makeUsers(ctx context.Context, api flockv1connect.UserServiceClient, mailDir string, n int) ([]*account, error) {
	out := make([]*account, n)
	errs := make(chan error, n)
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			a, err := makeUser(ctx, api, mailDir, fmt.Sprintf("lat%05d", i))
			if err != nil {
				errs <- err
				return
			}
			out[i] = a
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return nil, err
	}
	return out, nil
}

func makeUser(ctx context.Context, api flockv1connect.UserServiceClient, mailDir, name string) (*account, error) {
	email := name + "@example.com"
	reg, err := api.Register(ctx, connect.NewRequest(&flockv1.RegisterRequest{Username: name, Email: email, Password: "benchmark-password"}))
	if err != nil {
		return nil, fmt.Errorf("register %s: %w", name, err)
	}
	var token string
	for deadline := time.Now().Add(30 * time.Second); token == ""; time.Sleep(20 * time.Millisecond) {
		if token, err = findToken(mailDir, email); err != nil {
			return nil, err
		}
		if token == "" && time.Now().After(deadline) {
			return nil, fmt.Errorf("no verification email for %s", email)
		}
	}
	if _, err := api.VerifyEmail(ctx, connect.NewRequest(&flockv1.VerifyEmailRequest{Token: token})); err != nil {
		return nil, fmt.Errorf("verify %s: %w", name, err)
	}
	login, err := api.Login(ctx, connect.NewRequest(&flockv1.LoginRequest{
		Identifier: &flockv1.LoginRequest_Username{Username: name}, Password: "benchmark-password"}))
	if err != nil {
		return nil, fmt.Errorf("login %s: %w", name, err)
	}
	return &account{id: reg.Msg.GetUser().GetId(), name: name, token: login.Msg.GetAccessToken()}, nil
}

// findToken reads the verification token sent to email from the file mailer's .eml files.
func findToken(dir, email string) (string, error) {
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

type memory struct{ heap, stack, rss, goroutines float64 }

// serverMemory reads the server's memory from its Prometheus metrics, after
// asking nothing of it: heap in use, goroutine stacks, resident set.
func serverMemory(ctx context.Context, hc *http.Client, base string) (memory, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	res, err := hc.Do(req)
	if err != nil {
		return memory{}, err
	}
	defer res.Body.Close()
	var m memory
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		v, _ := strconv.ParseFloat(value, 64)
		switch name {
		case "go_memstats_heap_inuse_bytes":
			m.heap = v
		case "go_memstats_stack_inuse_bytes":
			m.stack = v
		case "process_resident_memory_bytes":
			m.rss = v
		case "go_goroutines":
			m.goroutines = v
		}
	}
	return m, sc.Err()
}
