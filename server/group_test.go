package server_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"

	"connectrpc.com/connect"

	flockv1 "github.com/flock-social/flock/gen/go/flock/v1"
	"github.com/flock-social/flock/gen/go/flock/v1/flockv1connect"
	tu "github.com/flock-social/flock/internal/testutil"
)

func (a api) createGroup(tok, name string, privacy flockv1.GroupPrivacy) *flockv1.Group {
	a.t.Helper()
	return must[flockv1.CreateGroupResponse](a, flockv1connect.GroupServiceCreateGroupProcedure, tok,
		&flockv1.CreateGroupRequest{Name: name, Description: "about " + name, Privacy: privacy}).GetGroup()
}

func (a api) join(tok, groupID string) (*flockv1.GroupMember, error) {
	res, err := call[flockv1.JoinGroupResponse](a, flockv1connect.GroupServiceJoinGroupProcedure, tok, &flockv1.JoinGroupRequest{GroupId: groupID})
	return res.GetMembership(), err
}

func (a api) groupPost(tok, groupID, content string) (*flockv1.Post, error) {
	res, err := call[flockv1.CreatePostResponse](a, flockv1connect.PostServiceCreatePostProcedure, tok, &flockv1.CreatePostRequest{Content: content, GroupId: groupID})
	return res.GetPost(), err
}

