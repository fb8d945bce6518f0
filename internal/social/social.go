// Package social holds the rules of the follow graph, blocks, profiles as
// another user sees them, and user search.
//
// Blocks hide both ways (security.md property 4): blocking removes follows
// in both directions and forbids new ones; neither user finds the other in
// profiles, lists or search. A user who blocked someone still sees their
// profile (with blockedByMe) so that they can unblock them.
package social

import (
	"context"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/uptrace/bun"

	"github.com/flock-social/flock"
	"github.com/flock-social/flock/internal/account"
	"github.com/flock-social/flock/internal/account/emailaddr"
	"github.com/flock-social/flock/internal/notify"
	"github.com/flock-social/flock/internal/page"
	"github.com/flock-social/flock/internal/store"
)

// Service carries out social actions.
type Service struct {
	db     *store.DB
	events *notify.Service
}

// NewService returns a Service that records its actions with events.
func NewService(db *store.DB, events *notify.Service) *Service {
	return &Service{db: db, events: events}
}

// UserView is a user as the viewer sees them.
type UserView struct {
	*store.User
	Rel store.Relationship
}

// Views attaches the viewer's relationship to each user: one round of two
// queries whatever the number of users.
func (s *Service) Views(ctx context.Context, tx bun.IDB, viewerID string, users []*store.User) ([]*UserView, error) {
	ids := make([]string, len(users))
	for i, u := range users {
		ids[i] = u.ID
	}
	rels, err := s.db.Relationships(ctx, tx, viewerID, ids)
	if err != nil {
		return nil, err
	}
	out := make([]*UserView, len(users))
	for i, u := range users {
		out[i] = &UserView{User: u, Rel: rels[u.ID]}
	}
	return out, nil
}

// ViewsByID loads the users with the given IDs (those that exist) with the
// viewer's relationship to each, keyed by ID: one query whatever their
// number.
func (s *Service) ViewsByID(ctx context.Context, viewerID string, ids []string) (map[string]*UserView, error) {
	users, rels, err := s.db.GetUsersWithRelationships(ctx, s.db, viewerID, ids)
	if err != nil {
		return nil, err
	}
	out := make(map[string]*UserView, len(users))
	for id, u := range users {
		out[id] = &UserView{User: u, Rel: rels[id]}
	}
	return out, nil
}

func notFound(id string) error { return flock.Errorf(flock.ENOTFOUND, "user %q not found", id) }

// GetUser returns a user's profile as the viewer sees it. Returns ENOTFOUND
// when the user does not exist, is suspended, or has blocked the viewer.
func (s *Service) GetUser(ctx context.Context, p *account.Principal, id string) (*UserView, error) {
	u, err := s.db.GetUser(ctx, s.db, id)
	if store.IsNotFound(err) {
		return nil, notFound(id)
	} else if err != nil {
		return nil, fmt.Errorf("get user: %w", err)
	}
	if u.SuspendedAt != nil && u.ID != p.UserID {
		return nil, notFound(id)
	}
	views, err := s.Views(ctx, s.db, p.UserID, []*store.User{u})
	if err != nil {
		return nil, fmt.Errorf("get user: %w", err)
	}
	if views[0].Rel.BlocksMe {
		return nil, notFound(id)
	}
	return views[0], nil
}

// target loads the user an action is aimed at, refusing yourself when
// self is not allowed, unknown and suspended users (ENOTFOUND), and (when
// checkBlocks) anyone a block stands between (ENOTFOUND, as if absent).
func (s *Service) target(ctx context.Context, tx bun.IDB, p *account.Principal, id, verb string, checkBlocks bool) (*store.User, error) {
	if id == p.UserID {
		return nil, flock.FieldErrorf("user_id", "you cannot %s yourself", verb)
	}
	u, err := s.db.GetUser(ctx, tx, id)
	if store.IsNotFound(err) || (err == nil && u.SuspendedAt != nil) {
		return nil, notFound(id)
	} else if err != nil {
		return nil, err
	}
	if checkBlocks {
		mine, theirs, err := s.db.Blocks(ctx, tx, p.UserID, id)
		switch {
		case err != nil:
			return nil, err
		case mine:
			// The blocker is told what to do; the blocked side learns
			// nothing of the block (security.md property 4).
			return nil, flock.Errorf(flock.ENOTFOUND, "you have blocked this user; to %s them, unblock them first (Unblock: POST /api/users/%s/unblock/)", verb, id)
		case theirs:
			return nil, notFound(id)
		}
	}
	return u, nil
}

