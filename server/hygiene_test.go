package server_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/dynamicpb"

	flockv1 "github.com/flock-social/flock/gen/go/flock/v1"
	"github.com/flock-social/flock/gen/go/flock/v1/flockv1connect"
	tu "github.com/flock-social/flock/internal/testutil"
)

// enumField is an enum field of an RPC's request, possibly inside a
// message field of it.
type enumField struct {
	method protoreflect.MethodDescriptor
	path   []protoreflect.FieldDescriptor
}

func (e enumField) procedure() string {
	return "/" + string(e.method.Parent().FullName()) + "/" + string(e.method.Name())
}

func (e enumField) jsonPath() string {
	var names []string
	for _, fd := range e.path {
		names = append(names, fd.JSONName())
	}
	return strings.Join(names, ".")
}

// requestEnumFields lists every enum field of every request of the API,
// from the descriptors, so that a new enum is tested without touching the
// test.
func requestEnumFields(t *testing.T) []enumField {
	t.Helper()
	var out []enumField
	var walk func(md protoreflect.MethodDescriptor, msg protoreflect.MessageDescriptor, path []protoreflect.FieldDescriptor)
	walk = func(md protoreflect.MethodDescriptor, msg protoreflect.MessageDescriptor, path []protoreflect.FieldDescriptor) {
		if len(path) > 3 || strings.HasPrefix(string(msg.FullName()), "google.") {
			return
		}
		for i := range msg.Fields().Len() {
			fd := msg.Fields().Get(i)
			p := append(append([]protoreflect.FieldDescriptor(nil), path...), fd)
			switch {
			case fd.IsMap():
			case fd.Kind() == protoreflect.EnumKind:
				out = append(out, enumField{method: md, path: p})
			case fd.Kind() == protoreflect.MessageKind && !fd.IsList():
				walk(md, fd.Message(), p)
			}
		}
	}
	protoregistry.GlobalFiles.RangeFilesByPackage("flock.v1", func(fd protoreflect.FileDescriptor) bool {
		for i := range fd.Services().Len() {
			svc := fd.Services().Get(i)
			for j := range svc.Methods().Len() {
				md := svc.Methods().Get(j)
				walk(md, md.Input(), nil)
			}
		}
		return true
	})
	if len(out) < 5 {
		t.Fatalf("found only %d enum fields in the requests; is flock.v1 registered?", len(out))
	}
	return out
}

// nestedJSON writes {"a":{"b":value}} for the path a.b.
func nestedJSON(path []protoreflect.FieldDescriptor, value any) []byte {
	var v any = value
	for i := len(path) - 1; i >= 0; i-- {
		v = map[string]any{path[i].JSONName(): v}
	}
	b, _ := json.Marshal(v)
	return b
}

// restURL fills the path template of procedure with placeholder ids.
func restURL(t *testing.T, s *tu.Server, procedure string) (method, u string, body bool) {
	t.Helper()
	method, tmpl, body, err := tu.RESTMapping(procedure)
	if err != nil {
		t.Fatal(err)
	}
	return method, s.URL + regexp.MustCompile(`\{[^}]*\}`).ReplaceAllString(tmpl, "01J0000000000000000000000X") + "/", body
}

func send(t *testing.T, client *http.Client, method, u, contentType, token string, body []byte) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, u, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body == nil {
		req.Body = http.NoBody
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	out, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(out)
}

// rawGRPC sends one gRPC request message (already encoded, so it can hold
// what proto.Marshal refuses) and returns grpc-status and grpc-message.
func rawGRPC(t *testing.T, s *tu.Server, procedure, token string, msg []byte) (string, string) {
	t.Helper()
	frame := make([]byte, 5+len(msg))
	binary.BigEndian.PutUint32(frame[1:5], uint32(len(msg)))
	copy(frame[5:], msg)
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, s.URL+procedure, bytes.NewReader(frame))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/grpc")
	req.Header.Set("TE", "trailers")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := s.H2C.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	_, _ = io.ReadAll(res.Body)
	status, message := res.Trailer.Get("Grpc-Status"), res.Trailer.Get("Grpc-Message")
	if status == "" { // trailers-only answer
		status, message = res.Header.Get("Grpc-Status"), res.Header.Get("Grpc-Message")
	}
	m, _ := url.PathUnescape(message)
	return status, m
}

