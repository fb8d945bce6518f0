package client

import (
	"context"
	"net/http"
	"net/url"
	"strings"

	"connectrpc.com/connect"

	"github.com/flock-social/flock/gen/go/flock/v1/flockv1connect"
)

// Client calls one Flock server as one account. Its service fields are the
// generated clients; every call they make carries the account's access
// token, which the Client renews with the refresh token as needed (see
// Login). A Client is safe for concurrent use.
type Client struct {
	// Users is flock.v1.UserService: accounts, profiles, follows, blocks.
	Users flockv1connect.UserServiceClient
	// Posts is flock.v1.PostService: posts, comments, likes, feeds, videos.
	Posts flockv1connect.PostServiceClient
	// Groups is flock.v1.GroupService: groups, members, invitations.
	Groups flockv1connect.GroupServiceClient
	// Notifications is flock.v1.NotificationService; SubscribeNotifications
	// wraps its Subscribe stream with reconnection.
	Notifications flockv1connect.NotificationServiceClient
	// Activity is flock.v1.ActivityService; SubscribeActivity wraps its
	// Subscribe stream with reconnection.
	Activity flockv1connect.ActivityServiceClient
	// Moderation is flock.v1.ModerationService, for staff accounts only
	// (others get CodePermissionDenied).
	Moderation flockv1connect.ModerationServiceClient

	baseURL    string
	httpClient *http.Client
	auth       *session
}

// Option configures New.
type Option func(*options)

type options struct {
	httpClient      *http.Client
	protocol        connect.ClientOption // nil: the Connect protocol
	grpc            bool
	access, refresh string
}

// WithHTTPClient makes the Client send every request, RPCs and uploads,
// through hc. With WithGRPC, hc must speak HTTP/2: over https:// the
// default transport negotiates it; over http:// it must be configured for
// cleartext HTTP/2 (h2c; see http.Protocols.SetUnencryptedHTTP2). hc should
// have no overall Timeout, which would cut long-lived streams; bound calls
// with their context instead.
func WithHTTPClient(hc *http.Client) Option {
	return func(o *options) { o.httpClient = hc }
}

// WithGRPC makes the Client speak gRPC instead of the Connect protocol.
// Without WithHTTPClient, it uses an HTTP client that speaks cleartext
// HTTP/2 to http:// URLs and HTTP/2 over TLS to https:// ones.
func WithGRPC() Option {
	return func(o *options) { o.protocol, o.grpc = connect.WithGRPC(), true }
}

// WithGRPCWeb makes the Client speak gRPC-Web instead of the Connect
// protocol; it works over HTTP/1.1 as well as HTTP/2.
func WithGRPCWeb() Option {
	return func(o *options) { o.protocol, o.grpc = connect.WithGRPCWeb(), false }
}

// WithTokens starts the Client with a token pair kept from an earlier
// Login (see OnTokens), so it need not log in again. Either may be empty:
// without a refresh token the access token is used until it is rejected;
// with only a refresh token the first call refreshes.
func WithTokens(access, refresh string) Option {
	return func(o *options) { o.access, o.refresh = access, refresh }
}

// New returns a Client of the Flock server at baseURL (for example
// "http://127.0.0.1:8080"). It makes no request: log in with Login, or
// start from saved tokens with WithTokens. By default it speaks the Connect
// protocol (binary Protobuf) through http.DefaultClient.
func New(baseURL string, opts ...Option) *Client {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	baseURL = strings.TrimRight(baseURL, "/")
	hc := o.httpClient
	if hc == nil {
		hc = defaultHTTPClient(baseURL, o.grpc)
	}
	c := &Client{baseURL: baseURL, httpClient: hc}
	var copts []connect.ClientOption
	if o.protocol != nil {
		copts = append(copts, o.protocol)
	}
	// The Users client the session refreshes with carries the interceptor
	// too: it lets public procedures through untouched.
	c.auth = newSession(o.access, o.refresh)
	copts = append(copts, connect.WithInterceptors(authInterceptor{c.auth}))
	c.Users = flockv1connect.NewUserServiceClient(hc, baseURL, copts...)
	c.Posts = flockv1connect.NewPostServiceClient(hc, baseURL, copts...)
	c.Groups = flockv1connect.NewGroupServiceClient(hc, baseURL, copts...)
	c.Notifications = flockv1connect.NewNotificationServiceClient(hc, baseURL, copts...)
	c.Activity = flockv1connect.NewActivityServiceClient(hc, baseURL, copts...)
	c.Moderation = flockv1connect.NewModerationServiceClient(hc, baseURL, copts...)
	c.auth.users = c.Users
	return c
}

