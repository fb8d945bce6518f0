package client

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"connectrpc.com/connect"

	flockv1 "github.com/flock-social/flock/gen/go/flock/v1"
)

// StreamOption configures SubscribeNotifications and SubscribeActivity.
type StreamOption func(*streamOptions)

type streamOptions struct {
	onConnect func()
}

// OnConnect sets fn to be called each time the stream is (re)opened and
// the server listens: every event from then on is delivered, so this is
// the moment to show a "live" indicator, or in a test to cause events. A
// stream the server refused does not call it. fn runs on the subscribing
// goroutine before any event.
func OnConnect(fn func()) StreamOption {
	return func(o *streamOptions) { o.onConnect = fn }
}

// sinceIDHeader is the header of a Subscribe stream that listens: the
// since_id that resumes it with nothing missed, even before its first event.
const sinceIDHeader = "Flock-Since-Id"

// Reconnection delays: exponential from minBackoff, capped at maxBackoff,
// each one drawn between half and all of its step. They start over after
// a connection that delivered an event or stayed up healthyAfter.
const (
	minBackoff   = 250 * time.Millisecond
	maxBackoff   = 30 * time.Second
	healthyAfter = 10 * time.Second
	// exhaustedFailures is where the backoff starts after a refusal for
	// too many streams (resource_exhausted): a 2s step.
	exhaustedFailures = 3
)

// SubscribeNotifications calls fn with each of the account's notifications
// as it happens, oldest first, until ctx ends (it returns ctx.Err()) or fn
// returns an error (it returns that error as it is).
//
// With sinceID empty the stream starts now; with the id of a notification
// received earlier, everything after it is delivered first. When the
// connection drops, it reconnects with capped exponential backoff (250ms
// to 30s, with jitter) from the id of the last event fn took (or, before
// the first, from where the first connection started), so nothing is
// missed and nothing repeats (an event whose id is not after the last
// one is skipped). An access token the server refuses is refreshed before
// reconnecting. OnConnect tells when each connection listens.
//
// A refusal for too many streams open (CodeResourceExhausted: the
// server's per-account cap) is retried too, with the backoff starting
// at seconds: the stream gets in once another of the account's closes.
//
// Returns the stream's error, without reconnecting, when the session is
// over (CodeUnauthenticated or CodePermissionDenied that a refresh does not
// cure: logout, a revoked session, a suspension) and when a retry cannot
// help (CodeInvalidArgument, such as a sinceID that is no notification's
// id; CodeUnimplemented).
func (c *Client) SubscribeNotifications(ctx context.Context, sinceID string, fn func(*flockv1.Notification) error, opts ...StreamOption) error {
	open := func(ctx context.Context, since string) (*connect.ServerStreamForClient[flockv1.Notification], error) {
		return c.Notifications.Subscribe(ctx, connect.NewRequest(&flockv1.NotificationServiceSubscribeRequest{SinceId: since}))
	}
	return follow(ctx, c.auth, sinceID, open, (*flockv1.Notification).GetId, fn, opts)
}

// SubscribeActivity is SubscribeNotifications for the account's own
// actions (the activity log), with the same resumption and errors.
func (c *Client) SubscribeActivity(ctx context.Context, sinceID string, fn func(*flockv1.Activity) error, opts ...StreamOption) error {
	open := func(ctx context.Context, since string) (*connect.ServerStreamForClient[flockv1.Activity], error) {
		return c.Activity.Subscribe(ctx, connect.NewRequest(&flockv1.ActivityServiceSubscribeRequest{SinceId: since}))
	}
	return follow(ctx, c.auth, sinceID, open, (*flockv1.Activity).GetId, fn, opts)
}

// follow runs a Subscribe stream through disconnections; see
// SubscribeNotifications.
func follow[T any](ctx context.Context, s *session, sinceID string,
	open func(ctx context.Context, sinceID string) (*connect.ServerStreamForClient[T], error),
	id func(*T) string, fn func(*T) error, opts []StreamOption) error {
	var o streamOptions
	for _, opt := range opts {
		opt(&o)
	}
	last := sinceID
	failures := 0
	// renewed is the access token a refresh gave after the stream was
	// refused; refused again with it, the session is over.
	renewed := ""
	for {
		var used string
		opened := time.Now()
		received := false
		stream, err := open(context.WithValue(ctx, usedTokenKey{}, &used), last)
		if err == nil {
			// ResponseHeader waits for the server's answer. A stream that
			// listens names its position (sinceIDHeader); a refusal's
			// headers come with its error and do not.
			if since := stream.ResponseHeader().Get(sinceIDHeader); since != "" {
				if last == "" {
					// No event yet: resume from where this stream
					// started, not from the next stream's "now".
					last = since
				}
				if o.onConnect != nil {
					o.onConnect()
				}
			}
			for stream.Receive() {
				msg := stream.Msg()
				received = true
				// IDs grow with time and have one length: one that is not
				// after the last was delivered already.
				if last != "" && id(msg) <= last {
					continue
				}
				if err := fn(msg); err != nil {
					_ = stream.Close()
					return err
				}
				last = id(msg)
			}
			err = stream.Err()
			_ = stream.Close()
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if received || time.Since(opened) > healthyAfter {
			failures, renewed = 0, ""
		}
		switch code := connect.CodeOf(err); {
		case code == connect.CodeUnauthenticated || code == connect.CodePermissionDenied:
			if used == "" || used == renewed {
				return fmt.Errorf("subscribe: %w", err)
			}
			rerr := s.renew(ctx, used)
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if rerr == nil {
				renewed, _ = s.tokens()
				continue // at once: the refusal was the token's, not the server's
			}
			if sessionOver(rerr) {
				return fmt.Errorf("subscribe: %w", refreshFailed(err, rerr))
			}
			// The refresh could not be made (the network): back off and
			// try again.
		case code == connect.CodeInvalidArgument || code == connect.CodeUnimplemented:
			return fmt.Errorf("subscribe: %w", err)
		case code == connect.CodeResourceExhausted:
			// Too many streams open for the account: a slot frees only
			// when another stream ends, so retrying within milliseconds
			// is pointless. Wait seconds, and longer each time.
			failures = max(failures, exhaustedFailures)
		}
		if err := sleep(ctx, backoff(failures)); err != nil {
			return err
		}
		failures++
	}
}

// backoff is the delay before reconnection attempt n (from 0): the step
// doubles from minBackoff up to maxBackoff, and the delay is drawn between
// half the step and the whole, so that clients dropped together do not
// return together.
func backoff(n int) time.Duration {
	step := maxBackoff
	if n < 16 && minBackoff<<n < maxBackoff {
		step = minBackoff << n
	}
	return step/2 + rand.N(step/2+1)
}

// sleep waits for d or until ctx ends, returning ctx.Err() then.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
