package server_test

import (
	"slices"
	"testing"

	flockv1 "github.com/flock-social/flock/gen/go/flock/v1"
	"github.com/flock-social/flock/gen/go/flock/v1/flockv1connect"
	tu "github.com/flock-social/flock/internal/testutil"
)

// blockWorld is a scene in which the blocker and the blocked user each
// appear, before any block, in every list the other one reads.
type blockWorld struct {
	blocker, blocked, third *tu.Account
	// tag is a hashtag both used.
	tag string
	// publicGroup is the third user's; both joined it and posted to it.
	publicGroup string
	// comments is the third user's post that both commented on.
	commented string
	// inviteGroup[x] is x's private group, the other one invited to it;
	// requestGroup[x] is x's private group, the other one asked to join it.
	inviteGroup, requestGroup map[string]string
}

// userList is one list that shows users. shows returns the IDs of the users
// it shows to viewer; other is the one a block may stand between with them.
type userList struct {
	name  string
	shows func(a api, w *blockWorld, viewer, other *tu.Account) []string
	// onlyBlocker: the list shows the other user only to the one who blocked
	// them, and only while the block stands (ListBlocks).
	onlyBlocker bool
}

// Every list that shows users, to its reader. Not here: your own followers
// and following, which cannot hold the other (a block removes the follows
// both ways, TestBlock_HidesBothWays_P4); likes, whose users no RPC lists;
// moderation's reports, read by staff only.
var userLists = []userList{
	{name: "GetGroup members", shows: func(a api, w *blockWorld, viewer, _ *tu.Account) []string {
		res := must[flockv1.GetGroupResponse](a, flockv1connect.GroupServiceGetGroupProcedure, viewer.AccessToken,
			&flockv1.GetGroupRequest{GroupId: w.publicGroup, PageSize: 100})
		return memberIDs(res.GetMembers())
	}},
	{name: "ListGroupMembers active", shows: func(a api, w *blockWorld, viewer, _ *tu.Account) []string {
		return listMembers(a, viewer, w.publicGroup, flockv1.GroupMembershipState_GROUP_MEMBERSHIP_STATE_ACTIVE)
	}},
	{name: "ListGroupMembers invited", shows: func(a api, w *blockWorld, viewer, _ *tu.Account) []string {
		return listMembers(a, viewer, w.inviteGroup[viewer.ID], flockv1.GroupMembershipState_GROUP_MEMBERSHIP_STATE_INVITED)
	}},
	{name: "ListGroupMembers requested", shows: func(a api, w *blockWorld, viewer, _ *tu.Account) []string {
		return listMembers(a, viewer, w.requestGroup[viewer.ID], flockv1.GroupMembershipState_GROUP_MEMBERSHIP_STATE_REQUESTED)
	}},
	{name: "ListFollowers of a third user", shows: func(a api, w *blockWorld, viewer, _ *tu.Account) []string {
		return ids(must[flockv1.ListFollowersResponse](a, flockv1connect.UserServiceListFollowersProcedure, viewer.AccessToken,
			&flockv1.ListFollowersRequest{UserId: w.third.ID, PageSize: 100}).GetUsers())
	}},
	{name: "ListFollowing of a third user", shows: func(a api, w *blockWorld, viewer, _ *tu.Account) []string {
		return ids(must[flockv1.ListFollowingResponse](a, flockv1connect.UserServiceListFollowingProcedure, viewer.AccessToken,
			&flockv1.ListFollowingRequest{UserId: w.third.ID, PageSize: 100}).GetUsers())
	}},
	{name: "SearchUsers", shows: func(a api, _ *blockWorld, viewer, other *tu.Account) []string {
		return ids(a.search(viewer.AccessToken, other.Username))
	}},
	{name: "SuggestUsers", shows: func(a api, _ *blockWorld, viewer, _ *tu.Account) []string {
		var out []string
		for _, s := range must[flockv1.SuggestUsersResponse](a, flockv1connect.UserServiceSuggestUsersProcedure, viewer.AccessToken,
			&flockv1.SuggestUsersRequest{PageSize: 100}).GetSuggestions() {
			out = append(out, s.GetUser().GetId())
		}
		return out
	}},
	{name: "ListComments authors", shows: func(a api, w *blockWorld, viewer, _ *tu.Account) []string {
		var out []string
		for _, c := range must[flockv1.ListCommentsResponse](a, flockv1connect.PostServiceListCommentsProcedure, viewer.AccessToken,
			&flockv1.ListCommentsRequest{PostId: w.commented, PageSize: 100}).GetComments() {
			out = append(out, c.GetAuthor().GetId())
		}
		return out
	}},
	{name: "ListNotifications actors", shows: func(a api, _ *blockWorld, viewer, _ *tu.Account) []string {
		var out []string
		for _, n := range must[flockv1.ListNotificationsResponse](a, flockv1connect.NotificationServiceListNotificationsProcedure, viewer.AccessToken,
			&flockv1.ListNotificationsRequest{PageSize: 100}).GetNotifications() {
			out = append(out, n.GetActor().GetId())
		}
		return out
	}},
	{name: "SearchPosts authors", shows: func(a api, w *blockWorld, viewer, _ *tu.Account) []string {
		return authorIDs(a.hashtag(viewer.AccessToken, w.tag))
	}},
	{name: "ListGroupPosts authors", shows: func(a api, w *blockWorld, viewer, _ *tu.Account) []string {
		return authorIDs(must[flockv1.ListGroupPostsResponse](a, flockv1connect.GroupServiceListGroupPostsProcedure, viewer.AccessToken,
			&flockv1.ListGroupPostsRequest{GroupId: w.publicGroup, PageSize: 100}).GetPosts())
	}},
	{name: "ListFeed authors", shows: func(a api, _ *blockWorld, viewer, _ *tu.Account) []string {
		posts, _ := a.feed(viewer.AccessToken, 100, "")
		return authorIDs(posts)
	}},
	{name: "ListBlocks", onlyBlocker: true, shows: func(a api, _ *blockWorld, viewer, _ *tu.Account) []string {
		return ids(must[flockv1.ListBlocksResponse](a, flockv1connect.UserServiceListBlocksProcedure, viewer.AccessToken,
			&flockv1.ListBlocksRequest{PageSize: 100}).GetUsers())
	}},
}

