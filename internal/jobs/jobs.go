// Package jobs is Flock's one durable job queue, shared by every domain
// that works off the request path (video processing, timeline fan-out,
// email deliveries).
//
// The queue is River (github.com/riverqueue/river): jobs are rows in the
// database, so a queued job survives a restart, and a job is locked by
// the one worker that takes it, so it runs once across any number of
// instances. One River client serves every domain: River elects one
// leader per database for its maintenance (rescuing stuck jobs, periodic
// jobs), so two clients in one process would leave one client's periodic
// jobs unscheduled whenever the other won.
//
// On Postgres a working instance gives River a pgx pool of its own (its
// leader election does not work over bun's pgdriver; see
// docs/architecture.md); inserts, including those inside a store
// transaction (InsertTx), go over the store's database/sql pool. SQLite
// shares the store's database/sql pool for everything.
package jobs

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverdatabasesql"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/riverqueue/river/rivertype"
	"github.com/uptrace/bun"

	"github.com/flock-social/flock/internal/store"
)

// QueueGeneral is the queue of small jobs that need no queue of their own:
// email deliveries and their retries, removal of a deleted account's files.
// It is River's default queue, so job kinds that name no queue land on it.
const QueueGeneral = river.QueueDefault

// Config configures the queue.
type Config struct {
	// Poll is how often the queue is polled for new jobs where it cannot
	// be notified (SQLite); default 1s.
	Poll time.Duration
}

// Queue is the job queue. Domains register their workers, queues and
// periodic jobs on it before Open; Start begins working them.
type Queue struct {
	cfg         Config
	log         *slog.Logger
	workers     *river.Workers
	queues      map[string]river.QueueConfig
	periodic    []*river.PeriodicJob
	rescueAfter time.Duration

	worker   runner                 // works the queues (nil when this instance works none)
	inserter *river.Client[*sql.Tx] // inserts, also inside store transactions
	pool     *pgxpool.Pool          // Postgres working instance only
	started  bool
}

type runner interface {
	Start(ctx context.Context) error
	Stop(ctx context.Context) error
	StopAndCancel(ctx context.Context) error
}

// New returns a queue to register workers on.
func New(cfg Config, log *slog.Logger) *Queue {
	if cfg.Poll <= 0 {
		cfg.Poll = time.Second
	}
	return &Queue{cfg: cfg, log: log, workers: river.NewWorkers(), queues: map[string]river.QueueConfig{}, rescueAfter: time.Minute}
}

// AddWorker registers the worker of one job kind. Every instance registers
// every worker (so any instance may insert any job), whether or not it
// works the job's queue.
func AddWorker[T river.JobArgs](q *Queue, w river.Worker[T]) { river.AddWorker(q.workers, w) }

// AddQueue has this instance work a queue with up to workers jobs at once;
// workers <= 0 leaves the queue to other instances.
func AddQueue(q *Queue, name string, workers int) {
	if workers > 0 {
		q.queues[name] = river.QueueConfig{MaxWorkers: workers}
	}
}

// AddPeriodic schedules a job (run by the elected leader instance only).
func (q *Queue) AddPeriodic(every time.Duration, args func() river.JobArgs, runOnStart bool) {
	q.periodic = append(q.periodic, river.NewPeriodicJob(river.PeriodicInterval(every),
		func() (river.JobArgs, *river.InsertOpts) { return args(), nil }, &river.PeriodicJobOpts{RunOnStart: runOnStart}))
}

// RescueAfter raises the time after which a running job is presumed lost
// with its instance and run again: it must exceed the longest any job can
// take, so each domain states its longest.
func (q *Queue) RescueAfter(d time.Duration) { q.rescueAfter = max(q.rescueAfter, d) }

// Open creates the River clients and applies River's migrations.
// databaseURL is the store's: a working Postgres instance opens a pgx pool
// of its own from it.
func (q *Queue) Open(ctx context.Context, db *store.DB, databaseURL string) (err error) {
	cfg := &river.Config{
		Workers:           q.workers,
		FetchPollInterval: q.cfg.Poll,
		FetchCooldown:     min(q.cfg.Poll, 100*time.Millisecond),
		// River logs every retry at info; ours are logged by the workers.
		Logger:               slog.New(levelFilter{Handler: q.log.Handler(), min: slog.LevelWarn}),
		RescueStuckJobsAfter: q.rescueAfter,
		// Workers bound their own jobs (Timeout or their own deadlines).
		JobTimeout: -1,
	}
	working := len(q.queues) > 0
	insertCfg := *cfg
	if working {
		cfg.Queues = q.queues
		cfg.PeriodicJobs = q.periodic
	}
	switch db.Engine {
	case store.Postgres:
		if err := db.NewRaw("SELECT current_schema()").Scan(ctx, &cfg.Schema); err != nil {
			return fmt.Errorf("job queue: %w", err)
		}
		insertCfg.Schema = cfg.Schema
		driver := riverdatabasesql.New(db.DB.DB)
		if err := migrateLocked(ctx, db, driver, cfg.Schema, q.log); err != nil {
			return err
		}
		if q.inserter, err = river.NewClient(driver, &insertCfg); err != nil {
			return fmt.Errorf("job queue: %w", err)
		}
		if !working {
			return nil
		}
		pcfg, err := pgxpool.ParseConfig(databaseURL)
		if err != nil {
			return fmt.Errorf("job queue: %w", err)
		}
		n := 0
		for _, qc := range q.queues {
			n += qc.MaxWorkers
		}
		pcfg.MaxConns = int32(n + 2)
		if q.pool, err = pgxpool.NewWithConfig(ctx, pcfg); err != nil {
			return fmt.Errorf("job queue: %w", err)
		}
		if q.worker, err = river.NewClient(riverpgxv5.New(q.pool), cfg); err != nil {
			q.pool.Close()
			return fmt.Errorf("job queue: %w", err)
		}
	default:
		driver := riversqlite.New(db.DB.DB)
		if err := migrate(ctx, driver, "", q.log); err != nil {
			return err
		}
		c, err := river.NewClient(driver, cfg)
		if err != nil {
			return fmt.Errorf("job queue: %w", err)
		}
		q.inserter = c
		if working {
			q.worker = c
		}
	}
	return nil
}

