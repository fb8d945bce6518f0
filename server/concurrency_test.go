package server_test

// Concurrency tests of the counters and the rows they count (security.md
// property 27, no deadlocks): each runs one pair of actions that take the
// same rows in opposite orders, many times at once, on every engine, and
// then checks that no request failed but with the answers the domain
// gives (never an internal error such as a deadlock, SQLSTATE 40P01) and
// that every counter equals a recount of its rows.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	flockv1 "github.com/flock-social/flock/gen/go/flock/v1"
	"github.com/flock-social/flock/gen/go/flock/v1/flockv1connect"
	tu "github.com/flock-social/flock/internal/testutil"
)

// storm counts the answers of many concurrent requests: those with a code
// the scenario allows, and the others, which fail the test.
type storm struct {
	mu         sync.Mutex
	calls      int
	allowed    map[connect.Code]int
	unexpected []error
	ok         map[connect.Code]bool
}

func newStorm(allowed ...connect.Code) *storm {
	st := &storm{allowed: map[connect.Code]int{}, ok: map[connect.Code]bool{}}
	for _, c := range allowed {
		st.ok[c] = true
	}
	return st
}

func (st *storm) note(what string, err error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.calls++
	if err == nil {
		return
	}
	if c := connect.CodeOf(err); st.ok[c] {
		st.allowed[c]++
		return
	}
	st.unexpected = append(st.unexpected, fmt.Errorf("%s: %w", what, err))
}

// check fails the test when any request got an answer the scenario does
// not allow, reporting how many of how many.
func (st *storm) check(t *testing.T) {
	t.Helper()
	st.mu.Lock()
	defer st.mu.Unlock()
	t.Logf("%d requests, allowed refusals %v, unexpected errors %d", st.calls, st.allowed, len(st.unexpected))
	for i, err := range st.unexpected {
		if i == 5 {
			t.Errorf("... and %d more", len(st.unexpected)-5)
			break
		}
		t.Errorf("unexpected error: %v", err)
	}
}

// rpc makes one Connect call and notes its answer in st.
func rpc[Res any, ResPtr interface {
	*Res
	proto.Message
}](t *testing.T, s *tu.Server, st *storm, what, procedure, token string, req proto.Message) ResPtr {
	res, err := tu.Call[Res, ResPtr](t.Context(), s, tu.Connect, procedure, token, req)
	st.note(what, err)
	return res
}

// run starts n workers, each running fn(worker) once, and waits for them.
func run(n int, fn func(w int)) {
	var wg sync.WaitGroup
	for w := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn(w)
		}()
	}
	wg.Wait()
}

// accounts makes n accounts named prefix0..prefixN-1.
func accounts(t *testing.T, s *tu.Server, prefix string, n int) []*tu.Account {
	out := make([]*tu.Account, n)
	for i := range out {
		out[i] = s.MustAccount(t, fmt.Sprintf("%s%d", prefix, i))
	}
	return out
}

// countersMatchRows fails the test when any counter differs from a recount
// of the rows it counts, or when a follow stands across a block.
func countersMatchRows(t *testing.T, s *tu.Server) {
	t.Helper()
	checks := []struct{ what, query string }{
		{"users whose followers_count, following_count or posts_count differ from their rows", `SELECT count(*) FROM users AS u WHERE
			u.followers_count <> (SELECT count(*) FROM follows AS f WHERE f.followee_id = u.id)
			OR u.following_count <> (SELECT count(*) FROM follows AS f WHERE f.follower_id = u.id)
			OR u.posts_count <> (SELECT count(*) FROM posts AS p WHERE p.author_id = u.id)`},
		{"posts whose likes_count or comments_count differ from their rows", `SELECT count(*) FROM posts AS p WHERE
			p.likes_count <> (SELECT count(*) FROM likes AS l WHERE l.post_id = p.id)
			OR p.comments_count <> (SELECT count(*) FROM comments AS c WHERE c.post_id = p.id)`},
		{"groups whose members_count differs from their active members", `SELECT count(*) FROM groups AS g WHERE
			g.members_count <> (SELECT count(*) FROM group_members AS gm WHERE gm.group_id = g.id AND gm.state = 'active')`},
		{"follows across a block", `SELECT count(*) FROM follows AS f JOIN blocks AS b ON
			(b.blocker_id = f.follower_id AND b.blocked_id = f.followee_id) OR (b.blocker_id = f.followee_id AND b.blocked_id = f.follower_id)`},
	}
	for _, c := range checks {
		var n int
		if err := s.App.DB().QueryRowContext(context.Background(), c.query).Scan(&n); err != nil {
			t.Fatalf("recount %s: %v", c.what, err)
		}
		if n != 0 {
			t.Errorf("%d %s", n, c.what)
		}
	}
}