// P4: blocks hide both ways in every list that shows users: neither the
// blocker nor the blocked user finds the other in any of userLists while
// the block stands (the blocker's own ListBlocks excepted), both did
// before it, and both do again once it is lifted. A new list is one row of
// userLists.
func TestBlock_HiddenInEveryUserList_P4(t *testing.T) {
	t.Parallel()
	forEachTransport(t, func(t *testing.T, a api) {
		w := newBlockWorld(a)
		check := func(phase string, blocking bool) {
			t.Helper()
			for _, l := range userLists {
				for _, side := range [][2]*tu.Account{{w.blocker, w.blocked}, {w.blocked, w.blocker}} {
					viewer, other := side[0], side[1]
					want := !blocking
					if l.onlyBlocker {
						want = blocking && viewer == w.blocker
					}
					if got := slices.Contains(l.shows(a, w, viewer, other), other.ID); got != want {
						t.Errorf("%s: %s shows %s to %s = %v, want %v", phase, l.name, other.Username, viewer.Username, got, want)
					}
				}
			}
		}
		check("before the block", false)
		must[flockv1.BlockResponse](a, flockv1connect.UserServiceBlockProcedure, w.blocker.AccessToken, &flockv1.BlockRequest{UserId: w.blocked.ID})
		check("while blocked", true)
		must[flockv1.UnblockResponse](a, flockv1connect.UserServiceUnblockProcedure, w.blocker.AccessToken, &flockv1.UnblockRequest{UserId: w.blocked.ID})
		check("after unblocking", false)
	})
}

// newBlockWorld makes the scene of blockWorld through the API, over a's
// transport. The blocker and the blocked user do not follow each other,
// so that each is suggested to the other (through the third user, whom
// both follow and who follows both).
func newBlockWorld(a api) *blockWorld {
	t := a.t
	t.Helper()
	w := &blockWorld{
		blocker: a.s.MustAccount(t, name(a, "lb_blocker")),
		blocked: a.s.MustAccount(t, name(a, "lb_blocked")),
		third:   a.s.MustAccount(t, name(a, "lb_third")),
		tag:     "lists" + string(a.tr),
	}
	pair := []*tu.Account{w.blocker, w.blocked}
	for _, x := range pair {
		if err := a.follow(x.AccessToken, w.third.ID); err != nil {
			t.Fatal(err)
		}
		if err := a.follow(w.third.AccessToken, x.ID); err != nil {
			t.Fatal(err)
		}
	}
	w.publicGroup = a.createGroup(w.third.AccessToken, "lists "+string(a.tr), flockv1.GroupPrivacy_GROUP_PRIVACY_PUBLIC).GetId()
	w.commented = a.post(w.third.AccessToken, "comment here").GetId()
	w.inviteGroup, w.requestGroup = map[string]string{}, map[string]string{}
	for i, x := range pair {
		other := pair[1-i]
		if _, err := a.join(x.AccessToken, w.publicGroup); err != nil {
			t.Fatal(err)
		}
		if _, err := a.groupPost(x.AccessToken, w.publicGroup, "in the group"); err != nil {
			t.Fatal(err)
		}
		a.post(x.AccessToken, "tagged #"+w.tag)
		must[flockv1.CreateCommentResponse](a, flockv1connect.PostServiceCreateCommentProcedure, x.AccessToken,
			&flockv1.CreateCommentRequest{PostId: w.commented, Content: "a comment"})

		// x invites the other (who is notified, with x as the actor) ...
		w.inviteGroup[x.ID] = a.createGroup(x.AccessToken, "invites of "+x.Username, flockv1.GroupPrivacy_GROUP_PRIVACY_PRIVATE).GetId()
		must[flockv1.AddGroupMemberResponse](a, flockv1connect.GroupServiceAddGroupMemberProcedure, x.AccessToken,
			&flockv1.AddGroupMemberRequest{GroupId: w.inviteGroup[x.ID], UserId: other.ID})
		// ... and the other asks to join x's other group.
		w.requestGroup[x.ID] = a.createGroup(x.AccessToken, "requests of "+x.Username, flockv1.GroupPrivacy_GROUP_PRIVACY_PRIVATE).GetId()
		if _, err := a.join(other.AccessToken, w.requestGroup[x.ID]); err != nil {
			t.Fatal(err)
		}
	}
	return w
}

func listMembers(a api, viewer *tu.Account, groupID string, state flockv1.GroupMembershipState) []string {
	return memberIDs(must[flockv1.ListGroupMembersResponse](a, flockv1connect.GroupServiceListGroupMembersProcedure, viewer.AccessToken,
		&flockv1.ListGroupMembersRequest{GroupId: groupID, State: state, PageSize: 100}).GetMembers())
}

func memberIDs(ms []*flockv1.GroupMember) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.GetUser().GetId()
	}
	return out
}

func authorIDs(ps []*flockv1.Post) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.GetAuthor().GetId()
	}
	return out
}
