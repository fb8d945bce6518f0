// Command flock serves the Flock API.
//
//	flock [flags]                        serve (the default)
//	flock [flags] migrate                apply database migrations and exit
//	flock [flags] user promote <name>    make an account staff (a moderator)
//
// Every flag also reads a FLOCK_* environment variable; `flock --help` lists them.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/flock-social/flock/internal/account"
	"github.com/flock-social/flock/internal/clientip"
	"github.com/flock-social/flock/internal/jobs"
	"github.com/flock-social/flock/internal/notify"
	"github.com/flock-social/flock/internal/session"
	"github.com/flock-social/flock/internal/store"
	"github.com/flock-social/flock/internal/video"
	"github.com/flock-social/flock/server"
)

func main() {
	applyDefaultGOGC(os.LookupEnv)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "flock:", err)
		os.Exit(1)
	}
}

// defaultGOGC is the collector's target when GOGC is not set: the heap may
// grow to three times what is live before a collection, not twice. Flock's
// live heap is small (row caches, sessions, tokens: tens of MiB) and
// requests make short-lived garbage, so Go's default of 100 collected often
// for little. Measured with bench/load on SQLite beside GOGC=100, four
// rounds: feed 0.69 against 0.73 ms of CPU per page over Connect, 1.04
// against 1.16 over REST, GetMe over REST 0.135 against 0.163, for a peak
// RSS of 76-105 against 68-98 MiB (docs/performance.md, item 33).
// GOMEMLIMIT still bounds the heap where memory is tight.
const defaultGOGC = 200

// applyDefaultGOGC sets defaultGOGC unless the environment sets GOGC (which
// the runtime has applied already). It reports whether it set it.
func applyDefaultGOGC(lookup func(string) (string, bool)) bool {
	if _, ok := lookup("GOGC"); ok {
		return false
	}
	debug.SetGCPercent(defaultGOGC)
	return true
}

// settings are the command line: each flag defaults to its FLOCK_* variable.
type settings struct {
	server.Config
	env       string
	logLevel  string
	logFormat string
	cors      string
	rate      string
	proxies   string
	drain     time.Duration
	pprofAddr string
	active    string
}

