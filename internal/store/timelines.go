package store

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/uptrace/bun"
)

// Materialized home timelines: the SQL of internal/timeline (the rules and
// the reasons are there). The table timeline_entries holds, for each user
// with a timeline, the ids of their feed's newest posts; reads filter them
// by the feed's visibility rule (ListPosts with Candidates), so an entry
// can be stale but never shows what the reader may not see.
//
// Entries and their timeline. timeline_entries has no foreign key to
// timelines: Postgres checked one per inserted row, each taking FOR KEY
// SHARE on the same timelines row, which was half of a fill (800 rows).
// What the key did is done once per statement instead:
//   - every writer of entries holds the timelines rows it writes to: a
//     fan-out or a backfill (FOR KEY SHARE) in the statement that finds
//     them, a fill by locking its timelines to mark them ready after its
//     entries (and removing those of a timeline found gone). A deletion
//     of a timeline then waits
//     for the writer, and a writer after it no longer finds the timeline;
//   - every deleter of a timeline (DropTimelines, DeleteAccount) deletes
//     the row first and then its entries, in the same transaction;
//   - StartTimeline removes whatever entries a user has before their new
//     timeline is filled (none, unless a timeline row was deleted by hand).
// Timelines rows come after the users in the global order of locks.go.
//
// Entries and their posts. timeline_entries has no foreign key to posts
// either, and no index on post_id: every entry landed at a random place of
// that index and paid a check per row, which made a fill of 200 entries
// most of a first feed page's CPU and the fan-out half of a post's (both
// engines). A deleted post's entries are removed from the timelines of its
// readers by primary key (DeletePost, DeleteGroup and DeleteAccount, with
// deleteGroupEntries and deleteAuthorEntries). An entry that outlives its
// post all the same (a fill or backfill that read the post just before
// its deletion, on Postgres; a reader who has left the post's group) is
// only an id: a read finds no post for it and skips it, and the trim drops
// it once newer entries push it past the timeline's size.

// Timeline states.
const (
	TimelineBuilding = "building"
	TimelineReady    = "ready"
)

// Timeline is a user's timeline row.
type Timeline struct {
	bun.BaseModel `bun:"table:timelines,alias:t"`

	UserID string `bun:"user_id,pk"`
	State  string `bun:"state,notnull"`
	// FloorID: the timeline holds every feed post with an id >= FloorID;
	// empty when it holds all of them.
	FloorID string    `bun:"floor_id,notnull"`
	ReadAt  time.Time `bun:"read_at,notnull"`
	// FollowsBig is whether the user follows a big author, whose posts a
	// read merges (TimelineHead sets it).
	FollowsBig bool `bun:"-"`
}

// TimelineEntry is one post id in a user's timeline.
type TimelineEntry struct {
	bun.BaseModel `bun:"table:timeline_entries,alias:te"`

	UserID string `bun:"user_id,pk"`
	PostID string `bun:"post_id,pk"`
}

// TimelinePending is a post whose fan-out has not run yet.
type TimelinePending struct {
	bun.BaseModel `bun:"table:timeline_pending,alias:tp"`

	PostID    string    `bun:"post_id,pk"`
	CreatedAt time.Time `bun:"created_at,notnull"`
}

// TimelineHead returns userID's timeline (nil when there is none), the ids
// of up to limit of its entries below beforeID ("" for the newest), newest
// first, and the ids of every post below beforeID whose fan-out is
// pending, in one statement: one snapshot, in which each post is either
// pending or written to the timelines (FanOut does both at once).
func (db *DB) TimelineHead(ctx context.Context, tx bun.IDB, userID, beforeID string, limit int) (t *Timeline, entries, pending []string, err error) {
	if beforeID == "" {
		beforeID = maxID
	}
	var rows []struct {
		State   *string    `bun:"state"`
		FloorID *string    `bun:"floor_id"`
		ReadAt  *time.Time `bun:"read_at"`
		PostID  string     `bun:"post_id"`
		Pending bool       `bun:"pending"`
		Big     bool       `bun:"big"`
	}
	lim, args := db.limitParam(3, limit, userID, beforeID)
	query := db.sqlText("timeline head "+lim, func() string { return strings.Replace(timelineHeadSQL, "$3", lim, 1) })
	res, err := db.queryPrepared(ctx, tx, query, args...)
	if err == nil {
		err = db.ScanRows(ctx, res, &rows)
	}
	if err != nil {
		return nil, nil, nil, fmt.Errorf("timeline head: %w", translate(err))
	}
	entries = make([]string, 0, len(rows))
	for _, r := range rows {
		switch {
		case r.State != nil:
			t = &Timeline{UserID: userID, State: *r.State, FloorID: *r.FloorID, ReadAt: *r.ReadAt, FollowsBig: r.Big}
		case r.Pending:
			pending = append(pending, r.PostID)
		default:
			entries = append(entries, r.PostID)
		}
	}
	if t == nil {
		return nil, nil, nil, nil
	}
	return t, entries, pending, nil
}

