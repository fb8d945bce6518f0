package server

import (
	"context"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus"

	flockv1 "github.com/flock-social/flock/gen/go/flock/v1"
	"github.com/flock-social/flock/gen/go/flock/v1/flockv1connect"
	"github.com/flock-social/flock/internal/analytics"
	"github.com/flock-social/flock/internal/moderation"
	"github.com/flock-social/flock/internal/post"
	"github.com/flock-social/flock/internal/store"
	"github.com/flock-social/flock/internal/timeline"
	"github.com/flock-social/flock/internal/video"
)

// postServer serves flock.v1.PostService (GetVideo and DeleteVideo are in
// server/video.go, beside the upload).
type postServer struct {
	posts      *post.Service
	videos     *video.Service
	moderation *moderation.Service // ReportPost (server/report.go)
	analytics  *analytics.Service  // GetPost counts views; GetPostAnalytics (server/analytics.go)
	conv       converter
}

var _ flockv1connect.PostServiceHandler = (*postServer)(nil)

var storedVisibility = map[flockv1.Visibility]string{
	flockv1.Visibility_VISIBILITY_UNSPECIFIED: "",
	flockv1.Visibility_VISIBILITY_PUBLIC:      store.VisibilityPublic,
	flockv1.Visibility_VISIBILITY_FOLLOWERS:   store.VisibilityFollowers,
	flockv1.Visibility_VISIBILITY_GROUP:       store.VisibilityGroup,
}

func (s *postServer) page(ctx context.Context, pg *post.Page) ([]*flockv1.Post, string) {
	return s.conv.posts(pg.Posts, principal(ctx).UserID), pg.NextPageToken
}

func (s *postServer) ListFeed(ctx context.Context, req *connect.Request[flockv1.ListFeedRequest]) (*connect.Response[flockv1.ListFeedResponse], error) {
	pg, err := s.posts.ListFeed(ctx, principal(ctx), req.Msg.GetPageSize(), req.Msg.GetPageToken())
	if err != nil {
		return nil, err
	}
	posts, next := s.page(ctx, pg)
	return connect.NewResponse(&flockv1.ListFeedResponse{Posts: posts, NextPageToken: next}), nil
}

func (s *postServer) CreatePost(ctx context.Context, req *connect.Request[flockv1.CreatePostRequest]) (*connect.Response[flockv1.CreatePostResponse], error) {
	m := req.Msg
	v, err := s.posts.CreatePost(ctx, principal(ctx), post.CreateInput{
		Content:        m.GetContent(),
		Visibility:     storedVisibility[m.GetVisibility()],
		GroupID:        m.GetGroupId(),
		VideoID:        m.GetVideoId(),
		IdempotencyKey: req.Header().Get("Idempotency-Key"),
	})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&flockv1.CreatePostResponse{Post: s.conv.post(v, principal(ctx).UserID)}), nil
}

func (s *postServer) GetPost(ctx context.Context, req *connect.Request[flockv1.GetPostRequest]) (*connect.Response[flockv1.GetPostResponse], error) {
	v, err := s.posts.GetPost(ctx, principal(ctx), req.Msg.GetPostId())
	if err != nil {
		return nil, err
	}
	s.analytics.CountView(v.ID, principal(ctx).UserID)
	return connect.NewResponse(&flockv1.GetPostResponse{Post: s.conv.post(v, principal(ctx).UserID)}), nil
}

func (s *postServer) UpdatePost(ctx context.Context, req *connect.Request[flockv1.UpdatePostRequest]) (*connect.Response[flockv1.UpdatePostResponse], error) {
	v, err := s.posts.UpdatePost(ctx, principal(ctx), req.Msg.GetPostId(), req.Msg.GetContent())
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&flockv1.UpdatePostResponse{Post: s.conv.post(v, principal(ctx).UserID)}), nil
}

func (s *postServer) DeletePost(ctx context.Context, req *connect.Request[flockv1.DeletePostRequest]) (*connect.Response[flockv1.DeletePostResponse], error) {
	if err := s.posts.DeletePost(ctx, principal(ctx), req.Msg.GetPostId()); err != nil {
		return nil, err
	}
	return connect.NewResponse(&flockv1.DeletePostResponse{}), nil
}

