package timeline

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/riverqueue/river"
	"github.com/uptrace/bun"

	"github.com/flock-social/flock/internal/store"
)

// queueName is the job queue of timeline writes.
const queueName = "timeline"

// How often the maintenance job runs: it also sweeps the fan-outs a batch
// job missed (see fanoutArgs), so it bounds their delay.
const maintainEvery = 2 * time.Second

// fanoutArgs fans out every post whose fan-out is pending (oldest first,
// in chunks), each in a transaction of its own. Posts of the same moment
// share one job: the job is unique per fanoutBatch period (Batch numbers
// the period; River's own ByPeriod is at least a second), since per post
// River's own insert, fetch and completion would cost more than the
// fan-out, and on SQLite River fetches only a few jobs a second per
// worker. A post that commits after its period's job has drained is
// fanned out by the next period's job or the maintenance sweep; feed reads
// merge it meanwhile.
type fanoutArgs struct {
	Batch int64 `json:"batch"`
}

func (fanoutArgs) Kind() string { return "timeline.fanout" }

const (
	fanoutBatch = 100 * time.Millisecond
	fanoutChunk = 200
	// fanoutTx is how many posts one transaction fans out: the commit and
	// SQLite's statement journal cost more per post than the entries, and
	// a batch's posts mostly write the same pages; bounded, because on
	// SQLite other writes wait for it.
	fanoutTx = 32
)

func (fanoutArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: queueName, MaxAttempts: 25, UniqueOpts: river.UniqueOpts{ByArgs: true}}
}

// fanoutFor is the job a post made at now queues.
func fanoutFor(now time.Time) fanoutArgs {
	return fanoutArgs{Batch: now.UnixMilli() / fanoutBatch.Milliseconds()}
}

type fanoutWorker struct {
	river.WorkerDefaults[fanoutArgs]
	s *Service
}

func (w *fanoutWorker) Timeout(*river.Job[fanoutArgs]) time.Duration { return 5 * time.Minute }

func (w *fanoutWorker) Work(ctx context.Context, _ *river.Job[fanoutArgs]) error {
	return w.s.drain(ctx)
}

// drain fans out the pending posts until none is left. One drain runs
// per instance at a time: batch jobs that start while one runs return at
// once (the running one goes on until it finds nothing pending), so they
// do not fan out the same posts side by side. Instances still may; a
// fan-out claims its post, so the second finds nothing to do.
func (s *Service) drain(ctx context.Context) error {
	if !s.draining.CompareAndSwap(false, true) {
		return nil
	}
	defer s.draining.Store(false)
	for {
		ids, err := s.db.PendingPosts(ctx, s.db, fanoutChunk)
		if err != nil {
			return err
		}
		for batch := range slices.Chunk(ids, fanoutTx) {
			start := time.Now()
			var posts, n int64
			err := s.db.InTx(ctx, func(ctx context.Context, tx bun.Tx) error {
				var err error
				posts, n, err = s.db.FanOut(ctx, tx, batch, s.cfg.BigAuthor)
				return err
			})
			if err != nil {
				s.log.WarnContext(ctx, "timeline fan-out failed; it will be retried", "posts", len(batch), "err", err)
				return err
			}
			took := time.Since(start).Seconds()
			s.count(func(st *Stats) { st.Fanouts += uint64(posts); st.Entries += uint64(n); st.FanoutSeconds += took })
		}
		if len(ids) == 0 {
			return nil
		}
	}
}

// fillArgs fills a new timeline from the posts. Since (the timeline's
// creation, Unix nanoseconds) tells one timeline of a user from the next
// after a drop: the job is unique by its arguments, and a completed fill
// (River keeps it a day) must not swallow the fill of a timeline made
// again, which would then stay "building" for good.
type fillArgs struct {
	UserID string `json:"user_id"`
	Since  int64  `json:"since"`
}

func (fillArgs) Kind() string { return "timeline.fill" }

func (fillArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: queueName, MaxAttempts: 25, UniqueOpts: river.UniqueOpts{ByArgs: true}}
}

type fillWorker struct {
	river.WorkerDefaults[fillArgs]
	s *Service
}

func (w *fillWorker) Timeout(*river.Job[fillArgs]) time.Duration { return 5 * time.Minute }

func (w *fillWorker) Work(ctx context.Context, job *river.Job[fillArgs]) error {
	err := w.s.db.InTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		return w.s.db.FillTimeline(ctx, tx, job.Args.UserID, store.TimelineSize)
	})
	if errors.Is(err, store.ErrTimelineGone) {
		return nil // dropped or deleted meanwhile: a later read starts another
	}
	return err
}

// maintainArgs is the periodic job that sweeps pending fan-outs, queues
// the fills of timelines stuck building, and drops idle timelines.
type maintainArgs struct{}

func (maintainArgs) Kind() string { return "timeline.maintain" }

func (maintainArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: queueName, UniqueOpts: river.UniqueOpts{ByPeriod: maintainEvery}}
}

type maintainWorker struct {
	river.WorkerDefaults[maintainArgs]
	s *Service
}

func (w *maintainWorker) Work(ctx context.Context, _ *river.Job[maintainArgs]) error {
	// A sweep for posts whose batch job came and went before they
	// committed (see fanoutArgs).
	if err := w.s.drain(ctx); err != nil {
		return err
	}
	// Fills lost or swallowed: timelines building for over a minute.
	stuck, err := w.s.db.StuckTimelines(ctx, w.s.db, w.s.db.Now().Add(-time.Minute), 100)
	if err != nil {
		return err
	}
	for _, t := range stuck {
		if err := w.s.queue.Insert(ctx, fillArgs{UserID: t.UserID, Since: t.ReadAt.UnixNano()}); err != nil {
			return err
		}
	}
	var n int64
	err = w.s.db.InTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		var err error
		n, err = w.s.db.DropTimelines(ctx, tx, w.s.db.Now().Add(-w.s.cfg.IdleAfter))
		return err
	})
	if n > 0 {
		w.s.log.InfoContext(ctx, "dropped idle timelines", "count", n)
	}
	return err
}
