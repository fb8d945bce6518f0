package server_test

import (
	"bytes"
	"context"
	"fmt"
	"image/color"
	"image/png"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/coder/websocket"
	"github.com/uptrace/bun"

	flockv1 "github.com/flock-social/flock/gen/go/flock/v1"
	"github.com/flock-social/flock/gen/go/flock/v1/flockv1connect"
	"github.com/flock-social/flock/internal/account"
	"github.com/flock-social/flock/internal/store"
	tu "github.com/flock-social/flock/internal/testutil"
	"github.com/flock-social/flock/server"
)

func (a api) deleteAccount(tok, password string) error {
	_, err := call[flockv1.DeleteAccountResponse](a, flockv1connect.UserServiceDeleteAccountProcedure, tok,
		&flockv1.DeleteAccountRequest{CurrentPassword: password})
	return err
}

func (a api) comment(tok, postID, content string) *flockv1.Comment {
	a.t.Helper()
	return must[flockv1.CreateCommentResponse](a, flockv1connect.PostServiceCreateCommentProcedure, tok,
		&flockv1.CreateCommentRequest{PostId: postID, Content: content}).GetComment()
}

func (a api) like(tok, postID string) {
	a.t.Helper()
	must[flockv1.LikePostResponse](a, flockv1connect.PostServiceLikePostProcedure, tok, &flockv1.LikePostRequest{PostId: postID})
}

func (a api) getGroup(tok, id string) (*flockv1.GetGroupResponse, error) {
	return call[flockv1.GetGroupResponse](a, flockv1connect.GroupServiceGetGroupProcedure, tok, &flockv1.GetGroupRequest{GroupId: id, PageSize: 100})
}

func (a api) makeAdmin(tok, groupID, userID string) {
	a.t.Helper()
	must[flockv1.UpdateGroupMemberResponse](a, flockv1connect.GroupServiceUpdateGroupMemberProcedure, tok,
		&flockv1.UpdateGroupMemberRequest{GroupId: groupID, UserId: userID, Role: flockv1.GroupRole_GROUP_ROLE_ADMIN})
}

// withFileRemoval has a test server work the general job queue, which
// removes a deleted account's files.
func withFileRemoval(c *server.Config) { c.JobWorkers = 1 }

// leftovers lists every text value in any table of the server's database
// that names one of ids, equals one of exact (letter case aside), or
// contains marker, as "table.column = value". River's tables are left
// out: a finished job's row keeps its arguments for a day (River's
// retention), and those of the file removal name the deleted account's
// id. held_usernames is left out of the exact match: it holds the name
// on purpose.
func leftovers(t *testing.T, s *tu.Server, ids, exact []string, marker string) []string {
	t.Helper()
	ctx := context.Background()
	db := s.App.DB()
	type column struct{ table, name string }
	var cols []column
	if db.Engine == store.Postgres {
		rows, err := db.QueryContext(ctx, `SELECT table_name, column_name FROM information_schema.columns
WHERE table_schema = current_schema() AND data_type IN ('text', 'character varying') ORDER BY table_name, column_name`)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var c column
			if err := rows.Scan(&c.table, &c.name); err != nil {
				t.Fatal(err)
			}
			cols = append(cols, c)
		}
		rows.Close()
	} else {
		var tables []string
		if err := db.NewRaw("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").Scan(ctx, &tables); err != nil {
			t.Fatal(err)
		}
		for _, table := range tables {
			rows, err := db.QueryContext(ctx, fmt.Sprintf("SELECT name, type FROM pragma_table_info('%s')", table))
			if err != nil {
				t.Fatal(err)
			}
			for rows.Next() {
				var name, typ string
				if err := rows.Scan(&name, &typ); err != nil {
					t.Fatal(err)
				}
				if strings.EqualFold(typ, "TEXT") {
					cols = append(cols, column{table, name})
				}
			}
			rows.Close()
		}
	}
	if len(cols) < 40 {
		t.Fatalf("found only %d text columns: %v", len(cols), cols)
	}
	var found []string
	for _, c := range cols {
		if strings.HasPrefix(c.table, "river_") {
			continue
		}
		var vals []string
		col := bun.Ident(c.name)
		q := db.NewSelect().TableExpr("?", bun.Ident(c.table)).ColumnExpr("?", col).
			Where("? IN (?)", col, bun.List(ids)).
			WhereOr("? LIKE ?", col, "%"+marker+"%")
		if c.table != "held_usernames" {
			q = q.WhereOr("lower(?) IN (?)", col, bun.List(exact))
		}
		if err := q.Scan(ctx, &vals); err != nil {
			t.Fatalf("scan %s.%s: %v", c.table, c.name, err)
		}
		for _, v := range vals {
			found = append(found, c.table+"."+c.name+" = "+v)
		}
	}
	return found
}

// filesOf lists the files of the local media storage whose path names
// one of ids.
func filesOf(t *testing.T, s *tu.Server, ids []string) []string {
	t.Helper()
	var out []string
	root := filepath.Join(s.Config.DataDir, "media")
	_ = filepath.Walk(root, func(path string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() || strings.HasSuffix(path, ".attrs") {
			return nil
		}
		rel, _ := filepath.Rel(root, path)
		for _, id := range ids {
			if strings.Contains(rel, id) {
				out = append(out, rel)
				break
			}
		}
		return nil
	})
	return out
}

// dbIDs runs a query that returns one text column.
func dbIDs(t *testing.T, s *tu.Server, query string, args ...any) []string {
	t.Helper()
	var out []string
	if err := s.App.DB().NewRaw(query, args...).Scan(context.Background(), &out); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return out
}