func (s *postServer) LikePost(ctx context.Context, req *connect.Request[flockv1.LikePostRequest]) (*connect.Response[flockv1.LikePostResponse], error) {
	if err := s.posts.LikePost(ctx, principal(ctx), req.Msg.GetPostId()); err != nil {
		return nil, err
	}
	return connect.NewResponse(&flockv1.LikePostResponse{}), nil
}

func (s *postServer) UnlikePost(ctx context.Context, req *connect.Request[flockv1.UnlikePostRequest]) (*connect.Response[flockv1.UnlikePostResponse], error) {
	if err := s.posts.UnlikePost(ctx, principal(ctx), req.Msg.GetPostId()); err != nil {
		return nil, err
	}
	return connect.NewResponse(&flockv1.UnlikePostResponse{}), nil
}

func (s *postServer) CreateComment(ctx context.Context, req *connect.Request[flockv1.CreateCommentRequest]) (*connect.Response[flockv1.CreateCommentResponse], error) {
	c, err := s.posts.CreateComment(ctx, principal(ctx), req.Msg.GetPostId(), req.Msg.GetContent(), req.Header().Get("Idempotency-Key"))
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&flockv1.CreateCommentResponse{Comment: s.conv.comment(c, principal(ctx).UserID)}), nil
}

func (s *postServer) ListComments(ctx context.Context, req *connect.Request[flockv1.ListCommentsRequest]) (*connect.Response[flockv1.ListCommentsResponse], error) {
	p := principal(ctx)
	pg, err := s.posts.ListComments(ctx, p, req.Msg.GetPostId(), req.Msg.GetPageSize(), req.Msg.GetPageToken())
	if err != nil {
		return nil, err
	}
	out := make([]*flockv1.Comment, len(pg.Comments))
	for i, c := range pg.Comments {
		out[i] = s.conv.comment(c, p.UserID)
	}
	return connect.NewResponse(&flockv1.ListCommentsResponse{Comments: out, NextPageToken: pg.NextPageToken}), nil
}

func (s *postServer) DeleteComment(ctx context.Context, req *connect.Request[flockv1.DeleteCommentRequest]) (*connect.Response[flockv1.DeleteCommentResponse], error) {
	if err := s.posts.DeleteComment(ctx, principal(ctx), req.Msg.GetPostId(), req.Msg.GetCommentId()); err != nil {
		return nil, err
	}
	return connect.NewResponse(&flockv1.DeleteCommentResponse{}), nil
}

func (s *postServer) SearchPosts(ctx context.Context, req *connect.Request[flockv1.SearchPostsRequest]) (*connect.Response[flockv1.SearchPostsResponse], error) {
	pg, err := s.posts.SearchPosts(ctx, principal(ctx), req.Msg.GetHashtag(), req.Msg.GetPageSize(), req.Msg.GetPageToken())
	if err != nil {
		return nil, err
	}
	posts, next := s.page(ctx, pg)
	return connect.NewResponse(&flockv1.SearchPostsResponse{Posts: posts, NextPageToken: next}), nil
}

// timelineCollectors exposes what home timelines do on /metrics.
func timelineCollectors(t *timeline.Service) []prometheus.Collector {
	counter := func(name, help string, v func(timeline.Stats) float64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return v(t.Stats()) })
	}
	return []prometheus.Collector{
		counter("flock_timeline_reads_total", "Home feed pages served from a materialized timeline.", func(s timeline.Stats) float64 { return float64(s.Reads) }),
		counter("flock_timeline_fallbacks_total", "Home feed pages (or their ends) read from the posts: no timeline yet, or older than its floor.", func(s timeline.Stats) float64 { return float64(s.Fallbacks) }),
		counter("flock_timeline_fanouts_total", "Timeline fan-out jobs done on this instance.", func(s timeline.Stats) float64 { return float64(s.Fanouts) }),
		counter("flock_timeline_fanout_entries_total", "Timeline entries written by fan-out jobs on this instance.", func(s timeline.Stats) float64 { return float64(s.Entries) }),
		counter("flock_timeline_fanout_seconds_total", "Time spent in timeline fan-out jobs on this instance.", func(s timeline.Stats) float64 { return s.FanoutSeconds }),
		counter("flock_timeline_fills_total", "New timelines filled on this instance.", func(s timeline.Stats) float64 { return float64(s.Fills) }),
	}
}
