package notify

import (
	"context"
	"errors"
	"fmt"

	"github.com/flock-social/flock"
	"github.com/flock-social/flock/internal/pubsub"
	"github.com/flock-social/flock/internal/store"
)

// Live streams.
//
// All the open streams of one user and one kind (notifications, activity
// log) on this instance share a hub (hub.go): one broker subscription and
// one store read per wake-up, whose events are handed to every stream of
// that user. A stream only reads the store itself when it opens, to send
// what happened after the id it resumes from; the hub already feeds it by
// then, and it skips what it sent (see position).

// Defaults of Service.MaxStreamsPerUser and Service.MaxStreams.
const (
	// DefaultMaxStreamsPerUser is enough for a user with a dozen tabs and
	// devices (each tab holds one or two streams).
	DefaultMaxStreamsPerUser = 20
	// DefaultMaxStreams bounds what one instance holds open: each stream
	// costs a connection, a few goroutines and their buffers (~50 KB).
	DefaultMaxStreams = 10000
)

const (
	// pageLimit is how many events one store read returns; a full page is
	// followed by another read.
	pageLimit = 100
	// backlogLimit is how many events may wait for one stream before it is
	// closed with ErrFellBehind: a client that stops reading never holds up
	// the hub, the writer, or the user's other streams.
	backlogLimit = 1000
)

// ErrSessionEnded ends a stream whose session was logged out or revoked,
// or whose account was suspended.
var ErrSessionEnded = flock.Errorf(flock.EUNAUTHORIZED, "the session ended (logged out, revoked, its account suspended or deleted, or its password changed); log in again")

// ErrFellBehind ends a stream whose client did not keep up.
var ErrFellBehind = flock.Errorf(flock.EUNAVAILABLE, "the stream fell behind and was closed; reconnect with the last id you received")

// ErrShuttingDown ends streams when the server stops.
var ErrShuttingDown = flock.Errorf(flock.EUNAVAILABLE, "the server is restarting; reconnect with the last id you received")

// tooManyStreams refuses a stream past MaxStreamsPerUser.
func tooManyStreams(limit int) error {
	return flock.Errorf(flock.ERATELIMIT, "this account already has %d live streams open on this server, the most it may hold (notifications and activity log together); close streams or browser tabs you no longer use, then try again", limit)
}

// serverFull refuses a stream past MaxStreams.
func serverFull(limit int) error {
	return flock.Errorf(flock.ERATELIMIT, "this server already holds %d live streams, the most it may hold; try again in a minute", limit)
}

// Event is one message of a stream: the event's id and what
// PrepareNotifications or PrepareActivities made of its row (the row
// itself, *store.Notification or *store.Activity, without them). Value
// is shared by all of a user's streams and must not be modified.
type Event struct {
	ID    string
	Value any
}

// position is how far a stream (or a hub) has read: the id of the last
// event it took. Every decision about "already seen" goes through it.
//
// A position is a plain cursor because commit order cannot overtake it:
// ids of one user's events of one kind are given under a lock held until
// commit (store.NextEventID), so they increase in commit order. Once a
// read returns id X, every event of that user below X is committed and was
// returned by that read or an earlier one; every event committed later has
// an id above X. Taking "id > last" therefore skips nothing and repeats
// nothing, whatever the instances' clocks say.
type position struct{ last string }

// checkSinceID refuses a since_id that is not the form of an event id.
func checkSinceID(sinceID string) error {
	if sinceID != "" && !store.ValidID(sinceID) {
		return flock.FieldErrorf("since_id", "since_id must be the id of an event you received")
	}
	return nil
}

// startPosition is where a stream (or, with sinceID "", a hub) starts:
// after sinceID, or after the last event of the user committed so far (the
// head), so that "from now on" misses no event committed after it, even
// one whose id was made before now or by an instance whose clock is behind.
func (s *Service) startPosition(ctx context.Context, f *feed, userID, sinceID string) (position, error) {
	if sinceID != "" {
		return position{last: sinceID}, nil
	}
	head, err := s.db.EventHead(ctx, s.db, userID, f.kind)
	if err != nil {
		return position{}, fmt.Errorf("start %s stream: %w", f.kind, err)
	}
	return position{last: head}, nil
}

// fresh reports whether the event id comes after the position.
func (p position) fresh(id string) bool { return id > p.last }

// take moves the position to id, never backwards.
func (p *position) take(id string) {
	if p.fresh(id) {
		p.last = id
	}
}

