// Package store persists Flock's data with bun on SQLite (the embedded
// default) or Postgres. It holds the bun models, the queries, the migrations
// of each dialect and the translation of driver errors into flock errors. It
// makes no business decisions: those belong to the domain packages.
package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"
	"github.com/uptrace/bun/dialect/sqlitedialect"
	"github.com/uptrace/bun/driver/pgdriver"

	"github.com/flock-social/flock"
)

// Dialects that Open understands.
const (
	SQLite   = "sqlite"
	Postgres = "postgres"
)

// DB is a connection pool to one database plus what the queries need to know
// about it.
type DB struct {
	*bun.DB
	// Engine is SQLite or Postgres.
	Engine string
	// Now returns the current time; tests may replace it.
	Now func() time.Time

	// prepared holds the statements of the hot reads (see queryPrepared),
	// by SQL text; hooks are the query hooks of AddQueryHook, which
	// queryPrepared calls itself since bun does not run those queries.
	prepared sync.Map // string -> *sql.Stmt
	texts    sync.Map // key -> the SQL text of a prepared read (see sqlText)
	// preparing holds the statements being prepared in the background
	// for a transaction (see runInTx); background counts those goroutines
	// and Close stops and waits for them, so that none opens a connection
	// (on SQLite, files) after the store is closed.
	preparing  sync.Map // string -> true
	bgMu       sync.Mutex
	bgClosed   bool
	background sync.WaitGroup
	bgCtx      context.Context
	bgStop     context.CancelFunc
	hooks      []bun.QueryHook

	// deadlocks and serializationFailures count the transactions of InTx
	// that Postgres aborted (each then run again or given up), for
	// TxConflicts.
	deadlocks, serializationFailures atomic.Uint64

	// caches hold the rarely changing part of posts and authors for
	// timeline pages (rowcache.go).
	caches *rowCaches

	// local is whether the database runs on this machine (see Local).
	local bool
}

// Local reports whether the database shares this machine's CPUs: SQLite
// always; Postgres when its URL names localhost, a loopback address or a
// Unix socket. Any other host name is taken for another machine, even
// where it resolves to this one.
func (db *DB) Local() bool { return db.local }

// MaxConns is the most connections the pool opens.
func (db *DB) MaxConns() int { return db.DB.DB.Stats().MaxOpenConnections }

