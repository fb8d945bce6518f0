package server

import (
	"context"
	_ "embed"
	"net/http"
	"strings"
	"time"

	"connectrpc.com/connect"
	"connectrpc.com/grpchealth"
	"connectrpc.com/grpcreflect"
	"connectrpc.com/validate"
	"connectrpc.com/vanguard"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/flock-social/flock/gen/go/flock/v1/flockv1connect"
	"github.com/flock-social/flock/internal/mail"
	"github.com/flock-social/flock/internal/session"
	"github.com/flock-social/flock/internal/store"
)

// maxRequestBytes caps an RPC message: a 5 MiB avatar in base64 JSON plus
// the rest of the request.
const maxRequestBytes = 8 << 20

//go:embed openapi.yaml
var openAPISpec []byte

// routes builds the handler tree:
//
//	/flock.v1.*                 Connect, gRPC, gRPC-Web (mounted directly, so a
//	                            plain JSON POST needs no Connect header)
//	/api/...                    REST JSON through vanguard, trailing slash optional
//	/grpc.reflection.*, /grpc.health.v1.*
//	/healthz, /readyz, /metrics, /openapi.yaml
//	/docs/                      the browsable API reference (embedded Swagger UI)
//	/api/posts/videos/          the video upload (multipart, streamed)
//	/api/users/export/          the account's archive (zip, streamed)
//	/media/...                  stored media (avatars)
//	/verify-email               the page the verification link opens
//	/reset-password             the page the password-reset link opens
//	/                           the web app (client/web, embedded; index.html
//	                            for every app route, 404 under the prefixes above)
func (a *App) routes() http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(streamCollectors(a.events)...)
	reg.MustRegister(timelineCollectors(a.timelines)...)
	reg.MustRegister(sessionCollectors(a.sessions)...)
	reg.MustRegister(emailCollectors(a.outbox)...)
	reg.MustRegister(txConflictCollectors(a.db)...)
	reg.MustRegister(rowCacheCollectors(a.db)...)

	interceptors := []connect.Interceptor{
		errorInterceptor{log: a.log},
		newMetricsInterceptor(reg),
		authInterceptor{accounts: a.accounts},
		fieldCheckInterceptor{},
	}
	if a.limiter != nil {
		interceptors = append(interceptors, rateLimitInterceptor{limiter: a.limiter, log: a.log, loginIdentity: a.accounts.LoginIdentity})
	}
	interceptors = append(interceptors, validate.NewInterceptor())
	// Last, so that authentication, rate limits and validation answer
	// without waiting for a slot.
	if n := a.cfg.MaxActiveRequests; n >= 0 {
		if n == 0 {
			n = DefaultMaxActiveRequests(a.db)
		}
		admission := newAdmissionInterceptor(n, 0)
		reg.MustRegister(admissionCollectors(admission)...)
		interceptors = append(interceptors, admission)
	}
	opts := []connect.HandlerOption{
		connect.WithInterceptors(interceptors...),
		connect.WithReadMaxBytes(maxRequestBytes),
		// Responses under 1 KiB go uncompressed even to clients that
		// accept gzip: gzip saves a few hundred bytes at most there, and
		// costs CPU on every answer.
		connect.WithCompressMinBytes(1024),
		connect.WithCompression("gzip", newGzipReader, newFastGzipWriter),
		recoverHandler(a.log),
	}
	opts = append(opts, jsonCodecs()...)
	conv := a.conv

	mux := http.NewServeMux()
	var services []*vanguard.Service
	mount := func(path string, h http.Handler) {
		mux.Handle(path, withNoStore(withConnectRefusals(h)))
		services = append(services, vanguard.NewService(path, h))
	}
	mount(flockv1connect.NewUserServiceHandler(&userServer{accounts: a.accounts, deleter: a.deleter, social: a.social, posts: a.posts, conv: conv}, opts...))
	mount(flockv1connect.NewPostServiceHandler(&postServer{posts: a.posts, moderation: a.moderation, analytics: a.analytics, videos: a.videos, conv: conv}, opts...))
	mount(flockv1connect.NewGroupServiceHandler(&groupServer{groups: a.groups, social: a.social, conv: conv}, opts...))
	notifications := &notificationServer{events: a.events, db: a.db, social: a.social, conv: conv}
	activity := &activityServer{events: a.events, conv: conv}
	mountStreams := func(path string, h http.Handler) { mount(path, withStreamStall(streamStall, h)) }
	mountStreams(flockv1connect.NewNotificationServiceHandler(notifications, opts...))
	mountStreams(flockv1connect.NewActivityServiceHandler(activity, opts...))
	mount(flockv1connect.NewModerationServiceHandler(&moderationServer{moderation: a.moderation, conv: conv}, opts...))

	serviceNames := []string{
		flockv1connect.UserServiceName, flockv1connect.PostServiceName, flockv1connect.GroupServiceName,
		flockv1connect.NotificationServiceName, flockv1connect.ActivityServiceName, flockv1connect.ModerationServiceName,
	}
	queries, err := newRESTQueries(serviceNames...)
	if err != nil {
		panic(err.Error()) // the services are compiled in: caught by every test
	}

	// The hop from the transcoder to a handler stays in the process:
	// compressing it (vanguard's default offers gzip to the handler) only
	// cost CPU, 12 % of a REST GetMe. A REST client's own Accept-Encoding
	// is still honoured on the way out.
	rest, err := vanguard.NewTranscoder(services, vanguard.WithCodec(newRESTJSONCodec),
		vanguard.WithCompression("gzip", newFastGzipWriter, newGzipReader),
		vanguard.WithDefaultServiceOptions(vanguard.WithNoTargetCompression(),
			// A query parameter that is no field of the request is
			// ignored, as an unknown JSON field is (errors.md): vanguard
			// refused it as an unknown error (500), so a browser's
			// cache-buster (?_=1) or a stream's ?since_id= on a plain GET
			// broke the call.
			vanguard.WithRESTUnmarshalOptions(vanguard.RESTUnmarshalOptions{DiscardUnknownQueryParams: true})))
	if err != nil {
		// The services and their annotations are compiled in; a failure
		// here is a programming error caught by every test.
		panic("vanguard: " + err.Error())
	}

	reflector := grpcreflect.NewStaticReflector(serviceNames...)

	// Before the /api/ catch-all, so that vanguard never buffers an upload.
	mux.HandleFunc("POST /api/posts/videos", a.uploadVideo)
	mux.HandleFunc("POST /api/posts/videos/{$}", a.uploadVideo)
	// Streamed, never buffered by vanguard: the account's archive.
	mux.HandleFunc("GET /api/users/export", a.exportAccount)
	mux.HandleFunc("GET /api/users/export/{$}", a.exportAccount)
	// Their other methods would reach vanguard, which knows neither path
	// (GET /api/posts/videos/ read "no API endpoint"): the method is what
	// was wrong, as for every route vanguard serves.
	for path, allow := range map[string]string{"/api/posts/videos": http.MethodPost, "/api/users/export": "GET, HEAD"} {
		refuse := methodRefusal(allow)
		mux.HandleFunc(path, refuse)
		mux.HandleFunc(path+"/{$}", refuse)
	}
	mux.Handle("/api/", withRESTHygiene(maxRequestBytes, queries, withNoStore(a.withWebSockets(withoutTrailingSlash(a.withMultipartProfile(withRESTRefusals(rest)))))))
	mux.Handle(grpcreflect.NewHandlerV1(reflector))
	mux.Handle(grpcreflect.NewHandlerV1Alpha(reflector))
	mux.Handle(grpchealth.NewHandler(dbChecker{a: a}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", a.ready)
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /openapi.yaml", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/yaml")
		_, _ = w.Write(openAPISpec)
	})
	mux.Handle("GET /docs/", apiDocsHandler())
	mux.HandleFunc("GET /media/", a.serveMedia)
	mux.HandleFunc("/verify-email", a.verifyEmailPage)
	mux.HandleFunc("/reset-password", a.resetPasswordPage)
	// The app's catch-all also sees unknown Connect services (/flock.v1.Nope/X).
	app := webAppHandler()
	connectRefusals := withConnectRefusals(app)
	mux.Handle("/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/flock.v1.") {
			connectRefusals.ServeHTTP(w, r)
			return
		}
		app.ServeHTTP(w, r)
	}))

	// withClientIP goes first: everything inside sees the client's address.
	return withClientIP(a.cfg.TrustedProxies,
		withBodyGuard(a.cfg.BodyIdleTimeout, a.cfg.BodyMinRate, withRequestLog(a.log, withCORS(a.cfg.CORSOrigins, mux))))
}