func pngAvatar(t *testing.T, c color.RGBA) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, solid(64, 64, c)); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// The deletion test, on every transport and engine: an account
// with posts (one with a processed video, one in a group, one made with an
// Idempotency-Key), another video not posted, a profile picture, comments
// and likes on others' posts, others' comments and likes on its posts,
// follows both ways, blocks both ways, a group it owns with members (and
// another where it is alone), a membership elsewhere, reports it filed and
// reports of its posts, notifications both ways, activity, post views and
// a second session. After DeleteAccount nothing of it is left in any
// table (every text column of every table is searched for its ids, its
// email, its username and a marker in all its text), in any list other
// users read, or in media storage once the removal job has run; and
// every counter of other users, posts and groups is right.
func TestDeleteAccount_RemovesEverything_P1(t *testing.T) {
	t.Parallel()
	clip := mp4Fixture(t, "160x120", 10, 1)
	forEachServer(t, func(t *testing.T, s *tu.Server) {
		for _, tr := range tu.Transports {
			t.Run(string(tr), func(t *testing.T) {
				t.Parallel()
				deleteRichAccount(t, api{t: t, s: s, tr: tr}, clip)
			})
		}
	}, processing, withFileRemoval, func(c *server.Config) { c.ViewFlushInterval = 20 * time.Millisecond })
}

