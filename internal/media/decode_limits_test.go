package media_test

import (
	"bytes"
	"compress/flate"
	"context"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"image"
	"image/color"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/flock-social/flock"
	"github.com/flock-social/flock/internal/media"
)

// zeroPNG returns a valid, non-interlaced PNG of w x h pixels, all zero
// (transparent black, or black), with the given bit depth and colour type:
// a 4000x4000 16-bit one is the 124 KB bomb of issue 11.
func zeroPNG(tb testing.TB, w, h uint32, depth, colorType byte) []byte {
	tb.Helper()
	channels := map[byte]int64{0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[colorType]
	rowBytes := 1 + (int64(w)*channels*int64(depth)+7)/8
	ihdr := binary.BigEndian.AppendUint32(nil, w)
	ihdr = binary.BigEndian.AppendUint32(ihdr, h)
	ihdr = append(ihdr, depth, colorType, 0, 0, 0)
	out := pngChunk([]byte("\x89PNG\r\n\x1a\n"), "IHDR", ihdr)
	out = pngChunk(out, "IDAT", zeroZlib(tb, rowBytes*int64(h)))
	return pngChunk(out, "IEND", nil)
}

// zeroZlib returns a zlib stream of n zero bytes without compressing them
// all (which takes half a minute for 128 MB under the race detector): one
// flushed, non-final deflate segment of 1 MiB of zeros is repeated, which
// is valid because its back-references only ever reach zeros, then a final
// segment holds the rest. The Adler-32 of n zeros is n<<16 | 1 (mod 65521).
func zeroZlib(tb testing.TB, n int64) []byte {
	tb.Helper()
	const segment = 1 << 20
	deflate := func(size int64, final bool) []byte {
		var buf bytes.Buffer
		fw, _ := flate.NewWriter(&buf, flate.BestCompression)
		if _, err := fw.Write(make([]byte, size)); err != nil {
			tb.Fatal(err)
		}
		if err := map[bool]func() error{true: fw.Close, false: fw.Flush}[final](); err != nil {
			tb.Fatal(err)
		}
		return buf.Bytes()
	}
	out, seg := []byte{0x78, 0x9c}, deflate(segment, false)
	for range n / segment {
		out = append(out, seg...)
	}
	out = append(out, deflate(n%segment, true)...)
	return binary.BigEndian.AppendUint32(out, uint32(n%65521)<<16|1)
}

// progressiveJPEGHeader returns the start of a progressive JPEG (SOF2) of
// w x h with three components sampled hv each: enough for its header to be
// read, nothing to decode.
func progressiveJPEGHeader(w, h uint16, hv byte) []byte {
	sof := []byte{0xFF, 0xC2, 0, 17, 8}
	sof = binary.BigEndian.AppendUint16(sof, h)
	sof = binary.BigEndian.AppendUint16(sof, w)
	sof = append(sof, 3, 1, hv, 0, 2, 0x11, 0, 3, 0x11, 0)
	sos := []byte{0xFF, 0xDA, 0, 8, 1, 1, 0, 0, 63, 0}
	return append(append([]byte{0xFF, 0xD8}, sof...), sos...)
}

// vp8xWebP wraps a lossless WebP's VP8L chunk in an extended file whose
// VP8X canvas claims w x h.
func vp8xWebP(lossless []byte, w, h uint32) []byte {
	vp8x := []byte("VP8X\x0a\x00\x00\x00\x00\x00\x00\x00")
	vp8x = append(vp8x, byte(w-1), byte((w-1)>>8), byte((w-1)>>16), byte(h-1), byte((h-1)>>8), byte((h-1)>>16))
	body := append(append([]byte("WEBP"), vp8x...), lossless[12:]...)
	out := binary.LittleEndian.AppendUint32([]byte("RIFF"), uint32(len(body)))
	return append(out, body...)
}

// gifFrameLargerThanScreen returns a GIF whose screen is 16x16 and whose
// first frame claims 4000x4000.
func gifFrameLargerThanScreen() []byte {
	out := gifHeader(16, 16)
	out = append(out, 0x2C, 0, 0, 0, 0)                      // image descriptor at 0,0
	out = binary.LittleEndian.AppendUint16(out, 4000)        // width
	out = binary.LittleEndian.AppendUint16(out, 4000)        // height
	out = append(out, 0x80, 0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 2) // local 2-colour table, LZW min code 2
	return append(out, 2, 0x4C, 0x01, 0, 0x3B)               // one data block, terminator, trailer
}

// P23: a small file whose decoded pixels would take more memory than
// MaxAvatarDecodeBytes is refused from its header, with a message that says
// what was too big, the limit, and how to make it fit.
func TestAvatar_RefusesDecodeBombs_P23(t *testing.T) {
	t.Parallel()
	bomb := zeroPNG(t, 4000, 4000, 16, 6)
	if len(bomb) > 200<<10 {
		t.Fatalf("the 16-bit fixture is %d bytes; it should be a small file", len(bomb))
	}
	testCases := []struct {
		name string
		data []byte
		want []string // parts of the client-facing message
	}{
		{"16-bit RGBA PNG, 4000x4000 (124 KB, 128 MB decoded)", bomb,
			[]string{"4000x4000 16-bit RGBA PNG", "138 MiB", "limit is 128 MiB", "8-bit"}},
		{"16-bit greyscale PNG with transparency, decoded as 16-bit RGBA", pngHeaderWith(4000, 4000, 16, 0, [2]string{"tRNS", "\x00\x00"}),
			[]string{"16-bit greyscale PNG", "limit is 128 MiB"}},
		{"interlaced 8-bit RGBA PNG, decoded twice over", interlaced(pngHeaderWith(4000, 4000, 8, 6)),
			[]string{"interlaced 8-bit RGBA PNG"}},
		{"progressive 4:4:4 JPEG keeps its coefficients", progressiveJPEGHeader(4000, 4000, 0x11),
			[]string{"progressive 4:4:4 JPEG", "baseline"}},
		{"lossless WebP, 4000x4000", MustWebP(t, 4000, 4000, red),
			[]string{"4000x4000 lossless WebP"}},
	}
	for _, tc := range testCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			img, err := media.ProcessAvatar(t.Context(), tc.data)
			if got := flock.ErrorCode(err); got != flock.EINVALID {
				t.Fatalf("ProcessAvatar() = %dx%d, %v; want an %s error", img.Width, img.Height, err, flock.EINVALID)
			}
			for _, part := range tc.want {
				if msg := flock.ErrorMessage(err); !strings.Contains(msg, part) {
					t.Errorf("message = %q, want it to contain %q", msg, part)
				}
			}
		})
	}
}

