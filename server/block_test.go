package server_test

import (
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"connectrpc.com/connect"

	flockv1 "github.com/flock-social/flock/gen/go/flock/v1"
	"github.com/flock-social/flock/gen/go/flock/v1/flockv1connect"
	tu "github.com/flock-social/flock/internal/testutil"
)

// P4: after A blocks B, follows both ways are gone and cannot come back,
// and neither sees the other in profiles, feeds, user posts, lists, search,
// hashtags or comments; no like or comment crosses the block.
func TestBlock_HidesBothWays_P4(t *testing.T) {
	t.Parallel()
	forEachTransport(t, func(t *testing.T, a api) {
		blocker, blocked, third := a.s.MustAccount(t, name(a, "blocker")), a.s.MustAccount(t, name(a, "blocked")), a.s.MustAccount(t, name(a, "third"))
		tag := "blk" + string(a.tr)
		for _, pair := range [][2]*tu.Account{{blocker, blocked}, {blocked, blocker}, {blocker, third}, {blocked, third}} {
			if err := a.follow(pair[0].AccessToken, pair[1].ID); err != nil {
				t.Fatal(err)
			}
		}
		byBlocker := a.post(blocker.AccessToken, "from the blocker #"+tag)
		byBlocked := a.post(blocked.AccessToken, "from the blocked #"+tag)
		thirds := a.post(third.AccessToken, "neutral ground #"+tag)
		must[flockv1.CreateCommentResponse](a, flockv1connect.PostServiceCreateCommentProcedure, blocked.AccessToken,
			&flockv1.CreateCommentRequest{PostId: thirds.GetId(), Content: "blocked user's comment"})

		for range 2 { // blocking twice succeeds
			must[flockv1.BlockResponse](a, flockv1connect.UserServiceBlockProcedure, blocker.AccessToken, &flockv1.BlockRequest{UserId: blocked.ID})
		}

		// Follows are gone both ways, counts follow, and cannot be re-created either way.
		if u, _ := a.user(blocker.AccessToken, blocker.ID); u.GetFollowersCount() != 0 || u.GetFollowingCount() != 1 {
			t.Errorf("blocker counts = %d followers %d following", u.GetFollowersCount(), u.GetFollowingCount())
		}
		wantCode(t, a.follow(blocked.AccessToken, blocker.ID), connect.CodeNotFound)
		// The blocker is told why and what to do; the blocked side is not told of the block.
		if err := a.follow(blocker.AccessToken, blocked.ID); connect.CodeOf(err) != connect.CodeNotFound || !strings.Contains(err.Error(), "you have blocked this user") || !strings.Contains(err.Error(), "unblock") {
			t.Errorf("the blocker following the blocked: %v, want not_found saying to unblock first", err)
		}
		if err := a.follow(blocked.AccessToken, blocker.ID); err != nil && strings.Contains(err.Error(), "block") {
			t.Errorf("the blocked user's refusal mentions the block: %v", err)
		}
		// So for adding each other to a group.
		for _, c := range []struct {
			by, other *tu.Account
			told      bool
		}{{blocker, blocked, true}, {blocked, blocker, false}} {
			g := a.createGroup(c.by.AccessToken, "club of "+c.by.Username, flockv1.GroupPrivacy_GROUP_PRIVACY_PRIVATE)
			err := do[flockv1.AddGroupMemberResponse](a, flockv1connect.GroupServiceAddGroupMemberProcedure, c.by.AccessToken,
				&flockv1.AddGroupMemberRequest{GroupId: g.GetId(), UserId: c.other.ID})
			if connect.CodeOf(err) != connect.CodeNotFound || strings.Contains(err.Error(), "you have blocked this user") != c.told || strings.Contains(err.Error(), "block") != c.told {
				t.Errorf("%s adding %s to a group: %v; want not_found, naming the block only to the blocker", c.by.Username, c.other.Username, err)
			}
		}

		// Profiles: the blocked user cannot see the blocker; the blocker sees blockedByMe.
		_, err := a.user(blocked.AccessToken, blocker.ID)
		wantCode(t, err, connect.CodeNotFound)
		if u, err := a.user(blocker.AccessToken, blocked.ID); err != nil || !u.GetBlockedByMe() {
			t.Errorf("blocker's view of blocked = %v %v, want blockedByMe", u, err)
		}

		for _, side := range []struct {
			who   *tu.Account
			other *tu.Account
			their *flockv1.Post
		}{{blocker, blocked, byBlocked}, {blocked, blocker, byBlocker}} {
			tok := side.who.AccessToken
			feed, _ := a.feed(tok, 100, "")
			if slices.Contains(ids(feed), side.their.GetId()) {
				t.Errorf("%s's feed shows %s's post", side.who.Username, side.other.Username)
			}
			if slices.Contains(ids(a.hashtag(tok, tag)), side.their.GetId()) {
				t.Errorf("%s finds %s's post by hashtag", side.who.Username, side.other.Username)
			}
			if slices.Contains(ids(a.search(tok, side.other.Username)), side.other.ID) {
				t.Errorf("%s finds %s in user search", side.who.Username, side.other.Username)
			}
			_, err := call[flockv1.GetPostResponse](a, flockv1connect.PostServiceGetPostProcedure, tok, &flockv1.GetPostRequest{PostId: side.their.GetId()})
			wantCode(t, err, connect.CodeNotFound)
			_, err = call[flockv1.LikePostResponse](a, flockv1connect.PostServiceLikePostProcedure, tok, &flockv1.LikePostRequest{PostId: side.their.GetId()})
			wantCode(t, err, connect.CodeNotFound)
			_, err = call[flockv1.CreateCommentResponse](a, flockv1connect.PostServiceCreateCommentProcedure, tok,
				&flockv1.CreateCommentRequest{PostId: side.their.GetId(), Content: "across the block"})
			wantCode(t, err, connect.CodeNotFound)
			_, err = call[flockv1.ListUserPostsResponse](a, flockv1connect.UserServiceListUserPostsProcedure, tok, &flockv1.ListUserPostsRequest{UserId: side.other.ID})
			if side.who == blocked {
				wantCode(t, err, connect.CodeNotFound)
			} else if res, _ := call[flockv1.ListUserPostsResponse](a, flockv1connect.UserServiceListUserPostsProcedure, tok, &flockv1.ListUserPostsRequest{UserId: side.other.ID}); len(res.GetPosts()) != 0 {
				t.Errorf("blocker lists the blocked user's posts")
			}
			// Lists of a third user: the other one is left out.
			followers := must[flockv1.ListFollowersResponse](a, flockv1connect.UserServiceListFollowersProcedure, tok, &flockv1.ListFollowersRequest{UserId: third.ID})
			if slices.Contains(ids(followers.GetUsers()), side.other.ID) {
				t.Errorf("%s sees %s among the third user's followers", side.who.Username, side.other.Username)
			}
			// Comments on a third user's post: the blocked user's comment is hidden from the blocker.
			comments := must[flockv1.ListCommentsResponse](a, flockv1connect.PostServiceListCommentsProcedure, tok, &flockv1.ListCommentsRequest{PostId: thirds.GetId()})
			for _, c := range comments.GetComments() {
				if c.GetAuthor().GetId() == side.other.ID {
					t.Errorf("%s sees a comment by %s", side.who.Username, side.other.Username)
				}
			}
		}
		blocks := must[flockv1.ListBlocksResponse](a, flockv1connect.UserServiceListBlocksProcedure, blocker.AccessToken, &flockv1.ListBlocksRequest{})
		if !slices.Equal(ids(blocks.GetUsers()), []string{blocked.ID}) || !blocks.GetUsers()[0].GetBlockedByMe() {
			t.Errorf("block list = %v", blocks.GetUsers())
		}

		// Unblock: content is visible again and following is possible (follows are not restored).
		for range 2 {
			must[flockv1.UnblockResponse](a, flockv1connect.UserServiceUnblockProcedure, blocker.AccessToken, &flockv1.UnblockRequest{UserId: blocked.ID})
		}
		if err := a.follow(blocked.AccessToken, blocker.ID); err != nil {
			t.Errorf("follow after unblock: %v", err)
		}
		if u, _ := a.user(blocker.AccessToken, blocked.ID); u.GetFollowedByMe() || !u.GetFollowsMe() {
			t.Errorf("after unblock = %v", u)
		}
	})
}

