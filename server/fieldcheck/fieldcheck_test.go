package fieldcheck_test

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	flockv1 "github.com/flock-social/flock/gen/go/flock/v1"
	"github.com/flock-social/flock/server/fieldcheck"
)

func TestJSONEnums_RefusesUnknownNames_P22(t *testing.T) {
	md := (&flockv1.CreatePostRequest{}).ProtoReflect().Descriptor()
	for _, tc := range []struct {
		name, json, wantField string
	}{
		{"a typo", `{"content":"hi","visibility":"VISIBILITY_FOLLOWER"}`, "visibility"},
		{"lower case", `{"visibility":"visibility_public"}`, "visibility"},
		{"by the proto name", `{"content":"hi","visibility":"PUBLIC"}`, "visibility"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := fieldcheck.JSONEnums([]byte(tc.json), md)
			var fe *fieldcheck.Error
			if !errors.As(err, &fe) || fe.Field != tc.wantField {
				t.Fatalf("JSONEnums(%s) = %v, want an error on %s", tc.json, err, tc.wantField)
			}
			if !strings.Contains(fe.Reason, "VISIBILITY_FOLLOWERS") || strings.Contains(fe.Reason, "UNSPECIFIED") {
				t.Errorf("reason %q should list the allowed values (and not the unset one)", fe.Reason)
			}
		})
	}
	for _, ok := range []string{
		`{"content":"hi","visibility":"VISIBILITY_FOLLOWERS"}`,
		`{"content":"hi","visibility":2}`,
		`{"content":"hi","visibility":null}`,
		`{"content":"hi","unknownField":"VISIBILITY_X","visibility":"VISIBILITY_PUBLIC"}`,
		`not json at all`,
		`[1,2]`,
	} {
		if err := fieldcheck.JSONEnums([]byte(ok), md); err != nil {
			t.Errorf("JSONEnums(%s) = %v, want nil", ok, err)
		}
	}
}

func TestJSONEnums_NestedAndRepeated_P22(t *testing.T) {
	// ListReportsRequest has an enum at the top; a Post inside a response
	// type nests Visibility: both are reached by the walk.
	md := (&flockv1.Post{}).ProtoReflect().Descriptor()
	err := fieldcheck.JSONEnums([]byte(`{"author":{"role":"USER_ROLE_ADMINN"}}`), md)
	var fe *fieldcheck.Error
	if !errors.As(err, &fe) || fe.Field != "author.role" {
		t.Fatalf("nested enum: %v, want an error on author.role", err)
	}
}

func TestMessage_RefusesNULAndUndefinedEnums_P22(t *testing.T) {
	for _, tc := range []struct {
		name      string
		msg       proto.Message
		wantField string
	}{
		{"NUL in a string", &flockv1.CreateGroupRequest{Name: "a\x00b"}, "name"},
		{"NUL in a repeated string", &flockv1.UpdateMeRequest{Interests: []string{"go", "x\x00"}}, "interests[1]"},
		// Named as protovalidate and the services name fields.
		{"NUL in a two-word field", &flockv1.ChangeEmailRequest{NewEmail: "a\x00@b.io", CurrentPassword: "long enough"}, "new_email"},
		{"undefined enum number", &flockv1.CreatePostRequest{Content: "hi", Visibility: 42}, "visibility"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := fieldcheck.Message(tc.msg.ProtoReflect())
			var fe *fieldcheck.Error
			if !errors.As(err, &fe) || fe.Field != tc.wantField {
				t.Fatalf("Message = %v, want an error on %s", err, tc.wantField)
			}
		})
	}
}

func TestMessage_InvisibleTextCountsAsEmpty_P22(t *testing.T) {
	m := &flockv1.UpdateMeRequest{
		Bio:       proto.String("\u200b\u2060\ufeff \u00a0\u3164"),
		FullName:  proto.String("Ann\u200b"),
		Interests: []string{"\u200b", "go"},
	}
	if err := fieldcheck.Message(m.ProtoReflect()); err != nil {
		t.Fatal(err)
	}
	if m.Bio == nil || *m.Bio != "" {
		t.Errorf("bio = %v, want set and empty", m.Bio)
	}
	if m.GetFullName() != "Ann\u200b" {
		t.Errorf("fullName = %q: visible text must be kept as sent", m.GetFullName())
	}
	if m.GetInterests()[0] != "" || m.GetInterests()[1] != "go" {
		t.Errorf("interests = %q", m.GetInterests())
	}
	// Every character of a password counts, blank ones too.
	login := &flockv1.LoginRequest{Identifier: &flockv1.LoginRequest_Username{Username: "ann"}, Password: "\u200b\u200b\u200b\u200b\u200b\u200b\u200b\u200b"}
	if err := fieldcheck.Message(login.ProtoReflect()); err != nil || login.GetPassword() == "" {
		t.Errorf("password was changed: %q, %v", login.GetPassword(), err)
	}
}

