package store

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"
)

// HeldUsername is the username of a deleted account, which nobody may
// register before AvailableAt.
type HeldUsername struct {
	bun.BaseModel `bun:"table:held_usernames,alias:hu"`

	UsernameLower string    `bun:"username_lower,pk"`
	AvailableAt   time.Time `bun:"available_at,notnull"`
}

// UsernameHeldUntil reports whether username (in any letter case) is held
// for a deleted account, and until when.
func (db *DB) UsernameHeldUntil(ctx context.Context, tx bun.IDB, username string) (time.Time, bool, error) {
	h := new(HeldUsername)
	err := tx.NewSelect().Model(h).
		Where("hu.username_lower = ?", strings.ToLower(username)).
		Where("hu.available_at > ?", db.Now()).Scan(ctx)
	if IsNotFound(err) {
		return time.Time{}, false, nil
	} else if err != nil {
		return time.Time{}, false, fmt.Errorf("username held: %w", translate(err))
	}
	return h.AvailableAt, true, nil
}

// GroupTransfer is a group whose owner was deleted and that passed to
// NewOwnerID.
type GroupTransfer struct {
	GroupID    string `bun:"id"`
	NewOwnerID string `bun:"successor"`
}

// DeletedAccount is what DeleteAccount removed that outlives its
// transaction: what the caller ends or removes once it has committed.
type DeletedAccount struct {
	UserID, Username string
	// AvatarKey is the account's profile picture in media storage ("" for none).
	AvatarKey string
	// VideoIDs are the videos whose rows went: the account's own and those
	// of other members' posts in a group deleted with it. Their files are
	// still in media storage.
	VideoIDs []string
	// SessionIDs are the sessions that were live, whose tokens and open
	// streams end.
	SessionIDs []string
	// Transferred are the groups the account owned that passed to another
	// member; DeletedGroups those that had no other member and went.
	Transferred   []GroupTransfer
	DeletedGroups []string
}

// successorSQL picks the member a group (g) passes to when its owner (?0)
// is deleted: the longest-standing active admin, else the longest-standing
// active member (by the date of their membership, then id), suspended
// accounts only when nobody else is left. NULL when the owner was alone.
const successorSQL = `SELECT sm.user_id FROM group_members AS sm JOIN users AS su ON su.id = sm.user_id
WHERE sm.group_id = g.id AND sm.user_id <> ?0 AND sm.state = 'active'
ORDER BY CASE WHEN su.suspended_at IS NULL THEN 0 ELSE 1 END, CASE WHEN sm.role = 'admin' THEN 0 ELSE 1 END, sm.created_at, sm.user_id
LIMIT 1`

