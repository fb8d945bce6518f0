package video

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/riverqueue/river"
	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"

	"github.com/flock-social/flock/internal/store"
	"github.com/flock-social/flock/internal/video/ffprobe"
)

// failure is a video that cannot be made playable; reason is for its
// uploader (Video.failure_reason).
type failure struct{ reason string }

func (f *failure) Error() string { return f.reason }

func failf(format string, args ...any) error { return &failure{reason: fmt.Sprintf(format, args...)} }

// processWorker runs processArgs jobs.
type processWorker struct {
	river.WorkerDefaults[processArgs]
	s *Service
}

// Work processes one video. A video that cannot be processed (unreadable,
// past a limit, too slow) fails with a reason and the job completes; other
// errors (storage, database) are retried by River with backoff, and the
// video fails after the last attempt. A job cancelled by shutdown returns
// its error, so River runs it again later.
func (w *processWorker) Work(ctx context.Context, job *river.Job[processArgs]) error {
	s := w.s
	id := job.Args.VideoID
	err := s.process(ctx, id)
	var f *failure
	switch {
	case err == nil:
		return nil
	case errors.As(err, &f):
		s.log.InfoContext(ctx, "video failed", "video", id, "reason", f.reason)
		return s.finishFailed(ctx, id, f.reason)
	case ctx.Err() != nil:
		return err
	case job.Attempt >= job.MaxAttempts:
		s.log.ErrorContext(ctx, "video processing gave up", "video", id, "attempt", job.Attempt, "err", err)
		if ferr := s.finishFailed(ctx, id, "the video could not be processed; upload it again"); ferr != nil {
			return errors.Join(err, ferr)
		}
		return err
	default:
		s.log.WarnContext(ctx, "video processing will retry", "video", id, "attempt", job.Attempt, "err", err)
		return err
	}
}

func (s *Service) finishFailed(ctx context.Context, id, reason string) error {
	ok, err := s.db.FinishVideo(ctx, s.db, &store.Video{ID: id, Status: store.VideoFailed, FailureReason: reason})
	if err != nil {
		return err
	}
	if ok {
		// Keep nothing of a video that will never play.
		s.removeFiles(ctx, id)
	}
	return nil
}

// process makes a video playable: download the upload, probe it, check the
// limits, transcode (or remux), take a poster, store both and mark it
// ready, all within ProcessTimeout.
func (s *Service) process(ctx context.Context, id string) error {
	v, err := s.db.GetVideo(ctx, s.db, id)
	if store.IsNotFound(err) {
		return nil // deleted before it was processed
	} else if err != nil {
		return err
	}
	if v.Status != store.VideoProcessing {
		return nil
	}
	dir, err := os.MkdirTemp(s.cfg.TempDir, "flock-video-")
	if err != nil {
		return fmt.Errorf("temporary dir: %w", err)
	}
	defer os.RemoveAll(dir)

	pctx, cancel := context.WithTimeout(ctx, s.cfg.ProcessTimeout)
	defer cancel()
	err = s.processIn(pctx, dir, v)
	if ctx.Err() == nil && errors.Is(pctx.Err(), context.DeadlineExceeded) {
		return failf("processing took longer than the %s limit", s.cfg.ProcessTimeout)
	}
	return err
}

// processIn does the work of process in dir. READY means playable and
// nothing of the upload kept: the upload is deleted after both outputs are
// stored and before the video is marked ready, so an attempt that stopped
// in between finds the outputs on its retry and only marks it ready.
func (s *Service) processIn(ctx context.Context, dir string, v *store.Video) error {
	if err := s.download(ctx, OriginalKey(v.ID), filepath.Join(dir, "original")); err != nil {
		var f *failure
		if errors.As(err, &f) {
			if done, rerr := s.resumeStored(ctx, dir, v); rerr != nil || done {
				return rerr
			}
		}
		return err
	}
	p, err := s.tools.probe(ctx, dir, "original")
	if errors.Is(err, errUnreadable) {
		return failf("the file is not a video that can be read")
	} else if err != nil {
		return err
	}
	if err := s.checkLimits(p); err != nil {
		return err
	}
	if err := s.tools.transcode(ctx, dir, "original", "video.mp4", p); errors.Is(err, errUnreadable) {
		return failf("the video could not be converted: it may be damaged")
	} else if err != nil {
		return err
	}
	out, err := s.tools.probe(ctx, dir, "video.mp4")
	if err != nil {
		return fmt.Errorf("probe converted video: %w", err)
	}
	if err := s.tools.poster(ctx, dir, "video.mp4", "poster.jpg", out.Duration); err != nil {
		return fmt.Errorf("poster: %w", err)
	}
	size, err := s.upload(ctx, filepath.Join(dir, "video.mp4"), PlaybackKey(v.ID), "video/mp4")
	if err != nil {
		return err
	}
	if _, err := s.upload(ctx, filepath.Join(dir, "poster.jpg"), PosterKey(v.ID), "image/jpeg"); err != nil {
		return err
	}
	if err := s.bucket.Delete(ctx, OriginalKey(v.ID)); err != nil && gcerrors.Code(err) != gcerrors.NotFound {
		return fmt.Errorf("delete processed upload: %w", err)
	}
	return s.finishReady(ctx, v, size, out)
}

