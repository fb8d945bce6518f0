package server

import "github.com/flock-social/flock/gen/go/flock/v1/flockv1connect"

// Services whose features have not landed yet: every RPC answers
// Unimplemented ("flock.v1.GroupService.CreateGroup is not implemented").
type (
	groupServer struct {
		flockv1connect.UnimplementedGroupServiceHandler
	}
	moderationServer struct {
		flockv1connect.UnimplementedModerationServiceHandler
	}
)