// timelineHeadSQL is TimelineHead's statement (prepared: it runs for every
// feed page); $3, the limit, is replaced by limitParam's SQL.
const timelineHeadSQL = `SELECT t.state, t.floor_id, t.read_at, '' AS post_id, false AS pending,
  EXISTS (SELECT 1 FROM timeline_big_authors AS b JOIN follows AS bf ON bf.followee_id = b.user_id AND bf.follower_id = $1) AS big
  FROM timelines AS t WHERE t.user_id = $1
UNION ALL
SELECT NULL, NULL, NULL, e.post_id, false, false FROM (SELECT te.post_id FROM timeline_entries AS te
  WHERE te.user_id = $1 AND te.post_id < $2 ORDER BY te.post_id DESC LIMIT $3) AS e
UNION ALL
SELECT NULL, NULL, NULL, tp.post_id, true, false FROM timeline_pending AS tp WHERE tp.post_id < $2`

// maxID sorts after every id (ULIDs are upper-case letters and digits).
const maxID = "~"

// StartTimeline creates userID's timeline in the building state; nil
// when it already has one. The caller commits this before filling it
// (FillTimeline), so fan-outs running during the fill see it and write to
// it.
func (db *DB) StartTimeline(ctx context.Context, tx bun.IDB, userID string) (*Timeline, error) {
	t := &Timeline{UserID: userID, State: TimelineBuilding, ReadAt: db.Now()}
	res, err := tx.NewInsert().Model(t).On("CONFLICT DO NOTHING").Exec(ctx)
	if err != nil {
		return nil, fmt.Errorf("start timeline: %w", translate(err))
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return nil, nil
	}
	if _, err := tx.NewDelete().Model((*TimelineEntry)(nil)).Where("user_id = ?", userID).Exec(ctx); err != nil {
		return nil, fmt.Errorf("start timeline: %w", translate(err))
	}
	return t, nil
}

// feedIDs returns the ids of the newest limit posts of userID's home
// feed in [floor, before), newest first, before the visibility rule: their
// own posts, those of everyone they follow, those shared with their groups
// (a source each: an author or a group). It makes two reads, a threshold
// merge, so that its cost follows the page and not the sources times the
// page:
//
//  1. the newest k of every source (k = headsPerSource(limit)). The
//     limit-th newest of them, T, is at or below the feed's own limit-th
//     newest (they are some of its posts), so every post of the answer is
//     at or above T;
//  2. below its k, only a source whose k-th is above T can hold more posts
//     at or above T: its newest limit in [T, before) are read again.
//
// Reading every source's newest limit instead (what this replaced) read
// 24 posts from each of 50 followees and sorted the 1,200 for a page of
// 24, most of a first page's CPU; now about three a source and rarely a
// second round. Each source is read down its index (posts_author_id_idx,
// posts_group_id_idx), newest first, so no plan walks the history:
// joined plainly, both engines planned a walk down all posts by id,
// probing the follows for each, until enough matched (on the medium
// profile 236 ms for a page of 24 ids, for a user following 33 accounts).
func (db *DB) feedIDs(ctx context.Context, tx bun.IDB, userID, floor, before string, limit int) ([]string, error) {
	if limit <= 0 {
		return nil, nil
	}
	k := headsPerSource(limit)
	query := db.sqlText("feed heads "+strconv.Itoa(k), func() string { return db.feedHeadsSQL(k) })
	rows, err := db.queryPrepared(ctx, tx, query, userID, floor, before)
	if err != nil {
		return nil, fmt.Errorf("feed: %w", translate(err))
	}
	type source struct {
		group bool
		key   string
	}
	type head struct {
		n    int
		last string // the source's oldest id read
	}
	heads := map[source]*head{}
	var ids []string
	for rows.Next() {
		var src source
		var id string
		if err := rows.Scan(&src.group, &src.key, &id); err != nil {
			rows.Close()
			return nil, fmt.Errorf("feed: %w", translate(err))
		}
		h := heads[src]
		if h == nil {
			h = &head{}
			heads[src] = h
		}
		h.n++
		if h.last == "" || id < h.last {
			h.last = id
		}
		ids = append(ids, id)
	}
	if err := rows.Close(); err != nil {
		return nil, fmt.Errorf("feed: %w", translate(err))
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("feed: %w", translate(err))
	}
	ids = newestDistinct(ids, limit)
	threshold := floor
	if len(ids) == limit {
		threshold = ids[limit-1]
	}
	var authors, groups []string
	for src, h := range heads {
		if h.n < k || h.last <= threshold {
			continue // all of the source at or above the threshold was read
		}
		if src.group {
			groups = append(groups, src.key)
		} else {
			authors = append(authors, src.key)
		}
	}
	if len(authors)+len(groups) == 0 {
		return ids, nil
	}
	lim, args := db.limitParam(5, limit, db.idSetArg(authors), threshold, before, db.idSetArg(groups))
	query = db.sqlText("feed more "+lim, func() string { return db.feedMoreSQL(lim, limit) })
	var more []string
	rows, err = db.queryPrepared(ctx, tx, query, args...)
	if err == nil {
		err = db.ScanRows(ctx, rows, &more)
	}
	if err != nil {
		return nil, fmt.Errorf("feed: %w", translate(err))
	}
	return newestDistinct(append(ids, more...), limit), nil
}

