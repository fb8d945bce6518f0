package video

import (
	"context"
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

	"github.com/flock-social/flock/internal/store"
)

// The queue is River (github.com/riverqueue/river): jobs are rows in the
// database, so a queued video survives a restart, and a job is locked by
// the one worker that takes it, so it runs once across any number of
// instances. On Postgres a working instance gives River a pgx pool of its
// own (its leader election does not work over bun's pgdriver; see
// docs/architecture.md); an instance that only queues, and SQLite, share
// the store's database/sql pool.

// queueName is the River queue of video jobs.
const queueName = "video"

// processArgs is the job that processes one uploaded video.
type processArgs struct {
	VideoID string `json:"video_id"`
}

func (processArgs) Kind() string { return "video.process" }

func (processArgs) InsertOpts() river.InsertOpts {
	// ByArgs: one job per video at a time, so the rescue cannot double it.
	return river.InsertOpts{Queue: queueName, MaxAttempts: 5, UniqueOpts: river.UniqueOpts{ByArgs: true}}
}

// rescueArgs is the periodic job that queues videos still processing long
// after their upload, whose job was lost (a crash between the upload's
// commit and its enqueue).
type rescueArgs struct{}

func (rescueArgs) Kind() string { return "video.rescue" }

func (rescueArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: queueName, UniqueOpts: river.UniqueOpts{ByPeriod: time.Minute}}
}

// client is what we use of a *river.Client, whichever its driver.
type client interface {
	Insert(ctx context.Context, args river.JobArgs, opts *river.InsertOpts) (*rivertype.JobInsertResult, error)
	Start(ctx context.Context) error
	Stop(ctx context.Context) error
	StopAndCancel(ctx context.Context) error
}

type queue struct {
	client  client
	pool    *pgxpool.Pool // Postgres only
	working bool
}

func openQueue(ctx context.Context, db *store.DB, databaseURL string, s *Service, log *slog.Logger) (_ *queue, err error) {
	workers := river.NewWorkers()
	river.AddWorker(workers, &processWorker{s: s})
	river.AddWorker(workers, &rescueWorker{s: s})
	cfg := &river.Config{
		Workers:           workers,
		FetchPollInterval: s.cfg.JobPoll,
		FetchCooldown:     min(s.cfg.JobPoll, 100*time.Millisecond),
		// River logs every retry at info; ours are logged by the worker.
		Logger: slog.New(levelFilter{Handler: log.Handler(), min: slog.LevelWarn}),
		// Past this a running job is presumed lost with its instance and
		// is run again; it must exceed the longest a job can take.
		RescueStuckJobsAfter: s.cfg.ProcessTimeout + 5*time.Minute,
		// The worker enforces ProcessTimeout itself, to fail the video.
		JobTimeout: -1,
	}
	q := &queue{working: s.cfg.Workers > 0}
	if q.working {
		cfg.Queues = map[string]river.QueueConfig{queueName: {MaxWorkers: s.cfg.Workers}}
		cfg.PeriodicJobs = []*river.PeriodicJob{river.NewPeriodicJob(river.PeriodicInterval(5*time.Minute),
			func() (river.JobArgs, *river.InsertOpts) { return rescueArgs{}, nil }, &river.PeriodicJobOpts{RunOnStart: true})}
	}
	switch {
	case db.Engine == store.Postgres && q.working:
		pcfg, err := pgxpool.ParseConfig(databaseURL)
		if err != nil {
			return nil, fmt.Errorf("job queue: %w", err)
		}
		pcfg.MaxConns = int32(s.cfg.Workers + 3)
		if q.pool, err = pgxpool.NewWithConfig(ctx, pcfg); err != nil {
			return nil, fmt.Errorf("job queue: %w", err)
		}
		defer func() {
			if err != nil {
				q.pool.Close()
			}
		}()
		// River's tables live in the store's schema (the search_path).
		if err := q.pool.QueryRow(ctx, "SELECT current_schema()").Scan(&cfg.Schema); err != nil {
			return nil, fmt.Errorf("job queue: %w", err)
		}
		driver := riverpgxv5.New(q.pool)
		if err := migrateLocked(ctx, db, driver, cfg.Schema, log); err != nil {
			return nil, err
		}
		if q.client, err = river.NewClient(driver, cfg); err != nil {
			return nil, fmt.Errorf("job queue: %w", err)
		}
	case db.Engine == store.Postgres:
		// An instance that only queues jobs inserts them over the store's
		// own pool (River's database/sql driver: inserting works over
		// pgdriver; only a working client's leader election needs pgx), so
		// it holds no connections of its own.
		if err := db.NewRaw("SELECT current_schema()").Scan(ctx, &cfg.Schema); err != nil {
			return nil, fmt.Errorf("job queue: %w", err)
		}
		driver := riverdatabasesql.New(db.DB.DB)
		if err := migrateLocked(ctx, db, driver, cfg.Schema, log); err != nil {
			return nil, err
		}
		if q.client, err = river.NewClient(driver, cfg); err != nil {
			return nil, fmt.Errorf("job queue: %w", err)
		}
	default:
		driver := riversqlite.New(db.DB.DB)
		if err := migrate(ctx, driver, "", log); err != nil {
			return nil, err
		}
		if q.client, err = river.NewClient(driver, cfg); err != nil {
			return nil, fmt.Errorf("job queue: %w", err)
		}
	}
	return q, nil
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

func (q *queue) enqueue(ctx context.Context, videoID string) error {
	_, err := q.client.Insert(ctx, processArgs{VideoID: videoID}, nil)
	return err
}

func (q *queue) start(ctx context.Context) error {
	if !q.working {
		return nil
	}
	if err := q.client.Start(ctx); err != nil {
		return fmt.Errorf("job queue: start: %w", err)
	}
	return nil
}

func (q *queue) close(ctx context.Context) error {
	var err error
	if q.working {
		if err = q.client.Stop(ctx); errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
			// Jobs still running are cancelled; River marks them for retry.
			stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			err = q.client.StopAndCancel(stopCtx)
			cancel()
		}
	}
	if q.pool != nil {
		q.pool.Close()
	}
	return err
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
