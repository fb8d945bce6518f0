// Command upload measures a large video upload: its throughput, and the
// server's peak memory while it streams in, next to copying the same file
// on the same disk.
//
// It writes a test file (default 1 GiB: an MP4 ftyp box, then
// pseudo-random bytes that nothing can compress) into a temp dir, starts
// the flock binary as a child process on a loopback port with its data dir
// in that same temp dir (so the upload lands on the same disk), with
// FLOCK_VIDEO_WORKERS=-1 (uploads are stored and queued, never
// transcoded: only the upload is measured) and FLOCK_VIDEO_MAX_MB large
// enough for the file. It makes a user through the API, then:
//
//   - copies the file beside itself with io.Copy (which Linux turns into
//     an in-kernel copy_file_range), with a plain 32 KiB read/write loop
//     (what a server copying from a socket does), and with /bin/cp; before
//     and after the upload, keeping the best of each;
//   - uploads it with client.UploadVideo (a streamed multipart POST to
//     /api/posts/videos/) and times it;
//   - reads the server's peak resident set (VmHWM in /proc/<pid>/status)
//     for the upload alone: the peak is reset (clear_refs 5) once the user
//     is logged in, so argon2id's memory at login does not count; RSS is
//     also sampled every 10ms during the upload as a cross-check, and the
//     Go heap is read from /metrics before and after.
//
// The stored file (<data dir>/media/videos/<id>/original) is checked for
// its size and removed. Copies and the upload all read the same file, warm
// in the page cache; none of the writes are fsynced inside the timing
// (the server does not fsync either), but the disk is synced between
// steps so that one step's writeback does not slow the next. Traffic stays
// on 127.0.0.1 and the whole run is bounded by a 15-minute timeout. Needs
// Linux (/proc) and about three times the file size free in -dir.
//
//	go build -o bin/flock ./server/cmd/flock && go run ./bench/upload
//	go run ./bench/upload -size 268435456   # 256 MiB
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/flock-social/flock/bench/internal/flockproc"
	client "github.com/flock-social/flock/client/go"
	"github.com/flock-social/flock/gen/go/flock/v1/flockv1connect"
)

func main() {
	var (
		binary = flag.String("flock", "bin/flock", "path of the flock binary to start")
		size   = flag.Int64("size", 1<<30, "size of the test file in bytes")
		dir    = flag.String("dir", os.TempDir(), "where to make the temp dir holding the file and the server's data")
		dbURL  = flag.String("database-url", "", "FLOCK_DATABASE_URL for the server (default: SQLite in the temp dir)")
	)
	flag.Parse()
	if err := run(*binary, *size, *dir, *dbURL); err != nil {
		fmt.Fprintln(os.Stderr, "upload:", err)
		os.Exit(1)
	}
}

const mib = 1 << 20

