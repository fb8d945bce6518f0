package server

import (
	"context"

	"connectrpc.com/connect"

	flockv1 "github.com/flock-social/flock/gen/go/flock/v1"
	"github.com/flock-social/flock/gen/go/flock/v1/flockv1connect"
	"github.com/flock-social/flock/internal/notify"
	"github.com/flock-social/flock/internal/social"
	"github.com/flock-social/flock/internal/store"
)

// notificationServer serves flock.v1.NotificationService; the WebSocket at
// /api/notifications/ (websocket.go) shares its conversion.
type notificationServer struct {
	events *notify.Service
	db     *store.DB
	social *social.Service // actors as the recipient sees them
	conv   converter
}

var _ flockv1connect.NotificationServiceHandler = (*notificationServer)(nil)

func (s *notificationServer) ListNotifications(ctx context.Context, req *connect.Request[flockv1.ListNotificationsRequest]) (*connect.Response[flockv1.ListNotificationsResponse], error) {
	p := principal(ctx)
	pg, err := s.events.ListNotifications(ctx, p.UserID, req.Msg.GetPageSize(), req.Msg.GetPageToken(), req.Msg.GetUnreadOnly())
	if err != nil {
		return nil, err
	}
	out, err := s.conv.notifications(ctx, s.social, pg.Notifications)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&flockv1.ListNotificationsResponse{Notifications: out, UnreadCount: int32(pg.Unread), NextPageToken: pg.NextPageToken}), nil
}

func (s *notificationServer) MarkNotificationsRead(ctx context.Context, req *connect.Request[flockv1.MarkNotificationsReadRequest]) (*connect.Response[flockv1.MarkNotificationsReadResponse], error) {
	unread, err := s.events.MarkRead(ctx, principal(ctx).UserID, req.Msg.GetNotificationIds(), req.Msg.GetAll())
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&flockv1.MarkNotificationsReadResponse{UnreadCount: int32(unread)}), nil
}

func (s *notificationServer) Subscribe(ctx context.Context, req *connect.Request[flockv1.NotificationServiceSubscribeRequest], stream *connect.ServerStream[flockv1.Notification]) error {
	p := principal(ctx)
	// Send(nil) flushes the response headers: the client's call returns
	// once the stream listens, so it knows nothing after that is missed.
	ready := func() error { return stream.Send(nil) }
	return s.events.StreamNotifications(ctx, p.UserID, p.SessionID, req.Msg.GetSinceId(), ready, func(n *store.Notification) error {
		out, err := s.conv.notifications(ctx, s.social, []*store.Notification{n})
		if err != nil {
			return err
		}
		return stream.Send(out[0])
	})
}

// activityServer serves flock.v1.ActivityService; the WebSocket at
// /api/activity-log/ shares its conversion.
type activityServer struct {
	events *notify.Service
	conv   converter
}

var _ flockv1connect.ActivityServiceHandler = (*activityServer)(nil)

func (s *activityServer) ListActivity(ctx context.Context, req *connect.Request[flockv1.ListActivityRequest]) (*connect.Response[flockv1.ListActivityResponse], error) {
	pg, err := s.events.ListActivity(ctx, principal(ctx).UserID, req.Msg.GetPageSize(), req.Msg.GetPageToken())
	if err != nil {
		return nil, err
	}
	out := make([]*flockv1.Activity, len(pg.Activities))
	for i, a := range pg.Activities {
		out[i] = s.conv.activity(a)
	}
	return connect.NewResponse(&flockv1.ListActivityResponse{Activities: out, NextPageToken: pg.NextPageToken}), nil
}

func (s *activityServer) Subscribe(ctx context.Context, req *connect.Request[flockv1.ActivityServiceSubscribeRequest], stream *connect.ServerStream[flockv1.Activity]) error {
	p := principal(ctx)
	ready := func() error { return stream.Send(nil) }
	return s.events.StreamActivities(ctx, p.UserID, p.SessionID, req.Msg.GetSinceId(), ready, func(a *store.Activity) error {
		return stream.Send(s.conv.activity(a))
	})
}
