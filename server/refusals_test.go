package server_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/flock-social/flock/gen/go/flock/v1/flockv1connect"
	tu "github.com/flock-social/flock/internal/testutil"
)

// restStatus is a REST error body: a google.rpc.Status in JSON.
type restStatus struct {
	Code    *int               `json:"code"`
	Message string             `json:"message"`
	Details *[]json.RawMessage `json:"details"`
}

// connectStatus is a Connect error body.
type connectStatus struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// A request that no handler takes (no such path, a method the path does
// not take, a body that is not JSON) is refused by the routers before any
// handler runs. Those refusals were plain text ("Not Found", `"application/
// x-www-form-urlencoded?" sub-format not supported`); they are now the
// API's error body, with the status they had and a message that says what
// to do.
func TestREST_RouterRefusalsAreStatusBodiesThatSayWhatToDo(t *testing.T) {
	t.Parallel()
	s := tu.MustServer(t, "sqlite")
	acc := s.MustAccount(t, "refused")
	for _, c := range []struct {
		name, method, path, contentType, body string
		status, code                          int
		says                                  []string
	}{
		{"no such path", http.MethodGet, "/api/nothing/here/", "", "", http.StatusNotFound, 5, []string{"GET /api/nothing/here", "/docs/"}},
		{"a method the path does not take", http.MethodPut, "/api/posts/", "application/json", "{}", http.StatusMethodNotAllowed, 12, []string{"PUT", "use GET or POST"}},
		{"GET of a POST", http.MethodGet, "/api/users/login/", "", "", http.StatusMethodNotAllowed, 12, []string{"use POST"}},
		// The upload and the export are served beside vanguard, not by it.
		{"GET of the video upload", http.MethodGet, "/api/posts/videos/", "", "", http.StatusMethodNotAllowed, 12, []string{"/api/posts/videos/ does not take GET: use POST"}},
		{"PUT of the video upload", http.MethodPut, "/api/posts/videos", "", "", http.StatusMethodNotAllowed, 12, []string{"use POST"}},
		{"POST of the export", http.MethodPost, "/api/users/export/", "application/json", "{}", http.StatusMethodNotAllowed, 12, []string{"/api/users/export/ does not take POST: use GET or HEAD"}},
		// curl -d without -H: the most likely first mistake.
		{"a form body", http.MethodPost, "/api/posts/", "application/x-www-form-urlencoded", `{"content":"hi"}`, http.StatusUnsupportedMediaType, 3,
			[]string{`"application/x-www-form-urlencoded"`, "Content-Type: application/json"}},
		{"a text body", http.MethodPost, "/api/posts/", "text/plain", `{"content":"hi"}`, http.StatusUnsupportedMediaType, 3, []string{`"text/plain"`, "Content-Type: application/json"}},
		{"a body without a type", http.MethodPost, "/api/posts/", "", `{"content":"hi"}`, http.StatusUnsupportedMediaType, 3, []string{"was none", "Content-Type: application/json"}},
		// UpdateMe also takes a form.
		{"a profile in text", http.MethodPatch, "/api/users/", "text/plain", `{"bio":"hi"}`, http.StatusUnsupportedMediaType, 3, []string{"Content-Type: application/json", "multipart/form-data"}},
		// JSON in another charset, and a form where only a profile takes one,
		// read `"...?" sub-format not supported`.
		{"JSON in Latin-1", http.MethodPost, "/api/posts/", "application/json; charset=iso-8859-1", `{"content":"hi"}`, http.StatusUnsupportedMediaType, 3, []string{"UTF-8", "charset=iso-8859-1"}},
		{"a form to a JSON route", http.MethodPost, "/api/posts/", "multipart/form-data; boundary=x", "--x--\r\n", http.StatusUnsupportedMediaType, 3, []string{"not a multipart form", "PATCH /api/users/"}},
		{"a mask path in snake case", http.MethodPatch, "/api/users/", "application/json", `{"bio":"hi","updateMask":"role"}`, http.StatusBadRequest, 3, []string{"fullName"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var body []byte
			if c.body != "" {
				body = []byte(c.body)
			}
			status, out := send(t, s.HTTP, c.method, s.URL+c.path, c.contentType, acc.AccessToken, body)
			var got restStatus
			if err := json.Unmarshal([]byte(out), &got); err != nil || got.Code == nil || got.Details == nil {
				t.Fatalf("%s %s: %d %q, want a google.rpc.Status in JSON, with its details as vanguard writes them", c.method, c.path, status, out)
			}
			if status != c.status || *got.Code != c.code {
				t.Errorf("%s %s: %d code %d, want %d code %d", c.method, c.path, status, *got.Code, c.status, c.code)
			}
			for _, want := range c.says {
				if !strings.Contains(got.Message, want) {
					t.Errorf("%s %s: message %q does not say %q", c.method, c.path, got.Message, want)
				}
			}
		})
	}
	// A body that is JSON still goes through.
	if status, out := send(t, s.HTTP, http.MethodPost, s.URL+"/api/posts/", "application/json; charset=utf-8", acc.AccessToken, []byte(`{"content":"typed right"}`)); status != http.StatusOK {
		t.Errorf("a JSON post: %d %s", status, out)
	}
}