const grpcInvalidArgument = "3"

// P22: an enum value the enum does not define is refused with
// invalid_argument naming the field, for every enum of every request: by
// name over REST and Connect JSON (protojson would read it as the
// default), by number over every transport.
func TestEnums_UnknownValuesRefusedEverywhere_P22(t *testing.T) {
	t.Parallel()
	fields := requestEnumFields(t)
	forEachServer(t, func(t *testing.T, s *tu.Server) {
		staff := s.MustAccount(t, "enumstaff")
		mustStaff(t, s, staff)
		for _, f := range fields {
			t.Run(f.procedure()+"/"+f.jsonPath(), func(t *testing.T) {
				if f.method.IsStreamingClient() || f.method.IsStreamingServer() {
					t.Fatalf("a streaming request with an enum: extend this test to send it over a stream")
				}
				bad := "NOT_A_" + string(f.path[len(f.path)-1].Enum().Name())
				wantMessage := func(how, msg string) {
					t.Helper()
					if !strings.Contains(msg, f.path[len(f.path)-1].JSONName()) {
						t.Errorf("%s: message %q does not name the field %s", how, msg, f.jsonPath())
					}
				}
				// Connect, JSON: before authentication, as any decoding error.
				status, body := send(t, s.HTTP, http.MethodPost, s.URL+f.procedure(), "application/json", "", nestedJSON(f.path, bad))
				if status != http.StatusBadRequest || !strings.Contains(body, `"invalid_argument"`) {
					t.Errorf("Connect JSON with %q: %d %s, want 400 invalid_argument", bad, status, body)
				}
				wantMessage("Connect JSON", body)
				// REST: in the body, or as a query parameter.
				method, u, hasBody := restURL(t, s, f.procedure())
				if hasBody {
					status, body = send(t, s.HTTP, method, u, "application/json", staff.AccessToken, nestedJSON(f.path, bad))
				} else {
					status, body = send(t, s.HTTP, method, u+"?"+f.jsonPath()+"="+bad, "", staff.AccessToken, nil)
				}
				if status != http.StatusBadRequest || !strings.Contains(body, `"code":3`) {
					t.Errorf("REST with %q: %d %s, want 400 with code 3", bad, status, body)
				}
				if hasBody {
					wantMessage("REST", body)
				}
				// By number, over gRPC (binary) and Connect JSON.
				msg := dynamicpb.NewMessage(f.method.Input())
				m := msg.ProtoReflect()
				for _, fd := range f.path[:len(f.path)-1] {
					m = m.Mutable(fd).Message()
				}
				m.Set(f.path[len(f.path)-1], protoreflect.ValueOfEnum(999))
				wire, err := proto.Marshal(msg)
				if err != nil {
					t.Fatal(err)
				}
				if code, message := rawGRPC(t, s, f.procedure(), staff.AccessToken, wire); code != grpcInvalidArgument {
					t.Errorf("gRPC with enum number 999: grpc-status %s (%s), want 3", code, message)
				} else {
					wantMessage("gRPC", message)
				}
				status, body = send(t, s.HTTP, http.MethodPost, s.URL+f.procedure(), "application/json", staff.AccessToken, nestedJSON(f.path, 999))
				if status != http.StatusBadRequest || !strings.Contains(body, `"invalid_argument"`) {
					t.Errorf("Connect JSON with enum number 999: %d %s, want 400 invalid_argument", status, body)
				}
			})
		}
	})
}

