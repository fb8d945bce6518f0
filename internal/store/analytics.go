package store

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/uptrace/bun"
)

// DayLayout is how a UTC day is written in the analytics tables and queries.
const DayLayout = "2006-01-02"

// PostViewsDaily is how often a post was read on one UTC day, summed over
// every instance's flushes.
type PostViewsDaily struct {
	bun.BaseModel `bun:"table:post_views_daily,alias:pvd"`

	PostID string `bun:"post_id,pk"`
	Day    string `bun:"day,pk"` // DayLayout
	Views  int64  `bun:"views,notnull"`
}

// PostViewer records that a user read a post on one UTC day.
type PostViewer struct {
	bun.BaseModel `bun:"table:post_viewers,alias:pv"`

	PostID   string `bun:"post_id,pk"`
	ViewerID string `bun:"viewer_id,pk"`
	Day      string `bun:"day,pk"` // DayLayout
}

// viewBatch bounds the rows of one statement of AddPostViews.
const viewBatch = 500

// AddPostViews adds view counts and records viewers, inside tx: views are
// added to what is stored (an upsert per post and day, so that instances
// flushing at once all count), viewers already recorded for that day are
// skipped. Rows of posts or users that no longer exist are left out, so a
// post deleted since it was read does not fail the batch. Callers should
// pass rows sorted by key, so that concurrent flushes take their row locks
// in the same order and cannot deadlock.
func (db *DB) AddPostViews(ctx context.Context, tx bun.IDB, views []PostViewsDaily, viewers []PostViewer) error {
	day := "v.day"
	if db.Engine == Postgres {
		day = "CAST(v.day AS DATE)"
	}
	for len(views) > 0 {
		n := min(len(views), viewBatch)
		args := make([]any, 0, 3*n)
		for _, v := range views[:n] {
			args = append(args, v.PostID, v.Day, v.Views)
		}
		q := "WITH v (post_id, day, views) AS (VALUES " + placeholders(n, 3) + ")\n" +
			"INSERT INTO post_views_daily (post_id, day, views)\n" +
			"SELECT v.post_id, " + day + ", v.views FROM v\n" +
			"WHERE EXISTS (SELECT 1 FROM posts AS p WHERE p.id = v.post_id)\n" +
			"ON CONFLICT (post_id, day) DO UPDATE SET views = post_views_daily.views + excluded.views"
		if _, err := tx.NewRaw(q, args...).Exec(ctx); err != nil {
			return fmt.Errorf("add post views: %w", translate(err))
		}
		views = views[n:]
	}
	for len(viewers) > 0 {
		n := min(len(viewers), viewBatch)
		args := make([]any, 0, 3*n)
		for _, v := range viewers[:n] {
			args = append(args, v.PostID, v.ViewerID, v.Day)
		}
		q := "WITH v (post_id, viewer_id, day) AS (VALUES " + placeholders(n, 3) + ")\n" +
			"INSERT INTO post_viewers (post_id, viewer_id, day)\n" +
			"SELECT v.post_id, v.viewer_id, " + day + " FROM v\n" +
			"WHERE EXISTS (SELECT 1 FROM posts AS p WHERE p.id = v.post_id) AND EXISTS (SELECT 1 FROM users AS u WHERE u.id = v.viewer_id)\n" +
			"ON CONFLICT DO NOTHING"
		if _, err := tx.NewRaw(q, args...).Exec(ctx); err != nil {
			return fmt.Errorf("add post viewers: %w", translate(err))
		}
		viewers = viewers[n:]
	}
	return nil
}

// placeholders returns rows groups of cols placeholders: "(?, ?), (?, ?)".
func placeholders(rows, cols int) string {
	row := "(" + strings.TrimSuffix(strings.Repeat("?, ", cols), ", ") + ")"
	return strings.TrimSuffix(strings.Repeat(row+", ", rows), ", ")
}

// dayOf is the SQL for the UTC day (DayLayout) of a timestamp or date column.
func (db *DB) dayOf(col string, isDate bool) string {
	switch {
	case db.Engine != Postgres && isDate:
		return col // stored as DayLayout text
	case db.Engine != Postgres:
		return "strftime('%Y-%m-%d', " + col + ")" // timestamps are stored in UTC
	case isDate:
		return "to_char(" + col + ", 'YYYY-MM-DD')"
	default:
		return "to_char(" + col + " AT TIME ZONE 'UTC', 'YYYY-MM-DD')"
	}
}

