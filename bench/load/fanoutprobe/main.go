// Command fanoutprobe measures how a new post reaches its author's
// followers through the materialized home timelines (issue 13): for an
// author below the big-author threshold (FLOCK_TIMELINE_BIG_AUTHOR,
// default 5,000 followers), the time from CreatePost's answer until the
// post is in the timeline_entries of every follower who has a timeline,
// and the fan-out's own cost from the server's flock_timeline_fanout_*
// counters; for an author above it, the time until the post is on a
// follower's first ListFeed page (merged at read, not fanned out).
//
// It runs on a database seeded by bench/load (-profile medium), starts the
// flock binary on it and logs in as seeded users (bench/internal/flockproc's
// password). -readers followers of the small author read their feed first,
// so they have real timelines (filled by the server); -ready-all gives
// every other follower of the small author an empty ready timeline whose
// floor is the newest post (complete by definition: it holds every post
// from the floor on, none), so the fan-out writes to all of them.
//
//	go run ./bench/load/fanoutprobe -flock /tmp/flock-new \
//	    -database-url 'postgres://root@127.0.0.1:5432/flock_bench_medium?sslmode=disable' -ready-all
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
	"time"

	"connectrpc.com/connect"

	"github.com/flock-social/flock/bench/internal/flockproc"
	flockv1 "github.com/flock-social/flock/gen/go/flock/v1"
	"github.com/flock-social/flock/gen/go/flock/v1/flockv1connect"
	"github.com/flock-social/flock/internal/store"
)

func main() {
	var (
		binary, dbURL, small, big string
		readers                   int
		readyAll                  bool
		posts                     int
	)
	flag.StringVar(&binary, "flock", "bin/flock", "flock binary")
	flag.StringVar(&dbURL, "database-url", "", "postgres://... of a database seeded by bench/load")
	flag.StringVar(&small, "small", "", "author below the big-author threshold (default: the most followed with 2,000-4,999 followers)")
	flag.StringVar(&big, "big", "", "author above it (default: the most followed)")
	flag.IntVar(&readers, "readers", 20, "followers of the small author who read their feed first (real timelines)")
	flag.BoolVar(&readyAll, "ready-all", false, "give every other follower of the small author an empty ready timeline")
	flag.IntVar(&posts, "posts", 3, "posts per author")
	flag.Parse()
	if err := run(binary, dbURL, small, big, readers, readyAll, posts); err != nil {
		fmt.Fprintln(os.Stderr, "fanoutprobe:", err)
		os.Exit(1)
	}
}

type probe struct {
	db     *store.DB
	client *http.Client
	base   string
	users  flockv1connect.UserServiceClient
	posts  flockv1connect.PostServiceClient
}

func authed[T any](msg *T, tok string) *connect.Request[T] {
	req := connect.NewRequest(msg)
	req.Header().Set("Authorization", "Bearer "+tok)
	return req
}

func (p *probe) login(ctx context.Context, name string) (string, error) {
	res, err := p.users.Login(ctx, connect.NewRequest(&flockv1.LoginRequest{
		Identifier: &flockv1.LoginRequest_Username{Username: name}, Password: flockproc.Password}))
	if err != nil {
		return "", fmt.Errorf("login %s: %w", name, err)
	}
	return res.Msg.GetAccessToken(), nil
}

func (p *probe) feedHas(ctx context.Context, tok, id string) (bool, error) {
	res, err := p.posts.ListFeed(ctx, authed(&flockv1.ListFeedRequest{PageSize: 20}, tok))
	if err != nil {
		return false, err
	}
	return slices.ContainsFunc(res.Msg.GetPosts(), func(q *flockv1.Post) bool { return q.GetId() == id }), nil
}

type counters struct{ fanouts, entries, seconds float64 }

func (p *probe) counters() counters {
	var c counters
	res, err := p.client.Get(p.base + "/metrics")
	if err != nil {
		return c
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		name, v, _ := strings.Cut(sc.Text(), " ")
		f, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
		switch name {
		case "flock_timeline_fanouts_total":
			c.fanouts = f
		case "flock_timeline_fanout_entries_total":
			c.entries = f
		case "flock_timeline_fanout_seconds_total":
			c.seconds = f
		}
	}
	return c
}