// Groups end to end on every transport, with property 6: a group's posts
// reach its members (the group's list, their feeds, GetPost) and nobody
// and nothing else (profiles, hashtags, non-members' feeds).
func TestGroups_PublicLifecycleAndPostPrivacy_P6(t *testing.T) {
	t.Parallel()
	forEachTransport(t, func(t *testing.T, a api) {
		owner, member, outsider := a.s.MustAccount(t, name(a, "gowner")), a.s.MustAccount(t, name(a, "gmember")), a.s.MustAccount(t, name(a, "goutsider"))
		g := a.createGroup(owner.AccessToken, "Gophers "+string(a.tr), flockv1.GroupPrivacy_GROUP_PRIVACY_UNSPECIFIED)
		if g.GetPrivacy() != flockv1.GroupPrivacy_GROUP_PRIVACY_PUBLIC || g.GetMyRole() != flockv1.GroupRole_GROUP_ROLE_OWNER || g.GetMembersCount() != 1 || g.GetOwnerId() != owner.ID {
			t.Fatalf("created group = %v", g)
		}
		m, err := a.join(member.AccessToken, g.GetId())
		if err != nil || m.GetState() != flockv1.GroupMembershipState_GROUP_MEMBERSHIP_STATE_ACTIVE || m.GetRole() != flockv1.GroupRole_GROUP_ROLE_MEMBER {
			t.Fatalf("join public = %v %v", m, err)
		}
		got := must[flockv1.GetGroupResponse](a, flockv1connect.GroupServiceGetGroupProcedure, outsider.AccessToken, &flockv1.GetGroupRequest{GroupId: g.GetId()})
		if got.GetGroup().GetMembersCount() != 2 || len(got.GetMembers()) != 2 || got.GetGroup().GetMyRole() != flockv1.GroupRole_GROUP_ROLE_UNSPECIFIED {
			t.Fatalf("outsider's view of a public group = %v", got)
		}
		mine := must[flockv1.ListGroupsResponse](a, flockv1connect.GroupServiceListGroupsProcedure, member.AccessToken, &flockv1.ListGroupsRequest{})
		if !slices.Equal(ids(mine.GetGroups()), []string{g.GetId()}) {
			t.Errorf("member's groups = %v", ids(mine.GetGroups()))
		}

		// The outsider follows the member, yet never sees the group post.
		if err := a.follow(outsider.AccessToken, member.ID); err != nil {
			t.Fatal(err)
		}
		tag := "grp" + string(a.tr)
		p, err := a.groupPost(member.AccessToken, g.GetId(), "inside #"+tag)
		if err != nil || p.GetGroupId() != g.GetId() || p.GetVisibility() != flockv1.Visibility_VISIBILITY_GROUP {
			t.Fatalf("group post = %v %v", p, err)
		}
		_, err = a.groupPost(outsider.AccessToken, g.GetId(), "let me in")
		wantCode(t, err, connect.CodePermissionDenied)
		_, err = a.groupPost(outsider.AccessToken, "01NOSUCHGROUP000000000000", "where")
		wantCode(t, err, connect.CodeNotFound)

		for _, who := range []string{owner.AccessToken, member.AccessToken} {
			if feed, _ := a.feed(who, 50, ""); !slices.Contains(ids(feed), p.GetId()) {
				t.Errorf("a member's feed lacks the group post")
			}
			if _, err := call[flockv1.GetPostResponse](a, flockv1connect.PostServiceGetPostProcedure, who, &flockv1.GetPostRequest{PostId: p.GetId()}); err != nil {
				t.Errorf("a member cannot read the group post: %v", err)
			}
			gp := must[flockv1.ListGroupPostsResponse](a, flockv1connect.GroupServiceListGroupPostsProcedure, who, &flockv1.ListGroupPostsRequest{GroupId: g.GetId()})
			if !slices.Equal(ids(gp.GetPosts()), []string{p.GetId()}) {
				t.Errorf("group posts = %v", ids(gp.GetPosts()))
			}
			if slices.Contains(ids(a.hashtag(who, tag)), p.GetId()) {
				t.Errorf("the group post is found by hashtag")
			}
			up := must[flockv1.ListUserPostsResponse](a, flockv1connect.UserServiceListUserPostsProcedure, who, &flockv1.ListUserPostsRequest{UserId: member.ID})
			if slices.Contains(ids(up.GetPosts()), p.GetId()) {
				t.Errorf("the group post is among the author's profile posts")
			}
		}
		if feed, _ := a.feed(outsider.AccessToken, 50, ""); slices.Contains(ids(feed), p.GetId()) {
			t.Errorf("the outsider's feed shows the group post")
		}
		for _, err := range []error{
			do[flockv1.GetPostResponse](a, flockv1connect.PostServiceGetPostProcedure, outsider.AccessToken, &flockv1.GetPostRequest{PostId: p.GetId()}),
			do[flockv1.LikePostResponse](a, flockv1connect.PostServiceLikePostProcedure, outsider.AccessToken, &flockv1.LikePostRequest{PostId: p.GetId()}),
			do[flockv1.CreateCommentResponse](a, flockv1connect.PostServiceCreateCommentProcedure, outsider.AccessToken, &flockv1.CreateCommentRequest{PostId: p.GetId(), Content: "hi"}),
			do[flockv1.ListCommentsResponse](a, flockv1connect.PostServiceListCommentsProcedure, outsider.AccessToken, &flockv1.ListCommentsRequest{PostId: p.GetId()}),
		} {
			wantCode(t, err, connect.CodeNotFound)
		}
		wantCode(t, do[flockv1.ListGroupPostsResponse](a, flockv1connect.GroupServiceListGroupPostsProcedure, outsider.AccessToken, &flockv1.ListGroupPostsRequest{GroupId: g.GetId()}), connect.CodePermissionDenied)

		// Settings: owner and admins only.
		wantCode(t, do[flockv1.UpdateGroupResponse](a, flockv1connect.GroupServiceUpdateGroupProcedure, member.AccessToken, &flockv1.UpdateGroupRequest{GroupId: g.GetId(), Name: new("mine")}), connect.CodePermissionDenied)
		upd := must[flockv1.UpdateGroupResponse](a, flockv1connect.GroupServiceUpdateGroupProcedure, owner.AccessToken, &flockv1.UpdateGroupRequest{GroupId: g.GetId(), Description: new("new words")})
		if upd.GetGroup().GetDescription() != "new words" || upd.GetGroup().GetName() != g.GetName() {
			t.Errorf("updated group = %v", upd.GetGroup())
		}

		// Leaving ends access; the owner cannot leave; only the owner deletes.
		must[flockv1.LeaveGroupResponse](a, flockv1connect.GroupServiceLeaveGroupProcedure, member.AccessToken, &flockv1.LeaveGroupRequest{GroupId: g.GetId()})
		wantCode(t, do[flockv1.GetPostResponse](a, flockv1connect.PostServiceGetPostProcedure, member.AccessToken, &flockv1.GetPostRequest{PostId: p.GetId()}), connect.CodeNotFound)
		wantCode(t, do[flockv1.LeaveGroupResponse](a, flockv1connect.GroupServiceLeaveGroupProcedure, owner.AccessToken, &flockv1.LeaveGroupRequest{GroupId: g.GetId()}), connect.CodeFailedPrecondition)
		wantCode(t, do[flockv1.DeleteGroupResponse](a, flockv1connect.GroupServiceDeleteGroupProcedure, member.AccessToken, &flockv1.DeleteGroupRequest{GroupId: g.GetId()}), connect.CodePermissionDenied)
		must[flockv1.DeleteGroupResponse](a, flockv1connect.GroupServiceDeleteGroupProcedure, owner.AccessToken, &flockv1.DeleteGroupRequest{GroupId: g.GetId()})
		wantCode(t, do[flockv1.GetGroupResponse](a, flockv1connect.GroupServiceGetGroupProcedure, owner.AccessToken, &flockv1.GetGroupRequest{GroupId: g.GetId()}), connect.CodeNotFound)
		if u, _ := a.user(owner.AccessToken, member.ID); u.GetPostsCount() != 0 {
			t.Errorf("the deleted group's post still counts: %d", u.GetPostsCount())
		}
	})
}

