package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/uptrace/bun"
)

// Prepared statements for the reads every feed page makes (the timeline's
// head, its posts, their authors). bun writes arguments into the SQL text,
// so each of its queries is new text that the engine parses and plans from
// scratch: on SQLite that was a quarter of a feed page's CPU, and on
// Postgres planning cost more than running the posts statement. These
// reads use fixed text with $N parameters instead, prepared once per
// connection (database/sql does that on each connection the first time the
// statement runs there); Postgres switches a statement to a cached generic
// plan after five runs when that plan is no worse. Their results are still
// scanned by bun, into the same models.
//
// So that Postgres does switch, a hot statement takes no id range among its
// parameters where it can do without: ids grow with time, so a page's
// bounds lie past the statistics' last row as soon as rows are written
// after an ANALYZE, the plan made for those values then always looks
// cheaper, and Postgres plans the statement anew on every run
// (listTimelinePosts applies a page's bounds in Go; docs/performance.md,
// item 36). TestTimelinePage_PlannedOnceAfterNewPostsOnPostgres and
// TestGetUser_OneUserIsPlannedOnceOnPostgres count the plans.

// queryPrepared runs query, a statement that returns rows with $1, $2...
// parameters (both engines accept that form), as a prepared statement on
// the pool or in tx when it is a transaction, unprepared when it is a
// connection. The caller closes the rows. Query hooks see it with the
// arguments written into the text, as bun's own queries appear to them.
func (db *DB) queryPrepared(ctx context.Context, tx bun.IDB, query string, args ...any) (rows *sql.Rows, err error) {
	err = db.runPrepared(ctx, tx, query, args, func(stmt *sql.Stmt) error {
		rows, err = stmt.QueryContext(ctx, args...)
		return err
	}, func(r sqlRunner) error {
		rows, err = r.QueryContext(ctx, query, args...)
		return err
	})
	return rows, err
}

// execPrepared is queryPrepared for a statement that returns no rows.
func (db *DB) execPrepared(ctx context.Context, tx bun.IDB, query string, args ...any) (res sql.Result, err error) {
	err = db.runPrepared(ctx, tx, query, args, func(stmt *sql.Stmt) error {
		res, err = stmt.ExecContext(ctx, args...)
		return err
	}, func(r sqlRunner) error {
		res, err = r.ExecContext(ctx, query, args...)
		return err
	})
	return res, err
}

// sqlRunner runs SQL text: a transaction or a connection.
type sqlRunner interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// runPrepared runs query for tx: prepared with run when it can, or as
// text with unprepared; query hooks see it either way.
func (db *DB) runPrepared(ctx context.Context, tx bun.IDB, query string, args []any, run func(*sql.Stmt) error, unprepared func(sqlRunner) error) error {
	var event *bun.QueryEvent
	if len(db.hooks) > 0 {
		event = &bun.QueryEvent{DB: db.DB, Query: db.inline(query, args), QueryTemplate: query, QueryArgs: args}
		for _, h := range db.hooks {
			ctx = h.BeforeQuery(ctx, event)
		}
	}
	var err error
	switch t := tx.(type) {
	case *DB, *bun.DB:
		var stmt *sql.Stmt
		if stmt, err = db.statement(ctx, query); err == nil {
			err = run(stmt)
		}
	case bun.Tx:
		err = db.runInTx(ctx, t.Tx, query, run, unprepared)
	case *bun.Tx:
		err = db.runInTx(ctx, t.Tx, query, run, unprepared)
	// On a connection held by the caller, the text is sent with its
	// arguments, unprepared, as bun would (sql.Conn cannot adopt a
	// statement of the pool).
	case bun.Conn:
		err = unprepared(t.Conn)
	default:
		err = fmt.Errorf("prepared query on %T", tx)
	}
	if event != nil {
		event.Err = err
		for i := len(db.hooks) - 1; i >= 0; i-- {
			db.hooks[i].AfterQuery(ctx, event)
		}
	}
	return err
}

