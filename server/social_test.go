package server_test

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	flockv1 "github.com/flock-social/flock/gen/go/flock/v1"
	"github.com/flock-social/flock/gen/go/flock/v1/flockv1connect"
	tu "github.com/flock-social/flock/internal/testutil"
	"github.com/flock-social/flock/server"
)

// api calls the server over one transport; the tests below run their
// scenario once per transport.
type api struct {
	t  *testing.T
	s  *tu.Server
	tr tu.Transport
}

func call[Res any, ResPtr interface {
	*Res
	proto.Message
}](a api, procedure, token string, req proto.Message) (ResPtr, error) {
	return tu.Call[Res, ResPtr](a.t.Context(), a.s, a.tr, procedure, token, req)
}

func must[Res any, ResPtr interface {
	*Res
	proto.Message
}](a api, procedure, token string, req proto.Message) ResPtr {
	a.t.Helper()
	res, err := call[Res, ResPtr](a, procedure, token, req)
	if err != nil {
		a.t.Fatalf("%s %s: %v", a.tr, procedure, err)
	}
	return res
}

func (a api) user(tok, id string) (*flockv1.User, error) {
	res, err := call[flockv1.GetUserResponse](a, flockv1connect.UserServiceGetUserProcedure, tok, &flockv1.GetUserRequest{UserId: id})
	return res.GetUser(), err
}

func (a api) follow(tok, id string) error {
	_, err := call[flockv1.FollowResponse](a, flockv1connect.UserServiceFollowProcedure, tok, &flockv1.FollowRequest{UserId: id})
	return err
}

func (a api) post(tok, content string, vis ...flockv1.Visibility) *flockv1.Post {
	a.t.Helper()
	req := &flockv1.CreatePostRequest{Content: content}
	if len(vis) > 0 {
		req.Visibility = vis[0]
	}
	return must[flockv1.CreatePostResponse](a, flockv1connect.PostServiceCreatePostProcedure, tok, req).GetPost()
}

func (a api) feed(tok string, size int32, pageToken string) ([]*flockv1.Post, string) {
	a.t.Helper()
	res := must[flockv1.ListFeedResponse](a, flockv1connect.PostServiceListFeedProcedure, tok, &flockv1.ListFeedRequest{PageSize: size, PageToken: pageToken})
	return res.GetPosts(), res.GetNextPageToken()
}

func (a api) hashtag(tok, tag string) []*flockv1.Post {
	a.t.Helper()
	return must[flockv1.SearchPostsResponse](a, flockv1connect.PostServiceSearchPostsProcedure, tok, &flockv1.SearchPostsRequest{Hashtag: tag, PageSize: 100}).GetPosts()
}

func (a api) search(tok, q string) []*flockv1.User {
	a.t.Helper()
	return must[flockv1.SearchUsersResponse](a, flockv1connect.UserServiceSearchUsersProcedure, tok, &flockv1.SearchUsersRequest{Query: q, PageSize: 100}).GetUsers()
}

func ids[T interface{ GetId() string }](xs []T) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = x.GetId()
	}
	return out
}

// forEachTransport runs fn per transport on one server per engine.
func forEachTransport(t *testing.T, fn func(t *testing.T, a api), configure ...func(*server.Config)) {
	t.Helper()
	forEachServer(t, func(t *testing.T, s *tu.Server) {
		for _, tr := range tu.Transports {
			t.Run(string(tr), func(t *testing.T) {
				t.Parallel()
				fn(t, api{t: t, s: s, tr: tr})
			})
		}
	}, configure...)
}

// name makes a username unique per transport, since subtests share a server.
func name(a api, base string) string { return base + "_" + string(a.tr) }

