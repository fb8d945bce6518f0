// Command load seeds a Flock database with a scale profile and measures the
// hot paths under load (issue 13): it starts the flock binary as a child
// process, logs in as seeded users through the API and runs scenarios over
// REST JSON or Connect (binary protobuf), reporting req/s, p50/p90/p99/max
// latency, errors, the server's CPU per request (the flock process plus, on
// Postgres, the backends of the benchmark database and the shared WAL
// writer, checkpointer and background writer, plus redis-server with
// -redis-url; from /proc/<pid>/stat) and flock's peak RSS (VmHWM).
//
// # Usage
//
//	go build -o bin/flock ./server/cmd/flock
//	go run ./bench/load -profile small -engine sqlite -scenario feed -transport rest
//
//	psql -h 127.0.0.1 -U root -d postgres -c 'CREATE DATABASE flock_bench'
//	go run ./bench/load -profile small -engine postgres \
//	    -database-url 'postgres://root@127.0.0.1:5432/flock_bench?sslmode=disable' \
//	    -scenario feed,post,like,me -transport rest,connect -duration 15s
//
// make bench-load builds bin/flock and runs it with BENCH_LOAD_FLAGS
// (default: -reuse -scenario feed,post,like,me -transport rest,connect
// -duration 15s, on SQLite; give the whole list to change it, e.g.
// BENCH_LOAD_FLAGS='-reuse -engine postgres -database-url ... -scenario feed').
//
// Scenarios that write (post, like, comment, mixed) leave their rows in the
// database: run feed first, or -reseed, for numbers on the profile as
// seeded. Every scenario in the comma-separated -scenario list runs over every
// transport in -transport against one server, -concurrency requests in
// flight, for -duration (or -requests in all). Scenarios: feed (first page
// of 20 of ListFeed), post (CreatePost with a hashtag), like (LikePost on a
// recent public post), comment (CreateComment), profile (GetUser of a
// random user), me (GetMe), search (SearchPosts by a popular hashtag and
// SearchUsers by a prefix, alternately), comments (the first page of a
// recent public post's comments), notifications (the first page of
// ListNotifications with its unread count), activity (the first page of
// ListActivity) and mixed (feed 50%, like
// 15%, profile 10%, search 10%, me, comment, post 5% each). The first feed
// scenario of a run is preceded by a first pass: one feed page for each
// logged-in account, reported as its own row (cold caches after a start).
// The logins come first, two at a time, and are reported as the login row:
// each hashes its password (argon2id, 19 MiB) and starts its user's
// timeline, whose fill the row's CPU includes. -cold drops those timelines
// before the first pass, which then measures first reads that find none
// (a session older than its timeline). Peak RSS is per scenario: the
// server's VmHWM is reset before each.
// -writers-rate N adds a background writer posting N times a second during
// feed scenarios; its posts are not counted as feed requests, but their CPU
// is in the feed's CPU per request (the row's note says how many arrived).
//
// # Profiles and seeding
//
// The database is filled directly (not through the API): migrations via
// internal/store, then COPY on Postgres and prepared multi-row INSERTs, one
// transaction per batch, on SQLite, then ANALYZE (VACUUM (ANALYZE) on
// Postgres). Rows are what the app
// writes: one argon2id password hash (flockproc.Password, the account
// package's parameters) for every account, verified emails, time-ordered
// IDs over the past 30 days, hashtags in post_hashtags (hashtag.Find), and
// posts_count, followers_count, following_count, likes_count and
// comments_count that match the rows, and the notification each follow,
// like and comment of another's post makes (with the app's dedupe keys;
// those older than two days read).
//
//   - small: 200 users, 10,000 follows, 5,000 posts, 10,000 likes, 2,000
//     comments, 50 hashtags (W1 of issue 13). -posts 50000 makes the 10x
//     variant. -designated adds heavy2000 (follows 2,000 accounts), light50
//     (follows 50 of the same kind) and rare, and 2,000 filler accounts for
//     them to follow; compare them with -as heavy2000 / -as light50.
//   - medium: 100,000 users, 5 million follows drawn from a Zipf
//     distribution whose top account has about 50,000 followers, 2 million
//     posts (most accounts post rarely), 3 million likes, 1 million
//     comments, 2,000 hashtags, and heavy2000, light50 and rare (follows 50
//     accounts that post least). -scale 0.1 makes it a tenth of the size.
//
// A database is seeded once: -reuse runs on one that already holds the
// profile (its number of accounts), -reseed empties it first, -seed-only
// stops after seeding. SQLite files live in -data-dir (default
// /tmp/flock-load-<profile>). Never point -database-url at the test
// suite's database.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"connectrpc.com/connect"

	"github.com/flock-social/flock/bench/internal/flockproc"
	flockv1 "github.com/flock-social/flock/gen/go/flock/v1"
	"github.com/flock-social/flock/gen/go/flock/v1/flockv1connect"
	"github.com/flock-social/flock/internal/store"
)

