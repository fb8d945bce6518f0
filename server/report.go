package server

import (
	"context"

	"connectrpc.com/connect"

	flockv1 "github.com/flock-social/flock/gen/go/flock/v1"
	"github.com/flock-social/flock/internal/moderation"
)

// ReportPost reports a post to staff (internal/moderation decides).
func (s *postServer) ReportPost(ctx context.Context, req *connect.Request[flockv1.ReportPostRequest]) (*connect.Response[flockv1.ReportPostResponse], error) {
	p := principal(ctx)
	r, err := s.moderation.ReportPost(ctx, p, req.Msg.GetPostId(), moderation.ReportInput{
		Reason:  storedReportReasons[req.Msg.GetReason()],
		Details: req.Msg.GetDetails(),
	})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&flockv1.ReportPostResponse{Report: s.conv.report(r, p.UserID)}), nil
}
