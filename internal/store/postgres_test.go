package store_test

// Behaviour that only the Postgres engine can show: a server that goes away,
// and a server whose default time zone is not UTC.

import (
	"context"
	"crypto/md5"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/flock-social/flock"
	"github.com/flock-social/flock/internal/store"
	"github.com/flock-social/flock/internal/testutil"
)

// A Postgres that does not answer is reported as unavailable, so that the
// transport answers Unavailable (retry later) rather than Internal.
func TestOpen_UnreachablePostgresIsUnavailable_P17(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	// Port 1 on the loopback refuses connections at once.
	db, err := store.Open(ctx, "postgres://postgres@127.0.0.1:1/test?sslmode=disable", "")
	if err == nil {
		db.Close()
		t.Fatal("Open of a Postgres that is not listening succeeded")
	}
	if code := flock.ErrorCode(err); code != flock.EUNAVAILABLE {
		t.Fatalf("flock.ErrorCode = %q, want %q (err %v)", code, flock.EUNAVAILABLE, err)
	}
}

// A connection that the server drops (as in a Postgres restart) fails the
// query that was using it with Unavailable, and the pool then recovers on
// its own: the next query succeeds without reopening the store.
func TestQuery_DroppedConnectionIsUnavailableThenRecovers_P17(t *testing.T) {
	t.Parallel()
	db := testutil.MustStore(t, store.Postgres)
	ctx := context.Background()
	u := MustCreateUser(t, db, "alice")

	conn, err := db.DB.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var pid int
	if err := conn.QueryRowContext(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		t.Fatal(err)
	}
	// From another connection of the pool, end conn's backend and wait (up
	// to 5 s) until it is gone.
	var terminated bool
	if err := db.QueryRowContext(ctx, "SELECT pg_terminate_backend(?, 5000)", pid).Scan(&terminated); err != nil || !terminated {
		t.Fatalf("pg_terminate_backend(%d) = %v, %v", pid, terminated, err)
	}

	_, err = db.GetUser(ctx, conn, u.ID)
	if err == nil {
		t.Fatal("a query on a terminated connection succeeded")
	}
	if code := flock.ErrorCode(err); code != flock.EUNAVAILABLE {
		t.Fatalf("query on a terminated connection: flock.ErrorCode = %q, want %q (err %v)", code, flock.EUNAVAILABLE, err)
	}
	t.Logf("query on a terminated connection: %v", err)
	conn.Close()

	// The pool drops the dead connection; queries work again.
	for i := range 3 {
		if _, err := db.GetUser(ctx, db, u.ID); err != nil {
			t.Fatalf("query %d after the connection was dropped: %v", i+1, err)
		}
	}
	if err := db.Ping(ctx); err != nil {
		t.Fatalf("Ping after the connection was dropped: %v", err)
	}
}