type config struct {
	binary, engine, dbURL, redisURL, dataDir string
	profile                                  string
	scale                                    float64
	posts                                    int
	designated                               bool
	reuse, reseed, seedOnly                  bool
	seed                                     uint64

	scenarios, transports []string
	concurrency           int
	duration              time.Duration
	requests              int
	users                 int
	as                    string
	writersRate           float64
	firstPass             bool
	cold                  bool
	drain                 bool
	jsonOut               string
}

func main() {
	var c config
	var scenariosFlag, transportsFlag string
	flag.StringVar(&c.binary, "flock", "bin/flock", "path of the flock binary to start")
	flag.StringVar(&c.engine, "engine", "sqlite", "sqlite or postgres")
	flag.StringVar(&c.dbURL, "database-url", "", "postgres://... of the benchmark database (-engine postgres; never the test suite's)")
	flag.StringVar(&c.redisURL, "redis-url", "", "FLOCK_REDIS_URL for the server (its redis-server's CPU is counted)")
	flag.StringVar(&c.dataDir, "data-dir", "", "where the SQLite database lives (default /tmp/flock-load-<profile>)")
	flag.StringVar(&c.profile, "profile", "small", "small or medium")
	flag.Float64Var(&c.scale, "scale", 1, "multiply the profile's counts (e.g. 0.1 for a quick medium)")
	flag.IntVar(&c.posts, "posts", 0, "number of posts instead of the profile's (e.g. 50000: small with 10x the posts)")
	flag.BoolVar(&c.designated, "designated", false, "add heavy2000, light50 and rare (always in medium)")
	flag.BoolVar(&c.reuse, "reuse", false, "skip seeding when the database already holds the profile")
	flag.BoolVar(&c.reseed, "reseed", false, "empty the database and seed it again")
	flag.BoolVar(&c.seedOnly, "seed-only", false, "seed, then stop")
	flag.Uint64Var(&c.seed, "seed", 1, "random seed of the generated data")
	flag.StringVar(&scenariosFlag, "scenario", "feed", "comma-separated: "+strings.Join(scenarioNames(), ", "))
	flag.StringVar(&transportsFlag, "transport", "rest", "comma-separated: rest, connect")
	flag.IntVar(&c.concurrency, "concurrency", 16, "requests in flight")
	flag.DurationVar(&c.duration, "duration", 20*time.Second, "length of each scenario run")
	flag.IntVar(&c.requests, "requests", 0, "requests per scenario run instead of -duration")
	flag.IntVar(&c.users, "users", 100, "ordinary accounts to log in as (requests go round them)")
	flag.StringVar(&c.as, "as", "", "make every request as this one user (e.g. heavy2000, light50, rare)")
	flag.Float64Var(&c.writersRate, "writers-rate", 0, "posts a second by a background writer during feed scenarios")
	flag.BoolVar(&c.firstPass, "first-pass", true, "before the first feed scenario, one feed page per logged-in account, reported apart")
	flag.BoolVar(&c.cold, "cold", false, "before the first pass, drop the logged-in accounts' timelines (as the idle sweep does after 14 days), so that it measures first reads that find none instead of the timelines their logins started")
	flag.BoolVar(&c.drain, "drain", true, "after each scenario, wait (CPU meter running) until the server's timeline fan-out and fill backlog is empty, so deferred work (a post's fan-out, a first read's fill) is in its scenario's CPU and not in the next scenario's")
	flag.StringVar(&c.jsonOut, "json", "", "also write the results as JSON to this file")
	flag.Parse()
	c.scenarios = strings.Split(scenariosFlag, ",")
	c.transports = strings.Split(transportsFlag, ",")
	if err := run(c); err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		os.Exit(1)
	}
}

