package server_test

import (
	"archive/zip"
	"bytes"
	"crypto/rand"
	"encoding/json"
	"image/color"
	"image/jpeg"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
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