// Pairs of users follow and unfollow each other at the same moment, A->B
// while B->A, again and again: the two users' rows are taken in one order,
// so neither waits on the other.
func TestFollows_OppositeDirectionsAtOnceNeverDeadlock_P27(t *testing.T) {
	t.Parallel()
	forEachServer(t, func(t *testing.T, s *tu.Server) {
		users := accounts(t, s, "opp", 6) // three pairs: 0-1, 2-3 and 4-5
		st := newStorm()
		run(len(users), func(w int) {
			me, other := users[w], users[w^1]
			for range 15 {
				rpc[flockv1.FollowResponse](t, s, st, "follow", flockv1connect.UserServiceFollowProcedure, me.AccessToken, &flockv1.FollowRequest{UserId: other.ID})
				rpc[flockv1.UnfollowResponse](t, s, st, "unfollow", flockv1connect.UserServiceUnfollowProcedure, me.AccessToken, &flockv1.UnfollowRequest{UserId: other.ID})
			}
			rpc[flockv1.FollowResponse](t, s, st, "follow", flockv1connect.UserServiceFollowProcedure, me.AccessToken, &flockv1.FollowRequest{UserId: other.ID})
		})
		st.check(t)
		countersMatchRows(t, s)
		got := rpc[flockv1.GetUserResponse](t, s, st, "get user", flockv1connect.UserServiceGetUserProcedure, users[0].AccessToken, &flockv1.GetUserRequest{UserId: users[1].ID}).GetUser()
		if got.GetFollowersCount() != 1 || got.GetFollowingCount() != 1 {
			t.Errorf("after following each other: followers %d following %d, want 1 1", got.GetFollowersCount(), got.GetFollowingCount())
		}
	})
}

// Many workers follow and unfollow at random among a few users: every
// request succeeds and the counters equal the rows.
func TestFollows_FollowUnfollowStormCountsRight_P27(t *testing.T) {
	t.Parallel()
	forEachServer(t, func(t *testing.T, s *tu.Server) {
		users := accounts(t, s, "storm", 4)
		st := newStorm()
		run(12, func(w int) {
			r := rand.New(rand.NewPCG(uint64(w), 1))
			for range 16 {
				from, to := users[r.IntN(len(users))], users[r.IntN(len(users))]
				if from == to {
					continue
				}
				if r.IntN(2) == 0 {
					rpc[flockv1.FollowResponse](t, s, st, "follow", flockv1connect.UserServiceFollowProcedure, from.AccessToken, &flockv1.FollowRequest{UserId: to.ID})
				} else {
					rpc[flockv1.UnfollowResponse](t, s, st, "unfollow", flockv1connect.UserServiceUnfollowProcedure, from.AccessToken, &flockv1.UnfollowRequest{UserId: to.ID})
				}
			}
		})
		st.check(t)
		countersMatchRows(t, s)
	})
}

