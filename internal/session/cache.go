// Package session keeps, per server instance, a short-lived memory of which
// sessions are live, so that an authenticated request needs no database
// query to check its session (account.Service.Authenticate), and tells every
// instance at once when a session ends or a user's standing changes.
//
// The rules that keep a cached answer from outliving the truth:
//
//   - An entry lives at most TTL (default 30 s) and never past its session's
//     own end.
//   - Ending a session (logout, refresh-token reuse, revoke-all) and changing
//     a user (suspension, role change, a future password change) drop the
//     entries on this instance and are published on the broker's Channel,
//     which every instance watches from start-up and applies as the message
//     is delivered (pubsub.Broker.Watch). With Redis, each instance
//     acknowledges what it applied and the action waits (at most a second)
//     for every acknowledgement before it answers, so no instance accepts
//     the ended session once the client has its answer.
//   - A lookup that started before an invalidation cannot store what it
//     read (the generation check in Put), so a read racing a revocation
//     cannot put the revoked session back.
//   - While the broker has lost its Redis connection, messages may be
//     missed: the cache is emptied and bypassed until the connection is
//     back, and emptied again then. A connection that dies silently is only
//     noticed after TCP keep-alive; the TTL bounds that case.
package session

import (
	"container/list"
	"context"
	"crypto/rand"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flock-social/flock/internal/pubsub"
)

// Channel is the broker channel that carries invalidations to every
// instance: "<nonce> s:<session id>" or "<nonce> u:<user id>". AckChannel
// carries back the nonce of each invalidation an instance has applied.
const (
	Channel    = "sessions"
	AckChannel = "sessions:ack"
)

// counter is the Redis broker's PublishCount: Publish that says how many
// instances the message went to.
type counter interface {
	PublishCount(ctx context.Context, channel string, payload []byte) (int64, error)
}

// Defaults of Config.
const (
	DefaultTTL  = 30 * time.Second
	DefaultSize = 100_000
)

// publishTimeout bounds the wait for the broker when announcing an
// invalidation: an action never hangs on a Redis that is away (the other
// instances then bypass their caches, or the TTL ends their entries).
const publishTimeout = time.Second

// Config sets the cache's limits.
type Config struct {
	// TTL is the longest an entry is believed without asking the database
	// (default DefaultTTL): the bound on a missed invalidation. Negative
	// turns the cache off.
	TTL time.Duration
	// Size caps the entries held (default DefaultSize, about 15 MB); past
	// it the least recently used goes.
	Size int
}

// Live is what a request needs to know of its live session.
type Live struct {
	UserID string
	Role   string
	// ExpiresAt is the session's own end.
	ExpiresAt time.Time
}

type entry struct {
	sessionID string
	live      Live
	until     time.Time // when the entry stops being believed
}

// Cache is the per-instance session-liveness cache. The zero value is not
// usable; a nil *Cache caches nothing and announces nothing, for callers
// that have none (administrative commands).
//
// A hand-written map with a list rather than an LRU library
// (hashicorp/golang-lru's expirable LRU was the candidate): expiry must
// follow the store's clock, which tests move, and invalidation needs a
// generation check and removal by user, which an off-the-shelf cache does
// not offer; the whole of it is a map, a list and one mutex.
type Cache struct {
	broker pubsub.Broker
	now    func() time.Time
	ttl    time.Duration
	size   int
	log    *slog.Logger
	stops  []func()

	hits, misses, invalidations atomic.Uint64

	seq     atomic.Uint64
	id      string // this instance's prefix of nonces
	acks    sync.WaitGroup
	ackMu   sync.Mutex
	waiting map[string]*waiter // nonce -> its acknowledgements

	mu      sync.Mutex
	entries map[string]*list.Element // session id -> *entry
	order   *list.List               // most recently used first
	gen     uint64                   // bumped by every invalidation
	down    bool                     // the broker may be missing messages
}

