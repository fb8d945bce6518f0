package store

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/uptrace/bun"
)

// The queries of follow suggestions. Each returns a bounded pool of
// candidates, already cut to accounts that may be suggested to the viewer;
// internal/social scores and merges them.
//
// The candidate queries first count and rank candidate IDs, leaving out the
// viewer, the accounts they follow and anyone a block stands between with
// them (notSuggested: sets read once per query and probed by hash); only
// the best preLimit of them are then looked up in users, to drop suspended
// and unverified accounts, so that the lookups do not grow with the number
// of candidates.

// notSuggested is the condition that an account ID (the argument of the
// format) is not the viewer, not followed by them, and not across a block
// either way. Its query arguments are the viewer's ID four times.
const notSuggested = `%[1]s <> ? AND %[1]s NOT IN (SELECT sf.followee_id FROM follows AS sf WHERE sf.follower_id = ?)
	AND %[1]s NOT IN (SELECT sb.blocked_id FROM blocks AS sb WHERE sb.blocker_id = ?
		UNION ALL SELECT sb.blocker_id FROM blocks AS sb WHERE sb.blocked_id = ?)`

func notSuggestedArgs(viewerID string) []any { return []any{viewerID, viewerID, viewerID, viewerID} }

// suggestableStatus is the condition on users AS u of an account that may be
// suggested at all. users_popular_idx has the same predicate.
const suggestableStatus = `u.suspended_at IS NULL AND u.email_verified_at IS NOT NULL`

// preLimit is how many of the best candidates are looked up in users to
// keep limit of them: a margin for suspended and unverified accounts.
func preLimit(limit int) int { return 2*limit + 20 }

// SuggestTopics returns the topics the user is into, at most limit: their
// profile interests first, then the hashtags of their newest recent posts
// and of the newest recent posts they like, the most used first. One
// query, through the primary key of user_interests, posts_author_id_idx,
// likes_user_id_idx and post_hashtags_post_id_idx.
func (db *DB) SuggestTopics(ctx context.Context, tx bun.IDB, userID string, recent, limit int) ([]string, error) {
	var topics []string
	err := tx.NewRaw(`SELECT t.topic FROM (
		SELECT ui.interest AS topic, 1000 AS w FROM user_interests AS ui WHERE ui.user_id = ?
		UNION ALL
		SELECT ph.tag, 1 FROM (SELECT mp.id FROM posts AS mp WHERE mp.author_id = ? ORDER BY mp.id DESC LIMIT ?) AS mine
			JOIN post_hashtags AS ph ON ph.post_id = mine.id
		UNION ALL
		SELECT ph.tag, 1 FROM (SELECT ml.post_id FROM likes AS ml WHERE ml.user_id = ? ORDER BY ml.post_id DESC LIMIT ?) AS liked
			JOIN post_hashtags AS ph ON ph.post_id = liked.post_id
	) AS t
	GROUP BY t.topic
	ORDER BY SUM(t.w) DESC, t.topic
	LIMIT ?`, userID, userID, recent, userID, recent, limit).Scan(ctx, &topics)
	if err != nil {
		return nil, fmt.Errorf("suggestion topics: %w", translate(err))
	}
	return topics, nil
}

// GraphCandidate is an account followed by people the viewer follows.
type GraphCandidate struct {
	*User
	// Mutual is how many of the people the viewer follows follow it.
	Mutual int
	// Via is the username of one of them (the first in alphabetical order).
	Via string
}

// SuggestByGraph returns the accounts most followed by the people userID
// follows (friends of friends), at most limit, most mutual follows first,
// then newest. Only the followees userID followed last (at most followees
// of them, unsuspended) are walked, so the cost is bounded by what they
// follow. One query: follows_follower_created_idx for the viewer's
// followees and for theirs, then users_pkey for the best candidates.
func (db *DB) SuggestByGraph(ctx context.Context, tx bun.IDB, userID string, followees, limit int) ([]GraphCandidate, error) {
	var rows []struct {
		User   `bun:",extend"`
		Mutual int    `bun:"mutual"`
		Via    string `bun:"via"`
	}
	args := []any{userID, followees}
	args = append(args, notSuggestedArgs(userID)...)
	args = append(args, preLimit(limit), limit)
	err := tx.NewRaw(`SELECT `+db.columns((*User)(nil), "u")+`, c.mutual, c.via FROM (
		SELECT f2.followee_id AS cand, COUNT(*) AS mutual, MIN(mine.username) AS via
		FROM (SELECT f1.followee_id, fu.username FROM follows AS f1
				JOIN users AS fu ON fu.id = f1.followee_id
				WHERE f1.follower_id = ? AND fu.suspended_at IS NULL
				ORDER BY f1.created_at DESC, f1.followee_id DESC LIMIT ?) AS mine
		JOIN follows AS f2 ON f2.follower_id = mine.followee_id
		GROUP BY f2.followee_id
		HAVING `+fmt.Sprintf(notSuggested, "f2.followee_id")+`
		ORDER BY mutual DESC, cand DESC
		LIMIT ?
	) AS c
	JOIN users AS u ON u.id = c.cand
	WHERE `+suggestableStatus+`
	ORDER BY c.mutual DESC, u.id DESC
	LIMIT ?`, args...).Scan(ctx, &rows)
	if err != nil {
		return nil, fmt.Errorf("suggest by graph: %w", translate(err))
	}
	out := make([]GraphCandidate, len(rows))
	for i := range rows {
		out[i] = GraphCandidate{User: &rows[i].User, Mutual: rows[i].Mutual, Via: rows[i].Via}
	}
	return out, nil
}

