package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/coder/websocket"
	"google.golang.org/protobuf/encoding/protojson"

	flockv1 "github.com/flock-social/flock/gen/go/flock/v1"
	"github.com/flock-social/flock/gen/go/flock/v1/flockv1connect"
	"github.com/flock-social/flock/internal/store"
	tu "github.com/flock-social/flock/internal/testutil"
	"github.com/flock-social/flock/server"
)

func (a api) notifications(tok string) *flockv1.ListNotificationsResponse {
	a.t.Helper()
	return must[flockv1.ListNotificationsResponse](a, flockv1connect.NotificationServiceListNotificationsProcedure, tok, &flockv1.ListNotificationsRequest{PageSize: 100})
}

func types[T interface{ GetType() E }, E fmt.Stringer](xs []T) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = strings.TrimPrefix(strings.TrimPrefix(x.GetType().String(), "NOTIFICATION_TYPE_"), "ACTIVITY_TYPE_")
	}
	return out
}

// Follows, likes and comments notify; never yourself; a like repeated after
// an unlike does not notify twice; unread counts and marking read work.
func TestNotifications_EachTypeListedAndMarkedRead(t *testing.T) {
	t.Parallel()
	forEachTransport(t, func(t *testing.T, a api) {
		alice, bob := a.s.MustAccount(t, name(a, "alice")), a.s.MustAccount(t, name(a, "bob"))
		p := a.post(alice.AccessToken, "notify me")
		if err := a.follow(bob.AccessToken, alice.ID); err != nil {
			t.Fatal(err)
		}
		for range 2 {
			must[flockv1.LikePostResponse](a, flockv1connect.PostServiceLikePostProcedure, bob.AccessToken, &flockv1.LikePostRequest{PostId: p.GetId()})
			must[flockv1.UnlikePostResponse](a, flockv1connect.PostServiceUnlikePostProcedure, bob.AccessToken, &flockv1.UnlikePostRequest{PostId: p.GetId()})
		}
		must[flockv1.CreateCommentResponse](a, flockv1connect.PostServiceCreateCommentProcedure, bob.AccessToken, &flockv1.CreateCommentRequest{PostId: p.GetId(), Content: "hi"})
		// Yourself: no notification.
		must[flockv1.LikePostResponse](a, flockv1connect.PostServiceLikePostProcedure, alice.AccessToken, &flockv1.LikePostRequest{PostId: p.GetId()})
		must[flockv1.CreateCommentResponse](a, flockv1connect.PostServiceCreateCommentProcedure, alice.AccessToken, &flockv1.CreateCommentRequest{PostId: p.GetId(), Content: "self"})

		res := a.notifications(alice.AccessToken)
		if got := types(res.GetNotifications()); !slices.Equal(got, []string{"COMMENT", "LIKE", "FOLLOW"}) || res.GetUnreadCount() != 3 {
			t.Fatalf("notifications = %v unread %d, want [COMMENT LIKE FOLLOW] 3", got, res.GetUnreadCount())
		}
		for _, n := range res.GetNotifications() {
			if n.GetActor().GetId() != bob.ID || n.GetActor().GetEmail() != "" || n.GetRead() || n.GetCreatedAt() == nil {
				t.Errorf("notification %v", n)
			}
		}
		if c := res.GetNotifications()[0]; c.GetPostId() != p.GetId() || c.GetCommentId() == "" {
			t.Errorf("comment notification lacks its post or comment: %v", c)
		}
		if len(a.notifications(bob.AccessToken).GetNotifications()) != 0 {
			t.Errorf("bob was notified of his own actions")
		}
		marked := must[flockv1.MarkNotificationsReadResponse](a, flockv1connect.NotificationServiceMarkNotificationsReadProcedure, alice.AccessToken,
			&flockv1.MarkNotificationsReadRequest{NotificationIds: []string{res.GetNotifications()[0].GetId()}})
		if marked.GetUnreadCount() != 2 {
			t.Errorf("unread after marking one = %d", marked.GetUnreadCount())
		}
		unread := must[flockv1.ListNotificationsResponse](a, flockv1connect.NotificationServiceListNotificationsProcedure, alice.AccessToken, &flockv1.ListNotificationsRequest{UnreadOnly: true})
		if len(unread.GetNotifications()) != 2 {
			t.Errorf("unreadOnly lists %d", len(unread.GetNotifications()))
		}
		marked = must[flockv1.MarkNotificationsReadResponse](a, flockv1connect.NotificationServiceMarkNotificationsReadProcedure, alice.AccessToken, &flockv1.MarkNotificationsReadRequest{All: true})
		if marked.GetUnreadCount() != 0 || a.notifications(alice.AccessToken).GetUnreadCount() != 0 {
			t.Errorf("unread after marking all = %d", marked.GetUnreadCount())
		}
		// Bob blocked later: his notifications disappear from alice's list (P4).
		must[flockv1.BlockResponse](a, flockv1connect.UserServiceBlockProcedure, alice.AccessToken, &flockv1.BlockRequest{UserId: bob.ID})
		if n := len(a.notifications(alice.AccessToken).GetNotifications()); n != 0 {
			t.Errorf("%d notifications from a blocked user still listed", n)
		}
	})
}