// headsPerSource is how many posts feedIDs first reads from each source
// for limit: about what a source holds of a page when a few dozen share
// it (more read fewer second rounds, fewer read less): 3 for a page, 8
// for a fill of 200.
func headsPerSource(limit int) int {
	return min(limit, max(3, limit/25))
}

// newestDistinct sorts ids newest first, drops repeats (a followee's
// post in one of the reader's groups comes from both) and keeps limit.
func newestDistinct(ids []string, limit int) []string {
	slices.SortFunc(ids, func(a, b string) int { return strings.Compare(b, a) })
	ids = slices.Compact(ids)
	return ids[:min(len(ids), limit)]
}

// feedHeadsSQL selects, for user $1, the newest k posts of each source
// of their feed in [$2, $3), as (group, key, id): group is whether the
// source is a group, key its id. Postgres reads each source with
// LATERAL; SQLite, which has no LATERAL, is held to the sources-first
// order by CROSS JOIN and bounds each source by the id of its k-th newest
// post (one lower bound, so that it is the index range's).
func (db *DB) feedHeadsSQL(k int) string {
	n := strconv.Itoa(k)
	own := `SELECT false AS grp, $1 AS src, o.id AS id FROM (SELECT op.id FROM posts AS op
  WHERE op.author_id = $1 AND op.id >= $2 AND op.id < $3 ORDER BY op.id DESC LIMIT ` + n + `) AS o`
	if db.Engine == Postgres {
		return own + `
UNION ALL
SELECT false, f.followee_id, x.id FROM follows AS f CROSS JOIN LATERAL (SELECT sp.id FROM posts AS sp
  WHERE sp.author_id = f.followee_id AND sp.id >= $2 AND sp.id < $3 ORDER BY sp.id DESC LIMIT ` + n + `) AS x
  WHERE f.follower_id = $1
UNION ALL
SELECT true, gm.group_id, x.id FROM group_members AS gm CROSS JOIN LATERAL (SELECT sp.id FROM posts AS sp
  WHERE sp.group_id = gm.group_id AND sp.id >= $2 AND sp.id < $3 ORDER BY sp.id DESC LIMIT ` + n + `) AS x
  WHERE gm.user_id = $1 AND gm.state = 'active'`
	}
	return own + `
UNION ALL
SELECT false, f.followee_id, sp.id FROM follows AS f CROSS JOIN posts AS sp ON sp.author_id = f.followee_id
  WHERE f.follower_id = $1 AND sp.id < $3 AND sp.id >= COALESCE((SELECT lp.id FROM posts AS lp
    WHERE lp.author_id = f.followee_id AND lp.id >= $2 AND lp.id < $3 ORDER BY lp.id DESC LIMIT 1 OFFSET ` + strconv.Itoa(k-1) + `), $2)
UNION ALL
SELECT true, gm.group_id, sp.id FROM group_members AS gm CROSS JOIN posts AS sp ON sp.group_id = gm.group_id
  WHERE gm.user_id = $1 AND gm.state = 'active' AND sp.id < $3 AND sp.id >= COALESCE((SELECT lp.id FROM posts AS lp
    WHERE lp.group_id = gm.group_id AND lp.id >= $2 AND lp.id < $3 ORDER BY lp.id DESC LIMIT 1 OFFSET ` + strconv.Itoa(k-1) + `), $2)`
}

