package gotest

import (
	"context"
	"errors"
	"net"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	client "github.com/flock-social/flock/client/go"
	flockv1 "github.com/flock-social/flock/gen/go/flock/v1"
	tu "github.com/flock-social/flock/internal/testutil"
)

// network dials the server for one Client and lets a test cut its
// connections, live streams included, and refuse new ones for a while.
type network struct {
	mu      sync.Mutex
	conns   []net.Conn
	offline bool
	refused int
}

func (n *network) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.offline {
		n.refused++
		return nil, errors.New("test network is offline")
	}
	conn, err := (&net.Dialer{}).DialContext(ctx, network, addr)
	if err == nil {
		n.conns = append(n.conns, conn)
	}
	return conn, err
}

// cut closes every connection and refuses new ones until restore.
func (n *network) cut() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.offline = true
	for _, c := range n.conns {
		c.Close()
	}
	n.conns = nil
}

func (n *network) restore() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.offline = false
}

// restoreAfterARefusal waits until the Client has tried to reconnect and
// been refused (what happened meanwhile happened while it was away), then
// restores the network.
func (n *network) restoreAfterARefusal(t *testing.T) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); n.refusedDials() == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the Client did not try to reconnect")
		}
	}
	n.restore()
}

func (n *network) refusedDials() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.refused
}

// mustNetworkClient returns an HTTP client whose connections go through a
// new network: cleartext HTTP/2 for gRPC, else HTTP/1.1.
func mustNetworkClient(t *testing.T, h2c bool) (*http.Client, *network) {
	n := &network{}
	transport := &http.Transport{DialContext: n.dial}
	if h2c {
		var protocols http.Protocols
		protocols.SetUnencryptedHTTP2(true)
		transport.Protocols = &protocols
	}
	t.Cleanup(transport.CloseIdleConnections)
	return &http.Client{Transport: transport}, n
}

// subscription runs a Subscribe helper in the background.
type subscription[T any] struct {
	events    chan *T
	connected chan struct{}
	done      chan error
	cancel    context.CancelFunc
}

// startSubscription runs subscribe (SubscribeNotifications or
// SubscribeActivity of a Client) until the test ends.
func startSubscription[T any](t *testing.T, subscribe func(context.Context, string, func(*T) error, ...client.StreamOption) error, sinceID string) *subscription[T] {
	ctx, cancel := context.WithCancel(t.Context())
	sub := &subscription[T]{events: make(chan *T, 100), connected: make(chan struct{}, 100), done: make(chan error, 1), cancel: cancel}
	go func() {
		sub.done <- subscribe(ctx, sinceID, func(e *T) error {
			sub.events <- e
			return nil
		}, client.OnConnect(func() { sub.connected <- struct{}{} }))
	}()
	t.Cleanup(func() {
		cancel()
		<-sub.done
	})
	return sub
}

