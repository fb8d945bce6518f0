package store_test

import (
	"testing"

	"github.com/flock-social/flock/internal/store"
	"github.com/flock-social/flock/internal/testutil"
)

// A freshly migrated database has planner statistics for every table
// (issue 13: without them Postgres chose plans nearly three times as
// costly), and migrating again when nothing is pending leaves them.
func TestMigrate_LeavesEveryTableAnalyzed(t *testing.T) {
	t.Parallel()
	testutil.ForEachEngine(t, func(t *testing.T, db *store.DB) {
		ctx := t.Context()
		check := func(when string) {
			t.Helper()
			switch db.Engine {
			case store.Postgres:
				var never []string
				if err := db.NewRaw(`SELECT relname FROM pg_stat_user_tables
					WHERE schemaname = current_schema() AND last_analyze IS NULL AND last_autoanalyze IS NULL`).Scan(ctx, &never); err != nil {
					t.Fatal(err)
				}
				if len(never) > 0 {
					t.Errorf("%s: tables never analyzed: %v", when, never)
				}
				var tables int
				if err := db.NewRaw(`SELECT count(*) FROM pg_stat_user_tables WHERE schemaname = current_schema()`).Scan(ctx, &tables); err != nil || tables < 10 {
					t.Fatalf("%s: %d tables in the schema (%v)", when, tables, err)
				}
			case store.SQLite:
				var n int
				if err := db.NewRaw(`SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_stat1'`).Scan(ctx, &n); err != nil || n != 1 {
					t.Errorf("%s: sqlite_stat1 tables = %d (%v), want 1", when, n, err)
				}
			}
		}
		check("after the first migration")
		applied, err := db.Migrate(ctx)
		if err != nil || len(applied) != 0 {
			t.Fatalf("second Migrate = %v, %v; want nothing applied", applied, err)
		}
		check("after a migration with nothing pending")
	})
}
