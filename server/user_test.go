package server_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"io"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"

	"connectrpc.com/connect"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	flockv1 "github.com/flock-social/flock/gen/go/flock/v1"
	"github.com/flock-social/flock/gen/go/flock/v1/flockv1connect"
	tu "github.com/flock-social/flock/internal/testutil"
	"github.com/flock-social/flock/server"
)

// forEachServer runs fn once per database engine with a fresh server.
func forEachServer(t *testing.T, fn func(t *testing.T, s *tu.Server), configure ...func(*server.Config)) {
	t.Helper()
	for _, engine := range tu.Engines(t) {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			fn(t, tu.MustServer(t, engine, configure...))
		})
	}
}

func wantCode(t *testing.T, err error, want connect.Code) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %s", want)
	}
	if got := connect.CodeOf(err); got != want {
		t.Fatalf("got %s (%v), want %s", got, err, want)
	}
}

// The whole account lifecycle of contract rows 1-5, once per transport and
// database engine: register, verify, login, profile, refresh, logout.
func TestAccountLifecycle_EveryTransport(t *testing.T) {
	t.Parallel()
	forEachServer(t, func(t *testing.T, s *tu.Server) {
		for _, tr := range tu.Transports {
			t.Run(string(tr), func(t *testing.T) {
				t.Parallel()
				ctx := t.Context()
				name := "Life_" + string(tr)
				email := " " + strings.ToUpper(name) + "@Example.COM "
				normalized := strings.ToLower(strings.TrimSpace(email))

				reg, err := tu.Call[flockv1.RegisterResponse](ctx, s, tr, flockv1connect.UserServiceRegisterProcedure, "",
					&flockv1.RegisterRequest{Username: name, Email: email, Password: "s3cret-pass", FullName: "Life Cycle"})
				if err != nil {
					t.Fatalf("register: %v", err)
				}
				if u := reg.GetUser(); u.GetUsername() != name || u.GetEmail() != normalized || u.GetEmailVerified() || u.GetId() == "" {
					t.Fatalf("registered user = %v", u)
				}

				login := &flockv1.LoginRequest{Identifier: &flockv1.LoginRequest_Username{Username: strings.ToLower(name)}, Password: "s3cret-pass"}
				_, err = tu.Call[flockv1.LoginResponse](ctx, s, tr, flockv1connect.UserServiceLoginProcedure, "", login)
				wantCode(t, err, connect.CodeFailedPrecondition)

				token := s.MustVerificationToken(t, normalized)
				ver, err := tu.Call[flockv1.VerifyEmailResponse](ctx, s, tr, flockv1connect.UserServiceVerifyEmailProcedure, "", &flockv1.VerifyEmailRequest{Token: token})
				if err != nil || !ver.GetUser().GetEmailVerified() {
					t.Fatalf("verify: %v %v", ver, err)
				}
				_, err = tu.Call[flockv1.VerifyEmailResponse](ctx, s, tr, flockv1connect.UserServiceVerifyEmailProcedure, "", &flockv1.VerifyEmailRequest{Token: token})
				wantCode(t, err, connect.CodeInvalidArgument)

				pair, err := tu.Call[flockv1.LoginResponse](ctx, s, tr, flockv1connect.UserServiceLoginProcedure, "", login)
				if err != nil {
					t.Fatalf("login: %v", err)
				}
				if pair.GetTokenType() != "Bearer" || pair.GetExpiresIn() <= 0 || pair.GetAccessToken() == "" || pair.GetRefreshToken() == "" {
					t.Fatalf("login response = %v", pair)
				}
				byEmail, err := tu.Call[flockv1.LoginResponse](ctx, s, tr, flockv1connect.UserServiceLoginProcedure, "",
					&flockv1.LoginRequest{Identifier: &flockv1.LoginRequest_Email{Email: email}, Password: "s3cret-pass"})
				if err != nil || byEmail.GetUser().GetId() != reg.GetUser().GetId() {
					t.Fatalf("login by email: %v %v", byEmail, err)
				}

				me, err := tu.Call[flockv1.GetMeResponse](ctx, s, tr, flockv1connect.UserServiceGetMeProcedure, pair.GetAccessToken(), &flockv1.GetMeRequest{})
				if err != nil || me.GetUser().GetEmail() != normalized {
					t.Fatalf("get me: %v %v", me, err)
				}
				_, err = tu.Call[flockv1.GetMeResponse](ctx, s, tr, flockv1connect.UserServiceGetMeProcedure, "", &flockv1.GetMeRequest{})
				wantCode(t, err, connect.CodeUnauthenticated)

				upd, err := tu.Call[flockv1.UpdateMeResponse](ctx, s, tr, flockv1connect.UserServiceUpdateMeProcedure, pair.GetAccessToken(),
					&flockv1.UpdateMeRequest{Bio: new("hello from " + string(tr)), Interests: []string{"#Go", "go", "Photography"}})
				if err != nil {
					t.Fatalf("update me: %v", err)
				}
				if u := upd.GetUser(); u.GetBio() != "hello from "+string(tr) || u.GetFullName() != "Life Cycle" ||
					fmt.Sprint(u.GetInterests()) != "[go photography]" {
					t.Fatalf("updated user = %v", u)
				}
				cleared, err := tu.Call[flockv1.UpdateMeResponse](ctx, s, tr, flockv1connect.UserServiceUpdateMeProcedure, pair.GetAccessToken(),
					&flockv1.UpdateMeRequest{UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"interests"}}})
				if err != nil || len(cleared.GetUser().GetInterests()) != 0 || cleared.GetUser().GetBio() == "" {
					t.Fatalf("clear interests with a mask: %v %v", cleared, err)
				}

				got, err := tu.Call[flockv1.GetUserResponse](ctx, s, tr, flockv1connect.UserServiceGetUserProcedure, pair.GetAccessToken(),
					&flockv1.GetUserRequest{UserId: reg.GetUser().GetId()})
				if err != nil || got.GetUser().GetUsername() != name {
					t.Fatalf("get user: %v %v", got, err)
				}
				_, err = tu.Call[flockv1.GetUserResponse](ctx, s, tr, flockv1connect.UserServiceGetUserProcedure, pair.GetAccessToken(),
					&flockv1.GetUserRequest{UserId: "01NOSUCHUSER0000000000000"})
				wantCode(t, err, connect.CodeNotFound)

				rotated, err := tu.Call[flockv1.RefreshTokenResponse](ctx, s, tr, flockv1connect.UserServiceRefreshTokenProcedure, "",
					&flockv1.RefreshTokenRequest{RefreshToken: pair.GetRefreshToken()})
				if err != nil || rotated.GetRefreshToken() == pair.GetRefreshToken() || rotated.GetAccessToken() == "" {
					t.Fatalf("refresh: %v %v", rotated, err)
				}
				if _, err := tu.Call[flockv1.GetMeResponse](ctx, s, tr, flockv1connect.UserServiceGetMeProcedure, rotated.GetAccessToken(), &flockv1.GetMeRequest{}); err != nil {
					t.Fatalf("get me with the refreshed token: %v", err)
				}

				if _, err := tu.Call[flockv1.LogoutResponse](ctx, s, tr, flockv1connect.UserServiceLogoutProcedure, "",
					&flockv1.LogoutRequest{RefreshToken: rotated.GetRefreshToken()}); err != nil {
					t.Fatalf("logout: %v", err)
				}
				_, err = tu.Call[flockv1.GetMeResponse](ctx, s, tr, flockv1connect.UserServiceGetMeProcedure, rotated.GetAccessToken(), &flockv1.GetMeRequest{})
				wantCode(t, err, connect.CodeUnauthenticated)
				_, err = tu.Call[flockv1.RefreshTokenResponse](ctx, s, tr, flockv1connect.UserServiceRefreshTokenProcedure, "",
					&flockv1.RefreshTokenRequest{RefreshToken: rotated.GetRefreshToken()})
				wantCode(t, err, connect.CodeUnauthenticated)
				// The other session (login by email) is untouched by this logout.
				if _, err := tu.Call[flockv1.GetMeResponse](ctx, s, tr, flockv1connect.UserServiceGetMeProcedure, byEmail.GetAccessToken(), &flockv1.GetMeRequest{}); err != nil {
					t.Fatalf("other session after logout: %v", err)
				}
			})
		}
	})
}