// P18: a create retried with the same Idempotency-Key returns the first
// result, also when the retries race; the same key for another request is
// refused.
func TestIdempotencyKey_RetryReturnsFirstResult_P18(t *testing.T) {
	t.Parallel()
	forEachServer(t, func(t *testing.T, s *tu.Server) {
		a := s.MustAccount(t, "retrier")
		create := func(tr tu.Transport, key, content string) (*flockv1.Post, error) {
			client := connect.NewClient[flockv1.CreatePostRequest, flockv1.CreatePostResponse](s.HTTP, s.URL+flockv1connect.PostServiceCreatePostProcedure)
			if tr == tu.GRPC {
				client = connect.NewClient[flockv1.CreatePostRequest, flockv1.CreatePostResponse](s.H2C, s.URL+flockv1connect.PostServiceCreatePostProcedure, connect.WithGRPC())
			}
			req := connect.NewRequest(&flockv1.CreatePostRequest{Content: content})
			req.Header().Set("Authorization", "Bearer "+a.AccessToken)
			req.Header().Set("Idempotency-Key", key)
			res, err := client.CallUnary(t.Context(), req)
			if err != nil {
				return nil, err
			}
			return res.Msg.GetPost(), nil
		}
		var (
			wg  sync.WaitGroup
			mu  sync.Mutex
			got = map[string]bool{}
		)
		for i := range 6 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				p, err := create([]tu.Transport{tu.Connect, tu.GRPC}[i%2], "key-1", "exactly once")
				if err != nil {
					t.Errorf("create: %v", err)
					return
				}
				mu.Lock()
				got[p.GetId()] = true
				mu.Unlock()
			}()
		}
		wg.Wait()
		if len(got) != 1 {
			t.Fatalf("6 retries made %d posts", len(got))
		}
		me := must[flockv1.GetMeResponse](api{t: t, s: s, tr: tu.Connect}, flockv1connect.UserServiceGetMeProcedure, a.AccessToken, &flockv1.GetMeRequest{})
		if me.GetUser().GetPostsCount() != 1 {
			t.Errorf("postsCount = %d", me.GetUser().GetPostsCount())
		}
		_, err := create(tu.Connect, "key-1", "something else")
		wantCode(t, err, connect.CodeFailedPrecondition)
		if p, err := create(tu.Connect, "key-2", "exactly once"); err != nil || got[p.GetId()] {
			t.Errorf("a new key made %v %v, want a new post", p, err)
		}

		// Comments too, over REST: the header passes through vanguard.
		post := api{t: t, s: s, tr: tu.Connect}.post(a.AccessToken, "commented once")
		var first string
		for i := range 3 {
			req, _ := http.NewRequest(http.MethodPost, s.URL+"/api/posts/"+post.GetId()+"/comments/", strings.NewReader(`{"content":"only once"}`))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+a.AccessToken)
			req.Header.Set("Idempotency-Key", "comment-key")
			res, err := s.HTTP.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if i == 0 {
				first = string(raw)
			} else if string(raw) != first {
				t.Errorf("retried comment differs:\n%s\n%s", first, raw)
			}
		}
		got2 := must[flockv1.GetPostResponse](api{t: t, s: s, tr: tu.Connect}, flockv1connect.PostServiceGetPostProcedure, a.AccessToken, &flockv1.GetPostRequest{PostId: post.GetId()})
		if got2.GetPost().GetCommentsCount() != 1 {
			t.Errorf("3 retried comments counted %d", got2.GetPost().GetCommentsCount())
		}
	})
}
