package server

import (
	"context"
	"errors"
	"log/slog"
	"strings"

	"connectrpc.com/connect"

	flockv1 "github.com/flock-social/flock/gen/go/flock/v1"
	"github.com/flock-social/flock/gen/go/flock/v1/flockv1connect"
	"github.com/flock-social/flock/internal/ratelimit"
)

// rateLimitedActions maps procedures onto the actions of ratelimit.Rules.
var rateLimitedActions = map[string]string{
	flockv1connect.UserServiceLoginProcedure:              "login",
	flockv1connect.UserServiceRegisterProcedure:           "register",
	flockv1connect.UserServiceResendVerificationProcedure: "resend_verification",
	flockv1connect.UserServiceRefreshTokenProcedure:       "refresh",
	flockv1connect.PostServiceCreatePostProcedure:         "post",
	flockv1connect.PostServiceCreateCommentProcedure:      "comment",
	flockv1connect.UserServiceSearchUsersProcedure:        "search",
	flockv1connect.PostServiceSearchPostsProcedure:        "search",
}

// rateLimitInterceptor applies ratelimit.Rules per account and per client IP
// (IPv6 per /64). It runs after authentication, so signed-in actions count
// against the account; login and resend count against the identifier they
// name. A refusal is resource_exhausted (HTTP 429) with Retry-After and
// RateLimit-* headers on every transport; answers that pass carry the
// RateLimit-* headers too. When the limiter itself fails (Redis away), the
// request goes through: losing the limiter must not stop writes.
type rateLimitInterceptor struct {
	limiter ratelimit.Limiter
	log     *slog.Logger
}

func (i rateLimitInterceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		action, ok := rateLimitedActions[req.Spec().Procedure]
		if !ok {
			return next(ctx, req)
		}
		res, err := ratelimit.Check(ctx, i.limiter, action, rateLimitAccount(ctx, req.Any()), req.Peer().Addr)
		if err != nil {
			i.log.WarnContext(ctx, "rate limiter unavailable; letting the request through", "action", action, "err", err)
			return next(ctx, req)
		}
		if !res.Allowed {
			cerr := connect.NewError(connect.CodeResourceExhausted, errors.New(res.Err().Error()))
			for k, v := range res.Headers() {
				cerr.Meta()[k] = v
			}
			return nil, cerr
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

// rateLimitAccount is whom an action counts against: the signed-in caller,
// or the identifier a login or resend names (normalised, so that letter
// case does not buy a fresh budget).
func rateLimitAccount(ctx context.Context, msg any) string {
	if p := principal(ctx); p != nil {
		return p.UserID
	}
	switch m := msg.(type) {
	case *flockv1.LoginRequest:
		return strings.ToLower(strings.TrimSpace(m.GetUsername() + m.GetEmail()))
	case *flockv1.ResendVerificationRequest:
		return strings.ToLower(strings.TrimSpace(m.GetEmail()))
	}
	return ""
}
