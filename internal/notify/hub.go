package notify

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flock-social/flock/internal/pubsub"
)

// streamRegistry holds the open streams of a Service and their hubs.
type streamRegistry struct {
	mu      sync.Mutex
	hubs    map[hubKey]*hub
	perUser map[string]int // open streams per user, both kinds
	total   int

	refused, eventReads, prepares, sessionReads atomic.Uint64
}

// hubKey names a hub: one user's notifications or activity log.
type hubKey struct{ userID, kind string }

// hub reads one user's events of one kind for all of that user's streams
// on this instance. It runs while it has members: on each wake-up from the
// broker, a message on the user's channel (a suspension) or a poll tick,
// it reads what is new once, checks each distinct session of its members
// once (before anything is delivered), and appends the events to every
// member's backlog without waiting for any of them.
type hub struct {
	s      *Service
	key    hubKey
	feed   *feed
	cancel context.CancelFunc
	// listening is closed once the hub is subscribed and has its position:
	// a member may then read the store, knowing the hub catches the rest.
	listening chan struct{}
	// err is why the hub could not start (set before listening closes).
	err error
	pos position // the hub goroutine's only

	mu      sync.Mutex
	members map[*member]struct{}
}

// member is one stream's place in a hub.
type member struct {
	sessionID string
	wake      chan struct{} // a token when the backlog or err changed

	mu      sync.Mutex
	backlog []Event
	err     error
}

// push appends events to the backlog, or ends the member with
// ErrFellBehind when that would pass backlogLimit.
func (m *member) push(events []Event) {
	m.mu.Lock()
	if m.err != nil {
		m.mu.Unlock()
		return
	}
	if len(m.backlog)+len(events) > backlogLimit {
		m.backlog, m.err = nil, ErrFellBehind
	} else {
		m.backlog = append(m.backlog, events...)
	}
	m.mu.Unlock()
	m.signal()
}

// fail ends the member with err (the first error wins).
func (m *member) fail(err error) {
	m.mu.Lock()
	if m.err == nil {
		m.backlog, m.err = nil, err
	}
	m.mu.Unlock()
	m.signal()
}

func (m *member) signal() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// take returns the backlog and empties it, or the error that ended the
// member: then nothing more is sent.
func (m *member) take() ([]Event, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return nil, m.err
	}
	events := m.backlog
	m.backlog = nil
	return events, nil
}

// join adds a member for a stream of userID to the hub of f, starting the
// hub if it is the first, and returns once the hub listens. leave removes
// it (and stops the hub after its last member). It returns nil when ctx
// ends first, and an error when the hub could not start.
func (s *Service) join(ctx context.Context, f *feed, userID, sessionID string) (m *member, leave func(), err error) {
	r := &s.streams
	key := hubKey{userID: userID, kind: f.kind}
	m = &member{sessionID: sessionID, wake: make(chan struct{}, 1)}
	r.mu.Lock()
	h := r.hubs[key]
	if h == nil {
		// The hub outlives the stream that started it.
		hctx, cancel := context.WithCancel(context.Background())
		h = &hub{s: s, key: key, feed: f, cancel: cancel, listening: make(chan struct{}), members: make(map[*member]struct{})}
		r.hubs[key] = h
		go h.run(hctx)
	}
	h.mu.Lock()
	h.members[m] = struct{}{}
	h.mu.Unlock()
	r.mu.Unlock()
	leave = func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		h.mu.Lock()
		delete(h.members, m)
		empty := len(h.members) == 0
		h.mu.Unlock()
		if empty && r.hubs[key] == h {
			delete(r.hubs, key)
			h.cancel()
		}
	}
	select {
	case <-h.listening:
		if h.err != nil {
			leave()
			return nil, nil, h.err
		}
		return m, leave, nil
	case <-ctx.Done():
		leave()
		return nil, nil, nil
	}
}

