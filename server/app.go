// Package server is Flock's transport: it serves the protobuf-defined API
// as Connect, gRPC and gRPC-Web at /flock.v1.*, as REST JSON at /api/
// through vanguard, plus the plain-HTTP endpoints (media, health, metrics).
// Handlers decode, authenticate and convert; the rules live in internal/.
//
// App also wires the server's dependencies (store, broker, mailer, media
// storage, domain services) so that the binary and the tests build the very
// same thing.
package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/alexedwards/argon2id"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"gocloud.dev/blob"

	"github.com/flock-social/flock"
	"github.com/flock-social/flock/internal/account"
	"github.com/flock-social/flock/internal/account/accesstoken"
	"github.com/flock-social/flock/internal/analytics"
	"github.com/flock-social/flock/internal/export"
	"github.com/flock-social/flock/internal/group"
	"github.com/flock-social/flock/internal/jobs"
	"github.com/flock-social/flock/internal/mail"
	"github.com/flock-social/flock/internal/media"
	"github.com/flock-social/flock/internal/media/bucket"
	"github.com/flock-social/flock/internal/moderation"
	"github.com/flock-social/flock/internal/notify"
	"github.com/flock-social/flock/internal/post"
	"github.com/flock-social/flock/internal/pubsub"
	"github.com/flock-social/flock/internal/ratelimit"
	"github.com/flock-social/flock/internal/session"
	"github.com/flock-social/flock/internal/social"
	"github.com/flock-social/flock/internal/store"
	"github.com/flock-social/flock/internal/timeline"
	"github.com/flock-social/flock/internal/video"
)

// Config is every setting of a Flock server. cmd/flock fills it from
// FLOCK_* environment variables and flags; docs/configuration.md lists them.
type Config struct {
	// Addr is the listen address (HTTP/1.1 and h2c on one port).
	Addr string
	// DataDir holds the SQLite file, local media and generated secrets.
	DataDir string
	// DatabaseURL selects Postgres (postgres://...); empty means SQLite in DataDir.
	DatabaseURL string
	// RedisURL shares live events across instances; empty means in-process.
	RedisURL string
	// PublicURL is the base of links in emails and of media URLs.
	PublicURL string
	// Mailer is "log", "file:<dir>" or "smtp://user:pass@host:port".
	Mailer string
	// MailFrom is the sender of outgoing email.
	MailFrom string
	// MediaURL is where media is stored (a gocloud.dev/blob URL); empty
	// means DataDir/media on local disk.
	MediaURL string
	// JWTSecret signs access tokens (32+ bytes). Empty: generated once into
	// DataDir, except in production, where it is required.
	JWTSecret string
	// Production refuses development conveniences (a generated JWT secret).
	Production bool
	// CORSOrigins are the origins browsers may call from ("*" for any).
	CORSOrigins []string
	// RateLimits turns rate limiting on: per account and per IP, shared
	// through Redis when RedisURL is set (see ratelimit.Rules).
	RateLimits bool
	// TrustedProxies are the reverse proxies whose X-Forwarded-For header
	// is believed: behind them, the client is the first untrusted address
	// of that header, read from the right (see internal/clientip). Empty
	// means the TCP peer is the client and the header is never read.
	TrustedProxies []netip.Prefix
	// AccessTTL overrides the access-token lifetime (default 15 minutes).
	AccessTTL time.Duration
	// RefreshReuseGrace is how long after its rotation a refresh token still
	// gets a new pair in its session instead of revoking it, so that two
	// tabs refreshing at once stay signed in (security.md property 8).
	// 0 means the default (account.DefaultRefreshReuseGrace, 30 s);
	// negative means none.
	RefreshReuseGrace time.Duration
	// SessionCacheTTL is how long an instance believes a session it has
	// read is live without asking the database again (default
	// session.DefaultTTL, 30 s; negative turns the cache off). Revocations
	// reach every instance at once through the broker; the TTL bounds a
	// missed one (see internal/session).
	SessionCacheTTL time.Duration
	// Now is the clock of the store and of access tokens; nil means the
	// system clock. Tests move it forward instead of sleeping.
	Now func() time.Time
	// ViewFlushInterval is how often counted post views are written to the
	// database (default 5s; see docs/analytics.md).
	ViewFlushInterval time.Duration
	// StreamPoll is how often a live stream re-reads the store without a
	// wake-up from the broker (default 15s): the bound on how late an event
	// arrives when a broker message is lost.
	StreamPoll time.Duration
	// MaxStreamsPerUser caps the live streams (WebSocket and Subscribe,
	// notifications and activity log together) one account holds open on
	// an instance; past it a new stream is refused with resource_exhausted.
	// 0 means the default (notify.DefaultMaxStreamsPerUser, 20); negative
	// means no cap.
	MaxStreamsPerUser int
	// Timeline configures home timelines (fan-out workers, big authors).
	Timeline timeline.Config
	// JobWorkers is how many small background jobs (email deliveries and
	// their retries, removal of a deleted account's files) this instance
	// runs at once; 0 means 2, -1 none (other instances run them).
	JobWorkers int
	// UsernameHold is how long the username of a deleted account cannot
	// be registered again (0 means account.DefaultUsernameHold, 30 days).
	UsernameHold time.Duration
	// MaxActiveRequests is how many unary requests run their handlers at
	// once on an instance; the others wait in order of arrival
	// (admission.go). 0 means DefaultMaxActiveRequests; negative means no
	// limit.
	MaxActiveRequests int
	// MaxStreams caps the live streams of all accounts on an instance.
	// 0 means the default (notify.DefaultMaxStreams, 10,000); negative
	// means no cap.
	MaxStreams int
	// BodyIdleTimeout is how long a request body may send nothing before it
	// is cut off (default DefaultBodyIdleTimeout); BodyMinRate is the
	// average rate, in bytes per second, a body must keep up once that time
	// has passed (default DefaultBodyMinRate; negative turns the rate check
	// off). Together they bound slow and stalled bodies without a total
	// deadline that long uploads would hit (security.md property 23).
	BodyIdleTimeout time.Duration
	BodyMinRate     int64
	// ShutdownDrain is how long Serve keeps serving after it is told to
	// stop, with /readyz and gRPC health answering "not serving" and every
	// HTTP/1.1 answer carrying Connection: close, before it closes its
	// listener: the time a proxy or load balancer gets to stop sending new
	// requests and to stop reusing kept-alive connections to this instance
	// (docs/deployment.md#rolling-restarts). 0 means none.
	ShutdownDrain time.Duration
	// Video sets video upload limits and processing (see video.Config).
	Video video.Config
	// PasswordParams overrides the argon2id cost of new password hashes,
	// for test harnesses only (see account.Config); nil in production.
	PasswordParams *argon2id.Params
	// Logger receives structured logs; nil means slog.Default().
	Logger *slog.Logger
}

