package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"strings"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protojson"

	flockv1 "github.com/flock-social/flock/gen/go/flock/v1"
	"github.com/flock-social/flock/gen/go/flock/v1/flockv1connect"
)

// UploadVideo uploads a video as the Client's account: see the function
// UploadVideo, which it calls with the Client's HTTP client, base URL and
// access token (refreshed first when it is about to expire). The upload
// is not retried: r may be a stream that cannot be read twice.
func (c *Client) UploadVideo(ctx context.Context, filename string, r io.Reader) (*flockv1.Video, error) {
	access, err := c.auth.current(ctx)
	if err != nil {
		return nil, fmt.Errorf("upload video: %w", err)
	}
	return UploadVideo(ctx, c.httpClient, c.baseURL, access, filename, r)
}

// WaitVideo waits for an uploaded video to be processed, asking the
// server every second: see the function WaitVideo. The Client renews its
// token during a long wait.
func (c *Client) WaitVideo(ctx context.Context, videoID string) (*flockv1.Video, error) {
	access, _ := c.auth.tokens()
	return WaitVideo(ctx, c.Posts, access, videoID, time.Second)
}

// UploadVideo uploads a video to the Flock server at baseURL (e.g.
// "http://127.0.0.1:8080") as the holder of accessToken, streaming r as the
// multipart `file` part: the file is never held in memory, so it may be as
// large as the server allows. It returns the video in the processing state;
// see WaitVideo. Errors are *connect.Error with the server's code and
// message (a file past the server's limit is CodeResourceExhausted).
func UploadVideo(ctx context.Context, httpClient *http.Client, baseURL, accessToken, filename string, r io.Reader) (*flockv1.Video, error) {
	if httpClient == nil {
		httpClient = http.DefaultClient
	}
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		part, err := mw.CreateFormFile("file", filename)
		if err == nil {
			_, err = io.Copy(part, r)
		}
		if err == nil {
			err = mw.Close()
		}
		pw.CloseWithError(err)
	}()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(baseURL, "/")+"/api/posts/videos/", pr)
	if err != nil {
		pr.Close()
		return nil, err
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Authorization", "Bearer "+accessToken)
	res, err := httpClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("upload video: %w", err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("upload video: read response: %w", err)
	}
	if res.StatusCode != http.StatusAccepted {
		return nil, responseError(res.StatusCode, body)
	}
	var out flockv1.GetVideoResponse
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(body, &out); err != nil {
		return nil, fmt.Errorf("upload video: response: %w", err)
	}
	return out.GetVideo(), nil
}

// responseError turns a REST error body ({"code": <int>, "message": ...})
// into a *connect.Error.
func responseError(status int, body []byte) error {
	var e struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}
	if json.Unmarshal(body, &e) != nil || e.Code == 0 {
		return connect.NewError(connect.CodeUnknown, fmt.Errorf("upload video: HTTP %d: %s", status, strings.TrimSpace(string(body))))
	}
	return connect.NewError(connect.Code(e.Code), errors.New(e.Message))
}

// WaitVideo polls GetVideo every interval (1s when zero) until the video
// is no longer processing, and returns it: ready, or failed with its
// failure_reason. ctx bounds the wait.
func WaitVideo(ctx context.Context, posts flockv1connect.PostServiceClient, accessToken, videoID string, interval time.Duration) (*flockv1.Video, error) {
	if interval <= 0 {
		interval = time.Second
	}
	for {
		req := connect.NewRequest(&flockv1.GetVideoRequest{VideoId: videoID})
		req.Header().Set("Authorization", "Bearer "+accessToken)
		res, err := posts.GetVideo(ctx, req)
		if err != nil {
			return nil, err
		}
		if v := res.Msg.GetVideo(); v.GetStatus() != flockv1.VideoStatus_VIDEO_STATUS_PROCESSING {
			return v, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(interval):
		}
	}
}
