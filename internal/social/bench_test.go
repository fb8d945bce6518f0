package social_test

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/uptrace/bun"

	"github.com/flock-social/flock/internal/account"
	"github.com/flock-social/flock/internal/notify"
	"github.com/flock-social/flock/internal/pubsub"
	"github.com/flock-social/flock/internal/social"
	"github.com/flock-social/flock/internal/store"
	tu "github.com/flock-social/flock/internal/testutil"
)

// The suggestion benchmark's data set: tens of thousands of users with
// follows, interests, posts with hashtags and likes. FLOCK_BENCH_* override
// the sizes.
var (
	benchUsers     = envInt("FLOCK_BENCH_USERS", 20_000)
	benchFollows   = envInt("FLOCK_BENCH_FOLLOWS", 20) // accounts each user follows
	benchPosts     = envInt("FLOCK_BENCH_POSTS", 50_000)
	benchLikes     = envInt("FLOCK_BENCH_LIKES", 5) // posts each user likes
	benchInterests = 3                              // profile interests per user
	benchTopics    = 200                            // distinct interests and hashtags
)

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

type dataset struct {
	db      *store.DB
	users   []string
	active  []string // users with follows, interests, posts and likes
	newbies []string // users with none of them
	social  *social.Service
	plansMu sync.Mutex
}

var (
	datasetsMu sync.Mutex
	datasets   = map[string]*dataset{}
)

// skewed picks an index below n, small ones far more often (u³): a few
// accounts are followed by many and a few topics are used by many, as on a
// real network.
func skewed(rng *rand.Rand, n int) int {
	u := rng.Float64()
	return int(float64(n) * u * u * u)
}