// feedMoreSQL selects the newest limit posts in [$2, $3) of each author
// of the id set $1 and each group of $4, as feedHeadsSQL reads a source;
// lim is limitParam's SQL for limit.
func (db *DB) feedMoreSQL(lim string, limit int) string {
	if db.Engine == Postgres {
		return `SELECT x.id FROM unnest($1::text[]) AS s(key) CROSS JOIN LATERAL (SELECT sp.id FROM posts AS sp
  WHERE sp.author_id = s.key AND sp.id >= $2 AND sp.id < $3 ORDER BY sp.id DESC LIMIT ` + lim + `) AS x
UNION ALL
SELECT x.id FROM unnest($4::text[]) AS s(key) CROSS JOIN LATERAL (SELECT sp.id FROM posts AS sp
  WHERE sp.group_id = s.key AND sp.id >= $2 AND sp.id < $3 ORDER BY sp.id DESC LIMIT ` + lim + `) AS x`
	}
	offset := strconv.Itoa(limit - 1)
	return `SELECT sp.id FROM json_each($1) AS s CROSS JOIN posts AS sp ON sp.author_id = s.value
  WHERE sp.id < $3 AND sp.id >= COALESCE((SELECT lp.id FROM posts AS lp
    WHERE lp.author_id = s.value AND lp.id >= $2 AND lp.id < $3 ORDER BY lp.id DESC LIMIT 1 OFFSET ` + offset + `), $2)
UNION ALL
SELECT sp.id FROM json_each($4) AS s CROSS JOIN posts AS sp ON sp.group_id = s.value
  WHERE sp.id < $3 AND sp.id >= COALESCE((SELECT lp.id FROM posts AS lp
    WHERE lp.group_id = s.value AND lp.id >= $2 AND lp.id < $3 ORDER BY lp.id DESC LIMIT 1 OFFSET ` + offset + `), $2)`
}

// FeedCandidates returns the ids of the newest limit posts of userID's
// home feed below beforeID ("" for the newest), newest first, before the
// visibility rule: a page read without a timeline filters them with
// ListPosts (Candidates), as it would a timeline's entries. Every post of
// the feed between the last id returned and beforeID is among them.
func (db *DB) FeedCandidates(ctx context.Context, tx bun.IDB, userID, beforeID string, limit int) ([]string, error) {
	if beforeID == "" {
		beforeID = maxID
	}
	return db.feedIDs(ctx, tx, userID, "", beforeID, limit)
}

// FillTimelines writes the newest size posts of each building timeline's
// feed among those of userIDs into it, sets its floor and marks it ready,
// in tx; it reports which it filled and which were deleted during the fill
// (and whose entries it removed again). Timelines already ready or gone
// are left alone. The entries go in first, then the
// timelines are marked ready together, their rows locked in user id order
// (on Postgres). A deletion of a timeline that came first has left no
// row to mark; one that comes after waits and takes the entries.
func (db *DB) FillTimelines(ctx context.Context, tx bun.IDB, userIDs []string, size int) (filled, gone []string, err error) {
	var building []string
	if err := tx.NewSelect().Model((*Timeline)(nil)).Column("user_id").
		Where("user_id IN (?) AND state = ?", bun.List(userIDs), TimelineBuilding).OrderExpr("user_id").Scan(ctx, &building); err != nil {
		return nil, nil, fmt.Errorf("fill timeline: %w", translate(err))
	}
	// OR IGNORE: see FanOut.
	insert := `INSERT OR IGNORE INTO timeline_entries (user_id, post_id) SELECT $1, value FROM json_each($2)`
	if db.Engine == Postgres {
		insert = `INSERT INTO timeline_entries (user_id, post_id) SELECT $1, unnest($2::text[]) ON CONFLICT DO NOTHING`
	}
	for _, id := range building {
		posts, err := db.feedIDs(ctx, tx, id, "", maxID, size)
		if err != nil {
			return nil, nil, fmt.Errorf("fill timeline: %w", err)
		}
		if _, err := db.execPrepared(ctx, tx, insert, id, db.idSetArg(posts)); err != nil {
			return nil, nil, fmt.Errorf("fill timeline: %w", translate(err))
		}
	}
	if len(building) == 0 {
		return nil, nil, nil
	}
	if db.Engine == Postgres {
		var present []string
		if err := tx.NewSelect().Model((*Timeline)(nil)).Column("user_id").Where("user_id IN (?)", bun.List(building)).
			OrderExpr("user_id").For("NO KEY UPDATE").Scan(ctx, &present); err != nil {
			return nil, nil, fmt.Errorf("fill timeline: %w", translate(err))
		}
		if len(present) < len(building) {
			for _, id := range building {
				if !slices.Contains(present, id) {
					gone = append(gone, id)
				}
			}
			// Whatever a timeline made again meanwhile holds goes too: it
			// is building, and its own fill comes after.
			if _, err := tx.NewDelete().Model((*TimelineEntry)(nil)).Where("user_id IN (?)", bun.List(gone)).Exec(ctx); err != nil {
				return nil, nil, fmt.Errorf("fill timeline: %w", translate(err))
			}
			building = present
		}
	}
	for _, id := range building {
		if err := db.trimTimeline(ctx, tx, id, size, TimelineReady); err != nil {
			return nil, nil, err
		}
	}
	return building, gone, nil
}