// App is a wired Flock server.
type App struct {
	cfg      Config
	log      *slog.Logger
	db       *store.DB
	broker   pubsub.Broker
	bucket   *blob.Bucket
	accounts *account.Service
	// deleter deletes accounts (UserService.DeleteAccount).
	deleter  *account.Deleter
	sessions *session.Cache
	social   *social.Service
	events   *notify.Service
	posts    *post.Service
	groups   *group.Service
	limiter  ratelimit.Limiter // nil when rate limits are off
	handler  http.Handler
	// sockets counts WebSocket handlers, which http.Server.Shutdown does
	// not wait for (their connections are hijacked).
	sockets sync.WaitGroup
	// draining is set once Serve has been told to stop: /readyz answers 503
	// and HTTP/1.1 answers close their connections.
	draining atomic.Bool

	// moderation serves reports: PostService.ReportPost and ModerationService.
	moderation *moderation.Service

	// analytics counts post views in memory and flushes them in the background.
	analytics *analytics.Service

	// videos takes uploads and processes them in the background.
	videos *video.Service
	// exports writes account archives (GET /api/users/export/).
	exports *export.Service
	// jobs is the durable job queue every domain's background work runs on.
	jobs *jobs.Queue
	// outbox sends email: queued in the request's transaction, delivered
	// right after it and, failing that, from the job queue.
	outbox *mail.Outbox
	// timelines keeps materialized home feeds.
	timelines *timeline.Service
	// signer signs the URLs of video files that are not public.
	signer *media.Signer
	conv   converter
}

