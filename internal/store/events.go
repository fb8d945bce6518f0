package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/uptrace/bun"
)

// Notification is a notification row.
type Notification struct {
	bun.BaseModel `bun:"table:notifications,alias:n"`

	ID        string     `bun:"id,pk"`
	UserID    string     `bun:"user_id,notnull"`
	Type      string     `bun:"type,notnull"`
	ActorID   string     `bun:"actor_id,notnull"`
	PostID    *string    `bun:"post_id"`
	CommentID *string    `bun:"comment_id"`
	GroupID   *string    `bun:"group_id"`
	DedupeKey *string    `bun:"dedupe_key"`
	ReadAt    *time.Time `bun:"read_at"`
	CreatedAt time.Time  `bun:"created_at,notnull"`
}

// Activity is an activity-log row.
type Activity struct {
	bun.BaseModel `bun:"table:activities,alias:a"`

	ID           string    `bun:"id,pk"`
	UserID       string    `bun:"user_id,notnull"`
	Type         string    `bun:"type,notnull"`
	TargetUserID *string   `bun:"target_user_id"`
	PostID       *string   `bun:"post_id"`
	CommentID    *string   `bun:"comment_id"`
	GroupID      *string   `bun:"group_id"`
	CreatedAt    time.Time `bun:"created_at,notnull"`
}

// Kinds of events, each with its own head per user (see NextEventID).
const (
	NotificationEvents = "notifications"
	ActivityEvents     = "activity"
)

// CreateNotification inserts n unless a notification with the same
// recipient and dedupe key exists; it reports whether it inserted. Its id
// comes from NextEventID (an id set by the caller is replaced), so the
// recipient's notifications have ids in commit order; call it last in tx,
// after any other lock the transaction takes.
func (db *DB) CreateNotification(ctx context.Context, tx bun.IDB, n *Notification) (bool, error) {
	id, err := db.NextEventID(ctx, tx, n.UserID, NotificationEvents)
	if err != nil {
		return false, fmt.Errorf("create notification: %w", err)
	}
	n.ID = id
	n.CreatedAt = db.Now()
	// Prepared (see queryPrepared): every like, comment and follow notifies.
	res, err := db.execPrepared(ctx, tx, `INSERT INTO notifications
(id, user_id, type, actor_id, post_id, comment_id, group_id, dedupe_key, read_at, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING`,
		n.ID, n.UserID, n.Type, n.ActorID, n.PostID, n.CommentID, n.GroupID, n.DedupeKey, db.nullTimeArg(n.ReadAt), db.timeArg(n.CreatedAt))
	if err != nil {
		return false, fmt.Errorf("create notification: %w", translate(err))
	}
	rows, _ := res.RowsAffected()
	return rows == 1, nil
}

