package pubsub_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/flock-social/flock/internal/pubsub"
)

// wait bounds every blocking step so a broken broker fails instead of hanging.
const wait = 5 * time.Second

// openFunc opens a broker that is closed when tb ends.
type openFunc func(tb testing.TB, opts ...pubsub.Option) pubsub.Broker

func TestInmem(t *testing.T) {
	verifyNoLeaks(t)
	testBroker(t, func(tb testing.TB, opts ...pubsub.Option) pubsub.Broker {
		return MustOpen(tb, "", opts...)
	})
}

func TestOpen(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		url  string
		opts []pubsub.Option
	}{
		{"unknown scheme", "nats://127.0.0.1:4222", nil},
		{"zero buffer", "", []pubsub.Option{pubsub.BufferSize(0)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if b, err := pubsub.Open(tc.url, tc.opts...); err == nil {
				b.Close()
				t.Fatal("Open succeeded, want error")
			}
		})
	}
}

// testBroker is the contract every Broker implementation must meet.
func testBroker(t *testing.T, open openFunc) {
	t.Run("every subscriber receives every message", func(t *testing.T) {
		t.Parallel()
		b, ch := open(t), channel(t)
		subs := []pubsub.Subscription{MustSubscribe(t, b, ch), MustSubscribe(t, b, ch), MustSubscribe(t, b, ch)}
		MustPublish(t, b, ch, "a", "b")
		for _, s := range subs {
			expect(t, s, ch, "a", "b")
		}
	})

	t.Run("messages arrive in publish order", func(t *testing.T) {
		t.Parallel()
		b, ch := open(t), channel(t)
		s := MustSubscribe(t, b, ch)
		want := make([]string, 50) // fits the default buffer
		for i := range want {
			want[i] = strconv.Itoa(i)
		}
		MustPublish(t, b, ch, want...)
		expect(t, s, ch, want...)
	})

	t.Run("a watcher sees every message in order, before a later subscriber does, until stopped", func(t *testing.T) {
		t.Parallel()
		b, ch := open(t), channel(t)
		var (
			mu  sync.Mutex
			got []string
		)
		stop, err := b.Watch(context.Background(), ch, pubsub.Watcher{Message: func(m pubsub.Message) {
			mu.Lock()
			got = append(got, string(m.Payload))
			mu.Unlock()
		}})
		if err != nil {
			t.Fatal(err)
		}
		s := MustSubscribe(t, b, ch)
		MustPublish(t, b, ch, "a", "b", "c")
		expect(t, s, ch, "a", "b", "c")
		stop()
		stop() // idempotent
		MustPublish(t, b, ch, "after stop")
		expect(t, s, ch, "after stop")
		mu.Lock()
		defer mu.Unlock()
		// Watchers run before the delivering goroutine moves on, and the
		// subscription received "c" from that goroutine: all three are in.
		if strings.Join(got, ",") != "a,b,c" {
			t.Fatalf("watcher saw %q, want a,b,c and nothing after stop", got)
		}
	})

	t.Run("channels are isolated", func(t *testing.T) {
		t.Parallel()
		b, ch1, ch2 := open(t), channel(t), channel(t)
		s1, s2 := MustSubscribe(t, b, ch1), MustSubscribe(t, b, ch2)
		MustPublish(t, b, ch2, "for 2")
		MustPublish(t, b, ch1, "for 1")
		expect(t, s1, ch1, "for 1")
		expect(t, s2, ch2, "for 2")
	})

	t.Run("closing a subscription stops delivery to it only", func(t *testing.T) {
		t.Parallel()
		b, ch := open(t), channel(t)
		gone, stays := MustSubscribe(t, b, ch), MustSubscribe(t, b, ch)
		gone.Close()
		if got := drain(t, gone); len(got) != 0 {
			t.Fatalf("closed subscription received %q", got)
		}
		if err := gone.Err(); err != nil {
			t.Fatalf("Err after Close = %v, want nil", err)
		}
		MustPublish(t, b, ch, "x")
		expect(t, stays, ch, "x")
	})

	t.Run("subscribing again after the last subscriber left", func(t *testing.T) {
		t.Parallel()
		b, ch := open(t), channel(t)
		first := MustSubscribe(t, b, ch)
		first.Close()
		second := MustSubscribe(t, b, ch)
		MustPublish(t, b, ch, "again")
		expect(t, second, ch, "again")
	})

	t.Run("canceling the context ends the subscription", func(t *testing.T) {
		t.Parallel()
		b, ch := open(t), channel(t)
		ctx, cancel := context.WithCancel(context.Background())
		s, err := b.Subscribe(ctx, ch)
		if err != nil {
			t.Fatal(err)
		}
		cancel()
		drain(t, s)
		if err := s.Err(); !errors.Is(err, context.Canceled) {
			t.Fatalf("Err = %v, want context.Canceled", err)
		}
		MustPublish(t, b, ch, "after cancel")
	})

	t.Run("Subscribe with a done context fails", func(t *testing.T) {
		t.Parallel()
		b := open(t)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := b.Subscribe(ctx, channel(t)); !errors.Is(err, context.Canceled) {
			t.Fatalf("Subscribe = %v, want context.Canceled", err)
		}
	})

	t.Run("slow consumer is dropped and the others carry on", func(t *testing.T) {
		t.Parallel()
		const size = 4
		b, ch := open(t, pubsub.BufferSize(size)), channel(t)
		slow, fast := MustSubscribe(t, b, ch), MustSubscribe(t, b, ch)
		var sent []string
		for i := range 3 * size {
			// Lock step keeps fast's buffer nearly empty; Publish returning
			// shows that slow's full buffer does not block it.
			p := strconv.Itoa(i)
			MustPublish(t, b, ch, p)
			expect(t, fast, ch, p)
			sent = append(sent, p)
		}
		got := drain(t, slow)
		if err := slow.Err(); !errors.Is(err, pubsub.ErrSlowConsumer) {
			t.Fatalf("slow Err = %v, want ErrSlowConsumer", err)
		}
		if fmt.Sprint(got) != fmt.Sprint(sent[:size]) {
			t.Fatalf("slow received %q, want the first %d messages %q", got, size, sent[:size])
		}
		if err := fast.Err(); err != nil {
			t.Fatalf("fast Err = %v, want nil", err)
		}
	})

	t.Run("Close ends subscriptions with ErrClosed", func(t *testing.T) {
		t.Parallel()
		b, ch := open(t), channel(t)
		s := MustSubscribe(t, b, ch)
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
		drain(t, s)
		if err := s.Err(); !errors.Is(err, pubsub.ErrClosed) {
			t.Fatalf("Err = %v, want ErrClosed", err)
		}
		if err := b.Publish(context.Background(), ch, nil); !errors.Is(err, pubsub.ErrClosed) {
			t.Fatalf("Publish after Close = %v, want ErrClosed", err)
		}
		if _, err := b.Subscribe(context.Background(), ch); !errors.Is(err, pubsub.ErrClosed) {
			t.Fatalf("Subscribe after Close = %v, want ErrClosed", err)
		}
		if err := b.Close(); err != nil {
			t.Fatalf("second Close = %v", err)
		}
	})

	t.Run("concurrent subscribers and publishers", func(t *testing.T) {
		t.Parallel()
		b, ch := open(t, pubsub.BufferSize(1024)), channel(t) // no overflow possible
		var wg sync.WaitGroup
		for g := range 8 {
			wg.Go(func() {
				for i := range 10 {
					s, err := b.Subscribe(context.Background(), ch)
					if err != nil {
						t.Error(err)
						return
					}
					own := fmt.Sprintf("%d-%d", g, i)
					if err := b.Publish(context.Background(), ch, []byte(own)); err != nil {
						t.Error(err)
					}
					receiveUntil(t, s, own)
					s.Close()
				}
			})
		}
		wg.Wait()
	})
}

