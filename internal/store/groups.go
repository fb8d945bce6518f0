package store

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/uptrace/bun"
)

// Group privacies, roles and membership states as stored.
const (
	GroupPublic  = "public"
	GroupPrivate = "private"

	GroupRoleOwner  = "owner"
	GroupRoleAdmin  = "admin"
	GroupRoleMember = "member"

	MemberActive    = "active"
	MemberInvited   = "invited"
	MemberRequested = "requested"
)

// Group is a group row.
type Group struct {
	bun.BaseModel `bun:"table:groups,alias:g"`

	ID           string    `bun:"id,pk"`
	Name         string    `bun:"name,notnull"`
	Description  string    `bun:"description,notnull"`
	Privacy      string    `bun:"privacy,notnull"`
	OwnerID      string    `bun:"owner_id,notnull"`
	MembersCount int64     `bun:"members_count,notnull"`
	CreatedAt    time.Time `bun:"created_at,notnull"`
	UpdatedAt    time.Time `bun:"updated_at,notnull"`
}

// GroupMember is a user's membership, invitation or request.
type GroupMember struct {
	bun.BaseModel `bun:"table:group_members,alias:gm"`

	GroupID   string    `bun:"group_id,pk"`
	UserID    string    `bun:"user_id,pk"`
	Role      string    `bun:"role,notnull"`
	State     string    `bun:"state,notnull"`
	CreatedAt time.Time `bun:"created_at,notnull"`
}

// GroupUpdate lists the group fields to change; nil fields stay.
type GroupUpdate struct {
	Name, Description, Privacy *string
}

// CreateGroup inserts g with its owner as the first active member.
func (db *DB) CreateGroup(ctx context.Context, tx bun.IDB, g *Group) error {
	now := db.Now()
	g.ID, g.CreatedAt, g.UpdatedAt, g.MembersCount = NewID(), now, now, 1
	if _, err := tx.NewInsert().Model(g).Exec(ctx); err != nil {
		return fmt.Errorf("create group: %w", translate(err))
	}
	m := &GroupMember{GroupID: g.ID, UserID: g.OwnerID, Role: GroupRoleOwner, State: MemberActive, CreatedAt: now}
	if _, err := tx.NewInsert().Model(m).Exec(ctx); err != nil {
		return fmt.Errorf("create group owner: %w", translate(err))
	}
	return nil
}

// GetGroup returns a group. Returns an error matching IsNotFound when there is none.
func (db *DB) GetGroup(ctx context.Context, tx bun.IDB, id string) (*Group, error) {
	g := new(Group)
	if err := tx.NewSelect().Model(g).Where("g.id = ?", id).Scan(ctx); err != nil {
		return nil, fmt.Errorf("get group: %w", translate(err))
	}
	return g, nil
}

// UpdateGroup applies upd.
func (db *DB) UpdateGroup(ctx context.Context, tx bun.IDB, id string, upd GroupUpdate) error {
	q := tx.NewUpdate().Model((*Group)(nil)).Where("id = ?", id).Set("updated_at = ?", db.Now())
	if upd.Name != nil {
		q = q.Set("name = ?", *upd.Name)
	}
	if upd.Description != nil {
		q = q.Set("description = ?", *upd.Description)
	}
	if upd.Privacy != nil {
		q = q.Set("privacy = ?", *upd.Privacy)
	}
	if _, err := q.Exec(ctx); err != nil {
		return fmt.Errorf("update group: %w", translate(err))
	}
	return nil
}

// DeleteGroup deletes a group, its memberships and the posts shared with it
// (their likes, comments and hashtags cascade), and uncounts those posts on
// their authors. It locks in the global order (see locks.go): the group,
// then its posts, then their authors in id order, so that it deadlocks
// neither with a post to the group (which holds the group, then its
// author) nor with a like of one of its posts (the post, then users).
func (db *DB) DeleteGroup(ctx context.Context, tx bun.IDB, id string) error {
	if err := db.LockGroup(ctx, tx, id, true); err != nil {
		return err
	}
	var authors []string
	if db.Engine == Postgres {
		if _, err := tx.NewSelect().Model((*Post)(nil)).ColumnExpr("p.id").Where("p.group_id = ?", id).
			OrderExpr("p.id").For("UPDATE").Exec(ctx); err != nil {
			return fmt.Errorf("delete group: lock posts: %w", translate(err))
		}
		if err := tx.NewSelect().Model((*Post)(nil)).Distinct().ColumnExpr("p.author_id").Where("p.group_id = ?", id).
			Scan(ctx, &authors); err != nil {
			return fmt.Errorf("delete group: authors: %w", translate(err))
		}
		if err := db.LockUsers(ctx, tx, authors...); err != nil {
			return err
		}
	}
	if _, err := tx.NewUpdate().Model((*User)(nil)).
		Set("posts_count = posts_count - (SELECT count(*) FROM posts AS gp WHERE gp.group_id = ? AND gp.author_id = u.id)", id).
		Where("u.id IN (SELECT gp.author_id FROM posts AS gp WHERE gp.group_id = ?)", id).Exec(ctx); err != nil {
		return fmt.Errorf("delete group: uncount posts: %w", translate(err))
	}
	if err := db.deleteGroupEntries(ctx, tx, "= ?0", id); err != nil {
		return err
	}
	if _, err := tx.NewDelete().Model((*Post)(nil)).Where("group_id = ?", id).Exec(ctx); err != nil {
		return fmt.Errorf("delete group posts: %w", translate(err))
	}
	if _, err := tx.NewDelete().Model((*Group)(nil)).Where("id = ?", id).Exec(ctx); err != nil {
		return fmt.Errorf("delete group: %w", translate(err))
	}
	return nil
}

