package store

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/uptrace/bun"
)

// Post visibilities as stored.
const (
	VisibilityPublic    = "public"
	VisibilityFollowers = "followers"
	VisibilityGroup     = "group"
)

// Post is a post row. Its counters are kept by the statements that add and
// remove likes and comments, in the same transaction.
type Post struct {
	bun.BaseModel `bun:"table:posts,alias:p"`

	ID            string    `bun:"id,pk"`
	AuthorID      string    `bun:"author_id,notnull"`
	Content       string    `bun:"content,notnull"`
	Visibility    string    `bun:"visibility,notnull"`
	GroupID       *string   `bun:"group_id"`
	VideoID       *string   `bun:"video_id"`
	LikesCount    int64     `bun:"likes_count,notnull"`
	CommentsCount int64     `bun:"comments_count,notnull"`
	CreatedAt     time.Time `bun:"created_at,notnull"`
	UpdatedAt     time.Time `bun:"updated_at,notnull"`

	// Hashtags is loaded by the list and get queries; it lives in post_hashtags.
	Hashtags []string `bun:"-"`
	// LikedByMe is whether the viewer of a list likes the post (ListPosts).
	LikedByMe bool `bun:"liked_by_me,scanonly"`
	// tagList is Hashtags as ListPosts reads them: space-separated, in order.
	TagList *string `bun:"tag_list,scanonly"`

	// Author and AuthorRel are the author (with current counts) and the
	// viewer's relationship to them when the list read them with the posts
	// (a timeline's page); Author is nil otherwise. Hashtags then share
	// their array with the row cache: read-only.
	Author    *User        `bun:"-"`
	AuthorRel Relationship `bun:"-"`
}

// PostHashtag indexes a post under one normalised tag.
type PostHashtag struct {
	bun.BaseModel `bun:"table:post_hashtags,alias:ph"`

	Tag      string `bun:"tag,pk"`
	PostID   string `bun:"post_id,pk"`
	Position int    `bun:"position,notnull"`
}

// Like is one user liking a post.
type Like struct {
	bun.BaseModel `bun:"table:likes,alias:l"`

	PostID    string    `bun:"post_id,pk"`
	UserID    string    `bun:"user_id,pk"`
	CreatedAt time.Time `bun:"created_at,notnull"`
}

// Comment is a comment row.
type Comment struct {
	bun.BaseModel `bun:"table:comments,alias:c"`

	ID        string    `bun:"id,pk"`
	PostID    string    `bun:"post_id,notnull"`
	AuthorID  string    `bun:"author_id,notnull"`
	Content   string    `bun:"content,notnull"`
	CreatedAt time.Time `bun:"created_at,notnull"`
}