func deleteRichAccount(t *testing.T, a api, clip []byte) {
	s := a.s
	ctx := t.Context()
	// Every text of the doomed account carries the marker; nobody
	// else's does.
	marker := "zqxdoomed" + string(a.tr) + "zqx"
	doomed := s.MustAccount(t, name(a, "doomed"))
	alice, bob, carol := s.MustAccount(t, name(a, "alice_d")), s.MustAccount(t, name(a, "bob_d")), s.MustAccount(t, name(a, "carol_d"))
	erin, frank := s.MustAccount(t, name(a, "erin_d")), s.MustAccount(t, name(a, "frank_d"))

	// Profile: name, bio, interests and a picture.
	me := must[flockv1.UpdateMeResponse](a, flockv1connect.UserServiceUpdateMeProcedure, doomed.AccessToken, &flockv1.UpdateMeRequest{
		FullName: new("Doomed " + marker), Bio: new("bio " + marker), Interests: []string{marker},
		Avatar: pngAvatar(t, color.RGBA{200, 10, 10, 255}),
	}).GetUser()
	if me.GetAvatarUrl() == "" {
		t.Fatal("no avatar URL")
	}

	// Videos: one carried by a post, one never posted.
	posted := waitReady(t, s, doomed.AccessToken, upload(t, s, doomed.AccessToken, clip).GetId())
	unposted := waitReady(t, s, doomed.AccessToken, upload(t, s, doomed.AccessToken, clip).GetId())
	withVideo, err := createPost(t, s, doomed.AccessToken, "video #"+marker+" "+marker, posted.GetId(), 0)
	if err != nil {
		t.Fatal(err)
	}
	followersOnly := a.post(doomed.AccessToken, "for followers "+marker, flockv1.Visibility_VISIBILITY_FOLLOWERS)
	// A post made with an Idempotency-Key.
	req := connect.NewRequest(&flockv1.CreatePostRequest{Content: "idempotent " + marker})
	req.Header().Set("Authorization", "Bearer "+doomed.AccessToken)
	req.Header().Set("Idempotency-Key", "key-"+marker)
	if _, err := flockv1connect.NewPostServiceClient(s.HTTP, s.URL).CreatePost(ctx, req); err != nil {
		t.Fatal(err)
	}

	// Groups: one it owns with members (alice joined first, bob is made
	// admin later: bob takes it over), one where it is alone (it goes),
	// and carol's, where it is a member.
	owned := a.createGroup(doomed.AccessToken, "Handed over "+string(a.tr), flockv1.GroupPrivacy_GROUP_PRIVACY_PUBLIC)
	alone := a.createGroup(doomed.AccessToken, "Alone "+marker, flockv1.GroupPrivacy_GROUP_PRIVACY_PUBLIC)
	carols := a.createGroup(carol.AccessToken, "Carol's "+string(a.tr), flockv1.GroupPrivacy_GROUP_PRIVACY_PUBLIC)
	for _, m := range []*tu.Account{alice, bob} {
		if _, err := a.join(m.AccessToken, owned.GetId()); err != nil {
			t.Fatal(err)
		}
	}
	a.makeAdmin(doomed.AccessToken, owned.GetId(), bob.ID)
	if _, err := a.join(doomed.AccessToken, carols.GetId()); err != nil {
		t.Fatal(err)
	}
	inOwned, err := a.groupPost(doomed.AccessToken, owned.GetId(), "in my group "+marker)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.groupPost(doomed.AccessToken, alone.GetId(), "alone "+marker); err != nil {
		t.Fatal(err)
	}
	if _, err := a.groupPost(doomed.AccessToken, carols.GetId(), "in carol's group "+marker); err != nil {
		t.Fatal(err)
	}
	alicesGroupPost, err := a.groupPost(alice.AccessToken, owned.GetId(), "alice in the group")
	if err != nil {
		t.Fatal(err)
	}

	// Follows both ways, blocks both ways.
	for _, f := range [][2]*tu.Account{{doomed, alice}, {alice, doomed}, {bob, doomed}, {doomed, carol}, {carol, alice}} {
		if err := a.follow(f[0].AccessToken, f[1].ID); err != nil {
			t.Fatal(err)
		}
	}
	a.block(doomed.AccessToken, erin.ID)
	a.block(frank.AccessToken, doomed.ID)

	// Likes and comments both ways; bob's on alice's post stay.
	alices := a.post(alice.AccessToken, "alice's post #keep"+string(a.tr))
	a.like(doomed.AccessToken, alices.GetId())
	a.comment(doomed.AccessToken, alices.GetId(), "first "+marker)
	a.comment(doomed.AccessToken, alices.GetId(), "second "+marker)
	a.like(bob.AccessToken, alices.GetId())
	bobsComment := a.comment(bob.AccessToken, alices.GetId(), "bob stays")
	a.like(alice.AccessToken, withVideo.GetId())
	a.comment(alice.AccessToken, withVideo.GetId(), "alice on the doomed post")
	a.comment(bob.AccessToken, followersOnly.GetId(), "bob on the doomed post")
	a.like(alice.AccessToken, inOwned.GetId())

	// Reports both ways.
	a.mustReport(doomed.AccessToken, alices.GetId(), spam, "reported by "+marker)
	a.mustReport(alice.AccessToken, withVideo.GetId(), hate, "")

	// Views both ways, written by the analytics flush.
	must[flockv1.GetPostResponse](a, flockv1connect.PostServiceGetPostProcedure, alice.AccessToken, &flockv1.GetPostRequest{PostId: withVideo.GetId()})
	must[flockv1.GetPostResponse](a, flockv1connect.PostServiceGetPostProcedure, doomed.AccessToken, &flockv1.GetPostRequest{PostId: alices.GetId()})
	eventually(t, "views written", func() error {
		if v, _ := storedViews(t, s, withVideo.GetId()); v == 0 {
			return fmt.Errorf("no views of the doomed post yet")
		}
		if n := len(dbIDs(t, s, "SELECT post_id FROM post_viewers WHERE viewer_id = ?", doomed.ID)); n == 0 {
			return fmt.Errorf("no view by the doomed account yet")
		}
		return nil
	})

	// A second session, and a password reset in progress.
	must[flockv1.LoginResponse](a, flockv1connect.UserServiceLoginProcedure, "",
		&flockv1.LoginRequest{Identifier: &flockv1.LoginRequest_Username{Username: doomed.Username}, Password: doomed.Password})
	now := s.App.DB().Now()
	if _, err := s.App.DB().NewInsert().Model(&store.PasswordReset{TokenHash: "reset-" + marker, UserID: doomed.ID, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}).Exec(ctx); err != nil {
		t.Fatal(err)
	}

	// What is the doomed account's, by id, read before it goes.
	postIDs := dbIDs(t, s, "SELECT id FROM posts WHERE author_id = ?", doomed.ID)
	theirIDs := slices.Concat([]string{doomed.ID, alone.GetId()}, postIDs,
		dbIDs(t, s, "SELECT c.id FROM comments AS c WHERE c.author_id = ? OR c.post_id IN (SELECT id FROM posts WHERE author_id = ?)", doomed.ID, doomed.ID),
		dbIDs(t, s, "SELECT id FROM videos WHERE owner_id = ?", doomed.ID),
		dbIDs(t, s, "SELECT id FROM sessions WHERE user_id = ?", doomed.ID),
		dbIDs(t, s, "SELECT id FROM reports WHERE reporter_id = ? OR post_author_id = ?", doomed.ID, doomed.ID))
	if len(postIDs) != 6 || len(theirIDs) < 2+6+4+2+2+2 {
		t.Fatalf("seeded %d posts and %d ids in all", len(postIDs), len(theirIDs))
	}
	exact := []string{strings.ToLower(doomed.Username), doomed.Email}
	if got := leftovers(t, s, theirIDs, exact, marker); len(got) < 20 {
		t.Fatalf("before the deletion the search finds only %v", got)
	}
	videoIDs := []string{posted.GetId(), unposted.GetId()}
	if files := filesOf(t, s, append([]string{doomed.ID}, videoIDs...)); len(files) != 5 {
		t.Fatalf("files before = %v, want the avatar and each video's file and poster", files)
	}
	// Another user's notifications and activity, before: about doomed.
	if n := len(dbIDs(t, s, "SELECT id FROM notifications WHERE user_id = ? AND actor_id = ?", alice.ID, doomed.ID)); n == 0 {
		t.Fatal("alice has no notification from doomed")
	}

	// The deletion.
	if err := a.deleteAccount(doomed.AccessToken, doomed.Password); err != nil {
		t.Fatalf("delete account: %v", err)
	}

	// Nothing of it in any table.
	for _, row := range leftovers(t, s, theirIDs, exact, marker) {
		t.Errorf("left after the deletion: %s", row)
	}
	countersMatchRows(t, s)

	// Nothing in what other users read.
	_, err = a.user(alice.AccessToken, doomed.ID)
	wantCode(t, err, connect.CodeNotFound)
	if got := ids(a.search(alice.AccessToken, doomed.Username)); slices.Contains(got, doomed.ID) {
		t.Errorf("search finds the account: %v", got)
	}
	if got := a.hashtag(alice.AccessToken, marker); len(got) != 0 {
		t.Errorf("hashtag finds %v", ids(got))
	}
	for _, id := range postIDs {
		_, err := call[flockv1.GetPostResponse](a, flockv1connect.PostServiceGetPostProcedure, alice.AccessToken, &flockv1.GetPostRequest{PostId: id})
		wantCode(t, err, connect.CodeNotFound)
	}
	_, err = getVideo(t, s, a.tr, alice.AccessToken, posted.GetId())
	wantCode(t, err, connect.CodeNotFound)
	if feed, _ := a.feed(alice.AccessToken, 100, ""); !slices.Equal(ids(feed), []string{alices.GetId(), alicesGroupPost.GetId()}) {
		t.Errorf("alice's feed = %v, want her two posts", ids(feed))
	}
	followers := must[flockv1.ListFollowersResponse](a, flockv1connect.UserServiceListFollowersProcedure, alice.AccessToken, &flockv1.ListFollowersRequest{UserId: alice.ID}).GetUsers()
	following := must[flockv1.ListFollowingResponse](a, flockv1connect.UserServiceListFollowingProcedure, alice.AccessToken, &flockv1.ListFollowingRequest{UserId: alice.ID}).GetUsers()
	if !slices.Equal(ids(followers), []string{carol.ID}) || len(following) != 0 {
		t.Errorf("alice's followers %v and following %v, want [carol] and []", ids(followers), ids(following))
	}
	if got := must[flockv1.ListBlocksResponse](a, flockv1connect.UserServiceListBlocksProcedure, frank.AccessToken, &flockv1.ListBlocksRequest{}).GetUsers(); len(got) != 0 {
		t.Errorf("frank's blocks = %v", ids(got))
	}
	comments := must[flockv1.ListCommentsResponse](a, flockv1connect.PostServiceListCommentsProcedure, alice.AccessToken, &flockv1.ListCommentsRequest{PostId: alices.GetId()}).GetComments()
	if !slices.Equal(ids(comments), []string{bobsComment.GetId()}) {
		t.Errorf("comments on alice's post = %v, want bob's", ids(comments))
	}
	for _, n := range a.notifications(alice.AccessToken).GetNotifications() {
		if n.GetActor().GetId() == doomed.ID || slices.Contains(postIDs, n.GetPostId()) {
			t.Errorf("alice's notification about doomed: %v", n)
		}
	}
	for _, who := range []*tu.Account{alice, bob, carol, erin, frank} {
		acts := must[flockv1.ListActivityResponse](a, flockv1connect.ActivityServiceListActivityProcedure, who.AccessToken, &flockv1.ListActivityRequest{PageSize: 100}).GetActivities()
		for _, act := range acts {
			if act.GetTargetUserId() == doomed.ID || slices.Contains(postIDs, act.GetPostId()) {
				t.Errorf("%s's activity about doomed: %v", who.Username, act)
			}
		}
	}

	// Others' counts.
	wantCounts := func(who *tu.Account, followers, following, posts int32) {
		t.Helper()
		u, err := a.user(alice.AccessToken, who.ID)
		if err != nil {
			t.Fatal(err)
		}
		if u.GetFollowersCount() != followers || u.GetFollowingCount() != following || u.GetPostsCount() != posts {
			t.Errorf("%s: followers %d following %d posts %d, want %d %d %d", who.Username,
				u.GetFollowersCount(), u.GetFollowingCount(), u.GetPostsCount(), followers, following, posts)
		}
	}
	wantCounts(alice, 1, 0, 2)
	wantCounts(bob, 0, 0, 0)
	wantCounts(carol, 0, 1, 0)
	p := must[flockv1.GetPostResponse](a, flockv1connect.PostServiceGetPostProcedure, alice.AccessToken, &flockv1.GetPostRequest{PostId: alices.GetId()}).GetPost()
	if p.GetLikesCount() != 1 || p.GetCommentsCount() != 1 {
		t.Errorf("alice's post: %d likes %d comments, want bob's 1 and 1", p.GetLikesCount(), p.GetCommentsCount())
	}

	// The owned group passed to bob, its admin, though alice joined first.
	g, err := a.getGroup(alice.AccessToken, owned.GetId())
	if err != nil {
		t.Fatal(err)
	}
	if g.GetGroup().GetOwnerId() != bob.ID || g.GetGroup().GetMembersCount() != 2 {
		t.Errorf("group after = owner %s, %d members; want bob, 2", g.GetGroup().GetOwnerId(), g.GetGroup().GetMembersCount())
	}
	roles := map[string]flockv1.GroupRole{}
	for _, m := range g.GetMembers() {
		roles[m.GetUser().GetId()] = m.GetRole()
	}
	if len(roles) != 2 || roles[bob.ID] != flockv1.GroupRole_GROUP_ROLE_OWNER || roles[alice.ID] != flockv1.GroupRole_GROUP_ROLE_MEMBER {
		t.Errorf("members after = %v", roles)
	}
	_, err = a.getGroup(alice.AccessToken, alone.GetId())
	wantCode(t, err, connect.CodeNotFound)
	if g, err := a.getGroup(carol.AccessToken, carols.GetId()); err != nil || g.GetGroup().GetMembersCount() != 1 || len(g.GetMembers()) != 1 {
		t.Errorf("carol's group after = %v, %v; want carol alone", g, err)
	}

	// Media: the signed URL of the video fails at once; the files go when
	// the job has run.
	if res, _ := get(t, s, posted.GetPlaybackUrl()); res.StatusCode != http.StatusNotFound {
		t.Errorf("playback URL after = %d, want 404", res.StatusCode)
	}
	eventually(t, "files removed by the job", func() error {
		if files := filesOf(t, s, append([]string{doomed.ID}, videoIDs...)); len(files) > 0 {
			return fmt.Errorf("files left: %v", files)
		}
		return nil
	})
	if res, _ := get(t, s, me.GetAvatarUrl()); res.StatusCode != http.StatusNotFound {
		t.Errorf("avatar URL after = %d, want 404", res.StatusCode)
	}
}

