package post_test

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
	"github.com/flock-social/flock/internal/post"
	"github.com/flock-social/flock/internal/pubsub"
	"github.com/flock-social/flock/internal/social"
	"github.com/flock-social/flock/internal/store"
	tu "github.com/flock-social/flock/internal/testutil"
	"github.com/flock-social/flock/internal/timeline"
)

// The benchmark data set: thousands of users, hundreds of thousands of
// posts. FLOCK_BENCH_USERS and FLOCK_BENCH_POSTS override the sizes.
var (
	benchUsers   = envInt("FLOCK_BENCH_USERS", 5_000)
	benchPosts   = envInt("FLOCK_BENCH_POSTS", 200_000)
	benchFollows = envInt("FLOCK_BENCH_FOLLOWS", 50) // accounts each user follows
	benchTags    = 200
)

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

type dataset struct {
	db        *store.DB
	users     []string
	usernames []string
	posts     []string
	posts2    *post.Service
	social    *social.Service
	built     time.Duration
	plansMu   sync.Mutex
}

var (
	datasetsMu sync.Mutex
	datasets   = map[string]*dataset{}
)

// benchDataset builds the data set once per engine per test binary.
func benchDataset(b *testing.B, engine string) *dataset {
	b.Helper()
	datasetsMu.Lock()
	defer datasetsMu.Unlock()
	if d := datasets[engine]; d != nil {
		return d
	}
	start := time.Now()
	// The store outlives the first benchmark that asks for it.
	db, dsn := tu.MustStoreURL(&keepAlive{TB: b}, engine)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))
	d := &dataset{db: db}
	now := time.Now().UTC()
	verified := now

	insert := func(rows any) {
		if _, err := db.NewInsert().Model(rows).Exec(ctx); err != nil {
			b.Fatalf("seed: %v", err)
		}
	}
	users := make([]store.User, 0, 1000)
	for i := range benchUsers {
		id := store.NewID()
		d.users = append(d.users, id)
		username := fmt.Sprintf("%s%d", syllables(rng, 3), i)
		d.usernames = append(d.usernames, username)
		users = append(users, store.User{ID: id, Username: username, Email: username + "@example.com",
			PasswordHash: "x", FullName: strings.ToUpper(syllables(rng, 2)[:1]) + syllables(rng, 2)[1:] + " " + syllables(rng, 3),
			Role: store.RoleMember, EmailVerifiedAt: &verified, CreatedAt: now, UpdatedAt: now})
		if len(users) == cap(users) || i == benchUsers-1 {
			insert(&users)
			users = users[:0]
		}
	}
	follows := make([]store.Follow, 0, 2000)
	for _, u := range d.users {
		seen := map[string]bool{u: true}
		for len(seen) <= benchFollows {
			f := d.users[rng.IntN(len(d.users))]
			if seen[f] {
				continue
			}
			seen[f] = true
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
	// Posts spread over the last 30 days, in time order, with one hashtag each.
	span := 30 * 24 * time.Hour
	posts := make([]store.Post, 0, 1000)
	tags := make([]store.PostHashtag, 0, 1000)
	for i := range benchPosts {
		at := now.Add(-span + span/time.Duration(benchPosts)*time.Duration(i)) // (not i*span: that overflows)
		id := ulid.MustNew(ulid.Timestamp(at), ulid.DefaultEntropy()).String()
		d.posts = append(d.posts, id)
		vis := store.VisibilityPublic
		if i%5 == 0 {
			vis = store.VisibilityFollowers
		}
		posts = append(posts, store.Post{ID: id, AuthorID: d.users[rng.IntN(len(d.users))], Content: fmt.Sprintf("post %d #tag%d", i, i%benchTags),
			Visibility: vis, CreatedAt: at, UpdatedAt: at})
		tags = append(tags, store.PostHashtag{Tag: fmt.Sprintf("tag%d", i%benchTags), PostID: id})
		if len(posts) == cap(posts) || i == benchPosts-1 {
			insert(&posts)
			insert(&tags)
			posts, tags = posts[:0], tags[:0]
		}
	}
	// FLOCK_BENCH_ANALYZE=0 leaves the statistics as the migrations left
	// them (empty tables): the plans of docs/performance.md's "missing
	// statistics" case.
	if engine == store.Postgres && os.Getenv("FLOCK_BENCH_ANALYZE") != "0" {
		if _, err := db.ExecContext(ctx, "ANALYZE"); err != nil {
			b.Fatal(err)
		}
	}
	broker, err := pubsub.Open("")
	if err != nil {
		b.Fatal(err)
	}
	events := notify.NewService(db, broker, slog.New(slog.DiscardHandler))
	d.social = social.NewService(db, events)
	d.posts2 = post.NewService(db, d.social, events, nil, tu.MustTimelines(&keepAlive{TB: b}, db, dsn, timeline.Config{}))
	d.built = time.Since(start)
	b.Logf("%s data set: %d users, %d follows, %d posts, built in %s", engine, benchUsers, benchUsers*benchFollows, benchPosts, d.built.Round(time.Millisecond))
	datasets[engine] = d
	return d
}

// syllables makes a pronounceable random name, so that names spread over
// trigrams the way real ones do.
func syllables(rng *rand.Rand, n int) string {
	const consonants, vowels = "bdfgklmnprstvz", "aeiou"
	var sb strings.Builder
	for range n {
		sb.WriteByte(consonants[rng.IntN(len(consonants))])
		sb.WriteByte(vowels[rng.IntN(len(vowels))])
	}
	return sb.String()
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

func engines(b *testing.B) []string { return tu.Engines(b) }

// waitTimelines waits until no timeline is being filled.
func (d *dataset) waitTimelines(b *testing.B) {
	for deadline := time.Now().Add(time.Minute); ; {
		n, err := d.db.NewSelect().Table("timelines").Where("state <> 'ready'").Count(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d timelines still filling after a minute", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func principal(id string) *account.Principal {
	return &account.Principal{UserID: id, Role: store.RoleMember}
}

// BenchmarkListFeed reads the first feed page (20 posts) of a random user
// who follows 50 accounts, hydrated with authors and likes.
func BenchmarkListFeed(b *testing.B) {
	for _, engine := range engines(b) {
		b.Run(engine, func(b *testing.B) {
			d := benchDataset(b, engine)
			rng := rand.New(rand.NewPCG(3, 4))
			ctx := context.Background()
			// Readers with their timelines filled (the steady state: a
			// reader's first read starts the fill).
			readers := d.users[:200]
			for _, u := range readers {
				if _, err := d.posts2.ListFeed(ctx, principal(u), 20, ""); err != nil {
					b.Fatal(err)
				}
			}
			d.waitTimelines(b)
			if engine == store.Postgres {
				d.explainFeed(b)
			}
			b.ResetTimer()
			for b.Loop() {
				p := principal(readers[rng.IntN(len(readers))])
				pg, err := d.posts2.ListFeed(ctx, p, 20, "")
				if err != nil || len(pg.Posts) == 0 {
					b.Fatalf("feed: %d posts, %v", len(pg.Posts), err)
				}
			}
		})
	}
}

// BenchmarkListFeedPage5 reads the fifth page through page tokens.
func BenchmarkListFeedPage5(b *testing.B) {
	for _, engine := range engines(b) {
		b.Run(engine, func(b *testing.B) {
			d := benchDataset(b, engine)
			ctx := context.Background()
			p := principal(d.users[7])
			tok := ""
			for range 4 {
				pg, err := d.posts2.ListFeed(ctx, p, 20, tok)
				if err != nil {
					b.Fatal(err)
				}
				tok = pg.NextPageToken
			}
			b.ResetTimer()
			for b.Loop() {
				if _, err := d.posts2.ListFeed(ctx, p, 20, tok); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkCreatePost publishes a post with two hashtags.
func BenchmarkCreatePost(b *testing.B) {
	for _, engine := range engines(b) {
		b.Run(engine, func(b *testing.B) {
			d := benchDataset(b, engine)
			rng := rand.New(rand.NewPCG(5, 6))
			ctx := context.Background()
			b.ResetTimer()
			for b.Loop() {
				p := principal(d.users[rng.IntN(len(d.users))])
				if _, err := d.posts2.CreatePost(ctx, p, post.CreateInput{Content: "benchmarking #flock and #go"}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkLikePost likes a random public post as a random user.
func BenchmarkLikePost(b *testing.B) {
	for _, engine := range engines(b) {
		b.Run(engine, func(b *testing.B) {
			d := benchDataset(b, engine)
			rng := rand.New(rand.NewPCG(7, 8))
			ctx := context.Background()
			b.ResetTimer()
			for b.Loop() {
				i := rng.IntN(len(d.posts))
				if i%5 == 0 {
					i++ // followers-only posts may not be visible to a random user
				}
				p := principal(d.users[rng.IntN(len(d.users))])
				if err := d.posts2.LikePost(ctx, p, d.posts[i%len(d.posts)]); err != nil && !strings.Contains(err.Error(), "not found") {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkSearchPosts reads the first page of a hashtag with ~1,000 posts.
func BenchmarkSearchPosts(b *testing.B) {
	for _, engine := range engines(b) {
		b.Run(engine, func(b *testing.B) {
			d := benchDataset(b, engine)
			rng := rand.New(rand.NewPCG(9, 10))
			ctx := context.Background()
			b.ResetTimer()
			for b.Loop() {
				p := principal(d.users[rng.IntN(len(d.users))])
				if _, err := d.posts2.SearchPosts(ctx, p, fmt.Sprintf("#tag%d", rng.IntN(benchTags)), 20, ""); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkSearchUsers searches the first five letters of a random
// username among the data set's users.
func BenchmarkSearchUsers(b *testing.B) {
	for _, engine := range engines(b) {
		b.Run(engine, func(b *testing.B) {
			d := benchDataset(b, engine)
			rng := rand.New(rand.NewPCG(11, 12))
			ctx := context.Background()
			if engine == store.Postgres {
				d.explain(b, "user search", func() error {
					_, err := d.social.SearchUsers(ctx, principal(d.users[3]), d.usernames[42][:5], 20, "")
					return err
				})
			}
			b.ResetTimer()
			for b.Loop() {
				q := d.usernames[rng.IntN(len(d.usernames))][:5]
				if _, err := d.social.SearchUsers(ctx, principal(d.users[rng.IntN(len(d.users))]), q, 20, ""); err != nil {
					b.Fatal(err)
				}
			}
		})
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

// explainFeed logs the plans of a feed page's queries.
func (d *dataset) explainFeed(b *testing.B) {
	d.explain(b, "feed page", func() error {
		_, err := d.posts2.ListFeed(context.Background(), principal(d.users[11]), 20, "")
		return err
	})
}

// explain logs the Postgres plan (EXPLAIN ANALYZE) of every query that run
// sends, as the service really sends them.
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
	// Replayed in one transaction, so that SET LOCAL settings the service
	// made apply to the plans as they did to the queries.
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer tx.Rollback() //nolint:errcheck // a read-only replay
	var selects []string
	for _, q := range queries {
		switch {
		case strings.HasPrefix(q, "SET "):
			if _, err := tx.ExecContext(ctx, q); err != nil {
				b.Fatalf("replay %q: %v", q, err)
			}
		case strings.HasPrefix(q, "SELECT"):
			selects = append(selects, q)
		}
	}
	for i, q := range selects {
		rows, err := tx.QueryContext(ctx, "EXPLAIN (ANALYZE, BUFFERS) "+q)
		if err != nil {
			b.Fatalf("explain: %v", err)
		}
		var plan []string
		for rows.Next() {
			var line string
			_ = rows.Scan(&line)
			plan = append(plan, line)
		}
		rows.Close()
		b.Logf("%s query %d of %d:\n%s\n%s", name, i+1, len(selects), q, strings.Join(plan, "\n"))
	}
}