func TestActivity_EveryActionLogged(t *testing.T) {
	t.Parallel()
	forEachTransport(t, func(t *testing.T, a api) {
		me, other := a.s.MustAccount(t, name(a, "actor")), a.s.MustAccount(t, name(a, "target"))
		p := a.post(me.AccessToken, "logged")
		must[flockv1.UpdatePostResponse](a, flockv1connect.PostServiceUpdatePostProcedure, me.AccessToken, &flockv1.UpdatePostRequest{PostId: p.GetId(), Content: "edited"})
		must[flockv1.LikePostResponse](a, flockv1connect.PostServiceLikePostProcedure, me.AccessToken, &flockv1.LikePostRequest{PostId: p.GetId()})
		must[flockv1.UnlikePostResponse](a, flockv1connect.PostServiceUnlikePostProcedure, me.AccessToken, &flockv1.UnlikePostRequest{PostId: p.GetId()})
		c := must[flockv1.CreateCommentResponse](a, flockv1connect.PostServiceCreateCommentProcedure, me.AccessToken, &flockv1.CreateCommentRequest{PostId: p.GetId(), Content: "c"})
		must[flockv1.DeleteCommentResponse](a, flockv1connect.PostServiceDeleteCommentProcedure, me.AccessToken, &flockv1.DeleteCommentRequest{PostId: p.GetId(), CommentId: c.GetComment().GetId()})
		if err := a.follow(me.AccessToken, other.ID); err != nil {
			t.Fatal(err)
		}
		must[flockv1.UnfollowResponse](a, flockv1connect.UserServiceUnfollowProcedure, me.AccessToken, &flockv1.UnfollowRequest{UserId: other.ID})
		must[flockv1.BlockResponse](a, flockv1connect.UserServiceBlockProcedure, me.AccessToken, &flockv1.BlockRequest{UserId: other.ID})
		must[flockv1.UnblockResponse](a, flockv1connect.UserServiceUnblockProcedure, me.AccessToken, &flockv1.UnblockRequest{UserId: other.ID})
		must[flockv1.UpdateMeResponse](a, flockv1connect.UserServiceUpdateMeProcedure, me.AccessToken, &flockv1.UpdateMeRequest{Bio: new("logged too")})
		must[flockv1.DeletePostResponse](a, flockv1connect.PostServiceDeletePostProcedure, me.AccessToken, &flockv1.DeletePostRequest{PostId: p.GetId()})

		res := must[flockv1.ListActivityResponse](a, flockv1connect.ActivityServiceListActivityProcedure, me.AccessToken, &flockv1.ListActivityRequest{PageSize: 100})
		want := []string{"POST_DELETED", "PROFILE_UPDATED", "USER_UNBLOCKED", "USER_BLOCKED", "USER_UNFOLLOWED", "USER_FOLLOWED",
			"COMMENT_DELETED", "COMMENT_CREATED", "POST_UNLIKED", "POST_LIKED", "POST_UPDATED", "POST_CREATED"}
		if got := types(res.GetActivities()); !slices.Equal(got, want) {
			t.Fatalf("activity = %v\nwant       %v", got, want)
		}
		if res.GetActivities()[0].GetPostId() != p.GetId() || res.GetActivities()[2].GetTargetUserId() != other.ID {
			t.Errorf("activity lacks its objects: %v", res.GetActivities()[:3])
		}
		if n := len(must[flockv1.ListActivityResponse](a, flockv1connect.ActivityServiceListActivityProcedure, other.AccessToken, &flockv1.ListActivityRequest{}).GetActivities()); n != 0 {
			t.Errorf("the target's log shows %d of the actor's actions", n)
		}
	})
}

