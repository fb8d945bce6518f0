// Command rolling restarts Flock instances under load and reports what
// clients noticed: two flock processes (Postgres + Redis) behind nginx
// running the shipped deploy/nginx/flock.conf, a mixed load (feed, post,
// like, comment) with a fixed number of requests in flight, and live
// notification streams over WebSocket and Connect that resume with
// since_id whenever they end. It restarts each instance in turn (SIGTERM,
// wait for the process to exit, start it again), then restarts both 5 s
// apart, and prints, per phase (before, during, after), the requests, the
// failed ones and p50/p99 latency; then, per stream, the notifications the
// list shows against those the stream delivered (lost, duplicated,
// out of order). It exits non-zero if any request failed or any event was
// lost or duplicated.
//
// It needs nginx on the PATH (apt-get install nginx-light), Postgres and
// Redis; every process it starts listens on 127.0.0.1 and is stopped at the
// end, and the Postgres schema it makes is dropped.
//
//	go build -o bin/flock ./server/cmd/flock
//	go run ./bench/rolling                 # about a minute
//	go run ./bench/rolling -short          # about half of it
package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"connectrpc.com/connect"
	"github.com/coder/websocket"

	"github.com/flock-social/flock/bench/internal/flockproc"
	flockv1 "github.com/flock-social/flock/gen/go/flock/v1"
	"github.com/flock-social/flock/gen/go/flock/v1/flockv1connect"
	"github.com/flock-social/flock/internal/store"
)

func main() {
	var o options
	flag.StringVar(&o.binary, "flock", "bin/flock", "path of the flock binary to start")
	flag.StringVar(&o.nginxConf, "nginx-conf", "deploy/nginx/flock.conf", "the nginx config to put in front (its two upstream servers are rewritten to the instances' ports)")
	flag.StringVar(&o.dbURL, "database-url", "postgres://postgres@127.0.0.1:5432/test?sslmode=disable", "Postgres to use (a fresh schema is made in it and dropped at the end)")
	flag.StringVar(&o.redisURL, "redis-url", "redis://127.0.0.1:6379/0", "Redis the instances share")
	flag.IntVar(&o.inflight, "inflight", 16, "requests in flight")
	flag.IntVar(&o.wsStreams, "ws-streams", 20, "notification streams over WebSocket")
	flag.IntVar(&o.connectStreams, "connect-streams", 10, "notification streams over Connect (NotificationService/Subscribe)")
	flag.DurationVar(&o.steady, "steady", 10*time.Second, "load before the first and after the last restart")
	flag.DurationVar(&o.apart, "apart", 5*time.Second, "gap between the two SIGTERMs of the last phase")
	flag.StringVar(&o.drain, "drain", "5s", "FLOCK_SHUTDOWN_DRAIN of the instances")
	short := flag.Bool("short", false, "3 s before and after instead of -steady")
	flag.Parse()
	if *short {
		o.steady = 3 * time.Second
	}
	phaseNames[phaseApart] = fmt.Sprintf("during: %s apart", o.apart)
	ok, err := run(o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "rolling:", err)
		os.Exit(2)
	}
	if !ok {
		os.Exit(1)
	}
}

type options struct {
	binary, nginxConf, dbURL, redisURL, drain string
	inflight, wsStreams, connectStreams       int
	steady, apart                             time.Duration
}

// Phases of the run, in order.
const (
	phaseSetup = iota
	phaseBefore
	phaseEach  // each instance restarted in turn
	phaseApart // both restarted o.apart apart
	phaseAfter
	phaseDone
)

var phaseNames = []string{"setup", "before", "during: each in turn", "during: restarts apart", "after"}

