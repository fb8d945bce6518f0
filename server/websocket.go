package server

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/coder/websocket"
	"google.golang.org/protobuf/proto"

	"github.com/flock-social/flock"
	flockv1 "github.com/flock-social/flock/gen/go/flock/v1"
	"github.com/flock-social/flock/internal/account"
	"github.com/flock-social/flock/internal/notify"
)

// WebSocket timings: a ping every wsPing keeps idle connections open
// through proxies and finds dead peers; a write that takes longer than
// wsWriteTimeout (a stalled client) closes the connection.
const (
	wsPing         = 30 * time.Second
	wsWriteTimeout = 10 * time.Second
	// wsProtocol is the subprotocol the server selects when a browser
	// offers it beside "bearer.<token>".
	wsProtocol = "flock.v1"
)

// withWebSockets serves the two live paths as WebSockets when the request
// is an upgrade; a plain GET goes on to the REST list (vanguard). Events
// arrive converted (App.prepareNotifications, App.prepareActivities).
func (a *App) withWebSockets(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			next.ServeHTTP(w, r)
			return
		}
		switch strings.TrimRight(r.URL.Path, "/") {
		case "/api/notifications":
			a.serveWebSocket(w, r, func(ctx context.Context, p *account.Principal, since string, ready func(since string) error, send func(proto.Message) error) error {
				return a.events.StreamNotifications(ctx, p.UserID, p.SessionID, since, ready, func(e notify.Event) error {
					n, err := eventMessage[*flockv1.Notification](e)
					if err != nil {
						return err
					}
					return send(n)
				})
			})
		case "/api/activity-log":
			a.serveWebSocket(w, r, func(ctx context.Context, p *account.Principal, since string, ready func(since string) error, send func(proto.Message) error) error {
				return a.events.StreamActivities(ctx, p.UserID, p.SessionID, since, ready, func(e notify.Event) error {
					act, err := eventMessage[*flockv1.Activity](e)
					if err != nil {
						return err
					}
					return send(act)
				})
			})
		default:
			next.ServeHTTP(w, r)
		}
	})
}

// wsToken finds the access token of a WebSocket request: the subprotocol
// "bearer.<token>" (browsers cannot set headers), ?access_token=, or an
// Authorization header.
func wsToken(r *http.Request) (token, protocol string) {
	for _, h := range r.Header.Values("Sec-WebSocket-Protocol") {
		for _, p := range strings.Split(h, ",") {
			if p = strings.TrimSpace(p); strings.HasPrefix(p, "bearer.") {
				return strings.TrimPrefix(p, "bearer."), p
			}
		}
	}
	if t := r.URL.Query().Get("access_token"); t != "" {
		return t, ""
	}
	t, _ := bearerToken(r.Header.Get("Authorization"))
	return t, ""
}

type streamFunc func(ctx context.Context, p *account.Principal, since string, ready func(since string) error, send func(proto.Message) error) error

// serveWebSocket authenticates, upgrades, and runs run until it ends; each
// event is one text message with the JSON of the same message the list
// returns. The close code says why a stream ended: 1008 when the session
// ended, 1013 when the client fell behind, 1001 when the server restarts
// (reconnect with ?since_id=), 1011 on an internal error.
func (a *App) serveWebSocket(w http.ResponseWriter, r *http.Request, run streamFunc) {
	a.sockets.Add(1)
	defer a.sockets.Done()
	token, protocol := wsToken(r)
	if token == "" {
		writeRESTError(w, flock.Errorf(flock.EUNAUTHORIZED, "missing access token: offer the subprotocol bearer.<accessToken>, or add ?access_token=<accessToken>"))
		return
	}
	p, err := a.accounts.Authenticate(r.Context(), token)
	if err != nil {
		writeRESTError(w, err)
		return
	}
	since := r.URL.Query().Get("since_id")
	if since == "" {
		since = r.URL.Query().Get("sinceId")
	}
	opts := &websocket.AcceptOptions{Subprotocols: []string{wsProtocol}}
	if protocol != "" {
		opts.Subprotocols = append(opts.Subprotocols, protocol)
	}
	if len(a.cfg.CORSOrigins) == 1 && a.cfg.CORSOrigins[0] == "*" {
		// Tokens are never cookies, so another site's page cannot ride on
		// a user's session: any origin may connect, as for CORS.
		opts.InsecureSkipVerify = true
	} else {
		opts.OriginPatterns = hostPatterns(a.cfg.CORSOrigins)
	}
	// The upgrade happens in ready, once the stream listens: a client whose
	// handshake completed misses nothing after it. A hijacked connection's
	// request context does not end with the connection, so CloseRead's does.
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	var conn *websocket.Conn
	ready := func(string) error {
		c, err := websocket.Accept(w, r, opts)
		if err != nil {
			return errAccept // Accept has answered the client
		}
		conn = c
		go func() {
			<-conn.CloseRead(ctx).Done()
			cancel()
		}()
		go a.heartbeat(ctx, cancel, conn)
		return nil
	}
	err = run(ctx, p, since, ready, func(m proto.Message) error {
		b, err := marshalJSON(m)
		if err != nil {
			return err
		}
		wctx, wcancel := context.WithTimeout(ctx, wsWriteTimeout)
		defer wcancel()
		return conn.Write(wctx, websocket.MessageText, b)
	})
	if conn == nil {
		if err != nil && !errors.Is(err, errAccept) {
			writeRESTError(w, err) // refused before the upgrade
		}
		return
	}
	defer conn.CloseNow()
	code, reason := websocket.StatusNormalClosure, ""
	switch {
	case err == nil:
	case errors.Is(err, notify.ErrSessionEnded):
		code, reason = websocket.StatusPolicyViolation, flock.ErrorMessage(err)
	case errors.Is(err, notify.ErrFellBehind):
		code, reason = websocket.StatusTryAgainLater, "fell behind; reconnect with since_id"
	case errors.Is(err, notify.ErrShuttingDown):
		code, reason = websocket.StatusGoingAway, "server restarting; reconnect with since_id"
	case flock.ErrorCode(err) == flock.EINVALID:
		code, reason = websocket.StatusPolicyViolation, flock.ErrorMessage(err)
	case ctx.Err() != nil, errors.Is(err, net.ErrClosed):
		return // the client left or stopped answering pings
	case errors.Is(err, context.DeadlineExceeded):
		// A write waited wsWriteTimeout: the client stopped reading.
		code, reason = websocket.StatusTryAgainLater, "fell behind; reconnect with since_id"
	default:
		a.log.ErrorContext(ctx, "websocket stream", "err", err)
		code, reason = websocket.StatusInternalError, "internal error"
	}
	conn.Close(code, reason)
}

var errAccept = errors.New("websocket upgrade failed")

// heartbeat pings the peer every wsPing and ends the stream (cancel) when a
// ping is not answered within wsWriteTimeout.
func (a *App) heartbeat(ctx context.Context, cancel context.CancelFunc, conn *websocket.Conn) {
	t := time.NewTicker(wsPing)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			pctx, pcancel := context.WithTimeout(ctx, wsWriteTimeout)
			err := conn.Ping(pctx)
			pcancel()
			if err != nil {
				cancel()
				return
			}
		}
	}
}

// hostPatterns turns CORS origins ("https://app.example") into the host
// patterns the WebSocket origin check takes.
func hostPatterns(origins []string) []string {
	out := make([]string, 0, len(origins))
	for _, o := range origins {
		if i := strings.Index(o, "://"); i >= 0 {
			o = o[i+3:]
		}
		out = append(out, o)
	}
	return out
}