func run(binary string, size int64, parent, dbURL string) error {
	if size < 32 {
		return errors.New("-size must be at least 32 bytes")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp(parent, "flock-upload")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	dataDir := filepath.Join(dir, "data")
	input := filepath.Join(dir, "input.mp4")

	t0 := time.Now()
	if err := makeInput(input, size); err != nil {
		return err
	}
	fmt.Printf("wrote %s (%.0f MiB) in %s\n", input, float64(size)/mib, time.Since(t0).Round(time.Millisecond))

	maxMB := max(int64(2048), size/mib+2)
	srv, err := flockproc.Start(ctx, binary, dataDir, "FLOCK_DATABASE_URL="+dbURL,
		"FLOCK_VIDEO_MAX_MB="+strconv.FormatInt(maxMB, 10), "FLOCK_VIDEO_WORKERS=-1")
	if err != nil {
		return err
	}
	defer srv.Stop()
	base, pid := srv.URL, srv.Cmd.Process.Pid
	users := flockv1connect.NewUserServiceClient(&http.Client{Timeout: time.Minute}, base)
	_, token, err := srv.MakeUser(ctx, users, "uploader")
	if err != nil {
		return err
	}

	fmt.Println("copying (before the upload)")
	copies := newCopyTimes()
	if err := copies.measure(ctx, input, dir, size); err != nil {
		return err
	}
	syscall.Sync()

	loginPeak, err := procStatus(strconv.Itoa(pid))
	if err != nil {
		return err
	}
	heapBefore, _ := serverMetrics(ctx, base)
	// Reset the peaks so that VmHWM afterwards is the upload's own.
	serverReset := resetPeak(strconv.Itoa(pid))
	clientReset := resetPeak("self")
	if serverReset != nil {
		fmt.Fprintln(os.Stderr, "warning: cannot reset the server's peak RSS, so it includes the login:", serverReset)
	}
	before, err := procStatus(strconv.Itoa(pid))
	if err != nil {
		return err
	}

	// Sample the server's RSS during the upload, as a cross-check of VmHWM.
	sampled := make(chan int64, 1)
	sampleCtx, stopSampling := context.WithCancel(ctx)
	go func() {
		var peak int64
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			if s, err := procStatus(strconv.Itoa(pid)); err == nil {
				peak = max(peak, s.rss)
			}
			select {
			case <-sampleCtx.Done():
				sampled <- peak
				return
			case <-tick.C:
			}
		}
	}()

	fmt.Println("uploading")
	f, err := os.Open(input)
	if err != nil {
		stopSampling()
		return err
	}
	serverCPU0, _ := cpuTime(strconv.Itoa(pid))
	clientCPU0, _ := cpuTime("self")
	t0 = time.Now()
	v, err := client.UploadVideo(ctx, &http.Client{}, base, token, "bench.mp4", f)
	uploadTime := time.Since(t0)
	serverCPU1, _ := cpuTime(strconv.Itoa(pid))
	clientCPU1, _ := cpuTime("self")
	f.Close()
	stopSampling()
	samplePeak := <-sampled
	if err != nil {
		return err
	}
	after, err := procStatus(strconv.Itoa(pid))
	if err != nil {
		return err
	}
	self, err := procStatus("self")
	if err != nil {
		return err
	}
	heapAfter, _ := serverMetrics(ctx, base)

	stored := filepath.Join(dataDir, "media", "videos", v.GetId(), "original")
	st, err := os.Stat(stored)
	if err != nil {
		return fmt.Errorf("stored upload: %w", err)
	}
	if st.Size() != size {
		return fmt.Errorf("stored upload %s is %d bytes, want %d", stored, st.Size(), size)
	}
	if err := os.RemoveAll(filepath.Dir(stored)); err != nil {
		return err
	}
	syscall.Sync()

	fmt.Println("copying (after the upload)")
	if err := copies.measure(ctx, input, dir, size); err != nil {
		return err
	}

	// Summary.
	rate := func(d time.Duration) float64 { return float64(size) / mib / d.Seconds() }
	secs := func(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }
	mb := func(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/mib) }
	fmt.Printf("\nfile %.0f MiB (warm in the page cache), server pid %d, video %s (%s)\n", float64(size)/mib, pid, v.GetId(), v.GetStatus())
	for _, name := range copies.order {
		ts := copies.times[name]
		fmt.Printf("  %-26s runs %s, %s; best %s = %.0f MiB/s\n", name, secs(ts[0]), secs(ts[1]), secs(copies.best(name)), rate(copies.best(name)))
	}
	ref := copies.best("copy io.Copy")
	fmt.Printf("  %-26s %s = %.0f MiB/s (%.0f%% of io.Copy's rate, %.0f%% of the 32 KiB loop's)\n", "upload client.UploadVideo", secs(uploadTime), rate(uploadTime),
		100*ref.Seconds()/uploadTime.Seconds(), 100*copies.best("copy 32 KiB read/write").Seconds()/uploadTime.Seconds())
	cpu := func(a, b cpuStat) string {
		return fmt.Sprintf("%.2f s (user %.2f, sys %.2f)", (b.user + b.sys - a.user - a.sys).Seconds(), (b.user - a.user).Seconds(), (b.sys - a.sys).Seconds())
	}
	fmt.Printf("  CPU during the upload: server %s, client %s, over %s wall\n",
		cpu(serverCPU0, serverCPU1), cpu(clientCPU0, clientCPU1), secs(uploadTime))
	fmt.Printf("server RSS: ready+logged in %s (peak so far %s, argon2id at login)\n", mb(loginPeak.rss), mb(loginPeak.hwm))
	if serverReset == nil {
		fmt.Printf("            before upload %s, peak during upload %s (%+.1f MiB), after %s; sampled peak %s\n",
			mb(before.rss), mb(after.hwm), float64(after.hwm-before.rss)/mib, mb(after.rss), mb(samplePeak))
	} else {
		fmt.Printf("            before upload %s, peak since start %s (includes login), after %s; sampled peak during upload %s (%+.1f MiB)\n",
			mb(before.rss), mb(after.hwm), mb(after.rss), mb(samplePeak), float64(samplePeak-before.rss)/mib)
	}
	if heapBefore.ok && heapAfter.ok {
		fmt.Printf("server Go heap in use %s -> %s, Go sys %s -> %s (from /metrics)\n",
			mb(heapBefore.heapInuse), mb(heapAfter.heapInuse), mb(heapBefore.sys), mb(heapAfter.sys))
	}
	if clientReset == nil {
		fmt.Printf("client (this process) peak RSS during upload %s\n", mb(self.hwm))
	} else {
		fmt.Printf("client (this process) peak RSS %s (whole run)\n", mb(self.hwm))
	}
	return nil
}

