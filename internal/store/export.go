package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/uptrace/bun"
)

// The reads of an account export (internal/export). Each reads one page of
// one kind of the user's rows, oldest first (or in the order of a key, where
// the data has no time), continuing after the last row of the previous
// page: a keyset on an index, so that a page costs the same at the end of
// a large account as at its start, and the caller holds one page at a time.

// ReadSnapshot runs fn in a read-only transaction that sees the database as
// it was when the transaction began: REPEATABLE READ on Postgres; on
// SQLite a deferred (not immediate) transaction, which in WAL mode reads
// one snapshot from its first read on and never blocks writers. Nothing fn
// does is committed. It holds one connection of the pool until fn returns.
func (db *DB) ReadSnapshot(ctx context.Context, fn func(ctx context.Context, tx bun.Tx) error) error {
	opts := &sql.TxOptions{ReadOnly: true}
	if db.Engine == Postgres {
		opts.Isolation = sql.LevelRepeatableRead
	}
	tx, err := db.BeginTx(ctx, opts)
	if err != nil {
		return fmt.Errorf("read snapshot: %w", translate(err))
	}
	defer tx.Rollback()
	return fn(ctx, tx)
}

// ExportPage continues a list of one user's rows.
type ExportPage struct {
	UserID string
	// AfterID is the key of the last row of the previous page; "" starts.
	AfterID string
	// AfterAt is the time of that row, for lists ordered by time.
	AfterAt time.Time
	Limit   int64
}

// ExportPosts returns a page of the posts userID wrote, oldest first, with
// their hashtags and whether the author likes each. The page is cut in a
// subquery before the hashtags and likes are looked up, so that a planner
// misled by stale statistics (a bulk load before autovacuum) cannot look
// them up for every later post and sort afterwards: that made an export of
// 20,000 posts take 16 s instead of one on Postgres.
func (db *DB) ExportPosts(ctx context.Context, tx bun.IDB, pg ExportPage) ([]*Post, error) {
	var posts []*Post
	page := tx.NewSelect().Model((*Post)(nil)).
		Where("p.author_id = ? AND p.id > ?", pg.UserID, pg.AfterID).
		OrderExpr("p.id ASC").Limit(pg.Limit)
	err := tx.NewSelect().Model(&posts).ModelTableExpr("(?) AS p", page).ColumnExpr("p.*").
		ColumnExpr("EXISTS (SELECT 1 FROM likes AS lk WHERE lk.post_id = p.id AND lk.user_id = ?) AS liked_by_me", pg.UserID).
		ColumnExpr(db.tagListExpr()).
		OrderExpr("p.id ASC").Scan(ctx)
	if err != nil {
		return nil, fmt.Errorf("export posts: %w", translate(err))
	}
	for _, p := range posts {
		p.splitTags()
	}
	return posts, nil
}

// ExportComments returns a page of the comments userID wrote, on anyone's
// posts, oldest first.
func (db *DB) ExportComments(ctx context.Context, tx bun.IDB, pg ExportPage) ([]*Comment, error) {
	var out []*Comment
	err := tx.NewSelect().Model(&out).Where("c.author_id = ? AND c.id > ?", pg.UserID, pg.AfterID).
		OrderExpr("c.id ASC").Limit(pg.Limit).Scan(ctx)
	if err != nil {
		return nil, fmt.Errorf("export comments: %w", translate(err))
	}
	return out, nil
}

// ExportLikes returns a page of the likes userID gave, in post id order
// (AfterID is a post id).
func (db *DB) ExportLikes(ctx context.Context, tx bun.IDB, pg ExportPage) ([]*Like, error) {
	var out []*Like
	err := tx.NewSelect().Model(&out).Where("l.user_id = ? AND l.post_id > ?", pg.UserID, pg.AfterID).
		OrderExpr("l.post_id ASC").Limit(pg.Limit).Scan(ctx)
	if err != nil {
		return nil, fmt.Errorf("export likes: %w", translate(err))
	}
	return out, nil
}

// Relation is the other user of a follow or a block, as a summary (no
// private field is read), with the time of the relation.
type Relation struct {
	UserID   string    `bun:"user_id"`
	Username string    `bun:"username"`
	FullName string    `bun:"full_name"`
	At       time.Time `bun:"rel_at"`
}

// Relation lists of ExportRelations.
const (
	RelFollowing = "following"
	RelFollowers = "followers"
	RelBlocks    = "blocks"
)

