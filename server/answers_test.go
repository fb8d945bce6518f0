package server_test

import (
	"testing"

	flockv1 "github.com/flock-social/flock/gen/go/flock/v1"
	"github.com/flock-social/flock/gen/go/flock/v1/flockv1connect"
)

// Answers that carry a user carry the whole profile as the caller sees it,
// on every transport: a membership from JoinGroup or UpdateGroupMember,
// and a notification's actor with the recipient's relationship to them.
func TestAnswers_CarryFullProfiles(t *testing.T) {
	t.Parallel()
	forEachTransport(t, func(t *testing.T, a api) {
		owner, bob := a.s.MustAccount(t, name(a, "owner")), a.s.MustAccount(t, name(a, "bob"))
		g := a.createGroup(owner.AccessToken, "Gophers "+string(a.tr), flockv1.GroupPrivacy_GROUP_PRIVACY_PUBLIC)
		m, err := a.join(bob.AccessToken, g.GetId())
		if err != nil {
			t.Fatal(err)
		}
		if u := m.GetUser(); u.GetUsername() != bob.Username || u.GetCreatedAt() == nil {
			t.Errorf("JoinGroup membership user = %v, want bob's profile", u)
		}
		up := must[flockv1.UpdateGroupMemberResponse](a, flockv1connect.GroupServiceUpdateGroupMemberProcedure, owner.AccessToken,
			&flockv1.UpdateGroupMemberRequest{GroupId: g.GetId(), UserId: bob.ID, Role: flockv1.GroupRole_GROUP_ROLE_ADMIN})
		if u := up.GetMembership().GetUser(); u.GetUsername() != bob.Username {
			t.Errorf("UpdateGroupMember membership user = %v, want bob's profile", u)
		}

		if err := a.follow(owner.AccessToken, bob.ID); err != nil {
			t.Fatal(err)
		}
		if err := a.follow(bob.AccessToken, owner.ID); err != nil {
			t.Fatal(err)
		}
		var follow *flockv1.Notification
		for _, n := range a.notifications(owner.AccessToken).GetNotifications() {
			if n.GetType() == flockv1.NotificationType_NOTIFICATION_TYPE_FOLLOW {
				follow = n
			}
		}
		if actor := follow.GetActor(); actor.GetUsername() != bob.Username || !actor.GetFollowedByMe() || !actor.GetFollowsMe() {
			t.Errorf("follow notification actor = %v, want bob, followed by and following the recipient", actor)
		}
	})
}

// A resource's createdAt is the same in the answer that made it and in
// every later read (both engines store microseconds; the answer of a
// create is made from the row in memory).
func TestAnswers_CreatedAtStableAfterCreate(t *testing.T) {
	t.Parallel()
	forEachTransport(t, func(t *testing.T, a api) {
		reg := must[flockv1.RegisterResponse](a, flockv1connect.UserServiceRegisterProcedure, "",
			&flockv1.RegisterRequest{Username: name(a, "carol"), Email: name(a, "carol") + "@example.com", Password: "long enough password"})
		bob := a.s.MustAccount(t, name(a, "bob"))
		u, err := a.user(bob.AccessToken, reg.GetUser().GetId())
		if err != nil {
			t.Fatal(err)
		}
		if !u.GetCreatedAt().AsTime().Equal(reg.GetUser().GetCreatedAt().AsTime()) {
			t.Errorf("Register createdAt %v, GetUser %v", reg.GetUser().GetCreatedAt().AsTime(), u.GetCreatedAt().AsTime())
		}
	})
}
