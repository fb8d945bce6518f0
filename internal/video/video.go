// Package video holds the rules of uploaded videos: the upload, streamed to
// media storage under a size limit and typed by its bytes; the durable
// processing job that probes it, enforces the limits and makes a browser-
// playable MP4 and a poster; who may see it; and removing its files.
//
// A video's files live in media storage under videos/<id>/: "original"
// (the upload, until processed), "video.mp4" and "poster.jpg".
package video

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"strings"
	"time"

	"github.com/gabriel-vasile/mimetype"
	"github.com/uptrace/bun"
	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"

	"github.com/flock-social/flock"
	"github.com/flock-social/flock/internal/account"
	"github.com/flock-social/flock/internal/jobs"
	"github.com/flock-social/flock/internal/store"
)

// Defaults of Config.
const (
	DefaultMaxBytes       = 1 << 30
	DefaultMaxDuration    = 10 * time.Minute
	DefaultMaxDimension   = 4096
	DefaultMaxFrameRate   = 60
	DefaultProcessTimeout = 15 * time.Minute
)

// Config sets the limits and the processing of videos.
type Config struct {
	// MaxBytes is the largest upload accepted (default 1 GiB).
	MaxBytes int64
	// MaxDuration, MaxDimension (either side, in pixels) and MaxFrameRate
	// are the limits a video must be within to be processed.
	MaxDuration  time.Duration
	MaxDimension int
	MaxFrameRate float64
	// ProcessTimeout bounds the processing of one video (download, probe,
	// transcode, poster, upload); past it the video fails.
	ProcessTimeout time.Duration
	// Workers is how many videos this instance processes at once (default
	// 1); below zero it processes none and only queues them for instances
	// that do.
	Workers int
	// Threads is how many threads each ffmpeg may use (default 2).
	Threads int
	// FFmpeg and FFprobe are the tools' paths; empty means looked up in PATH.
	FFmpeg, FFprobe string
	// TempDir holds the files of a video while it is processed; empty means
	// the system's temporary directory.
	TempDir string
	// JobPoll is how often the queue is polled for new jobs where it cannot
	// be notified (SQLite; default 1s).
	JobPoll time.Duration
	// StopGrace is how long Close lets running jobs finish before it
	// cancels them; a cancelled job goes back to the queue (default 20s).
	StopGrace time.Duration
}

func (c *Config) defaults() {
	if c.MaxBytes <= 0 {
		c.MaxBytes = DefaultMaxBytes
	}
	if c.MaxDuration <= 0 {
		c.MaxDuration = DefaultMaxDuration
	}
	if c.MaxDimension <= 0 {
		c.MaxDimension = DefaultMaxDimension
	}
	if c.MaxFrameRate <= 0 {
		c.MaxFrameRate = DefaultMaxFrameRate
	}
	if c.ProcessTimeout <= 0 {
		c.ProcessTimeout = DefaultProcessTimeout
	}
	if c.Workers == 0 {
		c.Workers = 1
	}
	if c.Threads <= 0 {
		c.Threads = 2
	}
	if c.JobPoll <= 0 {
		c.JobPoll = time.Second
	}
	if c.StopGrace <= 0 {
		c.StopGrace = 20 * time.Second
	}
}

// Service carries out video actions.
type Service struct {
	db     *store.DB
	bucket *blob.Bucket
	cfg    Config
	log    *slog.Logger
	tools  tools
	queue  *jobs.Queue
	// unavailable is why this instance cannot process videos (ffmpeg is
	// missing), so it refuses uploads; nil when it can.
	unavailable error
}

// ErrTooLarge is returned (wrapped) by Upload for a file past Config.MaxBytes.
var ErrTooLarge = errors.New("video too large")

// Keys of a video's files in media storage.
func OriginalKey(id string) string { return "videos/" + id + "/original" }
func PlaybackKey(id string) string { return "videos/" + id + "/video.mp4" }
func PosterKey(id string) string   { return "videos/" + id + "/poster.jpg" }

