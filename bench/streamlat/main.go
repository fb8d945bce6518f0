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
	"flag"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"connectrpc.com/connect"

	"github.com/flock-social/flock/bench/internal/flockproc"
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
	srv, err := flockproc.Start(ctx, binary, dir, "FLOCK_DATABASE_URL="+dbURL, "FLOCK_REDIS_URL="+redisURL,
		// Frequent collections keep the heap in use close to the live heap,
		// so the per-stream memory is not lost in the garbage that making
		// users (argon2id, 19 MiB a hash) leaves behind.
		"GOGC=10")
	if err != nil {
		return err
	}
	defer srv.Stop()
	base := srv.URL

	h1 := &http.Client{Timeout: time.Minute}
	var protocols http.Protocols
	protocols.SetUnencryptedHTTP2(true)
	h2c := &http.Client{Transport: &http.Transport{Protocols: &protocols}}
	usersAPI := flockv1connect.NewUserServiceClient(h1, base)
	postsAPI := flockv1connect.NewPostServiceClient(h1, base)
	notes := flockv1connect.NewNotificationServiceClient(h2c, base, connect.WithGRPC())

	fmt.Printf("making %d users (argon2id makes this the slow part)\n", nUsers+1)
	accounts, err := makeUsers(ctx, srv, usersAPI, nUsers+1)
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

// makeUsers registers, verifies and logs in n users, 8 at a time.
func makeUsers(ctx context.Context, srv *flockproc.Server, api flockv1connect.UserServiceClient, n int) ([]*account, error) {
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
			name := fmt.Sprintf("lat%05d", i)
			id, token, err := srv.MakeUser(ctx, api, name)
			if err != nil {
				errs <- err
				return
			}
			out[i] = &account{id: id, name: name, token: token}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return nil, err
	}
	return out, nil
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
