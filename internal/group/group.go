// Package group holds the rules of groups: who may see, join, manage and
// delete them, and who sees the posts shared with them.
//
// Roles: the owner (who created the group) may do everything; admins manage
// members and settings; members post and read. Posts shared with a group,
// public or private, are visible to its active members only (security.md
// property 6): the store's visibility rule lets them into GetPost, the
// members' home feeds and ListGroupPosts, and nowhere else.
package group

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/uptrace/bun"

	"github.com/flock-social/flock"
	"github.com/flock-social/flock/internal/account"
	"github.com/flock-social/flock/internal/notify"
	"github.com/flock-social/flock/internal/page"
	"github.com/flock-social/flock/internal/post"
	"github.com/flock-social/flock/internal/social"
	"github.com/flock-social/flock/internal/store"
)

// Limits, in characters.
const (
	MaxNameLen        = 100
	MaxDescriptionLen = 2000
)

// Service carries out group actions.
type Service struct {
	db     *store.DB
	social *social.Service
	posts  *post.Service
	events *notify.Service
}

// NewService returns a Service.
func NewService(db *store.DB, social *social.Service, posts *post.Service, events *notify.Service) *Service {
	return &Service{db: db, social: social, posts: posts, events: events}
}

// View is a group with the caller's membership (nil when none).
type View struct {
	*store.Group
	Mine *store.GroupMember
}

// MemberView is a membership with its user as the caller sees them.
type MemberView struct {
	*store.GroupMember
	User *social.UserView
}

func notFound(id string) error { return flock.Errorf(flock.ENOTFOUND, "group %q not found", id) }

func checkName(name string) (string, error) {
	name = strings.TrimSpace(name)
	if n := utf8.RuneCountInString(name); n == 0 || n > MaxNameLen {
		return "", flock.FieldErrorf("name", "name must be 1-%d characters", MaxNameLen)
	}
	return name, nil
}

func checkDescription(d string) (string, error) {
	d = strings.TrimSpace(d)
	if utf8.RuneCountInString(d) > MaxDescriptionLen {
		return "", flock.FieldErrorf("description", "description must be at most %d characters", MaxDescriptionLen)
	}
	return d, nil
}

func checkPrivacy(p string) (string, error) {
	switch p {
	case "":
		return store.GroupPublic, nil
	case store.GroupPublic, store.GroupPrivate:
		return p, nil
	}
	return "", flock.FieldErrorf("privacy", "privacy must be public or private")
}

// CreateGroup creates a group with the caller as its owner.
func (s *Service) CreateGroup(ctx context.Context, p *account.Principal, name, description, privacy string) (*View, error) {
	name, err := checkName(name)
	if err != nil {
		return nil, err
	}
	if description, err = checkDescription(description); err != nil {
		return nil, err
	}
	if privacy, err = checkPrivacy(privacy); err != nil {
		return nil, err
	}
	g := &store.Group{Name: name, Description: description, Privacy: privacy, OwnerID: p.UserID}
	var ev notify.Events
	err = s.db.InTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		if err := s.db.CreateGroup(ctx, tx, g); err != nil {
			return err
		}
		return s.events.Record(ctx, tx, &ev, &store.Activity{UserID: p.UserID, Type: notify.GroupCreated, GroupID: &g.ID})
	})
	if err != nil {
		return nil, fmt.Errorf("create group: %w", err)
	}
	s.events.Publish(ctx, &ev)
	return s.view(ctx, s.db, p, g.ID)
}

// view loads a group with the caller's membership, through tx (inside a
// transaction, reads must use it: another connection could wait on the
// pool while this transaction holds one).
func (s *Service) view(ctx context.Context, tx bun.IDB, p *account.Principal, id string) (*View, error) {
	g, err := s.db.GetGroup(ctx, tx, id)
	if store.IsNotFound(err) {
		return nil, notFound(id)
	} else if err != nil {
		return nil, err
	}
	m, err := s.db.GetMembership(ctx, tx, id, p.UserID)
	if store.IsNotFound(err) {
		m = nil
	} else if err != nil {
		return nil, err
	}
	return &View{Group: g, Mine: m}, nil
}