func TestRegister_RefusesTakenNamesAndBadFields(t *testing.T) {
	t.Parallel()
	forEachServer(t, func(t *testing.T, s *tu.Server) {
		s.MustAccount(t, "Taken")
		for _, tr := range tu.Transports {
			t.Run(string(tr), func(t *testing.T) {
				t.Parallel()
				ctx := t.Context()
				call := func(r *flockv1.RegisterRequest) error {
					_, err := tu.Call[flockv1.RegisterResponse](ctx, s, tr, flockv1connect.UserServiceRegisterProcedure, "", r)
					return err
				}
				wantCode(t, call(&flockv1.RegisterRequest{Username: "TAKEN", Email: "other-" + string(tr) + "@example.com", Password: "long enough"}), connect.CodeAlreadyExists)
				wantCode(t, call(&flockv1.RegisterRequest{Username: "fresh_" + string(tr), Email: " TAKEN@example.com", Password: "long enough"}), connect.CodeAlreadyExists)
				for name, r := range map[string]*flockv1.RegisterRequest{
					"short username":    {Username: "ab", Email: "a@example.com", Password: "long enough"},
					"username symbols":  {Username: "bad-name!", Email: "a@example.com", Password: "long enough"},
					"long username":     {Username: strings.Repeat("a", 31), Email: "a@example.com", Password: "long enough"},
					"short password":    {Username: "okname", Email: "a@example.com", Password: "7chars!"},
					"long password":     {Username: "okname", Email: "a@example.com", Password: strings.Repeat("p", 129)},
					"not an email":      {Username: "okname", Email: "not-an-email", Password: "long enough"},
					"email with a name": {Username: "okname", Email: "Bob <bob@example.com>", Password: "long enough"},
				} {
					err := call(r)
					wantCode(t, err, connect.CodeInvalidArgument)
					if !strings.Contains(err.Error(), "must") {
						t.Errorf("%s: message %q does not say what is wrong", name, err)
					}
				}
			})
		}
	})
}