// verifyNoLeaks checks, after t and all its subtests are done, that no
// goroutine was left behind. Callers must not run in parallel with other tests.
func verifyNoLeaks(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) })
}

// MustOpen opens a broker that is closed when tb ends.
func MustOpen(tb testing.TB, url string, opts ...pubsub.Option) pubsub.Broker {
	tb.Helper()
	b, err := pubsub.Open(url, opts...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := b.Close(); err != nil {
			tb.Error(err)
		}
	})
	return b
}

// MustSubscribe subscribes for the rest of tb.
func MustSubscribe(tb testing.TB, b pubsub.Broker, channel string) pubsub.Subscription {
	tb.Helper()
	s, err := b.Subscribe(tb.Context(), channel)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

// MustPublish publishes each payload in turn.
func MustPublish(tb testing.TB, b pubsub.Broker, channel string, payloads ...string) {
	tb.Helper()
	for _, p := range payloads {
		if err := b.Publish(context.Background(), channel, []byte(p)); err != nil {
			tb.Fatal(err)
		}
	}
}

// channel returns a name no other test, or other run of the tests, uses.
func channel(tb testing.TB) string {
	return "test:" + tb.Name() + ":" + rand.Text()
}

// expect receives exactly the payloads, in order, on channel.
func expect(tb testing.TB, s pubsub.Subscription, channel string, payloads ...string) {
	tb.Helper()
	for _, want := range payloads {
		select {
		case m, ok := <-s.C():
			if !ok {
				tb.Fatalf("subscription ended (%v) waiting for %q", s.Err(), want)
			}
			if m.Channel != channel || string(m.Payload) != want {
				tb.Fatalf("received %q on %s, want %q on %s", m.Payload, m.Channel, want, channel)
			}
		case <-time.After(wait):
			tb.Fatalf("no message after %v, want %q", wait, want)
		}
	}
}

// receiveUntil receives until payload arrives. Safe to call from any goroutine.
func receiveUntil(tb testing.TB, s pubsub.Subscription, payload string) {
	timeout := time.After(wait)
	for {
		select {
		case m, ok := <-s.C():
			if !ok {
				tb.Errorf("subscription ended (%v) waiting for %q", s.Err(), payload)
				return
			}
			if string(m.Payload) == payload {
				return
			}
		case <-timeout:
			tb.Errorf("no %q after %v", payload, wait)
			return
		}
	}
}

// drain returns the payloads left in s once s has ended.
func drain(tb testing.TB, s pubsub.Subscription) []string {
	tb.Helper()
	var got []string
	timeout := time.After(wait)
	for {
		select {
		case m, ok := <-s.C():
			if !ok {
				return got
			}
			got = append(got, string(m.Payload))
		case <-timeout:
			tb.Fatalf("subscription still open after %v", wait)
		}
	}
}