// The same refusals on the Connect paths: the Connect protocol's JSON error
// body for curl users; gRPC clients keep reading the HTTP status (404 is
// unimplemented to them).
func TestConnect_RouterRefusalsAreConnectErrorBodies(t *testing.T) {
	t.Parallel()
	s := tu.MustServer(t, "sqlite")
	acc := s.MustAccount(t, "connectrefused")
	for _, c := range []struct {
		name, method, path, contentType string
		status                          int
		code                            string
		says                            []string
	}{
		{"no such procedure", http.MethodPost, "/flock.v1.UserService/Nope", "application/json", http.StatusNotFound, "unimplemented", []string{"flock.v1.UserService/Nope", "grpcurl"}},
		{"no such service", http.MethodPost, "/flock.v1.Nope/Nope", "application/json", http.StatusNotFound, "unimplemented", []string{"flock.v1.Nope/Nope"}},
		{"GET of a POST", http.MethodGet, flockv1connect.UserServiceLoginProcedure, "", http.StatusMethodNotAllowed, "unimplemented", []string{"use POST"}},
		{"no protocol's type", http.MethodPost, flockv1connect.UserServiceGetMeProcedure, "text/plain", http.StatusUnsupportedMediaType, "invalid_argument", []string{`"text/plain"`, "application/json"}},
		// A stream takes the enveloped types, and is told so.
		{"a stream in plain JSON", http.MethodPost, flockv1connect.NotificationServiceSubscribeProcedure, "application/json", http.StatusUnsupportedMediaType, "invalid_argument", []string{"application/connect+json"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			status, out := send(t, s.HTTP, c.method, s.URL+c.path, c.contentType, acc.AccessToken, []byte("{}"))
			var got connectStatus
			if err := json.Unmarshal([]byte(out), &got); err != nil {
				t.Fatalf("%s %s: %d %q, want a Connect error body", c.method, c.path, status, out)
			}
			if status != c.status || got.Code != c.code {
				t.Errorf("%s %s: %d %q, want %d %q", c.method, c.path, status, got.Code, c.status, c.code)
			}
			for _, want := range c.says {
				if !strings.Contains(got.Message, want) {
					t.Errorf("%s %s: message %q does not say %q", c.method, c.path, got.Message, want)
				}
			}
		})
	}
	nope := connect.NewClient[emptypb.Empty, emptypb.Empty](s.H2C, s.URL+"/flock.v1.UserService/Nope", connect.WithGRPC())
	if _, err := nope.CallUnary(t.Context(), connect.NewRequest(&emptypb.Empty{})); connect.CodeOf(err) != connect.CodeUnimplemented {
		t.Errorf("gRPC call of no procedure: %v, want unimplemented", err)
	}
}

