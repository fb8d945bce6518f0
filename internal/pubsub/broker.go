// Package pubsub delivers live events (new notifications, activity entries) to
// the streams that are connected to this server instance.
//
// Delivery is best effort: a message published while nobody is subscribed, or
// while the Redis connection is down, is gone. The database is the source of
// truth and clients backfill from it when they (re)connect; see the "Real time"
// section of the design document.
package pubsub

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

var (
	// ErrSlowConsumer is reported by Subscription.Err when the subscriber fell
	// so far behind that its buffer overflowed. The subscriber has missed at
	// least one message and should resubscribe and backfill from the store.
	ErrSlowConsumer = errors.New("pubsub: slow consumer")

	// ErrClosed is returned by a closed Broker and reported by Subscription.Err
	// for subscriptions that were ended because their Broker was closed.
	ErrClosed = errors.New("pubsub: broker closed")
)

// Broker fans messages out to subscribers of a channel (e.g.
// "user:<id>:notifications"). Implementations are safe for concurrent use.
type Broker interface {
	// Publish sends payload to every current subscriber of channel. The
	// in-process broker never blocks on subscribers; the Redis broker blocks
	// only for the PUBLISH round trip. Returns ErrClosed if the broker is
	// closed.
	Publish(ctx context.Context, channel string, payload []byte) error

	// Subscribe returns a Subscription that receives every message published
	// to channel after Subscribe returns. The subscription ends when it is
	// closed, when ctx is done, when the broker is closed, or when it falls
	// behind by more than the buffer size. Returns ErrClosed if the broker is
	// closed and ctx.Err() if ctx is done before the subscription is set up.
	Subscribe(ctx context.Context, channel string) (Subscription, error)

	// Watch calls w.Message with every message published to channel after
	// Watch returns, until stop is called or the broker closes. Unlike a
	// Subscription it has no buffer to overflow: w.Message runs on the
	// goroutine that delivers the message (the Redis reader, or the caller
	// of Publish in process), before the Redis broker reads anything else,
	// so it must be quick and must not call the broker. w.Down and w.Up
	// tell when the broker may be missing messages (see Watcher). Returns
	// ErrClosed if the broker is closed and ctx.Err() if ctx is done before
	// the watch is set up.
	Watch(ctx context.Context, channel string, w Watcher) (stop func(), err error)

	// Close ends all subscriptions with ErrClosed and releases resources.
	Close() error
}

// Subscription is one subscriber's view of a channel. Callers should Close
// it when done, whichever way it ended.
type Subscription interface {
	// C delivers messages in the order they were published to the channel;
	// it is closed when the subscription ends (Close, ctx done, broker
	// closed, or the subscriber was too slow).
	C() <-chan Message

	// Err tells why C was closed: nil after Close or while still open,
	// ctx.Err() when the context passed to Subscribe was done,
	// ErrSlowConsumer when the bounded buffer overflowed, ErrClosed when the
	// broker closed.
	Err() error

	// Close ends the subscription. It is idempotent and always returns nil.
	Close() error
}

// Watcher receives a channel's messages as they are delivered (see
// Broker.Watch). Down and Up may be nil.
type Watcher struct {
	// Message is called with each message of the channel.
	Message func(Message)
	// Down is called when the Redis broker has lost its connection: until
	// Up, messages published by other instances do not arrive. A
	// connection that dies silently (no FIN) is only noticed once TCP
	// keep-alive gives up, about a minute later.
	Down func()
	// Up is called when the connection is back and the channel subscribed
	// again; what was published while it was down is gone. The in-process
	// broker never calls Down or Up.
	Up func()
}

// Message is one published payload. Payload is shared by all subscribers of
// the channel and must not be modified.
type Message struct {
	Channel string
	Payload []byte
}

// Option configures a Broker created by Open.
type Option func(*options)

type options struct {
	bufferSize int
}

// BufferSize sets how many undelivered messages each subscription may hold
// before it is ended with ErrSlowConsumer. The default is 64.
func BufferSize(n int) Option {
	return func(o *options) { o.bufferSize = n }
}

// Open returns a Broker for url: "" gives an in-process broker for a single
// server instance; "redis://..." or "rediss://..." (see redis.ParseURL) gives a
// broker shared by every instance connected to that Redis. Open fails if Redis
// does not answer a PING within five seconds.
func Open(url string, opts ...Option) (Broker, error) {
	o := options{bufferSize: 64}
	for _, opt := range opts {
		opt(&o)
	}
	if o.bufferSize < 1 {
		return nil, fmt.Errorf("pubsub: buffer size %d: must be at least 1", o.bufferSize)
	}
	switch {
	case url == "":
		return newInmem(o), nil
	case strings.HasPrefix(url, "redis://"), strings.HasPrefix(url, "rediss://"):
		b, err := openRedis(url, o)
		if err != nil {
			// Not b itself: a nil *redisBroker in a Broker is a non-nil
			// interface, which callers then closed (a nil-pointer panic at
			// start-up when Redis was unreachable).
			return nil, err
		}
		return b, nil
	default:
		scheme, _, _ := strings.Cut(url, ":")
		return nil, fmt.Errorf("pubsub: unsupported url scheme %q: want redis://, rediss:// or empty for the in-process broker", scheme)
	}
}
