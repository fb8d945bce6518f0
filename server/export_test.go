package server_test

import (
	"archive/zip"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"image/color"
	"image/jpeg"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	flockv1 "github.com/flock-social/flock/gen/go/flock/v1"
	"github.com/flock-social/flock/gen/go/flock/v1/flockv1connect"
	"github.com/flock-social/flock/internal/export"
	"github.com/flock-social/flock/internal/ratelimit"
	"github.com/flock-social/flock/internal/store"
	tu "github.com/flock-social/flock/internal/testutil"
	"github.com/flock-social/flock/internal/video"
)

// download fetches path (the export) with token as curl does: a GET over
// HTTP/1.1 with an Authorization header. It returns the answer and its body.
func download(t *testing.T, s *tu.Server, path, token string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, s.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := s.HTTP.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("GET %s: read body: %v", path, err)
	}
	return res, body
}

// exportArchive is an opened export: its files by name and its manifest.
type exportArchive struct {
	files    map[string]*zip.File
	names    []string // in the order of the archive
	manifest export.Manifest
}

func openArchive(t *testing.T, body []byte) *exportArchive {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(body), int64(len(body)))
	if err != nil {
		t.Fatalf("the export is not a zip archive: %v", err)
	}
	a := &exportArchive{files: map[string]*zip.File{}}
	for _, f := range zr.File {
		if _, dup := a.files[f.Name]; dup {
			t.Errorf("the archive holds %s twice", f.Name)
		}
		a.files[f.Name] = f
		a.names = append(a.names, f.Name)
	}
	if err := json.Unmarshal(a.read(t, export.ManifestFile), &a.manifest); err != nil {
		t.Fatalf("manifest.json: %v", err)
	}
	return a
}

func (a *exportArchive) read(t *testing.T, name string) []byte {
	t.Helper()
	f, ok := a.files[name]
	if !ok {
		t.Fatalf("the archive has no %s; it has %v", name, a.names)
	}
	rc, err := f.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc) // checks the CRC-32 too
	if err != nil {
		t.Fatalf("read %s: %v", name, err)
	}
	return b
}

// records returns the elements of a JSON array file, raw.
func (a *exportArchive) records(t *testing.T, name string) []json.RawMessage {
	t.Helper()
	var out []json.RawMessage
	if err := json.Unmarshal(a.read(t, name), &out); err != nil {
		t.Fatalf("%s is not a JSON array: %v", name, err)
	}
	if out == nil {
		t.Fatalf("%s is null, want an array", name)
	}
	return out
}

// messages reads a JSON array file of proto JSON messages.
func messages[M proto.Message](t *testing.T, a *exportArchive, name string, newM func() M) []M {
	t.Helper()
	var out []M
	for i, raw := range a.records(t, name) {
		m := newM()
		if err := protojson.Unmarshal(raw, m); err != nil {
			t.Fatalf("%s[%d] is not a %T: %v", name, i, m, err)
		}
		out = append(out, m)
	}
	return out
}

