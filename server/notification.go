package server

import (
	"context"
	"fmt"
	"net/http"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

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
	return s.events.StreamNotifications(ctx, p.UserID, p.SessionID, req.Msg.GetSinceId(), streamReady(stream.ResponseHeader(), stream.Send), func(e notify.Event) error {
		n, err := eventMessage[*flockv1.Notification](e)
		if err != nil {
			return err
		}
		return stream.Send(n)
	})
}

// SinceIDHeader is the response header of a Subscribe stream that
// listens: the since_id that resumes it with nothing missed, even when the
// connection drops before its first event (then the client has no event
// id of its own, and an empty since_id would start a new stream at its
// own "now", past what happened in between). A refused stream has no such
// header: its headers come with the error.
const SinceIDHeader = "Flock-Since-Id"

// streamReady is the ready of a Subscribe stream: it sends the headers, with
// SinceIDHeader, once the stream listens (Send(nil) flushes them), so that
// the client's call returns then and knows that nothing after is missed.
func streamReady[M any](header http.Header, send func(*M) error) func(since string) error {
	return func(since string) error {
		header.Set(SinceIDHeader, since)
		return send(nil)
	}
}

// prepareNotifications converts a batch of notifications once for all of
// the recipient's streams (notify.Service.PrepareNotifications): actors
// as the recipient sees them, in one read.
func (a *App) prepareNotifications(ctx context.Context, rows []*store.Notification) ([]any, error) {
	out, err := a.conv.notifications(ctx, a.social, rows)
	if err != nil {
		return nil, err
	}
	values := make([]any, len(out))
	for i, n := range out {
		values[i] = n
	}
	return values, nil
}

// prepareActivities converts a batch of activity-log entries once for all
// of the user's streams (notify.Service.PrepareActivities).
func (a *App) prepareActivities(_ context.Context, rows []*store.Activity) ([]any, error) {
	values := make([]any, len(rows))
	for i, r := range rows {
		values[i] = a.conv.activity(r)
	}
	return values, nil
}

// eventMessage is the wire message a prepared stream event carries.
func eventMessage[M proto.Message](e notify.Event) (M, error) {
	m, ok := e.Value.(M)
	if !ok {
		return m, fmt.Errorf("stream event %s: prepared as %T, want %T", e.ID, e.Value, m)
	}
	return m, nil
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
	return s.events.StreamActivities(ctx, p.UserID, p.SessionID, req.Msg.GetSinceId(), streamReady(stream.ResponseHeader(), stream.Send), func(e notify.Event) error {
		a, err := eventMessage[*flockv1.Activity](e)
		if err != nil {
			return err
		}
		return stream.Send(a)
	})
}

// streamCollectors exposes what live streams hold and cost on /metrics.
func streamCollectors(events *notify.Service) []prometheus.Collector {
	counter := func(name, help string, v func(notify.StreamStats) uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return float64(v(events.StreamStats())) })
	}
	reads := func(read string, v func(notify.StreamStats) uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "flock_stream_store_reads_total", ConstLabels: prometheus.Labels{"read": read},
			Help: "Store reads made for live streams: events (one per wake-up per user, plus one per stream opening), prepare (converting a batch of events for every stream of a user), session (liveness checks).",
		}, func() float64 { return float64(v(events.StreamStats())) })
	}
	return []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "flock_streams_open", Help: "Live streams (WebSocket and Subscribe) open on this instance."},
			func() float64 { return float64(events.StreamStats().Open) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "flock_stream_hubs", Help: "Users (per kind of stream) with live streams on this instance; each is read once per event."},
			func() float64 { return float64(events.StreamStats().Hubs) }),
		counter("flock_streams_refused_total", "Streams refused by the per-account or per-instance cap.", func(s notify.StreamStats) uint64 { return s.Refused }),
		reads("events", func(s notify.StreamStats) uint64 { return s.EventReads }),
		reads("prepare", func(s notify.StreamStats) uint64 { return s.Prepares }),
		reads("session", func(s notify.StreamStats) uint64 { return s.SessionReads }),
	}
}
