package analytics_test

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/flock-social/flock/internal/account"
	"github.com/flock-social/flock/internal/analytics"
	"github.com/flock-social/flock/internal/notify"
	"github.com/flock-social/flock/internal/post"
	"github.com/flock-social/flock/internal/pubsub"
	"github.com/flock-social/flock/internal/social"
	"github.com/flock-social/flock/internal/store"
	tu "github.com/flock-social/flock/internal/testutil"
	"github.com/flock-social/flock/internal/timeline"
)

// The benchmark's small data set: readers and public posts.
const (
	benchUsers = 500
	benchPosts = 5_000
	// benchFlushEvery is how many reads one flush writes in the buffered
	// case: one instance serving 200 reads/s with the 5s default interval.
	benchFlushEvery = 1_000
)

type benchData struct {
	db      *store.DB
	posts   *post.Service
	users   []string
	ids     []string
	authors []string // of ids
}

func buildBench(b *testing.B, engine string) *benchData {
	b.Helper()
	db, dsn := tu.MustStoreURL(b, engine)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))
	now := time.Now().UTC()
	d := &benchData{db: db}
	users := make([]store.User, benchUsers)
	for i := range users {
		id := store.NewID()
		d.users = append(d.users, id)
		users[i] = store.User{ID: id, Username: fmt.Sprintf("reader%d", i), Email: fmt.Sprintf("reader%d@example.com", i),
			PasswordHash: "x", FullName: "Reader", Role: store.RoleMember, EmailVerifiedAt: &now, CreatedAt: now, UpdatedAt: now}
	}
	if _, err := db.NewInsert().Model(&users).Exec(ctx); err != nil {
		b.Fatal(err)
	}
	posts := make([]store.Post, 0, 1000)
	for i := range benchPosts {
		id := store.NewID()
		d.ids = append(d.ids, id)
		d.authors = append(d.authors, d.users[rng.IntN(len(d.users))])
		posts = append(posts, store.Post{ID: id, AuthorID: d.authors[i], Content: fmt.Sprintf("post %d", i),
			Visibility: store.VisibilityPublic, CreatedAt: now, UpdatedAt: now})
		if len(posts) == cap(posts) {
			if _, err := db.NewInsert().Model(&posts).Exec(ctx); err != nil {
				b.Fatal(err)
			}
			posts = posts[:0]
		}
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
	b.Cleanup(func() { broker.Close() })
	events := notify.NewService(db, broker, slog.New(slog.DiscardHandler))
	d.posts = post.NewService(db, social.NewService(db, events), events, nil, tu.MustTimelines(b, db, dsn, timeline.Config{}))
	return d
}

// read is one GetPost by a random reader of a random post.
func (d *benchData) read(rng *rand.Rand) (postID, viewerID string, err error) {
	postID, viewerID = d.ids[rng.IntN(len(d.ids))], d.users[rng.IntN(len(d.users))]
	_, err = d.posts.GetPost(context.Background(), &account.Principal{UserID: viewerID, Role: store.RoleMember}, postID)
	return postID, viewerID, err
}

// writeView is the design analytics avoids: a transaction per read.
func (d *benchData) writeView(postID, viewerID string) error {
	day := d.db.Now().UTC().Format(store.DayLayout)
	return d.db.InTx(context.Background(), func(ctx context.Context, tx bun.Tx) error {
		return d.db.AddPostViews(ctx, tx, []store.PostViewsDaily{{PostID: postID, Day: day, Views: 1}}, []store.PostViewer{{PostID: postID, ViewerID: viewerID, Day: day}})
	})
}

// readCounting is one read counted by svc; with svc nil, written at once.
func (d *benchData) readCounting(rng *rand.Rand, svc *analytics.Service) error {
	postID, viewerID, err := d.read(rng)
	if err != nil {
		return err
	}
	if svc == nil {
		return d.writeView(postID, viewerID)
	}
	svc.CountView(postID, viewerID)
	return nil
}

