package server

import (
	"context"

	"connectrpc.com/connect"

	flockv1 "github.com/flock-social/flock/gen/go/flock/v1"
)

// DeleteAccount deletes the caller's own account; there is no way to name
// another one.
func (s *userServer) DeleteAccount(ctx context.Context, req *connect.Request[flockv1.DeleteAccountRequest]) (*connect.Response[flockv1.DeleteAccountResponse], error) {
	if err := s.deleter.DeleteAccount(ctx, principal(ctx), req.Msg.GetCurrentPassword()); err != nil {
		return nil, err
	}
	return connect.NewResponse(&flockv1.DeleteAccountResponse{}), nil
}
