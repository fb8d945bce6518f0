package media_test

import (
	"bytes"
	"compress/zlib"
	"context"
	"encoding/binary"
	"hash/crc32"
	"image"
	"image/color"
	"image/color/palette"
	"image/gif"
	"image/jpeg"
	"image/png"
	"runtime"
	"strings"
	"testing"

	"github.com/flock-social/flock"
	"github.com/flock-social/flock/internal/media"
)

var (
	red   = color.NRGBA{R: 255, A: 255}
	green = color.NRGBA{G: 255, A: 255}
	blue  = color.NRGBA{B: 255, A: 255}
)

func TestProcessAvatarAcceptsEachType(t *testing.T) {
	t.Parallel()
	testCases := []struct {
		name string
		data []byte
	}{
		{"jpeg", MustJPEG(t, solid(64, 48, red))},
		{"png", MustPNG(t, solid(64, 48, red))},
		{"gif", MustGIF(t, solid(64, 48, red))},
		{"webp", MustWebP(t, 64, 48, red)},
	}
	for _, tc := range testCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			img := MustProcess(t, tc.data)
			if img.Width != 48 || img.Height != 48 {
				t.Errorf("size = %dx%d, want 48x48", img.Width, img.Height)
			}
			assertColor(t, MustDecodeJPEG(t, img.Data).At(24, 24), red)
		})
	}
}

func TestProcessAvatarUsesFirstGIFFrame(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	anim := &gif.GIF{
		Image: []*image.Paletted{paletted(solid(16, 16, green)), paletted(solid(16, 16, blue))},
		Delay: []int{10, 10},
	}
	if err := gif.EncodeAll(&buf, anim); err != nil {
		t.Fatal(err)
	}
	img := MustProcess(t, buf.Bytes())
	assertColor(t, MustDecodeJPEG(t, img.Data).At(8, 8), green)
}

func TestProcessAvatarFlattensAlphaOntoWhite(t *testing.T) {
	t.Parallel()
	src := solid(32, 32, color.NRGBA{})          // fully transparent
	src.Set(16, 16, color.NRGBA{R: 255, A: 255}) // one opaque pixel, far from the corner
	img := MustProcess(t, MustPNG(t, src))
	assertColor(t, MustDecodeJPEG(t, img.Data).At(2, 2), color.NRGBA{255, 255, 255, 255})
}

func TestProcessAvatarCropsAndScales(t *testing.T) {
	t.Parallel()
	t.Run("wide picture is centre-cropped to a square", func(t *testing.T) {
		t.Parallel()
		src := solid(300, 100, red)
		fill(src, image.Rect(100, 0, 200, 100), green)
		fill(src, image.Rect(200, 0, 300, 100), blue)
		img := MustProcess(t, MustPNG(t, src))
		if img.Width != 100 || img.Height != 100 {
			t.Fatalf("size = %dx%d, want 100x100", img.Width, img.Height)
		}
		out := MustDecodeJPEG(t, img.Data)
		for _, p := range []image.Point{{5, 5}, {50, 50}, {94, 94}} {
			assertColor(t, out.At(p.X, p.Y), green)
		}
	})
	t.Run("tall picture is scaled down to AvatarSize", func(t *testing.T) {
		t.Parallel()
		img := MustProcess(t, MustJPEG(t, solid(1024, 1536, blue)))
		if img.Width != media.AvatarSize || img.Height != media.AvatarSize {
			t.Errorf("size = %dx%d, want %[3]dx%[3]d", img.Width, img.Height, media.AvatarSize)
		}
	})
	t.Run("small picture is not upscaled", func(t *testing.T) {
		t.Parallel()
		img := MustProcess(t, MustPNG(t, solid(40, 40, red)))
		if b := MustDecodeJPEG(t, img.Data).Bounds(); b.Dx() != 40 || b.Dy() != 40 {
			t.Errorf("size = %v, want 40x40", b.Size())
		}
	})
	t.Run("1x1 picture is accepted", func(t *testing.T) {
		t.Parallel()
		MustProcess(t, MustPNG(t, solid(1, 1, red)))
	})
}