func (sub *subscription[T]) waitConnected(t *testing.T) {
	t.Helper()
	select {
	case <-sub.connected:
	case err := <-sub.done:
		t.Fatalf("subscription ended: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("not connected within 10s")
	}
}

func (sub *subscription[T]) next(t *testing.T) *T {
	t.Helper()
	select {
	case e := <-sub.events:
		return e
	case err := <-sub.done:
		t.Fatalf("subscription ended: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("no event within 10s")
	}
	return nil
}

// noMore fails the test if an event arrives within a while.
func (sub *subscription[T]) noMore(t *testing.T) {
	t.Helper()
	select {
	case e := <-sub.events:
		t.Fatalf("unexpected event %v", e)
	case <-time.After(500 * time.Millisecond):
	}
}

func (sub *subscription[T]) end(t *testing.T) error {
	t.Helper()
	select {
	case err := <-sub.done:
		sub.done <- err // for the cleanup
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("subscription did not end within 10s")
	}
	return nil
}

// streamTransports are the ways a Client streams: Connect and gRPC-Web
// over HTTP/1.1, gRPC over cleartext HTTP/2.
var streamTransports = []struct {
	name string
	opts []client.Option
	h2c  bool
}{
	{"connect", nil, false},
	{"grpc", []client.Option{client.WithGRPC()}, true},
	{"grpcweb", []client.Option{client.WithGRPCWeb()}, false},
}

// A dropped connection is resumed: events made while the Client could
// not connect are delivered after it reconnects, each once, in order,
// followed by live ones; on Connect, gRPC and gRPC-Web.
func TestSubscribeNotifications_ResumesAfterDisconnect(t *testing.T) {
	t.Parallel()
	s := tu.MustServer(t, "sqlite")
	for _, tc := range streamTransports {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			alice, bob := s.MustAccount(t, "star_"+tc.name), s.MustAccount(t, "fan_"+tc.name)
			hc, nw := mustNetworkClient(t, tc.h2c)
			c := client.New(s.URL, append(tc.opts, client.WithHTTPClient(hc), client.WithTokens(alice.AccessToken, alice.RefreshToken))...)
			fan := client.New(s.URL, client.WithHTTPClient(s.HTTP), client.WithTokens(bob.AccessToken, bob.RefreshToken))
			post, err := c.Posts.CreatePost(ctx, connect.NewRequest(&flockv1.CreatePostRequest{Content: "comment here"}))
			if err != nil {
				t.Fatal(err)
			}
			comment := func(text string) string {
				t.Helper()
				res, err := fan.Posts.CreateComment(ctx, connect.NewRequest(&flockv1.CreateCommentRequest{PostId: post.Msg.GetPost().GetId(), Content: text}))
				if err != nil {
					t.Fatal(err)
				}
				return res.Msg.GetComment().GetId()
			}

			sub := startSubscription(t, c.SubscribeNotifications, "")
			sub.waitConnected(t)
			if _, err := fan.Users.Follow(ctx, connect.NewRequest(&flockv1.FollowRequest{UserId: alice.ID})); err != nil {
				t.Fatal(err)
			}
			got := []*flockv1.Notification{sub.next(t)}
			if got[0].GetType() != flockv1.NotificationType_NOTIFICATION_TYPE_FOLLOW {
				t.Fatalf("first event = %v", got[0])
			}

			nw.cut()
			var want []string
			for _, text := range []string{"missed 1", "missed 2", "missed 3"} {
				want = append(want, comment(text))
			}
			// At least one reconnection failed: the events above were made
			// while the Client was away.
			nw.restoreAfterARefusal(t)
			for range want {
				got = append(got, sub.next(t))
			}
			sub.waitConnected(t)
			want = append(want, comment("live"))
			got = append(got, sub.next(t))
			sub.noMore(t)

			var gotComments []string
			for _, n := range got[1:] {
				gotComments = append(gotComments, n.GetCommentId())
			}
			if !slices.Equal(gotComments, want) {
				t.Fatalf("comments delivered %v, want %v", gotComments, want)
			}
			// Exactly what the server lists, oldest first.
			list, err := c.Notifications.ListNotifications(ctx, connect.NewRequest(&flockv1.ListNotificationsRequest{PageSize: 100}))
			if err != nil {
				t.Fatal(err)
			}
			var listed, delivered []string
			for _, n := range slices.Backward(list.Msg.GetNotifications()) {
				listed = append(listed, n.GetId())
			}
			for _, n := range got {
				delivered = append(delivered, n.GetId())
			}
			if !slices.Equal(delivered, listed) {
				t.Fatalf("delivered %v, server lists %v", delivered, listed)
			}

			sub.cancel()
			if err := sub.end(t); !errors.Is(err, context.Canceled) {
				t.Fatalf("after cancel the helper returned %v, want context.Canceled", err)
			}
		})
	}
}

// A connection cut before the first event resumes from where the first
// connection started (the server names that position in a header), not
// from the next connection's "now": what happened in between arrives.
func TestSubscribeNotifications_CutBeforeTheFirstEventLosesNothing(t *testing.T) {
	t.Parallel()
	s := tu.MustServer(t, "sqlite")
	for _, tc := range streamTransports {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			alice, bob := s.MustAccount(t, "quiet_"+tc.name), s.MustAccount(t, "early_"+tc.name)
			hc, nw := mustNetworkClient(t, tc.h2c)
			c := client.New(s.URL, append(tc.opts, client.WithHTTPClient(hc), client.WithTokens(alice.AccessToken, alice.RefreshToken))...)
			fan := client.New(s.URL, client.WithHTTPClient(s.HTTP), client.WithTokens(bob.AccessToken, bob.RefreshToken))

			sub := startSubscription(t, c.SubscribeNotifications, "")
			sub.waitConnected(t)
			nw.cut()
			if _, err := fan.Users.Follow(t.Context(), connect.NewRequest(&flockv1.FollowRequest{UserId: alice.ID})); err != nil {
				t.Fatal(err)
			}
			nw.restoreAfterARefusal(t)
			if n := sub.next(t); n.GetType() != flockv1.NotificationType_NOTIFICATION_TYPE_FOLLOW || n.GetActor().GetId() != bob.ID {
				t.Fatalf("after reconnecting: %v, want bob's follow, made while the Client was away", n)
			}
			sub.noMore(t)
		})
	}
}