func parse(args []string, stderr io.Writer) (*settings, []string, error) {
	fs := flag.NewFlagSet("flock", flag.ContinueOnError)
	fs.SetOutput(stderr)
	s := new(settings)
	str := func(p *string, name, env, def, usage string) {
		if v, ok := os.LookupEnv(env); ok {
			def = v
		}
		fs.StringVar(p, name, def, usage+" ("+env+")")
	}
	str(&s.Addr, "addr", "FLOCK_ADDR", "127.0.0.1:8080", "listen address, HTTP/1.1 and h2c on one port")
	str(&s.DataDir, "data-dir", "FLOCK_DATA_DIR", "./flock-data", "SQLite file, local media and generated development secrets")
	str(&s.DatabaseURL, "database-url", "FLOCK_DATABASE_URL", "", "postgres://... selects Postgres; empty means SQLite in the data dir")
	str(&s.RedisURL, "redis-url", "FLOCK_REDIS_URL", "", "redis://... shares live events across instances; empty means in-process")
	str(&s.PublicURL, "public-url", "FLOCK_PUBLIC_URL", "", "base of links in emails and of media URLs (default http://<addr>)")
	str(&s.Mailer, "mailer", "FLOCK_MAILER", "log", "log, file:<dir> (one .eml per message), or smtp://user:pass@host:port")
	str(&s.MailFrom, "mail-from", "FLOCK_MAIL_FROM", "", "sender of outgoing email (default Flock <flock@localhost>)")
	str(&s.MediaURL, "media-url", "FLOCK_MEDIA_URL", "", "media storage as a gocloud.dev/blob URL (default file://<data-dir>/media)")
	str(&s.JWTSecret, "jwt-secret", "FLOCK_JWT_SECRET", "", "HS256 key for access tokens, 32+ bytes, used as given (default: generated once into the data dir; required in production)")
	str(&s.cors, "cors-origins", "FLOCK_CORS_ORIGINS", "*", "comma-separated origins browsers may call from")
	str(&s.rate, "rate-limits", "FLOCK_RATE_LIMITS", "on", "on or off (off is for load tests and test harnesses)")
	str(&s.proxies, "trusted-proxies", "FLOCK_TRUSTED_PROXIES", "", "comma-separated CIDRs (or single IPs) of reverse proxies whose X-Forwarded-For is believed; empty means the TCP peer is the client")
	str(&s.env, "env", "FLOCK_ENV", "development", "development or production (production requires an explicit JWT secret)")
	str(&s.logLevel, "log-level", "FLOCK_LOG_LEVEL", "info", "debug, info, warn or error")
	str(&s.logFormat, "log-format", "FLOCK_LOG_FORMAT", "text", "text or json")
	fs.DurationVar(&s.drain, "shutdown-timeout", 25*time.Second, "how long SIGTERM waits for in-flight requests")
	flush := 5 * time.Second
	if v, ok := os.LookupEnv("FLOCK_VIEW_FLUSH_INTERVAL"); ok {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return nil, nil, fmt.Errorf("FLOCK_VIEW_FLUSH_INTERVAL: want a positive duration like 5s, got %q", v)
		}
		flush = d
	}
	fs.DurationVar(&s.ViewFlushInterval, "view-flush-interval", flush, "how often post views counted in memory are written to the database (FLOCK_VIEW_FLUSH_INTERVAL)")
	var envErrs []error
	num := func(name, env string, def float64, usage string) *float64 {
		if v, ok := os.LookupEnv(env); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				envErrs = append(envErrs, fmt.Errorf("%s: want a number, got %q", env, v))
			}
			def = f
		}
		return fs.Float64(name, def, usage+" ("+env+")")
	}
	dur := func(p *time.Duration, name, env string, def time.Duration, usage string) {
		if v, ok := os.LookupEnv(env); ok {
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				envErrs = append(envErrs, fmt.Errorf("%s: want a positive duration like 10m, got %q", env, v))
			}
			def = d
		}
		fs.DurationVar(p, name, def, usage+" ("+env+")")
	}
	dur(&s.AccessTTL, "access-token-ttl", "FLOCK_ACCESS_TOKEN_TTL", 15*time.Minute, "access-token lifetime (clients refresh before it ends)")
	drainFor := 5 * time.Second
	if v, ok := os.LookupEnv("FLOCK_SHUTDOWN_DRAIN"); ok {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			envErrs = append(envErrs, fmt.Errorf("FLOCK_SHUTDOWN_DRAIN: want a duration like 5s, or 0 for none, got %q", v))
		}
		drainFor = d
	}
	fs.DurationVar(&s.ShutdownDrain, "shutdown-drain", drainFor, "after SIGTERM, how long /readyz answers 503 and every answer closes its connection while requests are still served, before the listener closes (time for the proxy in front to move away; 0 for none) (FLOCK_SHUTDOWN_DRAIN)")
	dur(&s.BodyIdleTimeout, "body-idle-timeout", "FLOCK_BODY_IDLE_TIMEOUT", server.DefaultBodyIdleTimeout, "how long a request body may send nothing before it is cut off")
	bodyRate := num("body-min-rate", "FLOCK_BODY_MIN_RATE", server.DefaultBodyMinRate, "bytes per second a request body must average once the idle timeout has passed (uploads on slow links); -1 turns the check off")
	videoMB := num("video-max-mb", "FLOCK_VIDEO_MAX_MB", video.DefaultMaxBytes>>20, "largest video upload in MiB; larger ones get 413")
	dur(&s.Video.MaxDuration, "video-max-duration", "FLOCK_VIDEO_MAX_DURATION", video.DefaultMaxDuration, "longest video accepted")
	videoDim := num("video-max-dimension", "FLOCK_VIDEO_MAX_DIMENSION", video.DefaultMaxDimension, "largest video width or height in pixels")
	videoFPS := num("video-max-fps", "FLOCK_VIDEO_MAX_FPS", video.DefaultMaxFrameRate, "highest video frame rate")
	dur(&s.Video.ProcessTimeout, "video-timeout", "FLOCK_VIDEO_TIMEOUT", video.DefaultProcessTimeout, "time limit of processing one video (probe, transcode, poster)")
	videoWorkers := num("video-workers", "FLOCK_VIDEO_WORKERS", 1, "videos this instance transcodes at once; -1 for none (uploads are queued for other instances)")
	str(&s.pprofAddr, "pprof-addr", "FLOCK_PPROF_ADDR", "", "address of a separate listener serving Go's /debug/pprof profiles, e.g. 127.0.0.1:6060; empty for none (never expose it publicly)")
	bigAuthor := num("timeline-big-author", "FLOCK_TIMELINE_BIG_AUTHOR", 5000, "followers from which an author's posts are merged into home feeds when read instead of written to every follower's timeline")
	timelineWorkers := num("timeline-workers", "FLOCK_TIMELINE_WORKERS", 2, "timeline fan-out jobs this instance runs at once; -1 for none (other instances run them)")
	jobWorkers := num("job-workers", "FLOCK_JOB_WORKERS", 2, "small background jobs (email deliveries and retries, removal of a deleted account's files) this instance runs at once; -1 for none (other instances run them)")
	dur(&s.UsernameHold, "username-hold", "FLOCK_USERNAME_HOLD", account.DefaultUsernameHold, "how long the username of a deleted account cannot be registered again, so nobody can pass for it at once")
	maxStreamsPerUser := num("max-streams-per-user", "FLOCK_MAX_STREAMS_PER_USER", notify.DefaultMaxStreamsPerUser, "live streams one account may hold open on this instance (WebSocket and Subscribe together); past it new ones get 429 resource_exhausted; 0 for no cap")
	str(&s.active, "max-active-requests", "FLOCK_MAX_ACTIVE_REQUESTS", "auto", "API requests (streams aside) whose handlers run at once on this instance; the others wait in order of arrival. auto: twice the CPUs when the database is on this machine (SQLite, or Postgres on localhost, a loopback address or a Unix socket), else the Postgres pool's size; 0 for no limit")
	maxStreams := num("max-streams", "FLOCK_MAX_STREAMS", notify.DefaultMaxStreams, "live streams this instance holds open for all accounts together; 0 for no cap")
	str(&s.Video.TempDir, "video-temp-dir", "FLOCK_VIDEO_TEMP_DIR", "", "where videos are kept while processed (default the system temporary directory)")
	grace := account.DefaultRefreshReuseGrace
	if v, ok := os.LookupEnv("FLOCK_REFRESH_REUSE_GRACE"); ok {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			envErrs = append(envErrs, fmt.Errorf("FLOCK_REFRESH_REUSE_GRACE: want a duration like 30s, or 0 for none, got %q", v))
		}
		grace = d
	}
	fs.DurationVar(&s.RefreshReuseGrace, "refresh-reuse-grace", grace, "how long after its rotation a refresh token still gets a new pair in its session (two tabs refreshing at once) instead of revoking it; 0 for none (FLOCK_REFRESH_REUSE_GRACE)")
	cacheTTL := session.DefaultTTL
	if v, ok := os.LookupEnv("FLOCK_SESSION_CACHE_TTL"); ok {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			envErrs = append(envErrs, fmt.Errorf("FLOCK_SESSION_CACHE_TTL: want a duration like 30s, or 0 for no cache, got %q", v))
		}
		cacheTTL = d
	}
	fs.DurationVar(&s.SessionCacheTTL, "session-cache-ttl", cacheTTL, "how long an instance believes a session it read is live without asking the database; revocations reach every instance at once through the broker, this bounds a missed one; 0 for no cache (FLOCK_SESSION_CACHE_TTL)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage:\n  flock [flags]                       serve the API\n  flock [flags] migrate               apply database migrations\n  flock [flags] user promote <name>   make an account staff\n\nFlags (each also read from the environment variable in brackets):\n")
		fs.PrintDefaults()
	}
	if err := errors.Join(envErrs...); err != nil {
		return nil, nil, err
	}
	if err := fs.Parse(args); err != nil {
		return nil, nil, err
	}
	if *videoMB < 1 || *videoDim < 16 || *videoFPS <= 0 || *videoWorkers != float64(int(*videoWorkers)) || *videoWorkers < -1 {
		return nil, nil, fmt.Errorf("video limits: want FLOCK_VIDEO_MAX_MB >= 1, FLOCK_VIDEO_MAX_DIMENSION >= 16, FLOCK_VIDEO_MAX_FPS > 0 and FLOCK_VIDEO_WORKERS a whole number >= -1")
	}
	if *bodyRate != -1 && *bodyRate < 1 {
		return nil, nil, fmt.Errorf("FLOCK_BODY_MIN_RATE: want a number of bytes per second >= 1, or -1 for no minimum, got %v", *bodyRate)
	}
	s.BodyMinRate = int64(*bodyRate)
	if s.ShutdownDrain < 0 {
		return nil, nil, fmt.Errorf("FLOCK_SHUTDOWN_DRAIN: want a duration like 5s, or 0 for none, got %s", s.ShutdownDrain)
	}
	switch {
	case s.RefreshReuseGrace < 0:
		return nil, nil, fmt.Errorf("FLOCK_REFRESH_REUSE_GRACE: want a duration like 30s, or 0 for none, got %s", s.RefreshReuseGrace)
	case s.RefreshReuseGrace == 0:
		s.RefreshReuseGrace = -1 // none (0 in server.Config means the default)
	}
	switch {
	case s.SessionCacheTTL < 0:
		return nil, nil, fmt.Errorf("FLOCK_SESSION_CACHE_TTL: want a duration like 30s, or 0 for no cache, got %s", s.SessionCacheTTL)
	case s.SessionCacheTTL == 0:
		s.SessionCacheTTL = -1 // off (0 in server.Config means the default)
	}
	for _, v := range []struct {
		env string
		n   float64
		p   *int
	}{{"FLOCK_MAX_STREAMS_PER_USER", *maxStreamsPerUser, &s.MaxStreamsPerUser}, {"FLOCK_MAX_STREAMS", *maxStreams, &s.MaxStreams}} {
		if v.n < 0 || v.n != float64(int(v.n)) {
			return nil, nil, fmt.Errorf("%s: want a whole number >= 0 (0 for no cap), got %v", v.env, v.n)
		}
		if *v.p = int(v.n); *v.p == 0 {
			*v.p = -1 // no cap (0 in server.Config means the default)
		}
	}
	if s.active != "auto" {
		n, err := strconv.Atoi(s.active)
		if err != nil || n < 0 {
			return nil, nil, fmt.Errorf("FLOCK_MAX_ACTIVE_REQUESTS: want auto, a whole number >= 1, or 0 for no limit, got %q", s.active)
		}
		if s.MaxActiveRequests = n; n == 0 {
			s.MaxActiveRequests = -1 // no limit (0 in server.Config means auto)
		}
	}
	if *bigAuthor < 1 || *bigAuthor != float64(int64(*bigAuthor)) || *timelineWorkers < -1 || *timelineWorkers != float64(int(*timelineWorkers)) || *timelineWorkers == 0 {
		return nil, nil, fmt.Errorf("timelines: want FLOCK_TIMELINE_BIG_AUTHOR a whole number >= 1 and FLOCK_TIMELINE_WORKERS a whole number >= 1, or -1 for none")
	}
	s.Timeline.BigAuthor, s.Timeline.Workers = int64(*bigAuthor), int(*timelineWorkers)
	if *jobWorkers < -1 || *jobWorkers == 0 || *jobWorkers != float64(int(*jobWorkers)) {
		return nil, nil, fmt.Errorf("FLOCK_JOB_WORKERS: want a whole number >= 1, or -1 for none, got %v", *jobWorkers)
	}
	s.JobWorkers = int(*jobWorkers)
	s.Video.MaxBytes = int64(*videoMB * (1 << 20))
	s.Video.MaxDimension, s.Video.MaxFrameRate, s.Video.Workers = int(*videoDim), *videoFPS, int(*videoWorkers)
	if s.Video.Workers == 0 {
		s.Video.Workers = -1
	}
	switch s.env {
	case "development", "production":
		s.Production = s.env == "production"
	default:
		return nil, nil, fmt.Errorf("FLOCK_ENV: want development or production, got %q", s.env)
	}
	on, err := parseOnOff(s.rate)
	if err != nil {
		return nil, nil, fmt.Errorf("FLOCK_RATE_LIMITS: %w", err)
	}
	s.RateLimits = on
	if s.TrustedProxies, err = clientip.ParsePrefixes(s.proxies); err != nil {
		return nil, nil, fmt.Errorf("FLOCK_TRUSTED_PROXIES: want comma-separated CIDRs like 10.0.0.0/8,fd00::/8 or single IPs: %w", err)
	}
	for _, o := range strings.Split(s.cors, ",") {
		if o = strings.TrimSpace(o); o != "" {
			s.CORSOrigins = append(s.CORSOrigins, o)
		}
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(s.logLevel)); err != nil {
		return nil, nil, fmt.Errorf("FLOCK_LOG_LEVEL: want debug, info, warn or error, got %q", s.logLevel)
	}
	hopts := &slog.HandlerOptions{Level: level}
	switch s.logFormat {
	case "text":
		s.Logger = slog.New(slog.NewTextHandler(stderr, hopts))
	case "json":
		s.Logger = slog.New(slog.NewJSONHandler(stderr, hopts))
	default:
		return nil, nil, fmt.Errorf("FLOCK_LOG_FORMAT: want text or json, got %q", s.logFormat)
	}
	return s, fs.Args(), nil
}

