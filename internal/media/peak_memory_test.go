package media_test

import (
	"bytes"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"os"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/image/draw"

	"github.com/flock-social/flock"
	"github.com/flock-social/flock/internal/media"
)

// BenchmarkAvatarPeakMemory measures the peak memory of 4 avatar uploads
// processed at once: the Go heap (live and not yet swept objects, sampled
// every 100 µs) above what it held before, and the process's peak RSS.
// "before" runs the avatar path as it was before the decode bound (decode,
// then the kernel scaler straight from the decoded picture, no limit on
// decoded bytes or on concurrent decodes); "after" runs ProcessAvatar.
// Run one case per process for a meaningful peak RSS, e.g.
//
//	go test -run '^$' -bench 'AvatarPeakMemory/after/bomb' -benchtime 3x ./internal/media
func BenchmarkAvatarPeakMemory(b *testing.B) {
	eightBit := zeroPNG(b, 4000, 4000, 8, 6) // 64 MB decoded: the largest 8-bit picture
	worst := zeroPNG(b, 3800, 3800, 16, 6)   // 116 MB decoded: about the largest accepted
	bomb := zeroPNG(b, 4000, 4000, 16, 6)    // 128 MB decoded: the 124 KB PNG of issue 11
	testCases := []struct {
		name    string
		data    []byte
		before  bool
		refused bool
	}{
		{"before/8-bit-4000", eightBit, true, false},
		{"before/bomb-16-bit-4000", bomb, true, false},
		{"after/8-bit-4000", eightBit, false, false},
		{"after/worst-accepted-16-bit-3800", worst, false, false},
		{"after/bomb-16-bit-4000", bomb, false, true},
	}
	for _, tc := range testCases {
		b.Run(tc.name, func(b *testing.B) {
			process := func() error {
				_, err := media.ProcessAvatar(b.Context(), tc.data)
				return err
			}
			if tc.before {
				process = func() error { return processAvatarBefore(tc.data) }
			}
			runtime.GC()
			baseRSS := procStatusKiB(b, "VmRSS")
			peak := sampleHeapPeak()
			for b.Loop() {
				var wg sync.WaitGroup
				for range 4 {
					wg.Go(func() {
						err := process()
						if refused := flock.ErrorCode(err) == flock.EINVALID; refused != tc.refused || (err != nil && !refused) {
							b.Errorf("process() error = %v, want refused %v", err, tc.refused)
						}
					})
				}
				wg.Wait()
			}
			b.ReportMetric(float64(peak())/(1<<20), "peak-heap-MiB")
			b.ReportMetric(float64(procStatusKiB(b, "VmHWM")-baseRSS)/1024, "peak-RSS-MiB")
		})
	}
}

// sampleHeapPeak samples the heap every 100 µs until the returned function
// is called, which returns the largest growth over the first sample.
func sampleHeapPeak() func() uint64 {
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	read := func() uint64 { metrics.Read(sample); return sample[0].Value.Uint64() }
	base := read()
	var peak atomic.Uint64
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			if v := read(); v > base && v-base > peak.Load() {
				peak.Store(v - base)
			}
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Microsecond):
			}
		}
	}()
	return func() uint64 { close(stop); <-done; return peak.Load() }
}

// procStatusKiB reads a kB field of /proc/self/status, such as VmHWM.
func procStatusKiB(tb testing.TB, field string) int64 {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		tb.Skipf("no /proc/self/status: %v", err)
	}
	for line := range strings.Lines(string(status)) {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return n
		}
	}
	tb.Fatalf("no %s in /proc/self/status", field)
	return 0
}

// processAvatarBefore is the avatar path of a PNG as ProcessAvatar ran it
// before decodes were bounded (commit 72e7281): the pixel limit only, a
// full decode, the kernel scaler over the whole crop, no semaphore.
func processAvatarBefore(data []byte) error {
	cfg, err := png.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		return err
	}
	if int64(cfg.Width)*int64(cfg.Height) > media.MaxAvatarPixels {
		return flock.Errorf(flock.EINVALID, "too many pixels")
	}
	src, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		return err
	}
	sb := src.Bounds()
	side := min(sb.Dx(), sb.Dy())
	crop := image.Rect(0, 0, side, side).Add(sb.Min).Add(image.Pt((sb.Dx()-side)/2, (sb.Dy()-side)/2))
	n := min(side, media.AvatarSize)
	dst := image.NewRGBA(image.Rect(0, 0, n, n))
	draw.Draw(dst, dst.Bounds(), image.NewUniform(color.White), image.Point{}, draw.Src)
	draw.CatmullRom.Scale(dst, dst.Bounds(), src, crop, draw.Over, nil)
	return jpeg.Encode(&bytes.Buffer{}, dst, &jpeg.Options{Quality: 85})
}