// sessionCollectors export the session cache's counters.
func sessionCollectors(c *session.Cache) []prometheus.Collector {
	lookups := func(result string, v func(session.Stats) uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "flock_session_cache_lookups_total", ConstLabels: prometheus.Labels{"result": result},
			Help: "Authentications answered from the session cache (hit) or from the database (miss).",
		}, func() float64 { return float64(v(c.Stats())) })
	}
	return []prometheus.Collector{
		lookups("hit", func(s session.Stats) uint64 { return s.Hits }),
		lookups("miss", func(s session.Stats) uint64 { return s.Misses }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "flock_session_cache_invalidations_total", Help: "Ends of sessions and changes of users applied to this instance's session cache."},
			func() float64 { return float64(c.Stats().Invalidations) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "flock_session_cache_entries", Help: "Sessions held in this instance's session cache."},
			func() float64 { return float64(c.Stats().Entries) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "flock_session_cache_bypassed", Help: "1 while the broker's connection is down and the session cache is bypassed."},
			func() float64 {
				if c.Stats().Bypassed {
					return 1
				}
				return 0
			}),
	}
}

// emailCollectors export the outbox's counters (this instance's sends).
func emailCollectors(o *mail.Outbox) []prometheus.Collector {
	counter := func(name, help, path string, v func(mail.OutboxStats) uint64) prometheus.Collector {
		opts := prometheus.CounterOpts{Name: name, Help: help}
		if path != "" {
			opts.ConstLabels = prometheus.Labels{"path": path}
		}
		return prometheus.NewCounterFunc(opts, func() float64 { return float64(v(o.Stats())) })
	}
	const (
		sent     = "Emails handed to the mailer: right after their request (path eager) or from the job queue (path queue)."
		failures = "Email delivery attempts that failed: right after the request (path eager, then retried from the job queue) or from the job queue (path queue)."
	)
	return []prometheus.Collector{
		counter("flock_emails_sent_total", sent, "eager", func(s mail.OutboxStats) uint64 { return s.SentEager }),
		counter("flock_emails_sent_total", sent, "queue", func(s mail.OutboxStats) uint64 { return s.SentQueued }),
		counter("flock_email_failures_total", failures, "eager", func(s mail.OutboxStats) uint64 { return s.FailedEager }),
		counter("flock_email_failures_total", failures, "queue", func(s mail.OutboxStats) uint64 { return s.FailedQueued }),
		counter("flock_emails_abandoned_total", "Emails given up: attempts used up, refused for good by the SMTP server, expired, or sealed under another secret.", "",
			func(s mail.OutboxStats) uint64 { return s.Abandoned }),
	}
}