// subscription reads a NotificationService/Subscribe stream in the background.
// subscribe returns once the stream listens.
type subscription struct {
	got    chan *flockv1.Notification
	done   chan error
	cancel context.CancelFunc
}

func subscribe(t *testing.T, s *tu.Server, tr tu.Transport, token, since string) *subscription {
	t.Helper()
	hc, opts := s.HTTP, []connect.ClientOption{connect.WithProtoJSON()}
	switch tr {
	case tu.GRPC:
		hc, opts = s.H2C, []connect.ClientOption{connect.WithGRPC()}
	case tu.GRPCWeb:
		opts = []connect.ClientOption{connect.WithGRPCWeb()}
	}
	client := flockv1connect.NewNotificationServiceClient(hc, s.URL, opts...)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	req := connect.NewRequest(&flockv1.NotificationServiceSubscribeRequest{SinceId: since})
	req.Header().Set("Authorization", "Bearer "+token)
	stream, err := client.Subscribe(ctx, req)
	if err != nil {
		cancel()
		t.Fatalf("subscribe: %v", err)
	}
	// The headers come once the stream listens (or with its refusal): from
	// then on nothing is missed, so whatever the test does next reaches it.
	stream.ResponseHeader()
	sub := &subscription{got: make(chan *flockv1.Notification, 1000), done: make(chan error, 1), cancel: cancel}
	go func() {
		defer close(sub.got)
		for stream.Receive() {
			sub.got <- stream.Msg()
		}
		sub.done <- stream.Err()
		stream.Close()
	}()
	t.Cleanup(cancel)
	return sub
}

func (sub *subscription) next(t *testing.T) *flockv1.Notification {
	t.Helper()
	select {
	case n, ok := <-sub.got:
		if !ok {
			t.Fatalf("stream ended: %v", <-sub.done)
		}
		return n
	case <-time.After(10 * time.Second):
		t.Fatal("no event within 10s")
	}
	return nil
}

func (sub *subscription) end(t *testing.T) error {
	t.Helper()
	for {
		select {
		case _, ok := <-sub.got:
			if !ok {
				return <-sub.done
			}
		case <-time.After(10 * time.Second):
			t.Fatal("stream did not end within 10s")
		}
	}
}

// Subscribe delivers each event live, and a reconnect with sinceId gets
// every missed event first, in order, then the live ones; on Connect, gRPC
// and gRPC-Web.
func TestSubscribe_LiveThenResumeInOrder(t *testing.T) {
	t.Parallel()
	forEachServer(t, func(t *testing.T, s *tu.Server) {
		for _, tr := range []tu.Transport{tu.Connect, tu.GRPC, tu.GRPCWeb} {
			t.Run(string(tr), func(t *testing.T) {
				t.Parallel()
				a := api{t: t, s: s, tr: tu.Connect}
				alice, bob := s.MustAccount(t, name(a, "star")+string(tr)), s.MustAccount(t, name(a, "fan")+string(tr))
				sub := subscribe(t, s, tr, alice.AccessToken, "")
				if err := a.follow(bob.AccessToken, alice.ID); err != nil {
					t.Fatal(err)
				}
				first := sub.next(t)
				if first.GetType() != flockv1.NotificationType_NOTIFICATION_TYPE_FOLLOW || first.GetActor().GetId() != bob.ID || first.GetId() == "" {
					t.Fatalf("first event = %v", first)
				}
				sub.cancel()
				sub.end(t)

				// Missed while away: a like and a comment.
				p := a.post(alice.AccessToken, "while away")
				must[flockv1.LikePostResponse](a, flockv1connect.PostServiceLikePostProcedure, bob.AccessToken, &flockv1.LikePostRequest{PostId: p.GetId()})
				must[flockv1.CreateCommentResponse](a, flockv1connect.PostServiceCreateCommentProcedure, bob.AccessToken, &flockv1.CreateCommentRequest{PostId: p.GetId(), Content: "missed"})

				again := subscribe(t, s, tr, alice.AccessToken, first.GetId())
				if got := []string{again.next(t).GetType().String(), again.next(t).GetType().String()}; !slices.Equal(got, []string{"NOTIFICATION_TYPE_LIKE", "NOTIFICATION_TYPE_COMMENT"}) {
					t.Fatalf("resumed with %v", got)
				}
				must[flockv1.CreateCommentResponse](a, flockv1connect.PostServiceCreateCommentProcedure, bob.AccessToken, &flockv1.CreateCommentRequest{PostId: p.GetId(), Content: "live"})
				if live := again.next(t); live.GetType() != flockv1.NotificationType_NOTIFICATION_TYPE_COMMENT {
					t.Fatalf("live event = %v", live)
				}
			})
		}
	})
}

