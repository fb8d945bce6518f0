// Package notify records notifications (what others did that concerns a
// user) and activity-log entries (what a user did), and streams both live.
//
// Rows are the source of truth: an action writes them in its own
// transaction, and after commit Publish sends a wake-up on the broker.
// A stream never trusts the broker's message itself: it reads what is new
// from the store, so ordering, blocks, deletions and suspensions are all
// checked at delivery, a missed wake-up is caught by a periodic re-read,
// and a reconnecting client resumes from the last id it saw.
package notify

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/uptrace/bun"

	"github.com/flock-social/flock"
	"github.com/flock-social/flock/internal/pubsub"
	"github.com/flock-social/flock/internal/store"
)

// Notification types as stored.
const (
	TypeFollow           = "follow"
	TypeLike             = "like"
	TypeComment          = "comment"
	TypeGroupInvite      = "group_invite"
	TypeGroupJoinRequest = "group_join_request"
	TypeGroupJoined      = "group_joined"
)

// Activity types as stored.
const (
	PostCreated    = "post_created"
	PostUpdated    = "post_updated"
	PostDeleted    = "post_deleted"
	CommentCreated = "comment_created"
	CommentDeleted = "comment_deleted"
	PostLiked      = "post_liked"
	PostUnliked    = "post_unliked"
	UserFollowed   = "user_followed"
	UserUnfollowed = "user_unfollowed"
	UserBlocked    = "user_blocked"
	UserUnblocked  = "user_unblocked"
	ProfileUpdated = "profile_updated"
	PostReported   = "post_reported"
	GroupCreated   = "group_created"
	GroupUpdated   = "group_updated"
	GroupDeleted   = "group_deleted"
	GroupJoined    = "group_joined"
	GroupLeft      = "group_left"
)

// Service records and streams events.
type Service struct {
	db     *store.DB
	broker pubsub.Broker
	log    *slog.Logger
	// Poll is how often a stream re-reads the store and re-checks its
	// session even without a wake-up (default 15s).
	Poll time.Duration
	// MaxStreamsPerUser caps the live streams one account holds open on
	// this instance, notifications and activity log together (default
	// DefaultMaxStreamsPerUser); 0 or less means no cap.
	MaxStreamsPerUser int
	// MaxStreams caps the live streams open on this instance, all
	// accounts together (default DefaultMaxStreams); 0 or less means no cap.
	MaxStreams int
	// PrepareNotifications and PrepareActivities turn a batch of rows,
	// oldest first, into what streams send (one value per row, in order):
	// the server converts them to its wire messages there, once per batch
	// for all of a user's streams. Nil sends the rows themselves.
	PrepareNotifications func(ctx context.Context, rows []*store.Notification) ([]any, error)
	PrepareActivities    func(ctx context.Context, rows []*store.Activity) ([]any, error)

	shutdown     chan struct{}
	shutdownOnce sync.Once
	publishing   sync.WaitGroup

	// Failed wake-ups are logged at most once per publishWarnEvery.
	warnMu   sync.Mutex
	warnedAt time.Time
	unwarned int

	// streams holds the open streams and their hubs (stream.go).
	streams streamRegistry
}

// NewService returns a Service.
func NewService(db *store.DB, broker pubsub.Broker, log *slog.Logger) *Service {
	return &Service{
		db: db, broker: broker, log: log, Poll: 15 * time.Second, shutdown: make(chan struct{}),
		MaxStreamsPerUser: DefaultMaxStreamsPerUser, MaxStreams: DefaultMaxStreams,
		streams: streamRegistry{hubs: make(map[hubKey]*hub), perUser: make(map[string]int)},
	}
}

// Wait waits for wake-ups still being published (at most publishTimeout),
// so the broker can be closed after it.
func (s *Service) Wait() { s.publishing.Wait() }

// Shutdown ends every open stream with ErrShuttingDown, which tells the
// client to reconnect (to another instance) and resume; the server calls
// it before it drains requests.
func (s *Service) Shutdown() {
	s.shutdownOnce.Do(func() { close(s.shutdown) })
}

// Channels of the broker.
func notificationsChannel(userID string) string { return "notifications:" + userID }
func activityChannel(userID string) string      { return "activity:" + userID }

// SessionChannel is where the end of a session is announced, so that its
// open streams close at once.
func SessionChannel(sessionID string) string { return "session:" + sessionID }

// UserChannel is where the suspension of a user is announced.
func UserChannel(userID string) string { return "user:" + userID }

// Events collects the wake-ups an action owes, to send after its
// transaction commits. The zero value is ready to use.
type Events struct{ channels []string }

func (e *Events) wake(channel string) {
	for _, c := range e.channels {
		if c == channel {
			return
		}
	}
	e.channels = append(e.channels, channel)
}

// Notify records a notification inside tx. Nothing is recorded when the
// actor is the recipient, or when a notification with the same dedupe key
// exists (liking again, following again).
//
// It locks the recipient's event head until tx ends (store.NextEventID),
// which keeps each user's event ids in commit order. So that no two
// transactions wait for each other's heads, call Notify and Record last in
// the transaction, after every other lock it takes: notifications first,
// several recipients in ascending id order, then Record.
func (s *Service) Notify(ctx context.Context, tx bun.IDB, ev *Events, n *store.Notification) error {
	if n.ActorID == n.UserID {
		return nil
	}
	created, err := s.db.CreateNotification(ctx, tx, n)
	if err != nil {
		return err
	}
	if created {
		ev.wake(notificationsChannel(n.UserID))
	}
	return nil
}