// Follow makes the caller follow a user; following again succeeds and
// changes nothing. Returns EINVALID for yourself and ENOTFOUND for unknown
// users and across a block.
func (s *Service) Follow(ctx context.Context, p *account.Principal, id string) error {
	var ev notify.Events
	err := s.db.InTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		// Both users, in id order (store.LockUsers): the locks' global
		// order, so the follow and its counters cannot deadlock with a
		// follow the other way or a deletion of either account, and the
		// block check below sees a concurrent block committed.
		if err := s.db.LockUsers(ctx, tx, p.UserID, id); err != nil {
			return err
		}
		if _, err := s.target(ctx, tx, p, id, "follow", true); err != nil {
			return err
		}
		created, err := s.db.CreateFollow(ctx, tx, p.UserID, id)
		if err != nil || !created {
			return err
		}
		if err := s.events.Notify(ctx, tx, &ev, &store.Notification{UserID: id, Type: notify.TypeFollow, ActorID: p.UserID,
			DedupeKey: notify.Str("follow:" + p.UserID)}); err != nil {
			return err
		}
		return s.events.Record(ctx, tx, &ev, &store.Activity{UserID: p.UserID, Type: notify.UserFollowed, TargetUserID: &id})
	})
	if err != nil {
		return fmt.Errorf("follow: %w", err)
	}
	s.events.Publish(ctx, &ev)
	return nil
}

// Unfollow stops the caller following a user; it succeeds when they were not.
func (s *Service) Unfollow(ctx context.Context, p *account.Principal, id string) error {
	var ev notify.Events
	err := s.db.InTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		if id == p.UserID {
			return flock.FieldErrorf("user_id", "you cannot unfollow yourself")
		}
		if err := s.db.LockUsers(ctx, tx, p.UserID, id); err != nil {
			return err
		}
		deleted, err := s.db.DeleteFollow(ctx, tx, p.UserID, id)
		if err != nil || !deleted {
			return err
		}
		return s.events.Record(ctx, tx, &ev, &store.Activity{UserID: p.UserID, Type: notify.UserUnfollowed, TargetUserID: &id})
	})
	if err != nil {
		return fmt.Errorf("unfollow: %w", err)
	}
	s.events.Publish(ctx, &ev)
	return nil
}

// Block blocks a user and removes the follows between the two, both ways.
// Blocking again succeeds. Returns EINVALID for yourself and ENOTFOUND for
// unknown users.
func (s *Service) Block(ctx context.Context, p *account.Principal, id string) error {
	var ev notify.Events
	err := s.db.InTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		// Both users first, as Follow does: the block and the follows it
		// removes, both ways, cannot deadlock with a follow or unfollow.
		if err := s.db.LockUsers(ctx, tx, p.UserID, id); err != nil {
			return err
		}
		if _, err := s.target(ctx, tx, p, id, "block", false); err != nil {
			return err
		}
		created, err := s.db.CreateBlock(ctx, tx, p.UserID, id)
		if err != nil || !created {
			return err
		}
		if _, err := s.db.DeleteFollow(ctx, tx, p.UserID, id); err != nil {
			return err
		}
		if _, err := s.db.DeleteFollow(ctx, tx, id, p.UserID); err != nil {
			return err
		}
		return s.events.Record(ctx, tx, &ev, &store.Activity{UserID: p.UserID, Type: notify.UserBlocked, TargetUserID: &id})
	})
	if err != nil {
		return fmt.Errorf("block: %w", err)
	}
	s.events.Publish(ctx, &ev)
	return nil
}

// Unblock lifts the caller's block; it succeeds when there was none. The
// follows the block removed are not restored.
func (s *Service) Unblock(ctx context.Context, p *account.Principal, id string) error {
	var ev notify.Events
	err := s.db.InTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		if id == p.UserID {
			return flock.FieldErrorf("user_id", "you cannot unblock yourself")
		}
		deleted, err := s.db.DeleteBlock(ctx, tx, p.UserID, id)
		if err != nil || !deleted {
			return err
		}
		return s.events.Record(ctx, tx, &ev, &store.Activity{UserID: p.UserID, Type: notify.UserUnblocked, TargetUserID: &id})
	})
	if err != nil {
		return fmt.Errorf("unblock: %w", err)
	}
	s.events.Publish(ctx, &ev)
	return nil
}