// P9 and P1: the current password is required, and it must be the
// caller's: a wrong one answers permission_denied and removes nothing;
// another user cannot delete an account (there is no way to name one, and
// the victim's password does not help them); no token, unauthenticated.
func TestDeleteAccount_WrongPasswordRemovesNothing_P1_P9(t *testing.T) {
	t.Parallel()
	forEachTransport(t, func(t *testing.T, a api) {
		victim, other := a.s.MustAccount(t, name(a, "victim")), a.s.MustAccount(t, name(a, "intruder"))
		p := a.post(victim.AccessToken, "still here")
		if err := a.follow(other.AccessToken, victim.ID); err != nil {
			t.Fatal(err)
		}

		err := a.deleteAccount(victim.AccessToken, "not the password")
		wantCode(t, err, connect.CodePermissionDenied)
		if !strings.Contains(err.Error(), "password is incorrect") {
			t.Errorf("message %q does not say the password is wrong", err)
		}
		wantCode(t, a.deleteAccount(other.AccessToken, victim.Password), connect.CodePermissionDenied)
		wantCode(t, a.deleteAccount("", victim.Password), connect.CodeUnauthenticated)
		wantCode(t, a.deleteAccount(victim.AccessToken, ""), connect.CodeInvalidArgument)

		for _, acc := range []*tu.Account{victim, other} {
			if err := getMe(t, a.s, a.tr, acc.AccessToken); err != nil {
				t.Errorf("%s after the refusals: %v", acc.Username, err)
			}
		}
		got := must[flockv1.GetPostResponse](a, flockv1connect.PostServiceGetPostProcedure, other.AccessToken, &flockv1.GetPostRequest{PostId: p.GetId()}).GetPost()
		if got.GetId() != p.GetId() {
			t.Errorf("post after the refusals = %v", got)
		}
		if u, _ := a.user(other.AccessToken, victim.ID); u.GetFollowersCount() != 1 || u.GetPostsCount() != 1 {
			t.Errorf("victim after the refusals = %v", u)
		}
	})
}

