package ffprobe

import (
	"math"
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

func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"streams":[{"codec_type":"video","codec_name":"h264","width":320,"height":240,"avg_frame_rate":"25/1"},{"codec_type":"audio","codec_name":"aac"}],"format":{"format_name":"mov,mp4","duration":"2.0"}}`))
	f.Add([]byte(`{"streams":[{"codec_type":"video","disposition":{"attached_pic":1}}],"format":{}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse(data)
		if err != nil {
			return
		}
		// Whatever ffprobe says, the limits decide without panicking, and
		// no NaN slips past them.
		lim := Limits{MaxDuration: 10 * time.Minute, MaxDimension: 4096, MaxFrameRate: 60} // video's defaults
		if lim.Check(p) == nil && (math.IsNaN(p.Duration) || p.Video == nil || math.IsNaN(p.Video.FrameRate)) {
			t.Fatalf("limits accepted %+v", p)
		}
	})
}

func TestLimits_Check(t *testing.T) {
	lim := Limits{MaxDuration: time.Minute, MaxDimension: 1920, MaxFrameRate: 60}
	ok := func() *Result {
		return &Result{Format: "mov,mp4", Duration: 10, Video: &Stream{Codec: "h264", PixFmt: "yuv420p", Width: 1920, Height: 1080, FrameRate: 60}}
	}
	if err := lim.Check(ok()); err != nil {
		t.Fatalf("a video at the limits: %v", err)
	}
	for name, change := range map[string]func(*Result){
		"no video":     func(p *Result) { p.Video = nil },
		"no duration":  func(p *Result) { p.Duration = 0 },
		"NaN duration": func(p *Result) { p.Duration = math.NaN() },
		"too long":     func(p *Result) { p.Duration = 61 },
		"too wide":     func(p *Result) { p.Video.Width = 1921 },
		"too tall":     func(p *Result) { p.Video.Height = 1921 },
		"no size":      func(p *Result) { p.Video.Width = 0 },
		"too fast":     func(p *Result) { p.Video.FrameRate = 60.1 },
		"NaN rate":     func(p *Result) { p.Video.FrameRate = math.NaN() },
	} {
		p := ok()
		change(p)
		if err := lim.Check(p); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestPlaysEverywhere(t *testing.T) {
	base := Result{Format: "mov,mp4,m4a,3gp,3g2,mj2", Video: &Stream{Codec: "h264", PixFmt: "yuv420p"}, Audio: &Stream{Codec: "aac"}}
	if !base.PlaysEverywhere() {
		t.Error("H.264/AAC in MP4 needs no transcode")
	}
	for name, p := range map[string]Result{
		"webm":   {Format: "matroska,webm", Video: base.Video, Audio: base.Audio},
		"hevc":   {Format: base.Format, Video: &Stream{Codec: "hevc", PixFmt: "yuv420p"}},
		"10-bit": {Format: base.Format, Video: &Stream{Codec: "h264", PixFmt: "yuv420p10le"}},
		"mp3":    {Format: base.Format, Video: base.Video, Audio: &Stream{Codec: "mp3"}},
	} {
		if p.PlaysEverywhere() {
			t.Errorf("%s is passed through untouched", name)
		}
	}
}