// localPostgres reports whether rawURL's host is this machine: localhost,
// a loopback address, or a Unix socket (no host, or a path as the host or
// in libpq's host parameter).
func localPostgres(rawURL string) bool {
	u, err := url.Parse(rawURL)
	if err != nil {
		return false
	}
	host := u.Hostname()
	if h := u.Query().Get("host"); h != "" {
		host = h
	}
	if host == "" || strings.HasPrefix(host, "/") || strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// TxConflictStats counts the transaction runs of InTx that Postgres aborted
// since Open: as a deadlock victim (SQLSTATE 40P01) or on a serialization
// failure (40001). With locks taken in the one order of locks.go both stay
// at 0; each is a transaction that ran again (or, the fourth time, a
// request answered unavailable).
type TxConflictStats struct {
	Deadlocks, SerializationFailures uint64
}

// TxConflicts returns the counts of aborted transaction runs.
func (db *DB) TxConflicts() TxConflictStats {
	return TxConflictStats{Deadlocks: db.deadlocks.Load(), SerializationFailures: db.serializationFailures.Load()}
}

// Open connects to the database that url names and checks that it answers:
// "" means a SQLite file flock.db in dataDir; "sqlite:<path>" or "file:<path>"
// a SQLite file; "postgres://..." or "postgresql://..." Postgres. It does not
// apply migrations (see Migrate).
func Open(ctx context.Context, rawURL, dataDir string) (*DB, error) {
	var (
		db      *bun.DB
		dialect string
	)
	switch {
	case strings.HasPrefix(rawURL, "postgres://"), strings.HasPrefix(rawURL, "postgresql://"):
		dsn, conns, err := postgresDSN(rawURL)
		if err != nil {
			return nil, err
		}
		connector := pgdriver.NewConnector(pgdriver.WithDSN(dsn), pgdriver.WithTimeout(5*time.Second))
		sqldb := sql.OpenDB(pgConnector{connector})
		sqldb.SetMaxOpenConns(conns)
		// As many idle as open: with fewer, 16 requests in flight closed
		// and reopened 45-200 connections per 12 s (a Postgres backend
		// start and authentication each), measured with bench/load.
		sqldb.SetMaxIdleConns(conns)
		sqldb.SetConnMaxIdleTime(5 * time.Minute)
		db = bun.NewDB(sqldb, pgdialect.New())
		dialect = Postgres
	case rawURL == "", strings.HasPrefix(rawURL, "sqlite:"), strings.HasPrefix(rawURL, "file:"):
		path := strings.TrimPrefix(strings.TrimPrefix(strings.TrimPrefix(rawURL, "sqlite:"), "file:"), "//")
		if path == "" {
			if err := os.MkdirAll(dataDir, 0o700); err != nil {
				return nil, fmt.Errorf("store: create data dir: %w", err)
			}
			path = filepath.Join(dataDir, "flock.db")
		}
		keepSQLiteHeapPages()
		// modernc's own registration ("sqlite"), the driver bun's shim
		// wraps on every platform Flock builds for: its functions
		// (sqlitelower.go) are registered there, not on the shim's copy.
		sqldb, err := sql.Open("sqlite", sqliteDSN(path))
		if err != nil {
			return nil, fmt.Errorf("store: open sqlite %s: %w", path, err)
		}
		// WAL lets readers run beside the one writer; _txlock=immediate makes
		// every transaction take the write lock at BEGIN, so two writers wait
		// on busy_timeout instead of failing with SQLITE_BUSY mid-transaction.
		sqldb.SetMaxOpenConns(4)
		sqldb.SetMaxIdleConns(4)
		sqldb.SetConnMaxLifetime(0)
		db = bun.NewDB(sqldb, sqlitedialect.New())
		dialect = SQLite
	default:
		return nil, fmt.Errorf("store: unsupported database URL %q: use postgres://..., sqlite:<path>, or leave it empty for %s", redact(rawURL), filepath.Join(dataDir, "flock.db"))
	}
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := db.PingContext(pingCtx); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: connect to %s: %w", dialect, translate(err))
	}
	// Now is truncated to microseconds, what both engines store, so that an
	// answer made from a row just written says the same as a later read.
	bgCtx, bgStop := context.WithCancel(context.Background())
	store := &DB{DB: db, Engine: dialect, Now: func() time.Time { return time.Now().UTC().Truncate(time.Microsecond) },
		bgCtx: bgCtx, bgStop: bgStop, caches: newRowCaches(), local: dialect == SQLite || localPostgres(rawURL)}
	if dialect == SQLite {
		// The pool itself, not store.DB: AddQueryHook replaces that.
		pool := db.DB
		store.goBackground(func(ctx context.Context) { checkpointSQLite(ctx, pool) })
	}
	return store, nil
}

// SQLiteCheckpointEvery is how often a SQLite store checkpoints its WAL
// (checkpointSQLite).
const SQLiteCheckpointEvery = time.Second

// checkpointSQLite checkpoints the WAL every SQLiteCheckpointEvery until ctx
// ends. SQLite's own checkpoint (wal_autocheckpoint, off in sqliteDSN) ran
// in the request whose commit passed 1,000 WAL pages, and a like writes
// about 25: every 40th like copied the WAL into the database file and
// synced it, 16-18 % of the CPU of bench/load's like on SQLite, and the
// pages many likes change (a post's counter, the last pages of likes and
// notifications) were copied again each time. And under steady writes it
// never started the WAL over, since some reader always still used it: the
// file grew to 467 MB in 16 s of likes.
//
// Each round first copies what it can without waiting (PASSIVE), then
// starts the WAL over (RESTART), which waits for the readers still on the
// old WAL and holds writers off meanwhile: it is given 50 ms, not the
// pool's busy_timeout, so a long read delays no write; a round that cannot
// restart leaves it to the next.
func checkpointSQLite(ctx context.Context, pool *sql.DB) {
	t := time.NewTicker(SQLiteCheckpointEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		// An error (a disk error, the store closing) is met again by the
		// writes themselves; the next round tries again.
		_ = checkpointRound(ctx, pool)
	}
}

// checkpointRound runs on the bare pool, so that bun's query hooks (the
// tests' statement counts) see only requests' statements.
func checkpointRound(ctx context.Context, pool *sql.DB) error {
	conn, err := pool.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)"); err != nil {
		return err
	}
	if _, err := conn.ExecContext(ctx, "PRAGMA busy_timeout = 50"); err != nil {
		return err
	}
	_, err = conn.ExecContext(ctx, "PRAGMA wal_checkpoint(RESTART)")
	// The connection goes back to the pool: with the pool's timeout again,
	// even when ctx has ended.
	if _, rerr := conn.ExecContext(context.WithoutCancel(ctx), "PRAGMA busy_timeout = "+strconv.Itoa(sqliteBusyMillis)); rerr != nil {
		_ = conn.Raw(func(any) error { return driver.ErrBadConn }) // dropped, not reused
		return rerr
	}
	return err
}