// SearchGroups finds groups by any part of their name, in any letter case,
// ranked exact name, prefix, word prefix, the rest, larger groups first in
// each tier; pages are the whole list in pieces; LIKE's wildcards in a query
// match themselves only; an empty query lists every group, largest first.
func TestSearchGroups_RanksNamesThenSizeAndPages(t *testing.T) {
	t.Parallel()
	forEachTransport(t, func(t *testing.T, a api) {
		owner, joiner := a.s.MustAccount(t, name(a, "sgowner")), a.s.MustAccount(t, name(a, "sgjoiner"))
		token := "qx" + string(a.tr) + "z" // in no other transport's names: subtests share a server
		mk := func(n string, privacy flockv1.GroupPrivacy, members int) *flockv1.Group {
			g := a.createGroup(owner.AccessToken, n, privacy)
			for i := range members - 1 {
				m := a.s.MustAccount(t, fmt.Sprintf("%s_m%d_%s", g.GetId()[20:], i, a.tr))
				if _, err := a.join(m.AccessToken, g.GetId()); err != nil {
					t.Fatal(err)
				}
			}
			return g
		}
		sub := mk("x"+token+"y", flockv1.GroupPrivacy_GROUP_PRIVACY_PRIVATE, 1)
		word := mk("The "+token+" circle", flockv1.GroupPrivacy_GROUP_PRIVACY_PUBLIC, 1)
		small := mk(token+" club", flockv1.GroupPrivacy_GROUP_PRIVACY_PUBLIC, 1)
		big := mk(token+"ers united", flockv1.GroupPrivacy_GROUP_PRIVACY_PUBLIC, 3)
		exact := mk(token, flockv1.GroupPrivacy_GROUP_PRIVACY_PUBLIC, 1)
		mk("Unrelated "+string(a.tr), flockv1.GroupPrivacy_GROUP_PRIVACY_PUBLIC, 1)
		if _, err := a.join(joiner.AccessToken, small.GetId()); err != nil {
			t.Fatal(err)
		}
		want := []string{exact.GetId(), big.GetId(), small.GetId(), word.GetId(), sub.GetId()}

		var got []string
		req := &flockv1.SearchGroupsRequest{Query: "  " + strings.ToUpper(token) + " ", PageSize: 2}
		for pages := 0; ; pages++ {
			if pages > 3 {
				t.Fatalf("still paging after 3 pages of 2 for 5 groups: %v", got)
			}
			res := must[flockv1.SearchGroupsResponse](a, flockv1connect.GroupServiceSearchGroupsProcedure, joiner.AccessToken, req)
			for _, g := range res.GetGroups() {
				got = append(got, g.GetId())
				if mine := g.GetMyMembershipState() == flockv1.GroupMembershipState_GROUP_MEMBERSHIP_STATE_ACTIVE; mine != (g.GetId() == small.GetId()) {
					t.Errorf("group %q: myMembershipState %v", g.GetName(), g.GetMyMembershipState())
				}
			}
			if res.GetNextPageToken() == "" {
				break
			}
			req.PageToken = res.GetNextPageToken()
		}
		if !slices.Equal(got, want) {
			t.Errorf("search %q = %v, want exact, prefix (3 members, then 1), word prefix, substring: %v", token, got, want)
		}

		for _, q := range []string{token + "%", "_" + token, token + "!"} {
			res := must[flockv1.SearchGroupsResponse](a, flockv1connect.GroupServiceSearchGroupsProcedure, joiner.AccessToken, &flockv1.SearchGroupsRequest{Query: q})
			if len(res.GetGroups()) != 0 {
				t.Errorf("search %q matched %v: a wildcard matched more than itself", q, ids(res.GetGroups()))
			}
		}

		all := must[flockv1.SearchGroupsResponse](a, flockv1connect.GroupServiceSearchGroupsProcedure, joiner.AccessToken, &flockv1.SearchGroupsRequest{PageSize: 100})
		if len(all.GetGroups()) < 6 {
			t.Errorf("every group: %d listed, want at least this transport's 6", len(all.GetGroups()))
		}
		for i := 1; i < len(all.GetGroups()); i++ {
			if prev, g := all.GetGroups()[i-1], all.GetGroups()[i]; g.GetMembersCount() > prev.GetMembersCount() {
				t.Errorf("every group: %q (%d members) after %q (%d)", g.GetName(), g.GetMembersCount(), prev.GetName(), prev.GetMembersCount())
			}
		}

		// Paged two at a time, every group of this transport comes once (the
		// other transports' groups may change size meanwhile).
		seen := map[string]int{}
		for req, pages := (&flockv1.SearchGroupsRequest{PageSize: 2}), 0; ; pages++ {
			if pages > 200 {
				t.Fatal("every group: still paging after 200 pages")
			}
			res := must[flockv1.SearchGroupsResponse](a, flockv1connect.GroupServiceSearchGroupsProcedure, joiner.AccessToken, req)
			for _, g := range res.GetGroups() {
				seen[g.GetId()]++
			}
			if req.PageToken = res.GetNextPageToken(); req.PageToken == "" {
				break
			}
		}
		for _, id := range want {
			if seen[id] != 1 {
				t.Errorf("every group, in pages of 2: group %s came %d times", id, seen[id])
			}
		}

		wantCode(t, do[flockv1.SearchGroupsResponse](a, flockv1connect.GroupServiceSearchGroupsProcedure, joiner.AccessToken,
			&flockv1.SearchGroupsRequest{Query: strings.Repeat("g", 101)}), connect.CodeInvalidArgument)

		// A page token belongs to its query: kept after the query changed
		// (or was cleared) it is refused, not a wrong page or a 500 (a
		// search's scores are past a members count).
		first := must[flockv1.SearchGroupsResponse](a, flockv1connect.GroupServiceSearchGroupsProcedure, joiner.AccessToken, &flockv1.SearchGroupsRequest{Query: token, PageSize: 1})
		for _, other := range []string{"", token + "x"} {
			wantCode(t, do[flockv1.SearchGroupsResponse](a, flockv1connect.GroupServiceSearchGroupsProcedure, joiner.AccessToken,
				&flockv1.SearchGroupsRequest{Query: other, PageToken: first.GetNextPageToken()}), connect.CodeInvalidArgument)
		}

		// Any letter case in any script, on both engines (SQLite's own
		// lower() folds ASCII only).
		umlaut := mk("Ärzte-"+string(a.tr)+"-ü", flockv1.GroupPrivacy_GROUP_PRIVACY_PUBLIC, 1)
		// A query typed decomposed (a + U+0308, as macOS may send it) finds
		// it too, and a name typed so is stored composed: text is taken in
		// normalization form C.
		for _, q := range []string{"ärzte-" + string(a.tr) + "-Ü", "ÄRZTE-" + strings.ToUpper(string(a.tr)) + "-Ü", "a\u0308rzte-" + string(a.tr) + "-U\u0308"} {
			res := must[flockv1.SearchGroupsResponse](a, flockv1connect.GroupServiceSearchGroupsProcedure, joiner.AccessToken, &flockv1.SearchGroupsRequest{Query: q})
			if !slices.Equal(ids(res.GetGroups()), []string{umlaut.GetId()}) {
				t.Errorf("search %q = %v, want the group %q", q, ids(res.GetGroups()), umlaut.GetName())
			}
		}
		if g := a.createGroup(owner.AccessToken, "A\u0308rzte "+token, 0); g.GetName() != "\u00c4rzte "+token {
			t.Errorf("a decomposed name was stored as %+q, want it composed", g.GetName())
		}
	})
}

