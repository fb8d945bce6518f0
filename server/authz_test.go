package server_test

import (
	"context"
	"fmt"
	"testing"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	flockv1 "github.com/flock-social/flock/gen/go/flock/v1"
	"github.com/flock-social/flock/gen/go/flock/v1/flockv1connect"
	"github.com/flock-social/flock/internal/store"
	tu "github.com/flock-social/flock/internal/testutil"
)

// Roles of the authorization table.
const (
	owner     = "owner"     // wrote the object
	other     = "other"     // a signed-in stranger (does not follow the owner)
	blocked   = "blocked"   // blocked by the owner
	anonymous = "anonymous" // no token
	staff     = "staff"     // a moderator: no special rights over content here
)

var roles = []string{owner, other, blocked, anonymous, staff}

// objects are made fresh for each call, so that a delete in one row cannot
// change another row's answer.
type objects struct {
	privatePost *flockv1.Post // followers only
	publicPost  *flockv1.Post
	comment     *flockv1.Comment // the owner's, on publicPost
	ownerID     string
}

// ok marks an allowed call.
const ok = connect.Code(0)

// P1: every route of the social core that takes an id, for every role, on
// every transport: others cannot read private objects (404) nor edit or
// delete anyone's (403 when they can see it, 404 when they cannot).
func TestAuthorization_EveryRouteEveryRole_P1(t *testing.T) {
	t.Parallel()
	routes := []struct {
		name   string
		call   func(a api, tok string, o objects) error
		expect map[string]connect.Code
	}{
		{"GetPost(private)", func(a api, tok string, o objects) error {
			return do[flockv1.GetPostResponse](a, flockv1connect.PostServiceGetPostProcedure, tok, &flockv1.GetPostRequest{PostId: o.privatePost.GetId()})
		}, map[string]connect.Code{owner: ok, other: connect.CodeNotFound, blocked: connect.CodeNotFound, anonymous: connect.CodeUnauthenticated, staff: connect.CodeNotFound}},
		{"GetPost(public)", func(a api, tok string, o objects) error {
			return do[flockv1.GetPostResponse](a, flockv1connect.PostServiceGetPostProcedure, tok, &flockv1.GetPostRequest{PostId: o.publicPost.GetId()})
		}, map[string]connect.Code{owner: ok, other: ok, blocked: connect.CodeNotFound, anonymous: connect.CodeUnauthenticated, staff: ok}},
		{"UpdatePost", func(a api, tok string, o objects) error {
			return do[flockv1.UpdatePostResponse](a, flockv1connect.PostServiceUpdatePostProcedure, tok, &flockv1.UpdatePostRequest{PostId: o.publicPost.GetId(), Content: "edited"})
		}, map[string]connect.Code{owner: ok, other: connect.CodePermissionDenied, blocked: connect.CodeNotFound, anonymous: connect.CodeUnauthenticated, staff: connect.CodePermissionDenied}},
		{"UpdatePost(private)", func(a api, tok string, o objects) error {
			return do[flockv1.UpdatePostResponse](a, flockv1connect.PostServiceUpdatePostProcedure, tok, &flockv1.UpdatePostRequest{PostId: o.privatePost.GetId(), Content: "edited"})
		}, map[string]connect.Code{owner: ok, other: connect.CodeNotFound, blocked: connect.CodeNotFound, anonymous: connect.CodeUnauthenticated, staff: connect.CodeNotFound}},
		{"DeletePost", func(a api, tok string, o objects) error {
			return do[flockv1.DeletePostResponse](a, flockv1connect.PostServiceDeletePostProcedure, tok, &flockv1.DeletePostRequest{PostId: o.publicPost.GetId()})
		}, map[string]connect.Code{owner: ok, other: connect.CodePermissionDenied, blocked: connect.CodeNotFound, anonymous: connect.CodeUnauthenticated, staff: connect.CodePermissionDenied}},
		{"LikePost(private)", func(a api, tok string, o objects) error {
			return do[flockv1.LikePostResponse](a, flockv1connect.PostServiceLikePostProcedure, tok, &flockv1.LikePostRequest{PostId: o.privatePost.GetId()})
		}, map[string]connect.Code{owner: ok, other: connect.CodeNotFound, blocked: connect.CodeNotFound, anonymous: connect.CodeUnauthenticated, staff: connect.CodeNotFound}},
		{"UnlikePost(private)", func(a api, tok string, o objects) error {
			return do[flockv1.UnlikePostResponse](a, flockv1connect.PostServiceUnlikePostProcedure, tok, &flockv1.UnlikePostRequest{PostId: o.privatePost.GetId()})
		}, map[string]connect.Code{owner: ok, other: connect.CodeNotFound, blocked: connect.CodeNotFound, anonymous: connect.CodeUnauthenticated, staff: connect.CodeNotFound}},
		{"CreateComment(private)", func(a api, tok string, o objects) error {
			return do[flockv1.CreateCommentResponse](a, flockv1connect.PostServiceCreateCommentProcedure, tok, &flockv1.CreateCommentRequest{PostId: o.privatePost.GetId(), Content: "hi"})
		}, map[string]connect.Code{owner: ok, other: connect.CodeNotFound, blocked: connect.CodeNotFound, anonymous: connect.CodeUnauthenticated, staff: connect.CodeNotFound}},
		{"ListComments(private)", func(a api, tok string, o objects) error {
			return do[flockv1.ListCommentsResponse](a, flockv1connect.PostServiceListCommentsProcedure, tok, &flockv1.ListCommentsRequest{PostId: o.privatePost.GetId()})
		}, map[string]connect.Code{owner: ok, other: connect.CodeNotFound, blocked: connect.CodeNotFound, anonymous: connect.CodeUnauthenticated, staff: connect.CodeNotFound}},
		{"DeleteComment", func(a api, tok string, o objects) error {
			return do[flockv1.DeleteCommentResponse](a, flockv1connect.PostServiceDeleteCommentProcedure, tok, &flockv1.DeleteCommentRequest{PostId: o.publicPost.GetId(), CommentId: o.comment.GetId()})
		}, map[string]connect.Code{owner: ok, other: connect.CodePermissionDenied, blocked: connect.CodeNotFound, anonymous: connect.CodeUnauthenticated, staff: connect.CodePermissionDenied}},
		{"GetUser", func(a api, tok string, o objects) error {
			return do[flockv1.GetUserResponse](a, flockv1connect.UserServiceGetUserProcedure, tok, &flockv1.GetUserRequest{UserId: o.ownerID})
		}, map[string]connect.Code{owner: ok, other: ok, blocked: connect.CodeNotFound, anonymous: connect.CodeUnauthenticated, staff: ok}},
		{"ListUserPosts", func(a api, tok string, o objects) error {
			return do[flockv1.ListUserPostsResponse](a, flockv1connect.UserServiceListUserPostsProcedure, tok, &flockv1.ListUserPostsRequest{UserId: o.ownerID})
		}, map[string]connect.Code{owner: ok, other: ok, blocked: connect.CodeNotFound, anonymous: connect.CodeUnauthenticated, staff: ok}},
		{"ListFollowers", func(a api, tok string, o objects) error {
			return do[flockv1.ListFollowersResponse](a, flockv1connect.UserServiceListFollowersProcedure, tok, &flockv1.ListFollowersRequest{UserId: o.ownerID})
		}, map[string]connect.Code{owner: ok, other: ok, blocked: connect.CodeNotFound, anonymous: connect.CodeUnauthenticated, staff: ok}},
		{"ListFollowing", func(a api, tok string, o objects) error {
			return do[flockv1.ListFollowingResponse](a, flockv1connect.UserServiceListFollowingProcedure, tok, &flockv1.ListFollowingRequest{UserId: o.ownerID})
		}, map[string]connect.Code{owner: ok, other: ok, blocked: connect.CodeNotFound, anonymous: connect.CodeUnauthenticated, staff: ok}},
		{"Follow(owner)", func(a api, tok string, o objects) error {
			return do[flockv1.FollowResponse](a, flockv1connect.UserServiceFollowProcedure, tok, &flockv1.FollowRequest{UserId: o.ownerID})
		}, map[string]connect.Code{owner: connect.CodeInvalidArgument, blocked: connect.CodeNotFound, anonymous: connect.CodeUnauthenticated}},
		{"Block(owner)", func(a api, tok string, o objects) error {
			return do[flockv1.BlockResponse](a, flockv1connect.UserServiceBlockProcedure, tok, &flockv1.BlockRequest{UserId: o.ownerID})
		}, map[string]connect.Code{owner: connect.CodeInvalidArgument, anonymous: connect.CodeUnauthenticated}},
		{"ListFeed", func(a api, tok string, o objects) error {
			return do[flockv1.ListFeedResponse](a, flockv1connect.PostServiceListFeedProcedure, tok, &flockv1.ListFeedRequest{})
		}, map[string]connect.Code{owner: ok, other: ok, anonymous: connect.CodeUnauthenticated}},
		{"SearchPosts", func(a api, tok string, o objects) error {
			return do[flockv1.SearchPostsResponse](a, flockv1connect.PostServiceSearchPostsProcedure, tok, &flockv1.SearchPostsRequest{Hashtag: "x"})
		}, map[string]connect.Code{owner: ok, anonymous: connect.CodeUnauthenticated}},
		{"SearchUsers", func(a api, tok string, o objects) error {
			return do[flockv1.SearchUsersResponse](a, flockv1connect.UserServiceSearchUsersProcedure, tok, &flockv1.SearchUsersRequest{Query: "x"})
		}, map[string]connect.Code{owner: ok, anonymous: connect.CodeUnauthenticated}},
		{"SuggestUsers", func(a api, tok string, o objects) error {
			return do[flockv1.SuggestUsersResponse](a, flockv1connect.UserServiceSuggestUsersProcedure, tok, &flockv1.SuggestUsersRequest{})
		}, map[string]connect.Code{owner: ok, other: ok, anonymous: connect.CodeUnauthenticated}},
		{"ListBlocks", func(a api, tok string, o objects) error {
			return do[flockv1.ListBlocksResponse](a, flockv1connect.UserServiceListBlocksProcedure, tok, &flockv1.ListBlocksRequest{})
		}, map[string]connect.Code{owner: ok, anonymous: connect.CodeUnauthenticated}},
	}

	forEachTransport(t, func(t *testing.T, a api) {
		accounts := map[string]*tu.Account{}
		for _, r := range []string{owner, other, blocked, staff} {
			accounts[r] = a.s.MustAccount(t, name(a, r))
		}
		if _, err := a.s.App.DB().SetUserRole(context.Background(), a.s.App.DB(), accounts[staff].Username, store.RoleStaff); err != nil {
			t.Fatal(err)
		}
		must[flockv1.BlockResponse](a, flockv1connect.UserServiceBlockProcedure, accounts[owner].AccessToken, &flockv1.BlockRequest{UserId: accounts[blocked].ID})
		fresh := func() objects {
			tok := accounts[owner].AccessToken
			pub := a.post(tok, "public")
			c := must[flockv1.CreateCommentResponse](a, flockv1connect.PostServiceCreateCommentProcedure, tok, &flockv1.CreateCommentRequest{PostId: pub.GetId(), Content: "mine"})
			return objects{privatePost: a.post(tok, "private", flockv1.Visibility_VISIBILITY_FOLLOWERS), publicPost: pub, comment: c.GetComment(), ownerID: accounts[owner].ID}
		}
		for _, r := range routes {
			for _, role := range roles {
				want, tested := r.expect[role]
				if !tested {
					continue
				}
				tok := ""
				if acc := accounts[role]; acc != nil {
					tok = acc.AccessToken
				}
				err := r.call(a, tok, fresh())
				if got := connect.CodeOf(err); (want == ok && err != nil) || (want != ok && got != want) {
					t.Errorf("%s as %s: got %v, want %s", r.name, role, err, codeName(want))
				}
			}
		}
	})
}

func codeName(c connect.Code) string {
	if c == ok {
		return "success"
	}
	return fmt.Sprint(c)
}

func do[Res any, ResPtr interface {
	*Res
	proto.Message
}](a api, procedure, token string, req proto.Message) error {
	_, err := call[Res, ResPtr](a, procedure, token, req)
	return err
}
