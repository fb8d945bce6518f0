package server

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"mime"
	"net/http"
	"path"
	"strings"
	"unicode/utf8"

	"connectrpc.com/connect"
	"gocloud.dev/gcerrors"

	"github.com/flock-social/flock"
	"github.com/flock-social/flock/internal/media"
)

// serveMedia serves stored media by key: avatars, which are public and
// content-addressed, so a response never changes and may be cached
// forever; and video files, under the access rule of serveVideoFile. Range
// and conditional requests work through http.ServeContent.
func (a *App) serveMedia(w http.ResponseWriter, r *http.Request) {
	key := strings.TrimPrefix(r.URL.Path, "/media/")
	if path.Clean(key) != key || strings.Contains(key, "..") {
		writeStatus(w, http.StatusNotFound, connect.CodeNotFound, "no such media file")
		return
	}
	if strings.HasPrefix(key, "videos/") {
		a.serveVideoFile(w, r, key)
		return
	}
	if !strings.HasPrefix(key, "avatars/") {
		writeStatus(w, http.StatusNotFound, connect.CodeNotFound, "no such media file: media are avatars (a user's avatarUrl) and videos (GetVideo's playbackUrl and posterUrl)")
		return
	}
	a.serveStored(w, r, key, "public, max-age=31536000, immutable", `"`+strings.TrimSuffix(path.Base(key), path.Ext(key))+`"`)
}

// serveStored serves the stored file at key with its content type and the
// given Cache-Control and ETag; Range and conditional requests work through
// http.ServeContent (ranged reads on S3 too).
func (a *App) serveStored(w http.ResponseWriter, r *http.Request, key, cacheControl, etag string) {
	rd, err := a.bucket.NewReader(r.Context(), key, nil)
	if gcerrors.Code(err) == gcerrors.NotFound {
		// An avatar replaced or removed since its URL was read, or a
		// video's files removed after its post.
		writeStatus(w, http.StatusNotFound, connect.CodeNotFound, "no such media file: it was replaced or removed; read the avatarUrl, playbackUrl or posterUrl again")
		return
	} else if err != nil {
		a.log.ErrorContext(r.Context(), "open media", "key", key, "err", err)
		http.Error(w, "internal error (request id "+requestID(r.Context())+")", http.StatusInternalServerError)
		return
	}
	defer rd.Close()
	w.Header().Set("Content-Type", rd.ContentType())
	w.Header().Set("Cache-Control", cacheControl)
	w.Header().Set("ETag", etag)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	http.ServeContent(w, r, "", rd.ModTime(), rd)
}

// withMultipartProfile lets `PATCH /api/users/` take multipart/form-data
// (an `avatar` file part and `fullName`, `bio`, `interests` text parts) by
// turning it into the JSON body of UpdateMe, so the same handler,
// interceptors and validation run as for a JSON request.
func (a *App) withMultipartProfile(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
		if r.Method != http.MethodPatch || mt != "multipart/form-data" || strings.TrimRight(r.URL.Path, "/") != "/api/users" {
			next.ServeHTTP(w, r)
			return
		}
		body, err := multipartProfileJSON(w, r)
		if err != nil {
			writeRESTError(w, err)
			return
		}
		r2 := r.Clone(r.Context())
		r2.Body = io.NopCloser(bytes.NewReader(body))
		r2.ContentLength = int64(len(body))
		r2.Header.Set("Content-Type", "application/json")
		r2.Header.Del("Content-Length")
		next.ServeHTTP(w, r2)
	})
}

