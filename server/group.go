package server

import (
	"context"

	"connectrpc.com/connect"

	flockv1 "github.com/flock-social/flock/gen/go/flock/v1"
	"github.com/flock-social/flock/gen/go/flock/v1/flockv1connect"
	"github.com/flock-social/flock/internal/group"
	"github.com/flock-social/flock/internal/social"
	"github.com/flock-social/flock/internal/store"
)

// groupServer serves flock.v1.GroupService.
type groupServer struct {
	groups *group.Service
	social *social.Service // the member's profile in membership answers
	conv   converter
}

var _ flockv1connect.GroupServiceHandler = (*groupServer)(nil)

var (
	groupPrivacies = map[string]flockv1.GroupPrivacy{
		store.GroupPublic:  flockv1.GroupPrivacy_GROUP_PRIVACY_PUBLIC,
		store.GroupPrivate: flockv1.GroupPrivacy_GROUP_PRIVACY_PRIVATE,
	}
	storedPrivacy = map[flockv1.GroupPrivacy]string{
		flockv1.GroupPrivacy_GROUP_PRIVACY_UNSPECIFIED: "",
		flockv1.GroupPrivacy_GROUP_PRIVACY_PUBLIC:      store.GroupPublic,
		flockv1.GroupPrivacy_GROUP_PRIVACY_PRIVATE:     store.GroupPrivate,
	}
	groupRoles = map[string]flockv1.GroupRole{
		store.GroupRoleOwner:  flockv1.GroupRole_GROUP_ROLE_OWNER,
		store.GroupRoleAdmin:  flockv1.GroupRole_GROUP_ROLE_ADMIN,
		store.GroupRoleMember: flockv1.GroupRole_GROUP_ROLE_MEMBER,
	}
	storedRole = map[flockv1.GroupRole]string{
		flockv1.GroupRole_GROUP_ROLE_UNSPECIFIED: "",
		flockv1.GroupRole_GROUP_ROLE_ADMIN:       store.GroupRoleAdmin,
		flockv1.GroupRole_GROUP_ROLE_MEMBER:      store.GroupRoleMember,
	}
	memberStates = map[string]flockv1.GroupMembershipState{
		store.MemberActive:    flockv1.GroupMembershipState_GROUP_MEMBERSHIP_STATE_ACTIVE,
		store.MemberInvited:   flockv1.GroupMembershipState_GROUP_MEMBERSHIP_STATE_INVITED,
		store.MemberRequested: flockv1.GroupMembershipState_GROUP_MEMBERSHIP_STATE_REQUESTED,
	}
	storedState = map[flockv1.GroupMembershipState]string{
		flockv1.GroupMembershipState_GROUP_MEMBERSHIP_STATE_UNSPECIFIED: "",
		flockv1.GroupMembershipState_GROUP_MEMBERSHIP_STATE_ACTIVE:      store.MemberActive,
		flockv1.GroupMembershipState_GROUP_MEMBERSHIP_STATE_INVITED:     store.MemberInvited,
		flockv1.GroupMembershipState_GROUP_MEMBERSHIP_STATE_REQUESTED:   store.MemberRequested,
	}
)

func (s *groupServer) group(v *group.View) *flockv1.Group { return s.conv.group(v) }

// group converts a group with the caller's membership (Mine), if any.
func (c converter) group(v *group.View) *flockv1.Group {
	out := &flockv1.Group{
		Id:           v.ID,
		Name:         v.Name,
		Description:  v.Description,
		Privacy:      groupPrivacies[v.Privacy],
		OwnerId:      v.OwnerID,
		MembersCount: int32(v.MembersCount),
		CreatedAt:    timestamp(v.CreatedAt),
	}
	if v.Mine != nil {
		out.MyMembershipState = memberStates[v.Mine.State]
		if v.Mine.State == store.MemberActive {
			out.MyRole = groupRoles[v.Mine.Role]
		}
	}
	return out
}

func (s *groupServer) membership(m *store.GroupMember, user *flockv1.User) *flockv1.GroupMember {
	return &flockv1.GroupMember{User: user, Role: groupRoles[m.Role], State: memberStates[m.State], CreatedAt: timestamp(m.CreatedAt)}
}