// Insert queues a job.
func (q *Queue) Insert(ctx context.Context, args river.JobArgs) error {
	_, err := q.inserter.Insert(ctx, args, nil)
	return err
}

// InsertTx queues a job inside a store transaction: it exists if and only
// if the transaction commits. opts, when not nil, override the job kind's.
func (q *Queue) InsertTx(ctx context.Context, tx bun.Tx, args river.JobArgs, opts *river.InsertOpts) error {
	_, err := q.inserter.InsertTx(ctx, tx.Tx, args, opts)
	return err
}

// InsertTxID is InsertTx that also returns the new job's ID, for a caller
// that acts on the job later (Get, Delete, Retry).
func (q *Queue) InsertTxID(ctx context.Context, tx bun.Tx, args river.JobArgs, opts *river.InsertOpts) (int64, error) {
	res, err := q.inserter.InsertTx(ctx, tx.Tx, args, opts)
	if err != nil {
		return 0, err
	}
	return res.Job.ID, nil
}

// ErrNotFound is returned by Get, Delete and Retry for a job that does not
// exist (its transaction rolled back, or it was deleted).
var ErrNotFound = river.ErrNotFound

// ErrRunning is returned by Delete for a job that a worker is running.
var ErrRunning = rivertype.ErrJobRunning

// Get returns a job as it is now. Returns ErrNotFound if there is none.
func (q *Queue) Get(ctx context.Context, id int64) (*rivertype.JobRow, error) {
	return q.inserter.JobGet(ctx, id)
}

// Delete removes a job that is not running, whatever its state. Returns
// ErrNotFound if there is none, ErrRunning if a worker is running it.
func (q *Queue) Delete(ctx context.Context, id int64) error {
	_, err := q.inserter.JobDelete(ctx, id)
	return err
}

// Retry makes a job available to workers at once: a scheduled job is no
// longer held back, a failed one is tried again without waiting for its
// backoff (and gets one more attempt if it had used them all). A running
// job is left as it is. Returns ErrNotFound if there is none.
func (q *Queue) Retry(ctx context.Context, id int64) error {
	_, err := q.inserter.JobRetry(ctx, id)
	return err
}

// Start begins working the queues this instance works, until Close.
func (q *Queue) Start(ctx context.Context) error {
	if q.worker == nil {
		return nil
	}
	if err := q.worker.Start(ctx); err != nil {
		return fmt.Errorf("job queue: start: %w", err)
	}
	q.started = true
	return nil
}

// Close stops working: jobs running get until ctx ends to finish, then are
// cancelled and go back to the queue for a later attempt (here or on
// another instance).
func (q *Queue) Close(ctx context.Context) error {
	var err error
	if q.started {
		if err = q.worker.Stop(ctx); errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
			stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			err = q.worker.StopAndCancel(stopCtx)
			cancel()
		}
	}
	if q.pool != nil {
		q.pool.Close()
	}
	return err
}

func migrate[TTx any](ctx context.Context, driver riverdriver.Driver[TTx], schema string, log *slog.Logger) error {
	m, err := rivermigrate.New(driver, &rivermigrate.Config{Schema: schema, Logger: slog.New(levelFilter{Handler: log.Handler(), min: slog.LevelWarn})})
	if err != nil {
		return fmt.Errorf("job queue migrations: %w", err)
	}
	res, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil)
	if err != nil {
		return fmt.Errorf("job queue migrations: %w", err)
	}
	if len(res.Versions) > 0 {
		log.Info("applied job queue migrations", "versions", len(res.Versions))
	}
	return nil
}

// migrateLocked applies River's migrations on Postgres under an advisory
// lock, so that instances starting together do not race to create its
// tables.
func migrateLocked[TTx any](ctx context.Context, db *store.DB, driver riverdriver.Driver[TTx], schema string, log *slog.Logger) error {
	conn, err := db.DB.DB.Conn(ctx)
	if err != nil {
		return fmt.Errorf("job queue migrations: %w", err)
	}
	defer conn.Close()
	const lockKey = 0x666c6f636b726976 // "flockriv"
	if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock($1)", int64(lockKey)); err != nil {
		return fmt.Errorf("job queue migrations: lock: %w", err)
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", int64(lockKey)) //nolint:errcheck
	return migrate(ctx, driver, schema, log)
}

// levelFilter drops records below min.
type levelFilter struct {
	slog.Handler
	min slog.Level
}

func (f levelFilter) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= f.min && f.Handler.Enabled(ctx, l)
}

func (f levelFilter) WithAttrs(attrs []slog.Attr) slog.Handler {
	return levelFilter{Handler: f.Handler.WithAttrs(attrs), min: f.min}
}

func (f levelFilter) WithGroup(name string) slog.Handler {
	return levelFilter{Handler: f.Handler.WithGroup(name), min: f.min}
}
