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

// Follow is one user following another.
type Follow struct {
	bun.BaseModel `bun:"table:follows,alias:f"`

	FollowerID string    `bun:"follower_id,pk"`
	FolloweeID string    `bun:"followee_id,pk"`
	CreatedAt  time.Time `bun:"created_at,notnull"`
}

// Block is one user blocking another.
type Block struct {
	bun.BaseModel `bun:"table:blocks,alias:b"`

	BlockerID string    `bun:"blocker_id,pk"`
	BlockedID string    `bun:"blocked_id,pk"`
	CreatedAt time.Time `bun:"created_at,notnull"`
}

// CreateFollow makes follower follow followee and counts it on both users.
// It returns false, changing nothing, when the follow already exists. The
// caller locks both users first (LockUsers), so that follows of the pair
// the other way cannot deadlock with it.
func (db *DB) CreateFollow(ctx context.Context, tx bun.IDB, followerID, followeeID string) (bool, error) {
	res, err := tx.NewInsert().Model(&Follow{FollowerID: followerID, FolloweeID: followeeID, CreatedAt: db.Now()}).
		On("CONFLICT DO NOTHING").Exec(ctx)
	if err != nil {
		return false, fmt.Errorf("create follow: %w", translate(err))
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return false, nil
	}
	if err := db.backfillTimeline(ctx, tx, followerID, "bp.author_id = ?1 AND bp.group_id IS NULL", followeeID); err != nil {
		return false, err
	}
	return true, db.adjustFollowCounts(ctx, tx, followerID, followeeID, 1)
}

// DeleteFollow removes a follow and its counts; false when there was none.
// The caller locks both users first (LockUsers), as for CreateFollow.
func (db *DB) DeleteFollow(ctx context.Context, tx bun.IDB, followerID, followeeID string) (bool, error) {
	res, err := tx.NewDelete().Model((*Follow)(nil)).
		Where("follower_id = ? AND followee_id = ?", followerID, followeeID).Exec(ctx)
	if err != nil {
		return false, fmt.Errorf("delete follow: %w", translate(err))
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return false, nil
	}
	if err := db.removeFromTimeline(ctx, tx, followerID, followeeID); err != nil {
		return false, err
	}
	return true, db.adjustFollowCounts(ctx, tx, followerID, followeeID, -1)
}

// adjustFollowCounts moves the counters by delta in the database itself
// (count = count + delta), so concurrent follows never lose an update.
func (db *DB) adjustFollowCounts(ctx context.Context, tx bun.IDB, followerID, followeeID string, delta int) error {
	if _, err := tx.NewUpdate().Model((*User)(nil)).Set("following_count = following_count + ?", delta).
		Where("id = ?", followerID).Exec(ctx); err != nil {
		return fmt.Errorf("count following: %w", translate(err))
	}
	if _, err := tx.NewUpdate().Model((*User)(nil)).Set("followers_count = followers_count + ?", delta).
		Where("id = ?", followeeID).Exec(ctx); err != nil {
		return fmt.Errorf("count followers: %w", translate(err))
	}
	return nil
}

