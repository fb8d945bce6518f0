package store

import (
	"context"
	"fmt"
	"time"

	"github.com/uptrace/bun"
)

// Video statuses as stored.
const (
	VideoProcessing = "processing"
	VideoReady      = "ready"
	VideoFailed     = "failed"
)

// Video is an uploaded video. Its files live in media storage under keys
// that internal/video derives from the ID.
type Video struct {
	bun.BaseModel `bun:"table:videos,alias:v"`

	ID              string    `bun:"id,pk"`
	OwnerID         string    `bun:"owner_id,notnull"`
	Status          string    `bun:"status,notnull"`
	FailureReason   string    `bun:"failure_reason,notnull"`
	ContentType     string    `bun:"content_type,notnull"`
	OriginalBytes   int64     `bun:"original_bytes,notnull"`
	SizeBytes       int64     `bun:"size_bytes,notnull"`
	DurationSeconds float64   `bun:"duration_seconds,notnull"`
	Width           int32     `bun:"width,notnull"`
	Height          int32     `bun:"height,notnull"`
	CreatedAt       time.Time `bun:"created_at,notnull"`
	UpdatedAt       time.Time `bun:"updated_at,notnull"`

	// Public is computed by the reads that say so: the video is carried by
	// a public post outside any group whose author is not suspended, so
	// anyone may fetch its files without a signed URL.
	Public bool `bun:"public,scanonly"`
}

// videoPublic is the SQL for Video.Public over videos AS v.
const videoPublic = "EXISTS (SELECT 1 FROM posts AS vp JOIN users AS vu ON vu.id = vp.author_id" +
	" WHERE vp.video_id = v.id AND vp.visibility = 'public' AND vp.group_id IS NULL AND vu.suspended_at IS NULL) AS public"

// CreateVideo inserts v.
func (db *DB) CreateVideo(ctx context.Context, tx bun.IDB, v *Video) error {
	if v.ID == "" {
		v.ID = NewID()
	}
	if v.CreatedAt.IsZero() {
		v.CreatedAt = db.Now()
	}
	v.UpdatedAt = v.CreatedAt
	if _, err := tx.NewInsert().Model(v).Exec(ctx); err != nil {
		return fmt.Errorf("create video: %w", translate(err))
	}
	return nil
}

// GetVideo returns a video whoever may see it, with Public set. Returns an
// error matching IsNotFound when there is none.
func (db *DB) GetVideo(ctx context.Context, tx bun.IDB, id string) (*Video, error) {
	v := new(Video)
	if err := tx.NewSelect().Model(v).ColumnExpr("v.*").ColumnExpr(videoPublic).Where("v.id = ?", id).Scan(ctx); err != nil {
		return nil, fmt.Errorf("get video: %w", translate(err))
	}
	return v, nil
}

// GetVisibleVideo returns a video if viewerID uploaded it or may see a post
// that carries it (the posts' visibility rule), checking and loading in one
// query. Returns an error matching IsNotFound otherwise.
func (db *DB) GetVisibleVideo(ctx context.Context, tx bun.IDB, viewerID, id string) (*Video, error) {
	v := new(Video)
	carriers := visibleTo(tx.NewSelect().Model((*Post)(nil)).ColumnExpr("1").Where("p.video_id = v.id"), viewerID, true)
	err := tx.NewSelect().Model(v).ColumnExpr("v.*").ColumnExpr(videoPublic).
		Where("v.id = ?", id).
		Where("(v.owner_id = ? OR EXISTS (?))", viewerID, carriers).
		Scan(ctx)
	if err != nil {
		return nil, fmt.Errorf("get visible video: %w", translate(err))
	}
	return v, nil
}

// VideosByID returns the videos with these IDs, with Public set, in one
// query. Missing IDs are left out.
func (db *DB) VideosByID(ctx context.Context, tx bun.IDB, ids []string) (map[string]*Video, error) {
	out := make(map[string]*Video, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	var videos []*Video
	if err := tx.NewSelect().Model(&videos).ColumnExpr("v.*").ColumnExpr(videoPublic).
		Where("v.id IN (?)", bun.List(ids)).Scan(ctx); err != nil {
		return nil, fmt.Errorf("videos by id: %w", translate(err))
	}
	for _, v := range videos {
		out[v.ID] = v
	}
	return out, nil
}

// FinishVideo records the outcome of processing: v's status (ready or
// failed) and, when ready, its measurements. It changes only a video still
// processing and reports whether it did: false when the video was deleted
// (or finished) meanwhile.
func (db *DB) FinishVideo(ctx context.Context, tx bun.IDB, v *Video) (bool, error) {
	v.UpdatedAt = db.Now()
	res, err := tx.NewUpdate().Model(v).
		Column("status", "failure_reason", "size_bytes", "duration_seconds", "width", "height", "updated_at").
		Where("id = ? AND status = ?", v.ID, VideoProcessing).Exec(ctx)
	if err != nil {
		return false, fmt.Errorf("finish video: %w", translate(err))
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// DeleteVideo deletes a video row and takes it off the post that carries
// it, if any; it reports whether there was one.
func (db *DB) DeleteVideo(ctx context.Context, tx bun.IDB, id string) (bool, error) {
	if _, err := tx.NewUpdate().Model((*Post)(nil)).Set("video_id = NULL").Where("video_id = ?", id).Exec(ctx); err != nil {
		return false, fmt.Errorf("detach video: %w", translate(err))
	}
	res, err := tx.NewDelete().Model((*Video)(nil)).Where("id = ?", id).Exec(ctx)
	if err != nil {
		return false, fmt.Errorf("delete video: %w", translate(err))
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// StaleProcessingVideos returns up to limit IDs of videos that have been
// processing since before t, oldest first.
func (db *DB) StaleProcessingVideos(ctx context.Context, tx bun.IDB, t time.Time, limit int) ([]string, error) {
	var ids []string
	if err := tx.NewSelect().Model((*Video)(nil)).Column("id").
		Where("status = ? AND updated_at < ?", VideoProcessing, t).
		OrderExpr("updated_at").Limit(int64(limit)).Scan(ctx, &ids); err != nil {
		return nil, fmt.Errorf("stale videos: %w", translate(err))
	}
	return ids, nil
}