// P22: the misspelt visibility of the issue publishes nothing, and an
// unknown field is still ignored (clients may send newer fields).
func TestEnums_TypoPublishesNothing_P22(t *testing.T) {
	t.Parallel()
	forEachServer(t, func(t *testing.T, s *tu.Server) {
		alice := s.MustAccount(t, "typo")
		for _, path := range []string{"/api/posts/", "/flock.v1.PostService/CreatePost"} {
			status, body := send(t, s.HTTP, http.MethodPost, s.URL+path, "application/json", alice.AccessToken,
				[]byte(`{"content":"for my followers only","visibility":"VISIBILITY_FOLLOWER"}`))
			if status != http.StatusBadRequest || !strings.Contains(body, "VISIBILITY_FOLLOWERS") {
				t.Errorf("%s: %d %s, want 400 listing the allowed values", path, status, body)
			}
			status, body = send(t, s.HTTP, http.MethodPost, s.URL+path, "application/json", alice.AccessToken,
				[]byte(`{"content":"newer client","visibility":"VISIBILITY_FOLLOWERS","someNewerField":{"x":1}}`))
			if status != http.StatusOK {
				t.Errorf("%s with an unknown field: %d %s, want 200", path, status, body)
			}
		}
		posts := tu.MustCall[flockv1.ListUserPostsResponse](t, s, tu.Connect, flockv1connect.UserServiceListUserPostsProcedure, alice.AccessToken,
			&flockv1.ListUserPostsRequest{UserId: alice.ID}).GetPosts()
		if len(posts) != 2 {
			t.Fatalf("posts = %d, want the 2 with a valid visibility", len(posts))
		}
		for _, p := range posts {
			if p.GetVisibility() != flockv1.Visibility_VISIBILITY_FOLLOWERS {
				t.Errorf("post %q is %v", p.GetContent(), p.GetVisibility())
			}
		}
	})
}

// P22: a NUL byte in any string answers invalid_argument (it reached SQL
// and answered 500), on every transport and engine.
func TestText_NULRefused_P22(t *testing.T) {
	t.Parallel()
	forEachTransport(t, func(t *testing.T, a api) {
		u := a.s.MustAccount(t, name(a, "nul"))
		for _, tc := range []struct {
			procedure string
			req       proto.Message
		}{
			{flockv1connect.GroupServiceCreateGroupProcedure, &flockv1.CreateGroupRequest{Name: "club\x00"}},
			{flockv1connect.UserServiceUpdateMeProcedure, &flockv1.UpdateMeRequest{Interests: []string{"go\x00lang"}}},
			{flockv1connect.UserServiceSearchUsersProcedure, &flockv1.SearchUsersRequest{Query: "a\x00b"}},
			{flockv1connect.PostServiceSearchPostsProcedure, &flockv1.SearchPostsRequest{Hashtag: "go\x00"}},
			{flockv1connect.PostServiceCreatePostProcedure, &flockv1.CreatePostRequest{Content: "hello\x00world"}},
		} {
			_, err := tu.Call[emptyRes](t.Context(), a.s, a.tr, tc.procedure, u.AccessToken, tc.req)
			if connect.CodeOf(err) != connect.CodeInvalidArgument {
				t.Errorf("%s with a NUL: %v, want invalid_argument", tc.procedure, err)
			}
		}
	})
}

// emptyRes takes any answer; the tests above only look at the error.
type emptyRes = flockv1.LogoutResponse