// feed is one kind of stream.
type feed struct {
	kind    string
	channel func(userID string) string
	// read returns up to pageLimit events after the position, oldest
	// first, and whether the page was full (more may follow).
	read func(ctx context.Context, s *Service, userID string, after position) ([]Event, bool, error)
}

var notificationsFeed = &feed{
	kind:    kindNotifications,
	channel: notificationsChannel,
	read: func(ctx context.Context, s *Service, userID string, after position) ([]Event, bool, error) {
		s.streams.eventReads.Add(1)
		rows, err := s.db.ListNotifications(ctx, s.db, store.EventFilter{UserID: userID, AfterID: after.last, Limit: pageLimit})
		if err != nil {
			return nil, false, fmt.Errorf("read notifications: %w", err)
		}
		events, err := prepare(ctx, s, rows, s.PrepareNotifications, func(n *store.Notification) string { return n.ID })
		return events, len(rows) == pageLimit, err
	},
}

var activityFeed = &feed{
	kind:    kindActivity,
	channel: activityChannel,
	read: func(ctx context.Context, s *Service, userID string, after position) ([]Event, bool, error) {
		s.streams.eventReads.Add(1)
		rows, err := s.db.ListActivities(ctx, s.db, store.EventFilter{UserID: userID, AfterID: after.last, Limit: pageLimit})
		if err != nil {
			return nil, false, fmt.Errorf("read activity: %w", err)
		}
		events, err := prepare(ctx, s, rows, s.PrepareActivities, func(a *store.Activity) string { return a.ID })
		return events, len(rows) == pageLimit, err
	},
}

// prepare makes events of rows, through fn when there is one.
func prepare[T any](ctx context.Context, s *Service, rows []T, fn func(context.Context, []T) ([]any, error), id func(T) string) ([]Event, error) {
	if len(rows) == 0 {
		return nil, nil
	}
	events := make([]Event, len(rows))
	for i, r := range rows {
		events[i] = Event{ID: id(r), Value: r}
	}
	if fn == nil {
		return events, nil
	}
	s.streams.prepares.Add(1)
	values, err := fn(ctx, rows)
	if err != nil {
		return nil, fmt.Errorf("prepare events: %w", err)
	}
	if len(values) != len(rows) {
		return nil, fmt.Errorf("prepare events: %d values for %d rows", len(values), len(rows))
	}
	for i, v := range values {
		events[i].Value = v
	}
	return events, nil
}

// StreamNotifications sends a user's notifications after sinceID (or, when
// it is empty, those from now on), oldest first, then each new one as it
// happens, until ctx ends (nil), the session ends (ErrSessionEnded), the
// client falls behind (ErrFellBehind), the server shuts down
// (ErrShuttingDown) or send fails. ready is called once the stream is
// listening, before the first event: from then on nothing is missed. It is
// given the stream's position, the since_id that resumes it with nothing
// missed even before an event was sent (sinceID, or the head: MinID for a
// user with no event yet).
//
// Past MaxStreamsPerUser or MaxStreams it returns a resource_exhausted
// error before calling ready; an invalid sinceID is invalid_argument.
func (s *Service) StreamNotifications(ctx context.Context, userID, sessionID, sinceID string, ready func(since string) error, send func(Event) error) error {
	return s.stream(ctx, notificationsFeed, userID, sessionID, sinceID, ready, send)
}

// StreamActivities is StreamNotifications for the activity log.
func (s *Service) StreamActivities(ctx context.Context, userID, sessionID, sinceID string, ready func(since string) error, send func(Event) error) error {
	return s.stream(ctx, activityFeed, userID, sessionID, sinceID, ready, send)
}

