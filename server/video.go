package server

import (
	"bufio"
	"context"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strings"
	"time"

	"connectrpc.com/connect"

	"github.com/flock-social/flock"
	flockv1 "github.com/flock-social/flock/gen/go/flock/v1"
	"github.com/flock-social/flock/internal/store"
	"github.com/flock-social/flock/internal/video"
)

// uploadVideo serves `POST /api/posts/videos/`: a multipart/form-data body
// whose `file` part is the video. The part is streamed to media storage as
// it arrives (internal/video), so memory use does not grow with the file;
// past the limit the upload is refused with 413 and nothing is kept. It
// answers 202 with {"video": {...}} in the processing state, the body of
// GetVideo.
func (a *App) uploadVideo(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	w.Header().Set("Cache-Control", "no-store")
	token, ok := bearerToken(r.Header.Get("Authorization"))
	if !ok {
		writeRESTError(w, flock.Errorf(flock.EUNAUTHORIZED, "missing access token: send Authorization: Bearer <accessToken>"))
		return
	}
	p, err := a.accounts.Authenticate(ctx, token)
	if err != nil {
		writeRESTError(w, err)
		return
	}
	if err := a.limitHTTP(w, r, "upload", p.UserID); err != nil {
		writeRESTError(w, err)
		return
	}
	// The multipart envelope adds a little to the file; allow for it.
	limit := a.videos.MaxBytes() + 1<<20
	if r.ContentLength > limit {
		writeTooLarge(w, a.videos.MaxBytes())
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, limit)
	mt, params, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt != "multipart/form-data" {
		writeRESTError(w, flock.FieldErrorf("file", "send the video as multipart/form-data with a file part, e.g. curl -F file=@clip.mp4"))
		return
	}
	if params["boundary"] == "" {
		writeRESTError(w, flock.Errorf(flock.EINVALID, "malformed multipart body: no boundary in Content-Type"))
		return
	}
	// The multipart reader reads its source 4 KiB at a time; a larger
	// buffer under it turns that into few large socket reads (measured in
	// docs/performance.md), at 1 MiB per upload in flight.
	mr := multipart.NewReader(bufio.NewReaderSize(r.Body, 1<<20), params["boundary"])
	for {
		part, err := mr.NextPart()
		var tooBig *http.MaxBytesError
		switch {
		case err == io.EOF:
			writeRESTError(w, flock.FieldErrorf("file", "the form has no file part: send the video as file, e.g. curl -F file=@clip.mp4"))
			return
		case errors.As(err, &tooBig):
			writeTooLarge(w, a.videos.MaxBytes())
			return
		case err != nil:
			writeRESTError(w, flock.Errorf(flock.EINVALID, "malformed multipart body: %v", err))
			return
		}
		if part.FormName() != "file" {
			continue // other fields are not used; NextPart skips the rest of this one
		}
		v, err := a.videos.Upload(ctx, p, part)
		if errors.Is(err, video.ErrTooLarge) || errors.As(err, &tooBig) {
			writeTooLarge(w, a.videos.MaxBytes())
			return
		} else if err != nil {
			if flock.ErrorCode(err) == flock.EINTERNAL {
				a.log.ErrorContext(ctx, "upload video", "err", err, "request_id", requestID(ctx))
				err = flock.Errorf(flock.EINTERNAL, "internal error (request id %s)", requestID(ctx))
			}
			writeRESTError(w, err)
			return
		}
		body, err := marshalJSON(&flockv1.GetVideoResponse{Video: a.conv.video(v, time.Now())})
		if err != nil {
			writeRESTError(w, err)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Location", "/api/posts/videos/"+v.ID+"/")
		w.WriteHeader(http.StatusAccepted)
		_, _ = w.Write(body)
		return
	}
}

// writeTooLarge answers 413 with the limit.
func writeTooLarge(w http.ResponseWriter, limit int64) {
	w.Header().Set("Connection", "close")
	msg := flock.ErrorMessage(flock.FieldErrorf("file", "the video is too large: the limit is %d MiB", limit>>20))
	writeStatus(w, http.StatusRequestEntityTooLarge, connect.CodeResourceExhausted, msg)
}

// serveVideoFile serves videos/<id>/video.mp4 and videos/<id>/poster.jpg
// to whoever holds a signed URL for it, or to anyone when the video is
// public (carried by a public post). Anything else is 404, so that a
// video's existence does not leak. Range and conditional requests work
// through http.ServeContent.
func (a *App) serveVideoFile(w http.ResponseWriter, r *http.Request, key string) {
	parts := strings.Split(key, "/") // videos, id, name
	if len(parts) != 3 || !store.ValidID(parts[1]) || (parts[2] != "video.mp4" && parts[2] != "poster.jpg") {
		writeStatus(w, http.StatusNotFound, connect.CodeNotFound, "no such video file: a video's files are videos/{video_id}/video.mp4 and poster.jpg, linked by GetVideo's playbackUrl and posterUrl")
		return
	}
	id := parts[1]
	// A signed URL reaches the video while its row exists (its files
	// outlive a deletion until their removal job has run); without a
	// signature, only a public video.
	cache, check := "private, max-age=3600", a.videos.Exists
	if !a.signer.Verify(key, r.URL.Query(), time.Now()) {
		// Short: a deleted post or a suspended author ends public access.
		cache, check = "public, max-age=300", a.videos.Public
	}
	allowed, err := check(r.Context(), id)
	if err != nil {
		a.log.ErrorContext(r.Context(), "video access", "video", id, "err", err)
		http.Error(w, "internal error (request id "+requestID(r.Context())+")", http.StatusInternalServerError)
		return
	}
	if !allowed {
		writeStatus(w, http.StatusNotFound, connect.CodeNotFound,
			"no such video file, or its link has expired or lost its signature: call GetVideo (GET /api/posts/videos/{video_id}/) for fresh playbackUrl and posterUrl")
		return
	}
	// A video's files never change once written: its ID and file name
	// identify the content.
	a.serveStored(w, r, key, cache, `"`+id+"-"+strings.TrimSuffix(parts[2], ".mp4")+`"`)
}

// GetVideo serves flock.v1.PostService/GetVideo.
func (s *postServer) GetVideo(ctx context.Context, req *connect.Request[flockv1.GetVideoRequest]) (*connect.Response[flockv1.GetVideoResponse], error) {
	v, err := s.videos.Get(ctx, principal(ctx), req.Msg.GetVideoId())
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&flockv1.GetVideoResponse{Video: s.conv.video(v, time.Now())}), nil
}

// DeleteVideo serves flock.v1.PostService/DeleteVideo.
func (s *postServer) DeleteVideo(ctx context.Context, req *connect.Request[flockv1.DeleteVideoRequest]) (*connect.Response[flockv1.DeleteVideoResponse], error) {
	if err := s.videos.Delete(ctx, principal(ctx), req.Msg.GetVideoId()); err != nil {
		return nil, err
	}
	return connect.NewResponse(&flockv1.DeleteVideoResponse{}), nil
}