// Open connects to every dependency the configuration names, applies
// pending migrations and builds the HTTP handler.
func Open(ctx context.Context, cfg Config) (_ *App, err error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.DataDir == "" {
		cfg.DataDir = "flock-data"
	}
	if cfg.PublicURL == "" {
		cfg.PublicURL = defaultPublicURL(cfg.Addr)
	}
	cfg.PublicURL = strings.TrimRight(cfg.PublicURL, "/")
	if cfg.AccessTTL <= 0 {
		cfg.AccessTTL = 15 * time.Minute
	}
	if cfg.RefreshReuseGrace == 0 {
		cfg.RefreshReuseGrace = account.DefaultRefreshReuseGrace
	}
	if cfg.BodyIdleTimeout <= 0 {
		cfg.BodyIdleTimeout = DefaultBodyIdleTimeout
	}
	if cfg.BodyMinRate == 0 {
		cfg.BodyMinRate = DefaultBodyMinRate
	}
	if cfg.ViewFlushInterval <= 0 {
		cfg.ViewFlushInterval = analytics.DefaultFlushInterval
	}
	if len(cfg.CORSOrigins) == 0 {
		cfg.CORSOrigins = []string{"*"}
	}
	a := &App{cfg: cfg, log: cfg.Logger}
	defer func() {
		if err != nil {
			a.Close()
		}
	}()

	secret, err := jwtSecret(cfg)
	if err != nil {
		return nil, err
	}
	now := func() time.Time { return time.Now().UTC() }
	if cfg.Now != nil {
		now = func() time.Time { return cfg.Now().UTC() }
	}
	tokens, err := accesstoken.New(secret, cfg.AccessTTL, now)
	if err != nil {
		return nil, fmt.Errorf("FLOCK_JWT_SECRET: %w", err)
	}
	if a.db, err = store.Open(ctx, cfg.DatabaseURL, cfg.DataDir); err != nil {
		return nil, err
	}
	if cfg.Now != nil {
		a.db.Now = func() time.Time { return now().Truncate(time.Microsecond) }
	}
	applied, err := a.db.Migrate(ctx)
	if err != nil {
		return nil, err
	}
	if len(applied) > 0 {
		a.log.Info("applied migrations", "migrations", applied)
	}
	if a.broker, err = pubsub.Open(cfg.RedisURL); err != nil {
		return nil, fmt.Errorf("FLOCK_REDIS_URL: %w (with FLOCK_REDIS_URL set, an instance needs Redis to start: start it, or unset FLOCK_REDIS_URL to run a single instance without it)", err)
	}
	// Before anything is served: a revocation announced from now on reaches
	// this instance's cache.
	if a.sessions, err = session.New(ctx, a.broker, a.db.Now, session.Config{TTL: cfg.SessionCacheTTL}, a.log); err != nil {
		return nil, fmt.Errorf("session cache: %w", err)
	}
	if cfg.RateLimits {
		if a.limiter, err = ratelimit.Open(cfg.RedisURL); err != nil {
			return nil, fmt.Errorf("rate limiter: %w", err)
		}
	}
	mediaURL := cfg.MediaURL
	if mediaURL == "" {
		abs, err := filepath.Abs(filepath.Join(cfg.DataDir, "media"))
		if err != nil {
			return nil, err
		}
		// A URL, so a "#" or "?" in the directory is escaped, not read as
		// the URL's fragment or query.
		mediaURL = (&url.URL{Scheme: "file", Path: filepath.ToSlash(abs)}).String()
	}
	if a.bucket, err = bucket.Open(ctx, mediaURL); err != nil {
		return nil, fmt.Errorf("media storage: %w", err)
	}
	mailer, err := mail.Open(cfg.Mailer, cfg.MailFrom, a.log)
	if err != nil {
		return nil, fmt.Errorf("FLOCK_MAILER: %w", err)
	}
	a.events = notify.NewService(a.db, a.broker, a.log)
	if cfg.StreamPoll > 0 {
		a.events.Poll = cfg.StreamPoll
	}
	if cfg.MaxStreamsPerUser != 0 {
		a.events.MaxStreamsPerUser = cfg.MaxStreamsPerUser
	}
	if cfg.MaxStreams != 0 {
		a.events.MaxStreams = cfg.MaxStreams
	}
	a.jobs = jobs.New(jobs.Config{Poll: cfg.Video.JobPoll}, a.log)
	if cfg.JobWorkers == 0 {
		cfg.JobWorkers = 2
	}
	jobs.AddQueue(a.jobs, jobs.QueueGeneral, cfg.JobWorkers)
	if a.outbox, err = mail.NewOutbox(a.jobs, mailer, secret, mail.OutboxConfig{}, a.log); err != nil {
		return nil, err
	}
	a.timelines = timeline.NewService(a.db, a.jobs, cfg.Timeline, a.log)
	a.accounts, err = account.NewService(a.db, a.outbox, a.bucket, tokens, a.events, account.Config{
		PublicURL: cfg.PublicURL, AccessTTL: cfg.AccessTTL, PasswordParams: cfg.PasswordParams,
		RefreshReuseGrace: max(cfg.RefreshReuseGrace, 0), Sessions: a.sessions,
		// A sign-in starts the home timeline, so the first page reads it.
		SignedIn: a.timelines.Warm,
	}, a.log)
	if err != nil {
		return nil, err
	}
	a.social = social.NewService(a.db, a.events)
	a.videos = video.NewService(a.db, a.jobs, a.bucket, cfg.Video, a.log)
	a.deleter = account.NewDeleter(a.accounts, a.jobs, a.bucket, account.DeleteConfig{
		UsernameHold: cfg.UsernameHold, RemoveVideoFiles: a.videos.RemoveFiles,
	})
	a.signer = media.NewSigner(secret)
	a.conv = converter{mediaURL: cfg.PublicURL + "/media/", signer: a.signer}
	// Streams convert each batch of events once for all of a user's streams.
	a.events.PrepareNotifications, a.events.PrepareActivities = a.prepareNotifications, a.prepareActivities
	a.posts = post.NewService(a.db, a.social, a.events, a.videos, a.timelines)
	a.analytics = analytics.NewService(a.db, a.log, analytics.Config{FlushInterval: cfg.ViewFlushInterval})
	a.analytics.Start()
	a.moderation = moderation.NewService(a.db, a.events, a.videos, a.sessions)
	a.groups = group.NewService(a.db, a.social, a.posts, a.events)
	a.exports = export.NewService(a.db, a.bucket, 0, a.log)
	// Every domain has registered its jobs by now.
	if err := a.jobs.Open(ctx, a.db, cfg.DatabaseURL); err != nil {
		return nil, err
	}
	// Jobs run until Close, not until the context of Open ends.
	if err := a.jobs.Start(context.WithoutCancel(ctx)); err != nil {
		return nil, err
	}
	a.handler = a.routes()
	return a, nil
}

