package video

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flock-social/flock/internal/video/ffprobe"
)

// A video past the limits fails with the limit's reason, which the
// uploader sees (the limits themselves: package ffprobe's tests).
func TestCheckLimits_RefusalIsAFailure(t *testing.T) {
	s := &Service{cfg: Config{MaxDuration: time.Minute, MaxDimension: 1920, MaxFrameRate: 60}}
	p := &ffprobe.Result{Format: "mov,mp4", Duration: 61, Video: &ffprobe.Stream{Codec: "h264", PixFmt: "yuv420p", Width: 1920, Height: 1080, FrameRate: 60}}
	var f *failure
	if err := s.checkLimits(p); !errors.As(err, &f) || f.reason != "the video is 1m1s long; the limit is 1m0s" {
		t.Errorf("checkLimits = %v, want the limit's reason as a failure", err)
	}
	p.Duration = 60
	if err := s.checkLimits(p); err != nil {
		t.Errorf("a video at the limits: %v", err)
	}
}

func testTools(t *testing.T) tools {
	t.Helper()
	ffprobe, err1 := exec.LookPath("ffprobe")
	ffmpeg, err2 := exec.LookPath("ffmpeg")
	if err1 != nil || err2 != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("ffmpeg is not installed; .ci/run installs it")
		}
		t.Skip("needs ffmpeg")
	}
	return tools{ffprobe: ffprobe, ffmpeg: ffmpeg, threads: 1}
}

// Property 14: an upload cannot make ffprobe or ffmpeg fetch anything: a
// playlist that names a URL or another file is refused (its format is not
// allowed), whatever the file is called, and no request leaves.
func TestTools_OpenNothingButTheirFile_P14(t *testing.T) {
	tl := testTools(t)
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer srv.Close()
	dir := t.TempDir()
	secret := filepath.Join(t.TempDir(), "secret.ts")
	if err := os.WriteFile(secret, []byte("not yours"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string]string{
		"hls-url":    "#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\n" + srv.URL + "/a.ts\n#EXT-X-ENDLIST\n",
		"hls-file":   "#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\nfile:" + secret + "\n#EXT-X-ENDLIST\n",
		"concat":     "ffconcat version 1.0\nfile '" + secret + "'\n",
		"sdp":        "v=0\no=- 0 0 IN IP4 127.0.0.1\ns=x\nc=IN IP4 127.0.0.1\nt=0 0\nm=video 5004 RTP/AVP 96\n",
		"image-list": "file '" + secret + "'\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, "original"), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
		_, err := tl.probe(ctx, dir, "original")
		if !errors.Is(err, errUnreadable) {
			t.Errorf("%s: probe = %v, want refused as unreadable", name, err)
		}
		p := &ffprobe.Result{Format: "mov,mp4", Video: &ffprobe.Stream{Codec: "mpeg4", PixFmt: "yuv420p"}}
		if err := tl.transcode(ctx, dir, "original", "out.mp4", p); !errors.Is(err, errUnreadable) {
			t.Errorf("%s: transcode = %v, want refused", name, err)
		}
		cancel()
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("ffmpeg made %d HTTP requests", n)
	}
}

// A tool that runs past its context is killed.
func TestTools_KilledAtTheirTimeLimit_P14(t *testing.T) {
	tl := testTools(t)
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	// An endless generated input: only the time limit stops it.
	_, err := tl.run(ctx, dir, tl.ffmpeg, "-nostdin", "-v", "error", "-f", "lavfi", "-i", "testsrc=size=1280x720", "-f", "null", "-")
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 10*time.Second {
		t.Errorf("run = %v after %s, want killed at the deadline", err, time.Since(start))
	}
}