func run(o options) (bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if _, err := exec.LookPath("nginx"); err != nil {
		return false, errors.New("nginx is not on the PATH (apt-get install nginx-light)")
	}
	dir, err := os.MkdirTemp("", "rolling")
	if err != nil {
		return false, err
	}
	defer os.RemoveAll(dir)

	dbURL, dropSchema, err := freshSchema(ctx, o.dbURL)
	if err != nil {
		return false, err
	}
	defer dropSchema()

	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	mailDir := filepath.Join(dir, "mail")
	env := []string{"FLOCK_DATABASE_URL=" + dbURL, "FLOCK_REDIS_URL=" + o.redisURL, "FLOCK_JWT_SECRET=" + hex.EncodeToString(secret),
		"FLOCK_MAILER=file:" + mailDir, "FLOCK_RATE_LIMITS=off", "FLOCK_LOG_LEVEL=warn", "FLOCK_TRUSTED_PROXIES=127.0.0.1",
		"FLOCK_SHUTDOWN_DRAIN=" + o.drain, "FLOCK_VIDEO_WORKERS=-1"}
	instances := make([]*instance, 2)
	for i := range instances {
		in := &instance{name: string(rune('A' + i)), binary: o.binary, dir: filepath.Join(dir, "flock"+string(rune('a'+i))), env: env, port: freePort()}
		if err := in.start(ctx); err != nil {
			return false, err
		}
		defer in.stop()
		instances[i] = in
	}
	ngx, err := startNginx(ctx, filepath.Join(dir, "nginx"), o.nginxConf, instances[0].port, instances[1].port)
	if err != nil {
		return false, err
	}
	defer ngx.stop()
	base := ngx.url

	tlsConf := &tls.Config{InsecureSkipVerify: true} // the self-signed certificate made above
	h2 := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsConf, ForceAttemptHTTP2: true, MaxIdleConnsPerHost: 64}}
	h1 := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsConf.Clone(), MaxIdleConnsPerHost: 64,
		TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{}}}
	usersAPI := flockv1connect.NewUserServiceClient(h2, base)
	postsAPI := flockv1connect.NewPostServiceClient(h2, base)
	notesAPI := flockv1connect.NewNotificationServiceClient(h2, base)

	// Users: authors hold the streams and get the notifications; actors
	// make the load. flockproc reads verification tokens from the mail dir
	// the instances share.
	fp := &flockproc.Server{URL: base, MailDir: mailDir}
	nAuthors := o.wsStreams + o.connectStreams
	authors := make([]*user, nAuthors)
	actors := make([]*user, o.inflight)
	if err := makeUsers(ctx, fp, usersAPI, "author", authors); err != nil {
		return false, err
	}
	if err := makeUsers(ctx, fp, usersAPI, "actor", actors); err != nil {
		return false, err
	}
	const postsPerAuthor = 40
	var setupWG sync.WaitGroup
	var setupErr atomic.Pointer[error]
	for _, a := range authors {
		setupWG.Go(func() {
			for i := range postsPerAuthor {
				res, err := postsAPI.CreatePost(ctx, authed(&flockv1.CreatePostRequest{Content: fmt.Sprintf("post %d of %s", i, a.name)}, a.token))
				if err != nil {
					setupErr.Store(&err)
					return
				}
				a.posts = append(a.posts, res.Msg.GetPost().GetId())
			}
		})
	}
	for _, ac := range actors {
		setupWG.Go(func() {
			for _, a := range authors {
				if _, err := usersAPI.Follow(ctx, authed(&flockv1.FollowRequest{UserId: a.id}, ac.token)); err != nil {
					setupErr.Store(&err)
					return
				}
			}
		})
	}
	setupWG.Wait()
	if p := setupErr.Load(); p != nil {
		return false, fmt.Errorf("setup: %w", *p)
	}
	// What each author's list holds now is not expected on the streams; the
	// newest of it is where the streams start.
	for _, a := range authors {
		ids, err := listAll(ctx, notesAPI, a.token)
		if err != nil {
			return false, err
		}
		a.baseline = map[string]bool{}
		for _, id := range ids {
			a.baseline[id] = true
		}
		if len(ids) > 0 {
			a.since = slices.Max(ids)
		}
	}

	// Streams.
	streamCtx, stopStreams := context.WithCancel(ctx)
	defer stopStreams()
	streams := make([]*stream, nAuthors)
	var streamWG sync.WaitGroup
	for i, a := range authors {
		s := &stream{owner: a, last: a.since, seen: map[string]int{}, reasons: map[string]int{}}
		if i < o.wsStreams {
			s.kind = "WebSocket"
			s.connect = func(ctx context.Context, since string, got func(string)) error {
				return wsStream(ctx, h1, base, a.token, since, got)
			}
		} else {
			s.kind = "Connect"
			s.connect = func(ctx context.Context, since string, got func(string)) error {
				return connectStream(ctx, notesAPI, a.token, since, got)
			}
		}
		streams[i] = s
		streamWG.Go(func() { s.run(streamCtx) })
	}
	time.Sleep(time.Second) // the streams are open before the first event

	// Load.
	var phase atomic.Int32
	phase.Store(phaseBefore)
	rec := newRecorder()
	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	var loadWG sync.WaitGroup
	var keyN atomic.Int64
	for w, ac := range actors {
		loadWG.Go(func() {
			rng := mrand.New(mrand.NewPCG(uint64(w), 42))
			liked := 0
			for loadCtx.Err() == nil {
				ph := int(phase.Load())
				var op string
				var err error
				start := time.Now()
				switch r := rng.IntN(100); {
				case r < 40:
					op = "feed"
					_, err = postsAPI.ListFeed(loadCtx, authed(&flockv1.ListFeedRequest{PageSize: 20}, ac.token))
				case r < 55:
					op = "post"
					req := authed(&flockv1.CreatePostRequest{Content: "load " + ac.name}, ac.token)
					req.Header().Set("Idempotency-Key", fmt.Sprintf("rolling-%d", keyN.Add(1)))
					_, err = postsAPI.CreatePost(loadCtx, req)
				case r < 80 && liked/nAuthors < postsPerAuthor:
					// Each actor likes each post once: author liked%n, post liked/n.
					op = "like"
					a := authors[liked%nAuthors]
					postID := a.posts[liked/nAuthors]
					liked++
					_, err = postsAPI.LikePost(loadCtx, authed(&flockv1.LikePostRequest{PostId: postID}, ac.token))
				default:
					op = "comment"
					a := authors[rng.IntN(nAuthors)]
					req := authed(&flockv1.CreateCommentRequest{PostId: a.posts[rng.IntN(len(a.posts))], Content: "comment by " + ac.name}, ac.token)
					req.Header().Set("Idempotency-Key", fmt.Sprintf("rolling-%d", keyN.Add(1)))
					_, err = postsAPI.CreateComment(loadCtx, req)
				}
				if loadCtx.Err() != nil {
					return
				}
				rec.add(ph, op, time.Since(start), err)
			}
		})
	}

	// The schedule.
	var restarts []string
	restart := func(in *instance) error {
		d, err := in.restart(ctx)
		restarts = append(restarts, fmt.Sprintf("%s: SIGTERM to exit %s (drain %s), ready again after %s", in.name, d.exit.Round(time.Millisecond), o.drain, d.ready.Round(time.Millisecond)))
		return err
	}
	time.Sleep(o.steady)
	phase.Store(phaseEach)
	for _, in := range instances {
		if err := restart(in); err != nil {
			return false, err
		}
		time.Sleep(time.Second)
	}
	phase.Store(phaseApart)
	errc := make(chan error, 1)
	go func() { errc <- restart(instances[0]) }()
	time.Sleep(o.apart)
	if err := restart(instances[1]); err != nil {
		return false, err
	}
	if err := <-errc; err != nil {
		return false, err
	}
	phase.Store(phaseAfter)
	time.Sleep(o.steady)
	phase.Store(phaseDone)
	stopLoad()
	loadWG.Wait()

	// Let the streams catch up: until nothing arrives for 3 s.
	for last := totalSeen(streams); ; {
		time.Sleep(3 * time.Second)
		now := totalSeen(streams)
		if now == last {
			break
		}
		last = now
	}
	stopStreams()
	streamWG.Wait()

	// Report.
	ok := true
	fmt.Printf("rolling restart: 2 instances behind nginx (%s), %d in flight, %d WebSocket + %d Connect notification streams, FLOCK_SHUTDOWN_DRAIN=%s\n\n",
		o.nginxConf, o.inflight, o.wsStreams, o.connectStreams, o.drain)
	for _, r := range restarts {
		fmt.Println("  restart", r)
	}
	fmt.Printf("\n| phase | requests | failed | p50 | p99 |\n|---|---:|---:|---:|---:|\n")
	for ph := phaseBefore; ph <= phaseAfter; ph++ {
		st := rec.phase(ph)
		fmt.Printf("| %s | %d | %d | %s | %s |\n", phaseNames[ph], st.n, st.failed, ms(st.p50), ms(st.p99))
		if st.failed > 0 {
			ok = false
		}
	}
	if errs := rec.errorSamples(); len(errs) > 0 {
		fmt.Println("\nfailures:")
		for _, e := range errs {
			fmt.Println("  " + e)
		}
	}
	fmt.Printf("\n| streams | listed | delivered | lost | duplicated | out of order | not listed | reconnects |\n|---|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, kind := range []string{"WebSocket", "Connect"} {
		var t streamTotals
		reasons := map[string]int{}
		for _, s := range streams {
			if s.kind != kind {
				continue
			}
			ids, err := listAll(ctx, notesAPI, s.owner.token)
			if err != nil {
				return false, err
			}
			t.add(s.compare(ids))
			for r, n := range s.reasons {
				reasons[r] += n
			}
		}
		fmt.Printf("| %s | %d | %d | %d | %d | %d | %d | %d |\n", kind, t.listed, t.delivered, t.lost, t.duplicated, t.outOfOrder, t.extra, t.reconnects)
		if t.lost > 0 || t.duplicated > 0 || t.extra > 0 {
			ok = false
		}
		if len(reasons) > 0 {
			fmt.Printf("|   %s streams ended by: %s | | | | | | | |\n", kind, joinCounts(reasons))
		}
	}
	fmt.Println("\nnginx error log:", ngx.errorSummary())
	return ok, nil
}