// lockedView locks the group (store.LockGroup; FOR UPDATE when forDelete)
// and then reads it and the caller's membership: membership changes of a
// group run one after the other and decide on what the previous committed,
// the count of members stays right, and a deletion in progress is waited
// for and then found.
func (s *Service) lockedView(ctx context.Context, tx bun.IDB, p *account.Principal, id string, forDelete bool) (*View, error) {
	if err := s.db.LockGroup(ctx, tx, id, forDelete); err != nil {
		return nil, err
	}
	return s.view(ctx, tx, p, id)
}

func (v *View) active() bool { return v.Mine != nil && v.Mine.State == store.MemberActive }

func (v *View) manager() bool {
	return v.active() && (v.Mine.Role == store.GroupRoleOwner || v.Mine.Role == store.GroupRoleAdmin)
}

func (v *View) owner() bool { return v.active() && v.Mine.Role == store.GroupRoleOwner }

// canSeeMembers: anyone for a public group, members for a private one.
func (v *View) canSeeMembers() bool { return v.Privacy == store.GroupPublic || v.active() }

// GetGroup returns a group and a page of its active members (empty for a
// private group the caller is not a member of): the first, or the one
// token continues to (a token of GetGroup or ListGroupMembers, which page
// the same list). ENOTFOUND when it does not exist.
func (s *Service) GetGroup(ctx context.Context, p *account.Principal, id string, size int32, token string) (*View, *MemberPage, error) {
	v, err := s.view(ctx, s.db, p, id)
	if err != nil {
		return nil, nil, fmt.Errorf("get group: %w", err)
	}
	members := &MemberPage{}
	if v.canSeeMembers() {
		if members, err = s.members(ctx, p, v, store.MemberActive, size, token); err != nil {
			return nil, nil, fmt.Errorf("get group: %w", err)
		}
	}
	return v, members, nil
}

// MemberPage is a page of memberships.
type MemberPage struct {
	Members       []*MemberView
	NextPageToken string
}

const kindMembers = "group-members"

// ListGroupMembers lists a group's memberships in one state (default
// active), newest first. Active members: anyone for a public group, members
// for a private one (EFORBIDDEN otherwise); invitations and requests: the
// owner and admins only.
func (s *Service) ListGroupMembers(ctx context.Context, p *account.Principal, id, state string, size int32, token string) (*MemberPage, error) {
	v, err := s.view(ctx, s.db, p, id)
	if err != nil {
		return nil, fmt.Errorf("list group members: %w", err)
	}
	if state == "" {
		state = store.MemberActive
	}
	switch {
	case state == store.MemberActive && !v.canSeeMembers():
		return nil, flock.Errorf(flock.EFORBIDDEN, "only members see the members of a private group")
	case state != store.MemberActive && !v.manager():
		return nil, flock.Errorf(flock.EFORBIDDEN, "only the owner and admins see invitations and requests")
	}
	return s.members(ctx, p, v, state, size, token)
}

func (s *Service) members(ctx context.Context, p *account.Principal, v *View, state string, size int32, token string) (*MemberPage, error) {
	cur, _, err := page.Decode(kindMembers+":"+v.ID+":"+state, token)
	if err != nil {
		return nil, err
	}
	n := page.Size(size)
	rows, err := s.db.ListGroupMembers(ctx, s.db, store.MemberFilter{GroupID: v.ID, State: state, ViewerID: p.UserID, BeforeAt: cur.Time, BeforeID: cur.ID, Limit: n + 1})
	if err != nil {
		return nil, err
	}
	rows, next := page.Next(rows, n, func(m *store.GroupMember) page.Cursor {
		return page.Cursor{Kind: kindMembers + ":" + v.ID + ":" + state, ID: m.UserID, Time: m.CreatedAt}
	})
	ids := make([]string, len(rows))
	for i, m := range rows {
		ids[i] = m.UserID
	}
	byID, err := s.social.ViewsByID(ctx, p.UserID, ids)
	if err != nil {
		return nil, err
	}
	out := make([]*MemberView, 0, len(rows))
	for _, m := range rows {
		if uv := byID[m.UserID]; uv != nil {
			out = append(out, &MemberView{GroupMember: m, User: uv})
		}
	}
	return &MemberPage{Members: out, NextPageToken: next}, nil
}