// New returns a Cache that watches Channel on broker until Close. now is
// the clock of entries (the store's). It fails when the broker cannot be
// watched: without the watch, revocations would not reach this instance.
func New(ctx context.Context, broker pubsub.Broker, now func() time.Time, cfg Config, log *slog.Logger) (*Cache, error) {
	if cfg.TTL == 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.Size <= 0 {
		cfg.Size = DefaultSize
	}
	c := &Cache{
		broker: broker, now: now, ttl: cfg.TTL, size: cfg.Size, log: log,
		entries: make(map[string]*list.Element), order: list.New(),
		id: rand.Text()[:12], waiting: make(map[string]*waiter),
	}
	_, acks := broker.(counter)
	stop, err := broker.Watch(ctx, Channel, pubsub.Watcher{
		Message: func(m pubsub.Message) { c.received(string(m.Payload), acks) },
		Down:    func() { c.setDown(true) },
		Up:      func() { c.setDown(false) },
	})
	if err != nil {
		return nil, err
	}
	c.stops = append(c.stops, stop)
	if acks {
		stop, err := broker.Watch(ctx, AckChannel, pubsub.Watcher{Message: func(m pubsub.Message) { c.acked(string(m.Payload)) }})
		if err != nil {
			c.Close()
			return nil, err
		}
		c.stops = append(c.stops, stop)
	}
	return c, nil
}

// Close stops watching the broker and waits for acknowledgements being
// sent; close the broker after it.
func (c *Cache) Close() {
	if c == nil {
		return
	}
	for _, stop := range c.stops {
		stop()
	}
	c.acks.Wait()
}

// Get returns the cached liveness of a session, if it is believed.
func (c *Cache) Get(sessionID string) (Live, bool) {
	if c == nil || c.ttl < 0 {
		return Live{}, false
	}
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.entries[sessionID]
	if !ok || c.down {
		c.misses.Add(1)
		return Live{}, false
	}
	e := el.Value.(*entry)
	if !now.Before(e.until) || !now.Before(e.live.ExpiresAt) {
		c.remove(el)
		c.misses.Add(1)
		return Live{}, false
	}
	c.order.MoveToFront(el)
	c.hits.Add(1)
	return e.live, true
}

// Generation returns a token to take before reading a session from the
// database and to hand to Put with what was read.
func (c *Cache) Generation() uint64 {
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

// Put remembers a live session read from the database, unless anything was
// invalidated since gen was taken (the read may predate it) or the broker
// is down.
func (c *Cache) Put(sessionID string, live Live, gen uint64) {
	if c == nil || c.ttl < 0 {
		return
	}
	until := c.now().Add(c.ttl)
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen || c.down {
		return
	}
	if el, ok := c.entries[sessionID]; ok {
		el.Value = &entry{sessionID: sessionID, live: live, until: until}
		c.order.MoveToFront(el)
		return
	}
	for c.order.Len() >= c.size {
		c.remove(c.order.Back())
	}
	c.entries[sessionID] = c.order.PushFront(&entry{sessionID: sessionID, live: live, until: until})
}

// EndSession drops a session on this instance and tells the others, before
// it returns (waiting at most a second for the broker). Call it after the
// revocation has committed.
func (c *Cache) EndSession(ctx context.Context, sessionID string) {
	c.announce(ctx, "s:"+sessionID)
}

// UserChanged drops every session of a user on this instance and tells the
// others, before it returns: for a suspension, a role change, a password
// change, or every session of the user revoked at once. Call it after the
// change has committed.
func (c *Cache) UserChanged(ctx context.Context, userID string) {
	c.announce(ctx, "u:"+userID)
}

// announce applies msg here, publishes it, and with Redis waits (at most
// publishTimeout) until every instance that received it has acknowledged
// applying it: when the action answers, no instance still believes what
// it ended. In process, Publish itself runs the watchers.
func (c *Cache) announce(ctx context.Context, msg string) {
	if c == nil {
		return
	}
	c.apply(msg)
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), publishTimeout)
	defer cancel()
	nonce := c.id + "-" + strconv.FormatUint(c.seq.Add(1), 36)
	payload := []byte(nonce + " " + msg)
	pc, ok := c.broker.(counter)
	if !ok {
		if err := c.broker.Publish(pctx, Channel, payload); err != nil {
			c.log.WarnContext(ctx, "announce session change", "err", err)
		}
		return
	}
	w := &waiter{signal: make(chan struct{}, 1)}
	c.ackMu.Lock()
	c.waiting[nonce] = w
	c.ackMu.Unlock()
	defer func() {
		c.ackMu.Lock()
		delete(c.waiting, nonce)
		c.ackMu.Unlock()
	}()
	n, err := pc.PublishCount(pctx, Channel, payload)
	if err != nil {
		c.log.WarnContext(ctx, "announce session change; other instances rely on the cache TTL", "ttl", c.ttl, "err", err)
		return
	}
	for {
		c.ackMu.Lock()
		acked := w.acked
		c.ackMu.Unlock()
		if int64(acked) >= n {
			return
		}
		select {
		case <-w.signal:
		case <-pctx.Done():
			c.log.WarnContext(ctx, "announce session change: not every instance acknowledged it; the cache TTL bounds the rest", "missing", n-int64(acked), "ttl", c.ttl)
			return
		}
	}
}