// defaultHTTPClient is http.DefaultClient, except for gRPC to an http://
// URL, which needs cleartext HTTP/2 with prior knowledge (h2c). Over
// https://, the default transport negotiates HTTP/2 through TLS.
func defaultHTTPClient(baseURL string, grpc bool) *http.Client {
	if u, err := url.Parse(baseURL); !grpc || err != nil || u.Scheme != "http" {
		return http.DefaultClient
	}
	var protocols http.Protocols
	protocols.SetUnencryptedHTTP2(true)
	return &http.Client{Transport: &http.Transport{Protocols: &protocols, Proxy: http.ProxyFromEnvironment}}
}

// publicProcedures are the RPCs that take no access token. They are sent
// without one and never trigger a refresh (RefreshToken itself is one).
var publicProcedures = map[string]bool{
	flockv1connect.UserServiceRegisterProcedure:             true,
	flockv1connect.UserServiceVerifyEmailProcedure:          true,
	flockv1connect.UserServiceResendVerificationProcedure:   true,
	flockv1connect.UserServiceLoginProcedure:                true,
	flockv1connect.UserServiceRefreshTokenProcedure:         true,
	flockv1connect.UserServiceLogoutProcedure:               true,
	flockv1connect.UserServiceRequestPasswordResetProcedure: true,
	flockv1connect.UserServiceResetPasswordProcedure:        true,
}

// authInterceptor puts the session's access token on every call but the
// public ones. A unary call the server answers with CodeUnauthenticated is
// retried once after a refresh; streams are renewed by the Subscribe
// helpers, which see the error only once the stream has started.
type authInterceptor struct{ s *session }

var _ connect.Interceptor = authInterceptor{}

func (i authInterceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		if publicProcedures[req.Spec().Procedure] {
			return next(ctx, req)
		}
		access, err := i.s.current(ctx)
		if err != nil {
			return nil, err
		}
		if access == "" {
			return next(ctx, req) // not logged in: the caller's own header, if any
		}
		setBearer(req.Header(), access)
		res, err := next(ctx, req)
		if connect.CodeOf(err) != connect.CodeUnauthenticated || !i.s.canRefresh() {
			return res, err
		}
		if rerr := i.s.renew(ctx, access); rerr != nil {
			return nil, refreshFailed(err, rerr)
		}
		access, _ = i.s.tokens()
		setBearer(req.Header(), access)
		return next(ctx, req)
	}
}

func (i authInterceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return func(ctx context.Context, spec connect.Spec) connect.StreamingClientConn {
		conn := next(ctx, spec)
		if publicProcedures[spec.Procedure] {
			return conn
		}
		// A failed proactive refresh leaves the old token, which the
		// server then refuses: the Subscribe helpers refresh again.
		access, err := i.s.current(ctx)
		if err != nil {
			access, _ = i.s.tokens()
		}
		if used, ok := ctx.Value(usedTokenKey{}).(*string); ok {
			*used = access
		}
		if access != "" {
			setBearer(conn.RequestHeader(), access)
		}
		return conn
	}
}

func (authInterceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return next
}

func setBearer(h http.Header, access string) { h.Set("Authorization", "Bearer "+access) }

// usedTokenKey carries a *string in which the interceptor records the
// access token a stream was opened with, so that the Subscribe helpers
// refresh only when that very token was refused.
type usedTokenKey struct{}