// P23: the bound does not refuse ordinary pictures: every 8-bit picture of
// up to 16 megapixels fits, and so do smaller 16-bit ones.
func TestAvatar_AcceptsWithinDecodeBound_P23(t *testing.T) {
	t.Parallel()
	testCases := []struct {
		name string
		data []byte
	}{
		{"8-bit RGBA PNG, 4000x4000", zeroPNG(t, 4000, 4000, 8, 6)},
		{"16-bit RGBA PNG, 2000x2000", zeroPNG(t, 2000, 2000, 16, 6)},
		{"16-bit greyscale PNG, 4000x4000", zeroPNG(t, 4000, 4000, 16, 0)},
		{"8-bit greyscale PNG, 16 megapixels", zeroPNG(t, 8000, 2000, 8, 0)},
	}
	for _, tc := range testCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			img := MustProcess(t, tc.data)
			if img.Width != media.AvatarSize || img.Height != media.AvatarSize {
				t.Errorf("size = %dx%d, want %[3]dx%[3]d", img.Width, img.Height, media.AvatarSize)
			}
		})
	}
}

// Downscaling a large picture averages blocks first; the result must still
// show the picture where it was, not shifted or mirrored.
func TestProcessAvatarScalesLargePictureFaithfully(t *testing.T) {
	t.Parallel()
	src := solid(1600, 1100, red) // cropped to 1100x1100 from x=250
	fill(src, image.Rect(800, 0, 1600, 550), blue)
	fill(src, image.Rect(250, 550, 800, 1100), green)
	out := MustDecodeJPEG(t, MustProcess(t, MustPNG(t, src)).Data)
	for _, c := range []struct {
		p    image.Point
		want color.NRGBA
	}{{image.Pt(128, 128), red}, {image.Pt(384, 128), blue}, {image.Pt(128, 384), green}, {image.Pt(384, 384), red}} {
		assertColor(t, out.At(c.p.X, c.p.Y), c.want)
	}
}

