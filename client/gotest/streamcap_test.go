package gotest

import (
	"testing"
	"time"

	"connectrpc.com/connect"

	client "github.com/flock-social/flock/client/go"
	flockv1 "github.com/flock-social/flock/gen/go/flock/v1"
	tu "github.com/flock-social/flock/internal/testutil"
	"github.com/flock-social/flock/server"
)

// waitMetric waits up to 20s for cond to hold of a sample of /metrics.
func waitMetric(t *testing.T, s *tu.Server, sample string, what string, cond func(float64) bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		v := s.Metric(t, sample)
		if cond(v) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s = %v after 20s", what, sample, v)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// P24: a stream refused because the account holds too many is neither an
// error that ends the subscription nor retried at once: it backs off and
// gets in once another of the account's streams closes.
func TestSubscribe_PastStreamCapBacksOffThenGetsIn_P24(t *testing.T) {
	t.Parallel()
	s := tu.MustServer(t, "sqlite", func(c *server.Config) { c.MaxStreamsPerUser = 1 })
	a := s.MustAccount(t, "capclient")
	c := client.New(s.URL, client.WithHTTPClient(s.HTTP), client.WithTokens(a.AccessToken, a.RefreshToken))

	holder := startSubscription(t, c.SubscribeNotifications, "")
	waitMetric(t, s, "flock_streams_open", "the first stream", func(v float64) bool { return v == 1 })

	// Resuming from a known event, so that what happens while it waits
	// for a slot is delivered once it gets in.
	first, err := c.Posts.CreatePost(t.Context(), connect.NewRequest(&flockv1.CreatePostRequest{Content: "before"}))
	if err != nil {
		t.Fatal(err)
	}
	acts, err := c.Activity.ListActivity(t.Context(), connect.NewRequest(&flockv1.ListActivityRequest{PageSize: 1}))
	if err != nil || len(acts.Msg.GetActivities()) != 1 || acts.Msg.GetActivities()[0].GetPostId() != first.Msg.GetPost().GetId() {
		t.Fatalf("ListActivity = %v, %v", acts, err)
	}
	refused := startSubscription(t, c.SubscribeActivity, acts.Msg.GetActivities()[0].GetId())
	waitMetric(t, s, "flock_streams_refused_total", "two refusals", func(v float64) bool { return v >= 2 })
	start := time.Now()
	waitMetric(t, s, "flock_streams_refused_total", "a third refusal", func(v float64) bool { return v >= 3 })
	if d := time.Since(start); d < time.Second {
		t.Errorf("retried %s after a refusal for too many streams; want a backoff of seconds", d)
	}
	select {
	case err := <-refused.done:
		t.Fatalf("the subscription ended with %v; want it to keep retrying", err)
	default:
	}

	holder.cancel()
	post, err := c.Posts.CreatePost(t.Context(), connect.NewRequest(&flockv1.CreatePostRequest{Content: "got in"}))
	if err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-refused.events:
		if got.GetType() != flockv1.ActivityType_ACTIVITY_TYPE_POST_CREATED || got.GetPostId() != post.Msg.GetPost().GetId() {
			t.Fatalf("got %v, want the post created while it waited", got)
		}
	case err := <-refused.done:
		t.Fatalf("the subscription ended with %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("the subscription did not get in within 30s of a slot freeing")
	}
}