// plain reads a JSON array file of plain records.
func plain(t *testing.T, a *exportArchive, name string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, raw := range a.records(t, name) {
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

func keys(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func wantEqualMessages[M proto.Message](t *testing.T, what string, got, want []M) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d records, want %d", what, len(got), len(want))
		return
	}
	for i := range got {
		if !proto.Equal(got[i], want[i]) {
			t.Errorf("%s[%d] = %v\nwant %v", what, i, got[i], want[i])
		}
	}
}

// exportSeed is an account with some of everything, and what the API says
// about it.
type exportSeed struct {
	alice, bob, carol, dave, eve *tu.Account
	posts                        []string // alice's post ids, oldest first
	comments                     []*flockv1.Comment
	likes                        []string // post ids alice likes
	groups                       map[string][2]string
	video                        *flockv1.Video
}

func seedExport(t *testing.T, s *tu.Server, mp4 []byte) *exportSeed {
	t.Helper()
	sd := &exportSeed{groups: map[string][2]string{}}
	sd.alice, sd.bob, sd.carol = s.MustAccount(t, "alice"), s.MustAccount(t, "bob"), s.MustAccount(t, "carol")
	sd.dave, sd.eve = s.MustAccount(t, "dave"), s.MustAccount(t, "eve")
	alice := sd.alice.AccessToken
	call := func(proc, token string, req proto.Message) {
		t.Helper()
		if _, err := tu.Call[emptyAnswer](t.Context(), s, tu.Connect, proc, token, req); err != nil {
			t.Fatalf("%s: %v", proc, err)
		}
	}

	// A profile picture and interests.
	var pic bytes.Buffer
	if err := jpeg.Encode(&pic, solid(64, 64, color.RGBA{10, 120, 200, 255}), nil); err != nil {
		t.Fatal(err)
	}
	tu.MustCall[flockv1.UpdateMeResponse](t, s, tu.Connect, flockv1connect.UserServiceUpdateMeProcedure, alice,
		&flockv1.UpdateMeRequest{Avatar: pic.Bytes(), Bio: proto.String("exporting things"), Interests: []string{"golang", "zip"}})

	// Groups in each state: one she owns, one she joined, one she is
	// invited to, one she asked to join.
	newGroup := func(token, name string, privacy flockv1.GroupPrivacy) string {
		return tu.MustCall[flockv1.CreateGroupResponse](t, s, tu.Connect, flockv1connect.GroupServiceCreateGroupProcedure, token,
			&flockv1.CreateGroupRequest{Name: name, Description: "about " + name, Privacy: privacy}).GetGroup().GetId()
	}
	own := newGroup(alice, "alice's own", flockv1.GroupPrivacy_GROUP_PRIVACY_PUBLIC)
	joined := newGroup(sd.bob.AccessToken, "bob's open", flockv1.GroupPrivacy_GROUP_PRIVACY_PUBLIC)
	invited := newGroup(sd.carol.AccessToken, "carol's closed", flockv1.GroupPrivacy_GROUP_PRIVACY_PRIVATE)
	requested := newGroup(sd.dave.AccessToken, "dave's closed", flockv1.GroupPrivacy_GROUP_PRIVACY_PRIVATE)
	call(flockv1connect.GroupServiceJoinGroupProcedure, alice, &flockv1.JoinGroupRequest{GroupId: joined})
	call(flockv1connect.GroupServiceAddGroupMemberProcedure, sd.carol.AccessToken, &flockv1.AddGroupMemberRequest{GroupId: invited, UserId: sd.alice.ID})
	call(flockv1connect.GroupServiceJoinGroupProcedure, alice, &flockv1.JoinGroupRequest{GroupId: requested})
	sd.groups[own] = [2]string{"GROUP_ROLE_OWNER", "GROUP_MEMBERSHIP_STATE_ACTIVE"}
	sd.groups[joined] = [2]string{"GROUP_ROLE_MEMBER", "GROUP_MEMBERSHIP_STATE_ACTIVE"}
	sd.groups[invited] = [2]string{"GROUP_ROLE_UNSPECIFIED", "GROUP_MEMBERSHIP_STATE_INVITED"}
	sd.groups[requested] = [2]string{"GROUP_ROLE_UNSPECIFIED", "GROUP_MEMBERSHIP_STATE_REQUESTED"}

	// Posts: with hashtags, followers-only, in her group, with a video.
	newPost := func(req *flockv1.CreatePostRequest) string {
		id := tu.MustCall[flockv1.CreatePostResponse](t, s, tu.Connect, flockv1connect.PostServiceCreatePostProcedure, alice, req).GetPost().GetId()
		sd.posts = append(sd.posts, id)
		return id
	}
	first := newPost(&flockv1.CreatePostRequest{Content: "Hello #Golang and #zip, again #golang"})
	newPost(&flockv1.CreatePostRequest{Content: "only for my followers", Visibility: flockv1.Visibility_VISIBILITY_FOLLOWERS})
	newPost(&flockv1.CreatePostRequest{Content: "to my group #groups", GroupId: own})
	if mp4 != nil {
		v := upload(t, s, alice, mp4)
		sd.video = waitReady(t, s, alice, v.GetId())
		newPost(&flockv1.CreatePostRequest{Content: "a clip", VideoId: v.GetId()})
	}
	bobs := tu.MustCall[flockv1.CreatePostResponse](t, s, tu.Connect, flockv1connect.PostServiceCreatePostProcedure, sd.bob.AccessToken,
		&flockv1.CreatePostRequest{Content: "bob was here"}).GetPost().GetId()

	// Comments on her own post and on bob's; likes of both.
	for _, c := range []*flockv1.CreateCommentRequest{{PostId: first, Content: "replying to myself"}, {PostId: bobs, Content: "hi bob"}} {
		sd.comments = append(sd.comments, tu.MustCall[flockv1.CreateCommentResponse](t, s, tu.Connect,
			flockv1connect.PostServiceCreateCommentProcedure, alice, c).GetComment())
	}
	tu.MustCall[flockv1.CreateCommentResponse](t, s, tu.Connect, flockv1connect.PostServiceCreateCommentProcedure, sd.bob.AccessToken,
		&flockv1.CreateCommentRequest{PostId: first, Content: "bob's comment is not alice's data"})
	for _, id := range []string{first, bobs} {
		call(flockv1connect.PostServiceLikePostProcedure, alice, &flockv1.LikePostRequest{PostId: id})
		sd.likes = append(sd.likes, id)
	}
	call(flockv1connect.PostServiceLikePostProcedure, sd.carol.AccessToken, &flockv1.LikePostRequest{PostId: first})

	// Follows both ways, and a block.
	call(flockv1connect.UserServiceFollowProcedure, alice, &flockv1.FollowRequest{UserId: sd.bob.ID})
	call(flockv1connect.UserServiceFollowProcedure, alice, &flockv1.FollowRequest{UserId: sd.carol.ID})
	call(flockv1connect.UserServiceFollowProcedure, sd.bob.AccessToken, &flockv1.FollowRequest{UserId: sd.alice.ID})
	call(flockv1connect.UserServiceFollowProcedure, sd.dave.AccessToken, &flockv1.FollowRequest{UserId: sd.alice.ID})
	call(flockv1connect.UserServiceBlockProcedure, alice, &flockv1.BlockRequest{UserId: sd.eve.ID})
	return sd
}

// emptyAnswer reads any answer whose content the caller does not need.
type emptyAnswer = flockv1.FollowResponse

// A8: the export is a zip whose every file matches the account's data as
// the API gives it: the profile as GetMe, each post as GetPost (without
// author and file URLs), comments, likes, follows both ways, blocks, each
// group membership in each state, the activity log as ListActivity, the
// video as GetVideo; the picture and the video's files byte for byte as
// stored; the manifest lists exactly the archive's other files with their
// counts. Other users appear only as summaries (P26). Both engines.
func TestExport_ArchiveHoldsEveryRecordOfTheAccount(t *testing.T) {
	t.Parallel()
	mp4 := mp4Fixture(t, "160x120", 10, 1)
	forEachServer(t, func(t *testing.T, s *tu.Server) {
		sd := seedExport(t, s, mp4)
		alice := sd.alice.AccessToken

		res, body := download(t, s, "/api/users/export/", alice)
		if res.StatusCode != http.StatusOK {
			t.Fatalf("export = %d %s", res.StatusCode, body)
		}
		today := time.Now().UTC().Format("2006-01-02")
		if got := res.Header.Get("Content-Type"); got != "application/zip" {
			t.Errorf("Content-Type = %q", got)
		}
		if got, want := res.Header.Get("Content-Disposition"), `attachment; filename="flock-export-alice-`+today+`.zip"`; got != want {
			t.Errorf("Content-Disposition = %q, want %q", got, want)
		}
		if got := res.Header.Get("Cache-Control"); got != "no-store" {
			t.Errorf("Cache-Control = %q, want no-store", got)
		}
		a := openArchive(t, body)

		// The manifest: version, account, and exactly the other files.
		m := a.manifest
		if m.Version != 1 || m.User.ID != sd.alice.ID || m.User.Username != "alice" || time.Since(m.ExportedAt) > time.Hour {
			t.Errorf("manifest = version %d, user %+v, exportedAt %s", m.Version, m.User, m.ExportedAt)
		}
		var listed []string
		for _, f := range m.Files {
			listed = append(listed, f.Name)
		}
		if want := slices.DeleteFunc(slices.Clone(a.names), func(n string) bool { return n == export.ManifestFile }); !slices.Equal(listed, want) {
			t.Errorf("manifest lists %v, the archive holds %v", listed, a.names)
		}
		if a.names[len(a.names)-1] != export.ManifestFile {
			t.Errorf("manifest.json is not the last file: %v", a.names)
		}
		for _, f := range m.Files {
			zf := a.files[f.Name]
			if zf == nil {
				continue
			}
			switch {
			case f.Records != nil:
				wantMethod(t, zf, zip.Deflate)
				n := int64(1)
				if f.Name != export.ProfileFile {
					n = int64(len(a.records(t, f.Name)))
				}
				if *f.Records != n || f.ContentType != "application/json" {
					t.Errorf("manifest: %s has %d records (%s), the file %d", f.Name, *f.Records, f.ContentType, n)
				}
			case f.Bytes != nil:
				wantMethod(t, zf, zip.Store)
				if *f.Bytes != int64(zf.UncompressedSize64) {
					t.Errorf("manifest: %s is %d bytes, the file %d", f.Name, *f.Bytes, zf.UncompressedSize64)
				}
			default:
				t.Errorf("manifest: %s has neither records nor bytes", f.Name)
			}
		}

		// profile.json is GetMe's user, private fields included.
		me := tu.MustCall[flockv1.GetMeResponse](t, s, tu.Connect, flockv1connect.UserServiceGetMeProcedure, alice, &flockv1.GetMeRequest{}).GetUser()
		var profile flockv1.User
		if err := protojson.Unmarshal(a.read(t, export.ProfileFile), &profile); err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(&profile, me) || profile.GetEmail() != sd.alice.Email || profile.GetAvatarUrl() == "" {
			t.Errorf("profile.json = %v\nGetMe = %v", &profile, me)
		}

		// posts.json: every post of hers, oldest first, as GetPost gives it.
		var wantPosts []*flockv1.Post
		for _, id := range sd.posts {
			p := tu.MustCall[flockv1.GetPostResponse](t, s, tu.Connect, flockv1connect.PostServiceGetPostProcedure, alice, &flockv1.GetPostRequest{PostId: id}).GetPost()
			p.Author = nil
			if p.Video != nil {
				p.Video.PlaybackUrl, p.Video.PosterUrl = "", ""
			}
			wantPosts = append(wantPosts, p)
		}
		posts := messages(t, a, export.PostsFile, func() *flockv1.Post { return new(flockv1.Post) })
		wantEqualMessages(t, "posts.json", posts, wantPosts)
		if len(posts) == 4 {
			if got := posts[0].GetHashtags(); !slices.Equal(got, []string{"golang", "zip"}) || !posts[0].GetLikedByMe() || posts[0].GetLikesCount() != 2 || posts[0].GetCommentsCount() != 2 {
				t.Errorf("first post = %v", posts[0])
			}
			if posts[2].GetGroupId() == "" || posts[3].GetVideo().GetId() != sd.video.GetId() {
				t.Errorf("group post %v, video post %v", posts[2], posts[3])
			}
		}

		// comments.json: hers only, on any post, without author.
		var wantComments []*flockv1.Comment
		for _, c := range sd.comments {
			c = proto.Clone(c).(*flockv1.Comment)
			c.Author = nil
			wantComments = append(wantComments, c)
		}
		wantEqualMessages(t, "comments.json", messages(t, a, export.CommentsFile, func() *flockv1.Comment { return new(flockv1.Comment) }), wantComments)

		// likes.json: {postId, createdAt}, in post id order.
		var liked []string
		for _, l := range plain(t, a, export.LikesFile) {
			if k := keys(l); !slices.Equal(k, []string{"createdAt", "postId"}) {
				t.Errorf("a like has keys %v", k)
			}
			liked = append(liked, l["postId"].(string))
		}
		if want := slices.Sorted(slices.Values(sd.likes)); !slices.Equal(liked, want) {
			t.Errorf("likes.json = %v, want %v", liked, want)
		}

		// following, followers, blocks: summaries of the other users only.
		users := func(name string) []string {
			var out []string
			for _, r := range plain(t, a, name) {
				u, _ := r["user"].(map[string]any)
				if k := keys(r); !slices.Equal(k, []string{"createdAt", "user"}) {
					t.Errorf("%s: a record has keys %v", name, k)
				}
				if k := keys(u); !slices.Equal(k, []string{"fullName", "id", "username"}) {
					t.Errorf("%s: a user has keys %v, want only id, username, fullName (P26)", name, k)
				}
				if _, err := time.Parse(time.RFC3339Nano, r["createdAt"].(string)); err != nil {
					t.Errorf("%s: createdAt: %v", name, err)
				}
				if u["fullName"] != "User "+u["username"].(string) {
					t.Errorf("%s: %v", name, u)
				}
				out = append(out, u["id"].(string))
			}
			return out
		}
		for _, c := range []struct {
			file string
			want []string
		}{
			{export.FollowingFile, []string{sd.bob.ID, sd.carol.ID}},
			{export.FollowersFile, []string{sd.bob.ID, sd.dave.ID}},
			{export.BlocksFile, []string{sd.eve.ID}},
		} {
			if got := users(c.file); !slices.Equal(got, c.want) {
				t.Errorf("%s = %v, want %v (oldest first)", c.file, got, c.want)
			}
		}
		if int32(len(users(export.FollowersFile))) != me.GetFollowersCount() || int32(len(users(export.FollowingFile))) != me.GetFollowingCount() {
			t.Errorf("follow lists disagree with the profile's counts %d/%d", me.GetFollowersCount(), me.GetFollowingCount())
		}

		// groups.json: each membership with its state and role.
		memberships := plain(t, a, export.GroupsFile)
		if len(memberships) != len(sd.groups) {
			t.Errorf("groups.json has %d records, want %d", len(memberships), len(sd.groups))
		}
		for _, r := range memberships {
			raw, _ := json.Marshal(r["group"])
			var g flockv1.Group
			if err := protojson.Unmarshal(raw, &g); err != nil {
				t.Fatalf("groups.json: %v", err)
			}
			want, ok := sd.groups[g.GetId()]
			if !ok || g.GetMyRole().String() != want[0] || g.GetMyMembershipState().String() != want[1] || g.GetName() == "" {
				t.Errorf("groups.json: %v, want role and state %v", &g, want)
			}
		}

		// activity.json: the whole log, oldest first, as ListActivity lists it.
		var log []*flockv1.Activity
		for token := ""; ; {
			pg := tu.MustCall[flockv1.ListActivityResponse](t, s, tu.Connect, flockv1connect.ActivityServiceListActivityProcedure, alice,
				&flockv1.ListActivityRequest{PageSize: 100, PageToken: token})
			log = append(log, pg.GetActivities()...)
			if token = pg.GetNextPageToken(); token == "" {
				break
			}
		}
		slices.Reverse(log)
		if len(log) < 10 {
			t.Errorf("only %d activities were logged", len(log))
		}
		wantEqualMessages(t, "activity.json", messages(t, a, export.ActivityFile, func() *flockv1.Activity { return new(flockv1.Activity) }), log)

		// videos.json and the media, byte for byte as stored.
		v := tu.MustCall[flockv1.GetVideoResponse](t, s, tu.Connect, flockv1connect.PostServiceGetVideoProcedure, alice, &flockv1.GetVideoRequest{VideoId: sd.video.GetId()}).GetVideo()
		v.PlaybackUrl, v.PosterUrl = "", ""
		wantEqualMessages(t, "videos.json", messages(t, a, export.VideosFile, func() *flockv1.Video { return new(flockv1.Video) }), []*flockv1.Video{v})
		avatarKey := strings.TrimPrefix(me.GetAvatarUrl(), s.URL+"/media/")
		var media []string
		for _, name := range a.names {
			if strings.HasPrefix(name, export.MediaDir) {
				media = append(media, name)
			}
		}
		wantMedia := []string{"media/" + avatarKey, "media/" + video.PlaybackKey(v.GetId()), "media/" + video.PosterKey(v.GetId())}
		if !slices.Equal(media, wantMedia) {
			t.Errorf("media = %v, want %v", media, wantMedia)
		}
		for _, name := range wantMedia {
			stored, err := os.ReadFile(filepath.Join(s.Config.DataDir, "media", filepath.FromSlash(strings.TrimPrefix(name, "media/"))))
			if err != nil {
				t.Fatal(err)
			}
			if got := a.read(t, name); len(stored) == 0 || !bytes.Equal(got, stored) {
				t.Errorf("%s: %d bytes in the archive, %d stored, not equal", name, len(got), len(stored))
			}
		}

		// Nothing of anyone else: bob's post and comment are in no file.
		for _, name := range a.names {
			if strings.HasSuffix(name, ".json") && bytes.Contains(a.read(t, name), []byte("bob's comment")) {
				t.Errorf("%s holds bob's comment", name)
			}
		}
	}, processing)
}

func wantMethod(t *testing.T, f *zip.File, method uint16) {
	t.Helper()
	if f.Method != method {
		t.Errorf("%s is stored with method %d, want %d", f.Name, f.Method, method)
	}
}

// A8 and P1: the export needs a valid bearer token (401 as a JSON
// google.rpc.Status otherwise, like every REST error), answers with or
// without the trailing slash, and always holds the caller's own account:
// another user's token gets that user's archive, with none of the first
// user's records. Both engines.
func TestExport_OnlyTheCallersOwnData_P1(t *testing.T) {
	t.Parallel()
	forEachServer(t, func(t *testing.T, s *tu.Server) {
		sd := seedExport(t, s, nil)
		for _, c := range []struct{ name, token string }{{"no token", ""}, {"a bad token", "not-a-token"}} {
			res, body := download(t, s, "/api/users/export/", c.token)
			var st struct {
				Code    int    `json:"code"`
				Message string `json:"message"`
			}
			if err := json.Unmarshal(body, &st); err != nil || res.StatusCode != http.StatusUnauthorized ||
				st.Code != int(connect.CodeUnauthenticated) || st.Message == "" || !strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") {
				t.Errorf("%s: %d %s %q, want 401 with a google.rpc.Status", c.name, res.StatusCode, res.Header.Get("Content-Type"), body)
			}
		}

		res, body := download(t, s, "/api/users/export", sd.bob.AccessToken)
		if res.StatusCode != http.StatusOK {
			t.Fatalf("bob's export = %d %s", res.StatusCode, body)
		}
		if cd := res.Header.Get("Content-Disposition"); !regexp.MustCompile(`^attachment; filename="flock-export-bob-\d{4}-\d\d-\d\d\.zip"$`).MatchString(cd) {
			t.Errorf("Content-Disposition = %q", cd)
		}
		a := openArchive(t, body)
		if a.manifest.User.ID != sd.bob.ID || a.manifest.User.Username != "bob" {
			t.Errorf("bob's export is of %+v", a.manifest.User)
		}
		var profile flockv1.User
		if err := protojson.Unmarshal(a.read(t, export.ProfileFile), &profile); err != nil || profile.GetId() != sd.bob.ID || profile.GetEmail() != sd.bob.Email {
			t.Errorf("bob's profile.json = %v, %v", &profile, err)
		}
		posts := messages(t, a, export.PostsFile, func() *flockv1.Post { return new(flockv1.Post) })
		if len(posts) != 1 || posts[0].GetContent() != "bob was here" {
			t.Errorf("bob's posts.json = %v", posts)
		}
		comments := messages(t, a, export.CommentsFile, func() *flockv1.Comment { return new(flockv1.Comment) })
		if len(comments) != 1 || comments[0].GetContent() != "bob's comment is not alice's data" {
			t.Errorf("bob's comments.json = %v", comments)
		}
		for _, name := range a.names {
			if b := a.read(t, name); bytes.Contains(b, []byte(sd.alice.Email)) || bytes.Contains(b, []byte("replying to myself")) {
				t.Errorf("bob's %s holds alice's private data", name)
			}
		}
	})
}