// Handler returns the HTTP handler that serves everything.
func (a *App) Handler() http.Handler { return a.handler }

// DB returns the store, for administrative commands and tests.
func (a *App) DB() *store.DB { return a.db }

// defaultPublicURL is the base of links when none is set: http:// and the
// listen address, with localhost for a host that only says "every
// address" (":8080", "0.0.0.0:8080", "[::]:8080"), which no browser opens.
func defaultPublicURL(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "http://" + addr
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// PublicURL is the base of the links the server writes: Config.PublicURL,
// or http://Addr when that was empty.
func (a *App) PublicURL() string { return a.cfg.PublicURL }

// Accounts returns the account service, for administrative commands.
func (a *App) Accounts() *account.Service { return a.accounts }

// Serve serves on ln (HTTP/1.1 and cleartext HTTP/2) until ctx is done,
// then shuts down in the order that lets a proxy in front lose nothing:
//
//  1. /readyz and gRPC health turn to "not serving", and open streams end
//     with a reconnect hint;
//  2. for Config.ShutdownDrain, requests are still served, but every
//     HTTP/1.1 answer says Connection: close, so that no kept-alive
//     connection is reused after the listener closes;
//  3. the listener closes, HTTP/2 connections get GOAWAY, idle connections
//     close, and in-flight requests get up to timeout to finish.
func (a *App) Serve(ctx context.Context, ln net.Listener, timeout time.Duration) error {
	srv := NewHTTPServer(a.closeWhileDraining(a.handler))
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	a.log.Info("shutting down", "drain", a.cfg.ShutdownDrain, "timeout", timeout)
	a.draining.Store(true)
	// Streams never end by themselves: close them first, with a reconnect hint.
	a.events.Shutdown()
	if a.cfg.ShutdownDrain > 0 {
		t := time.NewTimer(a.cfg.ShutdownDrain)
		select {
		case <-t.C:
		case err := <-errc:
			t.Stop()
			return err
		}
		a.log.Info("drained; closing the listener")
	}
	socketsDone := make(chan struct{})
	go func() { a.sockets.Wait(); close(socketsDone) }()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		srv.Close()
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	select {
	case <-socketsDone:
	case <-shutdownCtx.Done():
		return fmt.Errorf("shutdown: WebSocket streams still open after %s", timeout)
	}
	return nil
}

// closeWhileDraining makes every HTTP/1.1 answer given after shutdown has
// begun close its connection (net/http honours a handler's Connection:
// close), so that a proxy takes each kept-alive connection out of its pool
// with a complete answer instead of reusing it as the listener closes.
// HTTP/2 has no such header; its connections get GOAWAY when the listener
// closes. A WebSocket upgrade during the drain is refused with 503 and
// Retry-After before it is upgraded: a proxy retries it on another
// instance (nginx: proxy_next_upstream http_503), where it would otherwise
// be given its backlog here and closed again at once.
func (a *App) closeWhileDraining(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !a.draining.Load() || r.ProtoMajor != 1 {
			h.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Connection", "close")
		if strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			w.Header().Set("Retry-After", "1")
			writeRESTError(w, flock.Errorf(flock.EUNAVAILABLE, "the server is restarting: reconnect with since_id"))
			return
		}
		h.ServeHTTP(w, r)
	})
}