// NewService returns a Service whose jobs run on q (registered here,
// before q opens). q's Start begins processing; its Close stops it, giving
// running jobs Config.StopGrace.
func NewService(db *store.DB, q *jobs.Queue, bucket *blob.Bucket, cfg Config, log *slog.Logger) *Service {
	cfg.defaults()
	s := &Service{db: db, bucket: bucket, cfg: cfg, log: log}
	s.tools = tools{ffprobe: cfg.FFprobe, ffmpeg: cfg.FFmpeg, threads: cfg.Threads}
	if s.cfg.Workers > 0 {
		var err1, err2 error
		s.tools.ffprobe, err1 = lookPath(cfg.FFprobe, "ffprobe")
		s.tools.ffmpeg, err2 = lookPath(cfg.FFmpeg, "ffmpeg")
		if err := errors.Join(err1, err2); err != nil {
			// Serve everything else; refuse uploads with the reason.
			log.Warn("video uploads are off", "err", err)
			s.unavailable = err
			s.cfg.Workers = -1
		}
	}
	s.queue = q
	s.register(q)
	return s
}

func lookPath(path, name string) (string, error) {
	if path == "" {
		path = name
	}
	found, err := exec.LookPath(path)
	if err != nil {
		return "", fmt.Errorf("video processing needs %s (Debian/Ubuntu: apt-get install ffmpeg; or FLOCK_VIDEO_WORKERS=-1 on an instance that only takes uploads for others to process): %w", name, err)
	}
	return found, nil
}

// StopGrace is how long running video jobs get to finish when the queue
// closes.
func (s *Service) StopGrace() time.Duration { return s.cfg.StopGrace }

// MaxBytes is the largest upload accepted.
func (s *Service) MaxBytes() int64 { return s.cfg.MaxBytes }

// Upload stores a video from r, streaming it to media storage (never
// holding the file in memory), and queues its processing. The type is
// decided by the bytes: anything but a video is refused with EINVALID. A
// file past MaxBytes is refused with an error wrapping ErrTooLarge, and
// nothing of it is kept.
func (s *Service) Upload(ctx context.Context, p *account.Principal, r io.Reader) (*store.Video, error) {
	if s.unavailable != nil {
		return nil, flock.Errorf(flock.EUNAVAILABLE, "this server cannot process videos: ffmpeg is not installed on it")
	}
	head := make([]byte, 3072)
	n, err := io.ReadFull(r, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("upload video: read: %w", err)
	}
	head = head[:n]
	if n == 0 {
		return nil, flock.FieldErrorf("file", "the file is empty: send the video in the file part")
	}
	mt := mimetype.Detect(head)
	if !strings.HasPrefix(mt.String(), "video/") {
		return nil, flock.FieldErrorf("file", "the file is %s, not a video: upload an MP4, WebM, MOV, MKV or AVI file", mt.String())
	}
	v := &store.Video{ID: store.NewID(), OwnerID: p.UserID, Status: store.VideoProcessing, ContentType: mt.String()}
	key := OriginalKey(v.ID)
	wctx, abort := context.WithCancel(ctx)
	defer abort()
	w, err := s.bucket.NewWriter(wctx, key, &blob.WriterOptions{ContentType: v.ContentType})
	if err != nil {
		return nil, fmt.Errorf("upload video: open storage: %w", err)
	}
	limit := s.cfg.MaxBytes
	// Large writes: the reader may hand over a few KiB at a time, and
	// every write costs a system call (local disk) and a hash update.
	bw := bufio.NewWriterSize(w, 1<<20)
	written, err := io.Copy(bw, io.LimitReader(io.MultiReader(bytes.NewReader(head), r), limit+1))
	if err == nil {
		err = bw.Flush()
	}
	if err == nil && written > limit {
		err = fmt.Errorf("%w: the video may be at most %s", ErrTooLarge, humanBytes(limit))
	}
	if err != nil {
		abort() // the write is discarded: nothing of it is stored
		_ = w.Close()
		return nil, fmt.Errorf("upload video: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("upload video: store: %w", err)
	}
	v.OriginalBytes = written
	if err := s.db.CreateVideo(ctx, s.db, v); err != nil {
		s.removeFiles(context.WithoutCancel(ctx), v.ID)
		return nil, fmt.Errorf("upload video: %w", err)
	}
	if err := s.enqueue(ctx, v.ID); err != nil {
		// The rescue job picks it up later; the upload itself is safe.
		s.log.WarnContext(ctx, "queue video processing", "video", v.ID, "err", err)
	}
	return v, nil
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20:
		return fmt.Sprintf("%d MiB", n>>20)
	default:
		return fmt.Sprintf("%d bytes", n)
	}
}

func notFound(id string) error { return flock.Errorf(flock.ENOTFOUND, "video %q not found", id) }