// Record records an activity-log entry inside tx, locking the actor's
// activity head until tx ends: call it last (see Notify).
func (s *Service) Record(ctx context.Context, tx bun.IDB, ev *Events, a *store.Activity) error {
	if err := s.db.CreateActivity(ctx, tx, a); err != nil {
		return err
	}
	ev.wake(activityChannel(a.UserID))
	return nil
}

// Publish sends the wake-ups of a committed action. A broker failure is
// logged, not returned: the rows are committed, and streams find them on
// their next read.
func (s *Service) Publish(ctx context.Context, ev *Events) {
	for _, c := range ev.channels {
		s.Announce(ctx, c)
	}
}

// publishTimeout bounds one wake-up: a broker that is away must not hold
// anything up (streams catch up from the store on their next poll).
const publishTimeout = time.Second

// Announce publishes an empty message on channel (see SessionChannel), in
// the background: the action that caused it never waits on the broker
// (with Redis away, its client would retry for seconds).
func (s *Service) Announce(ctx context.Context, channel string) {
	s.publishing.Add(1)
	go func() {
		defer s.publishing.Done()
		pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), publishTimeout)
		defer cancel()
		if err := s.broker.Publish(pctx, channel, nil); err != nil {
			s.warnPublish(ctx, channel, err)
		}
	}()
}

// publishWarnEvery spaces the warnings of failed wake-ups: while Redis is
// away every event fails to publish, and a line each flooded the log
// (5,158 lines in a 6 s outage).
const publishWarnEvery = 10 * time.Second

// warnPublish logs a failed wake-up, or only counts it when one was logged
// less than publishWarnEvery ago; the next line says how many it left out.
func (s *Service) warnPublish(ctx context.Context, channel string, err error) {
	s.warnMu.Lock()
	now := time.Now()
	if now.Sub(s.warnedAt) < publishWarnEvery {
		s.unwarned++
		s.warnMu.Unlock()
		return
	}
	left := s.unwarned
	s.warnedAt, s.unwarned = now, 0
	s.warnMu.Unlock()
	s.log.WarnContext(ctx, "publish wake-up", "channel", channel, "err", err, "not_logged_since_last", left)
}

// Str returns a pointer to s, or nil for "": the optional id columns.
func Str(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// --- lists ---

// List kinds, for page tokens.
const (
	kindNotifications = store.NotificationEvents
	kindActivity      = store.ActivityEvents
)

// NotificationPage is a page of notifications.
type NotificationPage struct {
	Notifications []*store.Notification
	Unread        int
	NextPageToken string
}

// ListNotifications lists a user's notifications, newest first, with the
// number of unread ones.
func (s *Service) ListNotifications(ctx context.Context, userID string, size int32, token string, unreadOnly bool) (*NotificationPage, error) {
	n, before, err := decode(kindNotifications, size, token)
	if err != nil {
		return nil, err
	}
	rows, err := s.db.ListNotifications(ctx, s.db, store.EventFilter{UserID: userID, BeforeID: before, UnreadOnly: unreadOnly, Limit: n + 1})
	if err != nil {
		return nil, fmt.Errorf("list notifications: %w", err)
	}
	rows, next := nextPage(kindNotifications, rows, n, func(r *store.Notification) string { return r.ID })
	unread, err := s.db.CountUnread(ctx, s.db, userID)
	if err != nil {
		return nil, fmt.Errorf("list notifications: %w", err)
	}
	return &NotificationPage{Notifications: rows, Unread: unread, NextPageToken: next}, nil
}

// MarkRead marks some (ids) or all (all) of a user's notifications read and
// returns how many unread ones are left.
func (s *Service) MarkRead(ctx context.Context, userID string, ids []string, all bool) (int, error) {
	if all {
		ids = nil
	} else if len(ids) == 0 {
		return 0, flock.FieldErrorf("notification_ids", "name the notifications to mark read, or set all")
	}
	if err := s.db.MarkNotificationsRead(ctx, s.db, userID, ids); err != nil {
		return 0, fmt.Errorf("mark read: %w", err)
	}
	return s.db.CountUnread(ctx, s.db, userID)
}

// ActivityPage is a page of activity-log entries.
type ActivityPage struct {
	Activities    []*store.Activity
	NextPageToken string
}

// ListActivity lists a user's actions, newest first.
func (s *Service) ListActivity(ctx context.Context, userID string, size int32, token string) (*ActivityPage, error) {
	n, before, err := decode(kindActivity, size, token)
	if err != nil {
		return nil, err
	}
	rows, err := s.db.ListActivities(ctx, s.db, store.EventFilter{UserID: userID, BeforeID: before, Limit: n + 1})
	if err != nil {
		return nil, fmt.Errorf("list activity: %w", err)
	}
	rows, next := nextPage(kindActivity, rows, n, func(r *store.Activity) string { return r.ID })
	return &ActivityPage{Activities: rows, NextPageToken: next}, nil
}