// A query parameter that is no field of the request is ignored, as an
// unknown JSON field is (errors.md): it was a 500 (vanguard's unknown
// error), so a browser's cache-buster or a stream's own parameters on a
// plain GET broke the call.
func TestREST_UnknownQueryParametersAreIgnored(t *testing.T) {
	t.Parallel()
	s := tu.MustServer(t, "sqlite")
	acc := s.MustAccount(t, "cachebuster")
	for _, path := range []string{
		"/api/posts/?_=1733580000000",
		"/api/posts/?foo=1&pageSize=5",
		"/api/users/" + acc.ID + "/?_=123",
		"/api/notifications/?since_id=01J0000000000000000000000X",
		"/api/activity-log/?since_id=01J0000000000000000000000X",
	} {
		if status, out := send(t, s.HTTP, http.MethodGet, s.URL+path, "", acc.AccessToken, nil); status != http.StatusOK {
			t.Errorf("GET %s: %d %s, want 200", path, status, out)
		}
	}
}

// A login without a username or an email, or with both, was refused in the
// schema's words ("identifier: exactly one field is required in oneof";
// protojson's "oneof flock.v1.LoginRequest.identifier is already set"):
// no client sends a field named identifier. The refusals name the fields
// to send, over REST and Connect.
func TestLogin_MissingOrBothIdentifiersNameTheFieldsToSend(t *testing.T) {
	t.Parallel()
	s := tu.MustServer(t, "sqlite")
	for _, c := range []struct{ name, body, want string }{
		{"neither", `{"password":"correct horse"}`, "send one of username or email"},
		{"both", `{"username":"bob","email":"bob@example.com","password":"correct horse"}`, "send only one of username or email"},
	} {
		for _, path := range []string{"/api/users/login/", flockv1connect.UserServiceLoginProcedure} {
			status, out := send(t, s.HTTP, http.MethodPost, s.URL+path, "application/json", "", []byte(c.body))
			if status != http.StatusBadRequest || !strings.Contains(out, c.want) {
				t.Errorf("%s, %s: %d %s, want 400 saying %q", c.name, path, status, out, c.want)
			}
		}
	}
	// The schema's rule still answers with a BadRequest naming the oneof.
	status, out := send(t, s.HTTP, http.MethodPost, s.URL+"/api/users/login/", "application/json", "", []byte(`{"password":"correct horse"}`))
	var body struct {
		Details []struct {
			Type            string `json:"@type"`
			FieldViolations []struct{ Field, Description string }
			Violations      []struct{ Message string }
		}
	}
	found, protovalidate := false, false
	if err := json.Unmarshal([]byte(out), &body); err == nil {
		for _, d := range body.Details {
			for _, v := range d.FieldViolations {
				found = found || (d.Type == "type.googleapis.com/google.rpc.BadRequest" && v.Field == "identifier" && v.Description == "send one of username or email")
			}
			for _, v := range d.Violations {
				protovalidate = protovalidate || (d.Type == "type.googleapis.com/buf.validate.Violations" && v.Message == "send one of username or email")
			}
		}
	}
	if status != http.StatusBadRequest || !found || !protovalidate {
		t.Errorf("neither, REST: %d %s, want a BadRequest field violation for identifier and the same words in buf.validate.Violations", status, out)
	}
}