// P5: deleting an account ends every session at once: access tokens and
// refresh tokens of this session and of another are refused, and open
// streams of both (WebSocket, Connect, gRPC, gRPC-Web; notifications and
// activity log) end now, not at their periodic check, which is an hour
// away here.
func TestDeleteAccount_EndsTokensAndStreamsAtOnce_P5(t *testing.T) {
	t.Parallel()
	forEachServer(t, func(t *testing.T, s *tu.Server) {
		for _, tr := range tu.Transports {
			t.Run(string(tr), func(t *testing.T) {
				t.Parallel()
				a := api{t: t, s: s, tr: tr}
				gone := s.MustAccount(t, name(a, "leaving"))
				second := must[flockv1.LoginResponse](a, flockv1connect.UserServiceLoginProcedure, "",
					&flockv1.LoginRequest{Identifier: &flockv1.LoginRequest_Username{Username: gone.Username}, Password: gone.Password})
				streamTr := tr
				if tr == tu.REST {
					streamTr = ws
				}
				streams := []*liveStream{
					mustOpenStream(t, s, streamTr, false, gone.AccessToken),
					mustOpenStream(t, s, streamTr, true, second.GetAccessToken()),
				}
				if err := a.deleteAccount(gone.AccessToken, gone.Password); err != nil {
					t.Fatal(err)
				}
				for _, ls := range streams {
					err := ls.ended(t)
					if streamTr == ws {
						if websocket.CloseStatus(err) != websocket.StatusPolicyViolation {
							t.Errorf("the WebSocket ended with %v, want close 1008", err)
						}
					} else if connect.CodeOf(err) != connect.CodeUnauthenticated {
						t.Errorf("the stream ended with %v, want unauthenticated", err)
					}
				}
				for _, tok := range []string{gone.AccessToken, second.GetAccessToken()} {
					// Not "refresh it": the account is gone.
					if err := getMe(t, a.s, a.tr, tok); connect.CodeOf(err) != connect.CodeUnauthenticated || !strings.Contains(err.Error(), "no longer exists") {
						t.Errorf("GetMe with a token of the deleted account: %v, want unauthenticated saying the session no longer exists", err)
					}
				}
				for _, tok := range []string{gone.RefreshToken, second.GetRefreshToken()} {
					_, err := call[flockv1.RefreshTokenResponse](a, flockv1connect.UserServiceRefreshTokenProcedure, "", &flockv1.RefreshTokenRequest{RefreshToken: tok})
					wantCode(t, err, connect.CodeUnauthenticated)
				}
				_, err := call[flockv1.LoginResponse](a, flockv1connect.UserServiceLoginProcedure, "",
					&flockv1.LoginRequest{Identifier: &flockv1.LoginRequest_Username{Username: gone.Username}, Password: gone.Password})
				wantCode(t, err, connect.CodeUnauthenticated)
				// Deleting again with the old token: the account is gone.
				wantCode(t, a.deleteAccount(gone.AccessToken, gone.Password), connect.CodeUnauthenticated)
			})
		}
	}, func(c *server.Config) { c.StreamPoll = time.Hour })
}

// P5 with two instances on one Postgres and Redis: an account deleted on
// one instance is refused at once on the other, which had its session
// cached for an hour, and its stream there ends.
func TestDeleteAccount_EndsSessionsOnEveryInstance_P5(t *testing.T) {
	t.Parallel()
	one, two := twoInstances(t)
	gone := one.MustAccount(t, "leavingtwo")
	// Cached on instance two.
	if err := getMe(t, two, tu.GRPC, gone.AccessToken); err != nil {
		t.Fatal(err)
	}
	stream := mustOpenStream(t, two, tu.GRPC, false, gone.AccessToken)
	if err := (api{t: t, s: one, tr: tu.Connect}).deleteAccount(gone.AccessToken, gone.Password); err != nil {
		t.Fatal(err)
	}
	if err := stream.ended(t); connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Errorf("the stream on the other instance ended with %v", err)
	}
	for _, tr := range tu.Transports {
		err := getMe(t, two, tr, gone.AccessToken)
		wantCode(t, err, connect.CodeUnauthenticated)
	}
}

