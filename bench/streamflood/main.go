// Command streamflood measures what one account opening very many live
// streams costs everybody else (security.md P24): it starts the flock
// binary as a child process, lets an "attacker" account try to open
// -attempts streams (WebSockets and gRPC Subscribe calls, -concurrency at
// a time), keeps those the server accepts open while another account
// comments on the attacker's post -rate times a second, and times other
// users' GetMe and ListFeed calls (p50/p99) before and during that, with
// the server's CPU per request, goroutines and resident memory read from
// its /metrics.
//
//	go build -o bin/flock ./server/cmd/flock
//	go run ./bench/streamflood -attempts 1000
//
// Run it against an older binary (-flock) or with -cap 0 (no cap) to
// compare. Traffic stays on 127.0.0.1 and every loop is bounded.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"
	"github.com/coder/websocket"

	"github.com/flock-social/flock/bench/internal/flockproc"
	flockv1 "github.com/flock-social/flock/gen/go/flock/v1"
	"github.com/flock-social/flock/gen/go/flock/v1/flockv1connect"
)

func main() {
	var (
		binary      = flag.String("flock", "bin/flock", "path of the flock binary to start")
		attempts    = flag.Int("attempts", 1000, "streams the attacker tries to open (half WebSocket, half gRPC)")
		concurrency = flag.Int("concurrency", 50, "stream openings at a time")
		requests    = flag.Int("requests", 2000, "GetMe and ListFeed calls timed per phase")
		workers     = flag.Int("workers", 4, "concurrent callers of the timed requests")
		rate        = flag.Int("rate", 20, "comments a second on the attacker's post (events to its streams)")
		limit       = flag.String("cap", "", "FLOCK_MAX_STREAMS_PER_USER for the server (empty: the server's default; 0: no cap)")
		dbURL       = flag.String("database-url", "", "FLOCK_DATABASE_URL for the server (default: SQLite in a temp dir)")
	)
	flag.Parse()
	if err := run(*binary, *attempts, *concurrency, *requests, *workers, *rate, *limit, *dbURL); err != nil {
		fmt.Fprintln(os.Stderr, "streamflood:", err)
		os.Exit(1)
	}
}

type account struct{ id, token string }