// P22: invalid UTF-8 wherever a string arrives (REST path and query,
// Connect JSON body, gRPC binary) answers 400 invalid_argument, not 500.
func TestText_InvalidUTF8Refused_P22(t *testing.T) {
	t.Parallel()
	forEachServer(t, func(t *testing.T, s *tu.Server) {
		u := s.MustAccount(t, "utf8")
		for _, path := range []string{
			"/api/users/search/?query=%FF", "/api/users/search/?query=a%00b", "/api/posts/search/?hashtag=%FF",
			"/api/posts/?pageToken=%FF", "/api/posts/?page_token=%C3%28", "/api/users/%FF/", "/api/posts/%00/",
			"/api/notifications/?since_id=%FF", "/api/users/search/?%FF=x",
		} {
			status, body := send(t, s.HTTP, http.MethodGet, s.URL+path, "", u.AccessToken, nil)
			var st struct{ Code int }
			_ = json.Unmarshal([]byte(body), &st)
			if status != http.StatusBadRequest || st.Code != int(connect.CodeInvalidArgument) {
				t.Errorf("GET %s: %d %s, want 400 with code 3", path, status, body)
			}
		}
		status, body := send(t, s.HTTP, http.MethodPost, s.URL+flockv1connect.UserServiceSearchUsersProcedure, "application/json", u.AccessToken,
			[]byte("{\"query\":\"a\xffb\"}"))
		if status != http.StatusBadRequest || !strings.Contains(body, "invalid_argument") {
			t.Errorf("Connect JSON with invalid UTF-8: %d %s, want 400 invalid_argument", status, body)
		}
		fd := (&flockv1.SearchUsersRequest{}).ProtoReflect().Descriptor().Fields().ByName("query")
		wire := protowire.AppendBytes(protowire.AppendTag(nil, fd.Number(), protowire.BytesType), []byte{'a', 0xff})
		if code, message := rawGRPC(t, s, flockv1connect.UserServiceSearchUsersProcedure, u.AccessToken, wire); code != grpcInvalidArgument {
			t.Errorf("gRPC with invalid UTF-8: grpc-status %s (%s), want 3", code, message)
		}
		// A form field of the multipart profile edit, too.
		var form bytes.Buffer
		form.WriteString("--b\r\nContent-Disposition: form-data; name=\"bio\"\r\n\r\nbad \xff bio\r\n--b--\r\n")
		status, body = send(t, s.HTTP, http.MethodPatch, s.URL+"/api/users/", "multipart/form-data; boundary=b", u.AccessToken, form.Bytes())
		if status != http.StatusBadRequest {
			t.Errorf("multipart bio with invalid UTF-8: %d %s, want 400", status, body)
		}
	})
}

// P22: text made only of invisible characters counts as empty: a post,
// a comment or a group name of zero-width spaces is refused like an empty
// one; an optional text of them is stored empty.
func TestText_InvisibleOnlyCountsAsEmpty_P22(t *testing.T) {
	t.Parallel()
	const invisible = "\u200b\u2060\ufeff \u200d"
	forEachTransport(t, func(t *testing.T, a api) {
		u := a.s.MustAccount(t, name(a, "blank"))
		p := a.post(u.AccessToken, "visible")
		for _, tc := range []struct {
			procedure string
			req       proto.Message
		}{
			{flockv1connect.PostServiceCreatePostProcedure, &flockv1.CreatePostRequest{Content: invisible}},
			{flockv1connect.PostServiceUpdatePostProcedure, &flockv1.UpdatePostRequest{PostId: p.GetId(), Content: "\u2060"}},
			{flockv1connect.PostServiceCreateCommentProcedure, &flockv1.CreateCommentRequest{PostId: p.GetId(), Content: invisible}},
			{flockv1connect.GroupServiceCreateGroupProcedure, &flockv1.CreateGroupRequest{Name: invisible}},
		} {
			_, err := tu.Call[emptyRes](t.Context(), a.s, a.tr, tc.procedure, u.AccessToken, tc.req)
			if connect.CodeOf(err) != connect.CodeInvalidArgument {
				t.Errorf("%s with only invisible characters: %v, want invalid_argument", tc.procedure, err)
			}
		}
		bio := invisible
		me, err := call[flockv1.UpdateMeResponse](a, flockv1connect.UserServiceUpdateMeProcedure, u.AccessToken, &flockv1.UpdateMeRequest{Bio: &bio})
		if err != nil {
			t.Fatal(err)
		}
		if me.GetUser().GetBio() != "" {
			t.Errorf("bio = %q, want it stored empty", me.GetUser().GetBio())
		}
	})
}

// A required enum left out names the values it takes, not "must not be in
// list [0]".
func TestEnums_MissingRequiredNamesTheValues(t *testing.T) {
	t.Parallel()
	forEachTransport(t, func(t *testing.T, a api) {
		u := a.s.MustAccount(t, name(a, "reporter"))
		p := a.post(u.AccessToken, "a post")
		_, err := call[flockv1.ReportPostResponse](a, flockv1connect.PostServiceReportPostProcedure, u.AccessToken, &flockv1.ReportPostRequest{PostId: p.GetId()})
		if connect.CodeOf(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), "REPORT_REASON_SPAM") || strings.Contains(err.Error(), "[0]") {
			t.Errorf("ReportPost without a reason: %v, want invalid_argument listing the reasons", err)
		}
	})
}