// trimTimeline keeps the newest size entries of a timeline and moves its
// floor to the oldest one kept when any were dropped or when the timeline
// was filled to size (older posts may exist that it does not hold).
func (db *DB) trimTimeline(ctx context.Context, tx bun.IDB, userID string, size int, state string) error {
	var floor []string
	if err := tx.NewSelect().Model((*TimelineEntry)(nil)).Column("post_id").Where("user_id = ?", userID).
		OrderExpr("post_id DESC").Offset(int64(size-1)).Limit(1).Scan(ctx, &floor); err != nil {
		return fmt.Errorf("trim timeline: %w", translate(err))
	}
	q := tx.NewUpdate().Model((*Timeline)(nil)).Set("state = ?", state).Set("read_at = ?", db.Now()).Where("user_id = ?", userID)
	if len(floor) > 0 {
		if _, err := tx.NewDelete().Model((*TimelineEntry)(nil)).Where("user_id = ? AND post_id < ?", userID, floor[0]).Exec(ctx); err != nil {
			return fmt.Errorf("trim timeline: %w", translate(err))
		}
		q = q.Set("floor_id = ?", floor[0])
	}
	if _, err := q.Exec(ctx); err != nil {
		return fmt.Errorf("trim timeline: %w", translate(err))
	}
	return nil
}

// TouchTimeline records a read of a timeline and trims it to size.
func (db *DB) TouchTimeline(ctx context.Context, tx bun.IDB, userID string, size int) error {
	return db.trimTimeline(ctx, tx, userID, size, TimelineReady)
}

// BuildingTimelines returns the users of up to limit timelines waiting
// for their fill, oldest first (timelines_building_idx).
func (db *DB) BuildingTimelines(ctx context.Context, tx bun.IDB, limit int) ([]string, error) {
	var ids []string
	if err := tx.NewSelect().Model((*Timeline)(nil)).Column("user_id").Where("state = ?", TimelineBuilding).
		OrderExpr("read_at").Limit(int64(limit)).Scan(ctx, &ids); err != nil {
		return nil, fmt.Errorf("building timelines: %w", translate(err))
	}
	return ids, nil
}

// DropTimelines deletes the timelines (and their entries) not read since
// before; they are rebuilt if their users come back. tx must be a
// transaction: the rows are locked (in user id order, the order fan-outs
// take them in), then their entries deleted, then the rows.
func (db *DB) DropTimelines(ctx context.Context, tx bun.Tx, before time.Time) (int64, error) {
	if db.Engine == Postgres {
		if _, err := tx.NewSelect().Model((*Timeline)(nil)).Column("user_id").Where("read_at < ?", before).
			OrderExpr("user_id").For("UPDATE").Exec(ctx); err != nil {
			return 0, fmt.Errorf("drop timelines: %w", translate(err))
		}
	}
	// read_at only grows, so the same rows match again.
	if _, err := tx.NewRaw(`DELETE FROM timeline_entries WHERE user_id IN (
  SELECT dt.user_id FROM timelines AS dt WHERE dt.read_at < ?)`, before).Exec(ctx); err != nil {
		return 0, fmt.Errorf("drop timelines: %w", translate(err))
	}
	res, err := tx.NewDelete().Model((*Timeline)(nil)).Where("read_at < ?", before).Exec(ctx)
	if err != nil {
		return 0, fmt.Errorf("drop timelines: %w", translate(err))
	}
	n, _ := res.RowsAffected()
	return n, nil
}

// DeleteTimeline deletes userID's timeline and its entries (a deleted
// account's), its row first: a writer of entries holding the row is
// waited for, and one after it no longer finds the timeline.
func (db *DB) DeleteTimeline(ctx context.Context, tx bun.IDB, userID string) error {
	if _, err := tx.NewDelete().Model((*Timeline)(nil)).Where("user_id = ?", userID).Exec(ctx); err != nil {
		return fmt.Errorf("delete timeline: %w", translate(err))
	}
	if _, err := tx.NewDelete().Model((*TimelineEntry)(nil)).Where("user_id = ?", userID).Exec(ctx); err != nil {
		return fmt.Errorf("delete timeline: %w", translate(err))
	}
	return nil
}

// holdTimelines is the clause, on Postgres, that a statement writing
// entries appends to the select of the timelines (as table alias) it
// writes to: it holds them as the foreign key used to (see "Entries and
// their timeline" above). SQLite runs one writer at a time: nothing.
func (db *DB) holdTimelines(alias string) string {
	if db.Engine != Postgres {
		return ""
	}
	return " FOR KEY SHARE OF " + alias
}

// AddPendingPost marks a new post's fan-out pending, in the post's
// transaction: until it is done, every feed read merges the post.
func (db *DB) AddPendingPost(ctx context.Context, tx bun.IDB, postID string) error {
	// Prepared (see queryPrepared): every post marks one.
	if _, err := db.execPrepared(ctx, tx, `INSERT INTO timeline_pending (post_id, created_at) VALUES ($1, $2) ON CONFLICT DO NOTHING`,
		postID, db.timeArg(db.Now())); err != nil {
		return fmt.Errorf("pending post: %w", translate(err))
	}
	return nil
}

