package server_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"image/jpeg"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	client "github.com/flock-social/flock/client/go"
	flockv1 "github.com/flock-social/flock/gen/go/flock/v1"
	"github.com/flock-social/flock/gen/go/flock/v1/flockv1connect"
	tu "github.com/flock-social/flock/internal/testutil"
	"github.com/flock-social/flock/server"
)

// processing makes a test server transcode videos (tu.MustServer queues
// them only).
func processing(c *server.Config) { c.Video.Workers = 1 }

// needFFmpeg skips where ffmpeg is missing, except under CI=true, where
// .ci/run installs it and its absence is a failure.
func needFFmpeg(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("ffmpeg is not installed; .ci/run installs it (apt-get install ffmpeg)")
		}
		t.Skip("needs ffmpeg (apt-get install ffmpeg)")
	}
}

// fixture makes a test video with ffmpeg's generators: args go between the
// inputs and the output file.
func fixture(t *testing.T, name, size string, rate, seconds int, args ...string) []byte {
	t.Helper()
	needFFmpeg(t)
	out := filepath.Join(t.TempDir(), name)
	dur := strconv.Itoa(seconds)
	cmd := append([]string{"-v", "error", "-f", "lavfi", "-i", "testsrc=duration=" + dur + ":size=" + size + ":rate=" + strconv.Itoa(rate),
		"-f", "lavfi", "-i", "sine=duration=" + dur}, args...)
	cmd = append(cmd, out)
	if b, err := exec.Command("ffmpeg", cmd...).CombinedOutput(); err != nil {
		t.Fatalf("make fixture %s: %v: %s", name, err, b)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// An AVI with MPEG-4 Part 2 video and MP2 sound: browsers play neither, so
// it is transcoded.
func aviFixture(t *testing.T) []byte {
	return fixture(t, "clip.avi", "320x240", 25, 2, "-c:v", "mpeg4", "-c:a", "mp2")
}

// An H.264/AAC MP4 that browsers play as it is: it is only remuxed.
func mp4Fixture(t *testing.T, size string, rate, seconds int) []byte {
	return fixture(t, "clip.mp4", size, rate, seconds, "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac")
}

func upload(t *testing.T, s *tu.Server, token string, data []byte) *flockv1.Video {
	t.Helper()
	v, err := client.UploadVideo(t.Context(), s.HTTP, s.URL, token, "clip", bytes.NewReader(data))
	if err != nil {
		t.Fatalf("upload: %v", err)
	}
	if v.GetStatus() != flockv1.VideoStatus_VIDEO_STATUS_PROCESSING || v.GetId() == "" {
		t.Fatalf("upload answered %v, want an id in the processing state", v)
	}
	return v
}

func postClient(s *tu.Server) flockv1connect.PostServiceClient {
	return flockv1connect.NewPostServiceClient(s.HTTP, s.URL)
}

func wait(t *testing.T, s *tu.Server, token, id string) *flockv1.Video {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	v, err := client.WaitVideo(ctx, postClient(s), token, id, 50*time.Millisecond)
	if err != nil {
		t.Fatalf("wait for video %s: %v", id, err)
	}
	return v
}

func waitReady(t *testing.T, s *tu.Server, token, id string) *flockv1.Video {
	t.Helper()
	v := wait(t, s, token, id)
	if v.GetStatus() != flockv1.VideoStatus_VIDEO_STATUS_READY {
		t.Fatalf("video %s: %s (%s), want ready", id, v.GetStatus(), v.GetFailureReason())
	}
	return v
}

func get(t *testing.T, s *tu.Server, rawURL string, header ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, rawURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := s.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, body
}

// mediaFiles lists the files under the local media dir's videos/ folder.
func mediaFiles(t *testing.T, s *tu.Server) []string {
	t.Helper()
	var files []string
	root := filepath.Join(s.Config.DataDir, "media", "videos")
	_ = filepath.Walk(root, func(path string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() && !strings.HasSuffix(path, ".attrs") {
			rel, _ := filepath.Rel(root, path)
			files = append(files, rel)
		}
		return nil
	})
	return files
}

// probeStreams returns "codec_type:codec_name" of each stream of data.
func probeStreams(t *testing.T, data []byte) []string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "probe.mp4")
	if err := os.WriteFile(f, data, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("ffprobe", "-v", "error", "-show_entries", "stream=codec_type,codec_name", "-of", "json", f).Output()
	if err != nil {
		t.Fatalf("ffprobe of the playable file: %v", err)
	}
	var raw struct {
		Streams []map[string]string `json:"streams"`
	}
	if err := json.Unmarshal(out, &raw); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range raw.Streams {
		got = append(got, s["codec_type"]+":"+s["codec_name"])
	}
	return got
}

// Contract row S11 and S12: an upload answers 202 processing; the job makes
// an H.264/AAC MP4 with its index first and a JPEG poster; GetVideo says
// ready with the measurements on every transport; the playback URL plays
// in a <video> element (no Authorization, Range 206, ETag 304); the upload
// itself is not kept. Both a file that needs transcoding and one that is
// only remuxed, on both engines.
func TestVideo_UploadProcessesIntoPlayableMP4(t *testing.T) {
	t.Parallel()
	avi, mp4 := aviFixture(t), mp4Fixture(t, "320x240", 25, 2)
	for _, engine := range tu.Engines(t) {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			s := tu.MustServer(t, engine, processing)
			alice := s.MustAccount(t, "alice")
			for _, in := range []struct {
				name string
				data []byte
			}{{"avi", avi}, {"mp4", mp4}} {
				t.Run(in.name, func(t *testing.T) {
					v := waitReady(t, s, alice.AccessToken, upload(t, s, alice.AccessToken, in.data).GetId())
					if v.GetWidth() != 320 || v.GetHeight() != 240 || v.GetDurationSeconds() < 1.9 || v.GetDurationSeconds() > 2.2 || v.GetSizeBytes() <= 0 {
						t.Errorf("ready video = %dx%d, %.2fs, %d bytes; want 320x240, ~2s", v.GetWidth(), v.GetHeight(), v.GetDurationSeconds(), v.GetSizeBytes())
					}
					for _, tr := range tu.Transports {
						got, err := tu.Call[flockv1.GetVideoResponse](t.Context(), s, tr, flockv1connect.PostServiceGetVideoProcedure, alice.AccessToken, &flockv1.GetVideoRequest{VideoId: v.GetId()})
						if err != nil || got.GetVideo().GetStatus() != flockv1.VideoStatus_VIDEO_STATUS_READY || got.GetVideo().GetPlaybackUrl() == "" {
							t.Errorf("%s GetVideo = %v, %v", tr, got, err)
						}
					}

					// Not public: the URLs are signed, and work without a header.
					if !strings.Contains(v.GetPlaybackUrl(), "sig=") || !strings.Contains(v.GetPosterUrl(), "sig=") {
						t.Errorf("URLs of an unposted video are not signed: %s %s", v.GetPlaybackUrl(), v.GetPosterUrl())
					}
					res, body := get(t, s, v.GetPlaybackUrl())
					if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "video/mp4" || int64(len(body)) != v.GetSizeBytes() {
						t.Fatalf("playback = %d %s, %d bytes", res.StatusCode, res.Header.Get("Content-Type"), len(body))
					}
					if got := strings.Join(probeStreams(t, body), " "); got != "video:h264 audio:aac" {
						t.Errorf("playable file streams = %s, want video:h264 audio:aac", got)
					}
					if moov, mdat := bytes.Index(body, []byte("moov")), bytes.Index(body, []byte("mdat")); moov < 0 || moov > mdat {
						t.Errorf("moov at %d, mdat at %d: the index is not first (no faststart)", moov, mdat)
					}
					etag := res.Header.Get("ETag")
					res, part := get(t, s, v.GetPlaybackUrl(), "Range", "bytes=100-199")
					if res.StatusCode != http.StatusPartialContent || !bytes.Equal(part, body[100:200]) ||
						res.Header.Get("Content-Range") != "bytes 100-199/"+strconv.Itoa(len(body)) {
						t.Errorf("range = %d %q, %d bytes", res.StatusCode, res.Header.Get("Content-Range"), len(part))
					}
					if res, _ := get(t, s, v.GetPlaybackUrl(), "If-None-Match", etag); etag == "" || res.StatusCode != http.StatusNotModified {
						t.Errorf("If-None-Match %q = %d, want 304", etag, res.StatusCode)
					}
					res, poster := get(t, s, v.GetPosterUrl())
					if _, err := jpeg.Decode(bytes.NewReader(poster)); res.StatusCode != http.StatusOK || err != nil {
						t.Errorf("poster = %d, %v", res.StatusCode, err)
					}
					files := strings.Join(mediaFiles(t, s), " ")
					if strings.Contains(files, v.GetId()+"/original") || !strings.Contains(files, v.GetId()+"/video.mp4") {
						t.Errorf("stored files = %s; want the playable file and no original", files)
					}
				})
			}
		})
	}
}