type user struct {
	name, id, token string
	posts           []string
	baseline        map[string]bool
	since           string
}

func makeUsers(ctx context.Context, fp *flockproc.Server, api flockv1connect.UserServiceClient, prefix string, out []*user) error {
	suffix := hex.EncodeToString(randBytes(3))
	var wg sync.WaitGroup
	errs := make([]error, len(out))
	sem := make(chan struct{}, 4) // argon2id: a few at a time
	for i := range out {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			name := fmt.Sprintf("%s%d_%s", prefix, i, suffix)
			id, token, err := fp.MakeUser(ctx, api, name)
			out[i], errs[i] = &user{name: name, id: id, token: token}, err
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

func authed[T any](msg *T, token string) *connect.Request[T] {
	req := connect.NewRequest(msg)
	req.Header().Set("Authorization", "Bearer "+token)
	return req
}

func listAll(ctx context.Context, api flockv1connect.NotificationServiceClient, token string) ([]string, error) {
	var ids []string
	page := ""
	for {
		res, err := api.ListNotifications(ctx, authed(&flockv1.ListNotificationsRequest{PageSize: 100, PageToken: page}, token))
		if err != nil {
			return nil, fmt.Errorf("list notifications: %w", err)
		}
		for _, n := range res.Msg.GetNotifications() {
			ids = append(ids, n.GetId())
		}
		if page = res.Msg.GetNextPageToken(); page == "" {
			return ids, nil
		}
	}
}

// stream is one logical notification stream: it reconnects with the last
// id it received whenever a connection ends.
type stream struct {
	kind    string
	owner   *user
	connect func(ctx context.Context, since string, got func(id string)) error

	mu         sync.Mutex
	last       string
	order      []string
	seen       map[string]int
	reconnects int
	reasons    map[string]int
}

func (s *stream) run(ctx context.Context) {
	for {
		s.mu.Lock()
		since := s.last
		s.mu.Unlock()
		err := s.connect(ctx, since, func(id string) {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.order = append(s.order, id)
			s.seen[id]++
			s.last = id
		})
		if ctx.Err() != nil {
			return
		}
		s.mu.Lock()
		s.reconnects++
		s.reasons[reason(err)]++
		s.mu.Unlock()
		time.Sleep(time.Duration(100+mrand.IntN(200)) * time.Millisecond)
	}
}

var digits = regexp.MustCompile(`[0-9]{4,}`)

// reason shortens an error to what ended a stream, without addresses.
func reason(err error) string {
	if err == nil {
		return "ended without error"
	}
	if cs := websocket.CloseStatus(err); cs != -1 {
		return fmt.Sprintf("close %d", cs)
	}
	if ce := new(connect.Error); errors.As(err, &ce) {
		m := ce.Message()
		if len(m) > 50 {
			m = m[:50]
		}
		return ce.Code().String() + ": " + m
	}
	m := digits.ReplaceAllString(err.Error(), "N")
	if len(m) > 110 {
		m = m[:110]
	}
	return m
}

type streamTotals struct{ listed, delivered, lost, duplicated, outOfOrder, extra, reconnects int }

func (t *streamTotals) add(u streamTotals) {
	t.listed += u.listed
	t.delivered += u.delivered
	t.lost += u.lost
	t.duplicated += u.duplicated
	t.outOfOrder += u.outOfOrder
	t.extra += u.extra
	t.reconnects += u.reconnects
}

// compare checks what the stream received against the list (newest first).
func (s *stream) compare(list []string) streamTotals {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := streamTotals{reconnects: s.reconnects}
	pos := map[string]int{}
	n := 0
	for i := len(list) - 1; i >= 0; i-- { // oldest first
		id := list[i]
		if s.owner.baseline[id] {
			continue
		}
		pos[id] = n
		n++
		t.listed++
		if s.seen[id] == 0 {
			t.lost++
		}
	}
	for id, c := range s.seen {
		if _, listed := pos[id]; !listed {
			t.extra++
			continue
		}
		t.delivered++
		t.duplicated += c - 1
	}
	prev := -1
	for _, id := range s.order {
		p, listed := pos[id]
		if !listed {
			continue
		}
		if p < prev {
			t.outOfOrder++
		} else {
			prev = p
		}
	}
	return t
}

func totalSeen(streams []*stream) int {
	n := 0
	for _, s := range streams {
		s.mu.Lock()
		n += len(s.order)
		s.mu.Unlock()
	}
	return n
}

func wsStream(ctx context.Context, h1 *http.Client, base, token, since string, got func(string)) error {
	u := strings.Replace(base, "https://", "wss://", 1) + "/api/notifications/?since_id=" + url.QueryEscape(since)
	c, _, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPClient: h1, Subprotocols: []string{"flock.v1", "bearer." + token}})
	if err != nil {
		return err
	}
	defer c.CloseNow()
	c.SetReadLimit(1 << 20)
	for {
		_, b, err := c.Read(ctx)
		if err != nil {
			return err
		}
		var n struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(b, &n); err != nil || n.ID == "" {
			return fmt.Errorf("WebSocket message %q: %v", b, err)
		}
		got(n.ID)
	}
}

