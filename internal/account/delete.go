package account

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/riverqueue/river"
	"github.com/uptrace/bun"
	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"

	"github.com/flock-social/flock"
	"github.com/flock-social/flock/internal/jobs"
	"github.com/flock-social/flock/internal/media"
	"github.com/flock-social/flock/internal/notify"
	"github.com/flock-social/flock/internal/store"
)

// DefaultUsernameHold is how long the username of a deleted account stays
// reserved (DeleteConfig.UsernameHold), so that nobody can pass for the
// account right after it went: 30 days.
const DefaultUsernameHold = 30 * 24 * time.Hour

// DeleteConfig configures account deletion.
type DeleteConfig struct {
	// UsernameHold is how long a deleted account's username cannot be
	// registered (default DefaultUsernameHold).
	UsernameHold time.Duration
	// RemoveVideoFiles deletes the files of a video whose row is gone,
	// tolerating files already missing (video.Service.RemoveFiles); nil
	// leaves them.
	RemoveVideoFiles func(ctx context.Context, videoID string) error
}

// Deleter deletes accounts: the rows in one transaction, the files after
// it commits, by a job (removeFilesArgs) that the transaction queues, so
// the files go even when the instance stops right after the commit, and
// the job's retries make their removal certain.
type Deleter struct {
	s      *Service
	queue  *jobs.Queue
	bucket *blob.Bucket
	cfg    DeleteConfig
}

// NewDeleter returns a Deleter of s's accounts whose file removals run on
// q (their worker is registered here, before q opens) against bucket.
func NewDeleter(s *Service, q *jobs.Queue, bucket *blob.Bucket, cfg DeleteConfig) *Deleter {
	if cfg.UsernameHold <= 0 {
		cfg.UsernameHold = DefaultUsernameHold
	}
	d := &Deleter{s: s, queue: q, bucket: bucket, cfg: cfg}
	jobs.AddWorker(q, &removeFilesWorker{d: d})
	return d
}

// checkUsernameHeld refuses, with a field error, a username held for a
// deleted account. Register calls it after inserting the user: on Postgres
// the insert waits for a deletion of the name's account in progress, and
// this later statement then sees the hold that deletion committed.
func checkUsernameHeld(ctx context.Context, db *store.DB, tx bun.IDB, username string) error {
	until, held, err := db.UsernameHeldUntil(ctx, tx, username)
	if err != nil {
		return err
	} else if held {
		return flock.FieldErrorf("username", "username %q belonged to an account that was deleted and cannot be registered before %s; choose another",
			username, until.UTC().Format(time.RFC3339))
	}
	return nil
}

// UsernameHold is how long a deleted account's username stays reserved.
func (d *Deleter) UsernameHold() time.Duration { return d.cfg.UsernameHold }

// DeleteAccount deletes the caller's account for good once currentPassword
// proves it is theirs: everything store.DeleteAccount lists goes in one
// transaction (all of it or, when anything fails, none of it), the
// username is held for DeleteConfig.UsernameHold, the email is free at
// once. After the commit every session of the account ends on every
// instance, with its open streams, and the account's files (profile
// pictures, videos and posters) are removed by a queued job. Returns
// EFORBIDDEN when the password is wrong (nothing is removed) and
// EUNAUTHORIZED when the account is already gone.
func (d *Deleter) DeleteAccount(ctx context.Context, p *Principal, currentPassword string) error {
	s := d.s
	if _, err := s.checkCurrentPassword(ctx, p, currentPassword); store.IsNotFound(err) {
		return errBadAccess
	} else if err != nil {
		return fmt.Errorf("delete account: %w", err)
	}
	var gone *store.DeletedAccount
	err := s.db.InTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		var err error
		if gone, err = s.db.DeleteAccount(ctx, tx, p.UserID, s.db.Now().Add(d.cfg.UsernameHold)); err != nil {
			return err
		}
		for _, args := range removeFilesJobs(gone) {
			if err := d.queue.InsertTx(ctx, tx, args, nil); err != nil {
				return fmt.Errorf("queue file removal: %w", err)
			}
		}
		return nil
	})
	if store.IsNotFound(err) {
		return errBadAccess // deleted by a concurrent request
	} else if err != nil {
		return fmt.Errorf("delete account: %w", err)
	}
	s.log.InfoContext(ctx, "account deleted", "user_id", gone.UserID, "sessions", len(gone.SessionIDs),
		"videos", len(gone.VideoIDs), "groups_transferred", len(gone.Transferred), "groups_deleted", len(gone.DeletedGroups))
	// Every instance refuses the account's tokens before this answers
	// (the session cache), and open streams close now, not at their next
	// check: those of each session, and any hub of the user re-checks.
	s.cfg.Sessions.UserChanged(ctx, p.UserID)
	for _, id := range gone.SessionIDs {
		s.events.Announce(ctx, notify.SessionChannel(id))
	}
	s.events.Announce(ctx, notify.UserChannel(p.UserID))
	return nil
}