// videoForm is a multipart/form-data body with one file part.
func videoForm(t *testing.T, field string, data []byte) (contentType string, body []byte) {
	b, ct := multipartBody(t, nil, field, data)
	return ct, []byte(b)
}

func postUpload(t *testing.T, s *tu.Server, token, contentType string, body []byte) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, s.URL+"/api/posts/videos/", bytes.NewReader(body))
	req.Header.Set("Content-Type", contentType)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := s.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var out map[string]any
	raw, _ := io.ReadAll(res.Body)
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("upload answered %d with a body that is not JSON: %q", res.StatusCode, raw)
	}
	return res.StatusCode, out
}

// Every refusal of the upload (property 13, 14): each with its status and a
// message that says what to do, and nothing stored.
func TestVideoUpload_Refusals_P13_P14(t *testing.T) {
	t.Parallel()
	mp4 := mp4Fixture(t, "160x120", 10, 1)
	s := tu.MustServer(t, "sqlite", func(c *server.Config) { c.Video.MaxBytes = int64(len(mp4)) })
	alice := s.MustAccount(t, "alice")
	big := append(append([]byte{}, mp4...), make([]byte, 1)...)
	text := []byte(strings.Repeat("just some text, not a video at all\n", 100))
	png := []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
	cases := []struct {
		name        string
		token       string
		contentType string
		body        []byte
		status      int
		message     string
	}{
		{"no token", "", "", nil, 401, "Authorization"},
		{"bad token", "not-a-token", "", nil, 401, ""},
		{"not multipart", alice.AccessToken, "application/json", []byte(`{}`), 400, "multipart/form-data"},
		{"no file part", alice.AccessToken, "avatar", mp4, 400, "no file part"},
		{"empty file", alice.AccessToken, "file", []byte{}, 400, "empty"},
		{"text", alice.AccessToken, "file", text, 400, "not a video"},
		{"image", alice.AccessToken, "file", png, 400, "not a video"},
		{"one byte past the limit", alice.AccessToken, "file", big, 413, "too large"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ct, body := c.contentType, c.body
			if ct != "application/json" && c.token != "" {
				ct, body = videoForm(t, c.contentType, c.body)
			} else if ct == "" {
				ct, body = videoForm(t, "file", mp4)
			}
			status, out := postUpload(t, s, c.token, ct, body)
			msg, _ := out["message"].(string)
			if status != c.status || !strings.Contains(msg, c.message) {
				t.Errorf("%d %q, want %d with %q", status, msg, c.status, c.message)
			}
			// A refusal of the file names it, as the RPCs' field violations do.
			if status == http.StatusBadRequest {
				if d, _ := json.Marshal(out["details"]); !strings.Contains(string(d), `"field":"file"`) || !strings.Contains(string(d), "google.rpc.BadRequest") {
					t.Errorf("%d %q: details %s, want a BadRequest field violation for file", status, msg, d)
				}
			}
		})
	}
	if files := mediaFiles(t, s); len(files) != 0 {
		t.Errorf("refused uploads left files behind: %v", files)
	}
	var n int
	if err := s.App.DB().NewSelect().Table("videos").ColumnExpr("count(*)").Scan(t.Context(), &n); err != nil || n != 0 {
		t.Errorf("refused uploads left %d video rows (%v)", n, err)
	}
	// Exactly at the limit is accepted.
	upload(t, s, alice.AccessToken, mp4)
}

