package client

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"connectrpc.com/connect"

	flockv1 "github.com/flock-social/flock/gen/go/flock/v1"
	"github.com/flock-social/flock/gen/go/flock/v1/flockv1connect"
)

// Login logs in with a username (any letter case) or, when it contains an
// @, an email address, and keeps the token pair for every later call. The
// OnTokens callback, when set, receives the pair.
//
// Returns CodeUnauthenticated for an unknown account or a wrong password,
// CodeFailedPrecondition when the email is not verified yet, and
// CodePermissionDenied when the account is suspended; check with
// connect.CodeOf.
func (c *Client) Login(ctx context.Context, usernameOrEmail, password string) (*flockv1.LoginResponse, error) {
	req := &flockv1.LoginRequest{Password: password}
	if strings.Contains(usernameOrEmail, "@") {
		req.Identifier = &flockv1.LoginRequest_Email{Email: usernameOrEmail}
	} else {
		req.Identifier = &flockv1.LoginRequest_Username{Username: usernameOrEmail}
	}
	res, err := c.Users.Login(ctx, connect.NewRequest(req))
	if err != nil {
		return nil, fmt.Errorf("login: %w", err)
	}
	c.auth.set(res.Msg.GetAccessToken(), res.Msg.GetRefreshToken())
	return res.Msg, nil
}

// Logout ends the session on the server (its access tokens stop working at
// once, and its open streams close) and forgets the tokens; OnTokens
// receives two empty strings. Without a refresh token it only forgets the
// access token. When the server cannot be reached the tokens are kept, so
// that Logout can be tried again.
func (c *Client) Logout(ctx context.Context) error {
	_, refresh := c.auth.tokens()
	if refresh != "" {
		_, err := c.Users.Logout(ctx, connect.NewRequest(&flockv1.LogoutRequest{RefreshToken: refresh}))
		if err != nil && connect.CodeOf(err) != connect.CodeUnauthenticated {
			return fmt.Errorf("logout: %w", err)
		}
	}
	c.auth.set("", "")
	return nil
}

// Refresh exchanges the refresh token for a new pair now, as the Client
// does by itself shortly before the access token expires and when the
// server refuses it. Concurrent refreshes, including the automatic ones,
// share one request: a refresh token is exchanged once, and presenting a
// used one again after the server's short reuse grace (30 s by default)
// ends the session.
//
// Returns CodeUnauthenticated when the Client holds no refresh token or the
// server refuses it (expired, used or revoked: the session is over, and
// the Client forgets its tokens, telling OnTokens).
func (c *Client) Refresh(ctx context.Context) error {
	access, _ := c.auth.tokens()
	if err := c.auth.renew(ctx, access); err != nil {
		return fmt.Errorf("refresh: %w", err)
	}
	return nil
}

// Tokens returns the token pair the Client holds now: after Login, the
// latest rotation, or empty strings after Logout.
func (c *Client) Tokens() (access, refresh string) { return c.auth.tokens() }

// OnTokens sets fn (replacing an earlier one) to receive every new token
// pair: after Login, after each refresh, and two empty strings when the
// session ends (Logout, or a refresh the server refused). Persist the pair
// there and pass it to WithTokens on the next start: the refresh token
// rotates on every refresh, so a stale copy is useless (and presenting it
// ends the session).
//
// fn runs synchronously, one call at a time, in the order of the changes,
// while other calls that need a refresh wait. It may call Tokens, but no
// RPC of this Client.
func (c *Client) OnTokens(fn func(access, refresh string)) {
	c.auth.cbMu.Lock()
	defer c.auth.cbMu.Unlock()
	c.auth.onTokens = fn
}

// session holds an account's token pair and renews it.
type session struct {
	users flockv1connect.UserServiceClient
	now   func() time.Time

	// cbMu orders token changes with their OnTokens calls. It is taken
	// before mu, never while holding mu.
	cbMu     sync.Mutex
	onTokens func(access, refresh string)

	mu       sync.Mutex
	access   string
	refresh  string
	renewAt  time.Time    // when to refresh ahead of expiry; zero when unknown
	expires  time.Time    // the access token's exp; zero when unknown
	inflight *refreshCall // the refresh under way, shared by all who need it
}

// refreshCall is one RefreshToken request; done closes when it ends.
type refreshCall struct {
	done chan struct{}
	err  error
}

// refreshTimeout bounds a refresh, which runs apart from the context of
// the call that started it: abandoning it halfway could leave the Client
// with a refresh token the server has already used.
const refreshTimeout = 30 * time.Second

// maxRefreshAhead is how long before expiry the access token is renewed,
// at most: a quarter of its lifetime when that is shorter.
const maxRefreshAhead = 30 * time.Second

// errNoRefreshToken is what a refresh without a refresh token returns.
var errNoRefreshToken = connect.NewError(connect.CodeUnauthenticated, errors.New("no refresh token: log in first"))

func newSession(access, refresh string) *session {
	s := &session{now: time.Now}
	s.store(access, refresh)
	return s
}

func (s *session) tokens() (access, refresh string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.access, s.refresh
}

func (s *session) canRefresh() bool {
	_, refresh := s.tokens()
	return refresh != ""
}

// set replaces the token pair and tells OnTokens.
func (s *session) set(access, refresh string) {
	s.replace(nil, access, refresh)
}

