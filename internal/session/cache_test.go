package session_test

import (
	"context"
	"io"
	"log/slog"
	neturl "net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/flock-social/flock/internal/pubsub"
	"github.com/flock-social/flock/internal/session"
	"github.com/flock-social/flock/internal/testutil/faultproxy"
)

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func mustBroker(tb testing.TB, url string) pubsub.Broker {
	tb.Helper()
	b, err := pubsub.Open(url)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { b.Close() })
	return b
}

func mustCache(tb testing.TB, b pubsub.Broker, now func() time.Time, cfg session.Config) *session.Cache {
	tb.Helper()
	c, err := session.New(context.Background(), b, now, cfg, quiet)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(c.Close)
	return c
}

func live(user string, clk *clock) session.Live {
	return session.Live{UserID: user, Role: "member", ExpiresAt: clk.Now().Add(time.Hour)}
}

func TestCache_EntryEndsAtItsTTLOrItsSessionsEnd(t *testing.T) {
	t.Parallel()
	clk := &clock{t: time.Now()}
	c := mustCache(t, mustBroker(t, ""), clk.Now, session.Config{TTL: 30 * time.Second})
	c.Put("s1", live("u1", clk), c.Generation())
	c.Put("s2", session.Live{UserID: "u2", ExpiresAt: clk.Now().Add(10 * time.Second)}, c.Generation())
	if _, ok := c.Get("s1"); !ok {
		t.Fatal("a fresh entry is not believed")
	}
	clk.Advance(10 * time.Second)
	if _, ok := c.Get("s2"); ok {
		t.Error("an entry is believed past its session's end")
	}
	clk.Advance(20 * time.Second)
	if _, ok := c.Get("s1"); ok {
		t.Error("an entry is believed past the TTL")
	}
}

func TestCache_ReadBeforeAnInvalidationIsNotKept(t *testing.T) {
	t.Parallel()
	clk := &clock{t: time.Now()}
	c := mustCache(t, mustBroker(t, ""), clk.Now, session.Config{})
	gen := c.Generation() // a request starts reading s1 from the database...
	c.EndSession(t.Context(), "s1")
	c.Put("s1", live("u1", clk), gen) // ...and answers after the logout
	if _, ok := c.Get("s1"); ok {
		t.Fatal("a read that raced a revocation put the revoked session back")
	}
}

func TestCache_UserChangeDropsEverySessionOfThatUserOnly(t *testing.T) {
	t.Parallel()
	clk := &clock{t: time.Now()}
	c := mustCache(t, mustBroker(t, ""), clk.Now, session.Config{})
	for _, s := range []struct{ id, user string }{{"a1", "alice"}, {"a2", "alice"}, {"b1", "bob"}} {
		c.Put(s.id, live(s.user, clk), c.Generation())
	}
	c.UserChanged(t.Context(), "alice")
	for id, want := range map[string]bool{"a1": false, "a2": false, "b1": true} {
		if _, ok := c.Get(id); ok != want {
			t.Errorf("Get(%s) = %v after alice changed, want %v", id, ok, want)
		}
	}
}

func TestCache_HoldsAtMostSizeDroppingTheLeastRecentlyUsed(t *testing.T) {
	t.Parallel()
	clk := &clock{t: time.Now()}
	c := mustCache(t, mustBroker(t, ""), clk.Now, session.Config{Size: 2})
	c.Put("s1", live("u", clk), c.Generation())
	c.Put("s2", live("u", clk), c.Generation())
	c.Get("s1") // s2 is now the least recently used
	c.Put("s3", live("u", clk), c.Generation())
	if n := c.Stats().Entries; n != 2 {
		t.Fatalf("%d entries, want 2", n)
	}
	if _, ok := c.Get("s2"); ok {
		t.Error("the least recently used entry stayed")
	}
	if _, ok := c.Get("s1"); !ok {
		t.Error("a recently used entry went")
	}
}