// Uploads are rate limited per account (property 12), on the plain-HTTP
// endpoint too: 429 with Retry-After.
func TestVideoUpload_RateLimited_P12(t *testing.T) {
	t.Parallel()
	mp4 := mp4Fixture(t, "160x120", 10, 1)
	s := tu.MustServer(t, "sqlite", withRateLimits)
	alice := s.MustAccount(t, "alice")
	ct, body := videoForm(t, "file", mp4)
	for i := 1; ; i++ {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, s.URL+"/api/posts/videos/", bytes.NewReader(body))
		req.Header.Set("Content-Type", ct)
		req.Header.Set("Authorization", "Bearer "+alice.AccessToken)
		res, err := s.HTTP.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode == http.StatusTooManyRequests {
			if i != 11 || res.Header.Get("Retry-After") == "" {
				t.Errorf("429 on upload %d (Retry-After %q), want on the 11th with Retry-After", i, res.Header.Get("Retry-After"))
			}
			return
		}
		if res.StatusCode != http.StatusAccepted || i > 11 {
			t.Fatalf("upload %d: %d", i, res.StatusCode)
		}
	}
}

// Processing refuses what is past the limits, and what is not a readable
// video whatever its first bytes say, with a reason for the uploader
// (property 14); nothing of a failed video is kept.
func TestVideoProcessing_FailsPastLimitsWithReason_P14(t *testing.T) {
	t.Parallel()
	long := mp4Fixture(t, "160x120", 10, 3)
	wide := mp4Fixture(t, "480x120", 10, 1)
	fast := mp4Fixture(t, "160x120", 50, 1)
	garbage := append(append([]byte{}, long[:64]...), make([]byte, 64<<10)...)
	rand.Read(garbage[64:])
	s := tu.MustServer(t, "sqlite", processing, func(c *server.Config) {
		c.Video.MaxDuration = 2 * time.Second
		c.Video.MaxDimension = 320
		c.Video.MaxFrameRate = 30
	})
	alice := s.MustAccount(t, "alice")
	for _, c := range []struct {
		name   string
		data   []byte
		reason string
	}{
		{"too long", long, "the video is 3s long; the limit is 2s"},
		{"too wide", wide, "the video is 480x120 pixels; the limit is 320"},
		{"too many frames per second", fast, "the video has 50 frames per second; the limit is 30"},
		{"not a video inside", garbage, "not a video that can be read"},
	} {
		t.Run(c.name, func(t *testing.T) {
			v := wait(t, s, alice.AccessToken, upload(t, s, alice.AccessToken, c.data).GetId())
			if v.GetStatus() != flockv1.VideoStatus_VIDEO_STATUS_FAILED || !strings.Contains(v.GetFailureReason(), c.reason) || v.GetPlaybackUrl() != "" {
				t.Errorf("video = %s %q (url %q), want failed: %q", v.GetStatus(), v.GetFailureReason(), v.GetPlaybackUrl(), c.reason)
			}
			for _, f := range mediaFiles(t, s) {
				if strings.HasPrefix(f, v.GetId()) {
					t.Errorf("failed video left %s", f)
				}
			}
			// A failed video cannot be posted.
			_, err := tu.Call[flockv1.CreatePostResponse](t.Context(), s, tu.Connect, flockv1connect.PostServiceCreatePostProcedure, alice.AccessToken,
				&flockv1.CreatePostRequest{Content: "look", VideoId: v.GetId()})
			wantCode(t, err, connect.CodeFailedPrecondition)
		})
	}
}