func TestProcessAvatarRemovesEXIF(t *testing.T) {
	t.Parallel()
	const marker = "GPSLatitude-TEST"
	plain := MustJPEG(t, solid(1024, 768, red))
	payload := append([]byte("Exif\x00\x00II*\x00"), marker...)
	app1 := append([]byte{0xFF, 0xE1, 0, 0}, payload...)
	binary.BigEndian.PutUint16(app1[2:], uint16(len(payload)+2))
	input := append(append(append([]byte{}, plain[:2]...), app1...), plain[2:]...) // right after SOI

	if !bytes.Contains(input, []byte(marker)) {
		t.Fatal("fixture does not contain the EXIF marker")
	}
	img := MustProcess(t, input)
	if bytes.Contains(img.Data, []byte(marker)) || bytes.Contains(img.Data, []byte("Exif\x00")) {
		t.Error("output still contains EXIF data")
	}
	if b := MustDecodeJPEG(t, img.Data).Bounds(); b.Dx() != 512 || b.Dy() != 512 {
		t.Errorf("size = %v, want 512x512", b.Size())
	}
}

func TestProcessAvatarRejects(t *testing.T) {
	t.Parallel()
	validPNG := MustPNG(t, solid(8, 8, red))
	testCases := []struct {
		name    string
		data    []byte
		message string // part of the client-facing message
	}{
		{"empty input", nil, "avatar is empty"},
		{"pdf", []byte("%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\n"), "got application/pdf"},
		{"html", []byte("<!DOCTYPE html><html><body>hi</body></html>"), "got text/html"},
		{"plain text, whatever the file was called", []byte("definitely a png, trust me"), "got text/plain"},
		{"svg", []byte(`<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>`), "got text/xml"},
		{"bmp", append([]byte("BM"), make([]byte, 64)...), "got image/bmp"},
		{"more than MaxAvatarBytes", append(validPNG, make([]byte, media.MaxAvatarBytes)...), "5 MiB limit"},
		{"png signature with garbage after it", []byte("\x89PNG\r\n\x1a\nnot really a png at all"), "could not be read"},
		{"truncated png", validPNG[:len(validPNG)/2], "could not be read"},
		{"header claims 100000x100000", pngHeader(100_000, 100_000), "at most 16 megapixels"},
		{"header claims 0 pixels", gifHeader(0, 0), "at least 1x1"},
	}
	for _, tc := range testCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			img, err := media.ProcessAvatar(t.Context(), tc.data)
			if got := flock.ErrorCode(err); got != flock.EINVALID {
				t.Fatalf("ProcessAvatar() = %+v, %v; want an %s error", img, err, flock.EINVALID)
			}
			if msg := flock.ErrorMessage(err); !strings.Contains(msg, tc.message) {
				t.Errorf("message = %q, want it to contain %q", msg, tc.message)
			}
		})
	}
}

// Not parallel, so that no other test allocates while this one measures.
func TestProcessAvatarRefusesTooManyPixelsBeforeDecoding(t *testing.T) {
	data := pngHeader(7000, 6000) // 42 MP: decoding would allocate 168 MB
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := media.ProcessAvatar(context.Background(), data)
	runtime.ReadMemStats(&after)
	if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20 {
		t.Errorf("allocated %d bytes before refusing; the header's size was trusted", n)
	}
	if !strings.Contains(flock.ErrorMessage(err), "megapixels") {
		t.Errorf("ProcessAvatar() error = %v, want the pixel limit", err)
	}
}

