package timeline

import (
	"context"
	"time"

	"github.com/riverqueue/river"
	"github.com/uptrace/bun"

	"github.com/flock-social/flock/internal/store"
)

// queueName is the job queue of timeline writes.
const queueName = "timeline"

// How often the maintenance job runs, and how long a done fan-out stays
// merged by reads: a read takes its timeline's ids and its posts in two
// statements, and a fan-out finishing between them must not make its post
// fall out of both.
const (
	maintainEvery = 10 * time.Second
	pendingGrace  = 5 * time.Second
)

// fanoutArgs writes one new post into its readers' timelines.
type fanoutArgs struct {
	PostID string `json:"post_id"`
}

func (fanoutArgs) Kind() string { return "timeline.fanout" }

func (fanoutArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: queueName, MaxAttempts: 25}
}

type fanoutWorker struct {
	river.WorkerDefaults[fanoutArgs]
	s *Service
}

func (w *fanoutWorker) Timeout(*river.Job[fanoutArgs]) time.Duration { return 5 * time.Minute }

func (w *fanoutWorker) Work(ctx context.Context, job *river.Job[fanoutArgs]) error {
	start := time.Now()
	var n int64
	err := w.s.db.InTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		var err error
		n, err = w.s.db.FanOut(ctx, tx, job.Args.PostID, w.s.cfg.BigAuthor)
		return err
	})
	if err != nil {
		w.s.log.WarnContext(ctx, "timeline fan-out failed; it will be retried", "post", job.Args.PostID, "attempt", job.Attempt, "err", err)
		return err
	}
	took := time.Since(start).Seconds()
	w.s.count(func(st *Stats) { st.Fanouts++; st.Entries += uint64(n); st.FanoutSeconds += took })
	return nil
}

// fillArgs fills a new timeline from the posts.
type fillArgs struct {
	UserID string `json:"user_id"`
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
	return w.s.db.InTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		return w.s.db.FillTimeline(ctx, tx, job.Args.UserID, store.TimelineSize)
	})
}

// maintainArgs is the periodic job that forgets done fan-outs and drops
// idle timelines.
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
	now := w.s.db.Now()
	if err := w.s.db.CleanPendingPosts(ctx, w.s.db, now.Add(-pendingGrace)); err != nil {
		return err
	}
	n, err := w.s.db.DropTimelines(ctx, w.s.db, now.Add(-w.s.cfg.IdleAfter))
	if n > 0 {
		w.s.log.InfoContext(ctx, "dropped idle timelines", "count", n)
	}
	return err
}