// GetPostCounters returns a post's author and counters (no content, no
// hashtags), whoever may see it: the caller checks visibility. Returns an
// error matching IsNotFound when there is none.
func (db *DB) GetPostCounters(ctx context.Context, tx bun.IDB, id string) (*Post, error) {
	p := new(Post)
	if err := tx.NewSelect().Model(p).Column("id", "author_id", "likes_count", "comments_count").
		Where("p.id = ?", id).Scan(ctx); err != nil {
		return nil, fmt.Errorf("get post counters: %w", translate(err))
	}
	return p, nil
}

// PostViewTotals returns the views stored for a post over all days and the
// number of distinct users recorded reading it. One query.
func (db *DB) PostViewTotals(ctx context.Context, tx bun.IDB, postID string) (views, uniqueViewers int64, err error) {
	err = tx.NewRaw("SELECT (SELECT COALESCE(SUM(views), 0) FROM post_views_daily WHERE post_id = ?), "+
		"(SELECT COUNT(DISTINCT viewer_id) FROM post_viewers WHERE post_id = ?)", postID, postID).
		Scan(ctx, &views, &uniqueViewers)
	if err != nil {
		return 0, 0, fmt.Errorf("post view totals: %w", translate(err))
	}
	return views, uniqueViewers, nil
}

// PostDay is one UTC day of a post's stored analytics.
type PostDay struct {
	Day                                   string // DayLayout
	Views, UniqueViewers, Likes, Comments int64
}

// PostDailyStats returns the stored analytics of a post per UTC day from
// the day of from (a UTC midnight) on, keyed by day; days without activity
// are absent. Likes and comments are those that exist now, on the day they
// were made. One query.
func (db *DB) PostDailyStats(ctx context.Context, tx bun.IDB, postID string, from time.Time) (map[string]*PostDay, error) {
	fromDay := from.UTC().Format(DayLayout)
	q := "SELECT 'v' AS kind, " + db.dayOf("day", true) + " AS day, views AS n FROM post_views_daily WHERE post_id = ? AND day >= ?\n" +
		"UNION ALL SELECT 'u', " + db.dayOf("day", true) + ", COUNT(*) FROM post_viewers WHERE post_id = ? AND day >= ? GROUP BY day\n" +
		"UNION ALL SELECT 'l', " + db.dayOf("created_at", false) + ", COUNT(*) FROM likes WHERE post_id = ? AND created_at >= ? GROUP BY 2\n" +
		"UNION ALL SELECT 'c', " + db.dayOf("created_at", false) + ", COUNT(*) FROM comments WHERE post_id = ? AND created_at >= ? GROUP BY 2"
	var rows []struct {
		Kind string `bun:"kind"`
		Day  string `bun:"day"`
		N    int64  `bun:"n"`
	}
	if err := tx.NewRaw(q, postID, fromDay, postID, fromDay, postID, from.UTC(), postID, from.UTC()).Scan(ctx, &rows); err != nil {
		return nil, fmt.Errorf("post daily stats: %w", translate(err))
	}
	out := map[string]*PostDay{}
	for _, r := range rows {
		d := out[r.Day]
		if d == nil {
			d = &PostDay{Day: r.Day}
			out[r.Day] = d
		}
		switch r.Kind {
		case "v":
			d.Views += r.N
		case "u":
			d.UniqueViewers += r.N
		case "l":
			d.Likes += r.N
		case "c":
			d.Comments += r.N
		}
	}
	return out, nil
}

// PostViewersAmong returns the days on which each of viewerIDs is recorded
// reading the post (those never recorded are absent), so that views not
// stored yet can be added without counting a viewer twice.
func (db *DB) PostViewersAmong(ctx context.Context, tx bun.IDB, postID string, viewerIDs []string) (map[string][]string, error) {
	out := map[string][]string{}
	for len(viewerIDs) > 0 {
		n := min(len(viewerIDs), viewBatch)
		var rows []struct {
			ViewerID string `bun:"viewer_id"`
			Day      string `bun:"day"`
		}
		if err := tx.NewSelect().Model((*PostViewer)(nil)).ColumnExpr("pv.viewer_id").ColumnExpr(db.dayOf("pv.day", true)+" AS day").
			Where("pv.post_id = ? AND pv.viewer_id IN (?)", postID, bun.List(viewerIDs[:n])).Scan(ctx, &rows); err != nil {
			return nil, fmt.Errorf("post viewers among: %w", translate(err))
		}
		for _, r := range rows {
			out[r.ViewerID] = append(out[r.ViewerID], r.Day)
		}
		viewerIDs = viewerIDs[n:]
	}
	return out, nil
}