// benchDataset builds the data set once per engine per test binary.
func benchDataset(b *testing.B, engine string) *dataset {
	b.Helper()
	datasetsMu.Lock()
	defer datasetsMu.Unlock()
	if d := datasets[engine]; d != nil {
		return d
	}
	start := time.Now()
	db := tu.MustStore(&keepAlive{TB: b}, engine)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(21, 22))
	d := &dataset{db: db}
	now := time.Now().UTC()
	verified := now
	insert := func(rows any) {
		if _, err := db.NewInsert().Model(rows).Exec(ctx); err != nil {
			b.Fatalf("seed: %v", err)
		}
	}
	topic := func() string { return fmt.Sprintf("topic%d", skewed(rng, benchTopics)) }

	// Users (one in a hundred a newcomer with nothing yet), with interests.
	users := make([]store.User, 0, 1000)
	interests := make([]store.UserInterest, 0, 3000)
	active := map[string]bool{}
	for i := range benchUsers {
		id := store.NewID()
		d.users = append(d.users, id)
		username := fmt.Sprintf("user%d", i)
		users = append(users, store.User{ID: id, Username: username, Email: username + "@example.com", PasswordHash: "x",
			Role: store.RoleMember, EmailVerifiedAt: &verified, CreatedAt: now, UpdatedAt: now})
		if i%100 == 99 {
			d.newbies = append(d.newbies, id)
		} else {
			active[id] = true
			d.active = append(d.active, id)
			seen := map[string]bool{}
			for len(seen) < benchInterests {
				t := topic()
				if !seen[t] {
					seen[t] = true
					interests = append(interests, store.UserInterest{UserID: id, Interest: t})
				}
			}
		}
		if len(users) == cap(users) || i == benchUsers-1 {
			insert(&users)
			users = users[:0]
			if len(interests) > 0 {
				insert(&interests)
				interests = interests[:0]
			}
		}
	}
	// Follows, toward popular accounts more often; counters kept right.
	followers := make(map[string]int64)
	follows := make([]store.Follow, 0, 2000)
	for _, u := range d.users {
		if !active[u] {
			continue
		}
		seen := map[string]bool{u: true}
		for len(seen) <= benchFollows {
			f := d.users[skewed(rng, len(d.users))]
			if seen[f] {
				continue
			}
			seen[f] = true
			followers[f]++
			follows = append(follows, store.Follow{FollowerID: u, FolloweeID: f, CreatedAt: now})
			if len(follows) == cap(follows) {
				insert(&follows)
				follows = follows[:0]
			}
		}
	}
	if len(follows) > 0 {
		insert(&follows)
	}
	// Posts over the last 60 days (half of them inside the 30 days that
	// count), one or two hashtags each, one in five followers-only.
	span := 60 * 24 * time.Hour
	var postIDs []string
	posts := make([]store.Post, 0, 1000)
	tags := make([]store.PostHashtag, 0, 2000)
	for i := range benchPosts {
		at := now.Add(-span + span/time.Duration(benchPosts)*time.Duration(i))
		id := ulid.MustNew(ulid.Timestamp(at), ulid.DefaultEntropy()).String()
		postIDs = append(postIDs, id)
		vis := store.VisibilityPublic
		if i%5 == 0 {
			vis = store.VisibilityFollowers
		}
		author := d.active[rng.IntN(len(d.active))]
		t1, t2 := topic(), topic()
		posts = append(posts, store.Post{ID: id, AuthorID: author, Content: fmt.Sprintf("post %d #%s #%s", i, t1, t2),
			Visibility: vis, CreatedAt: at, UpdatedAt: at})
		tags = append(tags, store.PostHashtag{Tag: t1, PostID: id, Position: 0})
		if t2 != t1 {
			tags = append(tags, store.PostHashtag{Tag: t2, PostID: id, Position: 1})
		}
		if len(posts) == cap(posts) || i == benchPosts-1 {
			insert(&posts)
			insert(&tags)
			posts, tags = posts[:0], tags[:0]
		}
	}
	likes := make([]store.Like, 0, 2000)
	for _, u := range d.users {
		if !active[u] {
			continue
		}
		seen := map[string]bool{}
		for len(seen) < benchLikes {
			p := postIDs[rng.IntN(len(postIDs))]
			if !seen[p] {
				seen[p] = true
				likes = append(likes, store.Like{PostID: p, UserID: u, CreatedAt: now})
			}
		}
		if len(likes) >= cap(likes)-benchLikes {
			insert(&likes)
			likes = likes[:0]
		}
	}
	if len(likes) > 0 {
		insert(&likes)
	}
	// Counters, as the services would have kept them.
	for id, n := range followers {
		if _, err := db.NewUpdate().Model((*store.User)(nil)).Set("followers_count = ?", n).Where("id = ?", id).Exec(ctx); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := db.ExecContext(ctx, "UPDATE users SET following_count = ? WHERE id IN (SELECT DISTINCT follower_id FROM follows)", benchFollows); err != nil {
		b.Fatal(err)
	}
	if engine == store.Postgres {
		if _, err := db.ExecContext(ctx, "ANALYZE"); err != nil {
			b.Fatal(err)
		}
	}
	broker, err := pubsub.Open("")
	if err != nil {
		b.Fatal(err)
	}
	d.social = social.NewService(db, notify.NewService(db, broker, slog.New(slog.DiscardHandler)))
	b.Logf("%s data set: %d users (%d new), %d follows, %d interests, %d posts, %d likes, built in %s", engine,
		benchUsers, len(d.newbies), len(active)*benchFollows, len(active)*benchInterests, benchPosts, len(active)*benchLikes,
		time.Since(start).Round(time.Millisecond))
	datasets[engine] = d
	return d
}

// keepAlive defers the data set's clean-up (closing it, dropping its
// Postgres schema) from the first benchmark that builds it to the end of
// the test binary (TestMain), so every benchmark shares one data set.
type keepAlive struct{ testing.TB }

var deferredCleanups []func()

func (keepAlive) Cleanup(f func()) { deferredCleanups = append(deferredCleanups, f) }