func TestFollow_IdempotentCountedListed(t *testing.T) {
	t.Parallel()
	forEachTransport(t, func(t *testing.T, a api) {
		alice, bob, carol := a.s.MustAccount(t, name(a, "alice")), a.s.MustAccount(t, name(a, "bob")), a.s.MustAccount(t, name(a, "carol"))
		for range 2 {
			if err := a.follow(alice.AccessToken, bob.ID); err != nil {
				t.Fatalf("follow: %v", err)
			}
		}
		if err := a.follow(carol.AccessToken, bob.ID); err != nil {
			t.Fatal(err)
		}
		if err := a.follow(bob.AccessToken, alice.ID); err != nil {
			t.Fatal(err)
		}
		b, err := a.user(alice.AccessToken, bob.ID)
		if err != nil || b.GetFollowersCount() != 2 || b.GetFollowingCount() != 1 || !b.GetFollowedByMe() || !b.GetFollowsMe() || b.GetEmail() != "" {
			t.Fatalf("bob as alice sees him = %v, %v", b, err)
		}
		wantCode(t, a.follow(alice.AccessToken, alice.ID), connect.CodeInvalidArgument)
		wantCode(t, a.follow(alice.AccessToken, "01NOSUCHUSER0000000000000"), connect.CodeNotFound)

		// Followers newest first, one per page.
		var got []string
		tok := ""
		for {
			res := must[flockv1.ListFollowersResponse](a, flockv1connect.UserServiceListFollowersProcedure, alice.AccessToken,
				&flockv1.ListFollowersRequest{UserId: bob.ID, PageSize: 1, PageToken: tok})
			got = append(got, ids(res.GetUsers())...)
			if tok = res.GetNextPageToken(); tok == "" {
				break
			}
		}
		if !slices.Equal(got, []string{carol.ID, alice.ID}) {
			t.Errorf("followers of bob = %v, want [carol alice]", got)
		}
		following := must[flockv1.ListFollowingResponse](a, flockv1connect.UserServiceListFollowingProcedure, bob.AccessToken,
			&flockv1.ListFollowingRequest{UserId: alice.ID})
		if !slices.Equal(ids(following.GetUsers()), []string{bob.ID}) {
			t.Errorf("alice follows %v", ids(following.GetUsers()))
		}

		for range 2 {
			must[flockv1.UnfollowResponse](a, flockv1connect.UserServiceUnfollowProcedure, alice.AccessToken, &flockv1.UnfollowRequest{UserId: bob.ID})
		}
		if b, _ := a.user(alice.AccessToken, bob.ID); b.GetFollowersCount() != 1 || b.GetFollowedByMe() {
			t.Errorf("after unfollow bob = %v", b)
		}
	})
}

func TestFeed_OwnAndFollowedNewestFirst_StablePages(t *testing.T) {
	t.Parallel()
	forEachTransport(t, func(t *testing.T, a api) {
		reader, writer, stranger := a.s.MustAccount(t, name(a, "reader")), a.s.MustAccount(t, name(a, "writer")), a.s.MustAccount(t, name(a, "stranger"))
		if err := a.follow(reader.AccessToken, writer.ID); err != nil {
			t.Fatal(err)
		}
		var want []string
		for i := range 7 {
			tok := writer.AccessToken
			if i%3 == 0 {
				tok = reader.AccessToken
			}
			want = append([]string{a.post(tok, fmt.Sprintf("post %d", i)).GetId()}, want...)
			a.post(stranger.AccessToken, "not followed")
		}
		// Page through 3 at a time while new posts keep arriving in front.
		var got []string
		tok := ""
		for {
			posts, next := a.feed(reader.AccessToken, 3, tok)
			for _, p := range posts {
				got = append(got, p.GetId())
				if p.GetAuthor().GetId() == writer.ID && !p.GetAuthor().GetFollowedByMe() {
					t.Errorf("author of %s lacks followedByMe", p.GetId())
				}
			}
			a.post(writer.AccessToken, "arrives while paging")
			if tok = next; tok == "" {
				break
			}
		}
		if !slices.Equal(got, want) {
			t.Fatalf("feed = %v\nwant   %v", got, want)
		}
		wantCode(t, func() error {
			_, err := call[flockv1.ListFeedResponse](a, flockv1connect.PostServiceListFeedProcedure, reader.AccessToken, &flockv1.ListFeedRequest{PageToken: "garbage"})
			return err
		}(), connect.CodeInvalidArgument)
	})
}

