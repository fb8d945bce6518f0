package main

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"iter"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/alexedwards/argon2id"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"
	"github.com/uptrace/bun/driver/pgdriver"

	"github.com/flock-social/flock/bench/internal/flockproc"
	"github.com/flock-social/flock/internal/notify"
	"github.com/flock-social/flock/internal/post/hashtag"
	"github.com/flock-social/flock/internal/store"
)

// passwordParams are internal/account's argon2id parameters (OWASP's
// minimum), so that a login costs what it costs for a registered account.
var passwordParams = &argon2id.Params{Memory: 19 * 1024, Iterations: 2, Parallelism: 1, SaltLength: 16, KeyLength: 32}

// timeText renders a time as bun writes it (schema.BaseDialect.AppendTime),
// so that SQLite holds the same text the app would have written, and
// Postgres parses it as it parses the app's values.
func timeText(t time.Time) string {
	return t.UTC().Format("2006-01-02 15:04:05.999999-07:00")
}

// loader writes rows into one table of the database.
type loader interface {
	load(ctx context.Context, table string, cols []string, rows iter.Seq[[]any]) (int, error)
}

// seed writes every row of d into db, table by table in foreign-key
// order, then gathers planner statistics, and reports the time of each
// step on log.
func seed(ctx context.Context, db *store.DB, dbURL string, d *dataset, log io.Writer) error {
	var ld loader = sqliteLoader{db}
	if db.Engine == store.Postgres {
		// The store's connections time out reads after 5 s, shorter than
		// Postgres may take to catch up with a COPY's buffered rows.
		sqldb := sql.OpenDB(pgdriver.NewConnector(pgdriver.WithDSN(dbURL), pgdriver.WithTimeout(10*time.Minute)))
		defer sqldb.Close()
		ld = pgLoader{bun.NewDB(sqldb, pgdialect.New())}
	}
	hash, err := argon2id.CreateHash(flockproc.Password, passwordParams)
	if err != nil {
		return err
	}
	tags := newZipf(d.p.Tags, 1)

	users := func(yield func([]any) bool) {
		for i := range d.users {
			u := &d.users[i]
			at := timeText(u.created)
			if !yield([]any{u.id.String(), u.name, u.name + "@example.com", hash, "Bench " + u.name, "", "", store.RoleMember,
				at, nil, u.followers, u.following, u.numPosts, at, at}) {
				return
			}
		}
	}
	follows := func(yield func([]any) bool) {
		for _, k := range d.follows {
			if !yield([]any{d.users[k>>32].id.String(), d.users[uint32(k)].id.String(), timeText(d.followedAt(k))}) {
				return
			}
		}
	}
	posts := func(yield func([]any) bool) {
		for i := range d.posts {
			p := &d.posts[i]
			vis := store.VisibilityFollowers
			if p.public {
				vis = store.VisibilityPublic
			}
			at := timeText(p.at)
			if !yield([]any{p.id.String(), d.users[p.author].id.String(), d.content(i, tags), vis, nil, nil, p.likes, p.numComments, at, at}) {
				return
			}
		}
	}
	hashtags := func(yield func([]any) bool) {
		for i := range d.posts {
			for pos, tag := range hashtag.Find(d.content(i, tags)) {
				if !yield([]any{tag, d.posts[i].id.String(), pos}) {
					return
				}
			}
		}
	}
	likes := func(yield func([]any) bool) {
		for _, k := range d.likes {
			if !yield([]any{d.posts[k>>32].id.String(), d.users[uint32(k)].id.String(), timeText(d.likedAt(k))}) {
				return
			}
		}
	}
	comments := func(yield func([]any) bool) {
		for i, c := range d.comments {
			if !yield([]any{c.id.String(), d.posts[c.post].id.String(), d.users[c.author].id.String(),
				fmt.Sprintf("Comment %d on post %d", i+1, c.post+1), timeText(c.at)}) {
				return
			}
		}
	}
	// notifications are what Notify writes for each follow, like and
	// comment of another's post; those older than two days are read.
	notifications := func(yield func([]any) bool) {
		r := rand.New(rand.NewPCG(d.seed, 0x6e6f7469))
		readBefore := d.now.Add(-2 * day)
		row := func(at time.Time, user, typ, actor string, postID, commentID, dedupe any) []any {
			var readAt any
			if at.Before(readBefore) {
				readAt = timeText(at.Add(time.Hour))
			}
			return []any{idAt(at, r).String(), user, typ, actor, postID, commentID, dedupe, readAt, timeText(at)}
		}
		for _, k := range d.follows {
			follower, followee := d.users[k>>32].id.String(), d.users[uint32(k)].id.String()
			if follower == followee {
				continue
			}
			if !yield(row(d.followedAt(k), followee, notify.TypeFollow, follower, nil, nil, "follow:"+follower)) {
				return
			}
		}
		for _, k := range d.likes {
			p, liker := &d.posts[k>>32], int32(uint32(k))
			if p.author == liker {
				continue
			}
			postID, likerID := p.id.String(), d.users[liker].id.String()
			if !yield(row(d.likedAt(k), d.users[p.author].id.String(), notify.TypeLike, likerID, postID, nil, "like:"+likerID+":"+postID)) {
				return
			}
		}
		for _, c := range d.comments {
			p := &d.posts[c.post]
			if p.author == c.author {
				continue
			}
			if !yield(row(c.at, d.users[p.author].id.String(), notify.TypeComment, d.users[c.author].id.String(), p.id.String(), c.id.String(), nil)) {
				return
			}
		}
	}
	// activities are what each action records in its author's activity
	// log: a post, a like, a comment, a follow.
	activities := func(yield func([]any) bool) {
		r := rand.New(rand.NewPCG(d.seed, 0x61637476))
		row := func(at time.Time, user, typ string, target, postID, commentID any) []any {
			return []any{idAt(at, r).String(), user, typ, target, postID, commentID, nil, timeText(at)}
		}
		for i := range d.posts {
			p := &d.posts[i]
			if !yield(row(p.at, d.users[p.author].id.String(), notify.PostCreated, nil, p.id.String(), nil)) {
				return
			}
		}
		for _, k := range d.likes {
			if !yield(row(d.likedAt(k), d.users[uint32(k)].id.String(), notify.PostLiked, nil, d.posts[k>>32].id.String(), nil)) {
				return
			}
		}
		for _, c := range d.comments {
			if !yield(row(c.at, d.users[c.author].id.String(), notify.CommentCreated, nil, d.posts[c.post].id.String(), c.id.String())) {
				return
			}
		}
		for _, k := range d.follows {
			follower, followee := d.users[k>>32].id.String(), d.users[uint32(k)].id.String()
			if follower == followee {
				continue
			}
			if !yield(row(d.followedAt(k), follower, notify.UserFollowed, followee, nil, nil)) {
				return
			}
		}
	}
	steps := []struct {
		table string
		cols  []string
		rows  iter.Seq[[]any]
	}{
		{"users", []string{"id", "username", "email", "password_hash", "full_name", "bio", "avatar_key", "role",
			"email_verified_at", "suspended_at", "followers_count", "following_count", "posts_count", "created_at", "updated_at"}, users},
		{"follows", []string{"follower_id", "followee_id", "created_at"}, follows},
		{"posts", []string{"id", "author_id", "content", "visibility", "group_id", "video_id", "likes_count", "comments_count",
			"created_at", "updated_at"}, posts},
		{"post_hashtags", []string{"tag", "post_id", "position"}, hashtags},
		{"likes", []string{"post_id", "user_id", "created_at"}, likes},
		{"comments", []string{"id", "post_id", "author_id", "content", "created_at"}, comments},
		{"notifications", []string{"id", "user_id", "type", "actor_id", "post_id", "comment_id", "dedupe_key", "read_at", "created_at"}, notifications},
		{"activities", []string{"id", "user_id", "type", "target_user_id", "post_id", "comment_id", "group_id", "created_at"}, activities},
	}
	for _, s := range steps {
		start := time.Now()
		n, err := ld.load(ctx, s.table, s.cols, s.rows)
		if err != nil {
			return fmt.Errorf("seed %s: %w", s.table, err)
		}
		fmt.Fprintf(log, "  %-14s %10d rows in %v\n", s.table, n, time.Since(start).Round(time.Millisecond))
	}
	start := time.Now()
	var runner bun.IDB = db
	if pl, ok := ld.(pgLoader); ok {
		// On the loader's connection, whose reads may take minutes: the
		// store's time out after 5 s, and vacuuming the medium profile
		// with its notifications takes longer.
		runner = pl.db
	}
	if err := analyze(ctx, runner, db.Engine); err != nil {
		return err
	}
	fmt.Fprintf(log, "  %-14s %10s      in %v\n", "(VACUUM) ANALYZE", "", time.Since(start).Round(time.Millisecond))
	return nil
}