// VISIBILITY_GROUP is the visibility of a post made with a groupId; sent
// as a visibility without one, the refusal says how to post in a group,
// and with one it is taken (a group post's visibility is ignored).
func TestCreatePost_GroupVisibilityWithoutAGroupSaysToSendGroupID(t *testing.T) {
	t.Parallel()
	s := tu.MustServer(t, "sqlite")
	acc := s.MustAccount(t, "groupvis")
	status, out := send(t, s.HTTP, http.MethodPost, s.URL+"/api/posts/", "application/json", acc.AccessToken, []byte(`{"content":"hi","visibility":"VISIBILITY_GROUP"}`))
	if status != http.StatusBadRequest || !strings.Contains(out, "VISIBILITY_PUBLIC or VISIBILITY_FOLLOWERS") || !strings.Contains(out, "groupId") {
		t.Errorf("a post with visibility VISIBILITY_GROUP and no group: %d %s, want 400 naming the visibilities and groupId", status, out)
	}
	status, out = send(t, s.HTTP, http.MethodPost, s.URL+"/api/groups/", "application/json", acc.AccessToken, []byte(`{"name":"visibility club"}`))
	var created struct{ Group struct{ ID string } }
	if err := json.Unmarshal([]byte(out), &created); status != http.StatusOK || err != nil || created.Group.ID == "" {
		t.Fatalf("CreateGroup: %d %s", status, out)
	}
	for _, vis := range []string{"VISIBILITY_GROUP", "VISIBILITY_PUBLIC", "VISIBILITY_FOLLOWERS"} {
		status, out = send(t, s.HTTP, http.MethodPost, s.URL+"/api/posts/", "application/json", acc.AccessToken,
			[]byte(`{"content":"in the club","visibility":"`+vis+`","groupId":"`+created.Group.ID+`"}`))
		if status != http.StatusOK || !strings.Contains(out, `"visibility":"VISIBILITY_GROUP"`) {
			t.Errorf("a group post sent with %s: %d %s, want 200 and a VISIBILITY_GROUP post", vis, status, out)
		}
	}
}

// A required text field that was not sent is refused as missing, not as
// "must be at least 3 characters", which reads as if something had been
// sent; one sent too short keeps the length rule's words.
func TestValidation_AMissingFieldIsCalledMissing(t *testing.T) {
	t.Parallel()
	s := tu.MustServer(t, "sqlite")
	status, out := send(t, s.HTTP, http.MethodPost, s.URL+"/api/users/", "application/json", "", []byte(`{"username":"nomail"}`))
	for _, want := range []string{"email: is missing or empty: send an email address", "password: is missing or empty: send at least 8 characters"} {
		if status != http.StatusBadRequest || !strings.Contains(out, want) {
			t.Errorf("Register without email and password: %d %s, want 400 saying %q", status, out, want)
		}
	}
	status, out = send(t, s.HTTP, http.MethodPost, s.URL+"/api/users/", "application/json", "", []byte(`{"username":"shortmail","email":"a@","password":"long enough"}`))
	if status != http.StatusBadRequest || !strings.Contains(out, "email: must be at least 3 characters") {
		t.Errorf("Register with a 2-character email: %d %s, want the length rule", status, out)
	}
}

// A page size that is not a number says what it must be (vanguard quoted
// the JSON parser); a large one is still clamped, as the contract says.
func TestREST_PageSizeThatIsNoNumberSaysWhatItMustBe(t *testing.T) {
	t.Parallel()
	s := tu.MustServer(t, "sqlite")
	acc := s.MustAccount(t, "pagesize")
	for _, q := range []string{"pageSize=abc", "page_size=-1", "pageSize=1.5", "p%61geSize=%2B7"} {
		status, out := send(t, s.HTTP, http.MethodGet, s.URL+"/api/posts/?"+q, "", acc.AccessToken, nil)
		if status != http.StatusBadRequest || !strings.Contains(out, "must be a whole number of items, 1 to 100") || !strings.Contains(out, `"field":"page_size"`) {
			t.Errorf("GET /api/posts/?%s: %d %s, want 400 saying what a page size is, with a violation of page_size", q, status, out)
		}
	}
	// A route that lists nothing ignores it, as any parameter that is no
	// field of its request.
	if status, out := send(t, s.HTTP, http.MethodGet, s.URL+"/api/users/?pageSize=abc", "", acc.AccessToken, nil); status != http.StatusOK {
		t.Errorf("GetMe with ?pageSize=abc: %d %s, want 200 (no page size to set)", status, out)
	}
	for _, q := range []string{"pageSize=1000000000", "page_size=150", "pageSize=0", "pageSize=99999999999", "pageSize=000000000000000000007", "p%61geSize=0099"} {
		if status, out := send(t, s.HTTP, http.MethodGet, s.URL+"/api/posts/?"+q, "", acc.AccessToken, nil); status != http.StatusOK {
			t.Errorf("GET /api/posts/?%s: %d %s, want 200 (clamped)", q, status, out)
		}
	}
}

