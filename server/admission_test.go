package server_test

import (
	"context"
	"testing"
	"time"

	flockv1 "github.com/flock-social/flock/gen/go/flock/v1"
	"github.com/flock-social/flock/gen/go/flock/v1/flockv1connect"
	tu "github.com/flock-social/flock/internal/testutil"
	"github.com/flock-social/flock/server"
)

// Live streams are open for hours: with one admission slot and a stream of
// every transport open, requests are still answered, and the slot is free
// again after each.
func TestAdmission_OpenStreamsTakeNoSlot(t *testing.T) {
	t.Parallel()
	s := tu.MustServer(t, "sqlite", func(c *server.Config) { c.MaxActiveRequests = 1 })
	alice := s.MustAccount(t, "streamslot")
	for _, tr := range []tu.Transport{ws, tu.Connect, tu.GRPC, tu.GRPCWeb} {
		mustOpenStream(t, s, tr, false, alice.AccessToken)
	}
	for _, tr := range tu.Transports {
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
		_, err := tu.Call[flockv1.GetMeResponse](ctx, s, tr, flockv1connect.UserServiceGetMeProcedure, alice.AccessToken, &flockv1.GetMeRequest{})
		cancel()
		if err != nil {
			t.Fatalf("GetMe over %s with streams open and one slot: %v", tr, err)
		}
	}
	if active, waiting := s.Metric(t, "flock_requests_active"), s.Metric(t, "flock_requests_waiting"); active != 0 || waiting != 0 {
		t.Fatalf("flock_requests_active %v, flock_requests_waiting %v after every answer; want 0 and 0", active, waiting)
	}
}