func parseOnOff(v string) (bool, error) {
	switch strings.ToLower(v) {
	case "on", "yes":
		return true, nil
	case "off", "no":
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("want on or off, got %q", v)
	}
	return b, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	s, rest, err := parse(args, stderr)
	if err != nil {
		return err
	}
	cmd := "serve"
	if len(rest) > 0 {
		cmd, rest = rest[0], rest[1:]
	}
	switch cmd {
	case "serve":
		return serve(ctx, s)
	case "migrate":
		return migrate(ctx, s, stdout)
	case "user":
		if len(rest) != 2 || rest[0] != "promote" {
			return errors.New("usage: flock user promote <username>")
		}
		return promote(ctx, s, rest[1], stdout)
	default:
		return fmt.Errorf("unknown command %q: want serve, migrate or user promote (see flock --help)", cmd)
	}
}

func serve(ctx context.Context, s *settings) error {
	app, err := server.Open(ctx, s.Config)
	if err != nil {
		return err
	}
	defer app.Close()
	ln, err := net.Listen("tcp", s.Addr)
	if err != nil {
		return err
	}
	if s.pprofAddr != "" {
		// A listener of its own, so profiles are never on the public port.
		mux := http.NewServeMux()
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		go func() {
			if err := http.ListenAndServe(s.pprofAddr, mux); err != nil {
				s.Logger.Error("pprof listener", "err", err)
			}
		}()
	}
	s.Logger.Info("flock serving", "addr", ln.Addr().String(), "database", app.DB().Engine,
		"redis", s.RedisURL != "", "public_url", app.PublicURL(), "mailer", strings.SplitN(s.Mailer, ":", 2)[0])
	return app.Serve(ctx, ln, s.drain)
}

func migrate(ctx context.Context, s *settings, stdout io.Writer) error {
	db, err := store.Open(ctx, s.DatabaseURL, s.DataDir)
	if err != nil {
		return err
	}
	defer db.Close()
	applied, err := db.Migrate(ctx)
	if err != nil {
		return err
	}
	if len(applied) == 0 {
		fmt.Fprintln(stdout, "database is up to date")
	}
	for _, name := range applied {
		fmt.Fprintln(stdout, "applied", name)
	}
	// The job queue's tables (River's migrations) come with opening it.
	q := jobs.New(jobs.Config{}, s.Logger)
	if err := q.Open(ctx, db, s.DatabaseURL); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "job queue is up to date")
	return q.Close(ctx)
}

func promote(ctx context.Context, s *settings, username string, stdout io.Writer) error {
	app, err := server.Open(ctx, s.Config)
	if err != nil {
		return err
	}
	defer app.Close()
	u, err := app.Accounts().Promote(ctx, username)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s (%s) is now staff\n", u.Username, u.ID)
	return nil
}