func TestPosts_CreateEditDeleteWithLimits(t *testing.T) {
	t.Parallel()
	forEachTransport(t, func(t *testing.T, a api) {
		author, other := a.s.MustAccount(t, name(a, "author")), a.s.MustAccount(t, name(a, "other"))
		// Tags unique to this transport: the subtests share one server.
		tr := string(a.tr)
		p := a.post(author.AccessToken, "Hello #World"+tr+" and #café")
		if p.GetVisibility() != flockv1.Visibility_VISIBILITY_PUBLIC || !slices.Equal(p.GetHashtags(), []string{"world" + tr, "café"}) ||
			p.GetAuthor().GetId() != author.ID || !p.GetCreatedAt().AsTime().Equal(p.GetUpdatedAt().AsTime()) {
			t.Fatalf("created post = %v", p)
		}
		create := func(content string) error {
			_, err := call[flockv1.CreatePostResponse](a, flockv1connect.PostServiceCreatePostProcedure, author.AccessToken, &flockv1.CreatePostRequest{Content: content})
			return err
		}
		wantCode(t, create(""), connect.CodeInvalidArgument)
		wantCode(t, create(" \n\t "), connect.CodeInvalidArgument)
		wantCode(t, create(strings.Repeat("é", 5001)), connect.CodeInvalidArgument)
		if err := create(strings.Repeat("é", 5000)); err != nil {
			t.Errorf("5,000 characters refused: %v", err)
		}

		edited := must[flockv1.UpdatePostResponse](a, flockv1connect.PostServiceUpdatePostProcedure, author.AccessToken,
			&flockv1.UpdatePostRequest{PostId: p.GetId(), Content: "Now about #Go" + tr}).GetPost()
		if edited.GetContent() != "Now about #Go"+tr || !slices.Equal(edited.GetHashtags(), []string{"go" + tr}) ||
			!edited.GetUpdatedAt().AsTime().After(edited.GetCreatedAt().AsTime()) {
			t.Fatalf("edited post = %v", edited)
		}
		if len(a.hashtag(other.AccessToken, "world"+tr)) != 0 || len(a.hashtag(other.AccessToken, "#GO"+strings.ToUpper(tr))) != 1 {
			t.Errorf("hashtags not replaced by the edit")
		}
		_, err := call[flockv1.UpdatePostResponse](a, flockv1connect.PostServiceUpdatePostProcedure, other.AccessToken,
			&flockv1.UpdatePostRequest{PostId: p.GetId(), Content: "mine now"})
		wantCode(t, err, connect.CodePermissionDenied)
		_, err = call[flockv1.DeletePostResponse](a, flockv1connect.PostServiceDeletePostProcedure, other.AccessToken, &flockv1.DeletePostRequest{PostId: p.GetId()})
		wantCode(t, err, connect.CodePermissionDenied)

		must[flockv1.LikePostResponse](a, flockv1connect.PostServiceLikePostProcedure, other.AccessToken, &flockv1.LikePostRequest{PostId: p.GetId()})
		must[flockv1.CreateCommentResponse](a, flockv1connect.PostServiceCreateCommentProcedure, other.AccessToken, &flockv1.CreateCommentRequest{PostId: p.GetId(), Content: "nice"})
		must[flockv1.DeletePostResponse](a, flockv1connect.PostServiceDeletePostProcedure, author.AccessToken, &flockv1.DeletePostRequest{PostId: p.GetId()})
		_, err = call[flockv1.GetPostResponse](a, flockv1connect.PostServiceGetPostProcedure, author.AccessToken, &flockv1.GetPostRequest{PostId: p.GetId()})
		wantCode(t, err, connect.CodeNotFound)
		_, err = call[flockv1.ListCommentsResponse](a, flockv1connect.PostServiceListCommentsProcedure, author.AccessToken, &flockv1.ListCommentsRequest{PostId: p.GetId()})
		wantCode(t, err, connect.CodeNotFound)
		if len(a.hashtag(other.AccessToken, "go"+tr)) != 0 {
			t.Errorf("deleted post still found by hashtag")
		}
		if u, _ := a.user(other.AccessToken, author.ID); u.GetPostsCount() != 1 {
			t.Errorf("postsCount = %d after one delete of two posts", u.GetPostsCount())
		}
	})
}