// P5: logging out closes the session's open streams at once.
func TestSubscribe_LogoutEndsStream_P5(t *testing.T) {
	t.Parallel()
	s := tu.MustServer(t, "sqlite")
	alice := s.MustAccount(t, "leaver")
	sub := subscribe(t, s, tu.Connect, alice.AccessToken, "")
	tu.MustCall[flockv1.LogoutResponse](t, s, tu.Connect, flockv1connect.UserServiceLogoutProcedure, "", &flockv1.LogoutRequest{RefreshToken: alice.RefreshToken})
	if err := sub.end(t); connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Fatalf("stream ended with %v, want unauthenticated", err)
	}
	_, err := tu.Call[flockv1.ListNotificationsResponse](t.Context(), s, tu.Connect, flockv1connect.NotificationServiceListNotificationsProcedure, alice.AccessToken, &flockv1.ListNotificationsRequest{})
	wantCode(t, err, connect.CodeUnauthenticated)
}

// wsDial opens a WebSocket to path with the token as a subprotocol.
func wsDial(t *testing.T, s *tu.Server, path, token string) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	opts := &websocket.DialOptions{HTTPClient: s.HTTP}
	if token != "" {
		opts.Subprotocols = []string{"flock.v1", "bearer." + token}
	}
	return websocket.Dial(ctx, strings.Replace(s.URL, "http", "ws", 1)+path, opts)
}

func wsRead(t *testing.T, c *websocket.Conn, into any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	typ, b, err := c.Read(ctx)
	if err != nil || typ != websocket.MessageText {
		t.Fatalf("read: %v %v", typ, err)
	}
	if err := json.Unmarshal(b, into); err != nil {
		t.Fatalf("message %q: %v", b, err)
	}
}

// The WebSocket paths: bearer subprotocol or ?access_token=, each message the
// JSON of the listed message, ?since_id= resumes, a plain GET lists.
func TestWebSocket_StreamsAndResumes(t *testing.T) {
	t.Parallel()
	forEachServer(t, func(t *testing.T, s *tu.Server) {
		a := api{t: t, s: s, tr: tu.Connect}
		alice, bob := s.MustAccount(t, "wsalice"), s.MustAccount(t, "wsbob")

		if _, res, err := wsDial(t, s, "/api/notifications/", ""); err == nil || res == nil || res.StatusCode != http.StatusUnauthorized {
			t.Fatalf("no token: %v %v", res, err)
		}
		conn, res, err := wsDial(t, s, "/api/notifications/", alice.AccessToken)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		defer conn.CloseNow()
		if conn.Subprotocol() != "flock.v1" {
			t.Errorf("subprotocol = %q (%v)", conn.Subprotocol(), res.Header)
		}
		acts, _, err := wsDial(t, s, "/api/activity-log?access_token="+bob.AccessToken, "")
		if err != nil {
			t.Fatalf("dial with ?access_token: %v", err)
		}
		defer acts.CloseNow()

		if err := a.follow(bob.AccessToken, alice.ID); err != nil {
			t.Fatal(err)
		}
		var n map[string]any
		wsRead(t, conn, &n)
		if n["type"] != "NOTIFICATION_TYPE_FOLLOW" || n["id"] == "" || n["createdAt"] == nil || n["actor"].(map[string]any)["id"] != bob.ID {
			t.Fatalf("notification message = %v", n)
		}
		var act map[string]any
		wsRead(t, acts, &act)
		if act["type"] != "ACTIVITY_TYPE_USER_FOLLOWED" || act["targetUserId"] != alice.ID {
			t.Fatalf("activity message = %v", act)
		}
		conn.Close(websocket.StatusNormalClosure, "")

		p := a.post(alice.AccessToken, "ws")
		must[flockv1.LikePostResponse](a, flockv1connect.PostServiceLikePostProcedure, bob.AccessToken, &flockv1.LikePostRequest{PostId: p.GetId()})
		again, _, err := wsDial(t, s, "/api/notifications/?since_id="+n["id"].(string), alice.AccessToken)
		if err != nil {
			t.Fatal(err)
		}
		defer again.CloseNow()
		var missed flockv1.Notification
		var raw json.RawMessage
		wsRead(t, again, &raw)
		if err := protojson.Unmarshal(raw, &missed); err != nil || missed.GetType() != flockv1.NotificationType_NOTIFICATION_TYPE_LIKE {
			t.Fatalf("resumed with %s (%v)", raw, err)
		}

		// A plain GET on the same path lists.
		res2, list := rawJSON(t, s, http.MethodGet, "/api/notifications/", alice.AccessToken, "")
		if res2.StatusCode != http.StatusOK || list["unreadCount"] != float64(2) {
			t.Fatalf("GET /api/notifications/ = %d %v", res2.StatusCode, list)
		}
		res3, _ := rawJSON(t, s, http.MethodGet, "/api/activity-log/", bob.AccessToken, "")
		if res3.StatusCode != http.StatusOK {
			t.Fatalf("GET /api/activity-log/ = %d", res3.StatusCode)
		}

		// Logout closes the WebSocket with 1008 (P5).
		tu.MustCall[flockv1.LogoutResponse](t, s, tu.Connect, flockv1connect.UserServiceLogoutProcedure, "", &flockv1.LogoutRequest{RefreshToken: alice.RefreshToken})
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		_, _, err = again.Read(ctx)
		if websocket.CloseStatus(err) != websocket.StatusPolicyViolation {
			t.Fatalf("after logout the socket ended with %v, want close 1008", err)
		}
	})
}

