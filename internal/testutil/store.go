// Package testutil gives tests the real dependencies Flock runs on: a fresh,
// migrated database per test on every engine that is available, and the
// address of a Redis server. SQLite is always available; Postgres and Redis
// are used when they answer, and their absence fails the run when CI=true.
package testutil

import (
	"context"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/flock-social/flock/internal/jobs"
	"github.com/flock-social/flock/internal/store"
	"github.com/flock-social/flock/internal/timeline"
)

// Defaults for the test services: the local Postgres "test" database (trust
// authentication) and Redis database 0.
const (
	DefaultDatabaseURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	DefaultRedisURL    = "redis://127.0.0.1:6379/0"
)

// probeTimeout bounds the check that a test service answers.
const probeTimeout = 3 * time.Second

var (
	pgOnce sync.Once
	pgErr  error // nil when Postgres answered the first probe
)

// inCI reports whether the run is in CI, where a missing service is a
// failure rather than a reason to skip.
func inCI() bool { return os.Getenv("CI") == "true" }

// DatabaseURL returns FLOCK_TEST_DATABASE_URL, or DefaultDatabaseURL when it
// is unset. It does not check that the server answers.
func DatabaseURL() string {
	if u := os.Getenv("FLOCK_TEST_DATABASE_URL"); u != "" {
		return u
	}
	return DefaultDatabaseURL
}

// postgresErr probes Postgres once per test binary and returns why it is
// unusable, or nil.
func postgresErr() error {
	pgOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
		defer cancel()
		db, err := store.Open(ctx, DatabaseURL(), "")
		if err != nil {
			pgErr = err
			return
		}
		defer db.Close()
		pgErr = db.PingContext(ctx)
	})
	return pgErr
}

// Engines returns the database engines to test against: store.SQLite always,
// and store.Postgres when the server at DatabaseURL answers. With CI=true an
// unreachable Postgres fails the test instead of being left out. The probe
// runs once per test binary.
func Engines(tb testing.TB) []string {
	tb.Helper()
	engines := []string{store.SQLite}
	if err := postgresErr(); err != nil {
		if inCI() {
			tb.Fatalf("postgres at %s is unreachable (CI=true requires it; set FLOCK_TEST_DATABASE_URL): %v", redact(DatabaseURL()), err)
		}
		tb.Logf("postgres at %s is unreachable, testing SQLite only: %v", redact(DatabaseURL()), err)
		return engines
	}
	return append(engines, store.Postgres)
}

// MustStore returns a fresh, migrated database of the given engine that no
// other test shares (see MustDatabaseURL): a SQLite file in tb.TempDir(), or
// a new Postgres schema with a random name, used as the search_path of every
// connection. It is closed, and the schema dropped, when the test ends. It
// skips the test when Postgres is asked for and unreachable (fails it when
// CI=true).
func MustStore(tb testing.TB, engine string) *store.DB {
	tb.Helper()
	db, _ := MustStoreURL(tb, engine)
	return db
}

// MustStoreURL is MustStore that also returns the store's database URL,
// for what opens connections of its own (the job queue's pgx pool).
func MustStoreURL(tb testing.TB, engine string) (*store.DB, string) {
	tb.Helper()
	ctx := context.Background()
	dsn := MustDatabaseURL(tb, engine)
	db, err := store.Open(ctx, dsn, "")
	if err != nil {
		tb.Fatalf("open %s store: %v", engine, err)
	}
	// Registered after MustDatabaseURL's cleanup, so it runs before it: the
	// store's connections end before the schema is dropped.
	tb.Cleanup(func() { db.Close() })
	LimitPool(db)
	if engine == store.Postgres {
		var schema string
		if err := db.QueryRowContext(ctx, "SELECT current_schema()").Scan(&schema); err != nil || !strings.HasPrefix(schema, "flock_test_") {
			tb.Fatalf("postgres search_path: current_schema() = %q, %v; want a flock_test_ schema", schema, err)
		}
	}
	if _, err := db.Migrate(ctx); err != nil {
		tb.Fatalf("migrate %s store: %v", engine, err)
	}
	return db, dsn
}

// MustTimelines returns a timeline service on db with its job queue
// working (fan-out and fills run), stopped at the end of tb.
func MustTimelines(tb testing.TB, db *store.DB, dsn string, cfg timeline.Config) *timeline.Service {
	tb.Helper()
	log := slog.New(slog.DiscardHandler)
	q := jobs.New(jobs.Config{Poll: 20 * time.Millisecond}, log)
	tl := timeline.NewService(db, q, cfg, log)
	if err := q.Open(context.Background(), db, dsn); err != nil {
		tb.Fatalf("open job queue: %v", err)
	}
	if err := q.Start(context.Background()); err != nil {
		tb.Fatalf("start job queue: %v", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		q.Close(ctx)
	})
	return tl
}

// ForEachEngine runs fn as a subtest named after each engine of Engines,
// each with a fresh store from MustStore. fn may call t.Parallel.
func ForEachEngine(t *testing.T, fn func(t *testing.T, db *store.DB)) {
	t.Helper()
	for _, engine := range Engines(t) {
		t.Run(engine, func(t *testing.T) {
			fn(t, MustStore(t, engine))
		})
	}
}

// RedisURL returns FLOCK_TEST_REDIS_URL (default DefaultRedisURL) after
// checking that Redis answers a PING. It skips the test when Redis is
// unreachable, and fails it when CI=true.
func RedisURL(tb testing.TB) string {
	tb.Helper()
	u := os.Getenv("FLOCK_TEST_REDIS_URL")
	if u == "" {
		u = DefaultRedisURL
	}
	opt, err := redis.ParseURL(u)
	if err != nil {
		tb.Fatalf("parse FLOCK_TEST_REDIS_URL: %v", err)
	}
	c := redis.NewClient(opt)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		if inCI() {
			tb.Fatalf("redis at %s is unreachable (CI=true requires it; set FLOCK_TEST_REDIS_URL): %v", opt.Addr, err)
		}
		tb.Skipf("redis at %s is unreachable (set FLOCK_TEST_REDIS_URL): %v", opt.Addr, err)
	}
	return u
}

// redact hides a password in a database URL for messages.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

// LimitPool keeps a test's connection pool small: many tests run at once
// against one Postgres, which allows a limited number of clients.
//
// Idle connections close after a second: most test servers are idle most
// of the time (their parallel subtests wait for a slot), and kept open,
// their connections filled Postgres's 100 (97 client connections seen,
// nearly all idle, in one run of ./server/; one clean-clone run failed
// with "too many clients").
func LimitPool(db *store.DB) {
	db.DB.DB.SetMaxOpenConns(4)
	db.DB.DB.SetMaxIdleConns(2)
	db.DB.DB.SetConnMaxIdleTime(time.Second)
}
