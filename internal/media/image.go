// Package media turns user uploads into files that are safe to store and
// serve, and stores them. Every upload is typed by sniffing its bytes, never
// by its name or declared Content-Type, and images are re-encoded from their
// decoded pixels so no metadata (EXIF, GPS, comments, ICC) survives.
package media

import (
	"bytes"
	"context"
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
// MaxAvatarPixels and MaxAvatarDecodeBytes are checked from the header
// alone, before any pixel data is decoded, so a small file that claims huge
// dimensions or a wide pixel format (a decompression bomb) is refused
// cheaply; MaxConcurrentDecodes bounds how many decodes run at once.
const (
	MaxAvatarBytes  = 5 << 20    // 5 MiB
	MaxAvatarPixels = 16_000_000 // 16 megapixels
	// MaxAvatarDecodeBytes bounds the memory one avatar may take to decode,
	// crop, scale and re-encode, as computed by decodeCost from the header:
	// its width and height, its pixel format (a 16-bit PNG takes 8 bytes a
	// pixel, an 8-bit one 4, a baseline 4:2:0 JPEG 1.5), the decoder's
	// working memory (a progressive JPEG keeps 4 bytes of coefficients per
	// sample, an interlaced PNG a second copy) and the resize buffers. Every
	// 8-bit picture within MaxAvatarPixels fits, as does a 12-megapixel
	// progressive JPEG; a 4000x4000 16-bit PNG (138 MiB) does not.
	MaxAvatarDecodeBytes = 128 << 20
	// MaxConcurrentDecodes is how many avatars one process decodes at once;
	// the others wait for a slot (or for their request to end), so avatar
	// decoding never holds more than MaxConcurrentDecodes *
	// MaxAvatarDecodeBytes (256 MiB) at a time, however many arrive.
	MaxConcurrentDecodes = 2
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
	// decodeCost returns the bytes decoding data (whose header is cfg)
	// allocates and a short description of its pixel format, or an error
	// when the header cannot be read.
	decodeCost func(data []byte, cfg image.Config) (int64, string, error)
}

// avatarFormats maps a sniffed MIME type onto its decoder. The decoder is
// chosen from this map rather than from the image package's global
// registry, so bytes are only ever decoded as the type they were sniffed as.
var avatarFormats = map[string]avatarFormat{
	"image/jpeg": {"JPEG", jpeg.DecodeConfig, jpeg.Decode, jpegDecodeCost},
	"image/png":  {"PNG", png.DecodeConfig, png.Decode, pngDecodeCost},
	"image/gif":  {"GIF", gif.DecodeConfig, gif.Decode, gifDecodeCost}, // gif.Decode returns the first frame
	"image/webp": {"WebP", webp.DecodeConfig, webp.Decode, webpDecodeCost},
}

// decodeSlots holds one token per decode in progress in this process.
var decodeSlots = make(chan struct{}, MaxConcurrentDecodes)

// decodeHook, when set (by tests only), runs while a decode holds its slot.
var decodeHook func()

// ProcessAvatar validates and normalises an uploaded profile picture: it
// accepts JPEG, PNG, GIF (first frame only) and still WebP, centre-crops the
// picture to a square, scales it down to at most AvatarSize pixels a side,
// flattens any transparency onto white and re-encodes it as a JPEG without
// metadata. EXIF orientation is not applied. At most MaxConcurrentDecodes
// run at once in a process; the others wait for a slot until ctx ends.
//
// Returns EINVALID if data is empty, larger than MaxAvatarBytes, not one of
// the accepted types, damaged, larger than MaxAvatarPixels, or would take
// more than MaxAvatarDecodeBytes to decode. Returns ctx's error if ctx ends
// while it waits.
func ProcessAvatar(ctx context.Context, data []byte) (Image, error) {
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
	cost, kind, err := format.decodeCost(data, cfg)
	if err != nil {
		return Image{}, fmt.Errorf("read avatar header: %w: %w", damaged(format), err)
	}
	if cost += resizeCost(cfg.Width, cfg.Height); cost > MaxAvatarDecodeBytes {
		return Image{}, flock.Errorf(flock.EINVALID,
			"avatar is too large to process: a %dx%d %s takes %d MiB of memory to decode and scale, and the limit is %d MiB; export it as an 8-bit image, as a baseline (not progressive) JPEG, or at fewer pixels, and try again",
			cfg.Width, cfg.Height, kind, (cost+1<<20-1)>>20, MaxAvatarDecodeBytes>>20)
	}

	select {
	case decodeSlots <- struct{}{}:
	case <-ctx.Done():
		return Image{}, fmt.Errorf("process avatar: wait for a decode slot: %w", context.Cause(ctx))
	}
	defer func() { <-decodeSlots }()
	if decodeHook != nil {
		decodeHook()
	}
	return decodeAvatar(format, data)
}

// decodeAvatar decodes data, whose header has been checked, and re-encodes
// it as a square JPEG avatar.
func decodeAvatar(format avatarFormat, data []byte) (Image, error) {
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
	if f := side / AvatarSize; f >= 2 {
		// The kernel scaler's buffer holds n x crop-height float64 quads
		// (65 MB for a 4000-pixel side): average f x f blocks first, as
		// Pillow's reducing_gap does, so it works on less than 2n rows.
		src, crop = boxReduce(src, crop, f), image.Rect(0, 0, side/f, side/f)
	}
	dst := image.NewRGBA(image.Rect(0, 0, n, n))
	draw.Draw(dst, dst.Bounds(), image.NewUniform(color.White), image.Point{}, draw.Src)
	draw.CatmullRom.Scale(dst, dst.Bounds(), src, crop, draw.Over, nil)
	return dst
}

// boxReduce averages f x f blocks of the square r of src into a new image
// of r's side / f; the rows and columns left over (fewer than f) are
// dropped evenly from both edges. Colours are averaged premultiplied, so
// transparent pixels do not darken their neighbours.
func boxReduce(src image.Image, r image.Rectangle, f int) *image.RGBA {
	n := r.Dx() / f
	origin := r.Min.Add(image.Pt((r.Dx()-n*f)/2, (r.Dy()-n*f)/2))
	dst := image.NewRGBA(image.Rect(0, 0, n, n))
	at, fast := src.(image.RGBA64Image)
	area := uint64(f * f)
	for y := range n {
		for x := range n {
			var sr, sg, sb, sa uint64
			x0, y0 := origin.X+x*f, origin.Y+y*f
			for yy := y0; yy < y0+f; yy++ {
				for xx := x0; xx < x0+f; xx++ {
					var c color.RGBA64
					if fast {
						c = at.RGBA64At(xx, yy)
					} else {
						r, g, b, a := src.At(xx, yy).RGBA()
						c = color.RGBA64{uint16(r), uint16(g), uint16(b), uint16(a)}
					}
					sr, sg, sb, sa = sr+uint64(c.R), sg+uint64(c.G), sb+uint64(c.B), sa+uint64(c.A)
				}
			}
			i := dst.PixOffset(x, y)
			dst.Pix[i+0] = uint8(sr / area >> 8)
			dst.Pix[i+1] = uint8(sg / area >> 8)
			dst.Pix[i+2] = uint8(sb / area >> 8)
			dst.Pix[i+3] = uint8(sa / area >> 8)
		}
	}
	return dst
}