func connectStream(ctx context.Context, api flockv1connect.NotificationServiceClient, token, since string, got func(string)) error {
	st, err := api.Subscribe(ctx, authed(&flockv1.NotificationServiceSubscribeRequest{SinceId: since}, token))
	if err != nil {
		return err
	}
	defer st.Close()
	for st.Receive() {
		got(st.Msg().GetId())
	}
	return st.Err()
}

// recorder keeps every request's phase, latency and error.
type recorder struct {
	mu   sync.Mutex
	lat  map[int][]time.Duration
	fail map[int]int
	errs map[string]int
}

func newRecorder() *recorder {
	return &recorder{lat: map[int][]time.Duration{}, fail: map[int]int{}, errs: map[string]int{}}
}

func (r *recorder) add(phase int, op string, d time.Duration, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lat[phase] = append(r.lat[phase], d)
	if err != nil {
		r.fail[phase]++
		r.errs[phaseNames[phase]+" "+op+": "+reason(err)]++
	}
}

type phaseStats struct {
	n, failed int
	p50, p99  time.Duration
}

func (r *recorder) phase(ph int) phaseStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	l := slices.Clone(r.lat[ph])
	slices.Sort(l)
	st := phaseStats{n: len(l), failed: r.fail[ph]}
	if len(l) > 0 {
		st.p50, st.p99 = l[len(l)*50/100], l[min(len(l)-1, len(l)*99/100)]
	}
	return st
}