func TestBlank(t *testing.T) {
	for s, want := range map[string]bool{
		"": true, " \t\n": true, "\u200b": true, "\u2060\ufeff": true, "\u200e\u200f": true,
		"\u3164": true, "\u2800": true, "a": false, "\u200ba": false, ".": false, "😀": false,
	} {
		if got := fieldcheck.Blank(s); got != want {
			t.Errorf("Blank(%q) = %v, want %v", s, got, want)
		}
	}
}

// requestTypes are the request messages the fuzzer decodes into: every
// enum, nesting and repetition of the API's requests is in one of them.
var requestTypes = []proto.Message{
	&flockv1.CreatePostRequest{}, &flockv1.UpdateMeRequest{}, &flockv1.CreateGroupRequest{},
	&flockv1.ReportPostRequest{}, &flockv1.ResolveReportRequest{}, &flockv1.SearchUsersRequest{},
}

// FuzzCheck: whatever bytes arrive, the checks never panic, and a message
// that passes both holds only defined enum values and NUL-free UTF-8, so it
// encodes (the database and proto.Marshal refuse anything else).
func FuzzCheck(f *testing.F) {
	for _, s := range []string{
		`{"content":"hi","visibility":"VISIBILITY_FOLLOWER"}`, `{"visibility":7}`,
		`{"name":"a\u0000b","privacy":"GROUP_PRIVACY_PRIVATE"}`, `{"interests":["\u200b","x"],"bio":"\ufeff"}`,
		`{"reason":"spam"}`, `{"action":"REPORT_ACTION_DISMISS"}`, `{"query":"\udc00"}`, `{}`, `[`,
	} {
		for i := range requestTypes {
			f.Add([]byte(s), uint8(i))
		}
	}
	f.Fuzz(func(t *testing.T, data []byte, which uint8) {
		m := requestTypes[int(which)%len(requestTypes)].ProtoReflect().New().Interface()
		if err := fieldcheck.JSONEnums(data, m.ProtoReflect().Descriptor()); err != nil {
			return
		}
		if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(data, m); err != nil {
			return
		}
		if err := fieldcheck.Message(m.ProtoReflect()); err != nil {
			var fe *fieldcheck.Error
			if !errors.As(err, &fe) {
				t.Fatalf("Message returned %T, want *fieldcheck.Error", err)
			}
			return
		}
		if _, err := proto.Marshal(m); err != nil {
			t.Fatalf("a checked message does not encode: %v", err)
		}
		m.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
			if fd.Kind() == protoreflect.StringKind && !fd.IsList() && !fd.IsMap() {
				if s := v.String(); !utf8.ValidString(s) || strings.ContainsRune(s, 0) {
					t.Fatalf("%s = %q passed the check", fd.Name(), s)
				}
			}
			return true
		})
	})
}

// Text is taken in normalization form C, so that a name typed decomposed
// (a + U+0308) is stored, and found by a search, as the same name typed
// composed; a password is taken exactly as sent.
func TestMessage_TextIsTakenComposed_P22(t *testing.T) {
	decomposed, composed := "A\u0308rzte Berlin", "\u00c4rzte Berlin"
	group := &flockv1.CreateGroupRequest{Name: decomposed, Description: "ca\u0301fe\u0301"}
	if err := fieldcheck.Message(group.ProtoReflect()); err != nil {
		t.Fatal(err)
	}
	if group.GetName() != composed || group.GetDescription() != "c\u00e1f\u00e9" {
		t.Errorf("after the check: name %+q, description %+q; want them composed", group.GetName(), group.GetDescription())
	}
	search := &flockv1.SearchGroupsRequest{Query: "a\u0308rzte"}
	if err := fieldcheck.Message(search.ProtoReflect()); err != nil || search.GetQuery() != "\u00e4rzte" {
		t.Errorf("a decomposed query after the check: %+q (%v), want it composed", search.GetQuery(), err)
	}
	pw := &flockv1.ChangePasswordRequest{CurrentPassword: "pa\u0308sswort!", NewPassword: "ne\u0301w password"}
	if err := fieldcheck.Message(pw.ProtoReflect()); err != nil || pw.GetCurrentPassword() != "pa\u0308sswort!" || pw.GetNewPassword() != "ne\u0301w password" {
		t.Errorf("passwords after the check: %+q, %+q (%v); want them as sent", pw.GetCurrentPassword(), pw.GetNewPassword(), err)
	}
}
