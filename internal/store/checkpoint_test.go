package store_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/flock-social/flock/internal/store"
)

// A SQLite store checkpoints its WAL in the background, every
// store.SQLiteCheckpointEvery: no request's commit copies the WAL into the
// database file (wal_autocheckpoint is off on every connection), and the
// pages written still reach the file without any further write. 2 MiB stay
// under SQLite's own threshold (1,000 pages, 4 MiB), so without the
// background checkpoint they would stay in the WAL.
func TestSQLite_WALCheckpointedInTheBackground(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "flock.db")
	db, err := store.Open(ctx, "sqlite:"+path, "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	var auto int
	if err := db.QueryRowContext(ctx, "PRAGMA wal_autocheckpoint").Scan(&auto); err != nil {
		t.Fatal(err)
	}
	if auto != 0 {
		t.Errorf("wal_autocheckpoint = %d on a pool connection, want 0 (checkpoints only in the background)", auto)
	}

	const written = 2 << 20
	if _, err := db.ExecContext(ctx, "CREATE TABLE blobs (b BLOB NOT NULL)"); err != nil {
		t.Fatal(err)
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	for range written / (32 << 10) {
		if _, err := tx.ExecContext(ctx, "INSERT INTO blobs (b) VALUES (randomblob(32768))"); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}

	// Generous: a tick is a second, and CI machines are busy.
	deadline := time.Now().Add(10*store.SQLiteCheckpointEvery + 10*time.Second)
	for {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() >= written {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("database file is %d bytes %s after writing %d: the WAL was not checkpointed", fi.Size(), time.Since(deadline.Add(-10*store.SQLiteCheckpointEvery-10*time.Second)).Round(time.Second), written)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