// PendingPosts returns up to limit posts whose fan-out is pending, oldest
// first.
func (db *DB) PendingPosts(ctx context.Context, tx bun.IDB, limit int) ([]string, error) {
	// Prepared (see queryPrepared): the fan-out's drain reads it for each
	// batch.
	lim, args := db.limitParam(1, limit)
	ids, err := db.scanIDs(ctx, tx, db.sqlText("pending posts "+lim, func() string {
		return "SELECT post_id FROM timeline_pending ORDER BY post_id LIMIT " + lim
	}), args...)
	if err != nil {
		return nil, fmt.Errorf("pending posts: %w", err)
	}
	return ids, nil
}

// FanOut writes posts into the timelines of their readers that exist: the
// members of a post's group, or its author's followers (unless the author
// is a big author, whose posts readers merge; bigAt is the follower count
// from which an author becomes one) and the author. It ends the posts'
// pending marks in the same transaction and reports how many of them it
// fanned out and how many timeline entries it wrote; a post no longer
// pending (fanned out already, or deleted) is skipped.
//
// It first locks the groups (group posts) and the authors (others): a
// membership change or a follow of an author in progress then commits
// before the insert reads the members or followers, or waits for it and
// then sees the post in its own backfill (CreateFollow, PutMembership),
// so no reader falls between the two.
//
// One transaction and one insert for many posts: per post, the commit
// cost more than the entries themselves, and the posts of one batch mostly
// write to the same pages (the newest entries of the same readers).
//
// On SQLite the entries go in with INSERT OR IGNORE, not ON
// CONFLICT DO NOTHING: an insert of many rows that may stop halfway (a NOT
// NULL or foreign-key check that aborts) keeps a statement journal, a copy
// of each page it changes in case it must be undone, which spilled to a
// temporary file; OR IGNORE makes every check skip the row instead, so
// there is nothing to undo (about a quarter of the fan-out's CPU in a
// profile of posts, 0.46 -> 0.04 s).
func (db *DB) FanOut(ctx context.Context, tx bun.IDB, postIDs []string, bigAt int64) (posts, entries int64, err error) {
	if len(postIDs) == 0 {
		return 0, 0, nil
	}
	// Its statements are prepared (see queryPrepared), each set of ids one
	// parameter: written by bun with their values, each batch's were new
	// text, and Postgres planned the batch's insert for about a quarter
	// of what running it cost (docs/performance.md, item 44).
	var found []Post
	where, arg, key := db.inIDs("p.id", 1, postIDs)
	rows, err := db.queryPrepared(ctx, tx, db.sqlText("fan-out posts"+key, func() string {
		return "SELECT p.id, p.author_id, p.group_id FROM posts AS p WHERE " + where
	}), arg)
	if err == nil {
		err = db.ScanRows(ctx, rows, &found)
	}
	if err != nil {
		return 0, 0, fmt.Errorf("fan out: %w", translate(err))
	}
	// Locks in the global order (locks.go), each kind at once: the groups,
	// the posts (a deletion in progress is waited for, and the post then
	// found gone: no entry outlives it), the authors.
	var groupIDs, ids, authorIDs []string
	for _, p := range found {
		ids = append(ids, p.ID)
		if p.GroupID != nil {
			groupIDs = append(groupIDs, *p.GroupID)
		} else {
			authorIDs = append(authorIDs, p.AuthorID)
		}
	}
	if len(ids) == 0 {
		return 0, 0, nil // all deleted: their pending marks went with them
	}
	if err := db.lockRows(ctx, tx, (*Group)(nil), "g.id", groupIDs); err != nil {
		return 0, 0, err
	}
	if err := db.lockRows(ctx, tx, (*Post)(nil), "p.id", ids); err != nil {
		return 0, 0, err
	}
	if err := db.LockUsers(ctx, tx, authorIDs...); err != nil {
		return 0, 0, err
	}
	// Claim the posts: a concurrent fan-out of one (two batch jobs draining
	// at once) waits here for the first to commit and then does not find
	// it; a deleted post took its pending row with it.
	where, arg, key = db.inIDs("post_id", 1, ids)
	claimed, err := db.scanIDs(ctx, tx, db.sqlText("fan-out claim"+key, func() string {
		return "DELETE FROM timeline_pending WHERE " + where + " RETURNING post_id"
	}), arg)
	if err != nil {
		return 0, 0, fmt.Errorf("fan out: %w", err)
	}
	if len(claimed) == 0 {
		return 0, 0, nil
	}
	// Authors become big (and stay so) from bigAt followers.
	var bigIDs []string
	if len(authorIDs) > 0 {
		where, arg, key := db.inIDs("u.id", 1, authorIDs)
		if _, err := db.execPrepared(ctx, tx, db.sqlText("fan-out big authors"+key, func() string {
			return "INSERT INTO timeline_big_authors (user_id, since) SELECT u.id, $2 FROM users AS u WHERE " + where + " AND u.followers_count >= $3 ON CONFLICT DO NOTHING"
		}), arg, db.timeArg(db.Now()), bigAt); err != nil {
			return 0, 0, fmt.Errorf("fan out: %w", translate(err))
		}
		where, _, _ = db.inIDs("user_id", 1, authorIDs)
		if bigIDs, err = db.scanIDs(ctx, tx, db.sqlText("fan-out big"+key, func() string {
			return "SELECT user_id FROM timeline_big_authors WHERE " + where
		}), arg); err != nil {
			return 0, 0, fmt.Errorf("fan out: %w", err)
		}
	}
	big := make(map[string]bool, len(bigIDs))
	for _, id := range bigIDs {
		big[id] = true
	}
	isClaimed := make(map[string]bool, len(claimed))
	for _, id := range claimed {
		isClaimed[id] = true
	}
	var inGroups, ownOnly, toFollowers []string
	for _, p := range found {
		switch {
		case !isClaimed[p.ID]:
		case p.GroupID != nil:
			inGroups = append(inGroups, p.ID)
		case big[p.AuthorID]:
			ownOnly = append(ownOnly, p.ID)
		default:
			toFollowers = append(toFollowers, p.ID)
		}
	}
	// The readers: a group post's active members; every other post's
	// author, and the followers of an author who is not big (driven by
	// the author's followers, follows' followee index, not by every
	// timeline). Only timelines whose floor is at or below the post.
	// Each set of posts is one parameter.
	var args params
	var shape string
	var sqls []string
	if len(inGroups) > 0 {
		posts, key := args.addIDs(db, "p.id", inGroups)
		active := args.add(MemberActive)
		shape += " groups" + key
		sqls = append(sqls, `SELECT gm.user_id AS user_id, p.id AS post_id FROM posts AS p JOIN group_members AS gm ON gm.group_id = p.group_id
  JOIN timelines AS t ON t.user_id = gm.user_id
  WHERE `+posts+` AND gm.state = `+active+` AND t.floor_id <= p.id`)
	}
	if own := slices.Concat(ownOnly, toFollowers); len(own) > 0 {
		posts, key := args.addIDs(db, "p.id", own)
		shape += " authors" + key
		sqls = append(sqls, `SELECT t.user_id AS user_id, p.id AS post_id FROM posts AS p JOIN timelines AS t ON t.user_id = p.author_id
  WHERE `+posts+` AND t.floor_id <= p.id`)
	}
	if len(toFollowers) > 0 {
		posts, key := args.addIDs(db, "p.id", toFollowers)
		shape += " followers" + key
		sqls = append(sqls, `SELECT f.follower_id AS user_id, p.id AS post_id FROM posts AS p JOIN follows AS f ON f.followee_id = p.author_id
  JOIN timelines AS t ON t.user_id = f.follower_id
  WHERE `+posts+` AND t.floor_id <= p.id`)
	}
	query := db.sqlText("fan-out"+shape, func() string {
		// On Postgres the readers' timelines are held, in user id order
		// (DropTimelines' order), by the statement that writes to them.
		if db.Engine == Postgres {
			return `WITH r AS (` + strings.Join(sqls, "\nUNION ALL\n") + `),
h AS (SELECT ht.user_id FROM timelines AS ht WHERE ht.user_id IN (SELECT r.user_id FROM r) ORDER BY ht.user_id` + db.holdTimelines("ht") + `)
INSERT INTO timeline_entries (user_id, post_id)
SELECT r.user_id, r.post_id FROM r WHERE r.user_id IN (SELECT h.user_id FROM h) ON CONFLICT DO NOTHING`
		}
		return `INSERT OR IGNORE INTO timeline_entries (user_id, post_id)
SELECT r.user_id, r.post_id FROM (` + strings.Join(sqls, "\nUNION ALL\n") + `) AS r`
	})
	res, err := db.execPrepared(ctx, tx, query, args...)
	if err != nil {
		return 0, 0, fmt.Errorf("fan out: %w", translate(err))
	}
	n, _ := res.RowsAffected()
	return int64(len(claimed)), n, nil
}