// P12: exports are rate-limited per account (three an hour); the fourth
// is refused with 429, Retry-After and the plain sentence, before any
// archive starts.
func TestExport_RateLimited_P12(t *testing.T) {
	t.Parallel()
	forEachServer(t, func(t *testing.T, s *tu.Server) {
		a := s.MustAccount(t, "exporter")
		for i := range ratelimit.Rules["export"].PerAccount.Burst {
			if res, body := download(t, s, "/api/users/export/", a.AccessToken); res.StatusCode != http.StatusOK {
				t.Fatalf("export %d = %d %s", i+1, res.StatusCode, body)
			}
		}
		res, body := download(t, s, "/api/users/export/", a.AccessToken)
		var st map[string]any
		if err := json.Unmarshal(body, &st); err != nil || res.StatusCode != http.StatusTooManyRequests || st["code"] != float64(connect.CodeResourceExhausted) {
			t.Fatalf("fourth export = %d %s", res.StatusCode, body)
		}
		if want := refusalMessage(t, "too many data exports", res.Header.Get("Retry-After")); st["message"] != want {
			t.Errorf("message = %q, want %q", st["message"], want)
		}
	}, withRateLimits)
}

// A failure after the archive has started (here a stored file whose
// metadata is corrupt) cannot change the 200 already sent: the server
// breaks the connection, so the client sees a failed download, never a
// short archive that looks whole. Both engines.
func TestExport_FailureMidwayBreaksTheDownload(t *testing.T) {
	t.Parallel()
	forEachServer(t, func(t *testing.T, s *tu.Server) {
		a := s.MustAccount(t, "broken")
		var pic bytes.Buffer
		if err := jpeg.Encode(&pic, solid(32, 32, color.RGBA{200, 0, 0, 255}), nil); err != nil {
			t.Fatal(err)
		}
		url := tu.MustCall[flockv1.UpdateMeResponse](t, s, tu.Connect, flockv1connect.UserServiceUpdateMeProcedure, a.AccessToken,
			&flockv1.UpdateMeRequest{Avatar: pic.Bytes()}).GetUser().GetAvatarUrl()
		// Enough posts that part of the archive has gone out (through the
		// compressor's window and the handler's 64 KiB buffer) before the
		// picture is copied: random base32 text compresses to about 5/8.
		for range 60 {
			var text strings.Builder
			for range 150 {
				text.WriteString(rand.Text() + " ")
			}
			tu.MustCall[flockv1.CreatePostResponse](t, s, tu.Connect, flockv1connect.PostServiceCreatePostProcedure, a.AccessToken,
				&flockv1.CreatePostRequest{Content: text.String()})
		}
		// fileblob keeps a file's metadata beside it; unreadable metadata
		// fails the read of the file with an error that is not "not found".
		attrs := filepath.Join(s.Config.DataDir, "media", filepath.FromSlash(strings.TrimPrefix(url, s.URL+"/media/"))) + ".attrs"
		if err := os.WriteFile(attrs, []byte("{not json"), 0o600); err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, s.URL+"/api/users/export/", nil)
		req.Header.Set("Authorization", "Bearer "+a.AccessToken)
		res, err := s.HTTP.Do(req)
		if err != nil {
			t.Fatalf("the archive did not start: %v", err)
		}
		defer res.Body.Close()
		body, err := io.ReadAll(res.Body)
		if res.StatusCode != http.StatusOK || err == nil || len(body) < 32<<10 {
			t.Fatalf("download = %d, %d bytes, read error %v; want 200, part of an archive, then a broken connection", res.StatusCode, len(body), err)
		}
		if _, zerr := zip.NewReader(bytes.NewReader(body), int64(len(body))); zerr == nil {
			t.Errorf("the cut-short body is a readable zip")
		}
	})
}