// ExportRelations returns a page of the users userID follows
// (RelFollowing), who follow userID (RelFollowers) or whom userID blocks
// (RelBlocks), oldest relation first (AfterAt and AfterID are the time and
// the other user of the last one). Every relation is listed, with
// suspended users too: the counts on the profile count them.
func (db *DB) ExportRelations(ctx context.Context, tx bun.IDB, list string, pg ExportPage) ([]Relation, error) {
	var table, ownCol, otherCol string
	switch list {
	case RelFollowing:
		table, ownCol, otherCol = "follows", "follower_id", "followee_id"
	case RelFollowers:
		table, ownCol, otherCol = "follows", "followee_id", "follower_id"
	case RelBlocks:
		table, ownCol, otherCol = "blocks", "blocker_id", "blocked_id"
	default:
		return nil, fmt.Errorf("export relations: unknown list %q", list)
	}
	var out []Relation
	q := tx.NewSelect().
		ColumnExpr("u.id AS user_id, u.username, u.full_name, r.created_at AS rel_at").
		TableExpr("? AS r", bun.Ident(table)).
		Join("JOIN users AS u ON u.id = r.?", bun.Ident(otherCol)).
		Where("r.? = ?", bun.Ident(ownCol), pg.UserID).
		OrderExpr("r.created_at ASC, r.? ASC", bun.Ident(otherCol)).Limit(pg.Limit)
	if pg.AfterID != "" {
		q = q.Where("(r.created_at > ? OR (r.created_at = ? AND r.? > ?))", pg.AfterAt, pg.AfterAt, bun.Ident(otherCol), pg.AfterID)
	}
	if err := q.Scan(ctx, &out); err != nil {
		return nil, fmt.Errorf("export %s: %w", list, translate(err))
	}
	return out, nil
}

// Membership is a group with one user's membership, invitation or request.
type Membership struct {
	Group  *Group
	Member *GroupMember
}

// ExportMemberships returns a page of userID's memberships in one state
// (MemberActive, MemberInvited or MemberRequested) with their groups,
// oldest first (AfterAt and AfterID are the time and group of the last).
func (db *DB) ExportMemberships(ctx context.Context, tx bun.IDB, state string, pg ExportPage) ([]Membership, error) {
	var rows []struct {
		Group   `bun:",extend"`
		MRole   string    `bun:"m_role"`
		MState  string    `bun:"m_state"`
		MAt     time.Time `bun:"m_at"`
		MUserID string    `bun:"m_user_id"`
	}
	q := tx.NewSelect().Model((*Group)(nil)).ColumnExpr("g.*").
		ColumnExpr("gm.role AS m_role, gm.state AS m_state, gm.created_at AS m_at, gm.user_id AS m_user_id").
		Join("JOIN group_members AS gm ON gm.group_id = g.id").
		Where("gm.user_id = ? AND gm.state = ?", pg.UserID, state).
		OrderExpr("gm.created_at ASC, gm.group_id ASC").Limit(pg.Limit)
	if pg.AfterID != "" {
		q = q.Where("(gm.created_at > ? OR (gm.created_at = ? AND gm.group_id > ?))", pg.AfterAt, pg.AfterAt, pg.AfterID)
	}
	if err := q.Scan(ctx, &rows); err != nil {
		return nil, fmt.Errorf("export memberships: %w", translate(err))
	}
	out := make([]Membership, len(rows))
	for i := range rows {
		g := rows[i].Group
		out[i] = Membership{Group: &g, Member: &GroupMember{
			GroupID: g.ID, UserID: rows[i].MUserID, Role: rows[i].MRole, State: rows[i].MState, CreatedAt: rows[i].MAt,
		}}
	}
	return out, nil
}

// ExportActivities returns a page of userID's activity log, oldest first.
func (db *DB) ExportActivities(ctx context.Context, tx bun.IDB, pg ExportPage) ([]*Activity, error) {
	var out []*Activity
	err := tx.NewSelect().Model(&out).Where("a.user_id = ? AND a.id > ?", pg.UserID, pg.AfterID).
		OrderExpr("a.id ASC").Limit(pg.Limit).Scan(ctx)
	if err != nil {
		return nil, fmt.Errorf("export activities: %w", translate(err))
	}
	return out, nil
}

// ExportVideos returns a page of the videos userID uploaded, oldest first.
func (db *DB) ExportVideos(ctx context.Context, tx bun.IDB, pg ExportPage) ([]*Video, error) {
	var out []*Video
	err := tx.NewSelect().Model(&out).Where("v.owner_id = ? AND v.id > ?", pg.UserID, pg.AfterID).
		OrderExpr("v.id ASC").Limit(pg.Limit).Scan(ctx)
	if err != nil {
		return nil, fmt.Errorf("export videos: %w", translate(err))
	}
	return out, nil
}