func TestVisibility_FollowersOnlyPosts(t *testing.T) {
	t.Parallel()
	forEachTransport(t, func(t *testing.T, a api) {
		author, follower, stranger := a.s.MustAccount(t, name(a, "author")), a.s.MustAccount(t, name(a, "fan")), a.s.MustAccount(t, name(a, "stranger"))
		if err := a.follow(follower.AccessToken, author.ID); err != nil {
			t.Fatal(err)
		}
		p := a.post(author.AccessToken, "for friends #inner", flockv1.Visibility_VISIBILITY_FOLLOWERS)
		for who, tok := range map[string]string{"author": author.AccessToken, "follower": follower.AccessToken} {
			if _, err := call[flockv1.GetPostResponse](a, flockv1connect.PostServiceGetPostProcedure, tok, &flockv1.GetPostRequest{PostId: p.GetId()}); err != nil {
				t.Errorf("%s cannot read it: %v", who, err)
			}
			if len(a.hashtag(tok, "inner")) != 1 {
				t.Errorf("%s does not find it by hashtag", who)
			}
		}
		_, err := call[flockv1.GetPostResponse](a, flockv1connect.PostServiceGetPostProcedure, stranger.AccessToken, &flockv1.GetPostRequest{PostId: p.GetId()})
		wantCode(t, err, connect.CodeNotFound)
		if len(a.hashtag(stranger.AccessToken, "inner")) != 0 {
			t.Errorf("stranger finds it by hashtag")
		}
		up := must[flockv1.ListUserPostsResponse](a, flockv1connect.UserServiceListUserPostsProcedure, stranger.AccessToken, &flockv1.ListUserPostsRequest{UserId: author.ID})
		if len(up.GetPosts()) != 0 {
			t.Errorf("stranger sees it among the author's posts")
		}
		_, err = call[flockv1.LikePostResponse](a, flockv1connect.PostServiceLikePostProcedure, stranger.AccessToken, &flockv1.LikePostRequest{PostId: p.GetId()})
		wantCode(t, err, connect.CodeNotFound)
	})
}

func TestLikes_IdempotentAndCountedUnderConcurrency(t *testing.T) {
	t.Parallel()
	forEachServer(t, func(t *testing.T, s *tu.Server) {
		a := api{t: t, s: s, tr: tu.Connect}
		author := s.MustAccount(t, "liked")
		p := a.post(author.AccessToken, "like me")
		fans := make([]*tu.Account, 8)
		for i := range fans {
			fans[i] = s.MustAccount(t, fmt.Sprintf("fan%d", i))
		}
		var wg sync.WaitGroup
		for i, f := range fans {
			wg.Add(1)
			go func() {
				defer wg.Done()
				tr := tu.Transports[i%len(tu.Transports)]
				for range 3 { // repeated likes count once
					if _, err := tu.Call[flockv1.LikePostResponse](t.Context(), s, tr, flockv1connect.PostServiceLikePostProcedure, f.AccessToken, &flockv1.LikePostRequest{PostId: p.GetId()}); err != nil {
						t.Errorf("like: %v", err)
					}
				}
			}()
		}
		wg.Wait()
		got := must[flockv1.GetPostResponse](a, flockv1connect.PostServiceGetPostProcedure, fans[0].AccessToken, &flockv1.GetPostRequest{PostId: p.GetId()}).GetPost()
		if got.GetLikesCount() != int32(len(fans)) || !got.GetLikedByMe() {
			t.Fatalf("likesCount = %d likedByMe = %v, want %d true", got.GetLikesCount(), got.GetLikedByMe(), len(fans))
		}
		for range 2 {
			must[flockv1.UnlikePostResponse](a, flockv1connect.PostServiceUnlikePostProcedure, fans[0].AccessToken, &flockv1.UnlikePostRequest{PostId: p.GetId()})
		}
		got = must[flockv1.GetPostResponse](a, flockv1connect.PostServiceGetPostProcedure, fans[0].AccessToken, &flockv1.GetPostRequest{PostId: p.GetId()}).GetPost()
		if got.GetLikesCount() != int32(len(fans)-1) || got.GetLikedByMe() {
			t.Fatalf("after unlike: likesCount = %d likedByMe = %v", got.GetLikesCount(), got.GetLikedByMe())
		}
	})
}