// Timestamps come back in UTC from Postgres as from SQLite, even when the
// server's (or the URL's) time zone is another one.
func TestOpen_PostgresTimestampsComeBackInUTC(t *testing.T) {
	t.Parallel()
	testutil.MustStore(t, store.Postgres) // skips when Postgres is unreachable
	u, err := url.Parse(testutil.DatabaseURL())
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("TimeZone", "Asia/Tokyo")
	u.RawQuery = q.Encode()
	ctx := context.Background()
	db, err := store.Open(ctx, u.String(), "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	want := time.Date(2026, 11, 28, 23, 30, 0, 0, time.UTC)
	var got time.Time
	if err := db.NewSelect().ColumnExpr("?::timestamptz", want).Scan(ctx, &got); err != nil {
		t.Fatal(err)
	}
	if name, off := got.Zone(); !got.Equal(want) || off != 0 {
		t.Fatalf("timestamptz came back as %v (zone %s, offset %ds), want %v", got, name, off, want)
	}
}

// One user by id (GetMe, a profile, a new post's author) is a statement
// that Postgres plans once per connection and then reuses (a generic
// plan). With the id in a one-element set, as a page's authors are read,
// its generic plan was priced for ten ids and Postgres planned it anew on
// every run: measured, 0.3 ms of CPU off each post (docs/performance.md,
// item 35).
func TestGetUser_OneUserIsPlannedOnceOnPostgres(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	seeded, base := testutil.MustStoreURL(t, store.Postgres)
	alice := MustCreateUser(t, seeded, "alice")
	// Postgres's choice follows the statistics: with tables of a few rows
	// it keeps a generic plan either way.
	seedFillers(t, seeded)
	mustPlanOnce(t, base, "AS blocks_me", func(db *store.DB) {
		users, _, err := db.GetUsersWithRelationships(ctx, db, alice.ID, []string{alice.ID})
		if err != nil || users[alice.ID] == nil {
			t.Fatalf("alice not read: %v", err)
		}
	})
	// A profile's relationships (GetUser).
	mustPlanOnce(t, base, "WITH x(id)", func(db *store.DB) {
		if rels, err := db.Relationships(ctx, db, "filler1", []string{"filler3"}); err != nil || !rels["filler3"].FollowedByMe {
			t.Fatalf("filler1 follows filler3: %+v, %v", rels, err)
		}
	})
}

// seedFillers adds the small profile's shape, analyzed: 500 users who
// follow 20 each.
func seedFillers(t *testing.T, db *store.DB) {
	t.Helper()
	execAll(t, db,
		`INSERT INTO users (id, username, email, password_hash, created_at, updated_at)
		SELECT 'filler' || g, 'filler' || g, 'filler' || g || '@example.com', 'x', now(), now() FROM generate_series(1, 500) AS g`,
		`INSERT INTO follows (follower_id, followee_id, created_at)
		SELECT 'filler' || g, 'filler' || ((g + k) % 500 + 1), now() FROM generate_series(1, 500) AS g, generate_series(1, 20) AS k`,
		"ANALYZE users", "ANALYZE follows",
	)
}

// The seedFillers users' posts, and a reader whose history is large.
const (
	// fillerPosts gives each filler 10 public posts, p00000010 to
	// p00005009, in the order of their authors.
	fillerPosts = `INSERT INTO posts (id, author_id, content, visibility, created_at, updated_at)
		SELECT 'p' || lpad((g * 10 + k)::text, 8, '0'), 'filler' || g, 'old', 'public', now(), now() FROM generate_series(1, 500) AS g, generate_series(0, 9) AS k`
	// filler1Followers gives filler1 400 followers.
	filler1Followers = `INSERT INTO follows (follower_id, followee_id, created_at)
		SELECT 'filler' || g, 'filler1', now() FROM generate_series(2, 401) AS g ON CONFLICT DO NOTHING`
	// filler1Notifications gives filler1 5,000 unread notifications, ten
	// from each filler, n00000010 to n00005009.
	filler1Notifications = `INSERT INTO notifications (id, user_id, type, actor_id, created_at)
		SELECT 'n' || lpad((g * 10 + k)::text, 8, '0'), 'filler1', 'like', 'filler' || g, now() FROM generate_series(1, 500) AS g, generate_series(0, 9) AS k`
	// filler1Likes makes filler1 like the 400 oldest posts.
	filler1Likes = `INSERT INTO likes (post_id, user_id, created_at) SELECT p.id, 'filler1', now() FROM posts AS p ORDER BY p.id LIMIT 400`
)

// execAll runs each statement on db, in order.
func execAll(t *testing.T, db *store.DB, stmts ...string) {
	t.Helper()
	for _, stmt := range stmts {
		if _, err := db.ExecContext(context.Background(), stmt); err != nil {
			t.Fatal(err)
		}
	}
}

// openOneSession opens the database at base with a pool of one
// connection, so that the prepared statements of its queries are those one
// session holds (pg_prepared_statements lists a session's own), and closes
// it when the test ends. Its plan_cache_mode is Postgres's default (auto),
// not the generic plans Flock sets (postgresDSN): the plan tests check
// that Postgres itself keeps a statement's generic plan, so that the
// statements stay cheap for an operator who sets auto in the URL and the
// plans Flock forces are those Postgres would choose.
func openOneSession(t *testing.T, base string) *store.DB {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("pool_max_conns", "1")
	q.Set("plan_cache_mode", "auto")
	u.RawQuery = q.Encode()
	db, err := store.Open(context.Background(), u.String(), "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// mustPlanOnce runs a statement ten times (run) on one session of the
// database at base and fails unless Postgres kept a generic plan of it
// after the first five (the statement is the one whose text contains
// marker): planned anew on every run, it costs about what running it does.
// A first run, before the ten, prepares the statement: in a transaction
// that happens in the background after it (runInTx).
func mustPlanOnce(t *testing.T, base, marker string, run func(db *store.DB)) {
	t.Helper()
	ctx := context.Background()
	db := openOneSession(t, base)
	plans := func() (generic, custom, statements int64) {
		t.Helper()
		if err := db.NewRaw("SELECT coalesce(sum(generic_plans), 0), coalesce(sum(custom_plans), 0), count(*) FROM pg_prepared_statements WHERE statement LIKE ?", "%"+marker+"%").
			Scan(ctx, &generic, &custom, &statements); err != nil {
			t.Fatal(err)
		}
		return generic, custom, statements
	}
	run(db)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, _, n := plans(); n > 0 {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("no prepared statement with %q after its first run", marker)
		}
	}
	generic0, custom0, _ := plans()
	const runs = 10
	for range runs {
		run(db)
	}
	generic, custom, _ := plans()
	generic, custom = generic-generic0, custom-custom0
	// Postgres plans the first five runs with their values, then compares.
	if generic+custom != runs || generic < runs-5 {
		t.Fatalf("%d runs of the statement with %q: %d generic plans, %d custom ones (planned anew each run); want at most five custom", runs, marker, generic, custom)
	}
}

// A timeline page's statement is planned once per connection on Postgres,
// also once posts have been written after the tables' statistics (which
// is always, between two ANALYZEs). With the page's bounds among its
// parameters, the plan made for bounds past the statistics' last post
// always looked cheaper than the generic one, so Postgres planned the
// statement anew on every page: measured, twice the Postgres CPU of a feed
// page (docs/performance.md, item 36).
func TestTimelinePage_PlannedOnceAfterNewPostsOnPostgres(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	seeded, base := testutil.MustStoreURL(t, store.Postgres)
	// The small profile's shape, 10 posts each, analyzed; then 5 newer
	// posts each, past the statistics.
	seedFillers(t, seeded)
	execAll(t, seeded,
		fillerPosts,
		"ANALYZE posts",
		`INSERT INTO posts (id, author_id, content, visibility, created_at, updated_at)
		SELECT 'q' || lpad((k * 500 + g)::text, 8, '0'), 'filler' || g, 'new', 'public', now(), now() FROM generate_series(1, 500) AS g, generate_series(0, 4) AS k`,
	)
	// filler1's page: the newest posts of the accounts it follows.
	var candidates []string
	if err := seeded.NewRaw(`SELECT p.id FROM posts AS p JOIN follows AS f ON f.followee_id = p.author_id AND f.follower_id = 'filler1'
		ORDER BY p.id DESC LIMIT 24`).Scan(ctx, &candidates); err != nil || len(candidates) != 24 {
		t.Fatalf("candidates: %d, %v", len(candidates), err)
	}
	mustPlanOnce(t, base, "AS author_version", func(db *store.DB) {
		posts, err := db.ListPosts(ctx, db, store.PostFilter{ViewerID: "filler1", FeedOf: "filler1", Timeline: true,
			Candidates: candidates, FloorID: candidates[len(candidates)-1], Limit: 20})
		if err != nil || len(posts) != 20 {
			t.Fatalf("page: %d posts, %v", len(posts), err)
		}
	})
}

// The relationships a page reads about its reader (likedByMe, whether an
// author follows them, the feed's follow check, a listed user's four
// relationships) are looked up per row on Postgres, so that a reader's
// page costs what its rows do, not what the reader's history does. The
// generic plan of each statement, priced for an average reader, read every
// follower and like of the reader once per page instead ("hashed"
// subplans): on the medium profile an account with 47,000 followers paid
// 22 ms of CPU for a feed page that cost others 1 (docs/performance.md,
// item 40). Here a reader with 400 followers and 400 likes, among
// accounts with about 20: the rows each generic plan reads from follows,
// likes and blocks stay within a few per row of the page.
func TestRelationships_ReadPerRowWhateverTheReadersFollowersOnPostgres(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	seeded, base := testutil.MustStoreURL(t, store.Postgres)
	seedFillers(t, seeded)
	execAll(t, seeded,
		fillerPosts,
		filler1Followers, filler1Likes,
		`INSERT INTO likes (post_id, user_id, created_at)
		SELECT p.id, 'filler' || g, now() FROM generate_series(2, 500) AS g, posts AS p WHERE p.author_id = 'filler' || (g % 500 + 1) ON CONFLICT DO NOTHING`,
		"ANALYZE",
	)
	var candidates, authors []string
	if err := seeded.NewRaw(`SELECT p.id FROM posts AS p JOIN follows AS f ON f.followee_id = p.author_id AND f.follower_id = 'filler1'
		ORDER BY p.id DESC LIMIT 24`).Scan(ctx, &candidates); err != nil || len(candidates) != 24 {
		t.Fatalf("candidates: %d, %v", len(candidates), err)
	}
	if err := seeded.NewRaw(`SELECT follower_id FROM follows WHERE followee_id = 'filler1' ORDER BY follower_id LIMIT 20`).Scan(ctx, &authors); err != nil || len(authors) != 20 {
		t.Fatalf("followers: %d, %v", len(authors), err)
	}
	array := "{" + strings.Join(candidates, ",") + "}"
	mustReadPerRow(t, base, "AS author_version", []any{"filler1", store.MemberActive, array, 20}, 24, aboutReader, func(db *store.DB) error {
		_, err := db.ListPosts(ctx, db, store.PostFilter{ViewerID: "filler1", FeedOf: "filler1", Timeline: true, Candidates: candidates, Limit: 20})
		return err
	})
	mustReadPerRow(t, base, "AS blocks_me", []any{"filler1", "{" + strings.Join(authors, ",") + "}"}, 20, aboutReader, func(db *store.DB) error {
		_, _, err := db.GetUsersWithRelationships(ctx, db, "filler1", authors)
		return err
	})
	mustReadPerRow(t, base, "WITH x(id)", []any{"filler1", "{" + strings.Join(authors, ",") + "}"}, 20, aboutReader, func(db *store.DB) error {
		rels, err := db.Relationships(ctx, db, "filler1", authors)
		if err == nil && (len(rels) != 20 || !rels[authors[0]].FollowsMe) {
			t.Fatalf("relationships of 20 followers: %+v", rels)
		}
		return err
	})
}

// A group's, an author's or a hashtag's posts are read by one prepared
// statement per shape, planned once per connection on Postgres, whose
// generic plan reads the key's own rows whatever their number and the
// reader's relationships per row. Written with their values, these reads
// were planned anew each time, which cost more than running them
// (docs/performance.md, item 43). Here 5,000 posts, each with one of 50
// tags ("t0" to "t49"), two of them also with "rare", and a reader with
// 400 likes and 400 followers.
func TestPostLists_PlannedOnceAndReadTheirKeysRowsOnPostgres(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	seeded, base := testutil.MustStoreURL(t, store.Postgres)
	seedFillers(t, seeded)
	execAll(t, seeded,
		fillerPosts,
		`INSERT INTO post_hashtags (tag, post_id, position) SELECT 't' || (substr(id, 2)::int % 50), id, 0 FROM posts`,
		`INSERT INTO post_hashtags (tag, post_id, position) SELECT 'rare', id, 1 FROM posts ORDER BY id LIMIT 2`,
		filler1Followers, filler1Likes,
		"ANALYZE",
	)
	list := func(db *store.DB, f store.PostFilter, want int) error {
		f.ViewerID, f.Limit = "filler1", 21
		posts, err := db.ListPosts(ctx, db, f)
		if err == nil && len(posts) != want {
			t.Fatalf("%+v: %d posts, want %d", f, len(posts), want)
		}
		return err
	}
	tags := 0
	mustPlanOnce(t, base, "ph.tag = $4", func(db *store.DB) {
		tags++
		if tags%2 == 0 {
			_ = list(db, store.PostFilter{Tag: "t7"}, 21)
		} else {
			_ = list(db, store.PostFilter{Tag: "rare"}, 2)
		}
	})
	mustPlanOnce(t, base, "p.author_id = $4", func(db *store.DB) { _ = list(db, store.PostFilter{AuthorID: "filler7"}, 10) })
	// The rare tag's two posts: a plan that walked the posts newest first
	// looking for the tag would read all 5,000.
	mustReadPerRow(t, base, "ph.tag = $4", []any{"filler1", store.VisibilityPublic, store.VisibilityFollowers, "rare", 21}, 21,
		[]string{"posts", "post_hashtags"}, func(db *store.DB) error { return list(db, store.PostFilter{Tag: "rare"}, 2) })
	mustReadPerRow(t, base, "ph.tag = $4", []any{"filler1", store.VisibilityPublic, store.VisibilityFollowers, "t7", 21}, 21,
		aboutReader, func(db *store.DB) error { return list(db, store.PostFilter{Tag: "t7"}, 21) })
	mustReadPerRow(t, base, "p.author_id = $4", []any{"filler1", store.VisibilityPublic, store.VisibilityFollowers, "filler7", 21}, 21,
		append([]string{"posts"}, aboutReader...), func(db *store.DB) error { return list(db, store.PostFilter{AuthorID: "filler7"}, 10) })
}

// A page of notifications and a page of comments are prepared statements
// whose generic plans (every run's, item 46) look up each row's author or
// actor (suspended? blocked either way?) by key: 5,000 notifications of
// one user and 2,000 comments on one post here (docs/performance.md, item
// 48). Left to choose (auto), Postgres plans the first page of this one
// user's notifications for its value every time: the statistics know
// that all 5,000 are theirs.
func TestNotificationsAndComments_ReadPerRowOnPostgres(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	seeded, base := testutil.MustStoreURL(t, store.Postgres)
	seedFillers(t, seeded)
	execAll(t, seeded,
		fillerPosts,
		filler1Notifications,
		`INSERT INTO comments (id, post_id, author_id, content, created_at)
		SELECT 'c' || lpad((g * 4 + k)::text, 8, '0'), 'p00000010', 'filler' || g, 'hi', now() FROM generate_series(1, 500) AS g, generate_series(0, 3) AS k`,
		"ANALYZE",
	)
	notifications := func(db *store.DB, before string) error {
		ns, err := db.ListNotifications(ctx, db, store.EventFilter{UserID: "filler1", BeforeID: before, Limit: 21})
		if err == nil && len(ns) != 21 {
			t.Fatalf("%d notifications, want 21", len(ns))
		}
		return err
	}
	comments := func(db *store.DB, after string) error {
		cs, err := db.ListComments(ctx, db, store.CommentFilter{PostID: "p00000010", ViewerID: "filler2", AfterID: after, Limit: 21})
		if err == nil && len(cs) != 21 {
			t.Fatalf("%d comments, want 21", len(cs))
		}
		return err
	}
	const firstNotifications, firstComments = "n.user_id = $1 AND EXISTS", "c.post_id = $1 AND EXISTS"
	actors := []string{"users", "blocks"}
	mustReadPerRow(t, base, firstNotifications, []any{"filler1", 21}, 21, actors, func(db *store.DB) error { return notifications(db, "") })
	mustReadPerRow(t, base, "n.id < $2", []any{"filler1", "n00003000", 21}, 21, actors, func(db *store.DB) error { return notifications(db, "n00003000") })
	mustReadPerRow(t, base, firstComments, []any{"p00000010", "filler2", 21}, 21, actors, func(db *store.DB) error { return comments(db, "") })
	mustReadPerRow(t, base, "c.id > $3", []any{"p00000010", "filler2", "c00001000", 21}, 21, actors, func(db *store.DB) error { return comments(db, "c00001000") })
}

// A user search on Postgres is one prepared statement per shape, planned
// once per connection, whose generic plan (made, like every run, under
// the search's enable_seqscan = off) reads only its candidates from the
// indexes. Postgres would otherwise plan every search anew: a plan made
// for the query's value always looked cheaper than the generic one
// (docs/performance.md, item 43). Here 20,000 users with random names.
func TestSearchUsers_PlannedOnceAndReadOnlyTheirCandidatesOnPostgres(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	seeded, base := testutil.MustStoreURL(t, store.Postgres)
	execAll(t, seeded,
		`INSERT INTO users (id, username, email, password_hash, email_verified_at, created_at, updated_at)
		SELECT 'u' || lpad(g::text, 6, '0'), 'u' || md5(g::text), 'u' || g || '@example.com', 'x', now(), now(), now() FROM generate_series(1, 20000) AS g`,
		"ANALYZE users",
	)
	q := fmt.Sprintf("u%x", md5.Sum([]byte("777")))[:6]
	search := func(db *store.DB) error {
		hits, err := db.SearchUsers(ctx, db, store.UserSearch{Query: q, ViewerID: "u000001", Limit: 21})
		if err == nil && (len(hits) == 0 || hits[0].ID != "u000777") {
			t.Fatalf("search %q: %d users, want u000777 first", q, len(hits))
		}
		return err
	}
	mustPlanOnce(t, base, "~>=~", func(db *store.DB) { _ = search(db) })
	db := openOneSession(t, base)
	if err := search(db); err != nil {
		t.Fatal(err)
	}
	plan, out := explainGeneric(t, db, "~>=~", []any{q, q, "u000001", 21}, "SET enable_seqscan = off")
	if read := rowsRead(plan, []string{"users"}); read > 3*21 {
		t.Errorf("the generic plan of the user search read %.0f users of 20,000 for at most 21 results:\n%s", read, out)
	}
	// A broad query: "sim042" resembles each of 20,000 "simNNNNN" names,
	// and all were scored before their number was bounded (item 45).
	execAll(t, seeded,
		`INSERT INTO users (id, username, email, password_hash, email_verified_at, created_at, updated_at)
		SELECT 's' || lpad(g::text, 6, '0'), 'sim' || lpad(g::text, 5, '0'), 's' || g || '@example.com', 'x', now(), now(), now() FROM generate_series(1, 20000) AS g`,
		"ANALYZE users",
	)
	if hits, err := db.SearchUsers(ctx, db, store.UserSearch{Query: "sim042", ViewerID: "u000001", Limit: 21}); err != nil || len(hits) != 21 || !strings.HasPrefix(hits[0].Username, "sim042") {
		t.Fatalf("search sim042: %d users, %v; want 21, a sim042... first", len(hits), err)
	}
	// An exact username is the first of its prefix's candidates, however
	// many users share the prefix: "sim0" among 10,000 "sim0NNNN".
	execAll(t, seeded, `INSERT INTO users (id, username, email, password_hash, email_verified_at, created_at, updated_at)
		VALUES ('sexact', 'sim0', 'sexact@example.com', 'x', now(), now(), now())`)
	if hits, err := db.SearchUsers(ctx, db, store.UserSearch{Query: "sim0", ViewerID: "u000001", Limit: 21}); err != nil || len(hits) == 0 || hits[0].ID != "sexact" {
		t.Fatalf("search sim0: %d users, %v; want the user named sim0 first", len(hits), err)
	}
	plan, out = explainGeneric(t, db, "~>=~", []any{"sim042", "sim042", "u000001", 21}, "SET enable_seqscan = off")
	if read := rowsRead(plan, []string{"users"}); read > 4*store.MaxSearchCandidates {
		t.Errorf("the generic plan of a broad user search read %.0f users of 40,000; want at most %d (the candidates of each kind are bounded):\n%s", read, 4*store.MaxSearchCandidates, out)
	}
	// A prefix that alone gives the bound's number of candidates ("sim0":
	// 10,000 names) fills every page up to it, so the two trigram scans,
	// which build a bitmap of every match before any bound applies (all
	// 20,000 "simNNNNN" resemble "sim0"), are not run (item 51).
	plan, out = explainGeneric(t, db, "~>=~", []any{"sim0", "sim0", "u000001", 21}, "SET enable_seqscan = off")
	for _, index := range []string{"users_username_trgm_idx", "users_full_name_trgm_idx"} {
		if read := indexRowsRead(plan, index); read > 0 {
			t.Errorf("the generic plan of a search whose prefix fills the candidates read %.0f entries of %s; want none:\n%s", read, index, out)
		}
	}
}

// indexRowsRead sums the rows that a plan's scans of one index returned.
func indexRowsRead(n *planNode, index string) float64 {
	var read float64
	if n.Index == index {
		read += n.ActualRows * n.ActualLoops
	}
	for i := range n.Plans {
		read += indexRowsRead(&n.Plans[i], index)
	}
	return read
}

// A fan-out's statements are prepared, each set of posts one parameter,
// and the insert into its readers' timelines is planned once per
// connection on Postgres: written with its values, each batch was new
// text, planned for about a quarter of what running it cost
// (docs/performance.md, item 44). Here one post at a time by an author
// with 20 followers, all with timelines.
func TestFanOut_PlannedOnceOnPostgres(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	seeded, base := testutil.MustStoreURL(t, store.Postgres)
	seedFillers(t, seeded)
	execAll(t, seeded,
		`INSERT INTO timelines (user_id, state, floor_id, read_at) SELECT id, 'ready', '', now() FROM users`,
		`INSERT INTO posts (id, author_id, content, visibility, created_at, updated_at)
		SELECT 'p' || lpad(g::text, 8, '0'), 'filler1', 'new', 'public', now(), now() FROM generate_series(1, 20) AS g`,
		`INSERT INTO timeline_pending (post_id, created_at) SELECT id, now() FROM posts`,
		"ANALYZE",
	)
	n := 0
	mustPlanOnce(t, base, "WITH r AS (", func(db *store.DB) {
		n++
		var posts, entries int64
		if err := db.InTx(ctx, func(ctx context.Context, tx bun.Tx) error {
			var err error
			posts, entries, err = db.FanOut(ctx, tx, []string{fmt.Sprintf("p%08d", n)}, 5000)
			return err
		}); err != nil || posts != 1 || entries != 21 {
			t.Fatalf("fan-out of post %d: %d posts, %d entries, %v; want 1 post in its author's and 20 followers' timelines", n, posts, entries, err)
		}
	})
}

// aboutReader is the tables of a reader's relationships: follows, likes
// and blocks.
var aboutReader = []string{"follows", "likes", "blocks"}

// mustReadPerRow runs a statement once (run) on one session of the
// database at base, to find its text (the statement whose text contains
// marker), then runs its generic plan with args, and fails when that reads
// more than 3 rows per row of its result (rows, at most) from the tables
// named in relations together.
func mustReadPerRow(t *testing.T, base, marker string, args []any, rows int, relations []string, run func(db *store.DB) error) {
	t.Helper()
	db := openOneSession(t, base)
	if err := run(db); err != nil {
		t.Fatal(err)
	}
	plan, out := explainGeneric(t, db, marker, args)
	if read := rowsRead(plan, relations); read > float64(3*rows) {
		t.Errorf("the generic plan of the statement with %q read %.0f rows of %s for %d rows at most; want a lookup per row (at most %d):\n%s", marker, read, strings.Join(relations, ", "), rows, 3*rows, out)
	}
}

// explainGeneric runs the generic plan of the statement of db's session
// whose text contains marker with args, after the session's settings
// (SET statements), and returns the plan as it ran, parsed and as JSON.
func explainGeneric(t *testing.T, db *store.DB, marker string, args []any, settings ...string) (*planNode, []byte) {
	t.Helper()
	ctx := context.Background()
	var text string
	if err := db.NewRaw("SELECT statement FROM pg_prepared_statements WHERE statement LIKE ?", "%"+marker+"%").Scan(ctx, &text); err != nil {
		t.Fatalf("the statement with %q: %v", marker, err)
	}
	for _, stmt := range append(settings, "SET plan_cache_mode = force_generic_plan", "PREPARE generic_probe AS "+text) {
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			t.Fatal(err)
		}
	}
	params := strings.TrimSuffix(strings.Repeat("?, ", len(args)), ", ")
	var out []byte
	if err := db.NewRaw("EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE generic_probe("+params+")", args...).Scan(ctx, &out); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, "DEALLOCATE generic_probe"); err != nil {
		t.Fatal(err)
	}
	var plan []struct {
		Plan planNode `json:"Plan"`
	}
	if err := json.Unmarshal(out, &plan); err != nil || len(plan) != 1 {
		t.Fatalf("plan: %v", err)
	}
	return &plan[0].Plan, out
}