// clock is a test clock that tests move forward.
type clock struct{ offset atomic.Int64 }

func (c *clock) Now() time.Time               { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *clock) Advance(d time.Duration)      { c.offset.Add(int64(d)) }
func (c *clock) configure(cfg *server.Config) { cfg.Now = c.Now }

// A deleted account's username cannot be registered again, in any letter
// case, until the cool-off (account.DefaultUsernameHold, 30 days) has
// passed: already_exists with a message that says until when. Its email is
// free at once.
func TestDeleteAccount_UsernameHeldThenFreeEmailFreeAtOnce(t *testing.T) {
	t.Parallel()
	for _, engine := range tu.Engines(t) {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			var c clock
			s := tu.MustServer(t, engine, c.configure)
			for _, tr := range tu.Transports {
				a := api{t: t, s: s, tr: tr}
				gone := s.MustAccount(t, name(a, "Taken"))
				if err := a.deleteAccount(gone.AccessToken, gone.Password); err != nil {
					t.Fatal(err)
				}
				register := func(username, email string) error {
					_, err := call[flockv1.RegisterResponse](a, flockv1connect.UserServiceRegisterProcedure, "",
						&flockv1.RegisterRequest{Username: username, Email: email, Password: "a new password"})
					return err
				}
				err := register(strings.ToUpper(gone.Username), "impostor-"+string(tr)+"@example.com")
				wantCode(t, err, connect.CodeAlreadyExists)
				until := c.Now().Add(account.DefaultUsernameHold).UTC()
				if msg := err.Error(); !strings.Contains(msg, "deleted") || !strings.Contains(msg, until.Format("2006-01-02")) {
					t.Errorf("refusal %q does not say the name is held and until when (%s)", msg, until)
				}
				if err := register(name(a, "newname"), gone.Email); err != nil {
					t.Errorf("the deleted account's email is not free: %v", err)
				}
			}
			c.Advance(account.DefaultUsernameHold - time.Minute)
			for _, tr := range tu.Transports {
				a := api{t: t, s: s, tr: tr}
				_, err := call[flockv1.RegisterResponse](a, flockv1connect.UserServiceRegisterProcedure, "",
					&flockv1.RegisterRequest{Username: name(a, "Taken"), Email: "early-" + string(tr) + "@example.com", Password: "a new password"})
				wantCode(t, err, connect.CodeAlreadyExists)
			}
			c.Advance(2 * time.Minute)
			for _, tr := range tu.Transports {
				a := api{t: t, s: s, tr: tr}
				if _, err := call[flockv1.RegisterResponse](a, flockv1connect.UserServiceRegisterProcedure, "",
					&flockv1.RegisterRequest{Username: name(a, "taken"), Email: "later-" + string(tr) + "@example.com", Password: "a new password"}); err != nil {
					t.Errorf("%s: the name after the cool-off: %v", tr, err)
				}
			}
		})
	}
}