// List kinds, for page tokens.
const (
	kindFollowers = "followers"
	kindFollowing = "following"
	kindBlocks    = "blocks"
	kindSearch    = "user-search"
)

// UserList is a page of users.
type UserList struct {
	Users         []*UserView
	NextPageToken string
}

// ListFollowers lists who follows a user, newest first, without anyone a
// block stands between with the caller. ENOTFOUND when the user is not
// visible to the caller.
func (s *Service) ListFollowers(ctx context.Context, p *account.Principal, userID string, size int32, token string) (*UserList, error) {
	return s.listRelation(ctx, p, userID, kindFollowers, size, token, s.db.ListFollowers)
}

// ListFollowing lists whom a user follows, like ListFollowers.
func (s *Service) ListFollowing(ctx context.Context, p *account.Principal, userID string, size int32, token string) (*UserList, error) {
	return s.listRelation(ctx, p, userID, kindFollowing, size, token, s.db.ListFollowing)
}

// ListBlocks lists whom the caller blocks, most recent first.
func (s *Service) ListBlocks(ctx context.Context, p *account.Principal, size int32, token string) (*UserList, error) {
	return s.listPage(ctx, p, p.UserID, kindBlocks, size, token, s.db.ListBlocked)
}

type lister func(ctx context.Context, tx bun.IDB, userID string, f store.UserListFilter) ([]store.RelatedUser, error)

func (s *Service) listRelation(ctx context.Context, p *account.Principal, userID, kind string, size int32, token string, list lister) (*UserList, error) {
	if userID != p.UserID {
		if _, err := s.GetUser(ctx, p, userID); err != nil {
			return nil, err
		}
	}
	return s.listPage(ctx, p, userID, kind, size, token, list)
}

func (s *Service) listPage(ctx context.Context, p *account.Principal, userID, kind string, size int32, token string, list lister) (*UserList, error) {
	cur, _, err := page.Decode(kind, token)
	if err != nil {
		return nil, err
	}
	n := page.Size(size)
	res, err := list(ctx, s.db, userID, store.UserListFilter{ViewerID: p.UserID, BeforeAt: cur.Time, BeforeID: cur.ID, Limit: n + 1})
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", kind, err)
	}
	res, next := page.Next(res, n, func(r store.RelatedUser) page.Cursor {
		return page.Cursor{Kind: kind, ID: r.ID, Time: r.At}
	})
	users := make([]*store.User, len(res))
	for i, r := range res {
		users[i] = r.User
	}
	views, err := s.Views(ctx, s.db, p.UserID, users)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", kind, err)
	}
	return &UserList{Users: views, NextPageToken: next}, nil
}

// MaxQueryLen bounds a search query, in characters.
const MaxQueryLen = 100

// SearchUsers finds users by username (prefix, and on Postgres close
// spelling), full name, or a complete email address: an email matches only
// when the query is the whole address, never a fragment of one (property
// 10). Users a block stands between with the caller never appear.
func (s *Service) SearchUsers(ctx context.Context, p *account.Principal, query string, size int32, token string) (*UserList, error) {
	q := strings.ToLower(strings.TrimSpace(query))
	if q == "" || utf8.RuneCountInString(q) > MaxQueryLen {
		return nil, flock.FieldErrorf("query", "query must be 1-%d characters", MaxQueryLen)
	}
	search := store.UserSearch{Query: q, ViewerID: p.UserID}
	if strings.Contains(q, "@") {
		email, err := emailaddr.Normalize(q)
		if err != nil {
			return &UserList{}, nil // not a complete address: emails never match partially
		}
		search.Email, search.Query = email, ""
	}
	cur, _, err := page.Decode(kindSearch, token)
	if err != nil {
		return nil, err
	}
	n := page.Size(size)
	search.AfterScore, search.AfterID, search.Limit = cur.Score, cur.ID, n+1
	hits, err := s.db.SearchUsers(ctx, s.db, search)
	if err != nil {
		return nil, fmt.Errorf("search users: %w", err)
	}
	hits, next := page.Next(hits, n, func(h store.ScoredUser) page.Cursor {
		return page.Cursor{Kind: kindSearch, ID: h.ID, Score: h.Score}
	})
	users := make([]*store.User, len(hits))
	for i, h := range hits {
		users[i] = h.User
	}
	views, err := s.Views(ctx, s.db, p.UserID, users)
	if err != nil {
		return nil, fmt.Errorf("search users: %w", err)
	}
	return &UserList{Users: views, NextPageToken: next}, nil
}