func TestGroups_PrivateRequestsInvitesAndRoles(t *testing.T) {
	t.Parallel()
	forEachTransport(t, func(t *testing.T, a api) {
		owner, asker, invitee, outsider := a.s.MustAccount(t, name(a, "powner")), a.s.MustAccount(t, name(a, "pasker")), a.s.MustAccount(t, name(a, "pinvitee")), a.s.MustAccount(t, name(a, "pout"))
		g := a.createGroup(owner.AccessToken, "Secret "+string(a.tr), flockv1.GroupPrivacy_GROUP_PRIVACY_PRIVATE)

		m, err := a.join(asker.AccessToken, g.GetId())
		if err != nil || m.GetState() != flockv1.GroupMembershipState_GROUP_MEMBERSHIP_STATE_REQUESTED {
			t.Fatalf("join private = %v %v", m, err)
		}
		if got := types(a.notifications(owner.AccessToken).GetNotifications()); !slices.Equal(got, []string{"GROUP_JOIN_REQUEST"}) {
			t.Errorf("owner's notifications = %v", got)
		}
		// Not yet a member: no posts, no member list.
		wantCode(t, do[flockv1.ListGroupPostsResponse](a, flockv1connect.GroupServiceListGroupPostsProcedure, asker.AccessToken, &flockv1.ListGroupPostsRequest{GroupId: g.GetId()}), connect.CodePermissionDenied)
		wantCode(t, do[flockv1.ListGroupMembersResponse](a, flockv1connect.GroupServiceListGroupMembersProcedure, outsider.AccessToken, &flockv1.ListGroupMembersRequest{GroupId: g.GetId()}), connect.CodePermissionDenied)
		if got := must[flockv1.GetGroupResponse](a, flockv1connect.GroupServiceGetGroupProcedure, outsider.AccessToken, &flockv1.GetGroupRequest{GroupId: g.GetId()}); len(got.GetMembers()) != 0 {
			t.Errorf("an outsider sees the members of a private group")
		}
		requests := must[flockv1.ListGroupMembersResponse](a, flockv1connect.GroupServiceListGroupMembersProcedure, owner.AccessToken,
			&flockv1.ListGroupMembersRequest{GroupId: g.GetId(), State: flockv1.GroupMembershipState_GROUP_MEMBERSHIP_STATE_REQUESTED})
		if len(requests.GetMembers()) != 1 || requests.GetMembers()[0].GetUser().GetId() != asker.ID {
			t.Errorf("requests = %v", requests.GetMembers())
		}

		// Approve the request; invite someone, who accepts.
		add := func(tok, userID string, role flockv1.GroupRole) (*flockv1.GroupMember, error) {
			res, err := call[flockv1.AddGroupMemberResponse](a, flockv1connect.GroupServiceAddGroupMemberProcedure, tok, &flockv1.AddGroupMemberRequest{GroupId: g.GetId(), UserId: userID, Role: role})
			return res.GetMembership(), err
		}
		if m, err := add(owner.AccessToken, asker.ID, 0); err != nil || m.GetState() != flockv1.GroupMembershipState_GROUP_MEMBERSHIP_STATE_ACTIVE {
			t.Fatalf("approve = %v %v", m, err)
		}
		if m, err := add(owner.AccessToken, invitee.ID, 0); err != nil || m.GetState() != flockv1.GroupMembershipState_GROUP_MEMBERSHIP_STATE_INVITED {
			t.Fatalf("invite = %v %v", m, err)
		}
		if got := types(a.notifications(invitee.AccessToken).GetNotifications()); !slices.Equal(got, []string{"GROUP_INVITE"}) {
			t.Errorf("invitee's notifications = %v", got)
		}
		if m, err := a.join(invitee.AccessToken, g.GetId()); err != nil || m.GetState() != flockv1.GroupMembershipState_GROUP_MEMBERSHIP_STATE_ACTIVE {
			t.Fatalf("accept invitation = %v %v", m, err)
		}
		if got := must[flockv1.GetGroupResponse](a, flockv1connect.GroupServiceGetGroupProcedure, asker.AccessToken, &flockv1.GetGroupRequest{GroupId: g.GetId()}); got.GetGroup().GetMembersCount() != 3 || len(got.GetMembers()) != 3 {
			t.Errorf("members = %d listed %d", got.GetGroup().GetMembersCount(), len(got.GetMembers()))
		}

		// Roles: only the owner makes admins; admins manage members but not admins or the owner.
		_, err = add(asker.AccessToken, outsider.ID, 0)
		wantCode(t, err, connect.CodePermissionDenied)
		must[flockv1.UpdateGroupMemberResponse](a, flockv1connect.GroupServiceUpdateGroupMemberProcedure, owner.AccessToken,
			&flockv1.UpdateGroupMemberRequest{GroupId: g.GetId(), UserId: asker.ID, Role: flockv1.GroupRole_GROUP_ROLE_ADMIN})
		_, err = add(asker.AccessToken, outsider.ID, flockv1.GroupRole_GROUP_ROLE_ADMIN)
		wantCode(t, err, connect.CodePermissionDenied)
		remove := func(tok, userID string) error {
			return do[flockv1.RemoveGroupMemberResponse](a, flockv1connect.GroupServiceRemoveGroupMemberProcedure, tok, &flockv1.RemoveGroupMemberRequest{GroupId: g.GetId(), UserId: userID})
		}
		wantCode(t, remove(asker.AccessToken, owner.ID), connect.CodePermissionDenied)
		if err := remove(asker.AccessToken, invitee.ID); err != nil {
			t.Errorf("an admin cannot remove a member: %v", err)
		}
		wantCode(t, remove(invitee.AccessToken, asker.ID), connect.CodePermissionDenied)
		if got := must[flockv1.GetGroupResponse](a, flockv1connect.GroupServiceGetGroupProcedure, owner.AccessToken, &flockv1.GetGroupRequest{GroupId: g.GetId()}); got.GetGroup().GetMembersCount() != 2 {
			t.Errorf("members after a removal = %d", got.GetGroup().GetMembersCount())
		}
		// Group actions reach the activity log: a join is in the joiner's,
		// by invitation and by an approved request alike.
		act := must[flockv1.ListActivityResponse](a, flockv1connect.ActivityServiceListActivityProcedure, owner.AccessToken, &flockv1.ListActivityRequest{})
		if got := types(act.GetActivities()); !slices.Contains(got, "GROUP_CREATED") {
			t.Errorf("owner's activity = %v", got)
		}
		for name, acc := range map[string]*tu.Account{"invitee": invitee, "asker": asker} {
			act := must[flockv1.ListActivityResponse](a, flockv1connect.ActivityServiceListActivityProcedure, acc.AccessToken, &flockv1.ListActivityRequest{})
			if got := types(act.GetActivities()); !slices.Contains(got, "GROUP_JOINED") {
				t.Errorf("%s's activity = %v, want GROUP_JOINED", name, got)
			}
		}
	})
}