func FuzzProcessAvatar(f *testing.F) {
	for _, seed := range [][]byte{
		MustJPEG(f, solid(20, 10, red)),
		MustPNG(f, solid(3, 7, color.NRGBA{R: 9, A: 128})),
		MustGIF(f, solid(5, 5, blue)),
		MustWebP(f, 6, 2, green),
		pngHeader(100_000, 100_000),
		pngHeaderWith(4000, 4000, 16, 6),
		pngHeaderWith(300, 200, 16, 0, [2]string{"tRNS", "\x00\x00"}),
		progressiveJPEGHeader(4000, 4000, 0x11),
		progressiveJPEGHeader(40, 30, 0x22),
		vp8xWebP(MustWebP(f, 40, 40, red), 16, 16),
		gifFrameLargerThanScreen(),
		gifHeader(1, 1),
		[]byte("%PDF-1.7"),
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		img, err := media.ProcessAvatar(context.Background(), data)
		if err != nil {
			if code := flock.ErrorCode(err); code != flock.EINVALID {
				t.Fatalf("error code = %s (%v), want %s", code, err, flock.EINVALID)
			}
			return
		}
		out := MustDecodeJPEG(t, img.Data)
		if b := out.Bounds(); b.Dx() != img.Width || b.Dy() != img.Height || img.Width != img.Height ||
			img.Width < 1 || img.Width > media.AvatarSize {
			t.Fatalf("decoded %v, Image says %dx%d; want a square of at most %d", b, img.Width, img.Height, media.AvatarSize)
		}
		if img.ContentType != "image/jpeg" || img.Ext != "jpg" {
			t.Fatalf("ContentType, Ext = %q, %q", img.ContentType, img.Ext)
		}
	})
}

// MustProcess runs ProcessAvatar, fails the test on error and checks the
// invariants every processed avatar has.
func MustProcess(tb testing.TB, data []byte) media.Image {
	tb.Helper()
	img, err := media.ProcessAvatar(context.Background(), data)
	if err != nil {
		tb.Fatalf("ProcessAvatar() error = %v", err)
	}
	if img.ContentType != "image/jpeg" || img.Ext != "jpg" {
		tb.Fatalf("ContentType, Ext = %q, %q; want image/jpeg, jpg", img.ContentType, img.Ext)
	}
	return img
}

// MustDecodeJPEG decodes data, which must be a JPEG and nothing else.
func MustDecodeJPEG(tb testing.TB, data []byte) image.Image {
	tb.Helper()
	if _, format, err := image.DecodeConfig(bytes.NewReader(data)); err != nil || format != "jpeg" {
		tb.Fatalf("output is not a JPEG: format %q, error %v", format, err)
	}
	img, err := jpeg.Decode(bytes.NewReader(data))
	if err != nil {
		tb.Fatalf("decode output JPEG: %v", err)
	}
	return img
}

func MustPNG(tb testing.TB, img image.Image) []byte {
	tb.Helper()
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

func MustJPEG(tb testing.TB, img image.Image) []byte {
	tb.Helper()
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 95}); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