// Two users follow each other while each blocks and unblocks the other:
// follows across a block are refused as not found, nothing else fails, no
// follow survives a block, and the counters equal the rows.
func TestFollows_FollowAndBlockBothWaysNeverDeadlock_P27(t *testing.T) {
	t.Parallel()
	forEachServer(t, func(t *testing.T, s *tu.Server) {
		users := accounts(t, s, "fb", 6) // three pairs: 0-1, 2-3 and 4-5
		st := newStorm(connect.CodeNotFound)
		run(24, func(w int) {
			pair := 2 * (w % 3)
			me, other := users[pair+(w/3)%2], users[pair+1-(w/3)%2]
			blocker := w >= 12 // each user of each pair both follows and blocks
			for i := range 12 {
				switch {
				case !blocker:
					rpc[flockv1.FollowResponse](t, s, st, "follow", flockv1connect.UserServiceFollowProcedure, me.AccessToken, &flockv1.FollowRequest{UserId: other.ID})
				case i%2 == 0:
					rpc[flockv1.BlockResponse](t, s, st, "block", flockv1connect.UserServiceBlockProcedure, me.AccessToken, &flockv1.BlockRequest{UserId: other.ID})
				default:
					rpc[flockv1.UnblockResponse](t, s, st, "unblock", flockv1connect.UserServiceUnblockProcedure, me.AccessToken, &flockv1.UnblockRequest{UserId: other.ID})
				}
			}
		})
		st.check(t)
		countersMatchRows(t, s)
	})
}

// Fans like posts while their author deletes them: a like of a deleted
// post is refused as not found, nothing else fails, and the counters equal
// the rows.
func TestLikes_LikeWhileThePostIsDeletedNeverDeadlocks_P27(t *testing.T) {
	t.Parallel()
	forEachServer(t, func(t *testing.T, s *tu.Server) {
		author := s.MustAccount(t, "deleter")
		fans := accounts(t, s, "likedel", 6)
		a := api{t: t, s: s, tr: tu.Connect}
		st := newStorm(connect.CodeNotFound)
		for round := range 3 {
			posts := make([]*flockv1.Post, 4)
			for i := range posts {
				posts[i] = a.post(author.AccessToken, fmt.Sprintf("round %d post %d", round, i))
			}
			run(len(fans)+1, func(w int) {
				if w == len(fans) {
					for _, p := range posts[:3] { // the last one stays
						rpc[flockv1.DeletePostResponse](t, s, st, "delete post", flockv1connect.PostServiceDeletePostProcedure, author.AccessToken, &flockv1.DeletePostRequest{PostId: p.GetId()})
					}
					return
				}
				for _, p := range posts {
					rpc[flockv1.LikePostResponse](t, s, st, "like", flockv1connect.PostServiceLikePostProcedure, fans[w].AccessToken, &flockv1.LikePostRequest{PostId: p.GetId()})
					rpc[flockv1.CreateCommentResponse](t, s, st, "comment", flockv1connect.PostServiceCreateCommentProcedure, fans[w].AccessToken, &flockv1.CreateCommentRequest{PostId: p.GetId(), Content: "hi"})
				}
			})
			if got := rpc[flockv1.GetPostResponse](t, s, st, "get post", flockv1connect.PostServiceGetPostProcedure, author.AccessToken, &flockv1.GetPostRequest{PostId: posts[3].GetId()}).GetPost(); got.GetLikesCount() != int32(len(fans)) {
				t.Errorf("round %d: likesCount of the post kept = %d, want %d", round, got.GetLikesCount(), len(fans))
			}
		}
		st.check(t)
		countersMatchRows(t, s)
	})
}