func (s *groupServer) members(ctx context.Context, pg *group.MemberPage) []*flockv1.GroupMember {
	out := make([]*flockv1.GroupMember, len(pg.Members))
	for i, m := range pg.Members {
		out[i] = s.membership(m.GroupMember, s.conv.userView(m.User, principal(ctx).UserID))
	}
	return out
}

func (s *groupServer) CreateGroup(ctx context.Context, req *connect.Request[flockv1.CreateGroupRequest]) (*connect.Response[flockv1.CreateGroupResponse], error) {
	m := req.Msg
	v, err := s.groups.CreateGroup(ctx, principal(ctx), m.GetName(), m.GetDescription(), storedPrivacy[m.GetPrivacy()])
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&flockv1.CreateGroupResponse{Group: s.group(v)}), nil
}

func (s *groupServer) GetGroup(ctx context.Context, req *connect.Request[flockv1.GetGroupRequest]) (*connect.Response[flockv1.GetGroupResponse], error) {
	v, pg, err := s.groups.GetGroup(ctx, principal(ctx), req.Msg.GetGroupId(), req.Msg.GetPageSize(), req.Msg.GetPageToken())
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&flockv1.GetGroupResponse{Group: s.group(v), Members: s.members(ctx, pg), NextPageToken: pg.NextPageToken}), nil
}

func (s *groupServer) ListGroups(ctx context.Context, req *connect.Request[flockv1.ListGroupsRequest]) (*connect.Response[flockv1.ListGroupsResponse], error) {
	pg, err := s.groups.ListGroups(ctx, principal(ctx), req.Msg.GetPageSize(), req.Msg.GetPageToken())
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&flockv1.ListGroupsResponse{Groups: s.groupList(pg), NextPageToken: pg.NextPageToken}), nil
}

func (s *groupServer) SearchGroups(ctx context.Context, req *connect.Request[flockv1.SearchGroupsRequest]) (*connect.Response[flockv1.SearchGroupsResponse], error) {
	pg, err := s.groups.SearchGroups(ctx, principal(ctx), req.Msg.GetQuery(), req.Msg.GetPageSize(), req.Msg.GetPageToken())
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&flockv1.SearchGroupsResponse{Groups: s.groupList(pg), NextPageToken: pg.NextPageToken}), nil
}

// groupList converts a page of groups.
func (s *groupServer) groupList(pg *group.GroupPage) []*flockv1.Group {
	out := make([]*flockv1.Group, len(pg.Groups))
	for i, v := range pg.Groups {
		out[i] = s.group(v)
	}
	return out
}

func (s *groupServer) UpdateGroup(ctx context.Context, req *connect.Request[flockv1.UpdateGroupRequest]) (*connect.Response[flockv1.UpdateGroupResponse], error) {
	m := req.Msg
	var upd group.GroupUpdate
	paths := m.GetUpdateMask().GetPaths()
	has := func(field string, present bool) bool {
		if len(paths) == 0 {
			return present
		}
		for _, p := range paths {
			if p == field {
				return true
			}
		}
		return false
	}
	if has("name", m.Name != nil) {
		upd.Name = new(m.GetName())
	}
	if has("description", m.Description != nil) {
		upd.Description = new(m.GetDescription())
	}
	if has("privacy", m.Privacy != nil) {
		upd.Privacy = new(storedPrivacy[m.GetPrivacy()])
	}
	v, err := s.groups.UpdateGroup(ctx, principal(ctx), m.GetGroupId(), upd)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&flockv1.UpdateGroupResponse{Group: s.group(v)}), nil
}

func (s *groupServer) DeleteGroup(ctx context.Context, req *connect.Request[flockv1.DeleteGroupRequest]) (*connect.Response[flockv1.DeleteGroupResponse], error) {
	if err := s.groups.DeleteGroup(ctx, principal(ctx), req.Msg.GetGroupId()); err != nil {
		return nil, err
	}
	return connect.NewResponse(&flockv1.DeleteGroupResponse{}), nil
}

