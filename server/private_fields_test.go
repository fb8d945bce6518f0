package server_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	flockv1 "github.com/flock-social/flock/gen/go/flock/v1"
	"github.com/flock-social/flock/gen/go/flock/v1/flockv1connect"
	tu "github.com/flock-social/flock/internal/testutil"
)

// privateFields are the JSON names of the User fields that only the
// account's owner gets (property 26). interests, a list, has no presence:
// it is empty on other users' profiles.
var privateFields = []string{"email", "emailVerified", "role"}

// profileWorld is a scene in which me meets them (and a third user,
// suggested to me through them) in every answer that carries profiles.
type profileWorld struct {
	me, them, third, blockedByMe *tu.Account
	theirPost, myPost, group     string
}

// profileView is one answer that carries other users' profiles, read by me.
type profileView struct {
	name      string
	procedure string
	// rest is the REST path (a GET) of the same call.
	rest func(w *profileWorld) string
	req  func(w *profileWorld) proto.Message
	// binary calls the procedure over a binary transport (gRPC, gRPC-Web).
	binary func(a api, procedure, token string, req proto.Message) (proto.Message, error)
}

// viewOf makes a profileView whose binary call decodes Res.
func viewOf[Res any, ResPtr interface {
	*Res
	proto.Message
}](name, procedure string, rest func(w *profileWorld) string, req func(w *profileWorld) proto.Message) profileView {
	return profileView{name: name, procedure: procedure, rest: rest, req: req,
		binary: func(a api, procedure, token string, req proto.Message) (proto.Message, error) {
			return call[Res, ResPtr](a, procedure, token, req)
		}}
}

// Every answer that shows other users' profiles. A new one is one row.
var profileViews = []profileView{
	viewOf[flockv1.GetUserResponse]("GetUser", flockv1connect.UserServiceGetUserProcedure,
		func(w *profileWorld) string { return "/api/users/" + w.them.ID + "/" },
		func(w *profileWorld) proto.Message { return &flockv1.GetUserRequest{UserId: w.them.ID} }),
	viewOf[flockv1.SearchUsersResponse]("SearchUsers", flockv1connect.UserServiceSearchUsersProcedure,
		func(w *profileWorld) string { return "/api/users/search/?query=" + url.QueryEscape(w.them.Username) },
		func(w *profileWorld) proto.Message { return &flockv1.SearchUsersRequest{Query: w.them.Username} }),
	viewOf[flockv1.ListFollowersResponse]("ListFollowers", flockv1connect.UserServiceListFollowersProcedure,
		func(w *profileWorld) string { return "/api/users/" + w.me.ID + "/followers/" },
		func(w *profileWorld) proto.Message { return &flockv1.ListFollowersRequest{UserId: w.me.ID} }),
	viewOf[flockv1.ListFollowingResponse]("ListFollowing", flockv1connect.UserServiceListFollowingProcedure,
		func(w *profileWorld) string { return "/api/users/" + w.me.ID + "/following/" },
		func(w *profileWorld) proto.Message { return &flockv1.ListFollowingRequest{UserId: w.me.ID} }),
	viewOf[flockv1.ListBlocksResponse]("ListBlocks", flockv1connect.UserServiceListBlocksProcedure,
		func(*profileWorld) string { return "/api/users/blocks/" },
		func(*profileWorld) proto.Message { return &flockv1.ListBlocksRequest{} }),
	viewOf[flockv1.SuggestUsersResponse]("SuggestUsers", flockv1connect.UserServiceSuggestUsersProcedure,
		func(*profileWorld) string { return "/api/posts/suggestions/" },
		func(*profileWorld) proto.Message { return &flockv1.SuggestUsersRequest{} }),
	viewOf[flockv1.GetPostResponse]("GetPost author", flockv1connect.PostServiceGetPostProcedure,
		func(w *profileWorld) string { return "/api/posts/" + w.theirPost + "/" },
		func(w *profileWorld) proto.Message { return &flockv1.GetPostRequest{PostId: w.theirPost} }),
	viewOf[flockv1.ListFeedResponse]("ListFeed authors", flockv1connect.PostServiceListFeedProcedure,
		func(*profileWorld) string { return "/api/posts/" },
		func(*profileWorld) proto.Message { return &flockv1.ListFeedRequest{} }),
	viewOf[flockv1.ListCommentsResponse]("ListComments authors", flockv1connect.PostServiceListCommentsProcedure,
		func(w *profileWorld) string { return "/api/posts/" + w.myPost + "/comments/" },
		func(w *profileWorld) proto.Message { return &flockv1.ListCommentsRequest{PostId: w.myPost} }),
	viewOf[flockv1.ListNotificationsResponse]("ListNotifications actors", flockv1connect.NotificationServiceListNotificationsProcedure,
		func(*profileWorld) string { return "/api/notifications/" },
		func(*profileWorld) proto.Message { return &flockv1.ListNotificationsRequest{} }),
	viewOf[flockv1.GetGroupResponse]("GetGroup members", flockv1connect.GroupServiceGetGroupProcedure,
		func(w *profileWorld) string { return "/api/groups/" + w.group + "/" },
		func(w *profileWorld) proto.Message { return &flockv1.GetGroupRequest{GroupId: w.group} }),
	viewOf[flockv1.ListGroupMembersResponse]("ListGroupMembers", flockv1connect.GroupServiceListGroupMembersProcedure,
		func(w *profileWorld) string { return "/api/groups/" + w.group + "/members/" },
		func(w *profileWorld) proto.Message { return &flockv1.ListGroupMembersRequest{GroupId: w.group} }),
}