func run(c config) error {
	for _, s := range c.scenarios {
		if scenarios[s] == nil {
			return fmt.Errorf("unknown scenario %q (%s)", s, strings.Join(scenarioNames(), ", "))
		}
	}
	for _, t := range c.transports {
		if t != "rest" && t != "connect" {
			return fmt.Errorf("unknown transport %q (rest or connect)", t)
		}
	}
	p, err := profileFor(c.profile, c.scale, c.posts, c.designated)
	if err != nil {
		return err
	}
	ctx := context.Background()

	dbURL := c.dbURL
	switch c.engine {
	case store.SQLite:
		if c.dataDir == "" {
			c.dataDir = filepath.Join(os.TempDir(), "flock-load-"+strings.NewReplacer("@", "-", "+", "-").Replace(p.Name))
		}
		if err := os.MkdirAll(c.dataDir, 0o700); err != nil {
			return err
		}
		path := filepath.Join(c.dataDir, "flock.db")
		if c.reseed {
			for _, f := range []string{path, path + "-wal", path + "-shm"} {
				if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
					return err
				}
			}
		}
		dbURL = "sqlite:" + path
	case store.Postgres:
		u, err := url.Parse(dbURL)
		if err != nil || !strings.HasPrefix(u.Scheme, "postgres") {
			return errors.New("-engine postgres needs -database-url postgres://<host>/<database>")
		}
		if strings.Trim(u.Path, "/") == "test" {
			return errors.New("-database-url names the test suite's database: create one for benchmarks (CREATE DATABASE flock_bench)")
		}
	default:
		return fmt.Errorf("unknown engine %q (sqlite or postgres)", c.engine)
	}

	db, err := store.Open(ctx, dbURL, c.dataDir)
	if err != nil {
		return err
	}
	defer db.Close()
	if c.reseed && db.Engine == store.Postgres {
		if _, err := db.ExecContext(ctx, "DROP SCHEMA public CASCADE; CREATE SCHEMA public"); err != nil {
			return fmt.Errorf("reseed: %w", err)
		}
	}
	if _, err := db.Migrate(ctx); err != nil {
		return err
	}
	have, err := db.NewSelect().TableExpr("users").Count(ctx)
	if err != nil {
		return err
	}
	switch {
	case have == 0:
		fmt.Printf("seeding profile %s (%d accounts, %d follows, %d posts, %d likes, %d comments) into %s\n",
			p.Name, p.Accounts(), p.Follows, p.Posts+p.Fillers*max(1, p.Posts/p.Users), p.Likes, p.Comments, db.Engine)
		start := time.Now()
		d := generate(p, c.seed, time.Now())
		fmt.Printf("  %-14s %10s      in %v\n", "generate", "", time.Since(start).Round(time.Millisecond))
		if err := seed(ctx, db, dbURL, d, os.Stdout); err != nil {
			return err
		}
		fmt.Printf("seeded in %v\n", time.Since(start).Round(time.Millisecond))
	case c.reuse && have == int64(p.Accounts()):
		fmt.Printf("reusing the database: it holds %d accounts, as profile %s does\n", have, p.Name)
	case c.reuse:
		return fmt.Errorf("the database holds %d accounts, profile %s has %d: use -reseed", have, p.Name, p.Accounts())
	default:
		return fmt.Errorf("the database already holds %d accounts: use -reuse to run on it or -reseed to seed it again", have)
	}
	if c.seedOnly {
		return nil
	}
	if db.Engine == store.Postgres {
		var autovacuum string
		if err := db.QueryRowContext(ctx, "SHOW autovacuum").Scan(&autovacuum); err == nil && autovacuum != "on" {
			// Measured: after ~25,000 posts and 30,000 likes through the API
			// a feed page cost 2.5 ms instead of 1.2 until a manual VACUUM
			// ANALYZE (dead timeline_pending rows scanned by every page,
			// unset visibility maps, stale statistics).
			fmt.Println("note: autovacuum is off on this Postgres: after write scenarios nothing clears dead rows or refreshes statistics, and later reads cost more than on a default server; run VACUUM ANALYZE (or -reseed) between runs")
		}
	}
	return drive(ctx, c, p, db, dbURL)
}