// backfillTimeline adds to userID's timeline, if they have one, the newest
// posts selected by where (over posts AS bp; ?1 binds arg) down to its
// floor: the timeline holds every feed post above its floor, so a new
// followee's or group's posts go in down to it and no further.
func (db *DB) backfillTimeline(ctx context.Context, tx bun.IDB, userID, where, arg string) error {
	if _, err := tx.NewRaw(`INSERT INTO timeline_entries (user_id, post_id)
SELECT t.user_id, s.id FROM timelines AS t
JOIN (SELECT bp.id FROM posts AS bp WHERE `+where+` ORDER BY bp.id DESC LIMIT ?2) AS s ON s.id >= t.floor_id
WHERE t.user_id = ?0`+db.holdTimelines("t")+` ON CONFLICT DO NOTHING`, userID, arg, TimelineSize).Exec(ctx); err != nil {
		return fmt.Errorf("backfill timeline: %w", translate(err))
	}
	return nil
}

// deleteGroupEntries removes the entries of the posts of the groups whose
// id matches cond ("= ?0", "IN (?0)"; ?0 binds arg) from their members'
// timelines, before the posts are deleted: entries have no foreign key to
// posts (see deleteAuthorEntries for the shape).
func (db *DB) deleteGroupEntries(ctx context.Context, tx bun.IDB, cond string, arg any) error {
	if _, err := tx.NewRaw(`DELETE FROM timeline_entries WHERE user_id IN (SELECT gm.user_id FROM group_members AS gm WHERE gm.group_id `+cond+`)
  AND `+db.unindexed("post_id")+` IN (SELECT gp.id FROM posts AS gp WHERE gp.group_id `+cond+`)`, arg).Exec(ctx); err != nil {
		return fmt.Errorf("delete group posts' entries: %w", translate(err))
	}
	return nil
}