// P26: other people's profiles carry no private fields at all, on every
// transport: in JSON (REST and Connect) the keys email, emailVerified and
// role are absent, not empty; in binary (gRPC, gRPC-Web) the fields are
// unset. The caller's own profile carries them, false and all.
func TestProfile_OthersCarryNoPrivateFields_P26(t *testing.T) {
	t.Parallel()
	forEachTransport(t, func(t *testing.T, a api) {
		w := newProfileWorld(a)
		for _, v := range profileViews {
			others := 0
			visit := func(id string, has func(field string) bool) {
				if id == w.me.ID {
					return
				}
				others++
				for _, f := range privateFields {
					if has(f) {
						t.Errorf("%s: the profile of %s carries %s", v.name, id, f)
					}
				}
			}
			switch a.tr {
			case tu.REST, tu.Connect:
				visitJSONUsers(t, v.name, viewJSON(a, v, w), visit)
			default:
				res, err := v.binary(a, v.procedure, w.me.AccessToken, v.req(w))
				if err != nil {
					t.Fatalf("%s: %v", v.name, err)
				}
				visitProtoUsers(res.ProtoReflect(), visit)
			}
			if others == 0 {
				t.Errorf("%s shows no other user's profile: the row proves nothing", v.name)
			}
		}

		// One's own profile carries all of them: GetMe (verified) and
		// Register's answer (not yet verified: emailVerified is false, and there).
		own := map[string]struct {
			token string
			req   proto.Message
			rest  string // method and path
			want  map[string]any
		}{
			flockv1connect.UserServiceGetMeProcedure: {w.me.AccessToken, &flockv1.GetMeRequest{}, "GET /api/users/",
				map[string]any{"email": w.me.Email, "emailVerified": true, "role": "USER_ROLE_MEMBER"}},
			flockv1connect.UserServiceRegisterProcedure: {"", &flockv1.RegisterRequest{Username: name(a, "pf_new"), Email: name(a, "pf_new") + "@example.com", Password: "password-of-new", FullName: "New Comer"},
				"POST /api/users/", map[string]any{"email": name(a, "pf_new") + "@example.com", "emailVerified": false, "role": "USER_ROLE_MEMBER"}},
		}
		for procedure, o := range own {
			switch a.tr {
			case tu.REST, tu.Connect:
				method, path, _ := bytes.Cut([]byte(o.rest), []byte(" "))
				raw := rawCall(a, string(method), string(path), procedure, o.token, o.req)
				var body struct{ User map[string]any }
				if err := json.Unmarshal(raw, &body); err != nil {
					t.Fatalf("%s: %v in %s", procedure, err, raw)
				}
				for k, want := range o.want {
					if got, ok := body.User[k]; !ok || got != want {
						t.Errorf("%s: own %s = %v (present %v), want %v", procedure, k, got, ok, want)
					}
				}
			default:
				var res proto.Message
				var err error
				if procedure == flockv1connect.UserServiceGetMeProcedure {
					res, err = call[flockv1.GetMeResponse](a, procedure, o.token, o.req)
				} else {
					res, err = call[flockv1.RegisterResponse](a, procedure, o.token, o.req)
				}
				if err != nil {
					t.Fatalf("%s: %v", procedure, err)
				}
				u := res.ProtoReflect().Get(res.ProtoReflect().Descriptor().Fields().ByName("user")).Message()
				fields := u.Descriptor().Fields()
				for k, want := range o.want {
					fd := fields.ByJSONName(k)
					if !u.Has(fd) {
						t.Errorf("%s: own %s unset", procedure, k)
						continue
					}
					got := u.Get(fd).Interface()
					if fd.Kind() == protoreflect.EnumKind {
						got = string(fd.Enum().Values().ByNumber(u.Get(fd).Enum()).Name())
					}
					if got != want {
						t.Errorf("%s: own %s = %v, want %v", procedure, k, got, want)
					}
				}
			}
		}
	})
}