func (s *Service) stream(ctx context.Context, f *feed, userID, sessionID, sinceID string, ready func(since string) error, send func(Event) error) error {
	if err := checkSinceID(sinceID); err != nil {
		return err
	}
	release, err := s.admit(userID)
	if err != nil {
		return err
	}
	defer release()
	// The session's end is announced to its streams (logout, revocation).
	session := s.subscribe(ctx, SessionChannel(sessionID))
	if session != nil {
		defer session.Close()
	}
	// Join the hub before the first read, so nothing committed in between
	// is missed; what both deliver is skipped the second time.
	m, leave, err := s.join(ctx, f, userID, sessionID)
	if err != nil {
		return err
	}
	if m == nil {
		return nil // ctx ended
	}
	defer leave()
	// The position is read after the hub's: what the hub delivers up to it
	// is skipped, what commits later is above it.
	pos, err := s.startPosition(ctx, f, userID, sinceID)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	if err := s.checkSession(ctx, userID, sessionID); err != nil {
		return err
	}
	if err := ready(pos.last); err != nil {
		return err
	}
	for full := true; full; {
		var events []Event
		events, full, err = f.read(ctx, s, userID, pos)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		for _, e := range events {
			if err := send(e); err != nil {
				return err
			}
			pos.take(e.ID)
		}
	}
	for {
		events, err := m.take()
		if err != nil {
			return err
		}
		for _, e := range events {
			if !pos.fresh(e.ID) {
				continue
			}
			if err := send(e); err != nil {
				return err
			}
			pos.take(e.ID)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-s.shutdown:
			return ErrShuttingDown
		case _, open := <-messages(session):
			if !open {
				return closedBecause(ctx, session)
			}
			return ErrSessionEnded
		case <-m.wake:
		}
	}
}

// admit counts a new stream of userID against the caps; release uncounts it.
func (s *Service) admit(userID string) (release func(), err error) {
	r := &s.streams
	r.mu.Lock()
	defer r.mu.Unlock()
	if s.MaxStreamsPerUser > 0 && r.perUser[userID] >= s.MaxStreamsPerUser {
		r.refused.Add(1)
		return nil, tooManyStreams(s.MaxStreamsPerUser)
	}
	if s.MaxStreams > 0 && r.total >= s.MaxStreams {
		r.refused.Add(1)
		return nil, serverFull(s.MaxStreams)
	}
	r.perUser[userID]++
	r.total++
	return func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.perUser[userID]--; r.perUser[userID] <= 0 {
			delete(r.perUser, userID)
		}
		r.total--
	}, nil
}

// subscribe subscribes to channel, or returns nil when the broker is away:
// the periodic re-read still delivers.
func (s *Service) subscribe(ctx context.Context, channel string) pubsub.Subscription {
	sub, err := s.broker.Subscribe(ctx, channel)
	if err != nil {
		if ctx.Err() == nil && !errors.Is(err, pubsub.ErrClosed) {
			s.log.WarnContext(ctx, "stream subscribe; falling back to polling", "channel", channel, "err", err)
		}
		return nil
	}
	return sub
}

// messages returns the channel of sub, or nil (never ready) without one.
func messages(sub pubsub.Subscription) <-chan pubsub.Message {
	if sub == nil {
		return nil
	}
	return sub.C()
}

// closedBecause explains why a subscription closed under a stream.
func closedBecause(ctx context.Context, sub pubsub.Subscription) error {
	switch err := sub.Err(); {
	case ctx.Err() != nil:
		return nil
	case errors.Is(err, pubsub.ErrSlowConsumer):
		return ErrFellBehind
	default:
		return ErrShuttingDown
	}
}

// checkSession ends a stream whose session is no longer live or whose
// account was suspended.
func (s *Service) checkSession(ctx context.Context, userID, sessionID string) error {
	s.streams.sessionReads.Add(1)
	u, err := s.db.GetSessionUser(ctx, s.db, sessionID, userID)
	switch {
	case store.IsNotFound(err):
		return ErrSessionEnded
	case err != nil:
		if ctx.Err() != nil {
			return nil
		}
		return err
	case u.SuspendedAt != nil:
		return ErrSessionEnded
	}
	return nil
}

// StreamStats tells what live streams hold and cost on this instance.
type StreamStats struct {
	// Open is the number of open streams; Hubs the number of (user, kind)
	// pairs they share.
	Open, Hubs int
	// Refused counts streams refused by MaxStreamsPerUser or MaxStreams.
	Refused uint64
	// EventReads counts reads of events from the store: one per hub
	// wake-up (shared by the user's streams) and per stream opening.
	EventReads uint64
	// Prepares counts calls of PrepareNotifications and PrepareActivities.
	Prepares uint64
	// SessionReads counts session checks: one per stream opening, then
	// one per distinct session of a hub when it delivers or polls.
	SessionReads uint64
}

// StreamStats returns the counters of live streams, for /metrics.
func (s *Service) StreamStats() StreamStats {
	r := &s.streams
	r.mu.Lock()
	open, hubs := r.total, len(r.hubs)
	r.mu.Unlock()
	return StreamStats{
		Open: open, Hubs: hubs, Refused: r.refused.Load(),
		EventReads: r.eventReads.Load(), Prepares: r.prepares.Load(), SessionReads: r.sessionReads.Load(),
	}
}
