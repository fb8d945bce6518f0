package pubsub

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// redisBroker shares channels between server instances through Redis pub/sub.
//
// It holds one Redis pub/sub connection (one *redis.PubSub) whatever the number
// of local subscriptions: a channel is SUBSCRIBEd when its first local
// subscription starts and UNSUBSCRIBEd when its last one ends, and a single
// goroutine reads the connection and hands messages to the shared fanout.
//
// If the connection breaks (Redis restarts, network error), go-redis dials
// again and resubscribes every channel, and the reader carries on. A dead peer
// that sends no FIN is detected by TCP keep-alive within about a minute.
// Messages published while the connection is down are lost; streams backfill
// from the database.
type redisBroker struct {
	client *redis.Client
	ps     *redis.PubSub
	f      *fanout
	done   chan struct{} // closed by Close
	read   chan struct{} // closed when the reader has exited

	mu     sync.Mutex // orders SUBSCRIBE/UNSUBSCRIBE with refs
	refs   map[string]int
	closed bool

	seq     atomic.Uint64
	syncMu  sync.Mutex
	pending map[string]chan struct{} // barrier token -> closed on PONG
}

var _ Broker = (*redisBroker)(nil)

// syncPrefix marks the PING payloads used as barriers by Subscribe.
const syncPrefix = "flock-pubsub-sync-"

func openRedis(url string, o options) (*redisBroker, error) {
	opt, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("pubsub: parse redis url: %w", err)
	}
	client := redis.NewClient(opt)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := client.Ping(ctx).Err(); err != nil {
		_ = client.Close()
		return nil, fmt.Errorf("pubsub: ping redis %s: %w", opt.Addr, err)
	}
	b := &redisBroker{
		client:  client,
		ps:      client.Subscribe(ctx), // no channels yet: does not dial
		f:       newFanout(o.bufferSize),
		done:    make(chan struct{}),
		read:    make(chan struct{}),
		refs:    make(map[string]int),
		pending: make(map[string]chan struct{}),
	}
	go b.receive()
	return b, nil
}

// receive is the only reader of b.ps. It returns once b.ps is closed and
// otherwise survives every error: go-redis reconnects on the next Receive.
// It tells watchers when the connection is lost (an error) and when it is
// back (the first reply after one: go-redis resubscribes every channel
// before it sends anything else on a new connection, so once a reply
// arrives the subscriptions are in effect again).
func (b *redisBroker) receive() {
	defer close(b.read)
	backoff := time.Duration(0)
	up := true
	for {
		msg, err := b.ps.Receive(context.Background())
		if errors.Is(err, redis.ErrClosed) {
			return
		}
		if err == nil && !up {
			up = true
			b.f.connection(true)
		}
		if err != nil {
			if up {
				up = false
				b.f.connection(false)
			}
			backoff = min(max(2*backoff, 50*time.Millisecond), 2*time.Second)
			select {
			case <-time.After(backoff):
				continue
			case <-b.done:
				return
			}
		}
		backoff = 0
		switch msg := msg.(type) {
		case *redis.Message:
			// Only fails once closed, and then receive is about to return.
			_ = b.f.publish(Message{Channel: msg.Channel, Payload: []byte(msg.Payload)})
		case *redis.Pong:
			b.syncMu.Lock()
			if c, ok := b.pending[msg.Payload]; ok {
				close(c)
				delete(b.pending, msg.Payload)
			}
			b.syncMu.Unlock()
		}
	}
}

func (b *redisBroker) Publish(ctx context.Context, channel string, payload []byte) error {
	select {
	case <-b.done:
		return fmt.Errorf("pubsub: publish %s: %w", channel, ErrClosed)
	default:
	}
	if err := b.client.Publish(ctx, channel, payload).Err(); err != nil {
		// Redis is away: this instance's own watchers and subscribers get
		// the message all the same (a logout ends the streams open here at
		// once; the other instances' streams catch up from the database).
		// Were it delivered after all, a second copy is harmless: a
		// message is a wake-up, not the event.
		_ = b.f.publish(Message{Channel: channel, Payload: bytes.Clone(payload)})
		return fmt.Errorf("pubsub: publish %s: %w", channel, err)
	}
	return nil
}

