package pubsub

import (
	"context"
	"sync"
)

// fanout delivers messages to the local subscriptions of each channel. Both
// brokers use it: the in-process broker publishes into it directly, the Redis
// broker from the goroutine that reads Redis.
type fanout struct {
	bufferSize int

	mu       sync.Mutex
	subs     map[string]map[*subscription]struct{}
	watchers map[string]map[*Watcher]struct{}
	closed   bool
}

func newFanout(bufferSize int) *fanout {
	return &fanout{bufferSize: bufferSize, subs: make(map[string]map[*subscription]struct{}), watchers: make(map[string]map[*Watcher]struct{})}
}

// watch registers w for channel; the returned stop removes it and calls
// release (if not nil) once.
func (f *fanout) watch(channel string, w Watcher, release func()) (stop func(), err error) {
	if w.Message == nil {
		w.Message = func(Message) {}
	}
	p := &w
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil, ErrClosed
	}
	if f.watchers[channel] == nil {
		f.watchers[channel] = make(map[*Watcher]struct{})
	}
	f.watchers[channel][p] = struct{}{}
	var once sync.Once
	return func() {
		once.Do(func() {
			f.mu.Lock()
			_, ok := f.watchers[channel][p]
			delete(f.watchers[channel], p)
			if len(f.watchers[channel]) == 0 {
				delete(f.watchers, channel)
			}
			f.mu.Unlock()
			if ok && release != nil {
				release()
			}
		})
	}, nil
}

// connection tells every watcher that the broker's connection went down
// (up false) or came back.
func (f *fanout) connection(up bool) {
	var all []*Watcher
	f.mu.Lock()
	for _, ws := range f.watchers {
		for w := range ws {
			all = append(all, w)
		}
	}
	f.mu.Unlock()
	for _, w := range all {
		if up && w.Up != nil {
			w.Up()
		} else if !up && w.Down != nil {
			w.Down()
		}
	}
}

// subscription implements Subscription. Its done, err and the closing of c are
// guarded by f.mu, so publish never sends on a closed channel and a subscriber
// that overflowed never receives a later message (no silent gaps).
type subscription struct {
	f       *fanout
	channel string
	c       chan Message
	done    bool
	err     error
	stop    func() bool // stops the ctx watcher
	release func()      // called once after the subscription ended; may be nil
}

// subscribe registers a subscription that ends when ctx is done. release, if
// not nil, is called exactly once after the subscription has ended.
func (f *fanout) subscribe(ctx context.Context, channel string, release func()) (*subscription, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s := &subscription{f: f, channel: channel, c: make(chan Message, f.bufferSize), release: release}
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return nil, ErrClosed
	}
	if f.subs[channel] == nil {
		f.subs[channel] = make(map[*subscription]struct{})
	}
	f.subs[channel][s] = struct{}{}
	// Set stop under the lock: the watcher may fire at once, and end reads stop.
	s.stop = context.AfterFunc(ctx, func() { s.end(ctx.Err()) })
	f.mu.Unlock()
	return s, nil
}

// publish calls the watchers of msg's channel, then hands msg to every
// subscription of it without blocking and ends those whose buffer is full
// with ErrSlowConsumer. Watchers go first, so whoever sees the message on
// a subscription knows the watchers have applied it.
func (f *fanout) publish(msg Message) error {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return ErrClosed
	}
	var watchers []*Watcher
	for w := range f.watchers[msg.Channel] {
		watchers = append(watchers, w)
	}
	f.mu.Unlock()
	for _, w := range watchers {
		w.Message(msg)
	}

	var slow []*subscription
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return ErrClosed
	}
	for s := range f.subs[msg.Channel] {
		select {
		case s.c <- msg:
		default:
			f.detach(s, ErrSlowConsumer)
			slow = append(slow, s)
		}
	}
	f.mu.Unlock()
	for _, s := range slow {
		s.cleanup()
	}
	return nil
}

// close ends every subscription with ErrClosed; later calls to subscribe and
// publish fail with ErrClosed.
func (f *fanout) close() {
	var all []*subscription
	f.mu.Lock()
	if !f.closed {
		f.closed = true
		clear(f.watchers)
		for _, subs := range f.subs {
			for s := range subs {
				f.detach(s, ErrClosed)
				all = append(all, s)
			}
		}
	}
	f.mu.Unlock()
	for _, s := range all {
		s.cleanup()
	}
}

// detach removes s and closes its channel. f.mu must be held. It reports
// whether s was still active; only then must the caller run s.cleanup.
func (f *fanout) detach(s *subscription, err error) bool {
	if s.done {
		return false
	}
	s.done, s.err = true, err
	close(s.c)
	if subs := f.subs[s.channel]; subs != nil {
		delete(subs, s)
		if len(subs) == 0 {
			delete(f.subs, s.channel)
		}
	}
	return true
}

// cleanup runs outside f.mu because release may do network I/O.
func (s *subscription) cleanup() {
	s.stop()
	if s.release != nil {
		s.release()
	}
}

func (s *subscription) end(err error) {
	s.f.mu.Lock()
	ended := s.f.detach(s, err)
	s.f.mu.Unlock()
	if ended {
		s.cleanup()
	}
}

func (s *subscription) C() <-chan Message { return s.c }

func (s *subscription) Err() error {
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	return s.err
}

func (s *subscription) Close() error {
	s.end(nil)
	return nil
}