// ffmpeg runs under a time limit (property 14): past it the video fails
// with a reason instead of holding a worker.
func TestVideoProcessing_TimeLimit_P14(t *testing.T) {
	t.Parallel()
	mp4 := mp4Fixture(t, "160x120", 10, 1)
	s := tu.MustServer(t, "sqlite", processing, func(c *server.Config) { c.Video.ProcessTimeout = time.Millisecond })
	alice := s.MustAccount(t, "alice")
	v := wait(t, s, alice.AccessToken, upload(t, s, alice.AccessToken, mp4).GetId())
	if v.GetStatus() != flockv1.VideoStatus_VIDEO_STATUS_FAILED || !strings.Contains(v.GetFailureReason(), "took longer than the 1ms limit") {
		t.Errorf("video = %s %q, want failed for taking too long", v.GetStatus(), v.GetFailureReason())
	}
}

func createPost(t *testing.T, s *tu.Server, token, content, videoID string, vis flockv1.Visibility) (*flockv1.Post, error) {
	res, err := tu.Call[flockv1.CreatePostResponse](t.Context(), s, tu.Connect, flockv1connect.PostServiceCreatePostProcedure, token,
		&flockv1.CreatePostRequest{Content: content, VideoId: videoID, Visibility: vis})
	return res.GetPost(), err
}