// deleteAuthorEntries removes the entries of authorID's posts (a deleted
// account's) from their readers' timelines, before the posts are deleted:
// their followers' and the members' of the groups they posted to. Each
// reader's timeline is read whole down its primary key and its entries
// looked up among the posts: a timeline holds at most about TimelineSize,
// while an author may have any number of posts (SQLite, left to itself,
// looked up every pair of reader and post; unindexed keeps it to the
// first). Readers without a timeline cost one index probe.
func (db *DB) deleteAuthorEntries(ctx context.Context, tx bun.IDB, authorID string) error {
	if _, err := tx.NewRaw(`DELETE FROM timeline_entries WHERE user_id IN (
  SELECT f.follower_id FROM follows AS f WHERE f.followee_id = ?0
  UNION
  SELECT gm.user_id FROM group_members AS gm WHERE gm.group_id IN (SELECT ap.group_id FROM posts AS ap WHERE ap.author_id = ?0))
  AND `+db.unindexed("post_id")+` IN (SELECT ap.id FROM posts AS ap WHERE ap.author_id = ?0)`, authorID).Exec(ctx); err != nil {
		return fmt.Errorf("delete author's entries: %w", translate(err))
	}
	return nil
}

// unindexed is column in a condition that SQLite must not drive an index
// lookup with (its unary +); Postgres has no + for text, and its planner
// chooses by statistics.
func (db *DB) unindexed(column string) string {
	if db.Engine == Postgres {
		return column
	}
	return "+" + column
}

// TimelineSize is how many entries a timeline keeps (Mastodon keeps 800).
const TimelineSize = 800

// FillSize is how many entries a new timeline is filled with; fan-outs
// then grow it to TimelineSize. Ten pages of 20 cover nearly every
// reader, older pages are read from the posts, and a fill's cost grows
// with its entries (a fill of 800 was 25 ms of CPU per first page on
// SQLite when each entry also went into an index by post).
const FillSize = 200

// removeFromTimeline drops authorID's posts from userID's timeline (an
// unfollow); reads would skip them anyway, this keeps pages full.
func (db *DB) removeFromTimeline(ctx context.Context, tx bun.IDB, userID, authorID string) error {
	if _, err := tx.NewRaw(`DELETE FROM timeline_entries WHERE user_id = ? AND post_id IN (
  SELECT rp.id FROM posts AS rp WHERE rp.author_id = ? AND rp.group_id IS NULL)`, userID, authorID).Exec(ctx); err != nil {
		return fmt.Errorf("timeline unfollow: %w", translate(err))
	}
	return nil
}

// timelineMerges is the part of a timeline read that is not in its
// entries: the newest posts of the big authors the reader follows. Binds:
// reader, lower bound (inclusive), upper bound (exclusive), per-author
// limit.
const timelineMerges = `SELECT bp.id AS post_id FROM timeline_big_authors AS b
  JOIN follows AS bf ON bf.followee_id = b.user_id AND bf.follower_id = ?0
  JOIN posts AS bp ON bp.author_id = b.user_id
  WHERE bp.id >= ?1 AND bp.id < ?2 AND bp.id >= COALESCE((SELECT lp.id FROM posts AS lp
    WHERE lp.author_id = b.user_id AND lp.id >= ?1 AND lp.id < ?2 ORDER BY lp.id DESC LIMIT 1 OFFSET ?3), '')`