// analyze gathers planner statistics, as a database that has served for a
// while would have them; on Postgres it also vacuums, which sets the
// visibility map that autovacuum would have set by then (without it every
// index-only scan of the freshly copied rows visits the table too).
func analyze(ctx context.Context, db bun.IDB, engine string) error {
	stmts := []string{"VACUUM (ANALYZE)"}
	if engine == store.SQLite {
		stmts = []string{"ANALYZE", "PRAGMA optimize"}
	}
	for _, q := range stmts {
		if _, err := db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
	}
	return nil
}

// pgLoader streams rows through COPY ... FROM STDIN in text format.
type pgLoader struct{ db *bun.DB }

func (l pgLoader) load(ctx context.Context, table string, cols []string, rows iter.Seq[[]any]) (int, error) {
	conn, err := l.db.Conn(ctx)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	pr, pw := io.Pipe()
	n := 0
	done := make(chan error, 1)
	go func() {
		w := bufio.NewWriterSize(pw, 1<<16)
		var line []byte
		for row := range rows {
			line = line[:0]
			for i, v := range row {
				if i > 0 {
					line = append(line, '\t')
				}
				line = appendCopyValue(line, v)
			}
			line = append(line, '\n')
			if _, err := w.Write(line); err != nil {
				done <- err
				return
			}
			n++
		}
		err := w.Flush()
		pw.CloseWithError(err)
		done <- err
	}()
	_, err = pgdriver.CopyFrom(ctx, conn, pr, fmt.Sprintf("COPY %s (%s) FROM STDIN", table, strings.Join(cols, ", ")))
	pr.CloseWithError(errors.New("copy ended")) // unblocks the writer if COPY failed early
	werr := <-done
	if err != nil {
		return n, err
	}
	return n, werr
}