// Members join at once (each a separate request and transaction) and the
// count of members stays right.
func TestGroups_ConcurrentJoinsCountedOnce(t *testing.T) {
	t.Parallel()
	forEachServer(t, func(t *testing.T, s *tu.Server) {
		a := api{t: t, s: s, tr: tu.Connect}
		owner := s.MustAccount(t, "crowdowner")
		g := a.createGroup(owner.AccessToken, "Crowd", flockv1.GroupPrivacy_GROUP_PRIVACY_PUBLIC)
		joiners := make([]*tu.Account, 8)
		for i := range joiners {
			joiners[i] = s.MustAccount(t, fmt.Sprintf("joiner%d", i))
		}
		var wg sync.WaitGroup
		for _, j := range joiners {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 2 { // joining twice changes nothing
					if _, err := tu.Call[flockv1.JoinGroupResponse](t.Context(), s, tu.Connect, flockv1connect.GroupServiceJoinGroupProcedure, j.AccessToken, &flockv1.JoinGroupRequest{GroupId: g.GetId()}); err != nil {
						t.Errorf("join: %v", err)
					}
				}
			}()
		}
		wg.Wait()
		got := must[flockv1.GetGroupResponse](a, flockv1connect.GroupServiceGetGroupProcedure, owner.AccessToken, &flockv1.GetGroupRequest{GroupId: g.GetId(), PageSize: 100})
		if got.GetGroup().GetMembersCount() != int32(len(joiners)+1) || len(got.GetMembers()) != len(joiners)+1 {
			t.Fatalf("membersCount = %d, listed %d, want %d", got.GetGroup().GetMembersCount(), len(got.GetMembers()), len(joiners)+1)
		}
	})
}