const kindGroups = "my-groups"

// GroupPage is a page of groups.
type GroupPage struct {
	Groups        []*View
	NextPageToken string
}

// ListGroups lists the groups the caller is an active member of, most
// recently joined first.
func (s *Service) ListGroups(ctx context.Context, p *account.Principal, size int32, token string) (*GroupPage, error) {
	cur, _, err := page.Decode(kindGroups, token)
	if err != nil {
		return nil, err
	}
	n := page.Size(size)
	rows, err := s.db.ListUserGroups(ctx, s.db, p.UserID, cur.Time, cur.ID, n+1)
	if err != nil {
		return nil, fmt.Errorf("list groups: %w", err)
	}
	rows, next := page.Next(rows, n, func(r store.GroupRow) page.Cursor {
		return page.Cursor{Kind: kindGroups, ID: r.ID, Time: r.JoinedAt}
	})
	groups := make([]*store.Group, len(rows))
	for i, r := range rows {
		groups[i] = r.Group
	}
	return s.groupPage(ctx, p, groups, next)
}

// groupPage is a page of groups with the caller's membership of each, read in
// one query.
func (s *Service) groupPage(ctx context.Context, p *account.Principal, groups []*store.Group, next string) (*GroupPage, error) {
	ids := make([]string, len(groups))
	for i, g := range groups {
		ids[i] = g.ID
	}
	mine, err := s.db.Memberships(ctx, s.db, p.UserID, ids)
	if err != nil {
		return nil, fmt.Errorf("groups' memberships: %w", err)
	}
	out := make([]*View, len(groups))
	for i, g := range groups {
		out[i] = &View{Group: g, Mine: mine[g.ID]}
	}
	return &GroupPage{Groups: out, NextPageToken: next}, nil
}

// searchKind is the page-token kind of a group search: bound to its query
// (a short hash of it), so that a token kept from another query, or from
// the list of every group, is refused instead of giving a wrong page.
func searchKind(q string) string {
	if q == "" {
		return "groups-largest"
	}
	sum := sha256.Sum256([]byte(q))
	return "group-search-" + hex.EncodeToString(sum[:6])
}

// SearchGroups finds groups by name (store.SearchGroups says how they
// rank); an empty query lists every group, largest first. Blank space
// around the query is ignored.
func (s *Service) SearchGroups(ctx context.Context, p *account.Principal, query string, size int32, token string) (*GroupPage, error) {
	q := strings.ToLower(strings.TrimSpace(query))
	if utf8.RuneCountInString(q) > social.MaxQueryLen {
		return nil, flock.FieldErrorf("query", "query must be at most %d characters", social.MaxQueryLen)
	}
	kind := searchKind(q)
	cur, _, err := page.Decode(kind, token)
	if err != nil {
		return nil, err
	}
	n := page.Size(size)
	hits, err := s.db.SearchGroups(ctx, s.db, store.GroupSearch{Query: q, AfterScore: cur.Score, AfterID: cur.ID, Limit: n + 1})
	if err != nil {
		return nil, fmt.Errorf("search groups: %w", err)
	}
	hits, next := page.Next(hits, n, func(h store.ScoredGroup) page.Cursor {
		return page.Cursor{Kind: kind, ID: h.ID, Score: h.Score}
	})
	groups := make([]*store.Group, len(hits))
	for i, h := range hits {
		groups[i] = h.Group
	}
	return s.groupPage(ctx, p, groups, next)
}