// TopicCandidate is an account into some of the viewer's topics.
type TopicCandidate struct {
	*User
	// Shared is how many of the topics it shares.
	Shared int
	// FirstTopic and LastTopic are the first and last shared topics in
	// alphabetical order (the same one when Shared is 1).
	FirstTopic, LastTopic string
}

// TopicSearch bounds SuggestByTopics.
type TopicSearch struct {
	// Topics are the viewer's topics (SuggestTopics).
	Topics []string
	// Since: only posts made after it count.
	Since time.Time
	// PostsPerTopic is how many of the newest posts with each topic as a
	// hashtag are looked at (their public ones count); UsersPerTopic how
	// many of the users with the topic among their interests (the newest
	// accounts first).
	PostsPerTopic, UsersPerTopic int
	Limit                        int
}

// SuggestByTopics returns the accounts that share the most of s.Topics,
// at most s.Limit, then newest: a topic is shared through the profile's
// interests or by having written one of the topic's newest posts, if
// public (as a hashtag). One query whose cost is bounded per topic: for
// each, a backward scan of user_interests_interest_user_idx and one of
// the post_hashtags primary key, both stopping at their limit.
func (db *DB) SuggestByTopics(ctx context.Context, tx bun.IDB, userID string, s TopicSearch) ([]TopicCandidate, error) {
	if len(s.Topics) == 0 {
		return nil, nil
	}
	var (
		branches []string
		args     []any
		since    = IDAt(s.Since)
	)
	// A topic's newest posts are picked from post_hashtags alone, ordered
	// as its primary key (tag, post_id) is, and only those PostsPerTopic
	// posts are then looked up; the public ones count (the viewer's own
	// are dropped with the viewer). The primary key is walked backwards
	// from the newest post; for a frequent tag Postgres may instead walk
	// post_hashtags_post_id_idx and filter on the tag, which its
	// statistics say ends as soon. Joined to posts before the limit, it
	// merge-joined both tables backwards and read every recent post of a
	// rare tag.
	for i, t := range s.Topics {
		branches = append(branches, fmt.Sprintf(`SELECT * FROM (SELECT ui.user_id AS cand, ui.interest AS topic FROM user_interests AS ui
			WHERE ui.interest = ? ORDER BY ui.user_id DESC LIMIT ?) AS i%d`, i),
			fmt.Sprintf(`SELECT p.author_id AS cand, h%[1]d.tag AS topic FROM (SELECT ph.tag, ph.post_id FROM post_hashtags AS ph
			WHERE ph.tag = ? AND ph.post_id > ? ORDER BY ph.tag DESC, ph.post_id DESC LIMIT ?) AS h%[1]d
			JOIN posts AS p ON p.id = h%[1]d.post_id
			WHERE p.visibility = ? AND p.group_id IS NULL`, i))
		args = append(args, t, s.UsersPerTopic, t, since, s.PostsPerTopic, VisibilityPublic)
	}
	args = append(args, notSuggestedArgs(userID)...)
	args = append(args, preLimit(s.Limit), s.Limit)
	var rows []struct {
		User       `bun:",extend"`
		Shared     int    `bun:"shared"`
		FirstTopic string `bun:"first_topic"`
		LastTopic  string `bun:"last_topic"`
	}
	// A candidate may come twice for a topic (interest and post, or two
	// posts), hence COUNT(DISTINCT). Excluding by HAVING tests each
	// candidate once, after grouping; SQLite would push a WHERE down into
	// every branch (both cost less than deduplicating by UNION and
	// filtering each row, by a third on SQLite).
	err := tx.NewRaw(`SELECT `+db.columns((*User)(nil), "u")+`, c.shared, c.first_topic, c.last_topic FROM (
		SELECT pr.cand, COUNT(DISTINCT pr.topic) AS shared, MIN(pr.topic) AS first_topic, MAX(pr.topic) AS last_topic
		FROM (`+strings.Join(branches, "\n\t\tUNION ALL\n")+`) AS pr
		GROUP BY pr.cand
		HAVING `+fmt.Sprintf(notSuggested, "pr.cand")+`
		ORDER BY shared DESC, pr.cand DESC
		LIMIT ?
	) AS c
	JOIN users AS u ON u.id = c.cand
	WHERE `+suggestableStatus+`
	ORDER BY c.shared DESC, u.id DESC
	LIMIT ?`, args...).Scan(ctx, &rows)
	if err != nil {
		return nil, fmt.Errorf("suggest by topics: %w", translate(err))
	}
	out := make([]TopicCandidate, len(rows))
	for i := range rows {
		out[i] = TopicCandidate{User: &rows[i].User, Shared: rows[i].Shared, FirstTopic: rows[i].FirstTopic, LastTopic: rows[i].LastTopic}
	}
	return out, nil
}

// SuggestPopular returns the accounts with the most followers (at least
// one) that may be suggested to userID, at most limit. One query: a walk
// down users_popular_idx that stops after limit accounts.
func (db *DB) SuggestPopular(ctx context.Context, tx bun.IDB, userID string, limit int) ([]*User, error) {
	var users []*User
	args := append(notSuggestedArgs(userID), limit)
	err := tx.NewRaw(`SELECT `+db.columns((*User)(nil), "u")+` FROM users AS u
	WHERE `+suggestableStatus+` AND u.followers_count > 0 AND `+fmt.Sprintf(notSuggested, "u.id")+`
	ORDER BY u.followers_count DESC, u.id DESC
	LIMIT ?`, args...).Scan(ctx, &users)
	if err != nil {
		return nil, fmt.Errorf("suggest popular: %w", translate(err))
	}
	return users, nil
}