func getVideo(t *testing.T, s *tu.Server, tr tu.Transport, token, id string) (*flockv1.Video, error) {
	res, err := tu.Call[flockv1.GetVideoResponse](t.Context(), s, tr, flockv1connect.PostServiceGetVideoProcedure, token, &flockv1.GetVideoRequest{VideoId: id})
	return res.GetVideo(), err
}

// A video is private to its uploader until a post carries it, then visible
// to whoever sees the post (property 4 for blocks): on every transport. The
// files of a public video have plain URLs anyone may fetch; the others'
// are signed, and without a valid signature they are 404.
func TestVideo_VisibleAsItsPost_P4(t *testing.T) {
	t.Parallel()
	mp4 := mp4Fixture(t, "160x120", 10, 1)
	for _, engine := range tu.Engines(t) {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			s := tu.MustServer(t, engine, processing)
			alice, bob, carol := s.MustAccount(t, "alice"), s.MustAccount(t, "bob"), s.MustAccount(t, "carol")
			tu.MustCall[flockv1.FollowResponse](t, s, tu.Connect, flockv1connect.UserServiceFollowProcedure, carol.AccessToken, &flockv1.FollowRequest{UserId: alice.ID})
			private := waitReady(t, s, alice.AccessToken, upload(t, s, alice.AccessToken, mp4).GetId())
			public := waitReady(t, s, alice.AccessToken, upload(t, s, alice.AccessToken, mp4).GetId())

			for _, tr := range tu.Transports {
				_, err := getVideo(t, s, tr, bob.AccessToken, private.GetId())
				wantCode(t, err, connect.CodeNotFound)
			}
			if _, err := createPost(t, s, bob.AccessToken, "mine now", private.GetId(), 0); connect.CodeOf(err) != connect.CodeNotFound {
				t.Errorf("posting someone else's video: %v, want not_found", err)
			}
			fp, err := createPost(t, s, alice.AccessToken, "for followers", private.GetId(), flockv1.Visibility_VISIBILITY_FOLLOWERS)
			if err != nil || fp.GetVideo().GetId() != private.GetId() || fp.GetVideo().GetStatus() != flockv1.VideoStatus_VIDEO_STATUS_READY {
				t.Fatalf("post with video = %v, %v", fp, err)
			}
			pp, err := createPost(t, s, alice.AccessToken, "for all", public.GetId(), flockv1.Visibility_VISIBILITY_PUBLIC)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := createPost(t, s, alice.AccessToken, "again", public.GetId(), 0); connect.CodeOf(err) != connect.CodeAlreadyExists {
				t.Errorf("a second post with the same video: %v, want already_exists", err)
			}
			for _, tr := range tu.Transports {
				_, err := getVideo(t, s, tr, bob.AccessToken, private.GetId())
				wantCode(t, err, connect.CodeNotFound)
				v, err := getVideo(t, s, tr, carol.AccessToken, private.GetId())
				if err != nil || !strings.Contains(v.GetPlaybackUrl(), "sig=") {
					t.Fatalf("%s follower's GetVideo = %v, %v; want a signed URL", tr, v, err)
				}
				v, err = getVideo(t, s, tr, bob.AccessToken, public.GetId())
				if err != nil || strings.Contains(v.GetPlaybackUrl(), "sig=") || v.GetPlaybackUrl() == "" {
					t.Fatalf("%s GetVideo of a public video = %v, %v; want a plain URL", tr, v, err)
				}
			}
			feed := must[flockv1.ListFeedResponse](api{t: t, s: s, tr: tu.REST}, flockv1connect.PostServiceListFeedProcedure, carol.AccessToken, &flockv1.ListFeedRequest{PageSize: 10})
			if len(feed.GetPosts()) != 2 || feed.GetPosts()[0].GetVideo().GetId() != pp.GetVideo().GetId() || feed.GetPosts()[1].GetVideo().GetPlaybackUrl() == "" {
				t.Errorf("feed posts do not carry their videos: %v", feed.GetPosts())
			}

			signed := private.GetPlaybackUrl()
			plain := strings.Split(signed, "?")[0]
			if res, _ := get(t, s, signed); res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Header.Get("Cache-Control"), "private") {
				t.Errorf("signed URL = %d %q, want 200 private", res.StatusCode, res.Header.Get("Cache-Control"))
			}
			u, _ := url.Parse(signed)
			q := u.Query()
			q.Set("exp", strconv.Itoa(int(time.Now().Add(48*time.Hour).Unix())))
			u.RawQuery = q.Encode()
			for _, bad := range []string{plain, plain + "?exp=9999999999&sig=AAAA", u.String(), strings.Replace(signed, "video.mp4", "poster.jpg", 1),
				strings.Replace(plain, "video.mp4", "original", 1)} {
				// A JSON error that says where a fresh link comes from.
				if res, body := get(t, s, bad); res.StatusCode != http.StatusNotFound || !strings.Contains(string(body), `"code":5`) || !strings.Contains(string(body), "GetVideo") {
					t.Errorf("GET %s = %d %s, want 404 with a JSON body naming GetVideo", bad, res.StatusCode, body)
				}
			}
			res, _ := get(t, s, strings.Split(public.GetPlaybackUrl(), "?")[0])
			if res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Header.Get("Cache-Control"), "public") {
				t.Errorf("plain URL of a public video = %d %q, want 200 public", res.StatusCode, res.Header.Get("Cache-Control"))
			}

			// A block hides the video both ways, like the post.
			tu.MustCall[flockv1.BlockResponse](t, s, tu.Connect, flockv1connect.UserServiceBlockProcedure, alice.AccessToken, &flockv1.BlockRequest{UserId: bob.ID})
			for _, tr := range tu.Transports {
				_, err := getVideo(t, s, tr, bob.AccessToken, public.GetId())
				wantCode(t, err, connect.CodeNotFound)
			}
		})
	}
}

