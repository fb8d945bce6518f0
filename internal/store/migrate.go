package store

import (
	"context"
	"embed"
	"fmt"
	"io/fs"

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
	return applied, nil
}
