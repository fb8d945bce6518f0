// Package media turns user uploads into files that are safe to store and
// serve, and stores them. Every upload is typed by sniffing its bytes, never
// by its name or declared Content-Type, and images are re-encoded from their
// decoded pixels so no metadata (EXIF, GPS, comments, ICC) survives.
package media

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"
	"net/http"
	"strings"

	"golang.org/x/image/draw"
	"golang.org/x/image/webp"

	"github.com/flock-social/flock"
)

// Avatar limits. Handlers should read at most MaxAvatarBytes+1 bytes of an
// upload, so an oversized one is refused without being buffered whole.
// MaxAvatarPixels bounds the memory a full decode can take
// (about 4 bytes a pixel, 8 for 16-bit PNGs) and is checked from the header
// alone, before any pixel data is decoded, so a small file that claims huge
// dimensions (a decompression bomb) is refused cheaply.
const (
	MaxAvatarBytes  = 5 << 20    // 5 MiB
	MaxAvatarPixels = 16_000_000 // 16 megapixels, about 64 MB decoded
	// AvatarSize is the side of the square avatar; smaller pictures are
	// cropped to a square but never upscaled.
	AvatarSize = 512
	// avatarQuality is the JPEG quality of the re-encoded avatar.
	avatarQuality = 85
)

// Image is a processed picture, ready to store and serve as it is.
type Image struct {
	Data        []byte
	ContentType string // MIME type of Data, e.g. "image/jpeg"
	Width       int
	Height      int
	Ext         string // file extension for Data, without the dot, e.g. "jpg"
}

// avatarFormat decodes one accepted image type.
type avatarFormat struct {
	name         string
	decodeConfig func(io.Reader) (image.Config, error)
	decode       func(io.Reader) (image.Image, error)
}

// avatarFormats maps a sniffed MIME type onto its decoder. The decoder is
// chosen from this map rather than from the image package's global
// registry, so bytes are only ever decoded as the type they were sniffed as.
var avatarFormats = map[string]avatarFormat{
	"image/jpeg": {"JPEG", jpeg.DecodeConfig, jpeg.Decode},
	"image/png":  {"PNG", png.DecodeConfig, png.Decode},
	"image/gif":  {"GIF", gif.DecodeConfig, gif.Decode}, // gif.Decode returns the first frame
	"image/webp": {"WebP", webp.DecodeConfig, webp.Decode},
}

// ProcessAvatar validates and normalises an uploaded profile picture: it
// accepts JPEG, PNG, GIF (first frame only) and still WebP, centre-crops the
// picture to a square, scales it down to at most AvatarSize pixels a side,
// flattens any transparency onto white and re-encodes it as a JPEG without
// metadata. EXIF orientation is not applied.
//
// Returns EINVALID if data is empty, larger than MaxAvatarBytes, not one of
// the accepted types, damaged, or larger than MaxAvatarPixels.
func ProcessAvatar(data []byte) (Image, error) {
	if len(data) == 0 {
		return Image{}, flock.Errorf(flock.EINVALID, "avatar is empty; upload a JPEG, PNG, GIF or WebP image")
	}
	if len(data) > MaxAvatarBytes {
		return Image{}, flock.Errorf(flock.EINVALID, "avatar is larger than the %d MiB limit; upload a smaller or more compressed picture", MaxAvatarBytes>>20)
	}
	contentType, _, _ := strings.Cut(http.DetectContentType(data), ";")
	format, ok := avatarFormats[contentType]
	if !ok {
		return Image{}, flock.Errorf(flock.EINVALID, "avatar must be a JPEG, PNG, GIF or WebP image; got %s", contentType)
	}

	cfg, err := format.decodeConfig(bytes.NewReader(data))
	if err != nil {
		return Image{}, fmt.Errorf("read avatar header: %w: %w", damaged(format), err)
	}
	if cfg.Width < 1 || cfg.Height < 1 {
		return Image{}, flock.Errorf(flock.EINVALID, "avatar is %dx%d pixels; it must be at least 1x1", cfg.Width, cfg.Height)
	}
	if cfg.Width > MaxAvatarPixels || cfg.Height > MaxAvatarPixels || int64(cfg.Width)*int64(cfg.Height) > MaxAvatarPixels {
		return Image{}, flock.Errorf(flock.EINVALID, "avatar is %dx%d pixels; it must be at most %d megapixels, so scale it down and try again", cfg.Width, cfg.Height, MaxAvatarPixels/1_000_000)
	}

	src, err := format.decode(bytes.NewReader(data))
	if err != nil {
		return Image{}, fmt.Errorf("decode avatar: %w: %w", damaged(format), err)
	}
	if src.Bounds().Empty() {
		return Image{}, flock.Errorf(flock.EINVALID, "avatar has no pixels; upload a picture at least 1x1 pixels")
	}

	dst := squareAvatar(src)
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, dst, &jpeg.Options{Quality: avatarQuality}); err != nil {
		return Image{}, fmt.Errorf("encode avatar: %w", err)
	}
	return Image{
		Data:        buf.Bytes(),
		ContentType: "image/jpeg",
		Width:       dst.Bounds().Dx(),
		Height:      dst.Bounds().Dy(),
		Ext:         "jpg",
	}, nil
}

// damaged is the client-facing error for bytes that sniff as format but do
// not decode; the decoder's own message stays in the wrapped chain for logs.
func damaged(format avatarFormat) error {
	return flock.Errorf(flock.EINVALID, "avatar looks like a %s image but could not be read; it may be damaged or truncated, so export it again and retry", format.name)
}

// squareAvatar centre-crops src to a square and scales it down to at most
// AvatarSize a side onto an opaque white background.
func squareAvatar(src image.Image) *image.RGBA {
	b := src.Bounds()
	side := min(b.Dx(), b.Dy())
	crop := image.Rect(0, 0, side, side).Add(b.Min).Add(image.Pt((b.Dx()-side)/2, (b.Dy()-side)/2))

	n := min(side, AvatarSize)
	dst := image.NewRGBA(image.Rect(0, 0, n, n))
	draw.Draw(dst, dst.Bounds(), image.NewUniform(color.White), image.Point{}, draw.Src)
	draw.CatmullRom.Scale(dst, dst.Bounds(), src, crop, draw.Over, nil)
	return dst
}