// seedPosts writes n posts by userID straight into the store, in batches,
// with text that compresses like prose (words drawn at random), and counts
// them on the author.
func seedPosts(tb testing.TB, s *tu.Server, userID string, n int, rng *mrand.Rand) {
	tb.Helper()
	db := s.App.DB()
	words := strings.Fields("the a of to and in is it you that he was for on are with as his they be at one have this from " +
		"or had by hot word but what some we can out other were all there when up use your how said an each she which do " +
		"their time if will way about many then them write would like so these her long make thing see him two has look")
	sentences := make([]string, 256)
	for i := range sentences {
		var text strings.Builder
		for j := range 8 + rng.IntN(12) {
			if j > 0 {
				text.WriteByte(' ')
			}
			text.WriteString(words[rng.IntN(len(words))])
		}
		sentences[i] = text.String() + "."
	}
	const batch = 500
	for done := 0; done < n; {
		rows := make([]store.Post, min(batch, n-done))
		for i := range rows {
			content := sentences[rng.IntN(len(sentences))]
			for range rng.IntN(4) {
				content += " " + sentences[rng.IntN(len(sentences))]
			}
			now := db.Now()
			rows[i] = store.Post{ID: store.NewID(), AuthorID: userID, Content: content, Visibility: store.VisibilityPublic, CreatedAt: now, UpdatedAt: now}
		}
		if _, err := db.NewInsert().Model(&rows).Exec(tb.Context()); err != nil {
			tb.Fatalf("seed posts: %v", err)
		}
		done += len(rows)
	}
	if _, err := db.NewUpdate().Model((*store.User)(nil)).Set("posts_count = posts_count + ?", n).Where("id = ?", userID).Exec(tb.Context()); err != nil {
		tb.Fatal(err)
	}
}