// appendCopyValue renders v in COPY's text format.
func appendCopyValue(b []byte, v any) []byte {
	switch v := v.(type) {
	case nil:
		return append(b, `\N`...)
	case string:
		for i := 0; i < len(v); i++ {
			switch c := v[i]; c {
			case '\\':
				b = append(b, `\\`...)
			case '\t':
				b = append(b, `\t`...)
			case '\n':
				b = append(b, `\n`...)
			case '\r':
				b = append(b, `\r`...)
			default:
				b = append(b, c)
			}
		}
		return b
	case int:
		return strconv.AppendInt(b, int64(v), 10)
	case int64:
		return strconv.AppendInt(b, v, 10)
	default:
		panic(fmt.Sprintf("copy: unexpected %T", v))
	}
}

// sqliteLoader inserts rows with a prepared multi-row INSERT, one
// transaction per batch.
type sqliteLoader struct{ db *store.DB }

const (
	sqliteRowsPerTx = 20_000
	sqliteMaxParams = 30_000 // SQLite allows 32,766 parameters per statement
)

func (l sqliteLoader) load(ctx context.Context, table string, cols []string, rows iter.Seq[[]any]) (int, error) {
	perStmt := min(500, sqliteMaxParams/len(cols))
	stmtText := func(k int) string {
		one := "(" + strings.TrimSuffix(strings.Repeat("?, ", len(cols)), ", ") + ")"
		return fmt.Sprintf("INSERT INTO %s (%s) VALUES %s", table, strings.Join(cols, ", "),
			strings.TrimSuffix(strings.Repeat(one+", ", k), ", "))
	}
	var (
		n    int
		args = make([]any, 0, perStmt*len(cols))
		// one transaction at a time, its rows buffered
		batch [][]any
	)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		tx, err := l.db.DB.DB.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		defer tx.Rollback() //nolint:errcheck // after Commit it does nothing
		full, err := tx.PrepareContext(ctx, stmtText(perStmt))
		if err != nil {
			return err
		}
		defer full.Close()
		for i := 0; i < len(batch); i += perStmt {
			chunk := batch[i:min(i+perStmt, len(batch))]
			args = args[:0]
			for _, row := range chunk {
				args = append(args, row...)
			}
			if len(chunk) == perStmt {
				_, err = full.ExecContext(ctx, args...)
			} else {
				_, err = tx.ExecContext(ctx, stmtText(len(chunk)), args...)
			}
			if err != nil {
				return err
			}
		}
		batch = batch[:0]
		return tx.Commit()
	}
	for row := range rows {
		batch = append(batch, row)
		n++
		if len(batch) == sqliteRowsPerTx {
			if err := flush(); err != nil {
				return n, err
			}
		}
	}
	return n, flush()
}