func TestComments_ListDeleteAndLimits(t *testing.T) {
	t.Parallel()
	forEachTransport(t, func(t *testing.T, a api) {
		author, c1, c2 := a.s.MustAccount(t, name(a, "op")), a.s.MustAccount(t, name(a, "c1")), a.s.MustAccount(t, name(a, "c2"))
		p := a.post(author.AccessToken, "discuss")
		comment := func(tok, text string) (*flockv1.Comment, error) {
			res, err := call[flockv1.CreateCommentResponse](a, flockv1connect.PostServiceCreateCommentProcedure, tok, &flockv1.CreateCommentRequest{PostId: p.GetId(), Content: text})
			return res.GetComment(), err
		}
		var want []string
		for i := range 5 {
			tok := c1.AccessToken
			if i%2 == 1 {
				tok = c2.AccessToken
			}
			c, err := comment(tok, fmt.Sprintf("comment %d", i))
			if err != nil {
				t.Fatal(err)
			}
			want = append(want, c.GetId())
		}
		_, err := comment(c1.AccessToken, strings.Repeat("x", 2001))
		wantCode(t, err, connect.CodeInvalidArgument)
		_, err = comment(c1.AccessToken, "  ")
		wantCode(t, err, connect.CodeInvalidArgument)

		var got []string
		tok := ""
		for {
			res := must[flockv1.ListCommentsResponse](a, flockv1connect.PostServiceListCommentsProcedure, author.AccessToken,
				&flockv1.ListCommentsRequest{PostId: p.GetId(), PageSize: 2, PageToken: tok})
			got = append(got, ids(res.GetComments())...)
			if tok = res.GetNextPageToken(); tok == "" {
				break
			}
		}
		if !slices.Equal(got, want) {
			t.Fatalf("comments = %v, want oldest first %v", got, want)
		}
		del := func(tok, id string) error {
			_, err := call[flockv1.DeleteCommentResponse](a, flockv1connect.PostServiceDeleteCommentProcedure, tok, &flockv1.DeleteCommentRequest{PostId: p.GetId(), CommentId: id})
			return err
		}
		wantCode(t, del(c2.AccessToken, want[0]), connect.CodePermissionDenied) // c1's comment
		if err := del(c1.AccessToken, want[0]); err != nil {
			t.Errorf("comment author cannot delete: %v", err)
		}
		if err := del(author.AccessToken, want[1]); err != nil {
			t.Errorf("post author cannot delete: %v", err)
		}
		wantCode(t, del(author.AccessToken, want[1]), connect.CodeNotFound)
		got2 := must[flockv1.GetPostResponse](a, flockv1connect.PostServiceGetPostProcedure, author.AccessToken, &flockv1.GetPostRequest{PostId: p.GetId()}).GetPost()
		if got2.GetCommentsCount() != 3 {
			t.Errorf("commentsCount = %d, want 3", got2.GetCommentsCount())
		}
	})
}

func TestHashtagSearch_AnyCaseWithOrWithoutHash(t *testing.T) {
	t.Parallel()
	forEachTransport(t, func(t *testing.T, a api) {
		u := a.s.MustAccount(t, name(a, "tagger"))
		tag := "Tag" + string(a.tr) // unique per transport: subtests share the server
		var want []string
		for i := range 5 {
			want = append([]string{a.post(u.AccessToken, fmt.Sprintf("#%s number %d #日本", tag, i)).GetId()}, want...)
		}
		for _, q := range []string{tag, "#" + strings.ToUpper(tag), strings.ToLower(tag)} {
			var got []string
			tok := ""
			for {
				res := must[flockv1.SearchPostsResponse](a, flockv1connect.PostServiceSearchPostsProcedure, u.AccessToken,
					&flockv1.SearchPostsRequest{Hashtag: q, PageSize: 2, PageToken: tok})
				got = append(got, ids(res.GetPosts())...)
				if tok = res.GetNextPageToken(); tok == "" {
					break
				}
			}
			if !slices.Equal(got, want) {
				t.Errorf("search %q = %v, want %v", q, got, want)
			}
		}
		if n := len(a.hashtag(u.AccessToken, "#日本")); n < 5 {
			t.Errorf("unicode tag found %d posts", n)
		}
	})
}