// P23: a header that lies cannot make a decoder allocate more than the
// header's own (checked) size. Not parallel, so that no other test
// allocates while this one measures.
func TestAvatar_LyingHeaderRefusedWithoutBigAllocation_P23(t *testing.T) {
	smallPNG := zeroPNG(t, 16, 16, 8, 6)
	overfull := zeroPNG(t, 16, 16, 8, 6) // then swap in 64 MB worth of rows
	overfull = append(overfull[:33], zeroPNG(t, 4000, 4000, 8, 6)[33:]...)
	testCases := []struct {
		name string
		data []byte
		want string
	}{
		{"PNG header claims 4000x4000 16-bit, holds 1 KB", pngHeaderWith(4000, 4000, 16, 6), "limit is 128 MiB"},
		{"PNG header claims 16x16, holds 64 MB of rows", overfull, "could not be read"},
		{"GIF frame larger than its 16x16 screen", gifFrameLargerThanScreen(), "could not be read"},
		{"WebP canvas 16x16, bitstream 4000x4000", vp8xWebP(MustWebP(t, 4000, 4000, red), 16, 16), "could not be read"},
		{"WebP canvas 4000x4000, bitstream 16x16", vp8xWebP(MustWebP(t, 16, 16, red), 4000, 4000), "limit is 128 MiB"},
	}
	MustProcess(t, smallPNG) // warm up the decoders' one-time tables
	for _, tc := range testCases {
		t.Run(tc.name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err := media.ProcessAvatar(context.Background(), tc.data)
			runtime.ReadMemStats(&after)
			if n := after.TotalAlloc - before.TotalAlloc; n > 2<<20 {
				t.Errorf("allocated %d bytes before refusing; the data was trusted beyond its header", n)
			}
			if flock.ErrorCode(err) != flock.EINVALID || !strings.Contains(flock.ErrorMessage(err), tc.want) {
				t.Errorf("ProcessAvatar() error = %v, want an %s error containing %q", err, flock.EINVALID, tc.want)
			}
		})
	}
}

// P23: at most MaxConcurrentDecodes avatars decode at once in a process,
// however many requests arrive together. Counted, not timed: every decode
// blocks in the hook until the test lets it go, one at a time. Not
// parallel: the hook sees every decode of the package.
func TestAvatar_ConcurrentDecodesBounded_P23(t *testing.T) {
	const requests = 8
	var inFlight, peak atomic.Int32
	entered, release := make(chan struct{}, requests), make(chan struct{})
	defer media.SetDecodeHook(func() {
		n := inFlight.Add(1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		entered <- struct{}{}
		<-release
		inFlight.Add(-1)
	})()

	data := MustPNG(t, solid(64, 64, red))
	var wg sync.WaitGroup
	errs := make(chan error, requests)
	for range requests {
		wg.Go(func() {
			_, err := media.ProcessAvatar(t.Context(), data)
			errs <- err
		})
	}
	for i := range requests {
		<-entered // a decode holds a slot
		if i+1 >= media.MaxConcurrentDecodes {
			release <- struct{}{} // let one finish
		}
	}
	for range media.MaxConcurrentDecodes - 1 {
		release <- struct{}{}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("ProcessAvatar() error = %v", err)
		}
	}
	if got := peak.Load(); got > media.MaxConcurrentDecodes || got < 2 {
		t.Errorf("%d decodes ran at once, want at most MaxConcurrentDecodes (%d) and more than one", got, media.MaxConcurrentDecodes)
	}
}

// P23: a request waiting for a decode slot stops waiting when it is
// canceled, and never decodes.
func TestAvatar_WaitForDecodeSlotEndsWithRequest_P23(t *testing.T) {
	var decodes atomic.Int32
	entered, release := make(chan struct{}), make(chan struct{})
	defer media.SetDecodeHook(func() {
		decodes.Add(1)
		entered <- struct{}{}
		<-release
	})()

	data := MustPNG(t, solid(8, 8, red))
	var wg sync.WaitGroup
	for range media.MaxConcurrentDecodes {
		wg.Go(func() {
			if _, err := media.ProcessAvatar(t.Context(), data); err != nil {
				t.Errorf("ProcessAvatar() error = %v", err)
			}
		})
		<-entered
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := media.ProcessAvatar(ctx, data)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("ProcessAvatar(canceled) error = %v, want context.Canceled", err)
	}
	if n := decodes.Load(); n != media.MaxConcurrentDecodes {
		t.Errorf("%d decodes started, want only the %d that hold the slots", n, media.MaxConcurrentDecodes)
	}
	close(release)
	wg.Wait()
}