// drive starts the server on the seeded database, logs in and runs every
// scenario over every transport.
func drive(ctx context.Context, c config, p Profile, db *store.DB, dbURL string) error {
	dir, err := os.MkdirTemp("", "flock-load-server")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	env := []string{"FLOCK_DATABASE_URL=" + dbURL, "FLOCK_REDIS_URL=" + c.redisURL, "FLOCK_ACCESS_TOKEN_TTL=6h"}
	srv, err := flockproc.Start(ctx, c.binary, dir, env...)
	if err != nil {
		return err
	}
	defer srv.Stop()
	pid := srv.Cmd.Process.Pid

	client := &http.Client{Timeout: time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: c.concurrency + 8}}
	meter := &cpuMeter{flockPID: pid}
	if db.Engine == store.Postgres {
		meter.db = db
	}
	if c.redisURL != "" {
		meter.redis = pidsNamed("redis-server")
	}
	// drain waits, the meter running, until the timeline work the run left
	// (fan-outs, fills) is done, and says how long that took if it is worth
	// a note.
	drain := func() string {
		if !c.drain {
			return ""
		}
		took, ok := waitFanout(ctx, db, time.Minute)
		switch {
		case !ok:
			return fmt.Sprintf("fan-out/fill backlog NOT drained %.0f s after the run", took.Seconds())
		case took > 100*time.Millisecond:
			return fmt.Sprintf("fan-out/fill backlog drained %.1f s after the run (CPU included)", took.Seconds())
		}
		return ""
	}

	// The logins are metered too: each starts its user's timeline and
	// queues its fill, which the drain waits for.
	tl0 := readTimelineCounters(client, srv.URL)
	meter.start(ctx)
	wd, logins, err := makeWorld(ctx, c, p, db, client, srv.URL)
	if err != nil {
		return err
	}
	drained := drain()
	use := meter.end(ctx)
	peak, _ := memory(pid)
	loginRow := newResult(c, "login", "connect", loginsInFlight, logins, use, peak)
	notes := []string{"its argon2id hash included", drained, readTimelineCounters(client, srv.URL).note(tl0)}
	loginRow.Note = strings.Join(slices.DeleteFunc(notes, func(n string) bool { return n == "" }), "; ")
	if c.cold {
		for _, a := range wd.accounts {
			if err := db.DeleteTimeline(ctx, db, a.id); err != nil {
				return fmt.Errorf("drop %s's timeline: %w", a.name, err)
			}
		}
		fmt.Printf("dropped the timelines of the %d logged-in accounts (-cold)\n", len(wd.accounts))
	}

	results := []result{loginRow}
	peakPerScenario := resetPeak(pid)
	if !peakPerScenario {
		fmt.Println("note: cannot reset the server's VmHWM; peak RSS is since its start (logins included)")
	}
	measure := func(name, transport string, a api, l load, wr *writer) {
		resetPeak(pid)
		tl0 := readTimelineCounters(client, srv.URL)
		meter.start(ctx)
		st := l.run(ctx)
		if wr != nil {
			wr.end()
		}
		drained := drain()
		use := meter.end(ctx)
		peak, _ := memory(pid)
		res := newResult(c, name, transport, l.concurrency, st, use, peak)
		if wr != nil {
			res.Note = fmt.Sprintf("while %d posts arrived (%.0f/s; their CPU included)", wr.posts.Load(), wr.rate)
			if wr.errors.Load() > 0 {
				res.Note += fmt.Sprintf(", %d failed: %v", wr.errors.Load(), wr.firstErr.Load())
			}
		}
		if use.backends > 0 {
			res.Note = strings.TrimPrefix(fmt.Sprintf("%s; %d new database connections", res.Note, use.backends), "; ")
		}
		if drained != "" {
			res.Note = strings.TrimPrefix(res.Note+"; "+drained, "; ")
		}
		if tl := readTimelineCounters(client, srv.URL).note(tl0); tl != "" {
			res.Note = strings.TrimPrefix(res.Note+"; "+tl, "; ")
		}
		if c.as != "" {
			res.Note = strings.TrimPrefix(res.Note+"; as "+c.as, "; ")
		}
		results = append(results, res)
		fmt.Println(res.row())
		for _, s := range st.samples {
			fmt.Println("    error:", s)
		}
	}

	fmt.Println()
	fmt.Println(tableHeader)
	fmt.Println(loginRow.row())
	firstPassDone := !c.firstPass || c.as != ""
	for _, s := range c.scenarios {
		for _, t := range c.transports {
			var a api = restAPI{client: client, base: srv.URL}
			if t == "connect" {
				a = newConnectAPI(client, srv.URL)
			}
			if s == "feed" && !firstPassDone {
				firstPassDone = true
				measure("feed (first pass)", t, a, load{api: a, world: wd, sc: scenarios[s], concurrency: c.concurrency, onePerAccount: true}, nil)
			}
			var wr *writer
			if s == "feed" && c.writersRate > 0 {
				wr = startWriter(ctx, a, wd, c.writersRate)
			}
			measure(s, t, a, load{api: a, world: wd, sc: scenarios[s], concurrency: c.concurrency, duration: c.duration, requests: c.requests}, wr)
		}
	}

	fmt.Println()
	fmt.Printf("Profile %s, %s, %d in flight, %s each; CPU per request includes %s.\n\n", p.Name, c.engine, c.concurrency,
		map[bool]string{true: fmt.Sprintf("%d requests", c.requests), false: c.duration.String()}[c.requests > 0], cpuScope(c))
	fmt.Println(tableHeader)
	for _, r := range results {
		fmt.Println(r.row())
	}
	if c.jsonOut != "" {
		b, err := json.MarshalIndent(results, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(c.jsonOut, b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

func cpuScope(c config) string {
	s := "the flock process"
	if c.engine == store.Postgres {
		s += " and Postgres (the benchmark database's backends, WAL writer, checkpointer, background writer)"
	}
	if c.redisURL != "" {
		s += " and redis-server"
	}
	return s
}

// makeWorld logs in the accounts that make the requests and reads what the
// scenarios pick from: user IDs and recent public posts (from the
// database's tables, which the tool knows; everything else goes through
// the API).
func makeWorld(ctx context.Context, c config, p Profile, db *store.DB, client *http.Client, base string) (*world, *stats, error) {
	wd := &world{tags: p.Tags}
	var users []struct {
		ID       string `bun:"id"`
		Username string `bun:"username"`
	}
	if err := db.NewSelect().ColumnExpr("id, username").TableExpr("users").Where("username LIKE 'user%'").OrderExpr("id").Scan(ctx, &users); err != nil {
		return nil, nil, fmt.Errorf("list users: %w", err)
	}
	if err := db.NewSelect().ColumnExpr("id").TableExpr("posts").Where("visibility = ?", store.VisibilityPublic).
		OrderExpr("id DESC").Limit(10_000).Scan(ctx, &wd.postIDs); err != nil {
		return nil, nil, fmt.Errorf("list posts: %w", err)
	}
	if len(users) == 0 || len(wd.postIDs) == 0 {
		return nil, nil, errors.New("the database holds no ordinary users or no public posts")
	}
	for _, u := range users {
		wd.userIDs = append(wd.userIDs, u.ID)
	}
	var names []string
	if c.as != "" {
		names = []string{c.as}
	} else {
		r := rand.New(rand.NewPCG(c.seed, 2))
		for _, i := range r.Perm(len(users))[:min(c.users, len(users))] {
			names = append(names, users[i].Username)
		}
	}
	start := time.Now()
	accounts := flockv1connect.NewUserServiceClient(client, base)
	wd.accounts = make([]account, len(names))
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
		sem   = make(chan struct{}, loginsInFlight)
		st    = &stats{}
	)
	for i, name := range names {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			began := time.Now()
			res, err := accounts.Login(ctx, connect.NewRequest(&flockv1.LoginRequest{
				Identifier: &flockv1.LoginRequest_Username{Username: name}, Password: flockproc.Password}))
			took := time.Since(began)
			mu.Lock()
			st.latencies = append(st.latencies, took)
			mu.Unlock()
			if err != nil {
				mu.Lock()
				first = cmpOr(first, fmt.Errorf("login %s: %w", name, err))
				mu.Unlock()
				return
			}
			wd.accounts[i] = account{id: res.Msg.GetUser().GetId(), name: name, token: res.Msg.GetAccessToken()}
		})
	}
	wg.Wait()
	if first != nil {
		return nil, nil, first
	}
	st.elapsed = time.Since(start)
	slices.Sort(st.latencies)
	fmt.Printf("logged in %d accounts in %v\n", len(names), st.elapsed.Round(time.Millisecond))
	slices.SortFunc(wd.accounts, func(a, b account) int { return strings.Compare(a.name, b.name) })
	return wd, st, nil
}

// loginsInFlight is how many logins run at once: each hashes a password
// with 19 MiB.
const loginsInFlight = 2

func cmpOr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}