// Validation failures carry per-field violations (google.rpc.BadRequest),
// whether the proto rules or the domain rules caught them.
func TestValidation_CarriesFieldViolations(t *testing.T) {
	t.Parallel()
	s := tu.MustServer(t, "sqlite")
	for _, tr := range []tu.Transport{tu.Connect, tu.GRPC, tu.GRPCWeb} {
		for name, req := range map[string]*flockv1.RegisterRequest{
			"proto rule":  {Username: "ab", Email: "a@example.com", Password: "long enough"},
			"domain rule": {Username: "abc", Email: "no-at-sign.example.com", Password: "long enough"},
		} {
			_, err := tu.Call[flockv1.RegisterResponse](t.Context(), s, tr, flockv1connect.UserServiceRegisterProcedure, "", req)
			var ce *connect.Error
			if !errors.As(err, &ce) || ce.Code() != connect.CodeInvalidArgument {
				t.Fatalf("%s %s: %v", tr, name, err)
			}
			var fields []string
			for _, d := range ce.Details() {
				if v, err := d.Value(); err == nil {
					if br, ok := v.(*errdetails.BadRequest); ok {
						for _, fv := range br.GetFieldViolations() {
							fields = append(fields, fv.GetField())
						}
					}
				}
			}
			if len(fields) == 0 || (fields[0] != "username" && fields[0] != "email") {
				t.Errorf("%s %s: field violations = %v, want the bad field named", tr, name, fields)
			}
		}
	}
	// REST: the google.rpc.Status body has a numeric code and the details.
	res, body := rawJSON(t, s, http.MethodPost, "/api/users/", "", `{"username":"ab","email":"a@example.com","password":"long enough"}`)
	if res.StatusCode != http.StatusBadRequest || body["code"] != float64(3) || !strings.Contains(fmt.Sprint(body["details"]), "username") {
		t.Fatalf("REST validation error = %d %v", res.StatusCode, body)
	}
}