// BenchmarkGetPostCountingViews compares, on each engine: CountView alone;
// GetPost alone; GetPost counting its view in the buffer (with a flush of
// the buffer every benchFlushEvery reads, in the timed loop); GetPost
// writing its view in a transaction of its own; the same two with 8 readers
// at once; one flush of benchFlushEvery views; and an author's
// GetPostAnalytics.
//
//	go test -run '^$' -bench GetPostCountingViews -benchtime 2s ./internal/analytics/
func BenchmarkGetPostCountingViews(b *testing.B) {
	for _, engine := range tu.Engines(b) {
		b.Run(engine, func(b *testing.B) {
			d := buildBench(b, engine)
			ctx := context.Background()
			newSvc := func() *analytics.Service {
				return analytics.NewService(d.db, slog.New(slog.DiscardHandler), analytics.Config{FlushInterval: time.Hour, MaxKeys: 1 << 30})
			}

			// CountView alone: what a read pays on the request path. A new
			// buffer every 10,000 views stands in for the flusher.
			b.Run("count-view-only", func(b *testing.B) {
				svc := newSvc()
				rng := rand.New(rand.NewPCG(1, 2))
				n := 0
				for b.Loop() {
					svc.CountView(d.ids[rng.IntN(len(d.ids))], d.users[rng.IntN(len(d.users))])
					if n++; n%10_000 == 0 {
						b.StopTimer()
						svc = newSvc()
						b.StartTimer()
					}
				}
			})
			b.Run("get-post", func(b *testing.B) {
				rng := rand.New(rand.NewPCG(3, 4))
				for b.Loop() {
					if _, _, err := d.read(rng); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("get-post+buffered-view", func(b *testing.B) {
				svc := newSvc()
				rng := rand.New(rand.NewPCG(5, 6))
				n := 0
				for b.Loop() {
					if err := d.readCounting(rng, svc); err != nil {
						b.Fatal(err)
					}
					if n++; n%benchFlushEvery == 0 {
						if err := svc.Flush(ctx); err != nil {
							b.Fatal(err)
						}
					}
				}
				if err := svc.Flush(ctx); err != nil {
					b.Fatal(err)
				}
			})
			b.Run("get-post+write-per-read", func(b *testing.B) {
				rng := rand.New(rand.NewPCG(7, 8))
				for b.Loop() {
					if err := d.readCounting(rng, nil); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("8-readers/get-post+buffered-view", func(b *testing.B) {
				svc := newSvc()
				var n, seed atomic.Int64
				b.SetParallelism(max(1, 8/runtime.GOMAXPROCS(0))) // 8 readers
				b.RunParallel(func(pb *testing.PB) {
					rng := rand.New(rand.NewPCG(uint64(seed.Add(1)), 9))
					for pb.Next() {
						if err := d.readCounting(rng, svc); err != nil {
							b.Error(err)
							return
						}
						if n.Add(1)%benchFlushEvery == 0 {
							if err := svc.Flush(ctx); err != nil {
								b.Error(err)
								return
							}
						}
					}
				})
				if err := svc.Flush(ctx); err != nil {
					b.Fatal(err)
				}
			})
			b.Run("8-readers/get-post+write-per-read", func(b *testing.B) {
				var seed atomic.Int64
				b.SetParallelism(max(1, 8/runtime.GOMAXPROCS(0)))
				b.RunParallel(func(pb *testing.PB) {
					rng := rand.New(rand.NewPCG(uint64(seed.Add(1)), 10))
					for pb.Next() {
						if err := d.readCounting(rng, nil); err != nil {
							b.Error(err)
							return
						}
					}
				})
			})
			b.Run(fmt.Sprintf("flush-%d-views", benchFlushEvery), func(b *testing.B) {
				svc := newSvc()
				rng := rand.New(rand.NewPCG(11, 12))
				for b.Loop() {
					b.StopTimer()
					for range benchFlushEvery {
						svc.CountView(d.ids[rng.IntN(len(d.ids))], d.users[rng.IntN(len(d.users))])
					}
					b.StartTimer()
					if err := svc.Flush(ctx); err != nil {
						b.Fatal(err)
					}
				}
			})
			// The author's 30-day analytics of a post read by the runs above,
			// with views of the post still buffered.
			b.Run("get-analytics-30-days", func(b *testing.B) {
				svc := newSvc()
				rng := rand.New(rand.NewPCG(13, 14))
				for b.Loop() {
					i := rng.IntN(len(d.ids))
					svc.CountView(d.ids[i], d.users[rng.IntN(len(d.users))])
					if _, err := svc.Get(ctx, &account.Principal{UserID: d.authors[i], Role: store.RoleMember}, d.ids[i], 30); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}