// rowsRead is the rows a plan read from the tables named in relations:
// those its nodes returned and those their filters removed, per loop.
func rowsRead(n *planNode, relations []string) float64 {
	var read float64
	if slices.Contains(relations, n.Relation) {
		read += (n.ActualRows + n.RemovedByFilter) * n.ActualLoops
	}
	for i := range n.Plans {
		read += rowsRead(&n.Plans[i], relations)
	}
	return read
}

// planNode is a node of EXPLAIN (ANALYZE, FORMAT JSON).
type planNode struct {
	Relation        string     `json:"Relation Name"`
	Index           string     `json:"Index Name"`
	ActualRows      float64    `json:"Actual Rows"`
	ActualLoops     float64    `json:"Actual Loops"`
	RemovedByFilter float64    `json:"Rows Removed by Filter"`
	Plans           []planNode `json:"Plans"`
}

// Flock's prepared statements run their generic plan from their first run
// on a connection: Postgres's default planned each for its values on its
// first five runs on every connection, and the first feed pages after a
// start paid for it (docs/performance.md, item 46). A plan_cache_mode in
// the URL is the operator's and kept.
func TestOpen_PreparedStatementsRunTheirGenericPlanFromTheFirstRun(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	seeded, base := testutil.MustStoreURL(t, store.Postgres)
	alice := MustCreateUser(t, seeded, "alice")
	for mode, want := range map[string]struct {
		setting         string
		generic, custom int64
	}{"": {"force_generic_plan", 1, 0}, "auto": {"auto", 0, 1}} {
		u, err := url.Parse(base)
		if err != nil {
			t.Fatal(err)
		}
		q := u.Query()
		q.Set("pool_max_conns", "1")
		if mode != "" {
			q.Set("plan_cache_mode", mode)
		}
		u.RawQuery = q.Encode()
		db, err := store.Open(ctx, u.String(), "")
		if err != nil {
			t.Fatal(err)
		}
		var setting string
		if err := db.NewRaw("SHOW plan_cache_mode").Scan(ctx, &setting); err != nil {
			t.Fatal(err)
		}
		if _, err := db.GetUser(ctx, db, alice.ID); err != nil {
			t.Fatal(err)
		}
		var generic, custom int64
		if err := db.NewRaw("SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement LIKE ?", "%interest_list FROM users AS u WHERE u.id = $1%").
			Scan(ctx, &generic, &custom); err != nil {
			t.Fatalf("plan_cache_mode %q: GetUser's prepared statement: %v", mode, err)
		}
		db.Close()
		if setting != want.setting || generic != want.generic || custom != want.custom {
			t.Errorf("plan_cache_mode %q in the URL: the session's is %s, and one GetUser made %d generic and %d custom plans; want %s, %d and %d",
				mode, setting, generic, custom, want.setting, want.generic, want.custom)
		}
	}
}