// seedStoredVideo records a ready video of userID whose playable file is
// size random bytes, written straight into the local media storage, and
// returns the SHA-256 of that file (not the file: the heap is measured).
func seedStoredVideo(tb testing.TB, s *tu.Server, userID string, size int64) (id string, sum []byte) {
	tb.Helper()
	db := s.App.DB()
	v := &store.Video{OwnerID: userID, Status: store.VideoReady, ContentType: "video/mp4", OriginalBytes: size, SizeBytes: size,
		DurationSeconds: 60, Width: 640, Height: 360}
	if err := db.CreateVideo(tb.Context(), db, v); err != nil {
		tb.Fatal(err)
	}
	for key, n := range map[string]int64{video.PlaybackKey(v.ID): size, video.PosterKey(v.ID): 4096} {
		path := filepath.Join(s.Config.DataDir, "media", filepath.FromSlash(key))
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			tb.Fatal(err)
		}
		f, err := os.Create(path)
		if err != nil {
			tb.Fatal(err)
		}
		h := sha256.New()
		if _, err := io.CopyN(io.MultiWriter(f, h), rand.Reader, n); err != nil {
			tb.Fatal(err)
		}
		if err := f.Close(); err != nil {
			tb.Fatal(err)
		}
		if key == video.PlaybackKey(v.ID) {
			sum = h.Sum(nil)
		}
	}
	return v.ID, sum
}