// fn's error ends the subscription and comes back as it is; the end of
// ctx ends it with ctx.Err().
func TestSubscribeActivity_EndsWithFnErrorOrContext(t *testing.T) {
	t.Parallel()
	s := tu.MustServer(t, "sqlite")
	a := s.MustAccount(t, "poster")
	c := client.New(s.URL, client.WithHTTPClient(s.H2C), client.WithGRPC(), client.WithTokens(a.AccessToken, a.RefreshToken))

	errStop := errors.New("stop")
	var got []flockv1.ActivityType
	err := c.SubscribeActivity(t.Context(), "", func(act *flockv1.Activity) error {
		got = append(got, act.GetType())
		return errStop
	}, client.OnConnect(func() {
		if _, err := c.Posts.CreatePost(t.Context(), connect.NewRequest(&flockv1.CreatePostRequest{Content: "logged"})); err != nil {
			t.Error(err)
		}
	}))
	if err != errStop {
		t.Fatalf("SubscribeActivity returned %v, want fn's error", err)
	}
	if !slices.Equal(got, []flockv1.ActivityType{flockv1.ActivityType_ACTIVITY_TYPE_POST_CREATED}) {
		t.Fatalf("events = %v", got)
	}

	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	err = c.SubscribeActivity(ctx, "", func(*flockv1.Activity) error { return nil })
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("SubscribeActivity returned %v, want the context's error", err)
	}
}

// A stream the server refuses for its token is reopened after a refresh,
// and then delivers.
func TestSubscribeActivity_RefreshesRefusedToken(t *testing.T) {
	t.Parallel()
	s := tu.MustServer(t, "sqlite")
	a := s.MustAccount(t, "stale")
	c := client.New(s.URL, client.WithHTTPClient(s.H2C), client.WithGRPC(), client.WithTokens("not-a-jwt", a.RefreshToken))
	var log tokenLog
	c.OnTokens(log.record)
	errStop := errors.New("stop")
	var once sync.Once
	err := c.SubscribeActivity(t.Context(), "", func(act *flockv1.Activity) error {
		if act.GetType() != flockv1.ActivityType_ACTIVITY_TYPE_POST_CREATED {
			t.Errorf("event %v", act)
		}
		return errStop
	}, client.OnConnect(func() {
		// Only a stream that listens counts: the refused one (its
		// headers came with its error) does not.
		if access, _ := c.Tokens(); access == "not-a-jwt" {
			t.Error("OnConnect called for the stream the server refused")
			return
		}
		once.Do(func() {
			if _, err := c.Posts.CreatePost(t.Context(), connect.NewRequest(&flockv1.CreatePostRequest{Content: "after refresh"})); err != nil {
				t.Error(err)
			}
		})
	}))
	if err != errStop {
		t.Fatalf("SubscribeActivity returned %v", err)
	}
	if got := log.get(); len(got) != 1 {
		t.Fatalf("%d refreshes, want 1", len(got))
	}
}

// When the session ends (here a logout elsewhere with the same tokens),
// the server closes the stream and the refresh fails: the helper returns
// unauthenticated instead of reconnecting forever.
func TestSubscribeNotifications_EndsWhenSessionEnds(t *testing.T) {
	t.Parallel()
	s := tu.MustServer(t, "sqlite")
	a := s.MustAccount(t, "ended")
	hc, _ := mustNetworkClient(t, false)
	c := client.New(s.URL, client.WithHTTPClient(hc), client.WithTokens(a.AccessToken, a.RefreshToken))
	sub := startSubscription(t, c.SubscribeNotifications, "")
	sub.waitConnected(t)
	other := client.New(s.URL, client.WithHTTPClient(s.HTTP), client.WithTokens(c.Tokens()))
	if err := other.Logout(t.Context()); err != nil {
		t.Fatal(err)
	}
	mustRPCCode(t, sub.end(t), connect.CodeUnauthenticated)
	if access, refresh := c.Tokens(); access != "" || refresh != "" {
		t.Errorf("Tokens() = %q, %q after the session ended", access, refresh)
	}
}