// waiter counts the acknowledgements of one announcement.
type waiter struct {
	acked  int           // guarded by Cache.ackMu
	signal chan struct{} // a token when acked grew
}

// received applies an invalidation from the broker and, with Redis,
// acknowledges it (in the background: this runs on the broker's reader).
func (c *Cache) received(payload string, ack bool) {
	nonce, msg, _ := strings.Cut(payload, " ")
	c.apply(msg)
	if !ack {
		return
	}
	c.acks.Add(1)
	go func() {
		defer c.acks.Done()
		ctx, cancel := context.WithTimeout(context.Background(), publishTimeout)
		defer cancel()
		_ = c.broker.Publish(ctx, AckChannel, []byte(nonce)) // a lost ack only delays the announcer
	}()
}

// acked counts an acknowledgement for an announcement of this instance.
func (c *Cache) acked(nonce string) {
	c.ackMu.Lock()
	w := c.waiting[nonce]
	if w != nil {
		w.acked++
	}
	c.ackMu.Unlock()
	if w != nil {
		select {
		case w.signal <- struct{}{}:
		default:
		}
	}
}

// apply carries out an invalidation message.
func (c *Cache) apply(msg string) {
	c.invalidations.Add(1)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	switch {
	case strings.HasPrefix(msg, "s:"):
		if el, ok := c.entries[msg[2:]]; ok {
			c.remove(el)
		}
	case strings.HasPrefix(msg, "u:"):
		user := msg[2:]
		// Role changes and suspensions are rare: a scan beats keeping a
		// second index up to date on every request.
		for el := c.order.Front(); el != nil; {
			next := el.Next()
			if el.Value.(*entry).live.UserID == user {
				c.remove(el)
			}
			el = next
		}
	default:
		c.clear() // unknown: be safe
	}
}

// setDown empties the cache as the broker's connection goes or comes back,
// and bypasses it in between.
func (c *Cache) setDown(down bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.down = down
	c.gen++
	c.clear()
	if c.log != nil {
		if down {
			c.log.Warn("broker connection lost: session cache bypassed until it is back")
		} else {
			c.log.Info("broker connection back: session cache in use again")
		}
	}
}

// Stats are the cache's counters, for metrics.
type Stats struct {
	// Entries is the number of sessions held.
	Entries int
	// Bypassed is true while the broker's connection is down.
	Bypassed bool
	// Hits and Misses count lookups; Invalidations counts the ends of
	// sessions and changes of users applied (from here or elsewhere).
	Hits, Misses, Invalidations uint64
}

// Stats returns the cache's counters.
func (c *Cache) Stats() Stats {
	if c == nil {
		return Stats{}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return Stats{Entries: c.order.Len(), Bypassed: c.down, Hits: c.hits.Load(), Misses: c.misses.Load(), Invalidations: c.invalidations.Load()}
}

func (c *Cache) remove(el *list.Element) {
	delete(c.entries, el.Value.(*entry).sessionID)
	c.order.Remove(el)
}

func (c *Cache) clear() {
	clear(c.entries)
	c.order.Init()
}
