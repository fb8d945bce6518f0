package store

import (
	"context"
	"fmt"
	"time"

	"github.com/uptrace/bun"
)

// Report statuses as stored.
const (
	ReportOpen     = "open"
	ReportResolved = "resolved"
)

// ReportStatuses lists the statuses in the order ListReports returns them:
// a status's index is its rank in that order (open ones first).
var ReportStatuses = []string{ReportOpen, ReportResolved}

// Report reasons as stored.
const (
	ReasonSpam           = "spam"
	ReasonHarassment     = "harassment"
	ReasonHate           = "hate"
	ReasonViolence       = "violence"
	ReasonNudity         = "nudity"
	ReasonMisinformation = "misinformation"
	ReasonOther          = "other"
)

// Report actions as stored.
const (
	ActionDismiss       = "dismiss"
	ActionRemovePost    = "remove_post"
	ActionSuspendAuthor = "suspend_author"
)

// Report is a report row. PostID has no foreign key: a report outlives a
// post that staff removed.
type Report struct {
	bun.BaseModel `bun:"table:reports,alias:r"`

	ID           string     `bun:"id,pk"`
	PostID       string     `bun:"post_id,notnull"`
	PostAuthorID string     `bun:"post_author_id,notnull"`
	ReporterID   string     `bun:"reporter_id,notnull"`
	Reason       string     `bun:"reason,notnull"`
	Details      string     `bun:"details,notnull"`
	Status       string     `bun:"status,notnull"`
	Action       *string    `bun:"action"`
	ResolvedByID *string    `bun:"resolved_by_id"`
	CreatedAt    time.Time  `bun:"created_at,notnull"`
	ResolvedAt   *time.Time `bun:"resolved_at"`
}

// CreateReport inserts an open report unless its reporter already has an
// open report of that post; it reports whether it inserted. Of two
// concurrent reports of one post by one user, one inserts and the other
// gets false (the partial unique index decides).
func (db *DB) CreateReport(ctx context.Context, tx bun.IDB, r *Report) (bool, error) {
	if r.ID == "" {
		r.ID = NewID()
	}
	r.Status = ReportOpen
	r.CreatedAt = db.Now()
	res, err := tx.NewInsert().Model(r).On("CONFLICT DO NOTHING").Exec(ctx)
	if err != nil {
		return false, fmt.Errorf("create report: %w", translate(err))
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// GetOpenReport returns reporterID's open report of postID. Returns an
// error matching IsNotFound when there is none.
func (db *DB) GetOpenReport(ctx context.Context, tx bun.IDB, reporterID, postID string) (*Report, error) {
	r := new(Report)
	if err := tx.NewSelect().Model(r).
		Where("r.reporter_id = ? AND r.post_id = ? AND r.status = ?", reporterID, postID, ReportOpen).
		Scan(ctx); err != nil {
		return nil, fmt.Errorf("get open report: %w", translate(err))
	}
	return r, nil
}

// GetReport returns the report with the given ID. Returns an error matching
// IsNotFound when there is none.
func (db *DB) GetReport(ctx context.Context, tx bun.IDB, id string) (*Report, error) {
	r := new(Report)
	if err := tx.NewSelect().Model(r).Where("r.id = ?", id).Scan(ctx); err != nil {
		return nil, fmt.Errorf("get report: %w", translate(err))
	}
	return r, nil
}

// ReportResolution is how staff resolved the reports of a post.
type ReportResolution struct {
	PostID       string
	Action       string
	ResolvedByID string
}

// ResolveOpenReports resolves every open report of a post with one action
// and returns the IDs of the reports it resolved: a report resolved
// concurrently by someone else is not among them. One statement.
func (db *DB) ResolveOpenReports(ctx context.Context, tx bun.IDB, res ReportResolution) ([]string, error) {
	var ids []string
	err := tx.NewUpdate().Model((*Report)(nil)).
		Set("status = ?", ReportResolved).
		Set("action = ?", res.Action).
		Set("resolved_by_id = ?", res.ResolvedByID).
		Set("resolved_at = ?", db.Now()).
		Where("post_id = ? AND status = ?", res.PostID, ReportOpen).
		Returning("id").
		Scan(ctx, &ids)
	if err != nil {
		return nil, fmt.Errorf("resolve reports: %w", translate(err))
	}
	return ids, nil
}

// ReportFilter selects a page of reports: open ones first, then resolved
// ones, each newest first.
type ReportFilter struct {
	// Status, when set, lists only reports in that status.
	Status string
	// AfterRank and AfterID continue after the last report of the previous
	// page: its status's index in ReportStatuses, and its ID. AfterID ""
	// starts from the first report.
	AfterRank int
	AfterID   string
	Limit     int
}

// ListReports returns a page of reports in the order of ReportFilter. Each
// status is one index scan of (status, id), so a page takes one query, or
// two where it crosses from open to resolved reports.
func (db *DB) ListReports(ctx context.Context, tx bun.IDB, f ReportFilter) ([]*Report, error) {
	var out []*Report
	for rank, status := range ReportStatuses {
		if (f.Status != "" && status != f.Status) || (f.AfterID != "" && rank < f.AfterRank) {
			continue
		}
		if len(out) >= f.Limit {
			break
		}
		var rows []*Report
		q := tx.NewSelect().Model(&rows).Where("r.status = ?", status).
			OrderExpr("r.id DESC").Limit(int64(f.Limit - len(out)))
		if f.AfterID != "" && rank == f.AfterRank {
			q = q.Where("r.id < ?", f.AfterID)
		}
		if err := q.Scan(ctx); err != nil {
			return nil, fmt.Errorf("list reports: %w", translate(err))
		}
		out = append(out, rows...)
	}
	return out, nil
}

// GetReportedPosts returns the posts with the given IDs that still exist, with
// their hashtags, in two queries whatever their number, whoever may see
// them (moderation shows staff the posts they judge).
func (db *DB) GetReportedPosts(ctx context.Context, tx bun.IDB, ids []string) (map[string]*Post, error) {
	out := make(map[string]*Post, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	var posts []*Post
	if err := tx.NewSelect().Model(&posts).Where("p.id IN (?)", bun.List(ids)).Scan(ctx); err != nil {
		return nil, fmt.Errorf("get reported posts: %w", translate(err))
	}
	if err := db.loadHashtags(ctx, tx, posts); err != nil {
		return nil, err
	}
	for _, p := range posts {
		out[p.ID] = p
	}
	return out, nil
}

// SuspendUser marks a user suspended, keeping the first time they were.
// A suspended user cannot log in or use their tokens, and their content
// and profile drop out of every list (the queries filter on suspended_at).
// Their sessions are revoked separately (RevokeUserSessionsReturningIDs).
func (db *DB) SuspendUser(ctx context.Context, tx bun.IDB, userID string) error {
	now := db.Now()
	_, err := tx.NewUpdate().Model((*User)(nil)).
		Set("suspended_at = ?", now).Set("updated_at = ?", now).
		Where("id = ? AND suspended_at IS NULL", userID).Exec(ctx)
	if err != nil {
		return fmt.Errorf("suspend user: %w", translate(err))
	}
	return nil
}