// GetMembership returns a user's membership row of a group. Returns an
// error matching IsNotFound when there is none.
func (db *DB) GetMembership(ctx context.Context, tx bun.IDB, groupID, userID string) (*GroupMember, error) {
	m := new(GroupMember)
	if err := tx.NewSelect().Model(m).Where("gm.group_id = ? AND gm.user_id = ?", groupID, userID).Scan(ctx); err != nil {
		return nil, fmt.Errorf("get membership: %w", translate(err))
	}
	return m, nil
}

// Memberships returns userID's rows for each of groupIDs that has one.
func (db *DB) Memberships(ctx context.Context, tx bun.IDB, userID string, groupIDs []string) (map[string]*GroupMember, error) {
	out := map[string]*GroupMember{}
	if len(groupIDs) == 0 {
		return out, nil
	}
	var rows []*GroupMember
	if err := tx.NewSelect().Model(&rows).Where("gm.user_id = ? AND gm.group_id IN (?)", userID, bun.List(groupIDs)).Scan(ctx); err != nil {
		return nil, fmt.Errorf("memberships: %w", translate(err))
	}
	for _, m := range rows {
		out[m.GroupID] = m
	}
	return out, nil
}

// PutMembership inserts or replaces a membership row, keeping the group's
// count of active members right, also under concurrent changes.
func (db *DB) PutMembership(ctx context.Context, tx bun.IDB, m *GroupMember) error {
	if err := db.LockGroup(ctx, tx, m.GroupID, false); err != nil {
		return err
	}
	old, err := db.GetMembership(ctx, tx, m.GroupID, m.UserID)
	if err != nil && !IsNotFound(err) {
		return err
	}
	wasActive := err == nil && old.State == MemberActive
	if m.CreatedAt.IsZero() {
		m.CreatedAt = db.Now()
	}
	if _, err := tx.NewInsert().Model(m).
		On("CONFLICT (group_id, user_id) DO UPDATE").
		Set("role = EXCLUDED.role, state = EXCLUDED.state, created_at = EXCLUDED.created_at").Exec(ctx); err != nil {
		return fmt.Errorf("put membership: %w", translate(err))
	}
	if m.State == MemberActive && !wasActive {
		if err := db.backfillTimeline(ctx, tx, m.UserID, "bp.group_id = ?1", m.GroupID); err != nil {
			return err
		}
	}
	return db.countMember(ctx, tx, m.GroupID, wasActive, m.State == MemberActive)
}

// DeleteMembership removes a membership row; false when there was none.
func (db *DB) DeleteMembership(ctx context.Context, tx bun.IDB, groupID, userID string) (bool, error) {
	if err := db.LockGroup(ctx, tx, groupID, false); err != nil {
		return false, err
	}
	old, err := db.GetMembership(ctx, tx, groupID, userID)
	if IsNotFound(err) {
		return false, nil
	} else if err != nil {
		return false, err
	}
	if _, err := tx.NewDelete().Model((*GroupMember)(nil)).Where("group_id = ? AND user_id = ?", groupID, userID).Exec(ctx); err != nil {
		return false, fmt.Errorf("delete membership: %w", translate(err))
	}
	return true, db.countMember(ctx, tx, groupID, old.State == MemberActive, false)
}

