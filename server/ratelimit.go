package server

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"

	"connectrpc.com/connect"

	flockv1 "github.com/flock-social/flock/gen/go/flock/v1"
	"github.com/flock-social/flock/gen/go/flock/v1/flockv1connect"
	"github.com/flock-social/flock/internal/account/emailaddr"
	"github.com/flock-social/flock/internal/ratelimit"
)

// rateLimitedActions maps procedures onto the actions of ratelimit.Rules.
// UpdateMe is limited only when it uploads a picture (rateLimitAction).
var rateLimitedActions = map[string]string{
	flockv1connect.UserServiceLoginProcedure:                "login",
	flockv1connect.UserServiceRegisterProcedure:             "register",
	flockv1connect.UserServiceResendVerificationProcedure:   "resend_verification",
	flockv1connect.UserServiceRefreshTokenProcedure:         "refresh",
	flockv1connect.PostServiceCreatePostProcedure:           "post",
	flockv1connect.PostServiceCreateCommentProcedure:        "comment",
	flockv1connect.UserServiceSearchUsersProcedure:          "search",
	flockv1connect.PostServiceSearchPostsProcedure:          "search",
	flockv1connect.GroupServiceSearchGroupsProcedure:        "search",
	flockv1connect.UserServiceUpdateMeProcedure:             "avatar",
	flockv1connect.UserServiceChangePasswordProcedure:       "password",
	flockv1connect.UserServiceDeleteAccountProcedure:        "password",
	flockv1connect.UserServiceChangeEmailProcedure:          "change_email",
	flockv1connect.UserServiceRequestPasswordResetProcedure: "password_reset",
	flockv1connect.UserServiceResetPasswordProcedure:        "password_reset_confirm",
}

// rateLimitInterceptor applies ratelimit.Rules per account and per client IP
// (IPv6 per /64; the client behind a trusted proxy, see withClientIP). It
// runs after authentication, so signed-in actions count against the
// account; the actions of signing in (login, register, resend) count
// against the identity the request names, whatever token rides along
// (security.md property 24). A refusal is resource_exhausted (HTTP 429)
// with a plain message, Retry-After and RateLimit-* headers on every
// transport; answers that pass carry the RateLimit-* headers too. When the
// limiter itself fails (Redis away), the request goes through: losing the
// limiter must not stop writes.
type rateLimitInterceptor struct {
	limiter ratelimit.Limiter
	log     *slog.Logger
	// loginIdentity names the account a login is against
	// (account.Service.LoginIdentity).
	loginIdentity func(ctx context.Context, login string) string
}

func (i rateLimitInterceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		procedure := req.Spec().Procedure
		action, ok := rateLimitAction(procedure, req.Any())
		if !ok {
			return next(ctx, req)
		}
		res, err := ratelimit.CheckAll(ctx, i.limiter, action, i.accounts(ctx, req.Any()), req.Peer().Addr)
		if err != nil {
			i.log.WarnContext(ctx, "rate limiter unavailable; letting the request through", "action", action, "err", err)
			return next(ctx, req)
		}
		if !res.Allowed {
			return nil, rateLimitError(ctx, i.log, procedure, res)
		}
		out, err := next(ctx, req)
		if out != nil {
			for k, v := range res.Headers() {
				out.Header()[k] = v
			}
		}
		return out, err
	}
}

func (rateLimitInterceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (rateLimitInterceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return next
}

// rateLimitError is the refusal of a denied res: the domain error of
// res.Err converted as every other domain error is (its plain message
// only), with the Retry-After and RateLimit-* headers.
func rateLimitError(ctx context.Context, log *slog.Logger, procedure string, res ratelimit.Result) error {
	err := toConnectError(ctx, log, connect.Spec{Procedure: procedure}, res.Err())
	var cerr *connect.Error
	if errors.As(err, &cerr) {
		for k, v := range res.Headers() {
			cerr.Meta()[k] = v
		}
	}
	return err
}

// rateLimitAction is the action of ratelimit.Rules that a call of
// procedure with msg counts against, if any. UpdateMe counts as "avatar"
// only when it uploads a picture (decoding one is the costly part; removing
// the picture and other profile edits are not limited).
func rateLimitAction(procedure string, msg any) (string, bool) {
	action, ok := rateLimitedActions[procedure]
	if !ok {
		return "", false
	}
	if action == "avatar" {
		m, isUpdate := msg.(*flockv1.UpdateMeRequest)
		return action, isUpdate && uploadsAvatar(m)
	}
	return action, true
}

// uploadsAvatar reports whether m sets a new picture: non-empty avatar
// bytes that UpdateMe applies (named in update_mask when there is one).
func uploadsAvatar(m *flockv1.UpdateMeRequest) bool {
	if len(m.GetAvatar()) == 0 {
		return false
	}
	paths := m.GetUpdateMask().GetPaths()
	return len(paths) == 0 || slices.Contains(paths, "avatar")
}

// accounts are whom an action counts against, besides the
// client's IP. The actions that sign in or create an account count against
// the identity the request names, normalised so that letter case and
// spaces do not buy a fresh budget, and never against the token that may
// ride along: else every account an attacker holds would buy more guesses
// against a victim. Login names an account by its username or its email,
// and both count against that one account; ResendVerification names an
// email, Register both its username and its email. Every other action
// counts against the signed-in caller, or only the IP when there is none.
func (i rateLimitInterceptor) accounts(ctx context.Context, msg any) []string {
	switch m := msg.(type) {
	case *flockv1.LoginRequest:
		login := m.GetUsername()
		if m.GetEmail() != "" {
			login = normalizedEmail(m.GetEmail())
		}
		return []string{i.loginIdentity(ctx, login)}
	case *flockv1.RegisterRequest:
		return []string{normalizedUsername(m.GetUsername()), normalizedEmail(m.GetEmail())}
	case *flockv1.ResendVerificationRequest:
		return []string{normalizedEmail(m.GetEmail())}
	case *flockv1.RequestPasswordResetRequest:
		return []string{normalizedEmail(m.GetEmail())}
	case *flockv1.ResetPasswordRequest:
		return nil // the token names the account; only the IP counts
	}
	if p := principal(ctx); p != nil {
		return []string{p.UserID}
	}
	return nil
}

// normalizedUsername is the rate-limit identity of a username: usernames
// are unique regardless of letter case.
func normalizedUsername(s string) string {
	return strings.ToLower(strings.TrimSpace(s))
}

// normalizedEmail is the rate-limit identity of an email: the address as
// the account service stores it, or, when it is not a valid address (the
// request then fails anyway), trimmed and lower-cased.
func normalizedEmail(s string) string {
	if e, err := emailaddr.Normalize(s); err == nil {
		return e
	}
	return strings.ToLower(strings.TrimSpace(s))
}