// DeleteAccount deletes a user and everything that is theirs or about
// them, inside tx, in a fixed number of set-based statements whatever the
// account holds:
//
//   - the profile, interests, sessions, tokens, timeline, event heads and
//     idempotency keys (foreign keys cascade from the user);
//   - their posts with the posts' likes, comments, hashtags, views,
//     timeline entries, notifications and reports, and their videos;
//   - their comments and likes on others' posts, whose comments_count and
//     likes_count drop accordingly;
//   - follows both ways (the other side's followers_count or
//     following_count drops) and blocks both ways;
//   - memberships (the group's members_count drops), invitations and
//     requests. A group they own passes to its longest-standing admin,
//     else its longest-standing member (see successorSQL); with no other
//     member it is deleted with the posts shared with it, whoever wrote
//     them (their authors' posts_count drops, their videos go);
//   - notifications they received or caused, and activity-log entries of
//     theirs and of others that name them or their posts;
//   - reports they filed and reports of their posts.
//
// The username is held until holdUntil (see UsernameHeldUntil); held
// names whose time has passed are forgotten on the way.
//
// It locks in the global order of locks.go: the groups the user belongs
// to, then the posts whose rows it changes or deletes, then the users
// whose counters move, in id order, and the user last for deletion (FOR
// UPDATE, which waits for every transaction still writing a row that
// refers to the user; the counters are corrected after it, so they count
// what those committed). Returns an error matching IsNotFound when there
// is no such user (deleted already).
func (db *DB) DeleteAccount(ctx context.Context, tx bun.IDB, userID string, holdUntil time.Time) (*DeletedAccount, error) {
	pg := db.Engine == Postgres
	var lockedPosts []string
	exec := func(what, query string, args ...any) error {
		if _, err := tx.NewRaw(query, args...).Exec(ctx); err != nil {
			return fmt.Errorf("delete account: %s: %w", what, translate(err))
		}
		return nil
	}
	memberOf := "SELECT mg.group_id FROM group_members AS mg WHERE mg.user_id = ?0"

	// Groups: lock those the user belongs to, then decide what becomes
	// of those they own (membership changes lock their group first, so
	// the members read here stay as they are).
	if pg {
		if err := exec("lock groups", `SELECT g.id FROM "groups" AS g WHERE g.id IN (`+memberOf+`) ORDER BY g.id FOR UPDATE`, userID); err != nil {
			return nil, err
		}
	}
	var owned []struct {
		ID        string  `bun:"id"`
		Successor *string `bun:"successor"`
	}
	if err := tx.NewRaw(`SELECT g.id, (`+successorSQL+`) AS successor FROM "groups" AS g
WHERE g.id IN (`+memberOf+`) AND g.owner_id = ?0 ORDER BY g.id`, userID).Scan(ctx, &owned); err != nil {
		return nil, fmt.Errorf("delete account: owned groups: %w", translate(err))
	}
	d := &DeletedAccount{UserID: userID}
	var transferred []string
	for _, g := range owned {
		if g.Successor == nil {
			d.DeletedGroups = append(d.DeletedGroups, g.ID)
		} else {
			d.Transferred = append(d.Transferred, GroupTransfer{GroupID: g.ID, NewOwnerID: *g.Successor})
			transferred = append(transferred, g.ID)
		}
	}
	// orphanPosts adds the posts of the groups that go to a condition
	// over posts (alias given), binding them as ?1.
	orphans := bun.List(d.DeletedGroups)
	orphanPosts := func(alias string) string {
		if len(d.DeletedGroups) == 0 {
			return ""
		}
		return " OR " + alias + ".group_id IN (?1)"
	}

	if pg {
		// Posts: the user's and the orphaned groups' (deleted), and those
		// the user liked or commented on (counters).
		if err := tx.NewRaw(`SELECT p.id FROM posts AS p
WHERE p.author_id = ?0 OR p.id IN (SELECT l.post_id FROM likes AS l WHERE l.user_id = ?0)
OR p.id IN (SELECT c.post_id FROM comments AS c WHERE c.author_id = ?0)`+orphanPosts("p")+`
ORDER BY p.id FOR UPDATE`, userID, orphans).Scan(ctx, &lockedPosts); err != nil {
			return nil, fmt.Errorf("delete account: lock posts: %w", translate(err))
		}
		// Users whose counters move, in id order, the user among them.
		authors := ""
		if len(d.DeletedGroups) > 0 {
			authors = " OR u.id IN (SELECT op.author_id FROM posts AS op WHERE op.group_id IN (?1))"
		}
		if err := exec("lock users", `SELECT u.id FROM users AS u
WHERE u.id = ?0 OR u.id IN (SELECT f.followee_id FROM follows AS f WHERE f.follower_id = ?0)
OR u.id IN (SELECT f.follower_id FROM follows AS f WHERE f.followee_id = ?0)`+authors+`
ORDER BY u.id FOR NO KEY UPDATE`, userID, orphans); err != nil {
			return nil, err
		}
	}
	u := new(User)
	q := tx.NewSelect().Model(u).Column("id", "username", "avatar_key").Where("u.id = ?", userID)
	if pg {
		q = q.For("UPDATE")
	}
	if err := q.Scan(ctx); err != nil {
		return nil, fmt.Errorf("delete account: %w", translate(err))
	}
	d.Username, d.AvatarKey = u.Username, u.AvatarKey
	if pg {
		// Each statement here reads a new snapshot (READ COMMITTED): a
		// post, like or comment of the user committed after the posts were
		// locked (the user acting from another session) is one whose row
		// the statements below would change without holding it first, and
		// a transaction of the user's that holds it waits for the user's
		// row, held now: a deadlock (3 of 30 deletions in
		// TestDeleteAccount_WhileOthersActNeverDeadlocks_P27). Holding the
		// user's row, no new one can commit (each refers to the user), so
		// the set checked here is the set the statements below change; if
		// it grew, the deletion runs again from the start, at once.
		var stale bool
		if err := tx.NewRaw(`SELECT EXISTS (SELECT 1 FROM posts AS p WHERE p.author_id = ?0 AND NOT (p.id = ANY(?1)))
OR EXISTS (SELECT 1 FROM likes AS l WHERE l.user_id = ?0 AND NOT (l.post_id = ANY(?1)))
OR EXISTS (SELECT 1 FROM comments AS c WHERE c.author_id = ?0 AND NOT (c.post_id = ANY(?1)))`,
			userID, pgdialect.Array(lockedPosts)).Scan(ctx, &stale); err != nil {
			return nil, fmt.Errorf("delete account: check locked posts: %w", translate(err))
		}
		if stale {
			return nil, errRerun
		}
	}

	if err := tx.NewSelect().Model((*Session)(nil)).Column("id").
		Where("user_id = ? AND revoked_at IS NULL", userID).OrderExpr("id").Scan(ctx, &d.SessionIDs); err != nil {
		return nil, fmt.Errorf("delete account: sessions: %w", translate(err))
	}
	videos := "SELECT v.id FROM videos AS v WHERE v.owner_id = ?0"
	if len(d.DeletedGroups) > 0 {
		videos += " UNION SELECT op.video_id FROM posts AS op WHERE op.group_id IN (?1) AND op.video_id IS NOT NULL"
	}
	if err := tx.NewRaw(videos, userID, orphans).Scan(ctx, &d.VideoIDs); err != nil {
		return nil, fmt.Errorf("delete account: videos: %w", translate(err))
	}

	// Counters of what stays, from the rows as they are now.
	if err := exec("uncount likes", `UPDATE posts AS p SET likes_count = likes_count - 1
WHERE p.id IN (SELECT l.post_id FROM likes AS l WHERE l.user_id = ?0) AND p.author_id <> ?0`, userID); err != nil {
		return nil, err
	}
	if err := exec("uncount comments", `UPDATE posts AS p
SET comments_count = comments_count - (SELECT count(*) FROM comments AS c WHERE c.post_id = p.id AND c.author_id = ?0)
WHERE p.id IN (SELECT c.post_id FROM comments AS c WHERE c.author_id = ?0) AND p.author_id <> ?0`, userID); err != nil {
		return nil, err
	}
	if err := exec("uncount followers", `UPDATE users AS u SET followers_count = followers_count - 1
WHERE u.id IN (SELECT f.followee_id FROM follows AS f WHERE f.follower_id = ?0)`, userID); err != nil {
		return nil, err
	}
	if err := exec("uncount following", `UPDATE users AS u SET following_count = following_count - 1
WHERE u.id IN (SELECT f.follower_id FROM follows AS f WHERE f.followee_id = ?0)`, userID); err != nil {
		return nil, err
	}
	if err := exec("uncount memberships", `UPDATE "groups" AS g SET members_count = members_count - 1
WHERE g.id IN (SELECT mg.group_id FROM group_members AS mg WHERE mg.user_id = ?0 AND mg.state = 'active')`, userID); err != nil {
		return nil, err
	}

	// Groups the user owned: to their successor, or gone.
	if len(transferred) > 0 {
		if err := exec("transfer groups", `UPDATE "groups" AS g SET owner_id = (`+successorSQL+`), updated_at = ?2
WHERE g.id IN (?1)`, userID, bun.List(transferred), db.Now()); err != nil {
			return nil, err
		}
		if err := exec("transfer groups", `UPDATE group_members AS gm SET role = 'owner'
WHERE gm.group_id IN (?1) AND gm.user_id = (SELECT g.owner_id FROM "groups" AS g WHERE g.id = gm.group_id)`, userID, bun.List(transferred)); err != nil {
			return nil, err
		}
	}
	if len(d.DeletedGroups) > 0 {
		if err := exec("uncount group posts", `UPDATE users AS u
SET posts_count = posts_count - (SELECT count(*) FROM posts AS op WHERE op.group_id IN (?1) AND op.author_id = u.id)
WHERE u.id IN (SELECT op.author_id FROM posts AS op WHERE op.group_id IN (?1)) AND u.id <> ?0`, userID, orphans); err != nil {
			return nil, err
		}
		if err := db.deleteGroupEntries(ctx, tx, "IN (?0)", orphans); err != nil {
			return nil, err
		}
		if err := exec("delete group posts", `DELETE FROM posts WHERE group_id IN (?1)`, userID, orphans); err != nil {
			return nil, err
		}
		if err := exec("delete groups", `DELETE FROM "groups" WHERE id IN (?1)`, userID, orphans); err != nil {
			return nil, err
		}
	}
	if len(d.VideoIDs) > 0 {
		if err := exec("delete videos", `DELETE FROM videos WHERE id IN (?1)`, userID, bun.List(d.VideoIDs)); err != nil {
			return nil, err
		}
	}

	// Others' activity about the user: follows and blocks of them, likes
	// and comments of their posts. (Their own goes with the user.)
	if err := exec("delete activity", `DELETE FROM activities
WHERE target_user_id IS NOT NULL AND target_user_id = ?0`, userID); err != nil {
		return nil, err
	}
	if err := exec("delete activity", `DELETE FROM activities
WHERE post_id IS NOT NULL AND post_id IN (SELECT p.id FROM posts AS p WHERE p.author_id = ?0)`, userID); err != nil {
		return nil, err
	}

	// Their posts' entries in others' timelines, then their own timeline
	// (no cascade reaches entries: timelines.go).
	if err := db.deleteAuthorEntries(ctx, tx, userID); err != nil {
		return nil, err
	}
	if err := db.DeleteTimeline(ctx, tx, userID); err != nil {
		return nil, err
	}
	// The user, and with them by cascade every row that refers to them.
	if err := exec("delete user", `DELETE FROM users WHERE id = ?0`, userID); err != nil {
		return nil, err
	}
	// No page shows a deleted row (the page's statement no longer finds
	// it), but this instance need not keep the profile until it ages out.
	db.caches.authors.Remove(userID)
	if err := exec("forget held usernames", `DELETE FROM held_usernames WHERE available_at <= ?0`, db.Now()); err != nil {
		return nil, err
	}
	if _, err := tx.NewInsert().Model(&HeldUsername{UsernameLower: strings.ToLower(u.Username), AvailableAt: holdUntil}).
		On("CONFLICT (username_lower) DO UPDATE").Set("available_at = EXCLUDED.available_at").Exec(ctx); err != nil {
		return nil, fmt.Errorf("delete account: hold username: %w", translate(err))
	}
	return d, nil
}