// Pages of a user search, read with their page tokens, are the one long
// page cut into pieces: every match once, in the same order (best first).
// Other subtests make users meanwhile, whom a search may find too, so the
// pieces are compared on this subtest's five users.
func TestSearchUsers_PagesAreTheWholeListInPieces(t *testing.T) {
	t.Parallel()
	forEachTransport(t, func(t *testing.T, a api) {
		me := a.s.MustAccount(t, name(a, "pageseeker"))
		q := "qq" + string(a.tr) + "z" // no transport's query is a prefix of another's
		var made []string
		for i := range 5 {
			made = append(made, a.s.MustAccount(t, q+strconv.Itoa(i)).ID)
		}
		mine := func(ids []string) []string {
			return slices.DeleteFunc(slices.Clone(ids), func(id string) bool { return !slices.Contains(made, id) })
		}
		whole := mine(ids(a.search(me.AccessToken, q)))
		if len(whole) != 5 {
			t.Fatalf("search %q finds %d of the 5 users made", q, len(whole))
		}
		var pieces []string
		token := ""
		for pages := 0; ; pages++ {
			if pages > 50 {
				t.Fatalf("more than 50 pages: %v", pieces)
			}
			res := must[flockv1.SearchUsersResponse](a, flockv1connect.UserServiceSearchUsersProcedure, me.AccessToken,
				&flockv1.SearchUsersRequest{Query: q, PageSize: 2, PageToken: token})
			pieces = append(pieces, ids(res.GetUsers())...)
			if token = res.GetNextPageToken(); token == "" {
				break
			}
		}
		if len(slices.Compact(slices.Sorted(slices.Values(pieces)))) != len(pieces) {
			t.Errorf("a user on two pages: %v", pieces)
		}
		if got := mine(pieces); !slices.Equal(got, whole) {
			t.Errorf("pages of 2: %v; one page: %v", got, whole)
		}
	})
}

func TestSearchUsers_NamesAndCompleteEmailsOnly_P10(t *testing.T) {
	t.Parallel()
	forEachTransport(t, func(t *testing.T, a api) {
		me := a.s.MustAccount(t, name(a, "seeker"))
		target := a.s.MustAccount(t, name(a, "Zebedee"))
		found := func(q string) bool { return slices.Contains(ids(a.search(me.AccessToken, q)), target.ID) }
		for _, q := range []string{"zebedee", "ZEBE", name(a, "zebedee"), "User " + name(a, "Zebedee"), target.Email, strings.ToUpper(target.Email)} {
			if !found(q) {
				t.Errorf("search %q does not find %s", q, target.Username)
			}
		}
		for _, q := range []string{"@example.com", strings.Split(target.Email, "@")[0] + "@", "example.com", "zebedee_" + string(a.tr) + "@exam"} {
			if found(q) && strings.Contains(q, "@") {
				t.Errorf("email fragment %q finds %s", q, target.Username)
			}
		}
		if hits := a.search(me.AccessToken, "zebedee"); len(hits) == 0 || hits[0].GetEmail() != "" {
			t.Errorf("search leaks email: %v", hits)
		}
	})
}

// A full name in any script is found in any letter case on both engines:
// SQLite's own lower() folds ASCII letters only, so "ÄRZTIN" missed
// "Zoë Ärztin" on the default engine.
func TestSearchUsers_FullNamesInAnyLetterCaseAndScript(t *testing.T) {
	t.Parallel()
	forEachServer(t, func(t *testing.T, s *tu.Server) {
		a := api{t: t, s: s, tr: tu.Connect}
		me, target := s.MustAccount(t, "umlautseeker"), s.MustAccount(t, "umlauted")
		must[flockv1.UpdateMeResponse](a, flockv1connect.UserServiceUpdateMeProcedure, target.AccessToken, &flockv1.UpdateMeRequest{FullName: new("Zoë Ärztin")})
		for _, q := range []string{"Ärztin", "ärztin", "ÄRZTIN", "ZOË"} {
			if !slices.Contains(ids(a.search(me.AccessToken, q)), target.ID) {
				t.Errorf("search %q does not find the full name Zoë Ärztin", q)
			}
		}
	})
}