// memberOf converts a membership with its user's profile as the caller
// sees it.
func (s *groupServer) memberOf(ctx context.Context, m *store.GroupMember) (*flockv1.GroupMember, error) {
	viewer := principal(ctx).UserID
	users, err := s.social.ViewsByID(ctx, viewer, []string{m.UserID})
	if err != nil {
		return nil, err
	}
	return s.membership(m, s.conv.userView(users[m.UserID], viewer)), nil
}

func (s *groupServer) JoinGroup(ctx context.Context, req *connect.Request[flockv1.JoinGroupRequest]) (*connect.Response[flockv1.JoinGroupResponse], error) {
	m, err := s.groups.JoinGroup(ctx, principal(ctx), req.Msg.GetGroupId())
	if err != nil {
		return nil, err
	}
	out, err := s.memberOf(ctx, m)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&flockv1.JoinGroupResponse{Membership: out}), nil
}

func (s *groupServer) LeaveGroup(ctx context.Context, req *connect.Request[flockv1.LeaveGroupRequest]) (*connect.Response[flockv1.LeaveGroupResponse], error) {
	if err := s.groups.LeaveGroup(ctx, principal(ctx), req.Msg.GetGroupId()); err != nil {
		return nil, err
	}
	return connect.NewResponse(&flockv1.LeaveGroupResponse{}), nil
}

func (s *groupServer) AddGroupMember(ctx context.Context, req *connect.Request[flockv1.AddGroupMemberRequest]) (*connect.Response[flockv1.AddGroupMemberResponse], error) {
	m := req.Msg
	gm, err := s.groups.AddGroupMember(ctx, principal(ctx), m.GetGroupId(), m.GetUserId(), storedRole[m.GetRole()])
	if err != nil {
		return nil, err
	}
	out, err := s.memberOf(ctx, gm)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&flockv1.AddGroupMemberResponse{Membership: out}), nil
}

func (s *groupServer) UpdateGroupMember(ctx context.Context, req *connect.Request[flockv1.UpdateGroupMemberRequest]) (*connect.Response[flockv1.UpdateGroupMemberResponse], error) {
	m := req.Msg
	gm, err := s.groups.UpdateGroupMember(ctx, principal(ctx), m.GetGroupId(), m.GetUserId(), storedRole[m.GetRole()])
	if err != nil {
		return nil, err
	}
	out, err := s.memberOf(ctx, gm)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&flockv1.UpdateGroupMemberResponse{Membership: out}), nil
}

func (s *groupServer) RemoveGroupMember(ctx context.Context, req *connect.Request[flockv1.RemoveGroupMemberRequest]) (*connect.Response[flockv1.RemoveGroupMemberResponse], error) {
	if err := s.groups.RemoveGroupMember(ctx, principal(ctx), req.Msg.GetGroupId(), req.Msg.GetUserId()); err != nil {
		return nil, err
	}
	return connect.NewResponse(&flockv1.RemoveGroupMemberResponse{}), nil
}

func (s *groupServer) ListGroupMembers(ctx context.Context, req *connect.Request[flockv1.ListGroupMembersRequest]) (*connect.Response[flockv1.ListGroupMembersResponse], error) {
	m := req.Msg
	pg, err := s.groups.ListGroupMembers(ctx, principal(ctx), m.GetGroupId(), storedState[m.GetState()], m.GetPageSize(), m.GetPageToken())
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&flockv1.ListGroupMembersResponse{Members: s.members(ctx, pg), NextPageToken: pg.NextPageToken}), nil
}

func (s *groupServer) ListGroupPosts(ctx context.Context, req *connect.Request[flockv1.ListGroupPostsRequest]) (*connect.Response[flockv1.ListGroupPostsResponse], error) {
	p := principal(ctx)
	pg, err := s.groups.ListGroupPosts(ctx, p, req.Msg.GetGroupId(), req.Msg.GetPageSize(), req.Msg.GetPageToken())
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&flockv1.ListGroupPostsResponse{Posts: s.conv.posts(pg.Posts, p.UserID), NextPageToken: pg.NextPageToken}), nil
}