func MustGIF(tb testing.TB, img image.Image) []byte {
	tb.Helper()
	var buf bytes.Buffer
	if err := gif.Encode(&buf, img, nil); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// MustWebP returns a lossless WebP of w x h pixels, all c. The standard
// library and x/image have no WebP encoder, so this writes the smallest
// valid VP8L bitstream by hand: no transforms, no colour cache, and one
// single-symbol prefix code per channel, so each pixel takes zero bits.
func MustWebP(tb testing.TB, w, h int, c color.NRGBA) []byte {
	tb.Helper()
	var bw bitWriter
	bw.write(0x2f, 8) // VP8L signature
	bw.write(uint32(w-1), 14)
	bw.write(uint32(h-1), 14)
	bw.write(0, 1) // alpha hint
	bw.write(0, 3) // version
	bw.write(0, 1) // no transform
	bw.write(0, 1) // no colour cache
	bw.write(0, 1) // no meta prefix codes
	// Prefix codes for green, red, blue, alpha and distance, in that order.
	for _, symbol := range []uint8{c.G, c.R, c.B, c.A, 0} {
		bw.write(1, 1) // simple code
		bw.write(0, 1) // one symbol
		bw.write(1, 1) // written in 8 bits
		bw.write(uint32(symbol), 8)
	}
	n, chunk := len(bw.buf), bw.buf
	if n%2 == 1 {
		chunk = append(chunk, 0) // RIFF chunks are padded to an even size
	}
	out := []byte("RIFF\x00\x00\x00\x00WEBPVP8L\x00\x00\x00\x00")
	binary.LittleEndian.PutUint32(out[4:], uint32(4+8+len(chunk)))
	binary.LittleEndian.PutUint32(out[16:], uint32(n))
	return append(out, chunk...)
}

// bitWriter packs bits least-significant first, as VP8L reads them.
type bitWriter struct {
	buf  []byte
	nbit uint
}

func (w *bitWriter) write(v uint32, n uint) {
	for i := range n {
		if w.nbit%8 == 0 {
			w.buf = append(w.buf, 0)
		}
		w.buf[len(w.buf)-1] |= byte(v>>i&1) << (w.nbit % 8)
		w.nbit++
	}
}

// pngHeader returns a PNG (8-bit RGBA) that claims w x h pixels but holds
// only one kilobyte of compressed zeros: a decoder that trusts the header
// allocates w*h*4 bytes before it finds the data short.
func pngHeader(w, h uint32) []byte {
	ihdr := []byte("\x00\x00\x00\x00\x00\x00\x00\x00\x08\x06\x00\x00\x00")
	binary.BigEndian.PutUint32(ihdr[0:], w)
	binary.BigEndian.PutUint32(ihdr[4:], h)
	var idat bytes.Buffer
	zw := zlib.NewWriter(&idat)
	zw.Write(make([]byte, 1024))
	zw.Close()
	out := []byte("\x89PNG\r\n\x1a\n")
	out = pngChunk(out, "IHDR", ihdr)
	out = pngChunk(out, "IDAT", idat.Bytes())
	return pngChunk(out, "IEND", nil)
}

func pngChunk(out []byte, typ string, data []byte) []byte {
	out = binary.BigEndian.AppendUint32(out, uint32(len(data)))
	start := len(out)
	out = append(append(out, typ...), data...)
	return binary.BigEndian.AppendUint32(out, crc32.ChecksumIEEE(out[start:]))
}

// gifHeader returns a GIF header and logical screen descriptor claiming
// w x h pixels, and nothing after it.
func gifHeader(w, h uint16) []byte {
	out := binary.LittleEndian.AppendUint16([]byte("GIF89a"), w)
	out = binary.LittleEndian.AppendUint16(out, h)
	return append(out, 0, 0, 0) // no global colour table
}

func solid(w, h int, c color.NRGBA) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	fill(img, img.Bounds(), c)
	return img
}

func fill(img *image.NRGBA, r image.Rectangle, c color.NRGBA) {
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			img.SetNRGBA(x, y, c)
		}
	}
}

func paletted(src image.Image) *image.Paletted {
	dst := image.NewPaletted(src.Bounds(), palette.Plan9)
	for y := src.Bounds().Min.Y; y < src.Bounds().Max.Y; y++ {
		for x := src.Bounds().Min.X; x < src.Bounds().Max.X; x++ {
			dst.Set(x, y, src.At(x, y))
		}
	}
	return dst
}

// assertColor allows for JPEG's lossy compression.
func assertColor(tb testing.TB, got color.Color, want color.NRGBA) {
	tb.Helper()
	const tolerance = 24
	r, g, b, _ := got.RGBA()
	for _, d := range []int{int(r>>8) - int(want.R), int(g>>8) - int(want.G), int(b>>8) - int(want.B)} {
		if d < -tolerance || d > tolerance {
			tb.Errorf("colour = %d,%d,%d; want about %d,%d,%d", r>>8, g>>8, b>>8, want.R, want.G, want.B)
			return
		}
	}
}