func TestCache_OffWithANegativeTTL(t *testing.T) {
	t.Parallel()
	clk := &clock{t: time.Now()}
	c := mustCache(t, mustBroker(t, ""), clk.Now, session.Config{TTL: -1})
	c.Put("s1", live("u1", clk), c.Generation())
	if _, ok := c.Get("s1"); ok {
		t.Fatal("the cache holds entries while turned off")
	}
}

// P5 across instances: an instance applies an invalidation as its broker
// delivers it, with no wait for the TTL. (Subscribing on the second broker
// is a barrier: Redis answers it after everything published before.)
func TestCache_InvalidationReachesEveryInstanceThroughRedis_P5(t *testing.T) {
	t.Parallel()
	url := mustRedisURL(t)
	clk := &clock{t: time.Now()}
	brokers := []pubsub.Broker{mustBroker(t, url), mustBroker(t, url)}
	one := mustCache(t, brokers[0], clk.Now, session.Config{TTL: time.Hour})
	two := mustCache(t, brokers[1], clk.Now, session.Config{TTL: time.Hour})
	for _, c := range []*session.Cache{one, two} {
		c.Put("s1", live("u1", clk), c.Generation())
		c.Put("s2", live("u2", clk), c.Generation())
	}
	one.EndSession(t.Context(), "s1")
	two.UserChanged(t.Context(), "u2")
	for i, b := range brokers {
		sub, err := b.Subscribe(t.Context(), "barrier-"+t.Name())
		if err != nil {
			t.Fatal(err)
		}
		sub.Close()
		for _, id := range []string{"s1", "s2"} {
			if _, ok := []*session.Cache{one, two}[i].Get(id); ok {
				t.Errorf("instance %d still believes %s", i+1, id)
			}
		}
	}
}

// When the Redis connection is lost the cache is emptied and bypassed, so
// a revocation missed meanwhile is not believed away; once the connection
// is back it is used again. The broker reaches Redis through a proxy the
// test cuts and restores, so it stays down for as long as the test needs
// (a killed connection is redialed within ~50 ms, too short to observe).
func TestCache_BypassedWhileTheBrokerIsDown(t *testing.T) {
	t.Parallel()
	url := mustRedisURL(t)
	clk := &clock{t: time.Now()}
	u, err := neturl.Parse(url)
	if err != nil {
		t.Fatal(err)
	}
	p := faultproxy.New(t, u.Host)
	c := mustCache(t, mustBroker(t, faultproxy.Via(t, url, p)), clk.Now, session.Config{TTL: time.Hour})
	c.Put("s1", live("u1", clk), c.Generation())
	if _, ok := c.Get("s1"); !ok {
		t.Fatal("a fresh entry is not believed while the broker is up")
	}
	p.Stop() // Redis unreachable for this broker until Start
	waitFor(t, func() bool { return c.Stats().Bypassed })
	if _, ok := c.Get("s1"); ok {
		t.Fatal("an entry is believed while the broker is down")
	}
	c.Put("s1", live("u1", clk), c.Generation())
	if _, ok := c.Get("s1"); ok {
		t.Fatal("an entry put while the broker is down is believed")
	}
	if !c.Stats().Bypassed {
		t.Fatal("the broker came back while the proxy was cut")
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return !c.Stats().Bypassed })
	if _, ok := c.Get("s1"); ok {
		t.Fatal("an entry put while the broker was down is believed")
	}
	c.Put("s1", live("u1", clk), c.Generation())
	if _, ok := c.Get("s1"); !ok {
		t.Fatal("the cache is not used again after the broker came back")
	}
}

// waitFor waits (up to 10 s) until cond holds.
func waitFor(tb testing.TB, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatal("condition not reached within 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// mustRedisURL returns FLOCK_TEST_REDIS_URL (default redis://127.0.0.1:6379/0)
// and skips the test if Redis does not answer, or fails it when CI=true.
// (testutil has the same, but importing it would build the whole server.)
func mustRedisURL(tb testing.TB) string {
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