// exportRun is one measured export.
type exportRun struct {
	path     string        // the archive, in a temp dir
	bytes    int64         // its size
	took     time.Duration // from the request to the last byte
	heapPeak uint64        // the most the heap grew above its level before the request
}

// measureExport downloads token's export into a file while it samples the
// heap of this process, where the server runs: the growth of live heap
// objects above their level before the request, at its peak. The garbage
// collector runs at GOGC=10 meanwhile, so that garbage left for the next
// cycle (up to 10% of the live heap) barely counts. The client streams the
// body to disk through a 32 KiB buffer and adds nothing that grows.
func measureExport(tb testing.TB, s *tu.Server, token string) exportRun {
	tb.Helper()
	defer debug.SetGCPercent(debug.SetGCPercent(10))
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	heap := func() uint64 { metrics.Read(sample); return sample[0].Value.Uint64() }
	runtime.GC()
	base := heap()
	stop, peak := make(chan struct{}), make(chan uint64)
	go func() {
		var top uint64
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				peak <- top
				return
			case <-tick.C:
				top = max(top, heap())
			}
		}
	}()
	run := exportRun{path: filepath.Join(tb.TempDir(), "export.zip")}
	f, err := os.Create(run.path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	start := time.Now()
	req, _ := http.NewRequestWithContext(tb.Context(), http.MethodGet, s.URL+"/api/users/export/", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := s.HTTP.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(res.Body)
		tb.Fatalf("export = %d %s", res.StatusCode, b)
	}
	if run.bytes, err = io.CopyBuffer(f, struct{ io.Reader }{res.Body}, make([]byte, 32<<10)); err != nil {
		tb.Fatalf("download: %v", err)
	}
	run.took = time.Since(start)
	close(stop)
	if top := <-peak; top > base {
		run.heapPeak = top - base
	}
	return run
}