// A role field that refuses GROUP_ROLE_OWNER lists only the roles it
// takes; its message listed every role of the enum, OWNER included.
func TestValidation_AnEnumRefusalListsOnlyTheValuesTheFieldTakes(t *testing.T) {
	t.Parallel()
	s := tu.MustServer(t, "sqlite")
	acc := s.MustAccount(t, "roleowner")
	status, out := send(t, s.HTTP, http.MethodPost, s.URL+"/api/groups/", "application/json", acc.AccessToken, []byte(`{"name":"roles"}`))
	var created struct{ Group struct{ ID string } }
	if err := json.Unmarshal([]byte(out), &created); status != http.StatusOK || err != nil {
		t.Fatalf("CreateGroup: %d %s", status, out)
	}
	for _, c := range []struct{ method, path, body string }{
		{http.MethodPost, "/api/groups/" + created.Group.ID + "/members/", `{"userId":"` + acc.ID + `","role":"GROUP_ROLE_OWNER"}`},
		{http.MethodPatch, "/api/groups/" + created.Group.ID + "/members/" + acc.ID + "/", `{"role":"GROUP_ROLE_OWNER"}`},
	} {
		status, out := send(t, s.HTTP, c.method, s.URL+c.path, "application/json", acc.AccessToken, []byte(c.body))
		if status != http.StatusBadRequest || !strings.Contains(out, "role: must be one of GROUP_ROLE_ADMIN, GROUP_ROLE_MEMBER") {
			t.Errorf("%s %s with GROUP_ROLE_OWNER: %d %s, want 400 listing ADMIN and MEMBER only", c.method, c.path, status, out)
		}
	}
}

