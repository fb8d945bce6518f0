package server_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/uptrace/bun"

	flockv1 "github.com/flock-social/flock/gen/go/flock/v1"
	"github.com/flock-social/flock/gen/go/flock/v1/flockv1connect"
	tu "github.com/flock-social/flock/internal/testutil"
	"github.com/flock-social/flock/server"
)

// queryCounter counts the statements a server sends to its database
// while serving requests (not those of background jobs, such as timeline
// fan-outs, which run whenever they run).
type queryCounter struct{ n atomic.Int64 }

func (c *queryCounter) BeforeQuery(ctx context.Context, _ *bun.QueryEvent) context.Context {
	if server.RequestID(ctx) != "" {
		c.n.Add(1)
	}
	return ctx
}

func (c *queryCounter) AfterQuery(context.Context, *bun.QueryEvent) {}

// P13 and the feed's cost: a page size over 100 is clamped to 100, and a
// page costs the same number of queries whatever its size (no N+1).
func TestFeed_ClampedPagesInFixedQueries_P13(t *testing.T) {
	t.Parallel()
	forEachServer(t, func(t *testing.T, s *tu.Server) {
		a := api{t: t, s: s, tr: tu.Connect}
		reader := s.MustAccount(t, "reader")
		for i := range 6 {
			w := s.MustAccount(t, fmt.Sprintf("writer%d", i))
			if err := a.follow(reader.AccessToken, w.ID); err != nil {
				t.Fatal(err)
			}
			for j := range 20 {
				p := a.post(w.AccessToken, fmt.Sprintf("post %d #tag%d", j, j%3))
				if j%2 == 0 {
					must[flockv1.LikePostResponse](a, flockv1connect.PostServiceLikePostProcedure, reader.AccessToken, &flockv1.LikePostRequest{PostId: p.GetId()})
				}
			}
		}
		posts, next := a.feed(reader.AccessToken, 1000, "")
		if len(posts) != 100 || next == "" {
			t.Fatalf("page size 1000 gave %d posts (next %q), want 100 and a next page", len(posts), next)
		}
		if rest, next := a.feed(reader.AccessToken, 1000, next); len(rest) != 20 || next != "" {
			t.Fatalf("second page has %d posts (next %q), want the last 20", len(rest), next)
		}
		if posts, _ := a.feed(reader.AccessToken, 0, ""); len(posts) != 20 {
			t.Fatalf("default page size gave %d, want 20", len(posts))
		}

		counter := &queryCounter{}
		s.App.DB().AddQueryHook(counter)
		queries := func(size int32) int64 {
			before := counter.n.Load()
			posts, _ := a.feed(reader.AccessToken, size, "")
			if int32(len(posts)) != size {
				t.Fatalf("page of %d has %d posts", size, len(posts))
			}
			return counter.n.Load() - before
		}
		if small, large := queries(2), queries(100); small != large {
			t.Errorf("a feed page of 2 takes %d queries and one of 100 takes %d: cost grows with the page", small, large)
		}
	})
}
