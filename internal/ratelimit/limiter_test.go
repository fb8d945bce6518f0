package ratelimit_test

import (
	"context"
	"crypto/rand"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/flock-social/flock/internal/ratelimit"
	"github.com/flock-social/flock/internal/testutil"
)

// clock is a settable time source for the memory backend.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Unix(1_700_000_000, 0)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// backend is one Limiter under test and how to let time pass for it.
type backend struct {
	l ratelimit.Limiter
	// sleep advances the injected clock (memory) or really sleeps (Redis).
	sleep func(time.Duration)
	// realTime is true when the backend reads a clock the test cannot stop.
	realTime bool
	// prefix makes this test's keys unique, even on a shared Redis.
	prefix string
}

// forEachBackend runs fn against the memory backend and, when Redis is
// available, the Redis backend.
func forEachBackend(t *testing.T, fn func(t *testing.T, b backend)) {
	t.Helper()
	t.Run("memory", func(t *testing.T) {
		t.Parallel()
		c := newClock()
		l := ratelimit.NewMemory(c.Now)
		t.Cleanup(func() { _ = l.Close() })
		fn(t, backend{l: l, sleep: c.Add, prefix: MustPrefix(t)})
	})
	t.Run("redis", func(t *testing.T) {
		t.Parallel()
		fn(t, backend{l: MustRedis(t), sleep: time.Sleep, realTime: true, prefix: MustPrefix(t)})
	})
}

// MustPrefix returns a random key prefix unique to this test.
func MustPrefix(tb testing.TB) string {
	tb.Helper()
	return "test:" + rand.Text() + ":"
}

// MustRedis returns a Redis Limiter with its own client (one "instance"),
// skipping the test when Redis is unreachable (failing it when CI=true).
func MustRedis(tb testing.TB) ratelimit.Limiter {
	tb.Helper()
	opt, err := redis.ParseURL(testutil.RedisURL(tb))
	if err != nil {
		tb.Fatalf("parse redis url: %v", err)
	}
	client := redis.NewClient(opt)
	tb.Cleanup(func() { _ = client.Close() })
	return ratelimit.NewRedis(client)
}

// MustAllow calls l.Allow and fails the test on error.
func MustAllow(tb testing.TB, l ratelimit.Limiter, key string, lim ratelimit.Limit) ratelimit.Result {
	tb.Helper()
	res, err := l.Allow(context.Background(), key, lim)
	if err != nil {
		tb.Fatalf("Allow(%q, %+v): %v", key, lim, err)
	}
	return res
}

