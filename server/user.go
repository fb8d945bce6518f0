package server

import (
	"context"
	"slices"

	"connectrpc.com/connect"

	flockv1 "github.com/flock-social/flock/gen/go/flock/v1"
	"github.com/flock-social/flock/gen/go/flock/v1/flockv1connect"
	"github.com/flock-social/flock/internal/account"
)

// userServer serves flock.v1.UserService. RPCs of later features answer
// Unimplemented through the embedded handler until they land.
type userServer struct {
	flockv1connect.UnimplementedUserServiceHandler
	accounts *account.Service
	conv     converter
}

var _ flockv1connect.UserServiceHandler = (*userServer)(nil)

func (s *userServer) Register(ctx context.Context, req *connect.Request[flockv1.RegisterRequest]) (*connect.Response[flockv1.RegisterResponse], error) {
	m := req.Msg
	u, err := s.accounts.Register(ctx, account.RegisterInput{
		Username: m.GetUsername(), Email: m.GetEmail(), Password: m.GetPassword(), FullName: m.GetFullName(),
	})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&flockv1.RegisterResponse{User: s.conv.user(u, true)}), nil
}

func (s *userServer) VerifyEmail(ctx context.Context, req *connect.Request[flockv1.VerifyEmailRequest]) (*connect.Response[flockv1.VerifyEmailResponse], error) {
	u, err := s.accounts.VerifyEmail(ctx, req.Msg.GetToken())
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&flockv1.VerifyEmailResponse{User: s.conv.user(u, true)}), nil
}

func (s *userServer) ResendVerification(ctx context.Context, req *connect.Request[flockv1.ResendVerificationRequest]) (*connect.Response[flockv1.ResendVerificationResponse], error) {
	if err := s.accounts.ResendVerification(ctx, req.Msg.GetEmail()); err != nil {
		return nil, err
	}
	return connect.NewResponse(&flockv1.ResendVerificationResponse{}), nil
}

func (s *userServer) Login(ctx context.Context, req *connect.Request[flockv1.LoginRequest]) (*connect.Response[flockv1.LoginResponse], error) {
	login := req.Msg.GetUsername()
	if login == "" {
		login = req.Msg.GetEmail()
	}
	pair, err := s.accounts.Login(ctx, login, req.Msg.GetPassword())
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&flockv1.LoginResponse{
		AccessToken:  pair.AccessToken,
		RefreshToken: pair.RefreshToken,
		TokenType:    "Bearer",
		ExpiresIn:    int32(pair.ExpiresIn.Seconds()),
		User:         s.conv.user(pair.User, true),
	}), nil
}

func (s *userServer) RefreshToken(ctx context.Context, req *connect.Request[flockv1.RefreshTokenRequest]) (*connect.Response[flockv1.RefreshTokenResponse], error) {
	pair, err := s.accounts.Refresh(ctx, req.Msg.GetRefreshToken())
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&flockv1.RefreshTokenResponse{
		AccessToken:  pair.AccessToken,
		RefreshToken: pair.RefreshToken,
		TokenType:    "Bearer",
		ExpiresIn:    int32(pair.ExpiresIn.Seconds()),
		User:         s.conv.user(pair.User, true),
	}), nil
}

func (s *userServer) Logout(ctx context.Context, req *connect.Request[flockv1.LogoutRequest]) (*connect.Response[flockv1.LogoutResponse], error) {
	if err := s.accounts.Logout(ctx, req.Msg.GetRefreshToken()); err != nil {
		return nil, err
	}
	return connect.NewResponse(&flockv1.LogoutResponse{}), nil
}

func (s *userServer) GetMe(ctx context.Context, _ *connect.Request[flockv1.GetMeRequest]) (*connect.Response[flockv1.GetMeResponse], error) {
	u, err := s.accounts.GetMe(ctx, principal(ctx))
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&flockv1.GetMeResponse{User: s.conv.user(u, true)}), nil
}

func (s *userServer) UpdateMe(ctx context.Context, req *connect.Request[flockv1.UpdateMeRequest]) (*connect.Response[flockv1.UpdateMeResponse], error) {
	m := req.Msg
	var upd account.ProfileUpdate
	if paths := m.GetUpdateMask().GetPaths(); len(paths) > 0 {
		// With a mask, exactly the named fields change (absent ones become empty).
		for _, p := range paths {
			switch p {
			case "full_name", "fullName":
				upd.FullName = new(m.GetFullName())
			case "bio":
				upd.Bio = new(m.GetBio())
			case "avatar":
				upd.Avatar = new(m.GetAvatar())
			case "interests":
				upd.Interests = new(slices.Clone(m.GetInterests()))
			default:
				return nil, connect.NewError(connect.CodeInvalidArgument,
					errUnknownMaskPath(p))
			}
		}
	} else {
		if m.FullName != nil {
			upd.FullName = m.FullName
		}
		if m.Bio != nil {
			upd.Bio = m.Bio
		}
		if m.Avatar != nil {
			upd.Avatar = &m.Avatar
		}
		if len(m.GetInterests()) > 0 {
			upd.Interests = &m.Interests
		}
	}
	u, err := s.accounts.UpdateMe(ctx, principal(ctx), upd)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&flockv1.UpdateMeResponse{User: s.conv.user(u, true)}), nil
}

func (s *userServer) GetUser(ctx context.Context, req *connect.Request[flockv1.GetUserRequest]) (*connect.Response[flockv1.GetUserResponse], error) {
	p := principal(ctx)
	u, err := s.accounts.GetUser(ctx, p, req.Msg.GetUserId())
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&flockv1.GetUserResponse{User: s.conv.user(u, u.ID == p.UserID)}), nil
}

type errUnknownMaskPath string

func (e errUnknownMaskPath) Error() string {
	return "update_mask: unknown field " + string(e) + "; use full_name, bio, avatar or interests"
}