// CreateActivity inserts an activity-log entry. Its id comes from
// NextEventID, as for CreateNotification.
func (db *DB) CreateActivity(ctx context.Context, tx bun.IDB, a *Activity) error {
	id, err := db.NextEventID(ctx, tx, a.UserID, ActivityEvents)
	if err != nil {
		return fmt.Errorf("create activity: %w", err)
	}
	a.ID = id
	a.CreatedAt = db.Now()
	// Prepared (see queryPrepared), as every action records one.
	if _, err := db.execPrepared(ctx, tx, `INSERT INTO activities
(id, user_id, type, target_user_id, post_id, comment_id, group_id, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		a.ID, a.UserID, a.Type, a.TargetUserID, a.PostID, a.CommentID, a.GroupID, db.timeArg(a.CreatedAt)); err != nil {
		return fmt.Errorf("create activity: %w", translate(err))
	}
	return nil
}

// NextEventID returns the id of a new event of userID of the given kind
// (NotificationEvents, ActivityEvents), made inside tx: an id above every
// id given to such an event before, by any instance whatever its clock.
//
// It locks the user's head row (event_heads) until tx ends: a concurrent
// transaction recording an event for the same user and kind waits for this
// one to commit or roll back, then takes a larger id. Ids of one user's
// events therefore increase in commit order, and a reader that sees id X
// committed has every smaller id of that user committed too: a stream that
// moves its cursor to the last id it delivered skips nothing.
//
// To rule out deadlocks, a transaction takes heads last (after any other
// row it locks, see locks.go) and, when it takes several, notifications
// before activity and the notifications' recipients in one order (see
// notify.Service.Notify). The lock is held only from this call to the
// commit.
func (db *DB) NextEventID(ctx context.Context, tx bun.IDB, userID, kind string) (string, error) {
	// Most often the id made now is above the head: one statement sets it
	// and locks the row. On Postgres the row stays locked even when the
	// WHERE below is false (the head is ahead), as documented for
	// ON CONFLICT DO UPDATE; on SQLite the transaction holds the database's
	// write lock from BEGIN.
	// Prepared (see queryPrepared): every like, comment, follow and post
	// records one or two events.
	candidate := NewID()
	if db.Engine == SQLite {
		// There the same in two statements without RETURNING, which would
		// make SQLite keep a statement journal for the upsert (see
		// CreatePost): a tenth of a like's CPU. The head is moved up when
		// it is below the candidate, or else made when there is none.
		for _, query := range []string{nextEventIDMoveSQL, nextEventIDMakeSQL} {
			res, err := db.execPrepared(ctx, tx, query, userID, kind, candidate)
			if err != nil {
				return "", fmt.Errorf("next event id: %w", translate(err))
			}
			if n, err := res.RowsAffected(); err != nil {
				return "", fmt.Errorf("next event id: %w", translate(err))
			} else if n == 1 {
				return candidate, nil
			}
		}
	} else {
		var id string
		rows, err := db.queryPrepared(ctx, tx, nextEventIDSQL, userID, kind, candidate)
		if err == nil {
			err = scanOne(rows, &id)
		}
		switch {
		case err == nil:
			return id, nil
		case !errors.Is(err, sql.ErrNoRows):
			return "", fmt.Errorf("next event id: %w", translate(err))
		}
	}
	// The head is ahead of this instance's clock (another instance's clock
	// is ahead, or an event committed while this one waited for the lock):
	// go just above it.
	var head string
	if err := tx.QueryRowContext(ctx, "SELECT last_id FROM event_heads WHERE user_id = ? AND kind = ?", userID, kind).Scan(&head); err != nil {
		return "", fmt.Errorf("next event id: read head: %w", translate(err))
	}
	id, err := IDAfter(head)
	if err != nil {
		return "", fmt.Errorf("next event id: %w", err)
	}
	if _, err := tx.ExecContext(ctx, "UPDATE event_heads SET last_id = ? WHERE user_id = ? AND kind = ?", id, userID, kind); err != nil {
		return "", fmt.Errorf("next event id: move head: %w", translate(err))
	}
	return id, nil
}

const nextEventIDSQL = `INSERT INTO event_heads (user_id, kind, last_id) VALUES ($1, $2, $3)
ON CONFLICT (user_id, kind) DO UPDATE SET last_id = excluded.last_id
WHERE excluded.last_id > event_heads.last_id
RETURNING last_id`

// NextEventID's statements on SQLite.
const (
	nextEventIDMoveSQL = `UPDATE event_heads SET last_id = $3 WHERE user_id = $1 AND kind = $2 AND last_id < $3`
	nextEventIDMakeSQL = `INSERT INTO event_heads (user_id, kind, last_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`
)

// EventHead returns the id of the last event of userID of the given kind
// recorded by a committed transaction, or the smallest id when there is
// none: every event committed later has a larger id. A stream that starts
// "from now on" starts there.
func (db *DB) EventHead(ctx context.Context, tx bun.IDB, userID, kind string) (string, error) {
	var head string
	err := tx.QueryRowContext(ctx, "SELECT last_id FROM event_heads WHERE user_id = ? AND kind = ?", userID, kind).Scan(&head)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return MinID, nil
	case err != nil:
		return "", fmt.Errorf("event head: %w", translate(err))
	}
	return head, nil
}

// EventFilter selects a user's notifications or activity entries.
type EventFilter struct {
	UserID string
	// BeforeID pages backwards (lists, newest first); AfterID forwards
	// (streams, oldest first). At most one is set.
	BeforeID, AfterID string
	UnreadOnly        bool
	Limit             int
}

// ListNotifications returns notifications of f.UserID, without those whose
// actor is suspended or blocked either way with the recipient: that is
// checked here, when they are read, so a block made after a notification
// hides it too. One prepared statement per shape (see queryPrepared):
// every list of notifications and every stream's catch-up runs it, and
// Postgres planned bun's text anew each time; the checks about each
// notification's actor are lookups per row (perRow).
func (db *DB) ListNotifications(ctx context.Context, tx bun.IDB, f EventFilter) ([]*Notification, error) {
	var p params
	user := p.add(f.UserID)
	cond, order, shape := f.keyset(&p, "n.id")
	shape = "list notifications" + shape
	if f.UnreadOnly {
		cond, shape = cond+" AND n.read_at IS NULL", shape+" unread"
	}
	lim, args := db.limitParam(len(p)+1, f.Limit, p...)
	query := db.sqlText(shape+" "+lim, func() string {
		return "SELECT " + db.columns((*Notification)(nil), "n") + " FROM notifications AS n WHERE n.user_id = " + user + cond +
			" AND " + userShown("n.actor_id", user, db.perRow()) + " ORDER BY n.id " + order + " LIMIT " + lim
	})
	var out []*Notification
	rows, err := db.queryPrepared(ctx, tx, query, args...)
	if err == nil {
		err = db.ScanRows(ctx, rows, &out)
	}
	if err != nil {
		return nil, fmt.Errorf("list notifications: %w", translate(err))
	}
	return out, nil
}

// userShown is the condition under which the reader (the parameter
// reader) sees what the user in column did (a notification's actor, a
// comment's author): that user is not suspended and no block stands
// between the two, each checked by a lookup per row (perRow).
func userShown(column, reader, perRow string) string {
	return "EXISTS (SELECT 1 FROM users AS su WHERE su.id = " + column + " AND su.suspended_at IS NULL" + perRow + ") AND " +
		noBlockRule(reader, column, perRow)
}

// MaxUnreadCount bounds CountUnread: a user with more unread notifications
// is told MaxUnreadCount ("999+" to a client). Counting every one made the
// count's cost follow the user's unread backlog, and every list of
// notifications and every mark-read counts them: for the most followed
// account of the medium profile, 47,254 unread follows took 88 ms of
// Postgres (and two parallel workers) per count (docs/performance.md,
// item 47).
const MaxUnreadCount = 1000

// CountUnread counts the unread notifications a user would see in a list,
// at most MaxUnreadCount. One prepared statement (see queryPrepared); the
// checks about each notification's actor are lookups per row (perRow), so
// its cost is at most MaxUnreadCount rows whatever the backlog.
func (db *DB) CountUnread(ctx context.Context, tx bun.IDB, userID string) (int, error) {
	query := db.sqlText("count unread", func() string {
		return "SELECT count(*) FROM (SELECT 1 FROM notifications AS n WHERE n.user_id = $1 AND n.read_at IS NULL AND " +
			userShown("n.actor_id", "$1", db.perRow()) + " LIMIT " + strconv.Itoa(MaxUnreadCount) + ") AS u"
	})
	var n int
	rows, err := db.queryPrepared(ctx, tx, query, userID)
	if err == nil {
		err = db.ScanRows(ctx, rows, &n)
	}
	if err != nil {
		return 0, fmt.Errorf("count unread: %w", translate(err))
	}
	return n, nil
}

// MarkNotificationsRead marks the given notifications of userID read, or
// all of them when ids is nil.
func (db *DB) MarkNotificationsRead(ctx context.Context, tx bun.IDB, userID string, ids []string) error {
	q := tx.NewUpdate().Model((*Notification)(nil)).Set("read_at = ?", db.Now()).
		Where("user_id = ? AND read_at IS NULL", userID)
	if ids != nil {
		if len(ids) == 0 {
			return nil
		}
		q = q.Where("id IN (?)", bun.List(ids))
	}
	if _, err := q.Exec(ctx); err != nil {
		return fmt.Errorf("mark notifications read: %w", translate(err))
	}
	return nil
}

// keyset is the page bound of f on the event id column col, for a prepared
// statement: the condition (its value added to p), the order (newest first
// below BeforeID, oldest first above AfterID, as a stream catches up) and
// the suffix naming the statement's shape for sqlText.
func (f EventFilter) keyset(p *params, col string) (cond, order, shape string) {
	switch {
	case f.AfterID != "":
		return " AND " + col + " > " + p.add(f.AfterID), "ASC", " after"
	case f.BeforeID != "":
		return " AND " + col + " < " + p.add(f.BeforeID), "DESC", " before"
	}
	return "", "DESC", ""
}

// ListActivities returns activity-log entries of f.UserID: one prepared
// statement per shape (see queryPrepared), read through
// activities_user_id_idx. Written by bun with its values, each page was
// new text that Postgres planned anew (docs/performance.md, item 50).
func (db *DB) ListActivities(ctx context.Context, tx bun.IDB, f EventFilter) ([]*Activity, error) {
	var p params
	user := p.add(f.UserID)
	cond, order, shape := f.keyset(&p, "a.id")
	shape = "list activities" + shape
	lim, args := db.limitParam(len(p)+1, f.Limit, p...)
	query := db.sqlText(shape+" "+lim, func() string {
		return "SELECT " + db.columns((*Activity)(nil), "a") + " FROM activities AS a WHERE a.user_id = " + user + cond +
			" ORDER BY a.id " + order + " LIMIT " + lim
	})
	var out []*Activity
	rows, err := db.queryPrepared(ctx, tx, query, args...)
	if err == nil {
		err = db.ScanRows(ctx, rows, &out)
	}
	if err != nil {
		return nil, fmt.Errorf("list activities: %w", translate(err))
	}
	return out, nil
}