// P10: an unknown account and a wrong password give the same answer.
func TestLogin_UnknownUserAndWrongPasswordSameAnswer_P10(t *testing.T) {
	t.Parallel()
	s := tu.MustServer(t, "sqlite")
	s.MustAccount(t, "known")
	for _, tr := range tu.Transports {
		_, wrong := tu.Call[flockv1.LoginResponse](t.Context(), s, tr, flockv1connect.UserServiceLoginProcedure, "",
			&flockv1.LoginRequest{Identifier: &flockv1.LoginRequest_Username{Username: "known"}, Password: "wrong password"})
		_, unknown := tu.Call[flockv1.LoginResponse](t.Context(), s, tr, flockv1connect.UserServiceLoginProcedure, "",
			&flockv1.LoginRequest{Identifier: &flockv1.LoginRequest_Username{Username: "nobody"}, Password: "wrong password"})
		wantCode(t, wrong, connect.CodeUnauthenticated)
		wantCode(t, unknown, connect.CodeUnauthenticated)
		if wrong.Error() != unknown.Error() {
			t.Errorf("%s: wrong password %q differs from unknown user %q", tr, wrong, unknown)
		}
		_, err := tu.Call[flockv1.ResendVerificationResponse](t.Context(), s, tr, flockv1connect.UserServiceResendVerificationProcedure, "",
			&flockv1.ResendVerificationRequest{Email: "nobody@example.com"})
		if err != nil {
			t.Errorf("%s: resend for an unknown email = %v, want success", tr, err)
		}
	}
}

// P2: fields a client must not set are ignored, and no response carries a
// password hash or another user's email.
func TestUpdateMe_IgnoresMassAssignment_P2(t *testing.T) {
	t.Parallel()
	forEachServer(t, func(t *testing.T, s *tu.Server) {
		alice, bob := s.MustAccount(t, "alice"), s.MustAccount(t, "bob")
		res, body := rawJSON(t, s, http.MethodPatch, "/api/users/", alice.AccessToken,
			`{"bio":"mine","role":"USER_ROLE_STAFF","emailVerified":false,"email":"evil@example.com","id":"X","followersCount":99,"passwordHash":"x","username":"root"}`)
		if res.StatusCode != http.StatusOK {
			t.Fatalf("PATCH = %d %v", res.StatusCode, body)
		}
		u := body["user"].(map[string]any)
		if u["bio"] != "mine" || u["role"] != "USER_ROLE_MEMBER" || u["email"] != alice.Email || u["id"] != alice.ID ||
			u["followersCount"] != float64(0) || u["username"] != "alice" || u["emailVerified"] != true {
			t.Fatalf("mass assignment got through: %v", u)
		}
		for _, path := range []string{"/api/users/" + alice.ID + "/", "/api/users/"} {
			_, raw := rawBody(t, s, http.MethodGet, path, bob.AccessToken, "")
			if strings.Contains(raw, "$argon2") || strings.Contains(strings.ToLower(raw), "password") {
				t.Errorf("GET %s leaks a password field: %s", path, raw)
			}
			if path != "/api/users/" && strings.Contains(raw, alice.Email) {
				t.Errorf("GET %s shows alice's email to bob: %s", path, raw)
			}
		}
	})
}

