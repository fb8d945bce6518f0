package store

import (
	"context"
	"fmt"
	"reflect"

	"github.com/uptrace/bun"
)

// Row locks and their one global order.
//
// Counters live in the rows they describe (users.followers_count,
// following_count and posts_count, posts.likes_count and comments_count,
// groups.members_count) and are moved by count = count + delta inside the
// transaction that adds or removes the counted row, so they never drift
// and read for free with the row. The price is that such a transaction
// locks those rows, and two transactions that lock two of them in opposite
// orders deadlock on Postgres (A follows B: users A then B; B follows A:
// users B then A; SQLSTATE 40P01). So every transaction that writes more
// than one of these rows, or writes one and then waits on another, takes
// its locks in this order, each kind at most once and all of a kind at
// once, before it reads what its decision depends on:
//
//  1. the group (LockGroup): membership changes, posting to a group,
//     deleting a group;
//  2. the post (LockPost): likes, comments, deleting a post, its timeline
//     fan-out (after the group, before the author);
//  3. users, in ascending id order in one statement (LockUsers): follows,
//     blocks, the authors whose posts_count a group deletion lowers, a
//     post's author before the post's deletion removes its timeline
//     entries (an unfollow removes entries while it holds both users);
//  4. timelines rows (timelines.go, "Entries and their timeline"): held
//     by the statements that write entries (a fan-out, after its authors;
//     a follow's or a join's backfill), by a fill marking its timeline
//     ready, in user id order when there are several (DropTimelines);
//     deleted with an account after its users;
//  5. last, whatever the recording of notifications and activity
//     (internal/notify) locks, at the end of the transaction.
//
// Foreign keys take FOR KEY SHARE on the rows they reference, which only
// FOR UPDATE (deleting the row) waits for: the locks here are FOR NO KEY
// UPDATE, the lock an UPDATE of a counter takes anyway, so they do not
// hold up inserts that merely reference the row (a like of another post
// of the same author, a follow of a third user). A transaction that will
// delete the row locks it FOR UPDATE (forDelete).
//
// Moving the counters into rows of their own (one per increment, summed
// on read) would avoid the locks but make every profile and post read
// an aggregate; ordering the locks keeps the reads as they are.
//
// SQLite has no row locks: every transaction takes the database's write
// lock at BEGIN (_txlock=immediate), so writers run one at a time and
// cannot deadlock. The functions here do nothing there.

// LockUsers locks the users with the given IDs (those that exist) for the
// rest of the transaction, in ascending id order, with one statement.
// Transactions that change two users' counters or the follows between
// them (follow, unfollow, block) call it first, before their checks, so
// that they run one after the other per pair and read what the other
// committed (a follow cannot slip past a concurrent block).
func (db *DB) LockUsers(ctx context.Context, tx bun.IDB, ids ...string) error {
	if db.Engine != Postgres || len(ids) == 0 {
		return nil
	}
	return db.lockRows(ctx, tx, (*User)(nil), "u.id", ids)
}

// LockPost locks a post for the rest of the transaction (FOR UPDATE when
// forDelete, else FOR NO KEY UPDATE, which a like or comment elsewhere
// does not wait for). Likes, comments and their removal call it first,
// so that they wait for a deletion of the post in progress and then find
// it gone, instead of deadlocking with it or failing its foreign key.
func (db *DB) LockPost(ctx context.Context, tx bun.IDB, id string, forDelete bool) error {
	return db.lockRow(ctx, tx, (*Post)(nil), "p.id", id, forDelete)
}

// LockGroup locks a group for the rest of the transaction, like LockPost:
// membership changes take FOR NO KEY UPDATE, which serialises the counting
// of members; a deletion takes FOR UPDATE.
func (db *DB) LockGroup(ctx context.Context, tx bun.IDB, id string, forDelete bool) error {
	return db.lockRow(ctx, tx, (*Group)(nil), "g.id", id, forDelete)
}

// ShareGroup holds a group for the rest of the transaction as a foreign
// key would (FOR KEY SHARE): a post to the group waits for a deletion of
// the group in progress and then finds it gone, while posts and
// membership changes of the group go on side by side.
func (db *DB) ShareGroup(ctx context.Context, tx bun.IDB, id string) error {
	if db.Engine != Postgres {
		return nil
	}
	if _, err := tx.NewSelect().Model((*Group)(nil)).ColumnExpr("g.id").Where("g.id = ?", id).For("KEY SHARE").Exec(ctx); err != nil {
		return fmt.Errorf("share group: %w", translate(err))
	}
	return nil
}

// lockRows locks the rows of model whose column is one of ids FOR NO KEY
// UPDATE, in ascending order of column, with one statement (nothing for
// no ids).
func (db *DB) lockRows(ctx context.Context, tx bun.IDB, model any, column string, ids []string) error {
	if db.Engine != Postgres || len(ids) == 0 {
		return nil
	}
	// Prepared (see queryPrepared): every follow, block and fan-out locks.
	t := db.Table(reflect.TypeOf(model))
	where, arg, key := db.inIDs(column, 1, ids)
	query := db.sqlText("lock "+column+" set"+key, func() string {
		return "SELECT " + column + " FROM " + string(t.SQLNameForSelects) + " AS " + string(t.SQLAlias) + " WHERE " + where + " ORDER BY " + column + " FOR NO KEY UPDATE"
	})
	if _, err := db.execPrepared(ctx, tx, query, arg); err != nil {
		return fmt.Errorf("lock %s: %w", column, translate(err))
	}
	return nil
}

func (db *DB) lockRow(ctx context.Context, tx bun.IDB, model any, column, id string, forDelete bool) error {
	if db.Engine != Postgres {
		return nil
	}
	mode := "NO KEY UPDATE"
	if forDelete {
		mode = "UPDATE"
	}
	// Prepared (see queryPrepared): every like and comment locks its post.
	t := db.Table(reflect.TypeOf(model))
	query := db.sqlText("lock "+column+" "+mode, func() string {
		return "SELECT " + column + " FROM " + string(t.SQLNameForSelects) + " AS " + string(t.SQLAlias) + " WHERE " + column + " = $1 FOR " + mode
	})
	if _, err := db.execPrepared(ctx, tx, query, id); err != nil {
		return fmt.Errorf("lock %s: %w", column, translate(err))
	}
	return nil
}
