package pubsub_test

import (
	"context"
	"crypto/rand"
	"net/url"
	"os"
	"regexp"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/flock-social/flock/internal/pubsub"
	"github.com/flock-social/flock/internal/testutil/faultproxy"
)

func TestRedis(t *testing.T) {
	verifyNoLeaks(t)
	url := MustRedisURL(t)
	testBroker(t, func(tb testing.TB, opts ...pubsub.Option) pubsub.Broker {
		return MustOpen(tb, url, opts...)
	})
}

func TestRedisInstancesShareChannels(t *testing.T) {
	verifyNoLeaks(t)
	url := MustRedisURL(t)
	one, two := MustOpen(t, url), MustOpen(t, url)
	ch := channel(t)
	onOne, onTwo := MustSubscribe(t, one, ch), MustSubscribe(t, two, ch)
	MustPublish(t, one, ch, "from one")
	expect(t, onTwo, ch, "from one")
	expect(t, onOne, ch, "from one")
}

func TestRedisSurvivesLostConnection(t *testing.T) {
	verifyNoLeaks(t)
	u, err := url.Parse(MustRedisURL(t))
	if err != nil {
		t.Fatal(err)
	}
	// Name the broker's connections so that only they are killed.
	name := "flock-pubsub-test-" + rand.Text()
	q := u.Query()
	q.Set("client_name", name)
	u.RawQuery = q.Encode()

	b, ch := MustOpen(t, u.String()), channel(t)
	s := MustSubscribe(t, b, ch)
	if n := killClients(t, u.String(), name); n == 0 {
		t.Fatal("no connection named", name)
	}

	// Messages published before go-redis has resubscribed are lost (by
	// design), so publish until one gets through.
	deadline := time.Now().Add(wait)
	for got := false; !got; {
		if time.Now().After(deadline) {
			t.Fatalf("nothing received within %v after the connection was killed", wait)
		}
		_ = b.Publish(context.Background(), ch, []byte("after"))
		select {
		case m, ok := <-s.C():
			if !ok {
				t.Fatalf("subscription ended: %v", s.Err())
			}
			got = string(m.Payload) == "after"
		case <-time.After(100 * time.Millisecond):
		}
	}

	// New subscriptions work on the new connection too.
	ch2 := channel(t)
	s2 := MustSubscribe(t, b, ch2)
	MustPublish(t, b, ch2, "fresh")
	expect(t, s2, ch2, "fresh")
}

// MustRedisURL returns FLOCK_TEST_REDIS_URL (default redis://127.0.0.1:6379/0)
// and skips the test if Redis does not answer, or fails it when CI=true.
func MustRedisURL(tb testing.TB) string {
	tb.Helper()
	u := os.Getenv("FLOCK_TEST_REDIS_URL")
	if u == "" {
		u = "redis://127.0.0.1:6379/0"
	}
	opt, err := redis.ParseURL(u)
	if err != nil {
		tb.Fatal(err)
	}
	c := redis.NewClient(opt)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		if os.Getenv("CI") == "true" {
			tb.Fatalf("redis at %s: %v", opt.Addr, err)
		}
		tb.Skipf("redis at %s unreachable (set FLOCK_TEST_REDIS_URL): %v", opt.Addr, err)
	}
	return u
}

// killClients kills every connection to Redis named name and returns how many.
func killClients(tb testing.TB, u, name string) int {
	tb.Helper()
	opt, err := redis.ParseURL(u)
	if err != nil {
		tb.Fatal(err)
	}
	opt.ClientName = "" // this admin client must survive
	c := redis.NewClient(opt)
	defer c.Close()
	ctx := context.Background()
	list, err := c.ClientList(ctx).Result()
	if err != nil {
		tb.Fatal(err)
	}
	ids := regexp.MustCompile(`(?m)^id=(\d+) .* name=`+regexp.QuoteMeta(name)+` `).FindAllStringSubmatch(list, -1)
	for _, id := range ids {
		if err := c.Do(ctx, "CLIENT", "KILL", "ID", id[1]).Err(); err != nil {
			tb.Fatal(err)
		}
	}
	return len(ids)
}

// While Redis is away, a message published on this instance still reaches
// this instance's subscribers (a logout closes the streams open here at
// once; only the other instances wait for Redis or their database poll),
// and Publish still reports the failure.
func TestRedisPublishReachesThisInstanceWhileRedisIsAway(t *testing.T) {
	u, err := url.Parse(MustRedisURL(t))
	if err != nil {
		t.Fatal(err)
	}
	p := faultproxy.New(t, u.Host)
	b, ch := MustOpen(t, faultproxy.Via(t, u.String(), p)), channel(t)
	s := MustSubscribe(t, b, ch)
	MustPublish(t, b, ch, "through Redis")
	expect(t, s, ch, "through Redis")

	p.Stop() // Redis unreachable from here on
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := b.Publish(ctx, ch, []byte("while away")); err == nil {
		t.Fatal("Publish succeeded with Redis unreachable")
	}
	expect(t, s, ch, "while away")
}