// PublishCount is Publish that also returns how many subscriber connections
// Redis handed the message to (one per instance watching or subscribed to
// the channel), so that a caller can wait for their acknowledgements.
func (b *redisBroker) PublishCount(ctx context.Context, channel string, payload []byte) (int64, error) {
	select {
	case <-b.done:
		return 0, fmt.Errorf("pubsub: publish %s: %w", channel, ErrClosed)
	default:
	}
	n, err := b.client.Publish(ctx, channel, payload).Result()
	if err != nil {
		return 0, fmt.Errorf("pubsub: publish %s: %w", channel, err)
	}
	return n, nil
}

// Subscribe returns once Redis has processed the SUBSCRIBE, so that a message
// published right after it returns is delivered.
func (b *redisBroker) Subscribe(ctx context.Context, channel string) (Subscription, error) {
	s, err := b.subscribe(ctx, channel)
	if err != nil {
		return nil, fmt.Errorf("pubsub: subscribe %s: %w", channel, err)
	}
	return s, nil
}

func (b *redisBroker) subscribe(ctx context.Context, channel string) (*subscription, error) {
	// Hold b.mu across registering and SUBSCRIBE so that release, which may
	// run as soon as s exists, sees the reference it drops.
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil, ErrClosed
	}
	s, err := b.f.subscribe(ctx, channel, func() { b.release(channel) })
	if err != nil {
		b.mu.Unlock()
		return nil, err
	}
	b.refs[channel]++
	if b.refs[channel] == 1 {
		err = b.ps.Subscribe(ctx, channel)
	}
	b.mu.Unlock()
	if err == nil {
		err = b.sync(ctx)
	}
	if err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Watch returns once Redis has processed the SUBSCRIBE, like Subscribe.
func (b *redisBroker) Watch(ctx context.Context, channel string, w Watcher) (func(), error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil, fmt.Errorf("pubsub: watch %s: %w", channel, ErrClosed)
	}
	stop, err := b.f.watch(channel, w, func() { b.release(channel) })
	if err != nil {
		b.mu.Unlock()
		return nil, fmt.Errorf("pubsub: watch %s: %w", channel, err)
	}
	b.refs[channel]++
	if b.refs[channel] == 1 {
		err = b.ps.Subscribe(ctx, channel)
	}
	b.mu.Unlock()
	if err == nil {
		err = b.sync(ctx)
	}
	if err != nil {
		stop()
		return nil, fmt.Errorf("pubsub: watch %s: %w", channel, err)
	}
	return stop, nil
}

// sync waits until Redis has processed every command sent so far on the
// pub/sub connection: it sends PING with a unique payload and waits for the
// reader to see the reply. Replies are in command order, so our SUBSCRIBE is
// then in effect. If the connection is replaced meanwhile, the new one was
// resubscribed before anything else was sent on it; the PING is repeated in
// case its reply was lost with the old connection.
func (b *redisBroker) sync(ctx context.Context) error {
	token := syncPrefix + strconv.FormatUint(b.seq.Add(1), 10)
	c := make(chan struct{})
	b.syncMu.Lock()
	b.pending[token] = c
	b.syncMu.Unlock()
	defer func() {
		b.syncMu.Lock()
		delete(b.pending, token)
		b.syncMu.Unlock()
	}()
	retry := time.NewTicker(time.Second)
	defer retry.Stop()
	for {
		if err := b.ps.Ping(ctx, token); err != nil {
			return err
		}
		select {
		case <-c:
			return nil
		case <-retry.C:
		case <-ctx.Done():
			return ctx.Err()
		case <-b.done:
			return ErrClosed
		}
	}
}

// release drops a reference taken by subscribe and UNSUBSCRIBEs the channel
// when it was the last one.
func (b *redisBroker) release(channel string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	if b.refs[channel]--; b.refs[channel] > 0 {
		return
	}
	delete(b.refs, channel)
	// An error here means the connection broke; it is redialed with the
	// current channel set, which no longer includes this one.
	_ = b.ps.Unsubscribe(context.Background(), channel)
}

func (b *redisBroker) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	close(b.done)
	b.mu.Unlock()

	b.f.close()
	err := b.ps.Close()
	<-b.read
	if cerr := b.client.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("pubsub: close: %w", err)
	}
	return nil
}