// Many users like, unlike, comment and delete their comments on one post at
// once: nothing fails and the post's counters equal its rows.
func TestLikes_LikeUnlikeCommentOnOnePostCountsRight_P27(t *testing.T) {
	t.Parallel()
	forEachServer(t, func(t *testing.T, s *tu.Server) {
		author := s.MustAccount(t, "busy")
		fans := accounts(t, s, "busyfan", 6)
		a := api{t: t, s: s, tr: tu.Connect}
		p := a.post(author.AccessToken, "everyone at once")
		st := newStorm()
		run(len(fans)+1, func(w int) {
			tok := author.AccessToken
			if w < len(fans) {
				tok = fans[w].AccessToken
			}
			for i := range 6 {
				switch i % 3 {
				case 0:
					rpc[flockv1.LikePostResponse](t, s, st, "like", flockv1connect.PostServiceLikePostProcedure, tok, &flockv1.LikePostRequest{PostId: p.GetId()})
				case 1:
					c := rpc[flockv1.CreateCommentResponse](t, s, st, "comment", flockv1connect.PostServiceCreateCommentProcedure, tok, &flockv1.CreateCommentRequest{PostId: p.GetId(), Content: "me too"})
					if i == 4 && c != nil {
						rpc[flockv1.DeleteCommentResponse](t, s, st, "delete comment", flockv1connect.PostServiceDeleteCommentProcedure, tok, &flockv1.DeleteCommentRequest{PostId: p.GetId(), CommentId: c.GetComment().GetId()})
					}
				case 2:
					if w%2 == 0 {
						rpc[flockv1.UnlikePostResponse](t, s, st, "unlike", flockv1connect.PostServiceUnlikePostProcedure, tok, &flockv1.UnlikePostRequest{PostId: p.GetId()})
					}
				}
			}
		})
		st.check(t)
		countersMatchRows(t, s)
	})
}

// Members join, leave and post to groups while their owners delete them:
// only the domain's refusals (not found, not a member) come back, and the
// member and post counters equal the rows.
func TestGroups_JoinLeavePostWhileDeletedNeverDeadlock_P27(t *testing.T) {
	t.Parallel()
	forEachServer(t, func(t *testing.T, s *tu.Server) {
		owner := s.MustAccount(t, "gowner")
		members := accounts(t, s, "gmember", 6)
		a := api{t: t, s: s, tr: tu.Connect}
		st := newStorm(connect.CodeNotFound, connect.CodePermissionDenied)
		for round := range 2 {
			g := a.createGroup(owner.AccessToken, fmt.Sprintf("Churn %d", round), flockv1.GroupPrivacy_GROUP_PRIVACY_PUBLIC)
			for _, m := range members {
				if _, err := a.join(m.AccessToken, g.GetId()); err != nil {
					t.Fatalf("join: %v", err)
				}
			}
			run(len(members)+1, func(w int) {
				if w == len(members) {
					for range 3 {
						rpc[flockv1.CreatePostResponse](t, s, st, "owner post", flockv1connect.PostServiceCreatePostProcedure, owner.AccessToken, &flockv1.CreatePostRequest{Content: "news", GroupId: g.GetId()})
					}
					rpc[flockv1.DeleteGroupResponse](t, s, st, "delete group", flockv1connect.GroupServiceDeleteGroupProcedure, owner.AccessToken, &flockv1.DeleteGroupRequest{GroupId: g.GetId()})
					return
				}
				tok := members[w].AccessToken
				for range 3 {
					rpc[flockv1.CreatePostResponse](t, s, st, "post", flockv1connect.PostServiceCreatePostProcedure, tok, &flockv1.CreatePostRequest{Content: "hello group", GroupId: g.GetId()})
					rpc[flockv1.LeaveGroupResponse](t, s, st, "leave", flockv1connect.GroupServiceLeaveGroupProcedure, tok, &flockv1.LeaveGroupRequest{GroupId: g.GetId()})
					rpc[flockv1.JoinGroupResponse](t, s, st, "join", flockv1connect.GroupServiceJoinGroupProcedure, tok, &flockv1.JoinGroupRequest{GroupId: g.GetId()})
				}
			})
		}
		st.check(t)
		countersMatchRows(t, s)
	})
}
