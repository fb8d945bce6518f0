package video

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/flock-social/flock/internal/video/ffprobe"
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
func (t tools) probe(ctx context.Context, dir, file string) (*ffprobe.Result, error) {
	out, err := t.run(ctx, dir, t.ffprobe, "-v", "error", "-protocol_whitelist", protocols, "-format_whitelist", formats,
		"-print_format", "json", "-show_format", "-show_streams", "file:"+file)
	if err != nil {
		return nil, err
	}
	return ffprobe.Parse(out)
}

// transcode writes out, an MP4 with its index first (faststart) that
// browsers play: remuxed when the input already plays everywhere,
// otherwise H.264 (yuv420p, even dimensions) and AAC.
func (t tools) transcode(ctx context.Context, dir, in, out string, p *ffprobe.Result) error {
	args := []string{"-nostdin", "-hide_banner", "-v", "error", "-y",
		"-protocol_whitelist", protocols, "-format_whitelist", formats, "-i", "file:" + in,
		"-map", "0:v:0", "-map", "0:a:0?", "-dn", "-sn", "-map_metadata", "-1"}
	if p.PlaysEverywhere() {
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