// replace sets the token pair, when from is nil or still the refresh token
// held, and tells OnTokens. It reports whether it did.
func (s *session) replace(from *string, access, refresh string) bool {
	s.cbMu.Lock()
	defer s.cbMu.Unlock()
	s.mu.Lock()
	if from != nil && *from != s.refresh {
		s.mu.Unlock()
		return false
	}
	s.store(access, refresh)
	s.mu.Unlock()
	if s.onTokens != nil {
		s.onTokens(access, refresh)
	}
	return true
}

// store sets the pair and when to renew it; the caller holds mu (or owns s).
func (s *session) store(access, refresh string) {
	s.access, s.refresh = access, refresh
	s.renewAt, s.expires = time.Time{}, time.Time{}
	if iat, exp, ok := jwtTimes(access); ok {
		ahead := maxRefreshAhead
		if life := exp.Sub(iat); !iat.IsZero() && life > 0 && life/4 < ahead {
			ahead = life / 4
		}
		s.renewAt, s.expires = exp.Add(-ahead), exp
	}
}

// current returns the access token to send: refreshed first when it is
// about to expire, or when only a refresh token is held. When that refresh
// fails, the old token is returned while it is still valid; once it has
// expired, the refresh's error is.
func (s *session) current(ctx context.Context) (string, error) {
	s.mu.Lock()
	access, refresh, renewAt, expires := s.access, s.refresh, s.renewAt, s.expires
	s.mu.Unlock()
	due := access == "" || (!renewAt.IsZero() && !s.now().Before(renewAt))
	if refresh == "" || !due {
		return access, nil
	}
	if err := s.renew(ctx, access); err != nil {
		if access != "" && s.now().Before(expires) {
			return access, nil
		}
		return "", fmt.Errorf("refresh access token: %w", err)
	}
	access, _ = s.tokens()
	return access, nil
}

// renew renews the token pair unless it changed since stale was the
// access token (another caller refreshed, or logged in, in the meantime).
// Concurrent callers share one request.
func (s *session) renew(ctx context.Context, stale string) error {
	s.mu.Lock()
	if s.access != stale {
		s.mu.Unlock()
		return nil
	}
	call := s.inflight
	if call == nil {
		if s.refresh == "" {
			s.mu.Unlock()
			return errNoRefreshToken
		}
		call = &refreshCall{done: make(chan struct{})}
		s.inflight = call
		go s.runRefresh(context.WithoutCancel(ctx), s.refresh, call)
	}
	s.mu.Unlock()
	select {
	case <-call.done:
		return call.err
	case <-ctx.Done():
		return contextError(ctx.Err())
	}
}

// contextError makes the error of a context that ended while waiting for
// a refresh a *connect.Error, as a call's own would be.
func contextError(err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return connect.NewError(connect.CodeDeadlineExceeded, err)
	}
	return connect.NewError(connect.CodeCanceled, err)
}

// runRefresh sends one RefreshToken request and stores its answer. A
// refusal ends the session: the tokens are forgotten, unless a Login
// replaced them meanwhile.
func (s *session) runRefresh(ctx context.Context, refresh string, call *refreshCall) {
	ctx, cancel := context.WithTimeout(ctx, refreshTimeout)
	defer cancel()
	res, err := s.users.RefreshToken(ctx, connect.NewRequest(&flockv1.RefreshTokenRequest{RefreshToken: refresh}))
	switch {
	case err == nil:
		s.replace(&refresh, res.Msg.GetAccessToken(), res.Msg.GetRefreshToken())
	case connect.CodeOf(err) == connect.CodeUnauthenticated:
		s.replace(&refresh, "", "")
	}
	s.mu.Lock()
	s.inflight = nil
	call.err = err
	close(call.done)
	s.mu.Unlock()
}

// refreshFailed is the error of a call whose token was refused and could
// not be renewed. It has the refusal's code when the refresh was refused
// too (the session is over), else the refresh's (CodeUnavailable for the
// network, say), so that callers can tell logging in again from retrying.
func refreshFailed(callErr, refreshErr error) error {
	if sessionOver(refreshErr) {
		return fmt.Errorf("%w (refreshing the access token failed: %v)", callErr, refreshErr)
	}
	return fmt.Errorf("refresh access token: %w (after the server refused the call: %v)", refreshErr, callErr)
}

// sessionOver reports whether a refresh failed because the server refused
// it, or there was no refresh token: a retry cannot help.
func sessionOver(refreshErr error) bool {
	code := connect.CodeOf(refreshErr)
	return code == connect.CodeUnauthenticated || code == connect.CodePermissionDenied
}

// jwtTimes reads the iat and exp claims of a JWT without verifying it: the
// token is the Client's own, and only the server need trust it. iat is
// zero when absent; ok is false when exp cannot be read.
func jwtTimes(token string) (iat, exp time.Time, ok bool) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return time.Time{}, time.Time{}, false
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return time.Time{}, time.Time{}, false
	}
	var claims struct {
		IssuedAt  float64 `json:"iat"`
		ExpiresAt float64 `json:"exp"`
	}
	if json.Unmarshal(payload, &claims) != nil || claims.ExpiresAt <= 0 {
		return time.Time{}, time.Time{}, false
	}
	if claims.IssuedAt > 0 {
		iat = time.UnixMilli(int64(claims.IssuedAt * 1000))
	}
	return iat, time.UnixMilli(int64(claims.ExpiresAt * 1000)), true
}
