package server

import (
	"context"

	"connectrpc.com/connect"

	flockv1 "github.com/flock-social/flock/gen/go/flock/v1"
)

// SuggestUsers answers GET /api/posts/suggestions/ (contract row S6): the
// accounts the caller might follow, best first, each with its reason.
func (s *userServer) SuggestUsers(ctx context.Context, req *connect.Request[flockv1.SuggestUsersRequest]) (*connect.Response[flockv1.SuggestUsersResponse], error) {
	p := principal(ctx)
	suggestions, err := s.social.SuggestUsers(ctx, p, req.Msg.GetPageSize())
	if err != nil {
		return nil, err
	}
	out := make([]*flockv1.Suggestion, len(suggestions))
	for i, sg := range suggestions {
		out[i] = &flockv1.Suggestion{User: s.conv.userView(sg.User, p.UserID), Reason: sg.Reason, Score: sg.Score}
	}
	return connect.NewResponse(&flockv1.SuggestUsersResponse{Suggestions: out}), nil
}