// Deleting the video, or the post that carries it, removes the stored
// files; only the uploader may delete a video; the post stays without it.
func TestVideo_DeleteRemovesFiles(t *testing.T) {
	t.Parallel()
	mp4 := mp4Fixture(t, "160x120", 10, 1)
	for _, engine := range tu.Engines(t) {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			s := tu.MustServer(t, engine, processing)
			alice, bob := s.MustAccount(t, "alice"), s.MustAccount(t, "bob")
			files := func(id string) (n int) {
				for _, f := range mediaFiles(t, s) {
					if strings.HasPrefix(f, id) {
						n++
					}
				}
				return n
			}
			v1 := waitReady(t, s, alice.AccessToken, upload(t, s, alice.AccessToken, mp4).GetId())
			v2 := waitReady(t, s, alice.AccessToken, upload(t, s, alice.AccessToken, mp4).GetId())
			if files(v1.GetId()) != 2 || files(v2.GetId()) != 2 {
				t.Fatalf("stored files = %v, want video.mp4 and poster.jpg of each", mediaFiles(t, s))
			}
			p1, err := createPost(t, s, alice.AccessToken, "one", v1.GetId(), 0)
			if err != nil {
				t.Fatal(err)
			}
			p2, err := createPost(t, s, alice.AccessToken, "two", v2.GetId(), 0)
			if err != nil {
				t.Fatal(err)
			}
			for i, tr := range tu.Transports {
				_, err := tu.Call[flockv1.DeleteVideoResponse](t.Context(), s, tr, flockv1connect.PostServiceDeleteVideoProcedure, bob.AccessToken, &flockv1.DeleteVideoRequest{VideoId: v1.GetId()})
				wantCode(t, err, connect.CodePermissionDenied)
				if i == len(tu.Transports)-1 {
					tu.MustCall[flockv1.DeleteVideoResponse](t, s, tr, flockv1connect.PostServiceDeleteVideoProcedure, alice.AccessToken, &flockv1.DeleteVideoRequest{VideoId: v1.GetId()})
				}
			}
			if n := files(v1.GetId()); n != 0 {
				t.Errorf("DeleteVideo left %d files", n)
			}
			got := tu.MustCall[flockv1.GetPostResponse](t, s, tu.Connect, flockv1connect.PostServiceGetPostProcedure, alice.AccessToken, &flockv1.GetPostRequest{PostId: p1.GetId()})
			if got.GetPost().GetVideo() != nil {
				t.Errorf("post still carries the deleted video: %v", got.GetPost().GetVideo())
			}
			if _, err := getVideo(t, s, tu.Connect, alice.AccessToken, v1.GetId()); connect.CodeOf(err) != connect.CodeNotFound {
				t.Errorf("GetVideo after delete: %v", err)
			}
			if res, _ := get(t, s, v1.GetPlaybackUrl()); res.StatusCode != http.StatusNotFound {
				t.Errorf("signed URL of a deleted video = %d, want 404", res.StatusCode)
			}

			tu.MustCall[flockv1.DeletePostResponse](t, s, tu.Connect, flockv1connect.PostServiceDeletePostProcedure, alice.AccessToken, &flockv1.DeletePostRequest{PostId: p2.GetId()})
			if n := files(v2.GetId()); n != 0 {
				t.Errorf("DeletePost left %d files of its video", n)
			}
			if _, err := getVideo(t, s, tu.Connect, alice.AccessToken, v2.GetId()); connect.CodeOf(err) != connect.CodeNotFound {
				t.Errorf("GetVideo after its post was deleted: %v", err)
			}
		})
	}
}