// txConflictCollectors export the transactions Postgres aborted on this
// instance: any deadlock is a lock taken out of the order of
// internal/store/locks.go and worth a bug report.
func txConflictCollectors(db *store.DB) []prometheus.Collector {
	counter := func(reason string, v func(store.TxConflictStats) uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "flock_db_tx_conflicts_total", ConstLabels: prometheus.Labels{"reason": reason},
			Help: "Transaction runs Postgres aborted, each run again up to 4 times: as a deadlock victim (reason deadlock, SQLSTATE 40P01) or on a serialization failure (reason serialization, 40001).",
		}, func() float64 { return float64(v(db.TxConflicts())) })
	}
	return []prometheus.Collector{
		counter("deadlock", func(s store.TxConflictStats) uint64 { return s.Deadlocks }),
		counter("serialization", func(s store.TxConflictStats) uint64 { return s.SerializationFailures }),
	}
}

// rowCacheCollectors export the row caches' lookups (feed pages' posts and
// authors, internal/store/rowcache.go): a miss is a row read again, absent
// from this instance's cache or changed since.
func rowCacheCollectors(db *store.DB) []prometheus.Collector {
	counter := func(cache, result string, v func(store.RowCacheStats) uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "flock_row_cache_lookups_total", ConstLabels: prometheus.Labels{"cache": cache, "result": result},
			Help: "Lookups of the caches of posts and authors that feed pages read (result hit, or miss: read from the database, absent or changed).",
		}, func() float64 { return float64(v(db.RowCacheStats())) })
	}
	return []prometheus.Collector{
		counter("posts", "hit", func(s store.RowCacheStats) uint64 { return s.PostHits }),
		counter("posts", "miss", func(s store.RowCacheStats) uint64 { return s.PostMisses }),
		counter("authors", "hit", func(s store.RowCacheStats) uint64 { return s.AuthorHits }),
		counter("authors", "miss", func(s store.RowCacheStats) uint64 { return s.AuthorMisses }),
	}
}

// ready answers 200 when the database answers, 503 otherwise, and 503 from
// the moment shutdown begins, so that load balancers stop sending requests
// during the drain (see Serve).
func (a *App) ready(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if a.draining.Load() {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte("shutting down\n"))
		return
	}
	if err := a.db.Ping(ctx); err != nil {
		a.log.WarnContext(ctx, "not ready", "err", err)
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte("database unavailable\n"))
		return
	}
	_, _ = w.Write([]byte("ok\n"))
}

// dbChecker answers gRPC health checks: serving while the database answers,
// not serving from the moment shutdown begins.
type dbChecker struct{ a *App }

func (c dbChecker) Check(ctx context.Context, req *grpchealth.CheckRequest) (*grpchealth.CheckResponse, error) {
	if req.Service != "" && !strings.HasPrefix(req.Service, "flock.v1.") {
		return nil, connect.NewError(connect.CodeNotFound, nil)
	}
	if c.a.draining.Load() {
		return &grpchealth.CheckResponse{Status: grpchealth.StatusNotServing}, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := c.a.db.Ping(ctx); err != nil {
		return &grpchealth.CheckResponse{Status: grpchealth.StatusNotServing}, nil
	}
	return &grpchealth.CheckResponse{Status: grpchealth.StatusServing}, nil
}