func multipartProfileJSON(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	r.Body = http.MaxBytesReader(w, r.Body, media.MaxAvatarBytes+1<<20)
	mr, err := r.MultipartReader()
	if err != nil {
		return nil, flock.Errorf(flock.EINVALID, "malformed multipart body: %v", err)
	}
	out := map[string]any{}
	var interests []string
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, flock.FieldErrorf("avatar", "request is too large: the avatar may be at most %d MiB", media.MaxAvatarBytes>>20)
		} else if err != nil {
			return nil, flock.Errorf(flock.EINVALID, "malformed multipart body: %v", err)
		}
		data, err := io.ReadAll(io.LimitReader(part, media.MaxAvatarBytes+1))
		if errors.As(err, &tooBig) || len(data) > media.MaxAvatarBytes {
			return nil, flock.FieldErrorf("avatar", "the avatar may be at most %d MiB", media.MaxAvatarBytes>>20)
		} else if err != nil {
			return nil, flock.Errorf(flock.EINVALID, "malformed multipart body: %v", err)
		}
		if name := part.FormName(); name != "avatar" && !utf8.Valid(data) {
			return nil, flock.FieldErrorf(name, "%s is not valid UTF-8 text; send form fields encoded as UTF-8", name)
		}
		switch name := part.FormName(); name {
		case "avatar":
			out["avatar"] = base64.StdEncoding.EncodeToString(data)
		case "fullName", "full_name":
			out["fullName"] = string(data)
		case "bio":
			out["bio"] = string(data)
		case "interests":
			for _, v := range strings.Split(string(data), ",") {
				if v = strings.TrimSpace(v); v != "" {
					interests = append(interests, v)
				}
			}
		default:
			return nil, flock.FieldErrorf(name, "unknown form field %q: use avatar, fullName, bio or interests", name)
		}
	}
	if interests != nil {
		out["interests"] = interests
	}
	return json.Marshal(out)
}

// writeRESTError answers a plain-HTTP endpoint under /api/ with the same
// google.rpc.Status JSON body that vanguard writes for RPC errors.
// A refusal that names a field carries a google.rpc.BadRequest detail, as
// the RPCs' do (errors.md).
func writeRESTError(w http.ResponseWriter, err error) {
	code, ok := connectCodes[flock.ErrorCode(err)]
	if !ok {
		code = connect.CodeInternal
	}
	body := map[string]any{"code": int(code), "message": flock.ErrorMessage(err), "details": []any{}}
	var fe *flock.Error
	if errors.As(err, &fe) && fe.Field != "" && code == connect.CodeInvalidArgument {
		body["details"] = []any{map[string]any{
			"@type":           "type.googleapis.com/google.rpc.BadRequest",
			"fieldViolations": []any{map[string]string{"field": fe.Field, "description": fe.Message}},
		}}
	}
	w.Header().Set("Content-Type", "application/json")
	if code == connect.CodeUnauthenticated {
		w.Header().Set("WWW-Authenticate", bearerChallenge)
	}
	w.WriteHeader(httpStatus[code])
	_ = json.NewEncoder(w).Encode(body)
}

// httpStatus is the HTTP status of each Connect code that flock errors map
// onto, as vanguard gives it for the RPCs.
var httpStatus = map[connect.Code]int{
	connect.CodeInvalidArgument:    http.StatusBadRequest,
	connect.CodeFailedPrecondition: http.StatusBadRequest,
	connect.CodeNotFound:           http.StatusNotFound,
	connect.CodeAlreadyExists:      http.StatusConflict,
	connect.CodePermissionDenied:   http.StatusForbidden,
	connect.CodeUnauthenticated:    http.StatusUnauthorized,
	connect.CodeResourceExhausted:  http.StatusTooManyRequests,
	connect.CodeUnavailable:        http.StatusServiceUnavailable,
	connect.CodeInternal:           http.StatusInternalServerError,
}

var verifyPage = template.Must(template.New("verify").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>Verify your email · Flock</title>
<style>` + pageStyle + `</style>
</head><body>
<h1>Verify your email</h1>
{{if .Done}}<p>{{.Message}}</p><p><a href="/login">Open Flock</a></p>
{{else if .Token}}<form method="post" action="/verify-email"><input type="hidden" name="token" value="{{.Token}}">
<p>Confirm the email address of your Flock account.</p><button type="submit">Verify my email</button></form>
{{else}}<p>This link has no token. Open the link from your verification email again.</p>{{end}}
</body></html>`))

// verifyEmailPage is where the link in the verification email leads. GET
// shows a button and POST verifies, so that mail scanners that fetch links
// do not use up the single-use token.
func (a *App) verifyEmailPage(w http.ResponseWriter, r *http.Request) {
	pageHeaders(w)
	data := struct {
		Token, Message string
		Done           bool
	}{Token: r.URL.Query().Get("token")}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
	case http.MethodPost:
		r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
		data.Done = true
		if u, err := a.accounts.VerifyEmail(r.Context(), r.PostFormValue("token")); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			data.Message = flock.ErrorMessage(err)
		} else {
			data.Message = fmt.Sprintf("Thank you, %s: your email is verified. You can log in now.", u.Username)
		}
	default:
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	_ = verifyPage.Execute(w, data)
}