// GroupUpdate lists the fields to change; nil fields stay.
type GroupUpdate struct {
	Name, Description, Privacy *string
}

// UpdateGroup changes a group's settings. Owner and admins (EFORBIDDEN for
// others).
func (s *Service) UpdateGroup(ctx context.Context, p *account.Principal, id string, in GroupUpdate) (*View, error) {
	var upd store.GroupUpdate
	if in.Name != nil {
		v, err := checkName(*in.Name)
		if err != nil {
			return nil, err
		}
		upd.Name = &v
	}
	if in.Description != nil {
		v, err := checkDescription(*in.Description)
		if err != nil {
			return nil, err
		}
		upd.Description = &v
	}
	if in.Privacy != nil {
		if *in.Privacy == "" {
			return nil, flock.FieldErrorf("privacy", "privacy must be public or private")
		}
		v, err := checkPrivacy(*in.Privacy)
		if err != nil {
			return nil, err
		}
		upd.Privacy = &v
	}
	var ev notify.Events
	err := s.db.InTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		v, err := s.view(ctx, tx, p, id)
		if err != nil {
			return err
		}
		if !v.manager() {
			return flock.Errorf(flock.EFORBIDDEN, "only the owner and admins may change a group")
		}
		if err := s.db.UpdateGroup(ctx, tx, id, upd); err != nil {
			return err
		}
		return s.events.Record(ctx, tx, &ev, &store.Activity{UserID: p.UserID, Type: notify.GroupUpdated, GroupID: &id})
	})
	if err != nil {
		return nil, fmt.Errorf("update group: %w", err)
	}
	s.events.Publish(ctx, &ev)
	return s.view(ctx, s.db, p, id)
}

// DeleteGroup deletes a group and the posts shared with it. Owner only.
func (s *Service) DeleteGroup(ctx context.Context, p *account.Principal, id string) error {
	var ev notify.Events
	err := s.db.InTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		v, err := s.lockedView(ctx, tx, p, id, true)
		if err != nil {
			return err
		}
		if !v.owner() {
			return flock.Errorf(flock.EFORBIDDEN, "only the owner may delete a group")
		}
		if err := s.db.DeleteGroup(ctx, tx, id); err != nil {
			return err
		}
		return s.events.Record(ctx, tx, &ev, &store.Activity{UserID: p.UserID, Type: notify.GroupDeleted, GroupID: &id})
	})
	if err != nil {
		return fmt.Errorf("delete group: %w", err)
	}
	s.events.Publish(ctx, &ev)
	return nil
}

// JoinGroup joins a public group, accepts an invitation to a private one,
// or asks to join a private one (state requested, the owner and admins are
// notified). Joining again returns the membership as it is.
func (s *Service) JoinGroup(ctx context.Context, p *account.Principal, id string) (*store.GroupMember, error) {
	var (
		ev     notify.Events
		result *store.GroupMember
	)
	err := s.db.InTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		v, err := s.lockedView(ctx, tx, p, id, false)
		if err != nil {
			return err
		}
		if v.active() || (v.Mine != nil && v.Mine.State == store.MemberRequested) {
			result = v.Mine
			return nil
		}
		state := store.MemberActive
		if v.Privacy == store.GroupPrivate && (v.Mine == nil || v.Mine.State != store.MemberInvited) {
			state = store.MemberRequested
		}
		role := store.GroupRoleMember
		if v.Mine != nil {
			role = v.Mine.Role // an invitation may carry the admin role
		}
		result = &store.GroupMember{GroupID: id, UserID: p.UserID, Role: role, State: state}
		if err := s.db.PutMembership(ctx, tx, result); err != nil {
			return err
		}
		admins, err := s.db.GroupAdmins(ctx, tx, id)
		if err != nil {
			return err
		}
		kind := notify.TypeGroupJoined
		if state == store.MemberRequested {
			kind = notify.TypeGroupJoinRequest
		}
		for _, admin := range admins {
			if err := s.events.Notify(ctx, tx, &ev, &store.Notification{UserID: admin, Type: kind, ActorID: p.UserID, GroupID: &id,
				DedupeKey: notify.Str(kind + ":" + id + ":" + p.UserID)}); err != nil {
				return err
			}
		}
		if state == store.MemberActive {
			return s.events.Record(ctx, tx, &ev, &store.Activity{UserID: p.UserID, Type: notify.GroupJoined, GroupID: &id})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("join group: %w", err)
	}
	s.events.Publish(ctx, &ev)
	return result, nil
}