func TestUpdateMe_Avatar_JSONAndMultipart_P14(t *testing.T) {
	t.Parallel()
	s := tu.MustServer(t, "sqlite")
	a := s.MustAccount(t, "pic")

	// JSON bytes over Connect: a JPEG with an EXIF segment carrying GPS.
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, solid(900, 600, color.RGBA{200, 10, 10, 255}), nil); err != nil {
		t.Fatal(err)
	}
	exif := append([]byte{0xFF, 0xE1, 0x00, 0x1A}, []byte("Exif\x00\x00GPSLatitude-TEST\x00\x00")...)
	withExif := append(append([]byte{0xFF, 0xD8}, exif...), buf.Bytes()[2:]...)
	upd := tu.MustCall[flockv1.UpdateMeResponse](t, s, tu.Connect, flockv1connect.UserServiceUpdateMeProcedure, a.AccessToken,
		&flockv1.UpdateMeRequest{Avatar: withExif})
	url := upd.GetUser().GetAvatarUrl()
	if !strings.HasPrefix(url, s.URL+"/media/avatars/") {
		t.Fatalf("avatarUrl = %q", url)
	}
	img := fetchJPEG(t, s, url)
	if b := img.Bounds(); b.Dx() != 512 || b.Dy() != 512 {
		t.Errorf("avatar is %v, want 512x512", b)
	}
	res, raw := rawBody(t, s, http.MethodGet, strings.TrimPrefix(url, s.URL), "", "")
	if strings.Contains(raw, "GPSLatitude-TEST") || res.Header.Get("Cache-Control") == "" {
		t.Errorf("served avatar keeps EXIF or lacks caching headers: %v", res.Header)
	}

	// multipart over REST, with the other fields alongside.
	var pngBuf bytes.Buffer
	_ = png.Encode(&pngBuf, solid(64, 64, color.RGBA{0, 0, 255, 255}))
	body, ctype := multipartBody(t, map[string]string{"bio": "from a form", "fullName": "Pic Ture"}, "avatar", pngBuf.Bytes())
	res2, out := rawJSON(t, s, http.MethodPatch, "/api/users/", a.AccessToken, body, ctype)
	if res2.StatusCode != http.StatusOK {
		t.Fatalf("multipart PATCH = %d %v", res2.StatusCode, out)
	}
	u := out["user"].(map[string]any)
	if u["bio"] != "from a form" || u["fullName"] != "Pic Ture" || u["avatarUrl"] == url {
		t.Fatalf("multipart update = %v", u)
	}
	if b := fetchJPEG(t, s, u["avatarUrl"].(string)).Bounds(); b.Dx() != 64 {
		t.Errorf("small avatar resized to %v; want it kept at 64", b)
	}
	// The replaced picture is deleted.
	if res, _ := rawBody(t, s, http.MethodGet, strings.TrimPrefix(url, s.URL), "", ""); res.StatusCode != http.StatusNotFound {
		t.Errorf("old avatar still served: %d", res.StatusCode)
	}

	// Not an image, whatever the part says it is.
	body, ctype = multipartBody(t, nil, "avatar", []byte("%PDF-1.4 not an image"))
	res3, out3 := rawJSON(t, s, http.MethodPatch, "/api/users/", a.AccessToken, body, ctype)
	if res3.StatusCode != http.StatusBadRequest || !strings.Contains(fmt.Sprint(out3["message"]), "JPEG, PNG") {
		t.Fatalf("PDF avatar = %d %v", res3.StatusCode, out3)
	}
	// Too large: refused before it is stored.
	body, ctype = multipartBody(t, nil, "avatar", bytes.Repeat([]byte{0xFF}, 6<<20))
	res4, out4 := rawJSON(t, s, http.MethodPatch, "/api/users/", a.AccessToken, body, ctype)
	if res4.StatusCode != http.StatusBadRequest {
		t.Fatalf("6 MiB avatar = %d %v", res4.StatusCode, out4)
	}
}

// Contract: REST paths work with and without the trailing slash, and a
// Connect POST needs no header beyond Content-Type.
func TestRouting_TrailingSlashAndPlainConnectPOST(t *testing.T) {
	t.Parallel()
	s := tu.MustServer(t, "sqlite")
	a := s.MustAccount(t, "router")
	for _, path := range []string{"/api/users", "/api/users/", "/api/users/" + a.ID, "/api/users/" + a.ID + "/"} {
		if res, body := rawJSON(t, s, http.MethodGet, path, a.AccessToken, ""); res.StatusCode != http.StatusOK {
			t.Errorf("GET %s = %d %v", path, res.StatusCode, body)
		}
	}
	res, body := rawJSON(t, s, http.MethodPost, "/flock.v1.UserService/Login", "",
		`{"username":"router","password":"`+a.Password+`"}`)
	if res.StatusCode != http.StatusOK || body["accessToken"] == "" || body["expiresIn"] != float64(900) {
		t.Fatalf("plain JSON POST = %d %v", res.StatusCode, body)
	}
	if cc := res.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control = %q, want no-store on private answers", cc)
	}
	res, body = rawJSON(t, s, http.MethodPost, "/flock.v1.UserService/GetMe", "", `{}`)
	if res.StatusCode != http.StatusUnauthorized || body["code"] != "unauthenticated" || body["message"] == "" {
		t.Fatalf("Connect error = %d %v", res.StatusCode, body)
	}
}