// An enum or bool query parameter that its field cannot take says which
// values it takes, with a BadRequest detail naming the field, as a body's
// would (vanguard quoted its parser: `unknown enum: active`, `invalid
// character 'm' looking for beginning of value`).
func TestREST_EnumAndBoolQueryParametersSayWhatTheyTake_P22(t *testing.T) {
	t.Parallel()
	s := tu.MustServer(t, "sqlite")
	a := api{t: t, s: s, tr: tu.REST}
	owner := s.MustAccount(t, "queryowner")
	g := a.createGroup(owner.AccessToken, "Queried", 0)
	members := "/api/groups/" + g.GetId() + "/members/?"
	for _, c := range []struct {
		path   string
		status int
		says   []string
	}{
		{members + "state=active", http.StatusBadRequest, []string{`query parameter state: \"active\" is not a GroupMembershipState; use one of GROUP_MEMBERSHIP_STATE_ACTIVE, GROUP_MEMBERSHIP_STATE_INVITED, GROUP_MEMBERSHIP_STATE_REQUESTED`, `"field":"state"`}},
		{members + "state=GROUP_MEMBERSHIP_STATE_ACTIV", http.StatusBadRequest, []string{"is not a GroupMembershipState"}},
		{members + "state=GROUP_MEMBERSHIP_STATE_ACTIVE", http.StatusOK, []string{owner.ID}},
		{members + "state=1", http.StatusOK, []string{owner.ID}},
		{members + "nosuchfield=1", http.StatusOK, []string{owner.ID}},
		{"/api/notifications/?unreadOnly=maybe", http.StatusBadRequest, []string{`query parameter unreadOnly must be true or false, not \"maybe\"`, `"field":"unread_only"`}},
		{"/api/notifications/?unread_only=2", http.StatusBadRequest, []string{"must be true or false"}},
		{"/api/notifications/?unreadOnly=true", http.StatusOK, []string{"notifications"}},
		// strconv.ParseBool's spellings and numbers with a sign or leading
		// zeros are taken, and handed to vanguard in the one spelling it
		// parses (it quoted its JSON parser for each).
		{"/api/notifications/?unreadOnly=1", http.StatusOK, []string{"notifications"}},
		{"/api/notifications/?unreadOnly=TRUE", http.StatusOK, []string{"notifications"}},
		{"/api/notifications/?unread_only=t", http.StatusOK, []string{"notifications"}},
		{"/api/notifications/?unread_only=F", http.StatusOK, []string{"notifications"}},
		{members + "state=01", http.StatusOK, []string{owner.ID}},
		// A field given twice, under one name or two, is refused: which
		// value was meant is not known.
		{"/api/notifications/?unreadOnly=true&unreadOnly=false", http.StatusBadRequest, []string{"query parameter unread_only is given more than once (unreadOnly); give it once", `"field":"unread_only"`}},
		{"/api/notifications/?pageSize=3&page_size=4", http.StatusBadRequest, []string{"query parameter page_size is given more than once (pageSize and page_size)"}},
		{members + "state=99", http.StatusBadRequest, []string{`query parameter state: \"99\" is not a GroupMembershipState`}},
		{"/api/posts/01NOSUCHPOST0000000000000/analytics/?days=abc", http.StatusBadRequest, []string{`query parameter days must be a whole number, not \"abc\"`, `"field":"days"`}},
		{"/api/posts/01NOSUCHPOST0000000000000/analytics/?days=007", http.StatusNotFound, []string{"not found"}},
		{"/api/posts/01NOSUCHPOST0000000000000/analytics/?days=%2B7", http.StatusNotFound, []string{"not found"}},
	} {
		status, out := send(t, s.HTTP, http.MethodGet, s.URL+c.path, "", owner.AccessToken, nil)
		if status != c.status {
			t.Errorf("GET %s: %d %s, want %d", c.path, status, out, c.status)
			continue
		}
		for _, want := range c.says {
			if !strings.Contains(out, want) {
				t.Errorf("GET %s: %s, want it to say %s", c.path, out, want)
			}
		}
	}
}

// Every spelling of a JSON Content-Type is JSON (media types and charset
// names are case-insensitive): vanguard refused all but two with a garbled
// 415, though Java's and Spring's clients send
// "application/json;charset=UTF-8". A GET or DELETE without a body has no
// type to refuse, and an empty object as its body, spaced as it may be,
// is no body.
func TestREST_JSONContentTypesAndEmptyBodiesAreTaken(t *testing.T) {
	t.Parallel()
	s := tu.MustServer(t, "sqlite")
	acc := s.MustAccount(t, "spelled")
	for _, ct := range []string{"application/json;charset=UTF-8", "application/json; charset=utf-8", "Application/JSON", "application/json; charset=\"UTF-8\""} {
		if status, out := send(t, s.HTTP, http.MethodPost, s.URL+"/api/posts/", ct, acc.AccessToken, []byte(`{"content":"typed"}`)); status != http.StatusOK {
			t.Errorf("POST with Content-Type %s: %d %s, want 200", ct, status, out)
		}
	}
	if status, out := send(t, s.HTTP, http.MethodDelete, s.URL+"/api/users/sessions/01NOSUCHSESSION0000000000/", "application/json; charset=iso-8859-1", acc.AccessToken, nil); status != http.StatusNotFound {
		t.Errorf("DELETE without a body, typed Latin-1: %d %s, want the route's own 404", status, out)
	}
	for _, body := range []string{"{ }", "{\n}", " null "} {
		if status, out := send(t, s.HTTP, http.MethodGet, s.URL+"/api/users/", "application/json", acc.AccessToken, []byte(body)); status != http.StatusOK {
			t.Errorf("GET with the body %q: %d %s, want 200", body, status, out)
		}
	}
}