// removeFilesBatch bounds the videos of one removal job, so that the
// job's arguments stay small whatever the account held.
const removeFilesBatch = 500

// removeFilesArgs is the job that removes a deleted account's files from
// media storage: its profile pictures (every one under its avatar folder)
// and the files of VideoIDs. It may run any number of times.
type removeFilesArgs struct {
	UserID   string   `json:"user_id"`
	VideoIDs []string `json:"video_ids,omitempty"`
}

func (removeFilesArgs) Kind() string { return "account.remove_files" }

func (removeFilesArgs) InsertOpts() river.InsertOpts {
	// River's backoff over 25 attempts spans about three weeks: long
	// enough to outlast any outage of the storage.
	return river.InsertOpts{Queue: jobs.QueueGeneral, MaxAttempts: 25}
}

// removeFilesJobs are the jobs that remove what gone left in storage.
func removeFilesJobs(gone *store.DeletedAccount) []removeFilesArgs {
	out := []removeFilesArgs{{UserID: gone.UserID}}
	for i, id := range gone.VideoIDs {
		if i > 0 && i%removeFilesBatch == 0 {
			out = append(out, removeFilesArgs{UserID: gone.UserID})
		}
		last := &out[len(out)-1]
		last.VideoIDs = append(last.VideoIDs, id)
	}
	return out
}

type removeFilesWorker struct {
	river.WorkerDefaults[removeFilesArgs]
	d *Deleter
}

func (w *removeFilesWorker) Timeout(*river.Job[removeFilesArgs]) time.Duration {
	return 5 * time.Minute
}

// Work removes the files, trying every one before it fails: a failed
// attempt is retried by River with backoff, and files removed already
// are skipped as missing.
func (w *removeFilesWorker) Work(ctx context.Context, job *river.Job[removeFilesArgs]) error {
	var errs []error
	if err := w.d.removeAvatars(ctx, job.Args.UserID); err != nil {
		errs = append(errs, err)
	}
	if w.d.cfg.RemoveVideoFiles != nil {
		for _, id := range job.Args.VideoIDs {
			if err := w.d.cfg.RemoveVideoFiles(ctx, id); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		w.d.s.log.WarnContext(ctx, "removing a deleted account's files; will retry", "user_id", job.Args.UserID, "attempt", job.Attempt, "err", err)
		return err
	}
	return nil
}

// removeAvatars deletes every profile picture of userID, the current one
// and any a replacement failed to delete.
func (d *Deleter) removeAvatars(ctx context.Context, userID string) error {
	it := d.bucket.List(&blob.ListOptions{Prefix: media.AvatarPrefix(userID)})
	var errs []error
	for {
		obj, err := it.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return errors.Join(append(errs, fmt.Errorf("list avatars: %w", err))...)
		}
		if err := d.bucket.Delete(ctx, obj.Key); err != nil && gcerrors.Code(err) != gcerrors.NotFound {
			errs = append(errs, fmt.Errorf("delete %s: %w", obj.Key, err))
		}
	}
	return errors.Join(errs...)
}