// NewHTTPServer returns an http.Server for h that speaks HTTP/1.1 and
// cleartext HTTP/2 (h2c, for gRPC without TLS) on one port, with timeouts
// that bound slow clients but leave streams open, and HTTP/2 pings as
// stream heartbeats.
func NewHTTPServer(h http.Handler) *http.Server {
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	return &http.Server{
		Handler:           h,
		Protocols:         &protocols,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		HTTP2: &http.HTTP2Config{
			// Heartbeats for gRPC and Connect streams over HTTP/2: a PING
			// when a connection has been quiet for 30s keeps it open
			// through proxies and finds dead peers; a peer that accepts no
			// bytes for 30s (a stalled client) loses its connection.
			SendPingTimeout:  30 * time.Second,
			PingTimeout:      15 * time.Second,
			WriteByteTimeout: 30 * time.Second,
		},
	}
}

// Close releases every dependency; it waits a few seconds for emails still
// being sent (the job queue sends those it cuts off).
func (a *App) Close() error {
	var errs []error
	if a.analytics != nil {
		// Writes the views still buffered, so it goes before the store.
		errs = append(errs, a.analytics.Close())
	}
	if a.accounts != nil {
		// Finishes the work it runs after answering (reset requests),
		// which may queue emails, so it goes before the outbox.
		a.accounts.Close()
	}
	if a.outbox != nil {
		// Emails being sent right after their requests get a few seconds;
		// those cut off stay queued and are sent from the job queue.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_ = a.outbox.Close(ctx)
		cancel()
	}
	if a.jobs != nil {
		// Running jobs get a while to finish, then go back to the queue.
		grace := 10 * time.Second // Open failed before the video service
		if a.videos != nil {
			grace = a.videos.StopGrace()
		}
		ctx, cancel := context.WithTimeout(context.Background(), grace)
		errs = append(errs, a.jobs.Close(ctx))
		cancel()
	}
	if a.events != nil {
		a.events.Wait()
	}
	a.sessions.Close()
	if a.broker != nil {
		errs = append(errs, a.broker.Close())
	}
	if a.limiter != nil {
		errs = append(errs, a.limiter.Close())
	}
	if a.bucket != nil {
		errs = append(errs, a.bucket.Close())
	}
	if a.db != nil {
		errs = append(errs, a.db.Close())
	}
	return errors.Join(errs...)
}

// jwtSecret returns the configured secret or, outside production, the one
// generated into the data dir on first start (kept so tokens survive restarts).
func jwtSecret(cfg Config) ([]byte, error) {
	if cfg.JWTSecret != "" {
		return []byte(cfg.JWTSecret), nil
	}
	if cfg.Production {
		return nil, errors.New("FLOCK_JWT_SECRET is required in production: set it to 32 or more random bytes, e.g. `openssl rand -hex 32`")
	}
	path := filepath.Join(cfg.DataDir, "jwt-secret")
	if b, err := os.ReadFile(path); err == nil {
		return []byte(strings.TrimSpace(string(b))), nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	secret := hex.EncodeToString(b)
	if err := os.WriteFile(path, []byte(secret+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("write %s: %w", path, err)
	}
	return []byte(secret), nil
}
