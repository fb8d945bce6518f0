package store

import (
	"context"
	"fmt"
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

// CreateNotification inserts n unless a notification with the same
// recipient and dedupe key exists; it reports whether it inserted.
func (db *DB) CreateNotification(ctx context.Context, tx bun.IDB, n *Notification) (bool, error) {
	if n.ID == "" {
		n.ID = NewID()
	}
	n.CreatedAt = db.Now()
	res, err := tx.NewInsert().Model(n).On("CONFLICT DO NOTHING").Exec(ctx)
	if err != nil {
		return false, fmt.Errorf("create notification: %w", translate(err))
	}
	rows, _ := res.RowsAffected()
	return rows == 1, nil
}

// CreateActivity inserts an activity-log entry.
func (db *DB) CreateActivity(ctx context.Context, tx bun.IDB, a *Activity) error {
	if a.ID == "" {
		a.ID = NewID()
	}
	a.CreatedAt = db.Now()
	if _, err := tx.NewInsert().Model(a).Exec(ctx); err != nil {
		return fmt.Errorf("create activity: %w", translate(err))
	}
	return nil
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
// hides it too. One query.
func (db *DB) ListNotifications(ctx context.Context, tx bun.IDB, f EventFilter) ([]*Notification, error) {
	var out []*Notification
	q := tx.NewSelect().Model(&out).
		Where("n.user_id = ?", f.UserID).
		Where("EXISTS (SELECT 1 FROM users AS na WHERE na.id = n.actor_id AND na.suspended_at IS NULL)").
		Where(noBlockBetween, bun.Ident("n.user_id"), bun.Ident("n.actor_id")).
		Limit(int64(f.Limit))
	q = keyset(q, "n.id", f.BeforeID, f.AfterID)
	if f.UnreadOnly {
		q = q.Where("n.read_at IS NULL")
	}
	if err := q.Scan(ctx); err != nil {
		return nil, fmt.Errorf("list notifications: %w", translate(err))
	}
	return out, nil
}

// CountUnread counts the unread notifications a user would see in a list.
func (db *DB) CountUnread(ctx context.Context, tx bun.IDB, userID string) (int, error) {
	n, err := tx.NewSelect().Model((*Notification)(nil)).
		Where("n.user_id = ? AND n.read_at IS NULL", userID).
		Where("EXISTS (SELECT 1 FROM users AS na WHERE na.id = n.actor_id AND na.suspended_at IS NULL)").
		Where(noBlockBetween, bun.Ident("n.user_id"), bun.Ident("n.actor_id")).
		Count(ctx)
	if err != nil {
		return 0, fmt.Errorf("count unread: %w", translate(err))
	}
	return int(n), nil
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

// ListActivities returns activity-log entries of f.UserID. One query.
func (db *DB) ListActivities(ctx context.Context, tx bun.IDB, f EventFilter) ([]*Activity, error) {
	var out []*Activity
	q := tx.NewSelect().Model(&out).Where("a.user_id = ?", f.UserID).Limit(int64(f.Limit))
	q = keyset(q, "a.id", f.BeforeID, f.AfterID)
	if err := q.Scan(ctx); err != nil {
		return nil, fmt.Errorf("list activities: %w", translate(err))
	}
	return out, nil
}

// keyset orders by col: newest first below before, or oldest first above after.
func keyset(q *bun.SelectQuery, col, before, after string) *bun.SelectQuery {
	switch {
	case after != "":
		return q.Where("? > ?", bun.Safe(col), after).OrderExpr("? ASC", bun.Safe(col))
	case before != "":
		return q.Where("? < ?", bun.Safe(col), before).OrderExpr("? DESC", bun.Safe(col))
	}
	return q.OrderExpr("? DESC", bun.Safe(col))
}