func (r *recorder) errorSamples() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for e, n := range r.errs {
		out = append(out, fmt.Sprintf("%5d  %s", n, e))
	}
	sort.Strings(out)
	return out
}

func joinCounts(m map[string]int) string {
	var out []string
	for k, n := range m {
		out = append(out, fmt.Sprintf("%d× %s", n, k))
	}
	sort.Strings(out)
	return strings.Join(out, "; ")
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }

// instance is one flock process that keeps its port across restarts.
type instance struct {
	name, binary, dir string
	env               []string
	port              int
	cmd               *exec.Cmd
}

func (in *instance) addr() string { return fmt.Sprintf("127.0.0.1:%d", in.port) }

func (in *instance) start(ctx context.Context) error {
	in.cmd = exec.CommandContext(ctx, in.binary)
	in.cmd.Env = append(append(os.Environ(), in.env...), "FLOCK_ADDR="+in.addr(), "FLOCK_DATA_DIR="+in.dir)
	in.cmd.Stdout, in.cmd.Stderr = os.Stderr, os.Stderr
	if err := in.cmd.Start(); err != nil {
		return fmt.Errorf("start %s (build it with: go build -o bin/flock ./server/cmd/flock): %w", in.binary, err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if res, err := http.Get("http://" + in.addr() + "/readyz"); err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("instance %s did not become ready in 30s", in.name)
		}
	}
}

