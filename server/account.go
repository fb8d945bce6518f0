package server

import (
	"context"
	"net"

	"connectrpc.com/connect"

	flockv1 "github.com/flock-social/flock/gen/go/flock/v1"
	"github.com/flock-social/flock/internal/account"
	"github.com/flock-social/flock/internal/store"
)

// Managing an account (api-contract rows A1-A7): the RPCs of userServer
// that change a password or an email, list and end sessions, and delete
// the account.

// requestClient is where a request comes from: its User-Agent and the
// client address (the first untrusted X-Forwarded-For hop behind a trusted
// proxy; withClientIP has already put it in the peer address).
func requestClient(peer connect.Peer, header interface{ Get(string) string }) account.Client {
	ip, _, err := net.SplitHostPort(peer.Addr)
	if err != nil {
		ip = peer.Addr
	}
	return account.Client{UserAgent: header.Get("User-Agent"), IP: ip}
}

func (s *userServer) ChangePassword(ctx context.Context, req *connect.Request[flockv1.ChangePasswordRequest]) (*connect.Response[flockv1.ChangePasswordResponse], error) {
	if err := s.accounts.ChangePassword(ctx, principal(ctx), req.Msg.GetCurrentPassword(), req.Msg.GetNewPassword()); err != nil {
		return nil, err
	}
	return connect.NewResponse(&flockv1.ChangePasswordResponse{}), nil
}

func (s *userServer) ListSessions(ctx context.Context, req *connect.Request[flockv1.ListSessionsRequest]) (*connect.Response[flockv1.ListSessionsResponse], error) {
	p := principal(ctx)
	list, err := s.accounts.ListSessions(ctx, p, req.Msg.GetPageSize(), req.Msg.GetPageToken())
	if err != nil {
		return nil, err
	}
	out := make([]*flockv1.Session, len(list.Sessions))
	for i := range list.Sessions {
		out[i] = sessionMessage(&list.Sessions[i], p.SessionID)
	}
	return connect.NewResponse(&flockv1.ListSessionsResponse{Sessions: out, NextPageToken: list.NextPageToken}), nil
}

func sessionMessage(s *store.Session, current string) *flockv1.Session {
	last := s.CreatedAt
	if s.LastUsedAt != nil && s.LastUsedAt.After(last) {
		last = *s.LastUsedAt
	}
	return &flockv1.Session{
		Id:         s.ID,
		CreatedAt:  timestamp(s.CreatedAt),
		LastUsedAt: timestamp(last),
		UserAgent:  s.UserAgent,
		Ip:         s.IP,
		Current:    s.ID == current,
		ExpiresAt:  timestamp(s.ExpiresAt),
	}
}

func (s *userServer) RevokeSession(ctx context.Context, req *connect.Request[flockv1.RevokeSessionRequest]) (*connect.Response[flockv1.RevokeSessionResponse], error) {
	if err := s.accounts.RevokeSession(ctx, principal(ctx), req.Msg.GetSessionId()); err != nil {
		return nil, err
	}
	return connect.NewResponse(&flockv1.RevokeSessionResponse{}), nil
}

func (s *userServer) RequestPasswordReset(ctx context.Context, req *connect.Request[flockv1.RequestPasswordResetRequest]) (*connect.Response[flockv1.RequestPasswordResetResponse], error) {
	if err := s.accounts.RequestPasswordReset(ctx, req.Msg.GetEmail()); err != nil {
		return nil, err
	}
	return connect.NewResponse(&flockv1.RequestPasswordResetResponse{}), nil
}

func (s *userServer) ResetPassword(ctx context.Context, req *connect.Request[flockv1.ResetPasswordRequest]) (*connect.Response[flockv1.ResetPasswordResponse], error) {
	if err := s.accounts.ResetPassword(ctx, req.Msg.GetToken(), req.Msg.GetNewPassword()); err != nil {
		return nil, err
	}
	return connect.NewResponse(&flockv1.ResetPasswordResponse{}), nil
}

func (s *userServer) ChangeEmail(ctx context.Context, req *connect.Request[flockv1.ChangeEmailRequest]) (*connect.Response[flockv1.ChangeEmailResponse], error) {
	if err := s.accounts.ChangeEmail(ctx, principal(ctx), req.Msg.GetNewEmail(), req.Msg.GetCurrentPassword()); err != nil {
		return nil, err
	}
	return connect.NewResponse(&flockv1.ChangeEmailResponse{}), nil
}