// A 401 names the scheme it wants (RFC 6750), on every HTTP way in: no
// token, a token that is no token, the export beside the RPCs.
func TestUnauthenticated_AnswersCarryABearerChallenge(t *testing.T) {
	t.Parallel()
	s := tu.MustServer(t, "sqlite")
	for _, c := range []struct{ method, path, token, body string }{
		{http.MethodGet, "/api/users/", "", ""},
		{http.MethodGet, "/api/users/", "not-a-token", ""},
		{http.MethodPost, "/flock.v1.UserService/GetMe", "", "{}"},
		{http.MethodGet, "/api/users/export/", "", ""},
	} {
		res, body := rawJSON(t, s, c.method, c.path, c.token, c.body)
		if res.StatusCode != http.StatusUnauthorized || res.Header.Get("WWW-Authenticate") != `Bearer realm="flock"` {
			t.Errorf("%s %s with token %q: %d, WWW-Authenticate %q (%v); want 401 with Bearer realm=\"flock\"",
				c.method, c.path, c.token, res.StatusCode, res.Header.Get("WWW-Authenticate"), body)
		}
	}
}

func TestVerifyEmailPage_GETDoesNotConsumeTheToken(t *testing.T) {
	t.Parallel()
	s := tu.MustServer(t, "sqlite")
	tu.MustCall[flockv1.RegisterResponse](t, s, tu.Connect, flockv1connect.UserServiceRegisterProcedure, "",
		&flockv1.RegisterRequest{Username: "clicker", Email: "clicker@example.com", Password: "long enough"})
	token := s.MustVerificationToken(t, "clicker@example.com")
	res, page := rawBody(t, s, http.MethodGet, "/verify-email?token="+token, "", "")
	if res.StatusCode != http.StatusOK || !strings.Contains(page, `<form method="post"`) {
		t.Fatalf("GET page = %d %s", res.StatusCode, page)
	}
	req, _ := http.NewRequest(http.MethodPost, s.URL+"/verify-email", strings.NewReader("token="+token))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	pres, err := s.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(pres.Body)
	pres.Body.Close()
	if pres.StatusCode != http.StatusOK || !strings.Contains(string(out), "verified") {
		t.Fatalf("POST page = %d %s", pres.StatusCode, out)
	}
	tu.MustCall[flockv1.LoginResponse](t, s, tu.REST, flockv1connect.UserServiceLoginProcedure, "",
		&flockv1.LoginRequest{Identifier: &flockv1.LoginRequest_Email{Email: "clicker@example.com"}, Password: "long enough"})
}

// --- helpers ---

func solid(w, h int, c color.RGBA) image.Image {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for i := 0; i < len(img.Pix); i += 4 {
		img.Pix[i], img.Pix[i+1], img.Pix[i+2], img.Pix[i+3] = c.R, c.G, c.B, c.A
	}
	return img
}

func fetchJPEG(t *testing.T, s *tu.Server, url string) image.Image {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "image/jpeg" {
		t.Fatalf("GET %s = %d %s", url, res.StatusCode, res.Header.Get("Content-Type"))
	}
	img, err := jpeg.Decode(res.Body)
	if err != nil {
		t.Fatalf("avatar is not a JPEG: %v", err)
	}
	return img
}

func multipartBody(t *testing.T, fields map[string]string, fileField string, file []byte) (string, string) {
	t.Helper()
	var b bytes.Buffer
	w := multipart.NewWriter(&b)
	for k, v := range fields {
		_ = w.WriteField(k, v)
	}
	fw, err := w.CreateFormFile(fileField, "picture.png")
	if err != nil {
		t.Fatal(err)
	}
	_, _ = fw.Write(file)
	_ = w.Close()
	return b.String(), w.FormDataContentType()
}

func rawBody(t *testing.T, s *tu.Server, method, path, token, body string, contentType ...string) (*http.Response, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, s.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if len(contentType) > 0 {
		req.Header.Set("Content-Type", contentType[0])
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := s.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	out, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, string(out)
}

func rawJSON(t *testing.T, s *tu.Server, method, path, token, body string, contentType ...string) (*http.Response, map[string]any) {
	t.Helper()
	res, raw := rawBody(t, s, method, path, token, body, contentType...)
	var out map[string]any
	if err := json.Unmarshal([]byte(raw), &out); err != nil {
		t.Fatalf("%s %s: %d, body is not JSON: %q", method, path, res.StatusCode, raw)
	}
	return res, out
}