func (db *DB) countMember(ctx context.Context, tx bun.IDB, groupID string, was, is bool) error {
	delta := 0
	switch {
	case is && !was:
		delta = 1
	case was && !is:
		delta = -1
	default:
		return nil
	}
	if _, err := tx.NewUpdate().Model((*Group)(nil)).Set("members_count = members_count + ?", delta).
		Where("id = ?", groupID).Exec(ctx); err != nil {
		return fmt.Errorf("count members: %w", translate(err))
	}
	return nil
}

// GroupAdmins returns the IDs of a group's owner and admins.
func (db *DB) GroupAdmins(ctx context.Context, tx bun.IDB, groupID string) ([]string, error) {
	var ids []string
	if err := tx.NewSelect().Model((*GroupMember)(nil)).Column("user_id").
		Where("group_id = ? AND state = ? AND role IN (?)", groupID, MemberActive, bun.List([]string{GroupRoleOwner, GroupRoleAdmin})).
		// In one order, so that two joins notifying the same admins lock
		// their event heads in one order (see NextEventID).
		OrderExpr("user_id").
		Scan(ctx, &ids); err != nil {
		return nil, fmt.Errorf("group admins: %w", translate(err))
	}
	return ids, nil
}

// MemberFilter selects a page of a group's memberships in one state,
// newest first.
type MemberFilter struct {
	GroupID, State string
	// ViewerID hides users a block stands between with the viewer, either
	// way (and suspended users are always hidden).
	ViewerID string
	// BeforeAt and BeforeID continue after the last row of the previous page.
	BeforeAt time.Time
	BeforeID string
	Limit    int
}

// ListGroupMembers returns a page of memberships as f selects. One query,
// through group_members_group_idx, probing users and blocks by primary key
// per row; the caller loads the users of the page with GetUsers.
func (db *DB) ListGroupMembers(ctx context.Context, tx bun.IDB, f MemberFilter) ([]*GroupMember, error) {
	var rows []*GroupMember
	q := tx.NewSelect().Model(&rows).
		Where("gm.group_id = ? AND gm.state = ?", f.GroupID, f.State).
		Where("EXISTS (SELECT 1 FROM users AS mu WHERE mu.id = gm.user_id AND mu.suspended_at IS NULL)").
		Where(noBlockBetween, f.ViewerID, bun.Ident("gm.user_id")).
		OrderExpr("gm.created_at DESC, gm.user_id DESC").Limit(int64(f.Limit))
	if f.BeforeID != "" {
		q = q.Where("(gm.created_at < ? OR (gm.created_at = ? AND gm.user_id < ?))", f.BeforeAt, f.BeforeAt, f.BeforeID)
	}
	if err := q.Scan(ctx); err != nil {
		return nil, fmt.Errorf("list group members: %w", translate(err))
	}
	return rows, nil
}

// GroupRow is a group with the caller's membership, for lists.
type GroupRow struct {
	*Group
	JoinedAt time.Time
}

// ListUserGroups returns the groups a user is an active member of, most
// recently joined first. One query.
func (db *DB) ListUserGroups(ctx context.Context, tx bun.IDB, userID string, beforeAt time.Time, beforeID string, limit int) ([]GroupRow, error) {
	var rows []struct {
		Group    `bun:",extend"`
		JoinedAt time.Time `bun:"joined_at"`
	}
	q := tx.NewSelect().Model((*Group)(nil)).ColumnExpr("g.*").ColumnExpr("gm.created_at AS joined_at").
		Join("JOIN group_members AS gm ON gm.group_id = g.id").
		Where("gm.user_id = ? AND gm.state = ?", userID, MemberActive).
		OrderExpr("gm.created_at DESC, g.id DESC").Limit(int64(limit))
	if beforeID != "" {
		q = q.Where("(gm.created_at < ? OR (gm.created_at = ? AND g.id < ?))", beforeAt, beforeAt, beforeID)
	}
	if err := q.Scan(ctx, &rows); err != nil {
		return nil, fmt.Errorf("list user groups: %w", translate(err))
	}
	out := make([]GroupRow, len(rows))
	for i := range rows {
		g := rows[i].Group
		out[i] = GroupRow{Group: &g, JoinedAt: rows[i].JoinedAt}
	}
	return out, nil
}

// GroupSearch is a group search: a name fragment, or none for every group.
type GroupSearch struct {
	// Query is a name fragment, lower-cased and trimmed by the caller;
	// empty lists every group.
	Query string
	// After continues below the last row of the previous page: (score, id).
	AfterScore float64
	AfterID    string
	Limit      int
}

// ScoredGroup is a group search hit.
type ScoredGroup struct {
	*Group
	Score float64
}