// pngHeaderWith is pngHeader for any depth and colour type, with extra
// chunks before its one kilobyte of data.
func pngHeaderWith(w, h uint32, depth, colorType byte, extra ...[2]string) []byte {
	data := pngHeader(w, h)
	data[24], data[25] = depth, colorType
	binary.BigEndian.PutUint32(data[29:], crc32.ChecksumIEEE(data[12:29]))
	if len(extra) == 0 {
		return data
	}
	out := data[:33:33]
	for _, c := range extra {
		out = pngChunk(out, c[0], []byte(c[1]))
	}
	return append(out, data[33:]...)
}

// interlaced marks a PNG made by pngHeaderWith as Adam7-interlaced.
func interlaced(data []byte) []byte {
	data[28] = 1
	binary.BigEndian.PutUint32(data[29:], crc32.ChecksumIEEE(data[12:29]))
	return data
}

// The header's estimate bounds what a decode really allocates: for each
// kind of picture, all the bytes ProcessAvatar allocates (garbage
// included) stay within DecodeCost. Not parallel, so that no other test
// allocates while this one measures.
func TestAvatar_DecodeCostCoversAllocation_P23(t *testing.T) {
	photo := func(w, h int) *image.NRGBA {
		img := image.NewNRGBA(image.Rect(0, 0, w, h))
		for i := range img.Pix {
			img.Pix[i] = byte(i * 7 % 251)
		}
		return img
	}
	gray := image.NewGray(image.Rect(0, 0, 1500, 1000))
	testCases := []struct {
		name string
		data []byte
	}{
		{"8-bit RGBA PNG", MustPNG(t, photo(1500, 1100))},
		{"16-bit RGBA PNG", zeroPNG(t, 1500, 1100, 16, 6)},
		{"16-bit greyscale PNG", zeroPNG(t, 1500, 1100, 16, 0)},
		{"8-bit greyscale PNG", MustPNG(t, gray)},
		{"paletted PNG", MustPNG(t, paletted(photo(300, 200)))},
		{"interlaced 8-bit RGBA PNG", interlacedZeroPNG(t, 1500, 1100)},
		{"baseline 4:2:0 JPEG (image/jpeg writes no other)", MustJPEG(t, photo(1500, 1100))},
		{"greyscale JPEG", MustJPEG(t, gray)},
		{"GIF", MustGIF(t, photo(300, 200))},
		{"lossless WebP", MustWebP(t, 1500, 1100, red)},
	}
	MustProcess(t, MustPNG(t, solid(8, 8, red))) // warm up one-time tables
	for _, tc := range testCases {
		t.Run(tc.name, func(t *testing.T) {
			want, err := media.DecodeCost(tc.data)
			if err != nil {
				t.Fatal(err)
			}
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			MustProcess(t, tc.data)
			runtime.ReadMemStats(&after)
			if got := int64(after.TotalAlloc - before.TotalAlloc); got > want {
				t.Errorf("allocated %d bytes, more than the %d the header predicted", got, want)
			} else {
				t.Logf("allocated %d of the %d bytes predicted (%.0f%%)", got, want, 100*float64(got)/float64(want))
			}
		})
	}
}

// interlacedZeroPNG returns an Adam7-interlaced 8-bit RGBA PNG of w x h
// zero pixels.
func interlacedZeroPNG(tb testing.TB, w, h uint32) []byte {
	tb.Helper()
	var n int64
	for _, p := range [][4]uint32{{0, 0, 8, 8}, {4, 0, 8, 8}, {0, 4, 4, 8}, {2, 0, 4, 4}, {0, 2, 2, 4}, {1, 0, 2, 2}, {0, 1, 1, 2}} {
		pw, ph := (w-p[0]+p[2]-1)/p[2], (h-p[1]+p[3]-1)/p[3]
		if pw > 0 && ph > 0 {
			n += int64(ph) * (1 + 4*int64(pw))
		}
	}
	ihdr := binary.BigEndian.AppendUint32(nil, w)
	ihdr = binary.BigEndian.AppendUint32(ihdr, h)
	ihdr = append(ihdr, 8, 6, 0, 0, 1)
	out := pngChunk([]byte("\x89PNG\r\n\x1a\n"), "IHDR", ihdr)
	out = pngChunk(out, "IDAT", zeroZlib(tb, n))
	return pngChunk(out, "IEND", nil)
}