// GetGroup answers a nextPageToken, and takes it back: a client that pages
// GetGroup as it pages every list gets each member once (it took no token,
// so such a client read its first page forever), and ListGroupMembers
// takes the same token.
func TestGetGroup_PagesItsMembersWithItsOwnToken(t *testing.T) {
	t.Parallel()
	s := tu.MustServer(t, "sqlite")
	a := api{t: t, s: s, tr: tu.Connect}
	owner := s.MustAccount(t, "pagedowner")
	g := a.createGroup(owner.AccessToken, "Paged", flockv1.GroupPrivacy_GROUP_PRIVACY_PUBLIC)
	want := map[string]bool{owner.ID: true}
	for i := range 4 {
		m := s.MustAccount(t, fmt.Sprintf("paged%d", i))
		if _, err := a.join(m.AccessToken, g.GetId()); err != nil {
			t.Fatal(err)
		}
		want[m.ID] = true
	}
	for _, next := range []string{"/api/groups/%s/?pageSize=2&pageToken=%s", "/api/groups/%s/members/?pageSize=2&pageToken=%s"} {
		seen := map[string]bool{}
		path := fmt.Sprintf("/api/groups/%s/?pageSize=2", g.GetId())
		for pages := 0; path != ""; pages++ {
			if pages > 5 {
				t.Fatalf("paging with %q: still going after 5 pages of 2 for 5 members", next)
			}
			status, out := send(t, s.HTTP, http.MethodGet, s.URL+path, "", owner.AccessToken, nil)
			var page struct {
				Members []struct {
					User struct{ ID string }
				}
				NextPageToken string
			}
			if err := json.Unmarshal([]byte(out), &page); status != http.StatusOK || err != nil {
				t.Fatalf("GET %s: %d %s", path, status, out)
			}
			for _, m := range page.Members {
				if seen[m.User.ID] {
					t.Errorf("paging with %q: member %s twice", next, m.User.ID)
				}
				seen[m.User.ID] = true
			}
			path = ""
			if page.NextPageToken != "" {
				path = fmt.Sprintf(next, g.GetId(), url.QueryEscape(page.NextPageToken))
			}
		}
		if len(seen) != len(want) {
			t.Errorf("paging with %q: %d members of %d", next, len(seen), len(want))
		}
	}
}