// LeaveGroup leaves a group, withdraws a request or declines an invitation.
// The owner cannot leave (EPRECONDITION): they delete the group instead.
func (s *Service) LeaveGroup(ctx context.Context, p *account.Principal, id string) error {
	var ev notify.Events
	err := s.db.InTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		v, err := s.lockedView(ctx, tx, p, id, false)
		if err != nil {
			return err
		}
		if v.owner() {
			return flock.Errorf(flock.EPRECONDITION, "the owner cannot leave a group; delete it instead")
		}
		if v.Mine == nil {
			return nil
		}
		if _, err := s.db.DeleteMembership(ctx, tx, id, p.UserID); err != nil {
			return err
		}
		if v.active() {
			return s.events.Record(ctx, tx, &ev, &store.Activity{UserID: p.UserID, Type: notify.GroupLeft, GroupID: &id})
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("leave group: %w", err)
	}
	s.events.Publish(ctx, &ev)
	return nil
}

// AddGroupMember approves a user's request to join (they become an active
// member) or invites them (they join with JoinGroup). Owner and admins; only
// the owner may make admins. Adding an active member changes nothing.
// ENOTFOUND for unknown users and across a block with the caller.
func (s *Service) AddGroupMember(ctx context.Context, p *account.Principal, id, userID, role string) (*store.GroupMember, error) {
	if role == "" {
		role = store.GroupRoleMember
	}
	if role != store.GroupRoleMember && role != store.GroupRoleAdmin {
		return nil, flock.FieldErrorf("role", "role must be admin or member")
	}
	var (
		ev     notify.Events
		result *store.GroupMember
	)
	err := s.db.InTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		v, err := s.lockedView(ctx, tx, p, id, false)
		if err != nil {
			return err
		}
		if !v.manager() {
			return flock.Errorf(flock.EFORBIDDEN, "only the owner and admins may add members")
		}
		if role == store.GroupRoleAdmin && !v.owner() {
			return flock.Errorf(flock.EFORBIDDEN, "only the owner may make admins")
		}
		if u, err := s.db.GetUser(ctx, tx, userID); store.IsNotFound(err) || (err == nil && u.SuspendedAt != nil) {
			return flock.Errorf(flock.ENOTFOUND, "user %q not found", userID)
		} else if err != nil {
			return err
		}
		switch mine, theirs, err := s.db.Blocks(ctx, tx, p.UserID, userID); {
		case err != nil:
			return err
		case mine:
			// The blocker is told why; the blocked side learns nothing of
			// the block (security.md property 4), as for a follow.
			return flock.Errorf(flock.ENOTFOUND, "you have blocked this user; to add them to a group, unblock them first (Unblock: POST /api/users/%s/unblock/)", userID)
		case theirs:
			return flock.Errorf(flock.ENOTFOUND, "user %q not found", userID)
		}
		cur, err := s.db.GetMembership(ctx, tx, id, userID)
		if err != nil && !store.IsNotFound(err) {
			return err
		}
		if err == nil && cur.State == store.MemberActive {
			result = cur
			return nil
		}
		state, kind := store.MemberInvited, notify.TypeGroupInvite
		if err == nil && cur.State == store.MemberRequested {
			state, kind = store.MemberActive, notify.TypeGroupJoined
		}
		result = &store.GroupMember{GroupID: id, UserID: userID, Role: role, State: state}
		if err := s.db.PutMembership(ctx, tx, result); err != nil {
			return err
		}
		if err := s.events.Notify(ctx, tx, &ev, &store.Notification{UserID: userID, Type: kind, ActorID: p.UserID, GroupID: &id,
			DedupeKey: notify.Str(kind + ":" + id + ":" + userID)}); err != nil {
			return err
		}
		if state == store.MemberActive {
			// The request was the member's own action, and approving it
			// completes their join: it goes in their activity log, as a
			// join of an open group or by invitation does.
			return s.events.Record(ctx, tx, &ev, &store.Activity{UserID: userID, Type: notify.GroupJoined, GroupID: &id})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("add group member: %w", err)
	}
	s.events.Publish(ctx, &ev)
	return result, nil
}