func (p *probe) count(ctx context.Context, q string, args ...any) int {
	var n int
	if err := p.db.NewRaw(q, args...).Scan(ctx, &n); err != nil {
		fmt.Println("  query:", err)
	}
	return n
}

func pick(ctx context.Context, db *store.DB, name string, lo, hi int) (id, username string, followers int, err error) {
	q := db.NewSelect().ColumnExpr("id, username, followers_count").TableExpr("users")
	if name != "" {
		q = q.Where("username = ?", name)
	} else {
		q = q.Where("followers_count BETWEEN ? AND ?", lo, hi).OrderExpr("followers_count DESC").Limit(1)
	}
	err = q.Scan(ctx, &id, &username, &followers)
	return
}

func run(binary, dbURL, small, big string, readers int, readyAll bool, nposts int) error {
	ctx := context.Background()
	db, err := store.Open(ctx, dbURL, "")
	if err != nil {
		return err
	}
	defer db.Close()
	sID, sName, sFollowers, err := pick(ctx, db, small, 2000, 4999)
	if err != nil {
		return fmt.Errorf("small author: %w", err)
	}
	bID, bName, bFollowers, err := pick(ctx, db, big, 5000, 1<<30)
	if err != nil {
		return fmt.Errorf("big author: %w", err)
	}
	fmt.Printf("small author %s: %d followers; big author %s: %d followers\n", sName, sFollowers, bName, bFollowers)

	dir, err := os.MkdirTemp("", "fanoutprobe")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	srv, err := flockproc.Start(ctx, binary, dir, "FLOCK_DATABASE_URL="+dbURL, "FLOCK_ACCESS_TOKEN_TTL=6h")
	if err != nil {
		return err
	}
	defer srv.Stop()
	client := &http.Client{Timeout: time.Minute}
	p := &probe{db: db, client: client, base: srv.URL, users: flockv1connect.NewUserServiceClient(client, srv.URL),
		posts: flockv1connect.NewPostServiceClient(client, srv.URL)}

	// Followers of the small author who read their feed (real timelines),
	// and one follower of the big author.
	var names []string
	if err := db.NewSelect().ColumnExpr("u.username").TableExpr("follows AS f").Join("JOIN users AS u ON u.id = f.follower_id").
		Where("f.followee_id = ?", sID).Where("u.username LIKE 'user%'").OrderExpr("u.id").Limit(int64(readers)).Scan(ctx, &names); err != nil {
		return fmt.Errorf("followers: %w", err)
	}
	var bigFollower string
	if err := db.NewSelect().ColumnExpr("u.username").TableExpr("follows AS f").Join("JOIN users AS u ON u.id = f.follower_id").
		Where("f.followee_id = ?", bID).Where("u.username LIKE 'user%'").OrderExpr("u.id DESC").Limit(1).Scan(ctx, &bigFollower); err != nil {
		return fmt.Errorf("big author's follower: %w", err)
	}
	toks := make([]string, len(names))
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	sem := make(chan struct{}, 2)
	for i, n := range names {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			t, err := p.login(ctx, n)
			if err == nil {
				_, err = p.feedHas(ctx, t, "")
			}
			mu.Lock()
			defer mu.Unlock()
			toks[i] = t
			if err != nil && firstErr == nil {
				firstErr = err
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	sTok, err := p.login(ctx, sName)
	if err != nil {
		return err
	}
	bTok, err := p.login(ctx, bName)
	if err != nil {
		return err
	}
	bfTok, err := p.login(ctx, bigFollower)
	if err != nil {
		return err
	}
	if _, err := p.feedHas(ctx, bfTok, ""); err != nil {
		return err
	}
	// Wait for the fills.
	start := time.Now()
	for p.count(ctx, "SELECT count(*) FROM timelines WHERE state <> 'ready'") > 0 {
		if time.Since(start) > 5*time.Minute {
			return errors.New("timelines still building after 5 minutes")
		}
		time.Sleep(100 * time.Millisecond)
	}
	fmt.Printf("%d followers of %s read their feed; fills done %.1f s after the last read\n", len(names), sName, time.Since(start).Seconds())
	if readyAll {
		res, err := db.ExecContext(ctx, `INSERT INTO timelines (user_id, state, floor_id, read_at)
SELECT f.follower_id, 'ready', (SELECT max(id) FROM posts), now() FROM follows AS f WHERE f.followee_id = ?
ON CONFLICT (user_id) DO NOTHING`, sID)
		if err != nil {
			return fmt.Errorf("ready-all: %w", err)
		}
		n, _ := res.RowsAffected()
		fmt.Printf("gave %d more followers of %s an empty ready timeline\n", n, sName)
	}
	withTL := p.count(ctx, "SELECT count(*) FROM follows AS f JOIN timelines AS t ON t.user_id = f.follower_id WHERE f.followee_id = ?", sID)
	fmt.Printf("ready timelines in all: %d; of followers of %s: %d\n\n", p.count(ctx, "SELECT count(*) FROM timelines WHERE state = 'ready'"), sName, withTL)

	fmt.Println("| author | followers | followers with a timeline | post | CreatePost ms | in every follower's timeline_entries after (ms) | entries written | fan-out job time ms | in a follower's ListFeed after (ms) |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|")
	for i := range nposts {
		// Small author: fanned out.
		for p.count(ctx, "SELECT count(*) FROM timeline_pending") > 0 {
			time.Sleep(20 * time.Millisecond)
		}
		c0 := p.counters()
		t0 := time.Now()
		res, err := p.posts.CreatePost(ctx, authed(&flockv1.CreatePostRequest{Content: fmt.Sprintf("Fan-out probe %d #probe", i)}, sTok))
		if err != nil {
			return err
		}
		answered := time.Now()
		id := res.Msg.GetPost().GetId()
		var inFeed time.Duration = -1
		if len(toks) > 0 {
			for {
				ok, err := p.feedHas(ctx, toks[0], id)
				if err != nil {
					return err
				}
				if ok {
					inFeed = time.Since(answered)
					break
				}
				if time.Since(answered) > 30*time.Second {
					break
				}
			}
		}
		var all time.Duration = -1
		var entries int
		for time.Since(answered) < 60*time.Second {
			entries = p.count(ctx, "SELECT count(*) FROM timeline_entries WHERE post_id = ?", id)
			if entries >= withTL {
				all = time.Since(answered)
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		for p.count(ctx, "SELECT count(*) FROM timeline_pending") > 0 {
			time.Sleep(20 * time.Millisecond)
		}
		c1 := p.counters()
		fmt.Printf("| %s | %d | %d | %s | %.1f | %s | %d | %.1f (%.0f fan-outs, %.0f entries) | %s |\n", sName, sFollowers, withTL, id,
			ms(answered.Sub(t0)), msOr(all), entries, (c1.seconds-c0.seconds)*1000, c1.fanouts-c0.fanouts, c1.entries-c0.entries, msOr(inFeed))

		// Big author: merged at read.
		t0 = time.Now()
		res, err = p.posts.CreatePost(ctx, authed(&flockv1.CreatePostRequest{Content: fmt.Sprintf("Big probe %d #probe", i)}, bTok))
		if err != nil {
			return err
		}
		answered = time.Now()
		id = res.Msg.GetPost().GetId()
		inFeed = -1
		for time.Since(answered) < 30*time.Second {
			ok, err := p.feedHas(ctx, bfTok, id)
			if err != nil {
				return err
			}
			if ok {
				inFeed = time.Since(answered)
				break
			}
		}
		for p.count(ctx, "SELECT count(*) FROM timeline_pending") > 0 {
			time.Sleep(20 * time.Millisecond)
		}
		c2 := p.counters()
		fmt.Printf("| %s | %d | - | %s | %.1f | (not fanned out: %d entries) | - | %.1f (%.0f fan-outs, %.0f entries) | %s |\n", bName, bFollowers, id,
			ms(answered.Sub(t0)), p.count(ctx, "SELECT count(*) FROM timeline_entries WHERE post_id = ?", id),
			(c2.seconds-c1.seconds)*1000, c2.fanouts-c1.fanouts, c2.entries-c1.entries, msOr(inFeed))
	}
	return nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func msOr(d time.Duration) string {
	if d < 0 {
		return "not within the limit"
	}
	return fmt.Sprintf("%.1f", ms(d))
}