// runInTx runs query in tx with the pool's statement as prepared on the
// transaction's connection: Tx.StmtContext reuses the connection's
// statement when the pool prepared it there before (it keeps one per
// connection), and otherwise prepares it there and keeps it for later (the
// transaction's handle is released when it ends, not the statement). On
// SQLite a like's statements were otherwise parsed anew each time.
//
// Until the pool has the statement, the text runs unprepared and the pool
// prepares it in the background (until Close): preparing it here would wait for a free
// connection of the pool while this transaction holds one, and with every
// connection held by such a transaction the pool deadlocked (Postgres row
// locks and SQLite's write lock held until the statement timed out).
func (db *DB) runInTx(ctx context.Context, tx *sql.Tx, query string, run func(*sql.Stmt) error, unprepared func(sqlRunner) error) error {
	if s, ok := db.prepared.Load(query); ok {
		return run(tx.StmtContext(ctx, s.(*sql.Stmt)))
	}
	if _, started := db.preparing.LoadOrStore(query, true); !started {
		if !db.goBackground(func(ctx context.Context) {
			defer db.preparing.Delete(query)
			ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			_, _ = db.statement(ctx, query) // on failure, a later call tries again
		}) {
			db.preparing.Delete(query)
		}
	}
	return unprepared(tx)
}

// params is the arguments of a prepared statement whose text is written
// as they are added, each numbered in turn ($1, $2...): Postgres refuses a
// parameter that the text does not use, so a shape that leaves a value
// out numbers the rest without it.
type params []any

// add appends v and returns its placeholder.
func (p *params) add(v any) string {
	*p = append(*p, v)
	return "$" + strconv.Itoa(len(*p))
}

// addIDs appends a set of ids as inIDs writes it, and returns the
// condition on column and the suffix of sqlText's key.
func (p *params) addIDs(db *DB, column string, ids []string) (where, key string) {
	where, arg, key := db.inIDs(column, len(*p)+1, ids)
	*p = append(*p, arg)
	return where, key
}

// queryFirst runs query, a prepared statement (see queryPrepared), and
// scans its first row into a T with bun; sql.ErrNoRows when it returns
// none.
func queryFirst[T any](ctx context.Context, db *DB, tx bun.IDB, query string, args ...any) (*T, error) {
	rows, err := db.queryPrepared(ctx, tx, query, args...)
	var out []T
	if err == nil {
		err = db.ScanRows(ctx, rows, &out)
	}
	if err == nil && len(out) == 0 {
		err = sql.ErrNoRows
	}
	if err != nil {
		return nil, err
	}
	return &out[0], nil
}

// scanIDs runs query, a prepared statement (see queryPrepared) that
// returns one text column, and returns its values.
func (db *DB) scanIDs(ctx context.Context, tx bun.IDB, query string, args ...any) ([]string, error) {
	rows, err := db.queryPrepared(ctx, tx, query, args...)
	if err != nil {
		return nil, translate(err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, translate(err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, translate(err)
	}
	return ids, nil
}

// scanOne scans the first row of rows into dest and closes them;
// sql.ErrNoRows when there is none, as QueryRow's Scan.
func scanOne(rows *sql.Rows, dest ...any) error {
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return err
		}
		return sql.ErrNoRows
	}
	if err := rows.Scan(dest...); err != nil {
		return err
	}
	return rows.Close()
}

// sqlText returns the SQL text of a prepared read, built by build the
// first time for this database (it depends on the engine only), so that a
// request does not assemble it again.
func (db *DB) sqlText(key string, build func() string) string {
	if t, ok := db.texts.Load(key); ok {
		return t.(string)
	}
	t, _ := db.texts.LoadOrStore(key, build())
	return t.(string)
}