// A group whose owner deletes their account passes to its longest-standing
// admin, else to its longest-standing member (invitations and requests
// do not count); a group with nobody else is deleted with the posts shared
// with it, also those of former members, whose post counts drop.
func TestDeleteAccount_OwnedGroupsPassToOldestAdminElseOldestMemberElseGo(t *testing.T) {
	t.Parallel()
	forEachTransport(t, func(t *testing.T, a api) {
		owner := a.s.MustAccount(t, name(a, "gowner"))
		m1, m2, ad1, ad2, asker := a.s.MustAccount(t, name(a, "gm1")), a.s.MustAccount(t, name(a, "gm2")),
			a.s.MustAccount(t, name(a, "gad1")), a.s.MustAccount(t, name(a, "gad2")), a.s.MustAccount(t, name(a, "gask"))

		// Admins: m1 joined before both; ad1 joined before ad2 but is made
		// admin after: the membership's date counts, not the promotion's.
		withAdmins := a.createGroup(owner.AccessToken, "admins "+string(a.tr), flockv1.GroupPrivacy_GROUP_PRIVACY_PUBLIC)
		for _, m := range []*tu.Account{m1, ad1, ad2} {
			if _, err := a.join(m.AccessToken, withAdmins.GetId()); err != nil {
				t.Fatal(err)
			}
		}
		a.makeAdmin(owner.AccessToken, withAdmins.GetId(), ad2.ID)
		a.makeAdmin(owner.AccessToken, withAdmins.GetId(), ad1.ID)

		// Members only: m2 joined first; asker only asked (private group).
		membersOnly := a.createGroup(owner.AccessToken, "members "+string(a.tr), flockv1.GroupPrivacy_GROUP_PRIVACY_PRIVATE)
		if _, err := a.join(asker.AccessToken, membersOnly.GetId()); err != nil {
			t.Fatal(err)
		}
		for _, m := range []*tu.Account{m2, m1} {
			must[flockv1.AddGroupMemberResponse](a, flockv1connect.GroupServiceAddGroupMemberProcedure, owner.AccessToken,
				&flockv1.AddGroupMemberRequest{GroupId: membersOnly.GetId(), UserId: m.ID})
			if _, err := a.join(m.AccessToken, membersOnly.GetId()); err != nil {
				t.Fatal(err)
			}
		}

		// Alone: a former member posted and left, someone is invited.
		alone := a.createGroup(owner.AccessToken, "alone "+string(a.tr), flockv1.GroupPrivacy_GROUP_PRIVACY_PUBLIC)
		if _, err := a.join(m2.AccessToken, alone.GetId()); err != nil {
			t.Fatal(err)
		}
		leftBehind, err := a.groupPost(m2.AccessToken, alone.GetId(), "left behind")
		if err != nil {
			t.Fatal(err)
		}
		must[flockv1.LeaveGroupResponse](a, flockv1connect.GroupServiceLeaveGroupProcedure, m2.AccessToken, &flockv1.LeaveGroupRequest{GroupId: alone.GetId()})
		must[flockv1.AddGroupMemberResponse](a, flockv1connect.GroupServiceAddGroupMemberProcedure, owner.AccessToken,
			&flockv1.AddGroupMemberRequest{GroupId: alone.GetId(), UserId: asker.ID})
		if u, _ := a.user(m1.AccessToken, m2.ID); u.GetPostsCount() != 1 {
			t.Fatalf("m2's posts before = %d", u.GetPostsCount())
		}

		if err := a.deleteAccount(owner.AccessToken, owner.Password); err != nil {
			t.Fatal(err)
		}

		wantOwner := func(g *flockv1.Group, want *tu.Account, members int32) {
			t.Helper()
			got, err := a.getGroup(want.AccessToken, g.GetId())
			if err != nil {
				t.Fatal(err)
			}
			if got.GetGroup().GetOwnerId() != want.ID || got.GetGroup().GetMyRole() != flockv1.GroupRole_GROUP_ROLE_OWNER || got.GetGroup().GetMembersCount() != members {
				t.Errorf("%s: owner %s (my role %s), %d members; want %s, %d", g.GetName(), got.GetGroup().GetOwnerId(),
					got.GetGroup().GetMyRole(), got.GetGroup().GetMembersCount(), want.Username, members)
			}
			// The new owner may do what only an owner may.
			must[flockv1.UpdateGroupResponse](a, flockv1connect.GroupServiceUpdateGroupProcedure, want.AccessToken,
				&flockv1.UpdateGroupRequest{GroupId: g.GetId(), Description: new("mine now")})
		}
		wantOwner(withAdmins, ad1, 3)
		wantOwner(membersOnly, m2, 2)
		_, err = a.getGroup(m2.AccessToken, alone.GetId())
		wantCode(t, err, connect.CodeNotFound)
		_, err = call[flockv1.GetPostResponse](a, flockv1connect.PostServiceGetPostProcedure, m2.AccessToken, &flockv1.GetPostRequest{PostId: leftBehind.GetId()})
		wantCode(t, err, connect.CodeNotFound)
		if u, _ := a.user(m1.AccessToken, m2.ID); u.GetPostsCount() != 0 {
			t.Errorf("m2's posts after = %d, want 0", u.GetPostsCount())
		}
	})
}

// P12: DeleteAccount checks a password, so it is rate-limited like login:
// 5 attempts a minute per account, in one budget with ChangePassword (the
// right password is refused too once they are used up), on every
// transport.
func TestRateLimit_DeleteAccount_P12(t *testing.T) {
	t.Parallel()
	for _, tr := range tu.Transports {
		t.Run(string(tr), func(t *testing.T) {
			t.Parallel()
			s := tu.MustServer(t, "sqlite", withRateLimits) // one server each: the IP budget is per server
			a := api{t: t, s: s, tr: tr}
			acc := s.MustAccount(t, "guessed")
			for range 5 {
				wantCode(t, a.deleteAccount(acc.AccessToken, "a wrong guess"), connect.CodePermissionDenied)
			}
			proxied, header := behindProxy(t, s, "")
			err := api{t: t, s: proxied, tr: tr}.deleteAccount(acc.AccessToken, acc.Password)
			wantRateLimited(t, tr, err, header(), "too many password attempts")
			if err := getMe(t, a.s, a.tr, acc.AccessToken); err != nil {
				t.Errorf("the account after the refusals: %v", err)
			}
		})
	}
}