func TestLimiter(t *testing.T) {
	t.Parallel()
	hourly := func(n int) ratelimit.Limit { return ratelimit.Limit{Rate: n, Period: time.Hour, Burst: n} }

	t.Run("burst is allowed then denied with a retry time", func(t *testing.T) {
		forEachBackend(t, func(t *testing.T, b backend) {
			lim := ratelimit.Limit{Rate: 3, Period: time.Minute, Burst: 3}
			key := b.prefix + "burst"
			for want := 2; want >= 0; want-- {
				res := MustAllow(t, b.l, key, lim)
				if !res.Allowed || res.Remaining != want || res.RetryAfter != 0 || res.Limit != lim {
					t.Fatalf("request %d: got %+v, want allowed with %d remaining", 3-want, res, want)
				}
			}
			res := MustAllow(t, b.l, key, lim)
			if res.Allowed || res.Remaining != 0 {
				t.Fatalf("request past the burst: got %+v, want denied with 0 remaining", res)
			}
			if res.RetryAfter <= 0 || res.RetryAfter > 20*time.Second {
				t.Errorf("RetryAfter = %v, want in (0, 20s]: one request per 20s", res.RetryAfter)
			}
			if res.ResetAfter <= 40*time.Second || res.ResetAfter > time.Minute {
				t.Errorf("ResetAfter = %v, want in (40s, 1m]", res.ResetAfter)
			}
			if !b.realTime && res.RetryAfter != 20*time.Second {
				t.Errorf("RetryAfter = %v with a stopped clock, want exactly 20s", res.RetryAfter)
			}
		})
	})

	t.Run("budget refills as time passes", func(t *testing.T) {
		forEachBackend(t, func(t *testing.T, b backend) {
			lim := ratelimit.Limit{Rate: 5, Period: time.Second, Burst: 1}
			if b.realTime {
				// One request per 3 s: no stall between the first two
				// requests can refill the budget behind the test's back.
				lim = ratelimit.Limit{Rate: 1, Period: 3 * time.Second, Burst: 1}
			}
			key := b.prefix + "refill"
			MustAllow(t, b.l, key, lim)
			res := MustAllow(t, b.l, key, lim)
			if res.Allowed {
				t.Fatalf("second request at once: got %+v, want denied", res)
			}
			if !b.realTime {
				b.sleep(res.RetryAfter - time.Nanosecond)
				if res := MustAllow(t, b.l, key, lim); res.Allowed {
					t.Fatalf("1ns before RetryAfter: got %+v, want denied", res)
				}
				b.sleep(time.Nanosecond)
				if res := MustAllow(t, b.l, key, lim); !res.Allowed {
					t.Fatalf("at RetryAfter: got %+v, want allowed", res)
				}
				return
			}
			b.sleep(res.RetryAfter)
			deadline := time.Now().Add(2 * time.Second)
			for !MustAllow(t, b.l, key, lim).Allowed {
				if time.Now().After(deadline) {
					t.Fatal("still denied 2s after RetryAfter")
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
	})

	t.Run("keys have independent budgets", func(t *testing.T) {
		forEachBackend(t, func(t *testing.T, b backend) {
			MustAllow(t, b.l, b.prefix+"a", hourly(1))
			if res := MustAllow(t, b.l, b.prefix+"a", hourly(1)); res.Allowed {
				t.Fatalf("key a twice: got %+v, want denied", res)
			}
			if res := MustAllow(t, b.l, b.prefix+"b", hourly(1)); !res.Allowed {
				t.Fatalf("key b after a is exhausted: got %+v, want allowed", res)
			}
		})
	})

	t.Run("concurrent requests get exactly the burst", func(t *testing.T) {
		forEachBackend(t, func(t *testing.T, b backend) {
			const burst, callers = 10, 50
			var allowed atomic.Int32
			var wg sync.WaitGroup
			for range callers {
				wg.Go(func() {
					res, err := b.l.Allow(context.Background(), b.prefix+"concurrent", hourly(burst))
					if err != nil {
						t.Error(err)
						return
					}
					if res.Allowed {
						allowed.Add(1)
					}
				})
			}
			wg.Wait()
			if got := allowed.Load(); got != burst {
				t.Errorf("%d concurrent callers: %d allowed, want %d", callers, got, burst)
			}
		})
	})

	t.Run("invalid limit is an error", func(t *testing.T) {
		forEachBackend(t, func(t *testing.T, b backend) {
			for _, lim := range []ratelimit.Limit{
				{},
				{Rate: 1, Period: 0, Burst: 1},
				{Rate: 1, Period: time.Minute, Burst: 0},
				{Rate: -1, Period: time.Minute, Burst: 1},
			} {
				if res, err := b.l.Allow(context.Background(), b.prefix+"invalid", lim); err == nil {
					t.Errorf("Allow with %+v = %+v, want an error", lim, res)
				}
			}
		})
	})
}

func TestRedisInstancesShareBudget(t *testing.T) {
	t.Parallel()
	a, b := MustRedis(t), MustRedis(t)
	key := MustPrefix(t) + "shared"
	lim := ratelimit.Limit{Rate: 5, Period: time.Hour, Burst: 5}
	allowed := 0
	for i := range 10 {
		l := a
		if i%2 == 1 {
			l = b
		}
		if MustAllow(t, l, key, lim).Allowed {
			allowed++
		}
	}
	if allowed != lim.Burst {
		t.Errorf("10 requests over two instances: %d allowed, want %d", allowed, lim.Burst)
	}
}

func TestRedisErrorIsWrapped(t *testing.T) {
	t.Parallel()
	l := MustRedis(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := l.Allow(ctx, MustPrefix(t)+"cancelled", ratelimit.Limit{Rate: 1, Period: time.Second, Burst: 1})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Allow with a cancelled context: err = %v, want one wrapping context.Canceled", err)
	}
}

func TestOpen(t *testing.T) {
	t.Parallel()
	t.Run("empty url gives an in-process limiter", func(t *testing.T) {
		t.Parallel()
		l, err := ratelimit.Open("")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		MustAllow(t, l, "k", ratelimit.Limit{Rate: 1, Period: time.Second, Burst: 1})
	})
	t.Run("redis url gives a shared limiter", func(t *testing.T) {
		t.Parallel()
		url := testutil.RedisURL(t)
		l, err := ratelimit.Open(url)
		if err != nil {
			t.Fatal(err)
		}
		key := MustPrefix(t) + "open"
		lim := ratelimit.Limit{Rate: 1, Period: time.Hour, Burst: 1}
		MustAllow(t, l, key, lim)
		if res := MustAllow(t, MustRedis(t), key, lim); res.Allowed {
			t.Errorf("second request via another client: got %+v, want denied", res)
		}
		if err := l.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	t.Run("bad urls are refused", func(t *testing.T) {
		t.Parallel()
		for _, url := range []string{"http://localhost:6379", "redis://127.0.0.1:1/0", "redis://%zz"} {
			if l, err := ratelimit.Open(url); err == nil {
				l.Close()
				t.Errorf("Open(%q): want an error", url)
			}
		}
	})
}

func TestMemoryForgetsIdleKeys(t *testing.T) {
	t.Parallel()
	t.Run("refilled keys are dropped", func(t *testing.T) {
		t.Parallel()
		c := newClock()
		l := ratelimit.NewMemoryCap(c.Now, 1000)
		lim := ratelimit.Limit{Rate: 1, Period: time.Second, Burst: 1}
		for i := range 100 {
			MustAllow(t, l, string(rune('a'+i)), lim)
		}
		c.Add(2 * time.Minute)
		MustAllow(t, l, "late", lim)
		if got := ratelimit.Keys(l); got != 1 {
			t.Errorf("after every bucket refilled: %d keys held, want 1", got)
		}
	})
	t.Run("key count stays under the cap", func(t *testing.T) {
		t.Parallel()
		l := ratelimit.NewMemoryCap(newClock().Now, 100)
		lim := ratelimit.Limit{Rate: 1, Period: time.Hour, Burst: 1}
		for i := range 1000 {
			MustAllow(t, l, MustPrefix(t)+string(rune(i)), lim)
			if got := ratelimit.Keys(l); got > 100 {
				t.Fatalf("after %d keys: %d held, want at most 100", i+1, got)
			}
		}
	})
}