// CreatePost inserts p with its hashtags and counts it on its author.
func (db *DB) CreatePost(ctx context.Context, tx bun.IDB, p *Post) error {
	if p.ID == "" {
		p.ID = NewID()
	}
	if p.CreatedAt.IsZero() {
		p.CreatedAt = db.Now()
	}
	p.UpdatedAt = p.CreatedAt
	// Its statements are prepared (see queryPrepared) and name their
	// columns: bun would add RETURNING for the nullable ones, and on SQLite
	// a RETURNING clause makes the insert keep a statement journal (a 64 KiB
	// buffer mapped and unmapped per statement).
	if _, err := db.execPrepared(ctx, tx, `INSERT INTO posts
(id, author_id, content, visibility, group_id, video_id, likes_count, comments_count, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		p.ID, p.AuthorID, p.Content, p.Visibility, p.GroupID, p.VideoID, p.LikesCount, p.CommentsCount, db.timeArg(p.CreatedAt), db.timeArg(p.UpdatedAt)); err != nil {
		return fmt.Errorf("create post: %w", translate(err))
	}
	if err := db.insertHashtags(ctx, tx, p.ID, p.Hashtags); err != nil {
		return err
	}
	if _, err := db.execPrepared(ctx, tx, `UPDATE users SET posts_count = posts_count + 1 WHERE id = $1`, p.AuthorID); err != nil {
		return fmt.Errorf("count post: %w", translate(err))
	}
	return nil
}

func (db *DB) setHashtags(ctx context.Context, tx bun.IDB, postID string, tags []string) error {
	if _, err := tx.NewDelete().Model((*PostHashtag)(nil)).Where("post_id = ?", postID).Exec(ctx); err != nil {
		return fmt.Errorf("set hashtags: %w", translate(err))
	}
	return db.insertHashtags(ctx, tx, postID, tags)
}

// insertHashtags adds a post's hashtags, in order. On Postgres in one
// statement (one round trip); on SQLite, where a statement costs no round
// trip, one prepared single-row insert each: an INSERT ... SELECT would
// keep a statement journal (see CreatePost), and posts have few tags.
func (db *DB) insertHashtags(ctx context.Context, tx bun.IDB, postID string, tags []string) error {
	if len(tags) == 0 {
		return nil
	}
	if db.Engine == Postgres {
		if _, err := db.execPrepared(ctx, tx, `INSERT INTO post_hashtags (tag, post_id, position)
SELECT t.tag, $2, t.n - 1 FROM unnest($1::text[]) WITH ORDINALITY AS t (tag, n)`, db.idSetArg(tags), postID); err != nil {
			return fmt.Errorf("set hashtags: %w", translate(err))
		}
		return nil
	}
	for i, t := range tags {
		if _, err := db.execPrepared(ctx, tx, `INSERT INTO post_hashtags (tag, post_id, position) VALUES ($1, $2, $3)`, t, postID, i); err != nil {
			return fmt.Errorf("set hashtags: %w", translate(err))
		}
	}
	return nil
}

// GetPost returns a post with its hashtags, whoever may see it (the caller
// checks visibility with PostVisible). Returns an error matching IsNotFound
// when there is none.
func (db *DB) GetPost(ctx context.Context, tx bun.IDB, id string) (*Post, error) {
	p := new(Post)
	if err := tx.NewSelect().Model(p).ColumnExpr("p.*").ColumnExpr(db.tagListExpr()).Where("p.id = ?", id).Scan(ctx); err != nil {
		return nil, fmt.Errorf("get post: %w", translate(err))
	}
	p.splitTags()
	return p, nil
}

// UpdatePostContent replaces a post's content and hashtags and marks it edited.
func (db *DB) UpdatePostContent(ctx context.Context, tx bun.IDB, id, content string, tags []string) error {
	if _, err := tx.NewUpdate().Model((*Post)(nil)).Set("content = ?", content).Set("updated_at = ?", db.Now()).
		Where("id = ?", id).Exec(ctx); err != nil {
		return fmt.Errorf("update post: %w", translate(err))
	}
	return db.setHashtags(ctx, tx, id, tags)
}

// DeletePost deletes a post; its likes, comments and hashtags go with it
// (foreign keys cascade), so does the video it carries (p.VideoID; the
// caller removes the video's files once committed), and its author's count
// drops. Its timeline entries go too, from the timelines its fan-out wrote
// to (its author's and followers', or its group's members'), each found
// by primary key: entries have no foreign key to posts (timelines.go).
func (db *DB) DeletePost(ctx context.Context, tx bun.IDB, p *Post) error {
	if _, err := tx.NewRaw(`DELETE FROM timeline_entries WHERE post_id = ?0 AND user_id IN (
  SELECT dp.author_id FROM posts AS dp WHERE dp.id = ?0
  UNION ALL
  SELECT f.follower_id FROM follows AS f WHERE f.followee_id = (SELECT dp.author_id FROM posts AS dp WHERE dp.id = ?0 AND dp.group_id IS NULL)
  UNION ALL
  SELECT gm.user_id FROM group_members AS gm WHERE gm.group_id = (SELECT dp.group_id FROM posts AS dp WHERE dp.id = ?0))`, p.ID).Exec(ctx); err != nil {
		return fmt.Errorf("delete post: %w", translate(err))
	}
	if _, err := tx.NewDelete().Model((*Post)(nil)).Where("id = ?", p.ID).Exec(ctx); err != nil {
		return fmt.Errorf("delete post: %w", translate(err))
	}
	if p.VideoID != nil {
		if _, err := tx.NewDelete().Model((*Video)(nil)).Where("id = ?", *p.VideoID).Exec(ctx); err != nil {
			return fmt.Errorf("delete post's video: %w", translate(err))
		}
	}
	if _, err := tx.NewUpdate().Model((*User)(nil)).Set("posts_count = posts_count - 1").
		Where("id = ?", p.AuthorID).Exec(ctx); err != nil {
		return fmt.Errorf("count post: %w", translate(err))
	}
	return nil
}

// visibleTo restricts q (over posts AS p) to the posts viewerID may see:
// this is the visibility rule of internal/post in SQL, so that lists filter
// and paginate in the database:
//   - the author is not suspended and no block stands between the two;
//   - outside groups: the viewer is the author, or the post is public, or
//     it is for followers and the viewer follows the author;
//   - a post shared with a group: the viewer is an active member, and the
//     list is one that shows group posts at all (withGroups: GetPost, the
//     home feed, ListGroupPosts); others (profiles, hashtags) never do.
func visibleTo(q *bun.SelectQuery, viewerID string, withGroups bool) *bun.SelectQuery {
	return q.Where(visibleRule(withGroups, ""), viewerID, VisibilityPublic, VisibilityFollowers, MemberActive)
}

// visibleRule is visibleTo's condition over posts AS p, its values bound
// as ?0 the viewer, ?1 public, ?2 followers, ?3 an active membership: one
// text for bun's queries and prepared statements alike (which rewrite the
// placeholders). perRow ends the subqueries about the viewer (see
// DB.perRow) in a prepared statement that reads many posts.
func visibleRule(withGroups bool, perRow string) string {
	rule := `EXISTS (SELECT 1 FROM users AS pa WHERE pa.id = p.author_id AND pa.suspended_at IS NULL) AND
NOT EXISTS (SELECT 1 FROM blocks AS bx WHERE (bx.blocker_id = ?0 AND bx.blocked_id = p.author_id) OR (bx.blocker_id = p.author_id AND bx.blocked_id = ?0)) AND `
	outside := `(p.group_id IS NULL AND (p.author_id = ?0 OR p.visibility = ?1 OR (p.visibility = ?2 AND EXISTS (SELECT 1 FROM follows AS pf WHERE pf.follower_id = ?0 AND pf.followee_id = p.author_id` + perRow + `))))`
	if !withGroups {
		return rule + outside
	}
	return rule + "(" + outside + " OR (p.group_id IS NOT NULL AND EXISTS (SELECT 1 FROM group_members AS pg WHERE pg.group_id = p.group_id AND pg.user_id = ?0 AND pg.state = ?3" + perRow + ")))"
}

// PostVisible reports whether viewerID may see the post with this ID; false
// also when it does not exist.
func (db *DB) PostVisible(ctx context.Context, tx bun.IDB, viewerID, postID string) (bool, error) {
	ok, err := visibleTo(tx.NewSelect().Model((*Post)(nil)).Where("p.id = ?", postID), viewerID, true).Exists(ctx)
	if err != nil {
		return false, fmt.Errorf("post visible: %w", translate(err))
	}
	return ok, nil
}

// GetVisiblePost returns a post with its hashtags and LikedByMe if viewerID
// may see it, checking and loading in one query. Returns an
// error matching IsNotFound when it does not exist or is not visible.
func (db *DB) GetVisiblePost(ctx context.Context, tx bun.IDB, viewerID, postID string) (*Post, error) {
	// Prepared (see queryPrepared): every CreatePost, GetPost, like and
	// comment reads a post this way.
	query := db.sqlText("visible post", func() string {
		return "SELECT " + db.columns((*Post)(nil), "p") + ", " + db.tagListExpr() +
			", EXISTS (SELECT 1 FROM likes AS l WHERE l.post_id = p.id AND l.user_id = $1) AS liked_by_me FROM posts AS p WHERE p.id = $5 AND " +
			strings.NewReplacer("?0", "$1", "?1", "$2", "?2", "$3", "?3", "$4").Replace(visibleRule(true, ""))
	})
	p, err := queryFirst[Post](ctx, db, tx, query, viewerID, VisibilityPublic, VisibilityFollowers, MemberActive, postID)
	if err != nil {
		return nil, fmt.Errorf("get visible post: %w", translate(err))
	}
	p.splitTags()
	return p, nil
}

// PostFilter selects a page of posts that ViewerID may see, newest first.
// Exactly one of FeedOf, AuthorID, Tag and GroupID is set.
type PostFilter struct {
	ViewerID string
	// FeedOf lists the home feed of this user: their own posts, those of
	// everyone they follow, and those shared with their groups.
	FeedOf string
	// GroupID lists the posts shared with a group.
	GroupID string
	// AuthorID lists one user's posts.
	AuthorID string
	// Tag lists the posts with this normalised hashtag.
	Tag string
	// BeforeID continues after the last post of the previous page.
	BeforeID string
	// FloorID, with FeedOf, leaves out posts with lower ids.
	FloorID string
	// Candidates, with FeedOf, restricts the feed to these post ids (a
	// page of the reader's timeline) plus the posts a timeline read merges
	// (pending fan-outs, big authors the reader follows) between FloorID
	// and BeforeID.
	Candidates []string
	// Timeline is set when Candidates applies (it may be empty).
	Timeline bool
	// MergeBig adds the newest posts of the big authors the reader follows
	// (Timeline only; Timeline.FollowsBig says whether there are any).
	MergeBig bool
	Limit    int
}

// tagListExpr reads a post's hashtags in order, space-separated (a stored
// tag has no space), so a page needs no query of its own for them.
func (db *DB) tagListExpr() string {
	if db.Engine == Postgres {
		return "(SELECT string_agg(ph.tag, ' ' ORDER BY ph.position) FROM post_hashtags AS ph WHERE ph.post_id = p.id) AS tag_list"
	}
	return "(SELECT group_concat(ph.tag, ' ' ORDER BY ph.position) FROM post_hashtags AS ph WHERE ph.post_id = p.id) AS tag_list"
}

// ListPosts returns a page of posts with their hashtags and whether the
// viewer likes each: one query whatever the page size.
func (db *DB) ListPosts(ctx context.Context, tx bun.IDB, f PostFilter) ([]*Post, error) {
	if f.FeedOf != "" && f.Timeline {
		return db.listTimelinePosts(ctx, tx, f)
	}
	if f.FeedOf == "" {
		return db.listPostsBy(ctx, tx, f)
	}
	// The feed read from the posts (no timeline yet, or pages below its
	// floor): written by bun with its values, so that Postgres plans each
	// read for its reader, whose followees and groups decide the plan.
	var posts []*Post
	q := visibleTo(tx.NewSelect().Model(&posts), f.ViewerID, true)
	q = q.ColumnExpr("p.*").
		ColumnExpr("EXISTS (SELECT 1 FROM likes AS lk WHERE lk.post_id = p.id AND lk.user_id = ?) AS liked_by_me", f.ViewerID).
		ColumnExpr(db.tagListExpr()).
		OrderExpr("p.id DESC").Limit(int64(f.Limit)).
		Where("(p.author_id = ? OR p.author_id IN (SELECT ff.followee_id FROM follows AS ff WHERE ff.follower_id = ?) OR p.group_id IN (SELECT fg.group_id FROM group_members AS fg WHERE fg.user_id = ? AND fg.state = ?))",
			f.FeedOf, f.FeedOf, f.FeedOf, MemberActive)
	if f.BeforeID != "" {
		q = q.Where("p.id < ?", f.BeforeID)
	}
	if f.FloorID != "" {
		q = q.Where("p.id >= ?", f.FloorID)
	}
	if err := q.Scan(ctx); err != nil {
		return nil, fmt.Errorf("list posts: %w", translate(err))
	}
	for _, p := range posts {
		p.splitTags()
	}
	return posts, nil
}

// listPostsBy is ListPosts for the posts of one group, author or hashtag
// (a group's page, a profile's posts, a hashtag search): one prepared
// statement per shape (see queryPrepared). Written by bun with its
// values, each call was new text that Postgres planned anew, and planning
// cost more than running it (0.76 ms against 0.40 a hashtag page on the
// small profile; docs/performance.md, item 43). Its generic plan reads
// the key's own index (a hashtag's posts newest first through
// post_hashtags' primary key, an author's or a group's through theirs)
// whatever the key's number of posts, and the lookups about the viewer
// per row (perRow).
func (db *DB) listPostsBy(ctx context.Context, tx bun.IDB, f PostFilter) ([]*Post, error) {
	// $1 the viewer, $2 public, $3 followers, with a group $4 an active
	// membership (visibleRule's values); then the key, the bound and the
	// limit. Postgres refuses a parameter that the text does not use.
	withGroups := f.GroupID != ""
	args := params{f.ViewerID, VisibilityPublic, VisibilityFollowers}
	if withGroups {
		args.add(MemberActive)
	}
	var shape, by string
	switch {
	case withGroups:
		shape, by = "group", "p.group_id = "+args.add(f.GroupID)
	case f.AuthorID != "":
		shape, by = "author", "p.author_id = "+args.add(f.AuthorID)
	case f.Tag != "":
		shape, by = "tag", "p.id IN (SELECT ph.post_id FROM post_hashtags AS ph WHERE ph.tag = "+args.add(f.Tag)+")"
	default:
		return nil, fmt.Errorf("list posts: no feed, group, author or tag given")
	}
	if f.FloorID != "" {
		return nil, fmt.Errorf("list posts: a floor applies to a feed only")
	}
	if f.BeforeID != "" {
		// A page after the first is its own statement: the bound's
		// value moves past the statistics as posts are written, and
		// Postgres may then plan that shape anew each time (item 36);
		// the first pages, most of the reads, keep their generic plan.
		shape, by = shape+" before", by+" AND p.id < "+args.add(f.BeforeID)
	}
	lim, all := db.limitParam(len(args)+1, f.Limit, args...)
	query := db.sqlText("posts by "+shape+" "+lim, func() string {
		perRow := db.perRow()
		return "SELECT " + db.columns((*Post)(nil), "p") +
			", EXISTS (SELECT 1 FROM likes AS lk WHERE lk.post_id = p.id AND lk.user_id = $1" + perRow + ") AS liked_by_me, " +
			db.tagListExpr() + " FROM posts AS p WHERE " + by + " AND " +
			strings.NewReplacer("?0", "$1", "?1", "$2", "?2", "$3", "?3", "$4").Replace(visibleRule(withGroups, perRow)) +
			" ORDER BY p.id DESC LIMIT " + lim
	})
	rows, err := db.queryPrepared(ctx, tx, query, all...)
	var posts []*Post
	if err == nil {
		err = db.ScanRows(ctx, rows, &posts)
	}
	if err != nil {
		return nil, fmt.Errorf("list posts: %w", translate(err))
	}
	for _, p := range posts {
		p.splitTags()
	}
	return posts, nil
}

// splitTags sets Hashtags from the TagList a query read.
func (p *Post) splitTags() {
	p.Hashtags = nil
	if p.TagList != nil && *p.TagList != "" {
		p.Hashtags = strings.Split(*p.TagList, " ")
	}
	p.TagList = nil
}

// listTimelinePosts is ListPosts for a timeline's page: the posts among
// f.Candidates (and, with f.MergeBig, the big authors' newest posts) in
// [f.FloorID, f.BeforeID) that the feed's rule lets the viewer see, each
// with its author and the viewer's relationship to them (Post.Author). One
// prepared statement per shape (see queryPrepared) reads what changes
// often; the rest comes from the row caches (rowcache.go), which read the
// rows they lack in one statement each.
func (db *DB) listTimelinePosts(ctx context.Context, tx bun.IDB, f PostFilter) ([]*Post, error) {
	if f.FeedOf != f.ViewerID {
		return nil, fmt.Errorf("list posts: a timeline is read by its owner only")
	}
	before := f.BeforeID
	if before == "" {
		before = maxID
	}
	// The candidates outside [f.FloorID, before) are left out here, not by
	// the statement. With the bounds among its parameters, Postgres planned
	// the statement anew on every page once posts had been written after
	// its statistics: the plan made for the page's bounds always looked
	// cheaper than the generic one, and making it cost about as much
	// Postgres CPU as running it (docs/performance.md, item 36). Without
	// them its generic plan is chosen and kept, as the timeline head's is.
	candidates := make([]string, 0, len(f.Candidates))
	for _, id := range f.Candidates {
		if id < before && id >= f.FloorID {
			candidates = append(candidates, id)
		}
	}
	var shape, lim string
	var args []any
	switch {
	case f.MergeBig:
		// The big authors' posts are read between the bounds.
		shape = "timeline posts, merged"
		lim, args = db.limitParam(6, f.Limit, f.ViewerID, MemberActive, db.idSetArg(candidates), before, f.FloorID)
	case len(candidates) > 0:
		shape = "timeline posts"
		lim, args = db.limitParam(4, f.Limit, f.ViewerID, MemberActive, db.idSetArg(candidates))
	default:
		return nil, nil
	}
	query := db.sqlText(shape+" "+lim, func() string {
		// $1 viewer, $2 active membership, $3 candidates; merged, $4
		// before and $5 floor; then the limit (lim).
		set := db.idSet(3)
		if f.MergeBig {
			// One set of ids, looked up by primary key: an OR of two IN
			// conditions would make SQLite walk the posts of the whole id range.
			merges := strings.NewReplacer("?0", "$1", "?1", "$5", "?2", "$4", "?3", lim).Replace(timelineMerges)
			set += " UNION SELECT post_id FROM (" + merges + ") AS m"
		}
		// Only what changes often, and the versions of the rest (see
		// rowcache.go). The rule's block check leaves both block flags
		// false.
		// Each subquery about the reader is a lookup per row (perRow).
		perRow := db.perRow()
		return "SELECT p.id, p.author_id, p.video_id, p.likes_count, p.comments_count, " + versionExpr("p") + " AS version, " +
			"EXISTS (SELECT 1 FROM likes AS lk WHERE lk.post_id = p.id AND lk.user_id = $1" + perRow + ") AS liked_by_me, " +
			"u.followers_count, u.following_count, u.posts_count, " + versionExpr("u") + " AS author_version, " +
			// Outside groups the rule shows only the reader's own posts and
			// those of authors they follow: no lookup needed.
			"CASE WHEN p.group_id IS NULL THEN p.author_id <> $1 ELSE EXISTS (SELECT 1 FROM follows AS r1 WHERE r1.follower_id = $1 AND r1.followee_id = p.author_id" + perRow + ") END AS followed_by_me, " +
			"EXISTS (SELECT 1 FROM follows AS r2 WHERE r2.follower_id = p.author_id AND r2.followee_id = $1" + perRow + ") AS follows_me" +
			" FROM posts AS p JOIN users AS u ON u.id = p.author_id" +
			" WHERE p.id IN (" + set + ") AND " +
			strings.NewReplacer("?0", "$1", "?1", "$2", "?p", perRow).Replace(homeFeedVisible) +
			" ORDER BY p.id DESC LIMIT " + lim
	})
	var rows []struct {
		ID            string  `bun:"id"`
		AuthorID      string  `bun:"author_id"`
		VideoID       *string `bun:"video_id"`
		LikesCount    int64   `bun:"likes_count"`
		CommentsCount int64   `bun:"comments_count"`
		Version       string  `bun:"version"`
		LikedByMe     bool    `bun:"liked_by_me"`

		FollowersCount int64  `bun:"followers_count"`
		FollowingCount int64  `bun:"following_count"`
		PostsCount     int64  `bun:"posts_count"`
		AuthorVersion  string `bun:"author_version"`
		FollowedByMe   bool   `bun:"followed_by_me"`
		FollowsMe      bool   `bun:"follows_me"`
	}
	res, err := db.queryPrepared(ctx, tx, query, args...)
	if err == nil {
		err = db.ScanRows(ctx, res, &rows)
	}
	if err != nil {
		return nil, fmt.Errorf("list posts: %w", translate(err))
	}
	postVersions := make(map[string]string, len(rows))
	authorVersions := make(map[string]string, len(rows))
	for i := range rows {
		postVersions[rows[i].ID] = rows[i].Version
		authorVersions[rows[i].AuthorID] = rows[i].AuthorVersion
	}
	cached, err := db.cachedPosts(ctx, tx, postVersions)
	if err != nil {
		return nil, fmt.Errorf("list posts: %w", err)
	}
	authors, err := db.cachedAuthors(ctx, tx, authorVersions)
	if err != nil {
		return nil, fmt.Errorf("list posts: %w", err)
	}
	posts := make([]*Post, 0, len(rows))
	for i := range rows {
		r := &rows[i]
		c, a := cached[r.ID], authors[r.AuthorID]
		if c == nil || a == nil {
			continue // deleted since the page's statement
		}
		author := a.user // a copy: the counts are this read's
		author.FollowersCount, author.FollowingCount, author.PostsCount = r.FollowersCount, r.FollowingCount, r.PostsCount
		posts = append(posts, &Post{
			ID: r.ID, AuthorID: r.AuthorID, Content: c.content, Visibility: c.visibility, GroupID: c.groupID, VideoID: r.VideoID,
			LikesCount: r.LikesCount, CommentsCount: r.CommentsCount, CreatedAt: c.createdAt, UpdatedAt: c.updatedAt,
			Hashtags: c.hashtags, LikedByMe: r.LikedByMe,
			Author: &author, AuthorRel: Relationship{FollowedByMe: r.FollowedByMe, FollowsMe: r.FollowsMe},
		})
	}
	return posts, nil
}

// homeFeedVisible is the home feed of ?0 and the visibility rule
// (visibleTo) together, for posts already known to come from the feed's
// sources (a timeline's candidates), with their author joined as u: the
// author is not suspended and no block stands between the two; a post
// outside groups is the reader's own or by someone they follow (who may
// then see both public and followers-only posts); a group post needs active membership (?1). One
// follow lookup per post instead of visibleTo's and the feed's two, and a
// short predicate for the planner; ?p ends that lookup (perRow).
const homeFeedVisible = `u.suspended_at IS NULL AND
NOT EXISTS (SELECT 1 FROM blocks AS bx WHERE (bx.blocker_id = ?0 AND bx.blocked_id = p.author_id) OR (bx.blocker_id = p.author_id AND bx.blocked_id = ?0)) AND
((p.group_id IS NULL AND (p.author_id = ?0 OR EXISTS (SELECT 1 FROM follows AS ff WHERE ff.follower_id = ?0 AND ff.followee_id = p.author_id?p)))
 OR (p.group_id IS NOT NULL AND EXISTS (SELECT 1 FROM group_members AS fg WHERE fg.group_id = p.group_id AND fg.user_id = ?0 AND fg.state = ?1)))`

// loadHashtags fills the Hashtags of posts in one query.
func (db *DB) loadHashtags(ctx context.Context, tx bun.IDB, posts []*Post) error {
	if len(posts) == 0 {
		return nil
	}
	ids := make([]string, len(posts))
	byID := make(map[string]*Post, len(posts))
	for i, p := range posts {
		ids[i], byID[p.ID] = p.ID, p
		p.Hashtags = nil
	}
	var tags []PostHashtag
	if err := tx.NewSelect().Model(&tags).Where("post_id IN (?)", bun.List(ids)).OrderExpr("post_id, position").Scan(ctx); err != nil {
		return fmt.Errorf("load hashtags: %w", translate(err))
	}
	for _, t := range tags {
		byID[t.PostID].Hashtags = append(byID[t.PostID].Hashtags, t.Tag)
	}
	return nil
}

// LikedPosts returns which of postIDs userID likes, in one query.
func (db *DB) LikedPosts(ctx context.Context, tx bun.IDB, userID string, postIDs []string) (map[string]bool, error) {
	out := make(map[string]bool)
	if userID == "" || len(postIDs) == 0 {
		return out, nil
	}
	// Prepared (see queryPrepared): every read of a single post asks.
	where, arg, key := db.inIDs("l.post_id", 2, postIDs)
	query := db.sqlText("liked posts"+key, func() string {
		return "SELECT l.post_id FROM likes AS l WHERE l.user_id = $1 AND " + where
	})
	ids, err := db.scanIDs(ctx, tx, query, userID, arg)
	if err != nil {
		return nil, fmt.Errorf("liked posts: %w", err)
	}
	for _, id := range ids {
		out[id] = true
	}
	return out, nil
}

// CreateLike records a like and counts it; false when it already existed.
func (db *DB) CreateLike(ctx context.Context, tx bun.IDB, postID, userID string) (bool, error) {
	// Prepared (see queryPrepared).
	res, err := db.execPrepared(ctx, tx, `INSERT INTO likes (post_id, user_id, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`,
		postID, userID, db.timeArg(db.Now()))
	if err != nil {
		return false, fmt.Errorf("create like: %w", translate(err))
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return false, nil
	}
	return true, db.adjustPostCount(ctx, tx, postID, "likes_count", 1)
}

// DeleteLike removes a like and its count; false when there was none.
func (db *DB) DeleteLike(ctx context.Context, tx bun.IDB, postID, userID string) (bool, error) {
	res, err := tx.NewDelete().Model((*Like)(nil)).Where("post_id = ? AND user_id = ?", postID, userID).Exec(ctx)
	if err != nil {
		return false, fmt.Errorf("delete like: %w", translate(err))
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return false, nil
	}
	return true, db.adjustPostCount(ctx, tx, postID, "likes_count", -1)
}

func (db *DB) adjustPostCount(ctx context.Context, tx bun.IDB, postID, column string, delta int) error {
	// Prepared (see queryPrepared): every like and comment counts. column
	// is one of the code's own names, never input.
	query := db.sqlText("count "+column, func() string {
		return "UPDATE posts SET " + column + " = " + column + " + $1 WHERE id = $2"
	})
	if _, err := db.execPrepared(ctx, tx, query, delta, postID); err != nil {
		return fmt.Errorf("count %s: %w", column, translate(err))
	}
	return nil
}

// CreateComment inserts a comment and counts it on its post.
func (db *DB) CreateComment(ctx context.Context, tx bun.IDB, c *Comment) error {
	if c.ID == "" {
		c.ID = NewID()
	}
	if c.CreatedAt.IsZero() {
		c.CreatedAt = db.Now()
	}
	if _, err := tx.NewInsert().Model(c).Exec(ctx); err != nil {
		return fmt.Errorf("create comment: %w", translate(err))
	}
	return db.adjustPostCount(ctx, tx, c.PostID, "comments_count", 1)
}

// GetComment returns a comment of a post. Returns an error matching
// IsNotFound when there is none.
func (db *DB) GetComment(ctx context.Context, tx bun.IDB, postID, id string) (*Comment, error) {
	// Prepared (see queryPrepared): every new comment is read back.
	query := db.sqlText("comment", func() string {
		return "SELECT " + db.columns((*Comment)(nil), "c") + " FROM comments AS c WHERE c.id = $1 AND c.post_id = $2"
	})
	c, err := queryFirst[Comment](ctx, db, tx, query, id, postID)
	if err != nil {
		return nil, fmt.Errorf("get comment: %w", translate(err))
	}
	return c, nil
}

// DeleteComment deletes a comment and uncounts it.
func (db *DB) DeleteComment(ctx context.Context, tx bun.IDB, c *Comment) error {
	if _, err := tx.NewDelete().Model((*Comment)(nil)).Where("id = ?", c.ID).Exec(ctx); err != nil {
		return fmt.Errorf("delete comment: %w", translate(err))
	}
	return db.adjustPostCount(ctx, tx, c.PostID, "comments_count", -1)
}

// CommentFilter selects a page of a post's comments, oldest first.
type CommentFilter struct {
	PostID string
	// ViewerID hides comments by users blocked either way with the viewer,
	// and by suspended users.
	ViewerID string
	AfterID  string
	Limit    int
}

// ListComments returns a page of comments in one prepared statement per
// shape (see queryPrepared; Postgres planned bun's text on every page),
// without those by a suspended author or one blocked either way with the
// viewer, each checked by a lookup per row (perRow).
func (db *DB) ListComments(ctx context.Context, tx bun.IDB, f CommentFilter) ([]*Comment, error) {
	var p params
	post, viewer := p.add(f.PostID), p.add(f.ViewerID)
	after, shape := "", "list comments"
	if f.AfterID != "" {
		after, shape = " AND c.id > "+p.add(f.AfterID), shape+" after"
	}
	lim, args := db.limitParam(len(p)+1, f.Limit, p...)
	query := db.sqlText(shape+" "+lim, func() string {
		return "SELECT " + db.columns((*Comment)(nil), "c") + " FROM comments AS c WHERE c.post_id = " + post + after +
			" AND " + userShown("c.author_id", viewer, db.perRow()) + " ORDER BY c.id ASC LIMIT " + lim
	})
	var comments []*Comment
	rows, err := db.queryPrepared(ctx, tx, query, args...)
	if err == nil {
		err = db.ScanRows(ctx, rows, &comments)
	}
	if err != nil {
		return nil, fmt.Errorf("list comments: %w", translate(err))
	}
	return comments, nil
}

// IdempotencyKey remembers the first result of a create made with a key.
type IdempotencyKey struct {
	bun.BaseModel `bun:"table:idempotency_keys,alias:ik"`

	UserID      string    `bun:"user_id,pk"`
	Scope       string    `bun:"scope,pk"`
	Key         string    `bun:"key,pk"`
	RequestHash string    `bun:"request_hash,notnull"`
	ResourceID  string    `bun:"resource_id,notnull"`
	CreatedAt   time.Time `bun:"created_at,notnull"`
}

// GetIdempotencyKey returns a remembered key. Returns an error matching
// IsNotFound when there is none.
func (db *DB) GetIdempotencyKey(ctx context.Context, tx bun.IDB, userID, scope, key string) (*IdempotencyKey, error) {
	k := new(IdempotencyKey)
	if err := tx.NewSelect().Model(k).Where("user_id = ? AND scope = ? AND key = ?", userID, scope, key).Scan(ctx); err != nil {
		return nil, fmt.Errorf("get idempotency key: %w", translate(err))
	}
	return k, nil
}

// CreateIdempotencyKey remembers a key. Returns an error wrapping
// ErrConflict when a concurrent request with the same key got there first.
func (db *DB) CreateIdempotencyKey(ctx context.Context, tx bun.IDB, k *IdempotencyKey) error {
	k.CreatedAt = db.Now()
	if _, err := tx.NewInsert().Model(k).Exec(ctx); err != nil {
		return fmt.Errorf("create idempotency key: %w", translate(err))
	}
	return nil
}
