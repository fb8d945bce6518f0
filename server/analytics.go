package server

import (
	"context"
	"math"

	"connectrpc.com/connect"

	flockv1 "github.com/flock-social/flock/gen/go/flock/v1"
	"github.com/flock-social/flock/internal/analytics"
)

// GetPostAnalytics answers a post's views, unique viewers, likes and
// comments, in total and per UTC day. Author only (docs/analytics.md).
func (s *postServer) GetPostAnalytics(ctx context.Context, req *connect.Request[flockv1.GetPostAnalyticsRequest]) (*connect.Response[flockv1.GetPostAnalyticsResponse], error) {
	r, err := s.analytics.Get(ctx, principal(ctx), req.Msg.GetPostId(), int(req.Msg.GetDays()))
	if err != nil {
		return nil, err
	}
	out := &flockv1.GetPostAnalyticsResponse{
		Views:         clamp32(r.Views),
		UniqueViewers: clamp32(r.UniqueViewers),
		Likes:         clamp32(r.Likes),
		Comments:      clamp32(r.Comments),
		Daily:         make([]*flockv1.PostAnalyticsDay, len(r.Daily)),
	}
	for i, d := range r.Daily {
		out.Daily[i] = &flockv1.PostAnalyticsDay{
			Date:          timestamp(d.Date),
			Views:         clamp32(d.Views),
			UniqueViewers: clamp32(d.UniqueViewers),
			Likes:         clamp32(d.Likes),
			Comments:      clamp32(d.Comments),
		}
	}
	return connect.NewResponse(out), nil
}

// clamp32 fits a count into the API's int32 fields.
func clamp32(n int64) int32 { return int32(max(0, min(n, math.MaxInt32))) }

// Analytics returns the view counter, for tests that flush it.
func (a *App) Analytics() *analytics.Service { return a.analytics }