// resumeStored finishes a video whose outputs an earlier attempt stored
// (and whose upload it then deleted) before it stopped. It reports false
// when the outputs are not both there.
func (s *Service) resumeStored(ctx context.Context, dir string, v *store.Video) (bool, error) {
	if ok, err := s.bucket.Exists(ctx, PosterKey(v.ID)); err != nil || !ok {
		return false, err
	}
	path := filepath.Join(dir, "video.mp4")
	if err := s.download(ctx, PlaybackKey(v.ID), path); err != nil {
		var f *failure
		if errors.As(err, &f) {
			return false, nil
		}
		return false, err
	}
	out, err := s.tools.probe(ctx, dir, "video.mp4")
	if err != nil {
		return false, fmt.Errorf("probe stored video: %w", err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return false, err
	}
	return true, s.finishReady(ctx, v, fi.Size(), out)
}

// finishReady marks v ready with the numbers of its playable file.
func (s *Service) finishReady(ctx context.Context, v *store.Video, size int64, out *ffprobe.Result) error {
	if out.Video == nil {
		return failf("the converted video has no video stream")
	}
	v.Status, v.SizeBytes, v.DurationSeconds = store.VideoReady, size, out.Duration
	v.Width, v.Height = int32(out.Video.Width), int32(out.Video.Height)
	ok, err := s.db.FinishVideo(ctx, s.db, v)
	if err != nil {
		return err
	}
	if !ok {
		// Deleted while it was processed: drop what was just stored.
		s.removeFiles(ctx, v.ID)
	}
	return nil
}

// checkLimits refuses a video past the configured limits (security.md
// property 14) or without a picture, with the reason as its failure.
func (s *Service) checkLimits(p *ffprobe.Result) error {
	lim := ffprobe.Limits{MaxDuration: s.cfg.MaxDuration, MaxDimension: s.cfg.MaxDimension, MaxFrameRate: s.cfg.MaxFrameRate}
	if err := lim.Check(p); err != nil {
		return &failure{reason: err.Error()}
	}
	return nil
}

func (s *Service) download(ctx context.Context, key, path string) error {
	r, err := s.bucket.NewReader(ctx, key, nil)
	if gcerrors.Code(err) == gcerrors.NotFound {
		return failf("the uploaded file is missing; upload it again")
	} else if err != nil {
		return fmt.Errorf("open upload: %w", err)
	}
	defer r.Close()
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return fmt.Errorf("download upload: %w", err)
	}
	return f.Close()
}

func (s *Service) upload(ctx context.Context, path, key, contentType string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	w, err := s.bucket.NewWriter(ctx, key, &blob.WriterOptions{ContentType: contentType})
	if err != nil {
		return 0, fmt.Errorf("store %s: %w", key, err)
	}
	n, err := io.Copy(w, f)
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, fmt.Errorf("store %s: %w", key, err)
	}
	return n, nil
}

// rescueWorker queues videos processing for longer than a job could have
// been waiting to be inserted: their job was lost. The process job's
// uniqueness keeps it from doubling a job that exists.
type rescueWorker struct {
	river.WorkerDefaults[rescueArgs]
	s *Service
}

func (w *rescueWorker) Work(ctx context.Context, _ *river.Job[rescueArgs]) error {
	ids, err := w.s.db.StaleProcessingVideos(ctx, w.s.db, w.s.db.Now().Add(-5*time.Minute), 100)
	if err != nil {
		return err
	}
	for _, id := range ids {
		if err := w.s.enqueue(ctx, id); err != nil {
			return err
		}
	}
	return nil
}