// Counting a user's unread notifications reads at most MaxUnreadCount of
// them, and their actors one by one, however many are unread: 5,000 here,
// all read without the bound (docs/performance.md, item 47).
func TestCountUnread_ReadsAtMostTheBoundOnPostgres(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	seeded, base := testutil.MustStoreURL(t, store.Postgres)
	seedFillers(t, seeded)
	execAll(t, seeded,
		filler1Notifications,
		"ANALYZE notifications")
	db := openOneSession(t, base)
	if n, err := db.CountUnread(ctx, db, "filler1"); err != nil || n != store.MaxUnreadCount {
		t.Fatalf("unread of 5,000 = %d, %v; want the bound %d", n, err, store.MaxUnreadCount)
	}
	plan, out := explainGeneric(t, db, "FROM (SELECT 1 FROM notifications", []any{"filler1"})
	if read := rowsRead(plan, []string{"notifications"}); read > store.MaxUnreadCount {
		t.Errorf("the count read %.0f notifications of 5,000, want at most %d:\n%s", read, store.MaxUnreadCount, out)
	}
	if read := rowsRead(plan, []string{"users", "blocks"}); read > store.MaxUnreadCount {
		t.Errorf("the count read %.0f rows of users and blocks for %d notifications, want a lookup per notification:\n%s", read, store.MaxUnreadCount, out)
	}
}