// Close stops the store's background work (see runInTx), waits for it and
// closes the database.
func (db *DB) Close() error {
	db.bgMu.Lock()
	db.bgClosed = true
	db.bgMu.Unlock()
	if db.bgStop != nil {
		db.bgStop()
	}
	db.background.Wait()
	return db.DB.Close()
}

// goBackground runs fn in a goroutine that Close stops (its context ends)
// and waits for; false, without running it, once Close has begun.
func (db *DB) goBackground(fn func(ctx context.Context)) bool {
	db.bgMu.Lock()
	defer db.bgMu.Unlock()
	if db.bgClosed || db.bgCtx == nil {
		return false
	}
	db.background.Add(1)
	go func() {
		defer db.background.Done()
		fn(db.bgCtx)
	}()
	return true
}

// DefaultPoolMaxConns is how many connections to Postgres an instance
// opens at most unless the URL's pool_max_conns says otherwise.
const DefaultPoolMaxConns = 20

// postgresDSN is the URL pgdriver gets, and the pool's size: the URL's
// pool_max_conns (pgxpool's name for it), which is Flock's and taken out.
// Fewer connections than requests in flight can shorten the tail where
// Postgres shares the instance's cores (docs/performance.md). It also sets
// the session time zone to UTC (pgdriver sends query parameters it does
// not know as run-time parameters), so that timestamps come back in UTC as
// they do from SQLite, whatever the server's default.
//
// And it sets plan_cache_mode to force_generic_plan, unless the URL sets
// it: each of Flock's prepared statements is planned once per connection
// and never again. Their texts are written for their generic plans (no id
// range among the parameters of a hot read; the plan tests of
// postgres_test.go read those plans), but Postgres's default
// (auto) plans a statement for its values on its first five runs on each
// connection, and on every run where its values' plan looks cheaper (the
// id ranges of fills, fan-outs and later pages). The first feed page of
// each user after a start paid for those plans: Postgres spent 0.74 ms a
// page planning the timeline's posts alone, more than running them
// (docs/performance.md, item 46). bun's own queries carry their values in
// their text, so the setting does not touch them.
func postgresDSN(rawURL string) (string, int, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return rawURL, DefaultPoolMaxConns, nil // pgdriver reports the error
	}
	q := u.Query()
	conns := DefaultPoolMaxConns
	if v, ok := q["pool_max_conns"]; ok {
		n, err := strconv.Atoi(v[0])
		if err != nil || n < 1 || n > 1000 || len(v) > 1 {
			return "", 0, fmt.Errorf("store: database URL %s: pool_max_conns must be one whole number from 1 to 1000, got %q", redact(rawURL), strings.Join(v, ","))
		}
		conns = n
		q.Del("pool_max_conns")
	}
	q.Set("TimeZone", "UTC")
	if !q.Has("plan_cache_mode") {
		q.Set("plan_cache_mode", "force_generic_plan")
	}
	u.RawQuery = q.Encode()
	return u.String(), conns, nil
}

// sqliteBusyMillis is how long a SQLite statement waits for a lock.
const sqliteBusyMillis = 10000

func sqliteDSN(path string) string {
	q := url.Values{}
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "busy_timeout("+strconv.Itoa(sqliteBusyMillis)+")")
	q.Add("_pragma", "synchronous(NORMAL)")
	// Reads through a memory map instead of a read system call per page
	// (a third of a feed page's CPU went to pread), and a larger page
	// cache per connection (default 2 MB).
	q.Add("_pragma", "mmap_size(268435456)")
	q.Add("_pragma", "cache_size(-16384)")
	// No checkpoint in the request whose commit passes the WAL's 1,000
	// pages: checkpointSQLite checkpoints in the background (see there).
	q.Add("_pragma", "wal_autocheckpoint(0)")
	q.Set("_txlock", "immediate")
	q.Set("_time_format", "sqlite")
	// SQLite reads "file:" names as URIs (RFC 3986): a path's "?", "#" or
	// "%" (a data directory such as /srv/flock#2) is escaped so it stays
	// part of the file name.
	return "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + q.Encode()
}

// redact hides a password in a database URL for error messages.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	return u.Redacted()
}