func run(binary string, attempts, concurrency, requests, workers, rate int, limit, dbURL string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("", "streamflood")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	env := []string{"FLOCK_DATABASE_URL=" + dbURL}
	if limit != "" {
		env = append(env, "FLOCK_MAX_STREAMS_PER_USER="+limit)
	}
	srv, err := flockproc.Start(ctx, binary, dir, env...)
	if err != nil {
		return err
	}
	defer srv.Stop()
	base := srv.URL

	h1 := &http.Client{Timeout: time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	var protocols http.Protocols
	protocols.SetUnencryptedHTTP2(true)
	h2c := &http.Client{Transport: &http.Transport{Protocols: &protocols}}
	usersAPI := flockv1connect.NewUserServiceClient(h1, base)
	postsAPI := flockv1connect.NewPostServiceClient(h1, base)

	fmt.Println("making users")
	var attacker, fan, reader account
	for i, a := range []*account{&attacker, &fan, &reader} {
		if a.id, a.token, err = srv.MakeUser(ctx, usersAPI, fmt.Sprintf("flood%d", i)); err != nil {
			return err
		}
	}
	// The reader's feed: 20 posts of someone it follows.
	if _, err := usersAPI.Follow(ctx, authed(&flockv1.FollowRequest{UserId: fan.id}, reader.token)); err != nil {
		return fmt.Errorf("follow: %w", err)
	}
	for i := range 20 {
		if _, err := postsAPI.CreatePost(ctx, authed(&flockv1.CreatePostRequest{Content: fmt.Sprintf("feed post %d", i)}, fan.token)); err != nil {
			return fmt.Errorf("create post: %w", err)
		}
	}
	target, err := postsAPI.CreatePost(ctx, authed(&flockv1.CreatePostRequest{Content: "comment here"}, attacker.token))
	if err != nil {
		return fmt.Errorf("create post: %w", err)
	}

	// Events for the attacker's streams, all along.
	eventsCtx, stopEvents := context.WithCancel(ctx)
	defer stopEvents()
	var comments atomic.Int64
	go func() {
		t := time.NewTicker(time.Second / time.Duration(max(rate, 1)))
		defer t.Stop()
		for i := 0; ; i++ {
			select {
			case <-eventsCtx.Done():
				return
			case <-t.C:
			}
			if _, err := postsAPI.CreateComment(eventsCtx, authed(&flockv1.CreateCommentRequest{PostId: target.Msg.GetPost().GetId(), Content: fmt.Sprintf("event %d", i)}, fan.token)); err == nil {
				comments.Add(1)
			}
		}
	}()

	timed := func(phase string) (phaseResult, error) {
		return measure(ctx, h1, base, phase, reader.token, requests, workers)
	}
	before, err := timed("no streams")
	if err != nil {
		return err
	}

	fmt.Printf("the attacker tries %d streams, %d at a time\n", attempts, concurrency)
	streamsCtx, closeStreams := context.WithCancel(ctx)
	defer closeStreams()
	notes := flockv1connect.NewNotificationServiceClient(h2c, base, connect.WithGRPC())
	wsBase := strings.Replace(base, "http", "ws", 1)
	var (
		accepted, refused, failed atomic.Int64
		delivered                 atomic.Int64
		refusal                   atomic.Value
		sem                       = make(chan struct{}, concurrency)
		openers                   sync.WaitGroup
		held                      sync.WaitGroup
	)
	start := time.Now()
	for i := range attempts {
		openers.Add(1)
		sem <- struct{}{}
		go func() {
			defer openers.Done()
			defer func() { <-sem }()
			if i%2 == 0 {
				conn, res, err := websocket.Dial(streamsCtx, wsBase+"/api/notifications/", &websocket.DialOptions{
					Subprotocols: []string{"flock.v1", "bearer." + attacker.token},
				})
				if err != nil {
					if res != nil && res.StatusCode == http.StatusTooManyRequests {
						refused.Add(1)
						refusal.CompareAndSwap(nil, "WebSocket: HTTP 429")
					} else {
						failed.Add(1)
					}
					return
				}
				accepted.Add(1)
				held.Add(1)
				go func() {
					defer held.Done()
					defer conn.CloseNow()
					for {
						if _, _, err := conn.Read(streamsCtx); err != nil {
							return
						}
						delivered.Add(1)
					}
				}()
				return
			}
			s, err := notes.Subscribe(streamsCtx, authed(&flockv1.NotificationServiceSubscribeRequest{}, attacker.token))
			if err == nil {
				s.ResponseHeader()
				// A refusal is the first thing the stream says; a stream
				// that is accepted stays quiet until an event.
				first := make(chan bool, 1)
				held.Add(1)
				go func() {
					defer held.Done()
					defer s.Close()
					n := 0
					for s.Receive() {
						if n++; n == 1 {
							first <- true
						}
						delivered.Add(1)
					}
					if n == 0 {
						err = s.Err()
						first <- false
					}
				}()
				select {
				case ok := <-first:
					if !ok {
						if connect.CodeOf(err) == connect.CodeResourceExhausted {
							refused.Add(1)
							refusal.CompareAndSwap(nil, "gRPC: "+err.Error())
						} else {
							failed.Add(1)
						}
						return
					}
				case <-time.After(2 * time.Second):
				}
				accepted.Add(1)
				return
			}
			failed.Add(1)
		}()
	}
	openers.Wait()
	fmt.Printf("attempts took %s: %d accepted, %d refused, %d failed otherwise\n", time.Since(start).Round(time.Millisecond), accepted.Load(), refused.Load(), failed.Load())
	if r, ok := refusal.Load().(string); ok {
		fmt.Printf("a refusal: %s\n", r)
	}
	time.Sleep(2 * time.Second) // let the server settle
	during, err := timed(fmt.Sprintf("%d streams held", accepted.Load()))
	if err != nil {
		return err
	}
	stopEvents()
	closeStreams()

	fmt.Printf("\n%d comments made on the attacker's post (%d/s); %d deliveries to its streams\n", comments.Load(), rate, delivered.Load())
	fmt.Println("| phase | GetMe p50 | GetMe p99 | ListFeed p50 | ListFeed p99 | server CPU per request | goroutines | RSS | stream event reads |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|")
	for _, r := range []phaseResult{before, during} {
		fmt.Println(r)
	}
	return nil
}

type phaseResult struct {
	name                       string
	me50, me99, feed50, feed99 time.Duration
	cpuPerRequest              time.Duration
	goroutines, rss            float64
	eventReads                 float64
}

func (r phaseResult) String() string {
	ms := func(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000) }
	return fmt.Sprintf("| %s | %s | %s | %s | %s | %s | %.0f | %.0f MiB | %.0f |", r.name, ms(r.me50), ms(r.me99), ms(r.feed50), ms(r.feed99),
		ms(r.cpuPerRequest), r.goroutines, r.rss/(1<<20), r.eventReads)
}