// run is the hub's goroutine; it ends when its last member leaves.
func (h *hub) run(ctx context.Context) {
	s := h.s
	channel := h.feed.channel(h.key.userID)
	wake, user := s.subscribe(ctx, channel), s.subscribe(ctx, UserChannel(h.key.userID))
	defer func() {
		for _, sub := range []pubsub.Subscription{wake, user} {
			if sub != nil {
				sub.Close()
			}
		}
	}()
	// The hub starts after the last event committed before it listened:
	// from then on it reads each one (see position).
	pos, err := s.startPosition(ctx, h.feed, h.key.userID, "")
	if err != nil {
		h.err = err
		// Later streams start a new hub rather than join this one.
		s.streams.mu.Lock()
		if s.streams.hubs[h.key] == h {
			delete(s.streams.hubs, h.key)
		}
		s.streams.mu.Unlock()
		h.cancel()
		close(h.listening)
		return
	}
	h.pos = pos
	close(h.listening)
	poll := time.NewTicker(s.Poll)
	defer poll.Stop()
	brokerClosed := false
	// reopen replaces a subscription that ended: after a slow-consumer
	// drop nothing is lost (the hub reads the store next), after the
	// broker closed the members are told to reconnect elsewhere.
	reopen := func(sub pubsub.Subscription, channel string) pubsub.Subscription {
		err := sub.Err()
		sub.Close()
		if errors.Is(err, pubsub.ErrClosed) {
			brokerClosed = true
			h.failAll(ErrShuttingDown)
			return nil
		}
		return s.subscribe(ctx, channel)
	}
	for {
		checkAll := false
		select {
		case <-ctx.Done():
			return
		case _, open := <-messages(wake):
			if !open {
				wake = reopen(wake, channel)
			}
		case _, open := <-messages(user):
			if !open {
				user = reopen(user, UserChannel(h.key.userID))
			}
			checkAll = true // a suspension: re-checked before anything is sent
		case <-poll.C:
			checkAll = true // catches a lost wake-up or end of session
			if !brokerClosed && wake == nil {
				wake = s.subscribe(ctx, channel)
			}
			if !brokerClosed && user == nil {
				user = s.subscribe(ctx, UserChannel(h.key.userID))
			}
		}
		// Wake-ups that arrived meanwhile are answered by the same read.
		for drained := false; !drained; {
			select {
			case _, open := <-messages(wake):
				if !open {
					wake = reopen(wake, channel)
				}
			case _, open := <-messages(user):
				if !open {
					user = reopen(user, UserChannel(h.key.userID))
				}
				checkAll = true
			default:
				drained = true
			}
		}
		h.refresh(ctx, checkAll)
	}
}

// refresh reads what is new since the hub's position and hands it to every
// member whose session is still live. Sessions are checked once per
// refresh, when there is something to deliver or checkAll asks for it.
func (h *hub) refresh(ctx context.Context, checkAll bool) {
	checked := false
	for full := true; full; {
		var (
			events []Event
			err    error
		)
		events, full, err = h.feed.read(ctx, h.s, h.key.userID, h.pos)
		if err != nil {
			if ctx.Err() == nil {
				h.failAll(err)
			}
			return
		}
		if !checked && (checkAll || len(events) > 0) {
			checked = true
			h.checkSessions(ctx)
		}
		if len(events) == 0 {
			return
		}
		for _, m := range h.snapshot() {
			m.push(events)
		}
		h.pos.take(events[len(events)-1].ID)
	}
}

// checkSessions reads each distinct session of the members once and ends
// the members of a session that is over (or of a suspended account).
func (h *hub) checkSessions(ctx context.Context) {
	bySession := make(map[string][]*member)
	for _, m := range h.snapshot() {
		bySession[m.sessionID] = append(bySession[m.sessionID], m)
	}
	for sessionID, members := range bySession {
		if err := h.s.checkSession(ctx, h.key.userID, sessionID); err != nil {
			for _, m := range members {
				m.fail(err)
			}
		}
	}
}

func (h *hub) snapshot() []*member {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]*member, 0, len(h.members))
	for m := range h.members {
		out = append(out, m)
	}
	return out
}

func (h *hub) failAll(err error) {
	for _, m := range h.snapshot() {
		m.fail(err)
	}
}