// P27: an account deleted while others like, comment on and follow it,
// and it acts itself, never deadlocks nor fails with anything but
// not_found (or unauthenticated for its own token); every counter equals
// its rows after.
func TestDeleteAccount_WhileOthersActNeverDeadlocks_P27(t *testing.T) {
	t.Parallel()
	forEachServer(t, func(t *testing.T, s *tu.Server) {
		a := api{t: t, s: s, tr: tu.Connect}
		for round := range 3 {
			gone := s.MustAccount(t, fmt.Sprintf("busy%d", round))
			others := accounts(t, s, fmt.Sprintf("crowd%d_", round), 4)
			var posts []string
			for i := range 3 {
				posts = append(posts, a.post(gone.AccessToken, fmt.Sprintf("post %d", i)).GetId())
			}
			theirs := a.post(others[0].AccessToken, "theirs")
			st := newStorm(connect.CodeNotFound, connect.CodeUnauthenticated)
			var wg sync.WaitGroup
			start := make(chan struct{})
			for w, o := range others {
				wg.Go(func() {
					<-start
					for i := range 6 {
						p := posts[(w+i)%len(posts)]
						rpc[flockv1.LikePostResponse](t, s, st, "like", flockv1connect.PostServiceLikePostProcedure, o.AccessToken, &flockv1.LikePostRequest{PostId: p})
						rpc[flockv1.CreateCommentResponse](t, s, st, "comment", flockv1connect.PostServiceCreateCommentProcedure, o.AccessToken, &flockv1.CreateCommentRequest{PostId: p, Content: "hi"})
						rpc[flockv1.FollowResponse](t, s, st, "follow", flockv1connect.UserServiceFollowProcedure, o.AccessToken, &flockv1.FollowRequest{UserId: gone.ID})
						rpc[flockv1.UnfollowResponse](t, s, st, "unfollow", flockv1connect.UserServiceUnfollowProcedure, o.AccessToken, &flockv1.UnfollowRequest{UserId: gone.ID})
						rpc[flockv1.FollowResponse](t, s, st, "follow", flockv1connect.UserServiceFollowProcedure, o.AccessToken, &flockv1.FollowRequest{UserId: gone.ID})
					}
				})
			}
			wg.Go(func() {
				<-start
				for range 6 {
					rpc[flockv1.LikePostResponse](t, s, st, "own like", flockv1connect.PostServiceLikePostProcedure, gone.AccessToken, &flockv1.LikePostRequest{PostId: theirs.GetId()})
					rpc[flockv1.UnlikePostResponse](t, s, st, "own unlike", flockv1connect.PostServiceUnlikePostProcedure, gone.AccessToken, &flockv1.UnlikePostRequest{PostId: theirs.GetId()})
					rpc[flockv1.CreateCommentResponse](t, s, st, "own comment", flockv1connect.PostServiceCreateCommentProcedure, gone.AccessToken, &flockv1.CreateCommentRequest{PostId: theirs.GetId(), Content: "mine"})
					rpc[flockv1.FollowResponse](t, s, st, "own follow", flockv1connect.UserServiceFollowProcedure, gone.AccessToken, &flockv1.FollowRequest{UserId: others[1].ID})
				}
			})
			wg.Go(func() {
				<-start
				rpc[flockv1.DeleteAccountResponse](t, s, st, "delete", flockv1connect.UserServiceDeleteAccountProcedure, gone.AccessToken, &flockv1.DeleteAccountRequest{CurrentPassword: gone.Password})
			})
			close(start)
			wg.Wait()
			st.check(t)
			countersMatchRows(t, s)
			// Not one deadlock, not even one InTx reran: the deletion's
			// locks covered what it changed, the user's own likes and
			// comments from another session included (it reruns itself,
			// without a deadlock, when one slipped in before it held the
			// user; 3 of 30 deletions deadlocked before, stop 34).
			if n := s.App.DB().TxConflicts().Deadlocks; n != 0 {
				t.Errorf("round %d: %d deadlocks so far", round, n)
			}
			if _, err := a.user(others[0].AccessToken, gone.ID); connect.CodeOf(err) != connect.CodeNotFound {
				t.Errorf("round %d: the account after = %v", round, err)
			}
		}
	})
}

// DeleteAccount costs the same number of statements whatever the account
// holds: one with a post, a like, a comment, a follow each way, a video and
// two groups (one handed over, one deleted) and one with ten times as
// many of each.
func TestDeleteAccount_FixedQueriesWhateverItHolds(t *testing.T) {
	t.Parallel()
	forEachServer(t, func(t *testing.T, s *tu.Server) {
		a := api{t: t, s: s, tr: tu.Connect}
		others := accounts(t, s, "fixedq", 10)
		theirs := a.post(others[0].AccessToken, "theirs")
		seed := func(username string, n int) *tu.Account {
			acc := s.MustAccount(t, username)
			for i := range n {
				o := others[i%len(others)]
				p := a.post(acc.AccessToken, fmt.Sprintf("post %d", i))
				a.like(o.AccessToken, p.GetId())
				a.comment(acc.AccessToken, theirs.GetId(), "mine")
				a.comment(o.AccessToken, p.GetId(), "theirs")
				if i < len(others) {
					a.like(acc.AccessToken, a.post(o.AccessToken, "liked").GetId())
					if err := a.follow(acc.AccessToken, o.ID); err != nil {
						t.Fatal(err)
					}
					if err := a.follow(o.AccessToken, acc.ID); err != nil {
						t.Fatal(err)
					}
				}
				handed := a.createGroup(acc.AccessToken, fmt.Sprintf("handed %d", i), flockv1.GroupPrivacy_GROUP_PRIVACY_PUBLIC)
				if _, err := a.join(o.AccessToken, handed.GetId()); err != nil {
					t.Fatal(err)
				}
				a.createGroup(acc.AccessToken, fmt.Sprintf("alone %d", i), flockv1.GroupPrivacy_GROUP_PRIVACY_PUBLIC)
				v := &store.Video{OwnerID: acc.ID, Status: store.VideoProcessing, ContentType: "video/mp4"}
				if err := s.App.DB().CreateVideo(t.Context(), s.App.DB(), v); err != nil {
					t.Fatal(err)
				}
			}
			return acc
		}
		small, large := seed("fixedsmall", 1), seed("fixedlarge", 10)
		counter := &queryCounter{}
		s.App.DB().AddQueryHook(counter)
		statements := func(acc *tu.Account) int64 {
			before := counter.n.Load()
			if err := a.deleteAccount(acc.AccessToken, acc.Password); err != nil {
				t.Fatal(err)
			}
			return counter.n.Load() - before
		}
		n1, n10 := statements(small), statements(large)
		t.Logf("%s: DeleteAccount took %d statements for the small account, %d for the large one", s.App.DB().Engine, n1, n10)
		if n1 != n10 {
			t.Errorf("the small account took %d statements and the large one %d: cost grows with the account", n1, n10)
		}
		countersMatchRows(t, s)
	})
}