// largestGroups is SearchGroups without a query: every group, largest
// first, read down groups_members_count_idx from the cursor on (the row
// comparison is the index's condition on both engines).
func (db *DB) largestGroups(ctx context.Context, tx bun.IDB, s GroupSearch) ([]ScoredGroup, error) {
	var args params
	shape, where := "largest", ""
	if s.AfterID != "" {
		// members_count is an INTEGER: a score past it (a forged token)
		// must not reach Postgres, which refuses it as out of range.
		after := int64(min(max(s.AfterScore, math.MinInt32), math.MaxInt32))
		shape, where = "largest, after", " WHERE (g.members_count, g.id) < ("+args.add(after)+", "+args.add(s.AfterID)+")"
	}
	lim, all := db.limitParam(len(args)+1, s.Limit, args...)
	query := db.sqlText("search groups "+shape+" "+lim, func() string {
		return "SELECT " + db.columns((*Group)(nil), "g") + " FROM groups AS g" + where + " ORDER BY g.members_count DESC, g.id DESC LIMIT " + lim
	})
	var groups []*Group
	res, err := db.queryPrepared(ctx, tx, query, all...)
	if err == nil {
		err = db.ScanRows(ctx, res, &groups)
	}
	if err != nil {
		return nil, fmt.Errorf("search groups: %w", translate(err))
	}
	out := make([]ScoredGroup, len(groups))
	for i, g := range groups {
		out[i] = ScoredGroup{Group: g, Score: float64(g.MembersCount)}
	}
	return out, nil
}

// SearchGroups ranks the groups whose name contains s.Query (any letter
// case): an exact name, then names that start with it, then names with a
// word that starts with it, then the rest, each tier larger groups first;
// with no query every group, largest first. The score is the tier times
// 1e9 plus the members count, exact in a float. One query, through
// groups_members_count_idx without a query. On Postgres the candidates are
// those of two index scans, at most MaxSearchCandidates of each, as in
// SearchUsers (which says why): names by prefix (a range of the pattern
// index), and names containing the query (the trigram index), that second
// scan skipped when the prefix alone gives MaxSearchCandidates, since a
// prefix outranks any other match. On SQLite, where Flock runs on one
// machine with few groups, every name is matched.
func (db *DB) SearchGroups(ctx context.Context, tx bun.IDB, s GroupSearch) ([]ScoredGroup, error) {
	if s.Query == "" {
		return db.largestGroups(ctx, tx, s)
	}
	var args params
	q, like := args.add(s.Query), args.add(escapeLike(s.Query))
	shape, prefix := "name", ""
	name := db.lowerFunc() + "(g.name)"
	score := `(CASE WHEN ` + name + ` = ` + q + ` THEN 4 WHEN ` + name + ` LIKE ` + like + ` || '%' ESCAPE '!' THEN 3
		WHEN ` + name + ` LIKE '% ' || ` + like + ` || '%' ESCAPE '!' THEN 2 ELSE 1 END * CAST(1000000000 AS BIGINT) + g.members_count)`
	where := name + ` LIKE '%' || ` + like + ` || '%' ESCAPE '!'`
	if db.Engine == Postgres {
		limit := strconv.Itoa(MaxSearchCandidates)
		prefix = `WITH prefix AS MATERIALIZED (SELECT id FROM groups WHERE lower(name) ~>=~ ` + q + ` AND lower(name) ~<~ (` + q + ` || chr(1114111)) ORDER BY lower(name) USING ~<~ LIMIT ` + limit + `) `
		where = `g.id IN ((SELECT id FROM prefix)
			UNION ALL (SELECT id FROM groups AS c WHERE (SELECT count(*) FROM prefix) < ` + limit + ` AND ` + strings.Replace(where, "g.name", "c.name", 1) + ` LIMIT ` + limit + `))`
	}
	var rows []struct {
		Group `bun:",extend"`
		Score float64 `bun:"score"`
	}
	err := db.rankedSearch(ctx, tx, ranked{
		key: "search groups " + shape, prefix: prefix, table: "groups", alias: "g", columns: db.columns((*Group)(nil), "g"),
		score: score, where: where, args: args, afterScore: s.AfterScore, afterID: s.AfterID, limit: s.Limit,
		// Without it the generic plan read every group to join the
		// candidates (a hash join: 7.3 ms for a query matching two of
		// 50,000 groups, against 0.6 through the primary key;
		// docs/performance.md, item 52).
		throughIndexes: prefix != "",
	}, &rows)
	if err != nil {
		return nil, fmt.Errorf("search groups: %w", translate(err))
	}
	out := make([]ScoredGroup, len(rows))
	for i := range rows {
		g := rows[i].Group
		out[i] = ScoredGroup{Group: &g, Score: rows[i].Score}
	}
	return out, nil
}