type restartTimes struct{ exit, ready time.Duration }

// restart sends SIGTERM, waits for the process to exit and starts it again.
func (in *instance) restart(ctx context.Context) (restartTimes, error) {
	start := time.Now()
	if err := in.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return restartTimes{}, err
	}
	if err := in.cmd.Wait(); err != nil {
		return restartTimes{}, fmt.Errorf("instance %s exited: %w", in.name, err)
	}
	exited := time.Since(start)
	err := in.start(ctx)
	return restartTimes{exit: exited, ready: time.Since(start) - exited}, err
}

func (in *instance) stop() {
	if in.cmd != nil && in.cmd.ProcessState == nil {
		_ = in.cmd.Process.Signal(syscall.SIGTERM)
		_ = in.cmd.Wait()
	}
}

type nginx struct {
	cmd *exec.Cmd
	url string
	dir string
}

// startNginx runs nginx in the foreground with conf, its two upstream
// servers pointed at portA and portB, on loopback ports with a self-signed
// certificate.
func startNginx(ctx context.Context, dir, conf string, portA, portB int) (*nginx, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	_ = os.Chmod(filepath.Dir(dir), 0o755) // nginx's workers (nobody) write temp files here
	if err := selfSigned(filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(conf)
	if err != nil {
		return nil, err
	}
	httpPort, httpsPort := freePort(), freePort()
	text := string(b)
	for _, r := range [][2]string{
		{"server 127.0.0.1:8080", fmt.Sprintf("server 127.0.0.1:%d", portA)},
		{"server 127.0.0.1:8081", fmt.Sprintf("server 127.0.0.1:%d", portB)},
		{"/etc/ssl/flock/fullchain.pem", filepath.Join(dir, "cert.pem")},
		{"/etc/ssl/flock/privkey.pem", filepath.Join(dir, "key.pem")},
		{"listen 80;", fmt.Sprintf("listen 127.0.0.1:%d;", httpPort)},
		{"listen 443 ", fmt.Sprintf("listen 127.0.0.1:%d ", httpsPort)},
	} {
		if !strings.Contains(text, r[0]) {
			return nil, fmt.Errorf("%s: no %q to rewrite for the test ports", conf, r[0])
		}
		text = strings.ReplaceAll(text, r[0], r[1])
	}
	var lines []string
	for _, l := range strings.Split(text, "\n") {
		if !strings.Contains(l, "listen [::]") {
			lines = append(lines, l)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "flock.conf"), []byte(strings.Join(lines, "\n")), 0o644); err != nil {
		return nil, err
	}
	wrapper := fmt.Sprintf(`daemon off;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path %[1]s/body;
    proxy_temp_path %[1]s/proxy;
    include %[1]s/flock.conf;
}
`, dir)
	if err := os.WriteFile(filepath.Join(dir, "run.conf"), []byte(wrapper), 0o644); err != nil {
		return nil, err
	}
	n := &nginx{dir: dir, url: fmt.Sprintf("https://127.0.0.1:%d", httpsPort)}
	n.cmd = exec.CommandContext(ctx, "nginx", "-p", dir, "-c", filepath.Join(dir, "run.conf"), "-e", filepath.Join(dir, "error.log"))
	n.cmd.Stdout, n.cmd.Stderr = os.Stderr, os.Stderr
	if err := n.cmd.Start(); err != nil {
		return nil, err
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", httpsPort)); err == nil {
			c.Close()
			return n, nil
		}
		if time.Now().After(deadline) {
			n.stop()
			b, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			return nil, fmt.Errorf("nginx did not start: %s", b)
		}
	}
}

