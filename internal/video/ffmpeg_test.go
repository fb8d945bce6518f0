package video

import (
	"context"
	"errors"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

func TestFrameRate(t *testing.T) {
	for in, want := range map[string]float64{"30/1": 30, "30000/1001": 29.97002997002997, "25": 25, "0/0": 0, "": 0, "x/1": 0, "1/x": 0} {
		if got := frameRate(in); got != want {
			t.Errorf("frameRate(%q) = %v, want %v", in, got, want)
		}
	}
}

func FuzzParseProbe(f *testing.F) {
	f.Add([]byte(`{"streams":[{"codec_type":"video","codec_name":"h264","width":320,"height":240,"avg_frame_rate":"25/1"},{"codec_type":"audio","codec_name":"aac"}],"format":{"format_name":"mov,mp4","duration":"2.0"}}`))
	f.Add([]byte(`{"streams":[{"codec_type":"video","disposition":{"attached_pic":1}}],"format":{}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := parseProbe(data)
		if err != nil {
			return
		}
		// Whatever ffprobe says, the limits decide without panicking, and
		// no NaN slips past them.
		s := &Service{cfg: Config{}}
		s.cfg.defaults()
		if s.checkLimits(p) == nil && (math.IsNaN(p.Duration) || p.Video == nil || math.IsNaN(p.Video.FrameRate)) {
			t.Fatalf("limits accepted %+v", p)
		}
	})
}

func TestCheckLimits(t *testing.T) {
	s := &Service{cfg: Config{MaxDuration: time.Minute, MaxDimension: 1920, MaxFrameRate: 60}}
	ok := func() *Probe {
		return &Probe{Format: "mov,mp4", Duration: 10, Video: &Stream{Codec: "h264", PixFmt: "yuv420p", Width: 1920, Height: 1080, FrameRate: 60}}
	}
	if err := s.checkLimits(ok()); err != nil {
		t.Fatalf("a video at the limits: %v", err)
	}
	for name, change := range map[string]func(*Probe){
		"no video":     func(p *Probe) { p.Video = nil },
		"no duration":  func(p *Probe) { p.Duration = 0 },
		"NaN duration": func(p *Probe) { p.Duration = math.NaN() },
		"too long":     func(p *Probe) { p.Duration = 61 },
		"too wide":     func(p *Probe) { p.Video.Width = 1921 },
		"too tall":     func(p *Probe) { p.Video.Height = 1921 },
		"no size":      func(p *Probe) { p.Video.Width = 0 },
		"too fast":     func(p *Probe) { p.Video.FrameRate = 60.1 },
		"NaN rate":     func(p *Probe) { p.Video.FrameRate = math.NaN() },
	} {
		p := ok()
		change(p)
		var f *failure
		if err := s.checkLimits(p); !errors.As(err, &f) {
			t.Errorf("%s: %v, want a failure", name, err)
		}
	}
}

func TestPlaysEverywhere(t *testing.T) {
	base := Probe{Format: "mov,mp4,m4a,3gp,3g2,mj2", Video: &Stream{Codec: "h264", PixFmt: "yuv420p"}, Audio: &Stream{Codec: "aac"}}
	if !base.playsEverywhere() {
		t.Error("H.264/AAC in MP4 needs no transcode")
	}
	for name, p := range map[string]Probe{
		"webm":   {Format: "matroska,webm", Video: base.Video, Audio: base.Audio},
		"hevc":   {Format: base.Format, Video: &Stream{Codec: "hevc", PixFmt: "yuv420p"}},
		"10-bit": {Format: base.Format, Video: &Stream{Codec: "h264", PixFmt: "yuv420p10le"}},
		"mp3":    {Format: base.Format, Video: base.Video, Audio: &Stream{Codec: "mp3"}},
	} {
		if p.playsEverywhere() {
			t.Errorf("%s is passed through untouched", name)
		}
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
		p := &Probe{Format: "mov,mp4", Video: &Stream{Codec: "mpeg4", PixFmt: "yuv420p"}}
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
