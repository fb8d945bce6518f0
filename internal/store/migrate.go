package store

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"strings"

	"github.com/uptrace/bun/migrate"
)

// Each dialect has its own SQL: types and index features differ enough that
// one portable script would be the weaker of both.
//
//go:embed migrations/sqlite/*.sql migrations/postgres/*.sql
var migrationFiles embed.FS

func (db *DB) migrator() (*migrate.Migrator, error) {
	sub, err := fs.Sub(migrationFiles, "migrations/"+db.Engine)
	if err != nil {
		return nil, err
	}
	migrations := migrate.NewMigrations()
	if err := migrations.Discover(sub); err != nil {
		return nil, fmt.Errorf("store: read migrations: %w", err)
	}
	return migrate.NewMigrator(db.DB, migrations, migrate.WithMarkAppliedOnSuccess(true)), nil
}

// migrationLockKey is the Postgres advisory lock that serialises migrations.
const migrationLockKey = 7_300_117_001

// Migrate applies every migration not applied yet, in order, each in its own
// transaction, and returns the names of those it applied. On Postgres,
// instances starting at once are serialised by an advisory lock, which the
// server drops by itself if the holder dies (bun's lock table would not).
func (db *DB) Migrate(ctx context.Context) ([]string, error) {
	m, err := db.migrator()
	if err != nil {
		return nil, err
	}
	if db.Engine == Postgres {
		conn, err := db.Conn(ctx)
		if err != nil {
			return nil, fmt.Errorf("store: migrate: %w", translate(err))
		}
		defer conn.Close()
		if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock(?)", migrationLockKey); err != nil {
			return nil, fmt.Errorf("store: migrate: lock: %w", translate(err))
		}
		defer conn.ExecContext(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock(?)", migrationLockKey) //nolint:errcheck // the lock also ends with the connection
	}
	if err := m.Init(ctx); err != nil {
		return nil, fmt.Errorf("store: init migrations: %w", err)
	}
	group, err := m.Migrate(ctx)
	if err != nil {
		return nil, fmt.Errorf("store: migrate: %w", err)
	}
	var applied []string
	for _, mig := range group.Migrations {
		applied = append(applied, mig.Name)
	}
	if err := db.analyze(ctx, len(applied) > 0); err != nil {
		return applied, fmt.Errorf("store: migrate: %w", err)
	}
	return applied, nil
}

// analyze gives the query planner statistics: the feed's plan on Postgres
// took 11 ms a page without them and 4 ms with them, and nothing else
// gathers them on a new database (autovacuum waits for enough changed
// rows). It analyzes every table after migrations were applied (all, when
// all were), and otherwise only tables never analyzed, so a start on an
// existing database costs one catalogue query on Postgres and a bounded
// PRAGMA optimize on SQLite.
func (db *DB) analyze(ctx context.Context, migrated bool) error {
	switch db.Engine {
	case Postgres:
		// Only this schema's tables: a bare ANALYZE would visit every
		// schema of the database. reltuples is -1 until a table is first
		// analyzed (or vacuumed), and unlike pg_stat it survives restarts.
		q := `SELECT quote_ident(c.relname) FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace
			WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p')`
		if !migrated {
			q += " AND c.reltuples < 0"
		}
		var tables []string
		if err := db.NewRaw(q).Scan(ctx, &tables); err != nil {
			return fmt.Errorf("analyze: list tables: %w", translate(err))
		}
		if len(tables) == 0 {
			return nil
		}
		if _, err := db.ExecContext(ctx, "ANALYZE "+strings.Join(tables, ", ")); err != nil {
			return fmt.Errorf("analyze: %w", translate(err))
		}
	case SQLite:
		// analysis_limit samples at most that many rows per index, so
		// ANALYZE stays quick on a large file. It is a per-connection
		// setting: one connection runs both statements.
		conn, err := db.Conn(ctx)
		if err != nil {
			return fmt.Errorf("analyze: %w", translate(err))
		}
		defer conn.Close()
		var stats int
		if err := conn.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_stat1'").Scan(&stats); err != nil {
			return fmt.Errorf("analyze: %w", translate(err))
		}
		stmt := "PRAGMA optimize"
		if migrated || stats == 0 {
			stmt = "ANALYZE"
		}
		if _, err := conn.ExecContext(ctx, "PRAGMA analysis_limit = 1000"); err != nil {
			return fmt.Errorf("analyze: %w", translate(err))
		}
		if _, err := conn.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("analyze: %s: %w", stmt, translate(err))
		}
	}
	return nil
}