// checkLargeArchive opens a measured archive and checks its posts (counted
// as a stream) and its video against what was seeded.
func checkLargeArchive(tb testing.TB, run exportRun, posts int, videoID string, videoSum []byte) {
	tb.Helper()
	zr, err := zip.OpenReader(run.path)
	if err != nil {
		tb.Fatalf("the export is not a zip archive: %v", err)
	}
	defer zr.Close()
	files := map[string]*zip.File{}
	for _, f := range zr.File {
		files[f.Name] = f
	}
	open := func(name string) io.ReadCloser {
		f := files[name]
		if f == nil {
			tb.Fatalf("the archive has no %s", name)
		}
		rc, err := f.Open()
		if err != nil {
			tb.Fatal(err)
		}
		return rc
	}
	rc := open(export.PostsFile)
	dec := json.NewDecoder(rc)
	if _, err := dec.Token(); err != nil {
		tb.Fatal(err)
	}
	n, last := 0, ""
	for dec.More() {
		var p struct{ ID string }
		if err := dec.Decode(&p); err != nil {
			tb.Fatalf("posts.json record %d: %v", n, err)
		}
		if p.ID <= last {
			tb.Fatalf("posts.json: %s after %s, want oldest first", p.ID, last)
		}
		n, last = n+1, p.ID
	}
	rc.Close()
	if n != posts {
		tb.Errorf("posts.json has %d posts, want %d", n, posts)
	}
	rc = open(export.MediaDir + video.PlaybackKey(videoID))
	h := sha256.New()
	n64, err := io.Copy(h, rc)
	rc.Close()
	if err != nil || !bytes.Equal(h.Sum(nil), videoSum) {
		tb.Errorf("the video in the archive (%d bytes, %v) differs from the stored file", n64, err)
	}
}