// newProfileWorld: me follows them and they follow me, they post and
// comment on my post, they own a group I joined, and I block a fourth user.
// them follows the third user, who is thus suggested to me.
func newProfileWorld(a api) *profileWorld {
	t := a.t
	t.Helper()
	w := &profileWorld{
		me:          a.s.MustAccount(t, name(a, "pf_me")),
		them:        a.s.MustAccount(t, name(a, "pf_them")),
		third:       a.s.MustAccount(t, name(a, "pf_third")),
		blockedByMe: a.s.MustAccount(t, name(a, "pf_blocked")),
	}
	for _, f := range [][2]*tu.Account{{w.me, w.them}, {w.them, w.me}, {w.them, w.third}} {
		if err := a.follow(f[0].AccessToken, f[1].ID); err != nil {
			t.Fatal(err)
		}
	}
	must[flockv1.BlockResponse](a, flockv1connect.UserServiceBlockProcedure, w.me.AccessToken, &flockv1.BlockRequest{UserId: w.blockedByMe.ID})
	w.theirPost = a.post(w.them.AccessToken, "their post").GetId()
	w.myPost = a.post(w.me.AccessToken, "my post").GetId()
	must[flockv1.CreateCommentResponse](a, flockv1connect.PostServiceCreateCommentProcedure, w.them.AccessToken,
		&flockv1.CreateCommentRequest{PostId: w.myPost, Content: "their comment"})
	w.group = a.createGroup(w.them.AccessToken, "profiles "+string(a.tr), flockv1.GroupPrivacy_GROUP_PRIVACY_PUBLIC).GetId()
	if _, err := a.join(w.me.AccessToken, w.group); err != nil {
		t.Fatal(err)
	}
	return w
}

// viewJSON returns the JSON answer of v for me, over REST (its GET path) or
// Connect (a POST of the JSON request), as the bytes on the wire.
func viewJSON(a api, v profileView, w *profileWorld) []byte {
	return rawCall(a, http.MethodGet, v.rest(w), v.procedure, w.me.AccessToken, v.req(w))
}

// rawCall sends one JSON call over a.tr (REST: method and path; Connect:
// the procedure) and returns the body of its 200 answer.
func rawCall(a api, method, path, procedure, token string, req proto.Message) []byte {
	t := a.t
	t.Helper()
	var body io.Reader
	u := a.s.URL + path
	if a.tr == tu.Connect || method != http.MethodGet {
		b, err := protojson.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		body = bytes.NewReader(b)
	}
	if a.tr == tu.Connect {
		method, u = http.MethodPost, a.s.URL+procedure
	}
	hreq, err := http.NewRequestWithContext(t.Context(), method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		hreq.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		hreq.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := a.s.HTTP.Do(hreq)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusOK {
		t.Fatalf("%s %s: %d %s", method, u, res.StatusCode, raw)
	}
	return raw
}

// visitJSONUsers calls visit for every profile (an object with a username)
// in a JSON answer, with whether it has each key.
func visitJSONUsers(t *testing.T, what string, raw []byte, visit func(id string, has func(string) bool)) {
	t.Helper()
	var doc any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("%s: %v in %s", what, err, raw)
	}
	var walk func(any)
	walk = func(x any) {
		switch x := x.(type) {
		case map[string]any:
			if _, ok := x["username"]; ok {
				id, _ := x["id"].(string)
				visit(id, func(k string) bool { _, ok := x[k]; return ok })
			}
			for _, v := range x {
				walk(v)
			}
		case []any:
			for _, v := range x {
				walk(v)
			}
		}
	}
	walk(doc)
}

// visitProtoUsers calls visit for every flock.v1.User in m, with whether
// each field (by JSON name) is set.
func visitProtoUsers(m protoreflect.Message, visit func(id string, has func(string) bool)) {
	if m.Descriptor().FullName() == "flock.v1.User" {
		fields := m.Descriptor().Fields()
		visit(m.Get(fields.ByName("id")).String(), func(k string) bool { return m.Has(fields.ByJSONName(k)) })
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsList() && fd.Message() != nil:
			for i := range v.List().Len() {
				visitProtoUsers(v.List().Get(i).Message(), visit)
			}
		case fd.Message() != nil && !fd.IsMap():
			visitProtoUsers(v.Message(), visit)
		}
		return true
	})
}