// CreateBlock records that blocker blocks blocked; false when it already did.
func (db *DB) CreateBlock(ctx context.Context, tx bun.IDB, blockerID, blockedID string) (bool, error) {
	res, err := tx.NewInsert().Model(&Block{BlockerID: blockerID, BlockedID: blockedID, CreatedAt: db.Now()}).
		On("CONFLICT DO NOTHING").Exec(ctx)
	if err != nil {
		return false, fmt.Errorf("create block: %w", translate(err))
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// DeleteBlock lifts a block; false when there was none.
func (db *DB) DeleteBlock(ctx context.Context, tx bun.IDB, blockerID, blockedID string) (bool, error) {
	res, err := tx.NewDelete().Model((*Block)(nil)).
		Where("blocker_id = ? AND blocked_id = ?", blockerID, blockedID).Exec(ctx)
	if err != nil {
		return false, fmt.Errorf("delete block: %w", translate(err))
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// Blocks reports which blocks stand between two users: whether a blocked
// b, and whether b blocked a; one query. A refusal across a block tells
// the blocker what to do, and the blocked side nothing (security.md
// property 4).
func (db *DB) Blocks(ctx context.Context, tx bun.IDB, a, b string) (aBlocksB, bBlocksA bool, err error) {
	var blockers []string
	if err := tx.NewSelect().Model((*Block)(nil)).Column("blocker_id").
		Where("(blocker_id = ? AND blocked_id = ?) OR (blocker_id = ? AND blocked_id = ?)", a, b, b, a).
		Scan(ctx, &blockers); err != nil {
		return false, false, fmt.Errorf("blocks: %w", translate(err))
	}
	return slices.Contains(blockers, a), slices.Contains(blockers, b), nil
}

// noBlockBetween is the condition that no block stands, either way, between
// two users; each of its two arguments is a user ID or a column
// (bun.Ident("u.id")). Every query that lists users, or things that show
// their author or actor, filters with it, so that a block hides both ways
// (security.md property 4); ListBlocked alone does not, since the blocker
// sees whom they blocked, and follow suggestions exclude the same pairs as
// sets (notSuggested). Indexed on both engines: SQLite probes the primary
// key and blocks_blocked_idx per row; Postgres reads the viewer's blocks
// once through blocks_blocker_created_idx and blocks_blocked_idx (0.3 ms
// for a page of group members among 200,000 blocks).
var noBlockBetween = noBlockRule("?0", "?1", "")

// noBlockRule is noBlockBetween's condition between a and b, each SQL (a
// parameter or a column), for prepared statements; perRow ends its
// subquery (see DB.perRow).
func noBlockRule(a, b, perRow string) string {
	return "NOT EXISTS (SELECT 1 FROM blocks AS bx WHERE (bx.blocker_id = " + a + " AND bx.blocked_id = " + b + ")" +
		" OR (bx.blocker_id = " + b + " AND bx.blocked_id = " + a + ")" + perRow + ")"
}

// Relationship is how the viewer and another user stand.
type Relationship struct {
	FollowedByMe, FollowsMe, BlockedByMe, BlocksMe bool
}

// Relationships returns the viewer's relationship to each of userIDs, in
// one prepared statement (see queryPrepared) whatever their number: four
// lookups by key per user (perRow). Users with no relationship are absent.
func (db *DB) Relationships(ctx context.Context, tx bun.IDB, viewerID string, userIDs []string) (map[string]Relationship, error) {
	out := make(map[string]Relationship)
	if viewerID == "" || len(userIDs) == 0 {
		return out, nil
	}
	// A user list and a search read it for every page; written by bun
	// with its values, as two statements, Postgres planned both anew each
	// time (0.38 ms of a user search's Postgres time on the small
	// profile; docs/performance.md, item 43).
	ids, arg, key := db.idRows(2, userIDs)
	query := db.sqlText("relationships"+key, func() string {
		return `WITH x(id) AS (` + ids + `) SELECT x.id, ` + db.relationshipColumns("x.id") + ` FROM x`
	})
	rows, err := db.queryPrepared(ctx, tx, query, viewerID, arg)
	if err != nil {
		return nil, fmt.Errorf("relationships: %w", translate(err))
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var r Relationship
		if err := rows.Scan(&id, &r.FollowedByMe, &r.FollowsMe, &r.BlockedByMe, &r.BlocksMe); err != nil {
			return nil, fmt.Errorf("relationships: %w", translate(err))
		}
		if r != (Relationship{}) {
			out[id] = r
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("relationships: %w", translate(err))
	}
	return out, nil
}

// RelatedUser is a user in a relation list with the time of the relation
// (the follow or the block), which is the list's keyset position.
type RelatedUser struct {
	*User
	At time.Time
}

// UserListFilter selects a page of a relation list, newest relation first.
type UserListFilter struct {
	// ViewerID hides users blocked either way with the viewer, and suspended ones.
	ViewerID string
	// BeforeAt and BeforeID continue after the last row of the previous page.
	BeforeAt time.Time
	BeforeID string
	Limit    int
}

// ListFollowers returns users who follow userID.
func (db *DB) ListFollowers(ctx context.Context, tx bun.IDB, userID string, f UserListFilter) ([]RelatedUser, error) {
	return db.listRelated(ctx, tx, "follows", "followee_id", "follower_id", userID, f)
}

// ListFollowing returns users whom userID follows.
func (db *DB) ListFollowing(ctx context.Context, tx bun.IDB, userID string, f UserListFilter) ([]RelatedUser, error) {
	return db.listRelated(ctx, tx, "follows", "follower_id", "followee_id", userID, f)
}

// ListBlocked returns users whom userID blocks.
func (db *DB) ListBlocked(ctx context.Context, tx bun.IDB, userID string, f UserListFilter) ([]RelatedUser, error) {
	f.ViewerID = "" // the blocker sees whom they blocked
	return db.listRelated(ctx, tx, "blocks", "blocker_id", "blocked_id", userID, f)
}

// listRelated pages through table rows whose ownCol is userID, joined to the
// user in otherCol, ordered by (created_at, other id) descending: one query.
func (db *DB) listRelated(ctx context.Context, tx bun.IDB, table, ownCol, otherCol, userID string, f UserListFilter) ([]RelatedUser, error) {
	var rows []struct {
		User `bun:",extend"`
		At   time.Time `bun:"rel_at"`
	}
	q := tx.NewSelect().
		ColumnExpr(db.columns((*User)(nil), "u")).ColumnExpr("r.created_at AS rel_at").
		TableExpr("? AS r", bun.Ident(table)).
		Join("JOIN users AS u ON u.id = r.?", bun.Ident(otherCol)).
		Where("r.? = ?", bun.Ident(ownCol), userID).
		Where("u.suspended_at IS NULL").
		OrderExpr("r.created_at DESC, r.? DESC", bun.Ident(otherCol)).
		Limit(int64(f.Limit))
	if f.BeforeID != "" {
		q = q.Where("(r.created_at < ? OR (r.created_at = ? AND r.? < ?))", f.BeforeAt, f.BeforeAt, bun.Ident(otherCol), f.BeforeID)
	}
	if f.ViewerID != "" {
		q = q.Where(noBlockBetween, f.ViewerID, bun.Ident("u.id"))
	}
	if err := q.Scan(ctx, &rows); err != nil {
		return nil, fmt.Errorf("list %s: %w", table, translate(err))
	}
	out := make([]RelatedUser, len(rows))
	for i := range rows {
		out[i] = RelatedUser{User: &rows[i].User, At: rows[i].At}
	}
	return out, nil
}

// GetUsers returns the users with the given IDs (those that exist), in one query.
func (db *DB) GetUsers(ctx context.Context, tx bun.IDB, ids []string) (map[string]*User, error) {
	out := make(map[string]*User, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	var users []*User
	if err := tx.NewSelect().Model(&users).Where("u.id IN (?)", bun.List(ids)).Scan(ctx); err != nil {
		return nil, fmt.Errorf("get users: %w", translate(err))
	}
	for _, u := range users {
		out[u.ID] = u
	}
	return out, nil
}

// relationshipColumns is the viewer's ($1) four relationships to the user
// whose id is the column id, as the columns followed_by_me, follows_me,
// blocked_by_me and blocks_me, each a lookup by key per row (perRow).
func (db *DB) relationshipColumns(id string) string {
	return strings.NewReplacer("?u", id, "?p", db.perRow()).Replace(`
  EXISTS (SELECT 1 FROM follows AS r1 WHERE r1.follower_id = $1 AND r1.followee_id = ?u?p) AS followed_by_me,
  EXISTS (SELECT 1 FROM follows AS r2 WHERE r2.follower_id = ?u AND r2.followee_id = $1?p) AS follows_me,
  EXISTS (SELECT 1 FROM blocks AS r3 WHERE r3.blocker_id = $1 AND r3.blocked_id = ?u?p) AS blocked_by_me,
  EXISTS (SELECT 1 FROM blocks AS r4 WHERE r4.blocker_id = ?u AND r4.blocked_id = $1?p) AS blocks_me
 `)
}

// GetUsersWithRelationships returns the users with the given IDs (those
// that exist) with viewerID's relationship to each: their public and
// account fields, without the password hash. One prepared statement (see
// queryPrepared) reads what changes often (counts, suspension, the
// relationships) and each row's version; the rest comes from the authors'
// row cache (rowcache.go), as for a feed page's authors. Notifications,
// comments, group members and the posts of a GetPost or a search read
// their users with it, and decoding every user's row in full (its bio,
// its times, its password hash) was most of a notifications page's cost
// (docs/performance.md, item 49).
func (db *DB) GetUsersWithRelationships(ctx context.Context, tx bun.IDB, viewerID string, ids []string) (map[string]*User, map[string]Relationship, error) {
	users := make(map[string]*User, len(ids))
	rels := make(map[string]Relationship, len(ids))
	if len(ids) == 0 {
		return users, rels, nil
	}
	var rows []struct {
		ID             string     `bun:"id"`
		SuspendedAt    *time.Time `bun:"suspended_at"`
		FollowersCount int64      `bun:"followers_count"`
		FollowingCount int64      `bun:"following_count"`
		PostsCount     int64      `bun:"posts_count"`
		Version        string     `bun:"version"`
		FollowedByMe   bool       `bun:"followed_by_me"`
		FollowsMe      bool       `bun:"follows_me"`
		BlockedByMe    bool       `bun:"blocked_by_me"`
		BlocksMe       bool       `bun:"blocks_me"`
	}
	where, arg, key := db.inIDs("u.id", 2, ids)
	query := db.sqlText("users with relationships"+key, func() string {
		return "SELECT u.id, u.suspended_at, u.followers_count, u.following_count, u.posts_count, " + versionExpr("u") + " AS version, " +
			db.relationshipColumns("u.id") + " FROM users AS u WHERE " + where
	})
	res, err := db.queryPrepared(ctx, tx, query, viewerID, arg)
	if err == nil {
		err = db.ScanRows(ctx, res, &rows)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("get users: %w", translate(err))
	}
	versions := make(map[string]string, len(rows))
	for i := range rows {
		versions[rows[i].ID] = rows[i].Version
	}
	cached, err := db.cachedAuthors(ctx, tx, versions)
	if err != nil {
		return nil, nil, fmt.Errorf("get users: %w", err)
	}
	for i := range rows {
		r := &rows[i]
		a := cached[r.ID]
		if a == nil {
			continue // deleted since the statement
		}
		u := a.user // a copy: the counts and suspension are this read's
		u.SuspendedAt, u.FollowersCount, u.FollowingCount, u.PostsCount = r.SuspendedAt, r.FollowersCount, r.FollowingCount, r.PostsCount
		users[r.ID] = &u
		if viewerID != "" {
			rels[r.ID] = Relationship{FollowedByMe: r.FollowedByMe, FollowsMe: r.FollowsMe, BlockedByMe: r.BlockedByMe, BlocksMe: r.BlocksMe}
		}
	}
	return users, rels, nil
}

// UserSearch is a user search: a username or full-name fragment, or an email.
type UserSearch struct {
	// Query is a name fragment, lower-cased and trimmed by the caller.
	Query string
	// Email, when set instead of Query, is a complete normalised address:
	// only the account with exactly that email matches.
	Email    string
	ViewerID string
	// After continues below the last row of the previous page: (score, id).
	AfterScore float64
	AfterID    string
	Limit      int
}

// ScoredUser is a search hit.
type ScoredUser struct {
	*User
	Score float64
}

// MaxSearchCandidates bounds each kind of candidate a user search scores
// on Postgres (username prefix, similar username, full-name substring): a
// query that matches more users than that is too broad to page through,
// and scoring every one made its cost follow the number of users.
const MaxSearchCandidates = 500

// SearchUsers ranks users by how well they match: an exact email first,
// then exact username, username prefix, and (on Postgres) trigram
// similarity of username and full name; on SQLite, substrings of username
// and full name. Users blocked either way with the viewer, suspended and
// unverified ones never match. One query.
func (db *DB) SearchUsers(ctx context.Context, tx bun.IDB, s UserSearch) ([]ScoredUser, error) {
	// One prepared statement per shape (see queryPrepared): written by bun
	// with its values, Postgres planned each search anew, for more than it
	// took to run (0.52-0.65 ms against 0.59-0.69 on the small profile;
	// docs/performance.md, item 43).
	var args params
	var shape, score, match, prefix string
	switch {
	case s.Email != "":
		// A complete address matches that account's email and nothing else.
		shape, score, match = "email", "100", "u.email = "+args.add(s.Email)
	case db.Engine == Postgres:
		q, like := args.add(s.Query), args.add(escapeLike(s.Query))
		shape = "name"
		score = `(CASE WHEN lower(u.username) = ` + q + ` THEN 60 WHEN lower(u.username) LIKE ` + like + ` || '%' ESCAPE '!' THEN 40 ELSE 0 END
			+ 20 * public.similarity(lower(u.username), ` + q + `)
			+ 15 * public.similarity(lower(u.full_name), ` + q + `))`
		// Candidates come from three index scans (username prefix, username
		// trigram similarity, full-name substring through the trigram
		// index), at most MaxSearchCandidates of each; only they are
		// scored. The prefix is a range of the pattern index
		// (text_pattern_ops compares bytes, in code point order for UTF-8;
		// U+10FFFF is the greatest character), which a plan made without the
		// query's value can use, while LIKE with a parameter cannot; its
		// candidates are the first in that index's order, so an exact
		// username is always one. Without the bound a broad
		// query scored every user it resembled: "user042" on the medium
		// profile resembles all 100,000 "userNNNNNN" names, about 200 ms of
		// Postgres CPU a search (docs/performance.md, item 45).
		//
		// A prefix candidate scores at least 40 and any other at most 35,
		// so when the prefix alone gives MaxSearchCandidates, every page up
		// to that many results is made of prefix candidates, and the other
		// two scans are skipped (a one-time filter): the similarity scan
		// cannot stop early (GIN builds its bitmap of every match first:
		// all 100,000 users, 27 ms, for "user042"), and what it adds would
		// only show past the 500th result (item 51).
		limit := strconv.Itoa(MaxSearchCandidates)
		prefix = `WITH prefix AS MATERIALIZED (SELECT id FROM users WHERE lower(username) ~>=~ ` + q + ` AND lower(username) ~<~ (` + q + ` || chr(1114111)) ORDER BY lower(username) USING ~<~ LIMIT ` + limit + `) `
		broad := `(SELECT count(*) FROM prefix) < ` + limit
		match = `u.id IN ((SELECT id FROM prefix)
			UNION ALL (SELECT id FROM users WHERE ` + broad + ` AND lower(username) OPERATOR(public.%) ` + q + ` LIMIT ` + limit + `)
			UNION ALL (SELECT id FROM users WHERE ` + broad + ` AND lower(full_name) LIKE '%' || ` + like + ` || '%' ESCAPE '!' LIMIT ` + limit + `))`
	default:
		q, like := args.add(s.Query), args.add(escapeLike(s.Query))
		shape = "name"
		score = `(CASE WHEN lower(u.username) = ` + q + ` THEN 60 WHEN lower(u.username) LIKE ` + like + ` || '%' ESCAPE '!' THEN 40
			       WHEN lower(u.username) LIKE '%' || ` + like + ` || '%' ESCAPE '!' THEN 20 ELSE 0 END
			+ CASE WHEN ` + sqliteLower + `(u.full_name) LIKE ` + like + ` || '%' ESCAPE '!' THEN 15
			       WHEN ` + sqliteLower + `(u.full_name) LIKE '%' || ` + like + ` || '%' ESCAPE '!' THEN 10 ELSE 0 END)`
		// Full names in any script (usernames are ASCII): sqliteLower.
		match = `(lower(u.username) LIKE '%' || ` + like + ` || '%' ESCAPE '!' OR ` + sqliteLower + `(u.full_name) LIKE '%' || ` + like + ` || '%' ESCAPE '!')`
	}
	where := match + " AND u.suspended_at IS NULL AND u.email_verified_at IS NOT NULL"
	if s.ViewerID != "" {
		shape += ", viewer"
		where += " AND " + noBlockRule(args.add(s.ViewerID), "u.id", "")
	}
	var rows []struct {
		User  `bun:",extend"`
		Score float64 `bun:"score"`
	}
	err := db.rankedSearch(ctx, tx, ranked{
		key: "search users " + shape, prefix: prefix, table: "users", alias: "u", columns: db.columns((*User)(nil), "u"),
		score: score, where: where, args: args, afterScore: s.AfterScore, afterID: s.AfterID, limit: s.Limit,
		// The planner prices trigram matching far below its real cost and
		// picks a sequential scan that computes similarity on every row
		// (120 ms against about 15 ms through the indexes at 50,000 users;
		// see docs/performance.md).
		throughIndexes: db.Engine == Postgres && s.Email == "",
	}, &rows)
	if err != nil {
		return nil, fmt.Errorf("search users: %w", translate(err))
	}
	out := make([]ScoredUser, len(rows))
	for i := range rows {
		out[i] = ScoredUser{User: &rows[i].User, Score: rows[i].Score}
	}
	return out, nil
}

// ranked is a ranked search's statement (SearchUsers, SearchGroups): the
// rows of table (as alias) that match where, each with score, below the
// cursor (afterScore, afterID) when afterID is set, best first, at most
// limit; prefix is a WITH clause or "". args hold where's and score's
// parameters; key names the statement's shape for sqlText.
type ranked struct {
	key, prefix, table, alias, columns, score, where string
	args                                             params
	afterScore                                       float64
	afterID                                          string
	limit                                            int
	// throughIndexes runs the statement with sequential scans off and
	// its generic plan kept, on Postgres: the planner's estimates of the
	// candidates' scans were far off, and a plan made for the value
	// always looked cheaper, so Postgres planned every search anew, for
	// about what running it cost; the generic plan reads the same
	// candidates through the same indexes
	// (TestSearchUsers_PlannedOnceAndReadOnlyTheirCandidatesOnPostgres).
	throughIndexes bool
}

// rankedSearch runs r (one prepared statement per shape, see
// queryPrepared) and scans its rows into dest.
func (db *DB) rankedSearch(ctx context.Context, tx bun.IDB, r ranked, dest any) error {
	args, key, a := r.args, r.key, r.alias
	var after string
	if r.afterID != "" {
		key += ", after"
		score, id := args.add(r.afterScore), args.add(r.afterID)
		after = " WHERE (" + a + ".score < " + score + " OR (" + a + ".score = " + score + " AND " + a + ".id < " + id + "))"
	}
	lim, all := db.limitParam(len(args)+1, r.limit, args...)
	query := db.sqlText(key+" "+lim, func() string {
		// A float on both engines, so cursors compare like with like.
		float := "DOUBLE PRECISION"
		if db.Engine == SQLite {
			float = "REAL"
		}
		return r.prefix + "SELECT " + a + ".* FROM (SELECT " + r.columns + ", CAST(" + r.score + " AS " + float + ") AS score FROM " + r.table + " AS " + a + " WHERE " +
			r.where + ") AS " + a + after + " ORDER BY " + a + ".score DESC, " + a + ".id DESC LIMIT " + lim
	})
	run := func(ctx context.Context, tx bun.IDB) error {
		res, err := db.queryPrepared(ctx, tx, query, all...)
		if err == nil {
			err = db.ScanRows(ctx, res, dest)
		}
		return err
	}
	if !r.throughIndexes {
		return run(ctx, tx)
	}
	return tx.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if _, err := tx.ExecContext(ctx, "SET LOCAL enable_seqscan = off; SET LOCAL plan_cache_mode = force_generic_plan"); err != nil {
			return err
		}
		return run(ctx, tx)
	})
}

// escapeLike escapes LIKE's wildcards so user input matches literally. The
// escape character is '!' (ESCAPE '!'), since bun's formatter gives '\' a
// meaning of its own.
func escapeLike(s string) string {
	return strings.NewReplacer(`!`, `!!`, `%`, `!%`, `_`, `!_`).Replace(s)
}