// statement returns the pool's statement for query, preparing it the first
// time. Two first calls at once may both prepare; one is kept.
func (db *DB) statement(ctx context.Context, query string) (*sql.Stmt, error) {
	if s, ok := db.prepared.Load(query); ok {
		return s.(*sql.Stmt), nil
	}
	stmt, err := db.DB.DB.PrepareContext(ctx, query)
	if err != nil {
		return nil, fmt.Errorf("prepare: %w", translate(err))
	}
	if s, loaded := db.prepared.LoadOrStore(query, stmt); loaded {
		stmt.Close()
		return s.(*sql.Stmt), nil
	}
	return stmt, nil
}

// columns lists the columns of model (a pointer to a bun model) as
// "alias.column, ...", for prepared statements, which must not select "*":
// a column added by a later migration (another instance's, in a rolling
// deploy) would change the statement's result type, which Postgres refuses
// on the connections that prepared it.
func (db *DB) columns(model any, alias string) string {
	var b strings.Builder
	for i, f := range db.Table(reflect.TypeOf(model)).Fields {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(alias)
		b.WriteByte('.')
		b.WriteString(string(f.SQLName))
	}
	return b.String()
}

// limitParam is how a prepared statement takes a row limit that it binds
// as its last parameter, $n: on Postgres "$n", the value then passed with
// the other arguments (args is them with n appended); on SQLite the number
// itself, written into the text, and args unchanged. SQLite treats a bound
// LIMIT or OFFSET as a constant of the plan (sqlite3ExprIsInteger marks the
// parameter), so every new binding of it expired the statement and
// step() parsed and planned it again: half of a feed page's posts
// statement. Limits are page sizes, a few values, each its own statement;
// key the text (sqlText) with the returned SQL.
func (db *DB) limitParam(n int, limit int, args ...any) (string, []any) {
	if db.Engine == Postgres {
		return "$" + strconv.Itoa(n), append(args, limit)
	}
	return strconv.Itoa(max(limit, 0)), args
}

// perRow ends an EXISTS subquery about the reader ($1) that a prepared
// statement runs for each of its rows (is this post liked by the reader,
// does its author follow them), so that it stays a lookup by key per row
// whoever reads: " OFFSET 0" on Postgres, nothing on SQLite (which always
// looks up per row, and refuses an OFFSET without a LIMIT). Without it
// Postgres may plan such a subquery "hashed": it reads every row of the
// reader's set once (all their likes, followers or followees) and looks
// the page's rows up in it. The generic plan of a prepared statement is
// priced for an average reader, so it chose that for everyone, and a
// reader with 47,000 followers paid 21 ms of Postgres CPU for a feed page
// that cost others 0.5 (docs/performance.md, item 40). An OFFSET is one of the things that keep Postgres from rewriting an
// EXISTS that way (simplify_EXISTS_query in its planner); the cost of the
// lookups is then the page's size, not the reader's history.
func (db *DB) perRow() string {
	if db.Engine == Postgres {
		return " OFFSET 0"
	}
	return ""
}

// idSet is the SQL of a set of ids passed as one parameter ($n) whatever
// their number, so that the statement's text stays the same: a JSON array
// on SQLite, a text[] on Postgres. Use it as "x.id IN (idSet)"; idSetArg
// makes the argument.
func (db *DB) idSet(n int) string {
	if db.Engine == Postgres {
		return "SELECT unnest($" + strconv.Itoa(n) + "::text[])"
	}
	return "SELECT value FROM json_each($" + strconv.Itoa(n) + ")"
}

// inIDs is "column IN (ids)" for a prepared statement, with its argument
// ($n) and the suffix that tells the two shapes apart in sqlText's key.
// Several ids are one set parameter, written "column = ANY($n::text[])" on
// Postgres: there a generic plan of the IN form hash-joined the whole table
// (it cannot know the set is small), while ANY keeps the primary key's
// index scan. One id (a single post's read, GetMe, a cache miss) is plain
// equality: Postgres priced the generic plan of the set for ten ids and
// so planned a one-element set anew on every run (docs/performance.md,
// item 35).
func (db *DB) inIDs(column string, n int, ids []string) (where string, arg any, key string) {
	if len(ids) == 1 {
		return column + " = $" + strconv.Itoa(n), ids[0], " (one)"
	}
	if db.Engine == Postgres {
		return column + " = ANY($" + strconv.Itoa(n) + "::text[])", db.idSetArg(ids), ""
	}
	return column + " IN (" + db.idSet(n) + ")", db.idSetArg(ids), ""
}