// makeInput writes size bytes to path: a 32-byte MP4 ftyp box, then
// pseudo-random data, fsynced.
func makeInput(path string, size int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	ftyp := []byte{0, 0, 0, 0x20, 'f', 't', 'y', 'p', 'i', 's', 'o', 'm', 0, 0, 2, 0,
		'i', 's', 'o', 'm', 'i', 's', 'o', '2', 'a', 'v', 'c', '1', 'm', 'p', '4', '1'}
	if _, err := f.Write(ftyp); err != nil {
		return err
	}
	rng := rand.NewChaCha8([32]byte{'f', 'l', 'o', 'c', 'k'})
	buf := make([]byte, mib)
	for left := size - int64(len(ftyp)); left > 0; {
		chunk := buf[:min(int64(len(buf)), left)]
		_, _ = rng.Read(chunk)
		if _, err := f.Write(chunk); err != nil {
			return err
		}
		left -= int64(len(chunk))
	}
	if err := f.Sync(); err != nil {
		return err
	}
	return f.Close()
}

type copyTimes struct {
	order []string
	times map[string][]time.Duration
}

func newCopyTimes() *copyTimes {
	return &copyTimes{order: []string{"copy io.Copy", "copy 32 KiB read/write", "copy /bin/cp"}, times: map[string][]time.Duration{}}
}

func (c *copyTimes) best(name string) time.Duration {
	var b time.Duration
	for _, d := range c.times[name] {
		if b == 0 || d < b {
			b = d
		}
	}
	return b
}

// measure times each way of copying src to a new file in dir once. The
// copy is removed (and the disk synced) after each, outside the timing.
func (c *copyTimes) measure(ctx context.Context, src, dir string, size int64) error {
	dst := filepath.Join(dir, "copy.mp4")
	for _, name := range c.order {
		var (
			d   time.Duration
			err error
		)
		switch name {
		case "copy io.Copy":
			d, err = goCopy(src, dst, false)
		case "copy 32 KiB read/write":
			d, err = goCopy(src, dst, true)
		case "copy /bin/cp":
			t0 := time.Now()
			var out []byte
			out, err = exec.CommandContext(ctx, "/bin/cp", src, dst).CombinedOutput()
			d = time.Since(t0)
			if err != nil {
				err = fmt.Errorf("cp: %w: %s", err, out)
			}
		}
		if err != nil {
			return err
		}
		if st, err := os.Stat(dst); err != nil {
			return err
		} else if st.Size() != size {
			return fmt.Errorf("%s: copy is %d bytes, want %d", name, st.Size(), size)
		}
		if err := os.Remove(dst); err != nil {
			return err
		}
		syscall.Sync()
		c.times[name] = append(c.times[name], d)
		fmt.Printf("  %-26s %.2f s\n", name, d.Seconds())
	}
	return nil
}