// TempDir outlives the benchmark too: the embedded TB's would remove the
// SQLite file at the end of the first benchmark, and a connection the pool
// opened after that failed with "unable to open database file".
func (k keepAlive) TempDir() string {
	dir, err := os.MkdirTemp("", "flock-bench-")
	if err != nil {
		k.Fatal(err)
	}
	k.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func TestMain(m *testing.M) {
	code := m.Run()
	for i := len(deferredCleanups) - 1; i >= 0; i-- {
		deferredCleanups[i]()
	}
	os.Exit(code)
}

func principal(id string) *account.Principal {
	return &account.Principal{UserID: id, Role: store.RoleMember}
}

// BenchmarkSuggestUsers asks for 20 suggestions as a random active user
// (graph, interests, posts and likes: every query but the popular one) and
// as a random new user (no graph and no topics: the popular fallback).
func BenchmarkSuggestUsers(b *testing.B) {
	for _, engine := range tu.Engines(b) {
		for _, who := range []string{"active", "new"} {
			b.Run(engine+"/"+who, func(b *testing.B) {
				d := benchDataset(b, engine)
				rng := rand.New(rand.NewPCG(23, 24))
				ctx := context.Background()
				pick := func() string {
					if who == "new" {
						return d.newbies[rng.IntN(len(d.newbies))]
					}
					return d.active[rng.IntN(len(d.active))]
				}
				d.explain(b, "suggestions ("+who+" user)", func() error {
					_, err := d.social.SuggestUsers(ctx, principal(pick()), 20)
					return err
				})
				var total, graph int
				b.ResetTimer()
				for b.Loop() {
					got, err := d.social.SuggestUsers(ctx, principal(pick()), 20)
					if err != nil || len(got) == 0 {
						b.Fatalf("suggestions: %d, %v", len(got), err)
					}
					total += len(got)
					for _, s := range got {
						if strings.HasPrefix(s.Reason, "Followed by") {
							graph++
						}
					}
				}
				b.ReportMetric(float64(total)/float64(b.N), "suggestions/op")
				b.ReportMetric(float64(graph)/float64(b.N), "graph/op")
			})
		}
	}
}

// recorder keeps the SQL of the queries run while it is on.
type recorder struct {
	mu      sync.Mutex
	on      bool
	queries []string
}

func (r *recorder) BeforeQuery(ctx context.Context, _ *bun.QueryEvent) context.Context { return ctx }

func (r *recorder) AfterQuery(_ context.Context, e *bun.QueryEvent) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.on {
		r.queries = append(r.queries, e.Query)
	}
}

// explain logs the time and plan of every query that run sends, as the
// service really sends them: EXPLAIN ANALYZE on Postgres, EXPLAIN QUERY
// PLAN on SQLite.
func (d *dataset) explain(b *testing.B, name string, run func() error) {
	d.plansMu.Lock()
	defer d.plansMu.Unlock()
	ctx := context.Background()
	rec := &recorder{on: true}
	d.db.AddQueryHook(rec)
	if err := run(); err != nil {
		b.Fatal(err)
	}
	rec.mu.Lock()
	rec.on = false
	queries := rec.queries
	rec.mu.Unlock()
	explain := "EXPLAIN (ANALYZE, BUFFERS) "
	if d.db.Engine == store.SQLite {
		explain = "EXPLAIN QUERY PLAN "
	}
	for i, q := range queries {
		// Timed alone first, as the service sends it (warm cache).
		start := time.Now()
		for range 5 {
			rows, err := d.db.QueryContext(ctx, q)
			if err != nil {
				b.Fatalf("replay: %v", err)
			}
			for rows.Next() {
			}
			rows.Close()
		}
		took := time.Since(start) / 5
		rows, err := d.db.QueryContext(ctx, explain+q)
		if err != nil {
			b.Fatalf("explain: %v", err)
		}
		cols, _ := rows.Columns()
		var plan []string
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			_ = rows.Scan(ptrs...)
			plan = append(plan, fmt.Sprint(vals[len(vals)-1])) // SQLite: id, parent, notused, detail
		}
		rows.Close()
		b.Logf("%s, %s query %d of %d (%s):\n%s\n%s", d.db.Engine, name, i+1, len(queries), took.Round(time.Microsecond), q, strings.Join(plan, "\n"))
	}
}