// UpdateGroupMember changes an active member's role (admin or member).
// Owner only; the owner's own role cannot change.
func (s *Service) UpdateGroupMember(ctx context.Context, p *account.Principal, id, userID, role string) (*store.GroupMember, error) {
	if role != store.GroupRoleMember && role != store.GroupRoleAdmin {
		return nil, flock.FieldErrorf("role", "role must be admin or member")
	}
	var result *store.GroupMember
	err := s.db.InTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		v, err := s.lockedView(ctx, tx, p, id, false)
		if err != nil {
			return err
		}
		if !v.owner() {
			return flock.Errorf(flock.EFORBIDDEN, "only the owner may change roles")
		}
		if userID == p.UserID {
			return flock.FieldErrorf("user_id", "the owner's role cannot change")
		}
		cur, err := s.db.GetMembership(ctx, tx, id, userID)
		if store.IsNotFound(err) || (err == nil && cur.State != store.MemberActive) {
			return flock.Errorf(flock.ENOTFOUND, "user %q is not a member of this group", userID)
		} else if err != nil {
			return err
		}
		cur.Role = role
		result = cur
		return s.db.PutMembership(ctx, tx, cur)
	})
	if err != nil {
		return nil, fmt.Errorf("update group member: %w", err)
	}
	return result, nil
}

// RemoveGroupMember removes a member, an invitation or a request. Owner and
// admins; admins cannot remove the owner or other admins, and nobody
// removes the owner.
func (s *Service) RemoveGroupMember(ctx context.Context, p *account.Principal, id, userID string) error {
	err := s.db.InTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		v, err := s.lockedView(ctx, tx, p, id, false)
		if err != nil {
			return err
		}
		if !v.manager() {
			return flock.Errorf(flock.EFORBIDDEN, "only the owner and admins may remove members")
		}
		cur, err := s.db.GetMembership(ctx, tx, id, userID)
		if store.IsNotFound(err) {
			return nil
		} else if err != nil {
			return err
		}
		if cur.Role == store.GroupRoleOwner {
			return flock.Errorf(flock.EFORBIDDEN, "the owner cannot be removed")
		}
		if cur.Role == store.GroupRoleAdmin && cur.State == store.MemberActive && !v.owner() {
			return flock.Errorf(flock.EFORBIDDEN, "only the owner may remove an admin")
		}
		_, err = s.db.DeleteMembership(ctx, tx, id, userID)
		return err
	})
	if err != nil {
		return fmt.Errorf("remove group member: %w", err)
	}
	return nil
}

// ListGroupPosts lists the posts shared with a group, newest first. Members
// only (EFORBIDDEN for others, whatever the group's privacy).
func (s *Service) ListGroupPosts(ctx context.Context, p *account.Principal, id string, size int32, token string) (*post.Page, error) {
	v, err := s.view(ctx, s.db, p, id)
	if err != nil {
		return nil, fmt.Errorf("list group posts: %w", err)
	}
	if !v.active() {
		return nil, flock.Errorf(flock.EFORBIDDEN, "only members see a group's posts; join the group first")
	}
	return s.posts.ListGroupPosts(ctx, p, id, size, token)
}