// P21: an action on one instance reaches a stream held by another, through
// Redis, with both on one Postgres.
func TestStreams_CrossInstance_P21(t *testing.T) {
	t.Parallel()
	redis := tu.RedisURL(t)
	if !slices.Contains(tu.Engines(t), store.Postgres) {
		t.Skip("needs Postgres")
	}
	one := tu.MustServer(t, store.Postgres, func(c *server.Config) { c.RedisURL = redis })
	two := tu.MustServer(t, store.Postgres, func(c *server.Config) {
		c.RedisURL = redis
		c.DatabaseURL = one.Config.DatabaseURL
	})
	alice := one.MustAccount(t, "overthere")
	bob := one.MustAccount(t, "overhere")
	sub := subscribe(t, one, tu.GRPC, alice.AccessToken, "")
	// Bob acts on instance two; his token works there (shared secret and database).
	if _, err := tu.Call[flockv1.FollowResponse](t.Context(), two, tu.Connect, flockv1connect.UserServiceFollowProcedure, bob.AccessToken, &flockv1.FollowRequest{UserId: alice.ID}); err != nil {
		t.Fatal(err)
	}
	if n := sub.next(t); n.GetType() != flockv1.NotificationType_NOTIFICATION_TYPE_FOLLOW {
		t.Fatalf("got %v", n)
	}
	// Logging out on instance two ends the stream on instance one.
	tu.MustCall[flockv1.LogoutResponse](t, two, tu.Connect, flockv1connect.UserServiceLogoutProcedure, "", &flockv1.LogoutRequest{RefreshToken: alice.RefreshToken})
	if err := sub.end(t); connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Fatalf("stream on instance one ended with %v", err)
	}
}

// P20: a client that stops reading never delays the writer or other
// clients: every action completes, the healthy stream gets every event,
// and the stalled one is cut off.
func TestStreams_StalledClientDoesNotDelayOthers_P20(t *testing.T) {
	t.Parallel()
	s := tu.MustServer(t, "sqlite")
	a := api{t: t, s: s, tr: tu.Connect}
	alice := s.MustAccount(t, "popular")
	stalled, _, err := wsDial(t, s, "/api/notifications/", alice.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	defer stalled.CloseNow() // never read
	healthy := subscribe(t, s, tu.GRPC, alice.AccessToken, "")
	p := a.post(alice.AccessToken, "comment storm")
	const n = 150
	fan := s.MustAccount(t, "storm")
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			content := fmt.Sprintf("%03d %s", i, strings.Repeat("x", 1500))
			if _, err := tu.Call[flockv1.CreateCommentResponse](t.Context(), s, tu.Connect, flockv1connect.PostServiceCreateCommentProcedure, fan.AccessToken,
				&flockv1.CreateCommentRequest{PostId: p.GetId(), Content: content}); err != nil {
				t.Errorf("comment: %v", err)
			}
		}()
	}
	wg.Wait()
	for range n {
		if ev := healthy.next(t); ev.GetType() != flockv1.NotificationType_NOTIFICATION_TYPE_COMMENT {
			t.Fatalf("healthy stream got %v", ev)
		}
	}
}