// An instance that cannot run ffmpeg serves everything else and answers
// uploads with 503 and the reason, instead of queueing videos nobody will
// process (`make run` on a machine without ffmpeg).
// A signed URL stops working as soon as the video's row is gone, although
// its files stay until their removal job runs (an account's deletion
// leaves them to that job): the files are kept here and only the row goes.
func TestVideo_SignedURLEndsWithTheVideosRow_P1(t *testing.T) {
	t.Parallel()
	mp4 := mp4Fixture(t, "160x120", 10, 1)
	for _, engine := range tu.Engines(t) {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			s := tu.MustServer(t, engine, processing)
			alice := s.MustAccount(t, "alice")
			v := waitReady(t, s, alice.AccessToken, upload(t, s, alice.AccessToken, mp4).GetId())
			if res, _ := get(t, s, v.GetPlaybackUrl()); res.StatusCode != http.StatusOK {
				t.Fatalf("signed URL = %d, want 200", res.StatusCode)
			}
			if _, err := s.App.DB().NewDelete().Table("videos").Where("id = ?", v.GetId()).Exec(context.Background()); err != nil {
				t.Fatal(err)
			}
			if res, _ := get(t, s, v.GetPlaybackUrl()); res.StatusCode != http.StatusNotFound {
				t.Errorf("signed URL once the row is gone, its files kept = %d, want 404", res.StatusCode)
			}
		})
	}
}

func TestVideoUpload_WithoutFFmpegIsUnavailable(t *testing.T) {
	t.Parallel()
	s := tu.MustServer(t, "sqlite", processing, func(c *server.Config) { c.Video.FFmpeg = "/nonexistent/ffmpeg" })
	alice := s.MustAccount(t, "alice")
	ct, body := videoForm(t, "file", []byte("\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2avc1mp41"))
	status, out := postUpload(t, s, alice.AccessToken, ct, body)
	if msg, _ := out["message"].(string); status != http.StatusServiceUnavailable || !strings.Contains(msg, "ffmpeg is not installed") {
		t.Errorf("upload = %d %q, want 503 naming ffmpeg", status, msg)
	}
	if files := mediaFiles(t, s); len(files) != 0 {
		t.Errorf("a refused upload left %v", files)
	}
}