// The Postgres URL's pool_max_conns sizes the instance's pool (open and
// idle alike) and is not passed on to Postgres; a value that is not a
// whole number from 1 to 1000 is refused with what was wrong.
func TestOpen_PoolMaxConnsFromTheURL(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	base := testutil.MustDatabaseURL(t, store.Postgres)
	with := func(v string) string {
		u, err := url.Parse(base)
		if err != nil {
			t.Fatal(err)
		}
		q := u.Query()
		if v != "" {
			q.Set("pool_max_conns", v)
		}
		u.RawQuery = q.Encode()
		return u.String()
	}
	for v, want := range map[string]int{"": store.DefaultPoolMaxConns, "3": 3} {
		db, err := store.Open(ctx, with(v), "")
		if err != nil {
			t.Fatalf("pool_max_conns=%q: %v", v, err)
		}
		if got := db.MaxConns(); got != want {
			t.Errorf("pool_max_conns=%q: %d connections at most, want %d", v, got, want)
		}
		if !db.Local() {
			t.Errorf("the test database at %s is not seen as local", base)
		}
		if err := db.PingContext(ctx); err != nil {
			t.Errorf("pool_max_conns=%q: ping: %v", v, err)
		}
		db.Close()
	}
	for _, v := range []string{"0", "many", "1001"} {
		db, err := store.Open(ctx, with(v), "")
		if err == nil {
			db.Close()
			t.Fatalf("pool_max_conns=%q was accepted", v)
		}
		if !strings.Contains(err.Error(), "pool_max_conns must be one whole number from 1 to 1000") {
			t.Errorf("pool_max_conns=%q: %v", v, err)
		}
	}
}