// Get returns a video its uploader, or anyone who may see a post carrying
// it, asks for. ENOTFOUND otherwise.
func (s *Service) Get(ctx context.Context, p *account.Principal, id string) (*store.Video, error) {
	v, err := s.db.GetVisibleVideo(ctx, s.db, p.UserID, id)
	if store.IsNotFound(err) {
		return nil, notFound(id)
	} else if err != nil {
		return nil, fmt.Errorf("get video: %w", err)
	}
	return v, nil
}

// ByID returns videos by ID for a page of posts the viewer may see (the
// posts' visibility stands for their videos): one query.
func (s *Service) ByID(ctx context.Context, ids []string) (map[string]*store.Video, error) {
	return s.db.VideosByID(ctx, s.db, ids)
}

// Delete deletes a video and its files; a post that carried it stays,
// without it. Uploader only: ENOTFOUND for a video the caller may not see,
// EFORBIDDEN for one they see but did not upload.
func (s *Service) Delete(ctx context.Context, p *account.Principal, id string) error {
	v, err := s.Get(ctx, p, id)
	if err != nil {
		return err
	}
	if v.OwnerID != p.UserID {
		return flock.Errorf(flock.EFORBIDDEN, "only the uploader may delete a video")
	}
	if _, err := s.db.DeleteVideo(ctx, s.db, id); err != nil {
		return fmt.Errorf("delete video: %w", err)
	}
	s.removeFiles(ctx, id)
	return nil
}

// CheckAttach refuses to put a video on a new post unless the author
// uploaded it and it did not fail: ENOTFOUND, or EPRECONDITION for a failed
// one. (That no other post carries it is left to a unique index, so two
// racing posts cannot both take it.)
func (s *Service) CheckAttach(ctx context.Context, tx bun.IDB, authorID, id string) error {
	v, err := s.db.GetVideo(ctx, tx, id)
	if store.IsNotFound(err) || (err == nil && v.OwnerID != authorID) {
		return flock.Errorf(flock.ENOTFOUND, "video %q not found: upload it first with POST /api/posts/videos/", id)
	} else if err != nil {
		return err
	}
	if v.Status == store.VideoFailed {
		return flock.Errorf(flock.EPRECONDITION, "video %q failed processing (%s) and cannot be posted", id, v.FailureReason)
	}
	return nil
}

// Removed deletes the files of videos whose rows a transaction that has
// committed deleted (with their post). Failures are logged: a file left
// behind is unreachable, since nothing refers to it any more.
func (s *Service) Removed(ctx context.Context, ids ...string) {
	for _, id := range ids {
		s.removeFiles(ctx, id)
	}
}

func (s *Service) removeFiles(ctx context.Context, id string) {
	if err := s.RemoveFiles(context.WithoutCancel(ctx), id); err != nil {
		s.log.WarnContext(ctx, "delete video file", "video", id, "err", err)
	}
}

// RemoveFiles deletes the files of a video whose row is gone, for a job
// that retries until they are: files already missing are not an error, so
// it may run any number of times. It tries every file before it returns
// the errors.
func (s *Service) RemoveFiles(ctx context.Context, id string) error {
	var errs []error
	for _, key := range []string{OriginalKey(id), PlaybackKey(id), PosterKey(id)} {
		if err := s.bucket.Delete(ctx, key); err != nil && gcerrors.Code(err) != gcerrors.NotFound {
			errs = append(errs, fmt.Errorf("delete %s: %w", key, err))
		}
	}
	return errors.Join(errs...)
}

// Exists reports whether the video's row still exists: its files outlive
// it until their removal job has run, and a signed URL must not reach them
// meanwhile.
func (s *Service) Exists(ctx context.Context, id string) (bool, error) {
	if _, err := s.db.GetVideo(ctx, s.db, id); store.IsNotFound(err) {
		return false, nil
	} else if err != nil {
		return false, err
	}
	return true, nil
}

// Public reports whether a video's files may be fetched without a signed
// URL: it is ready and carried by a public post (see store.Video.Public).
func (s *Service) Public(ctx context.Context, id string) (bool, error) {
	v, err := s.db.GetVideo(ctx, s.db, id)
	if store.IsNotFound(err) {
		return false, nil
	} else if err != nil {
		return false, err
	}
	return v.Public && v.Status == store.VideoReady, nil
}
