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
	// fanoutTx is how many posts one transaction fans out: the commit
	// costs more per post than the entries, and a batch's posts mostly
	// write the same pages; bounded, because on SQLite other writes wait
	// for it.
	fanoutTx = 32
)

func (fanoutArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: queueName, MaxAttempts: 25, UniqueOpts: river.UniqueOpts{ByArgs: true}}
}

// batchOf numbers the fanoutBatch period of now: the posts (fanoutArgs)
// and the timelines (fillArgs) of one period share a job.
func batchOf(now time.Time) int64 {
	return now.UnixMilli() / fanoutBatch.Milliseconds()
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

// fillArgs fills every new timeline (state building), oldest first,
// fillTx to a transaction. Like fan-outs, the timelines started in the
// same fanoutBatch period share one job: per timeline, River fetched a few
// jobs a second on SQLite, so a hundred first reads waited seconds for
// their fills; and fills that commit together pay for one commit. A timeline whose job came and went
// before it committed is filled by the next job or the maintenance sweep
// (reads go to the posts meanwhile).
type fillArgs struct {
	Batch int64 `json:"batch"`
}

func (fillArgs) Kind() string { return "timeline.fill" }

func (fillArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: queueName, MaxAttempts: 25, UniqueOpts: river.UniqueOpts{ByArgs: true}}
}

// fillTx is how many timelines one transaction fills: bounded, because on
// SQLite other writes wait for it (a fill of store.FillSize entries takes
// a few milliseconds).
const fillTx = 8

type fillWorker struct {
	river.WorkerDefaults[fillArgs]
	s *Service
}

func (w *fillWorker) Timeout(*river.Job[fillArgs]) time.Duration { return 5 * time.Minute }

func (w *fillWorker) Work(ctx context.Context, _ *river.Job[fillArgs]) error {
	return w.s.fillAll(ctx)
}

// fillAll fills the timelines being built until none is left; one runs
// per instance at a time, like drain. Instances still may fill a timeline
// side by side: its entries are written once (ON CONFLICT DO NOTHING) and
// it is marked ready twice.
func (s *Service) fillAll(ctx context.Context) error {
	if !s.filling.CompareAndSwap(false, true) {
		return nil
	}
	defer s.filling.Store(false)
	for {
		ids, err := s.db.BuildingTimelines(ctx, s.db, fillTx)
		if err != nil || len(ids) == 0 {
			return err
		}
		filled, err := s.fill(ctx, ids)
		if err != nil {
			// One at a time, so that a timeline whose fill fails does not
			// hold back the others; it is tried again with the job.
			s.log.WarnContext(ctx, "timeline fill failed; filling one by one", "timelines", len(ids), "err", err)
			filled, err = 0, nil
			for _, id := range ids {
				n, ferr := s.fill(ctx, []string{id})
				filled += n
				if ferr != nil {
					s.log.WarnContext(ctx, "timeline fill failed; it will be retried", "user", id, "err", ferr)
					err = ferr
				}
			}
		}
		s.count(func(st *Stats) { st.Fills += uint64(filled) })
		if err != nil {
			return err
		}
	}
}

// fill fills the timelines of ids in one transaction and reports how many
// it filled (not those deleted meanwhile).
func (s *Service) fill(ctx context.Context, ids []string) (int, error) {
	var filled []string
	err := s.db.InTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		var err error
		// Those deleted meanwhile are left out: a later read starts another.
		filled, _, err = s.db.FillTimelines(ctx, tx, ids, store.FillSize)
		return err
	})
	if err != nil {
		return 0, err
	}
	return len(filled), nil
}

// maintainArgs is the periodic job that sweeps pending fan-outs and
// timelines waiting for their fill, and drops idle timelines.
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
	// And for timelines whose fill job came and went before they
	// committed (see fillArgs). A failing fill does not keep the idle
	// timelines from being dropped.
	fillErr := w.s.fillAll(ctx)
	var n int64
	err := w.s.db.InTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		var err error
		n, err = w.s.db.DropTimelines(ctx, tx, w.s.db.Now().Add(-w.s.cfg.IdleAfter))
		return err
	})
	if n > 0 {
		w.s.log.InfoContext(ctx, "dropped idle timelines", "count", n)
	}
	return errors.Join(fillErr, err)
}