// measure times n requests (GetMe and ListFeed in turn) by workers callers
// and reads the server's CPU time around them.
func measure(ctx context.Context, hc *http.Client, base, name, token string, n, workers int) (phaseResult, error) {
	fmt.Printf("timing %d requests: %s\n", n, name)
	users := flockv1connect.NewUserServiceClient(hc, base)
	posts := flockv1connect.NewPostServiceClient(hc, base)
	m0, err := metrics(ctx, hc, base)
	if err != nil {
		return phaseResult{}, err
	}
	var (
		mu       sync.Mutex
		me, feed []time.Duration
		errs     = make(chan error, workers)
		next     atomic.Int64
		wg       sync.WaitGroup
	)
	for range workers {
		wg.Go(func() {
			for {
				i := next.Add(1)
				if i > int64(n) {
					return
				}
				t0 := time.Now()
				var err error
				if i%2 == 0 {
					_, err = users.GetMe(ctx, authed(&flockv1.GetMeRequest{}, token))
				} else {
					_, err = posts.ListFeed(ctx, authed(&flockv1.ListFeedRequest{PageSize: 20}, token))
				}
				d := time.Since(t0)
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				if i%2 == 0 {
					me = append(me, d)
				} else {
					feed = append(feed, d)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return phaseResult{}, fmt.Errorf("timed request: %w", err)
	}
	m1, err := metrics(ctx, hc, base)
	if err != nil {
		return phaseResult{}, err
	}
	slices.Sort(me)
	slices.Sort(feed)
	pct := func(ds []time.Duration, p float64) time.Duration {
		if len(ds) == 0 {
			return 0
		}
		return ds[min(len(ds)-1, int(float64(len(ds))*p))]
	}
	return phaseResult{
		name: name, me50: pct(me, .5), me99: pct(me, .99), feed50: pct(feed, .5), feed99: pct(feed, .99),
		cpuPerRequest: time.Duration((m1["process_cpu_seconds_total"] - m0["process_cpu_seconds_total"]) / float64(n) * float64(time.Second)),
		goroutines:    m1["go_goroutines"], rss: m1["process_resident_memory_bytes"],
		eventReads: m1[`flock_stream_store_reads_total{read="events"}`] - m0[`flock_stream_store_reads_total{read="events"}`],
	}, nil
}

// metrics reads the server's /metrics samples by name (with labels).
func metrics(ctx context.Context, hc *http.Client, base string) (map[string]float64, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	res, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return nil, errors.New("/metrics: " + res.Status)
	}
	out := make(map[string]float64)
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		line := sc.Text()
		i := strings.LastIndexByte(line, ' ')
		if i < 0 || strings.HasPrefix(line, "#") {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err == nil {
			out[line[:i]] = v
		}
	}
	return out, sc.Err()
}

func authed[T any](msg *T, token string) *connect.Request[T] {
	req := connect.NewRequest(msg)
	req.Header().Set("Authorization", "Bearer "+token)
	return req
}