// goCopy copies src to dst with io.Copy: file to file (copy_file_range on
// Linux), or, if plain, through a 32 KiB buffer in this process.
func goCopy(src, dst string, plain bool) (time.Duration, error) {
	t0 := time.Now()
	in, err := os.Open(src)
	if err != nil {
		return 0, err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return 0, err
	}
	defer out.Close()
	if plain {
		// Hiding the files' ReadFrom/WriteTo makes io.Copy read and write.
		_, err = io.CopyBuffer(struct{ io.Writer }{out}, struct{ io.Reader }{in}, make([]byte, 32<<10))
	} else {
		_, err = io.Copy(out, in)
	}
	if err != nil {
		return 0, err
	}
	if err := out.Close(); err != nil {
		return 0, err
	}
	return time.Since(t0), nil
}

type status struct{ rss, hwm int64 }

// procStatus reads VmRSS and VmHWM (peak RSS) of /proc/<pid>/status.
func procStatus(pid string) (status, error) {
	f, err := os.Open(filepath.Join("/proc", pid, "status"))
	if err != nil {
		return status{}, err
	}
	defer f.Close()
	var s status
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		key, value, ok := strings.Cut(sc.Text(), ":")
		if !ok || (key != "VmRSS" && key != "VmHWM") {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(value), "kB")), 10, 64)
		if err != nil {
			return status{}, fmt.Errorf("/proc/%s/status %s: %w", pid, key, err)
		}
		if key == "VmRSS" {
			s.rss = kb << 10
		} else {
			s.hwm = kb << 10
		}
	}
	if err := sc.Err(); err != nil {
		return status{}, err
	}
	if s.rss == 0 || s.hwm == 0 {
		return status{}, fmt.Errorf("/proc/%s/status: no VmRSS/VmHWM", pid)
	}
	return s, nil
}

type cpuStat struct{ user, sys time.Duration }

// cpuTime reads the user and system CPU time of /proc/<pid>/stat (in clock
// ticks, taken to be 100 a second as on every common Linux build).
func cpuTime(pid string) (cpuStat, error) {
	b, err := os.ReadFile(filepath.Join("/proc", pid, "stat"))
	if err != nil {
		return cpuStat{}, err
	}
	// Fields after the command name (which may hold spaces) in parentheses;
	// utime and stime are the 14th and 15th fields of the whole line.
	_, rest, ok := strings.Cut(string(b), ") ")
	fields := strings.Fields(rest)
	if !ok || len(fields) < 13 {
		return cpuStat{}, fmt.Errorf("/proc/%s/stat: unexpected format", pid)
	}
	utime, err1 := strconv.ParseInt(fields[11], 10, 64)
	stime, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return cpuStat{}, err
	}
	return cpuStat{user: time.Duration(utime) * 10 * time.Millisecond, sys: time.Duration(stime) * 10 * time.Millisecond}, nil
}

// resetPeak sets VmHWM back to the current RSS (Linux 4.0+).
func resetPeak(pid string) error {
	return os.WriteFile(filepath.Join("/proc", pid, "clear_refs"), []byte("5"), 0)
}

type goMemory struct {
	heapInuse, sys int64
	ok             bool
}

// serverMetrics reads the Go heap in use and the memory the Go runtime
// got from the OS from the server's Prometheus metrics.
func serverMetrics(ctx context.Context, base string) (goMemory, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	res, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return goMemory{}, err
	}
	defer res.Body.Close()
	var m goMemory
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		v, _ := strconv.ParseFloat(value, 64)
		switch name {
		case "go_memstats_heap_inuse_bytes":
			m.heapInuse, m.ok = int64(v), true
		case "go_memstats_sys_bytes":
			m.sys = int64(v)
		}
	}
	return m, sc.Err()
}
