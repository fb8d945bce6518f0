package pubsub

import (
	"bytes"
	"context"
	"fmt"
)

// inmem is the Broker for a single server instance: publishing is a local
// fan-out that never blocks.
type inmem struct {
	f *fanout
}

var _ Broker = (*inmem)(nil)

func newInmem(o options) *inmem {
	return &inmem{f: newFanout(o.bufferSize)}
}

func (b *inmem) Publish(ctx context.Context, channel string, payload []byte) error {
	// Copy so subscribers never see a caller reusing its buffer.
	if err := b.f.publish(Message{Channel: channel, Payload: bytes.Clone(payload)}); err != nil {
		return fmt.Errorf("pubsub: publish %s: %w", channel, err)
	}
	return nil
}

func (b *inmem) Subscribe(ctx context.Context, channel string) (Subscription, error) {
	s, err := b.f.subscribe(ctx, channel, nil)
	if err != nil {
		return nil, fmt.Errorf("pubsub: subscribe %s: %w", channel, err)
	}
	return s, nil
}

// Watch calls w.Message from within Publish: once Publish returns, w has seen the message.
func (b *inmem) Watch(ctx context.Context, channel string, w Watcher) (func(), error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	stop, err := b.f.watch(channel, w, nil)
	if err != nil {
		return nil, fmt.Errorf("pubsub: watch %s: %w", channel, err)
	}
	return stop, nil
}

func (b *inmem) Close() error {
	b.f.close()
	return nil
}