// exportHeapBound is the most the server's heap may grow during one
// export, whatever the account's size.
const exportHeapBound = 16 << 20

// The export runs in constant memory: an account with 1,000 posts and then
// 10,000 posts, plus an 8 MiB video, each exported while this process's
// heap is sampled; the heap grows by less than 16 MiB either way, and by
// about the same at ten times the data. Not parallel, so that no other
// test's allocations are counted; skipped with -short. Both engines. The
// large variant is BenchmarkExport_LargeAccount.
func TestExport_LargeAccountInConstantMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("seeds 10,000 posts")
	}
	for _, engine := range tu.Engines(t) {
		t.Run(engine, func(t *testing.T) {
			s := tu.MustServer(t, engine)
			a := s.MustAccount(t, "big")
			rng := mrand.New(mrand.NewPCG(1, 2))
			videoID, videoSum := seedStoredVideo(t, s, a.ID, 8<<20)
			seeded := 0
			for _, n := range []int{1_000, 10_000} {
				seedPosts(t, s, a.ID, n-seeded, rng)
				seeded = n
				run := measureExport(t, s, a.AccessToken)
				t.Logf("%s: %d posts + 8 MiB video: %.1f MiB archive in %s, heap grew by at most %.1f MiB",
					engine, n, float64(run.bytes)/(1<<20), run.took.Round(time.Millisecond), float64(run.heapPeak)/(1<<20))
				if run.heapPeak >= exportHeapBound {
					t.Errorf("%d posts: the heap grew by %.1f MiB during the export, want under %d MiB", n, float64(run.heapPeak)/(1<<20), exportHeapBound>>20)
				}
				checkLargeArchive(t, run, n, videoID, videoSum)
			}
		})
	}
}

// BenchmarkExport_LargeAccount exports an account of 100,000 posts and a
// 64 MiB video on SQLite and reports the archive's size, the time and the
// heap's peak growth during the export (measured as in
// TestExport_LargeAccountInConstantMemory). Run it once:
//
//	go test ./server -run '^$' -bench BenchmarkExport_LargeAccount -benchtime 1x
func BenchmarkExport_LargeAccount(b *testing.B) {
	s := tu.MustServer(b, "sqlite")
	a := s.MustAccount(b, "huge")
	const posts = 100_000
	seedPosts(b, s, a.ID, posts, mrand.New(mrand.NewPCG(3, 4)))
	videoID, videoSum := seedStoredVideo(b, s, a.ID, 64<<20)
	b.ResetTimer()
	var run exportRun
	for range b.N {
		run = measureExport(b, s, a.AccessToken)
	}
	b.StopTimer()
	b.SetBytes(run.bytes)
	b.ReportMetric(float64(run.heapPeak)/(1<<20), "peak-heap-growth-MiB")
	b.ReportMetric(float64(run.bytes)/(1<<20), "archive-MiB")
	checkLargeArchive(b, run, posts, videoID, videoSum)
}
