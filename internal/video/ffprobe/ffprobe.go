// Package ffprobe reads what ffprobe tells of a video file and checks it
// against Flock's limits. It runs nothing (package video runs the tools)
// and imports nothing of Flock's, so its fuzz target builds without the
// store (.ci/run).
package ffprobe

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Result is what ffprobe tells of a file.
type Result struct {
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

// Parse reads the JSON of `ffprobe -print_format json -show_format
// -show_streams`: the container, its duration, and the first video stream
// that is not a cover picture and the first audio stream.
func Parse(out []byte) (*Result, error) {
	var o ffprobeOutput
	if err := json.Unmarshal(out, &o); err != nil {
		return nil, fmt.Errorf("ffprobe output: %w", err)
	}
	p := &Result{Format: o.Format.FormatName}
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

// PlaysEverywhere reports whether p is already H.264 (8-bit 4:2:0) with
// AAC or no sound in an MP4 container, which every browser plays: such a
// file is only remuxed (to move its index to the front), not re-encoded.
func (p *Result) PlaysEverywhere() bool {
	return strings.Contains(p.Format, "mp4") && p.Video.Codec == "h264" && p.Video.PixFmt == "yuv420p" &&
		(p.Audio == nil || p.Audio.Codec == "aac")
}

// Limits bound the videos Flock processes (security.md property 14).
type Limits struct {
	MaxDuration  time.Duration
	MaxDimension int // pixels, either side
	MaxFrameRate float64
}

// Check refuses a file past l or without a picture; the error says why, in
// words for the uploader.
func (l Limits) Check(p *Result) error {
	switch {
	case p.Video == nil:
		return errors.New("the file has no video stream")
	case !(p.Duration > 0): // also NaN
		return errors.New("the video has no duration")
	case p.Duration > l.MaxDuration.Seconds():
		return fmt.Errorf("the video is %s long; the limit is %s", time.Duration(p.Duration*float64(time.Second)).Round(time.Second), l.MaxDuration)
	case p.Video.Width > l.MaxDimension || p.Video.Height > l.MaxDimension:
		return fmt.Errorf("the video is %dx%d pixels; the limit is %d on either side", p.Video.Width, p.Video.Height, l.MaxDimension)
	case p.Video.Width <= 0 || p.Video.Height <= 0:
		return errors.New("the video has no picture size")
	case !(p.Video.FrameRate <= l.MaxFrameRate): // also NaN; 0 is unknown (variable rate)
		return fmt.Errorf("the video has %.4g frames per second; the limit is %.4g", p.Video.FrameRate, l.MaxFrameRate)
	}
	return nil
}