func (n *nginx) stop() {
	if n.cmd.ProcessState == nil {
		_ = n.cmd.Process.Signal(syscall.SIGQUIT)
		_ = n.cmd.Wait()
	}
}

// errorSummary counts nginx's error-log lines by what they say, without
// addresses and numbers. A retried request leaves a line too.
func (n *nginx) errorSummary() string {
	b, _ := os.ReadFile(filepath.Join(n.dir, "error.log"))
	counts := map[string]int{}
	msg := regexp.MustCompile(`\[(warn|error|crit|alert|emerg)\] [0-9#]+: (?:\*[0-9]+ )?([^,]*)`)
	for _, l := range strings.Split(string(b), "\n") {
		if m := msg.FindStringSubmatch(l); m != nil {
			counts[m[1]+": "+digits.ReplaceAllString(m[2], "N")]++
		}
	}
	if len(counts) == 0 {
		return "empty"
	}
	return joinCounts(counts)
}

func freePort() int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

func selfSigned(certPath, keyPath string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "flock.example.com"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), DNSNames: []string{"flock.example.com"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return err
	}
	return os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
}

// freshSchema makes an empty Postgres schema and returns a URL whose
// connections use it, and a func that drops it.
func freshSchema(ctx context.Context, base string) (string, func(), error) {
	schema := "flock_rolling_" + hex.EncodeToString(randBytes(6))
	exec := func(ctx context.Context, sql string) error {
		db, err := store.Open(ctx, base, "")
		if err != nil {
			return err
		}
		defer db.Close()
		_, err = db.ExecContext(ctx, sql)
		return err
	}
	if err := exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		return "", nil, fmt.Errorf("postgres at %s: create schema: %w", base, err)
	}
	u, err := url.Parse(base)
	if err != nil {
		return "", nil, err
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	drop := func() {
		dctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := exec(dctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			fmt.Fprintln(os.Stderr, "rolling: drop schema:", err)
		}
	}
	return u.String(), drop, nil
}
