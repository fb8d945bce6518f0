package video

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// formats are the container formats ffprobe and ffmpeg may open (their
// -format_whitelist): video files only, so a crafted upload cannot make
// them read a playlist, a concat list or an image sequence that names
// other files. protocols (-protocol_whitelist) keeps them to local files:
// no network, no pipes, no other processes (security.md property 14).
const (
	formats   = "mov,mp4,m4a,3gp,3g2,mj2,matroska,webm,avi,mpeg,mpegts,mpegvideo,flv,ogg,h264,hevc,m4v"
	protocols = "file"
)

// Probe is what ffprobe tells of a file.
type Probe struct {
	Format   string // ffprobe's format_name, e.g. "mov,mp4,m4a,3gp,3g2,mj2"
	Duration float64
	Video    *Stream
	Audio    *Stream // nil without sound
}

// Stream is one audio or video stream.
type Stream struct {
	Codec     string
	PixFmt    string
	Width     int
	Height    int
	FrameRate float64
}

// ffprobeOutput is the part of `ffprobe -print_format json` we read.
type ffprobeOutput struct {
	Streams []struct {
		CodecType    string `json:"codec_type"`
		CodecName    string `json:"codec_name"`
		PixFmt       string `json:"pix_fmt"`
		Width        int    `json:"width"`
		Height       int    `json:"height"`
		AvgFrameRate string `json:"avg_frame_rate"`
		RFrameRate   string `json:"r_frame_rate"`
		Duration     string `json:"duration"`
		Disposition  struct {
			AttachedPic int `json:"attached_pic"`
		} `json:"disposition"`
	} `json:"streams"`
	Format struct {
		FormatName string `json:"format_name"`
		Duration   string `json:"duration"`
	} `json:"format"`
}

// errUnreadable is a file ffprobe or ffmpeg cannot read as a video.
var errUnreadable = errors.New("not a readable video")

// tools runs ffprobe and ffmpeg.
type tools struct {
	ffprobe, ffmpeg string
	threads         int
}

// run runs a tool in dir and returns its standard output. The caller's
// context bounds it: the process is killed when ctx ends.
func (t tools) run(ctx context.Context, dir, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + dir}
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &limitedBuffer{buf: &stderr, max: 8 << 10}
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		msg := strings.TrimSpace(stderr.String())
		if i := strings.LastIndexByte(msg, '\n'); i >= 0 {
			msg = msg[i+1:]
		}
		return nil, fmt.Errorf("%s: %w: %s", name, errUnreadable, msg)
	}
	return stdout.Bytes(), nil
}

// probe reads a file's container and streams.
func (t tools) probe(ctx context.Context, dir, file string) (*Probe, error) {
	out, err := t.run(ctx, dir, t.ffprobe, "-v", "error", "-protocol_whitelist", protocols, "-format_whitelist", formats,
		"-print_format", "json", "-show_format", "-show_streams", "file:"+file)
	if err != nil {
		return nil, err
	}
	return parseProbe(out)
}

// parseProbe reads the JSON of `ffprobe -show_format -show_streams`.
func parseProbe(out []byte) (*Probe, error) {
	var o ffprobeOutput
	if err := json.Unmarshal(out, &o); err != nil {
		return nil, fmt.Errorf("ffprobe output: %w", err)
	}
	p := &Probe{Format: o.Format.FormatName}
	p.Duration, _ = strconv.ParseFloat(o.Format.Duration, 64)
	for _, s := range o.Streams {
		switch {
		case s.CodecType == "video" && s.Disposition.AttachedPic == 0 && p.Video == nil:
			rate := frameRate(s.AvgFrameRate)
			if rate == 0 {
				rate = frameRate(s.RFrameRate)
			}
			p.Video = &Stream{Codec: s.CodecName, PixFmt: s.PixFmt, Width: s.Width, Height: s.Height, FrameRate: rate}
			if p.Duration == 0 {
				p.Duration, _ = strconv.ParseFloat(s.Duration, 64)
			}
		case s.CodecType == "audio" && p.Audio == nil:
			p.Audio = &Stream{Codec: s.CodecName}
		}
	}
	return p, nil
}

// frameRate parses ffprobe's "30000/1001".
func frameRate(s string) float64 {
	num, den, ok := strings.Cut(s, "/")
	n, err1 := strconv.ParseFloat(num, 64)
	if !ok {
		den = "1"
	}
	d, err2 := strconv.ParseFloat(den, 64)
	if err1 != nil || err2 != nil || d == 0 {
		return 0
	}
	return n / d
}

// playsEverywhere reports whether p is already H.264 (8-bit 4:2:0) with
// AAC or no sound in an MP4 container, which every browser plays: such a
// file is only remuxed (to move its index to the front), not re-encoded.
func (p *Probe) playsEverywhere() bool {
	return strings.Contains(p.Format, "mp4") && p.Video.Codec == "h264" && p.Video.PixFmt == "yuv420p" &&
		(p.Audio == nil || p.Audio.Codec == "aac")
}

// transcode writes out, an MP4 with its index first (faststart) that
// browsers play: remuxed when the input already plays everywhere,
// otherwise H.264 (yuv420p, even dimensions) and AAC.
func (t tools) transcode(ctx context.Context, dir, in, out string, p *Probe) error {
	args := []string{"-nostdin", "-hide_banner", "-v", "error", "-y",
		"-protocol_whitelist", protocols, "-format_whitelist", formats, "-i", "file:" + in,
		"-map", "0:v:0", "-map", "0:a:0?", "-dn", "-sn", "-map_metadata", "-1"}
	if p.playsEverywhere() {
		args = append(args, "-c", "copy")
	} else {
		args = append(args,
			"-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-pix_fmt", "yuv420p",
			"-vf", "scale=trunc(iw/2)*2:trunc(ih/2)*2",
			"-c:a", "aac", "-b:a", "128k", "-ac", "2")
	}
	args = append(args, "-threads", strconv.Itoa(t.threads), "-movflags", "+faststart", "-f", "mp4", "file:"+out)
	_, err := t.run(ctx, dir, t.ffmpeg, args...)
	return err
}

// poster writes a JPEG still of the playable file, taken a second in (or
// halfway through a shorter video), at most 1280 pixels wide.
func (t tools) poster(ctx context.Context, dir, in, out string, duration float64) error {
	at := min(1.0, duration/2)
	_, err := t.run(ctx, dir, t.ffmpeg, "-nostdin", "-hide_banner", "-v", "error", "-y",
		"-protocol_whitelist", protocols, "-format_whitelist", formats,
		"-ss", strconv.FormatFloat(at, 'f', 3, 64), "-i", "file:"+in,
		"-frames:v", "1", "-vf", "scale='min(1280,iw)':-2", "-q:v", "3",
		"-threads", strconv.Itoa(t.threads), "-f", "image2", "-update", "1", "file:"+out)
	return err
}

// limitedBuffer keeps the first max bytes written to it: enough of a tool's
// error output to say what went wrong, without holding a flood of it.
type limitedBuffer struct {
	buf *bytes.Buffer
	max int
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.buf.Len(); room > 0 {
		b.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}
