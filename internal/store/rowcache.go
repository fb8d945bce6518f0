package store

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/uptrace/bun"
)

// The row caches keep what a feed page shows of posts and of their authors
// that rarely changes (a post's content, hashtags and times; an author's
// names, bio and avatar), so that a timeline page reads only ids, counts and
// the viewer's relationships from the database (listTimelinePosts) instead
// of every post and author row in full: decoding those rows was half of a
// page's cost.
//
// An entry is valid for one version of its row, the row's updated_at as
// text. The page's own statement reads each row's current version, so a
// changed row is read again at once, on every instance, with nothing to
// invalidate and no broker: every write to a cached column sets updated_at
// (UpdatePostContent, UpdateUser, SetUserRole, SetUserEmail,
// MarkEmailVerified, SuspendUser). Counts, videos, suspension, blocks and
// follows are never cached: the page's statement reads them each time.
//
// Sizes bound memory: the entries of the posts and authors most read,
// least recently used first out. A post whose content is over
// maxCachedContent bytes is not kept (read each time instead), so an entry
// is at most about 2 KiB (the content, its hashtags, the rest): 20 MiB of
// posts at worst, as for authors (a bio is at most 500 characters). Typical
// entries are a quarter of that.
const (
	postCacheSize    = 10_000
	authorCacheSize  = 10_000
	maxCachedContent = 1024
)

// cachedPost is the part of a post that only UpdatePostContent changes.
type cachedPost struct {
	version              string
	content, visibility  string
	groupID              *string
	createdAt, updatedAt time.Time
	hashtags             []string // shared by readers: never modified
}

// cachedAuthor is a user without counts (set from each page's statement).
type cachedAuthor struct {
	version string
	user    User
}

type rowCaches struct {
	posts   *lru.Cache[string, *cachedPost]
	authors *lru.Cache[string, *cachedAuthor]
	// Hits and misses per cache, for RowCacheStats.
	postHits, postMisses, authorHits, authorMisses atomic.Uint64
}

func newRowCaches() *rowCaches {
	posts, err := lru.New[string, *cachedPost](postCacheSize)
	if err != nil {
		panic(err) // only for a size <= 0
	}
	authors, err := lru.New[string, *cachedAuthor](authorCacheSize)
	if err != nil {
		panic(err)
	}
	return &rowCaches{posts: posts, authors: authors}
}

// RowCacheStats counts the lookups of the row caches since Open: a miss is
// an entry absent or of another version, read again from its row.
type RowCacheStats struct {
	PostHits, PostMisses, AuthorHits, AuthorMisses uint64
}

// RowCacheStats returns the row caches' counts.
func (db *DB) RowCacheStats() RowCacheStats {
	c := db.caches
	return RowCacheStats{
		PostHits: c.postHits.Load(), PostMisses: c.postMisses.Load(),
		AuthorHits: c.authorHits.Load(), AuthorMisses: c.authorMisses.Load(),
	}
}

// versionExpr is a row's version: its updated_at as text, which the
// drivers hand over as it is (no time to parse). An opaque token, compared
// only for equality.
func versionExpr(alias string) string {
	return "CAST(" + alias + ".updated_at AS TEXT)"
}

// lookup returns the entries of cache at the wanted versions (id ->
// version) and the ids absent from it or held at another version, and
// counts them as hits and misses.
func lookup[E any](cache *lru.Cache[string, E], want map[string]string, version func(E) string, hits, misses *atomic.Uint64) (map[string]E, []string) {
	out := make(map[string]E, len(want))
	var missing []string
	for id, v := range want {
		if e, ok := cache.Get(id); ok && version(e) == v {
			out[id] = e
			continue
		}
		missing = append(missing, id)
	}
	hits.Add(uint64(len(out)))
	misses.Add(uint64(len(missing)))
	return out, missing
}

// cachedPosts returns the cached part of the posts of ids at the given
// versions, reading the missing or outdated ones in one statement. A post
// absent from the result was deleted meanwhile.
func (db *DB) cachedPosts(ctx context.Context, tx bun.IDB, want map[string]string) (map[string]*cachedPost, error) {
	c := db.caches
	out, missing := lookup(c.posts, want, func(e *cachedPost) string { return e.version }, &c.postHits, &c.postMisses)
	if len(missing) == 0 {
		return out, nil
	}
	var rows []struct {
		ID         string    `bun:"id"`
		Content    string    `bun:"content"`
		Visibility string    `bun:"visibility"`
		GroupID    *string   `bun:"group_id"`
		CreatedAt  time.Time `bun:"created_at"`
		UpdatedAt  time.Time `bun:"updated_at"`
		Version    string    `bun:"version"`
		TagList    *string   `bun:"tag_list"`
	}
	where, arg, key := db.inIDs("p.id", 1, missing)
	query := db.sqlText("cached posts"+key, func() string {
		return "SELECT p.id, p.content, p.visibility, p.group_id, p.created_at, p.updated_at, " + versionExpr("p") + " AS version, " +
			db.tagListExpr() + " FROM posts AS p WHERE " + where
	})
	res, err := db.queryPrepared(ctx, tx, query, arg)
	if err == nil {
		err = db.ScanRows(ctx, res, &rows)
	}
	if err != nil {
		return nil, fmt.Errorf("read posts: %w", translate(err))
	}
	for i := range rows {
		r := &rows[i]
		p := Post{TagList: r.TagList}
		p.splitTags()
		e := &cachedPost{version: r.Version, content: r.Content, visibility: r.Visibility, groupID: r.GroupID,
			createdAt: r.CreatedAt, updatedAt: r.UpdatedAt, hashtags: p.Hashtags}
		if len(r.Content) <= maxCachedContent {
			c.posts.Add(r.ID, e)
		}
		out[r.ID] = e
	}
	return out, nil
}

// cachedAuthors is cachedPosts for users.
func (db *DB) cachedAuthors(ctx context.Context, tx bun.IDB, want map[string]string) (map[string]*cachedAuthor, error) {
	c := db.caches
	out, missing := lookup(c.authors, want, func(e *cachedAuthor) string { return e.version }, &c.authorHits, &c.authorMisses)
	if len(missing) == 0 {
		return out, nil
	}
	var rows []struct {
		User    `bun:",extend"`
		Version string `bun:"version"`
	}
	where, arg, key := db.inIDs("u.id", 1, missing)
	query := db.sqlText("cached authors"+key, func() string {
		return "SELECT u.id, u.username, u.email, u.full_name, u.bio, u.avatar_key, u.role, u.email_verified_at, u.created_at, u.updated_at, " +
			versionExpr("u") + " AS version FROM users AS u WHERE " + where
	})
	res, err := db.queryPrepared(ctx, tx, query, arg)
	if err == nil {
		err = db.ScanRows(ctx, res, &rows)
	}
	if err != nil {
		return nil, fmt.Errorf("read authors: %w", translate(err))
	}
	for i := range rows {
		e := &cachedAuthor{version: rows[i].Version, user: rows[i].User}
		c.authors.Add(e.user.ID, e)
		out[e.user.ID] = e
	}
	return out, nil
}