// NewID returns a new time-ordered, globally unique identifier (a ULID):
// later IDs sort after earlier ones as strings, and instances need no
// coordination to make them.
func NewID() string {
	// ulid.Make reads the clock before it takes its entropy lock, so under
	// concurrency an ID can sort before one made earlier in the same
	// millisecond. Reading the clock under the lock, never going back in
	// time, keeps IDs made one after another in that order.
	idGen.Lock()
	defer idGen.Unlock()
	ms := max(ulid.Now(), idGen.lastMS)
	id, err := ulid.New(ms, idGen.entropy)
	if err != nil {
		// The entropy overflowed within this millisecond: use the next one.
		ms++
		id = ulid.MustNew(ms, idGen.entropy)
	}
	idGen.lastMS = ms
	return id.String()
}

// MinID sorts before every id that NewID or IDAfter makes.
const MinID = "00000000000000000000000000"

// IDAfter returns an id that sorts after id: NewID when the clock is past
// it, else id plus one (its random part incremented), so that ids stay
// increasing when they must follow one made by an instance whose clock is
// ahead.
func IDAfter(id string) (string, error) {
	next := NewID()
	if next > id {
		return next, nil
	}
	u, err := ulid.ParseStrict(id)
	if err != nil {
		return "", fmt.Errorf("id after %q: %w", id, err)
	}
	for i := len(u) - 1; i >= 0; i-- {
		u[i]++
		if u[i] != 0 {
			break
		}
	}
	return u.String(), nil
}

// idGen is the state of NewID: the last millisecond used and entropy that
// increases within it.
var idGen = struct {
	sync.Mutex
	lastMS  uint64
	entropy *ulid.MonotonicEntropy
}{entropy: ulid.Monotonic(rand.Reader, 0)}

// InTx runs fn inside a transaction, committing when fn returns nil and
// rolling back otherwise. When Postgres aborts the transaction as a
// deadlock victim or a serialization failure (SQLSTATE 40P01, 40001; see
// Retryable), nothing of it was committed, and InTx runs fn again in a new
// transaction, up to txAttempts times in all, after a short jittered pause
// so that the two contenders do not meet again. fn must therefore be safe
// to rerun: it sets what it returns on each run rather than appending to
// it, and does nothing outside the database that a rerun would repeat
// (work that must happen once goes after InTx returns). The last error, if
// all attempts fail, carries flock.EUNAVAILABLE (see translate).
func (db *DB) InTx(ctx context.Context, fn func(ctx context.Context, tx bun.Tx) error) error {
	var err error
	for attempt := range txAttempts {
		if attempt > 0 {
			if !sleepCtx(ctx, retryPause(attempt)) {
				return err
			}
		}
		err = db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
			return fn(ctx, tx)
		})
		if !Retryable(err) {
			return err
		}
		if isDeadlock(err) {
			db.deadlocks.Add(1)
		} else {
			db.serializationFailures.Add(1)
		}
	}
	if flock.ErrorCode(err) != flock.EUNAVAILABLE {
		err = busy(err)
	}
	return err
}

// txAttempts bounds the runs of one InTx: deadlocks are rare once locks are
// taken in order (see locks.go), so a few attempts cover bursts of them.
const txAttempts = 4

// retryPause is the pause before attempt (1, 2, ...): a random duration
// up to 5 ms, 10 ms, 20 ms ("full jitter").
func retryPause(attempt int) time.Duration {
	limit := 5 * time.Millisecond << (attempt - 1)
	return time.Duration(mrand.Int64N(int64(limit)) + 1)
}

// sleepCtx waits d, or less when ctx ends first; false when it did.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// Ping reports whether the database answers, for readiness checks.
func (db *DB) Ping(ctx context.Context) error {
	return translate(db.PingContext(ctx))
}

var errNoRows = sql.ErrNoRows

// IsNotFound reports whether err means that a query matched no row.
func IsNotFound(err error) bool { return errors.Is(err, errNoRows) }

// AddQueryHook attaches hook to every query made after the call, for
// instrumentation (tests count queries with it). It must not be called
// while queries are running.
func (db *DB) AddQueryHook(hook bun.QueryHook) {
	db.DB = db.DB.WithQueryHook(hook)
	db.hooks = append(db.hooks, hook)
}

// IDAt returns the smallest ID that NewID can make at t: every ID made at or
// after t sorts after it. (Streams start from their user's event head, not
// from IDAt(now): an event's id may be made before it commits, or by an
// instance whose clock is behind; see EventHead.)
func IDAt(t time.Time) string {
	var id ulid.ULID
	_ = id.SetTime(ulid.Timestamp(t))
	return id.String()
}

// ValidID reports whether s has the form of an ID that NewID makes.
func ValidID(s string) bool {
	_, err := ulid.ParseStrict(s)
	return err == nil
}