// idRows is inIDs for a set of ids read as rows ("WITH x(id) AS
// (idRows)"), where a statement needs each id whether or not a table holds
// it: one id is a one-row SELECT of its own statement, for the same reason
// as in inIDs.
func (db *DB) idRows(n int, ids []string) (rows string, arg any, key string) {
	if len(ids) == 1 {
		return "SELECT CAST($" + strconv.Itoa(n) + " AS TEXT)", ids[0], " (one)"
	}
	return db.idSet(n), db.idSetArg(ids), ""
}

// timeArg is the argument of a timestamp parameter: on SQLite the text bun
// writes for a time (UTC, microseconds: schema.BaseDialect.AppendTime's
// format), so that rows written by prepared statements and by bun compare
// as text the same way; on Postgres the time.
func (db *DB) timeArg(t time.Time) any {
	if db.Engine == Postgres {
		return t
	}
	return t.UTC().Format(bunTimeFormat)
}

// bunTimeFormat is how bun writes a time into SQL text.
const bunTimeFormat = "2006-01-02 15:04:05.999999-07:00"

// nullTimeArg is timeArg for a nullable timestamp: nil for nil.
func (db *DB) nullTimeArg(t *time.Time) any {
	if t == nil {
		return nil
	}
	return db.timeArg(*t)
}

// idSetArg is the argument of an idSet parameter.
func (db *DB) idSetArg(ids []string) string {
	if db.Engine == Postgres {
		// An array literal: each element double-quoted, with " and \
		// escaped (ids are ULIDs, but nothing here relies on it). Built
		// in one allocation, the ids copied whole unless they need
		// escaping: writing them a rune at a time was 2.5 % of Flock's
		// CPU for a feed page on Postgres.
		n := 2
		for _, id := range ids {
			n += len(id) + 3
		}
		var b strings.Builder
		b.Grow(n)
		b.WriteByte('{')
		for i, id := range ids {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteByte('"')
			if !strings.ContainsAny(id, `"\`) {
				b.WriteString(id)
			} else {
				for j := 0; j < len(id); j++ {
					if id[j] == '"' || id[j] == '\\' {
						b.WriteByte('\\')
					}
					b.WriteByte(id[j])
				}
			}
			b.WriteByte('"')
		}
		b.WriteByte('}')
		return b.String()
	}
	if ids == nil {
		ids = []string{}
	}
	j, _ := json.Marshal(ids) // strings always marshal
	return string(j)
}

// inline writes args into query in place of $1, $2... for query hooks
// (tests count and replay queries): the text a hook sees runs as it is.
func (db *DB) inline(query string, args []any) string {
	for i := len(args); i >= 1; i-- { // $12 before $1
		var lit []byte
		switch v := args[i-1].(type) {
		case string:
			lit = db.Dialect().AppendString(nil, v)
		case int:
			lit = strconv.AppendInt(nil, int64(v), 10)
		case int64:
			lit = strconv.AppendInt(nil, v, 10)
		case bool:
			lit = db.Dialect().AppendBool(nil, v)
		case time.Time:
			lit = db.Dialect().AppendTime(nil, v)
		case *string:
			if v == nil {
				lit = []byte("NULL")
			} else {
				lit = db.Dialect().AppendString(nil, *v)
			}
		case nil:
			lit = []byte("NULL")
		default:
			lit = fmt.Appendf(nil, "'%v'", v)
		}
		query = strings.ReplaceAll(query, "$"+strconv.Itoa(i), string(lit))
	}
	return query
}
