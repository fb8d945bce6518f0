package server

import (
	"context"
	"slices"

	"connectrpc.com/connect"

	flockv1 "github.com/flock-social/flock/gen/go/flock/v1"
	"github.com/flock-social/flock/gen/go/flock/v1/flockv1connect"
	"github.com/flock-social/flock/internal/account"
	"github.com/flock-social/flock/internal/post"
	"github.com/flock-social/flock/internal/social"
)

// userServer serves flock.v1.UserService. RPCs of later features answer
// Unimplemented through the embedded handler until they land.
type userServer struct {
	flockv1connect.UnimplementedUserServiceHandler
	accounts *account.Service
	deleter  *account.Deleter
	social   *social.Service
	posts    *post.Service
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
	pair, err := s.accounts.LoginFrom(ctx, login, req.Msg.GetPassword(), requestClient(req.Peer(), req.Header()))
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
	v, err := s.social.GetUser(ctx, p, req.Msg.GetUserId())
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&flockv1.GetUserResponse{User: s.conv.userView(v, p.UserID)}), nil
}

func (s *userServer) Follow(ctx context.Context, req *connect.Request[flockv1.FollowRequest]) (*connect.Response[flockv1.FollowResponse], error) {
	if err := s.social.Follow(ctx, principal(ctx), req.Msg.GetUserId()); err != nil {
		return nil, err
	}
	return connect.NewResponse(&flockv1.FollowResponse{}), nil
}

func (s *userServer) Unfollow(ctx context.Context, req *connect.Request[flockv1.UnfollowRequest]) (*connect.Response[flockv1.UnfollowResponse], error) {
	if err := s.social.Unfollow(ctx, principal(ctx), req.Msg.GetUserId()); err != nil {
		return nil, err
	}
	return connect.NewResponse(&flockv1.UnfollowResponse{}), nil
}

func (s *userServer) Block(ctx context.Context, req *connect.Request[flockv1.BlockRequest]) (*connect.Response[flockv1.BlockResponse], error) {
	if err := s.social.Block(ctx, principal(ctx), req.Msg.GetUserId()); err != nil {
		return nil, err
	}
	return connect.NewResponse(&flockv1.BlockResponse{}), nil
}

func (s *userServer) Unblock(ctx context.Context, req *connect.Request[flockv1.UnblockRequest]) (*connect.Response[flockv1.UnblockResponse], error) {
	if err := s.social.Unblock(ctx, principal(ctx), req.Msg.GetUserId()); err != nil {
		return nil, err
	}
	return connect.NewResponse(&flockv1.UnblockResponse{}), nil
}

func (s *userServer) ListFollowers(ctx context.Context, req *connect.Request[flockv1.ListFollowersRequest]) (*connect.Response[flockv1.ListFollowersResponse], error) {
	p := principal(ctx)
	l, err := s.social.ListFollowers(ctx, p, req.Msg.GetUserId(), req.Msg.GetPageSize(), req.Msg.GetPageToken())
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&flockv1.ListFollowersResponse{Users: s.conv.users(l.Users, p.UserID), NextPageToken: l.NextPageToken}), nil
}

func (s *userServer) ListFollowing(ctx context.Context, req *connect.Request[flockv1.ListFollowingRequest]) (*connect.Response[flockv1.ListFollowingResponse], error) {
	p := principal(ctx)
	l, err := s.social.ListFollowing(ctx, p, req.Msg.GetUserId(), req.Msg.GetPageSize(), req.Msg.GetPageToken())
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&flockv1.ListFollowingResponse{Users: s.conv.users(l.Users, p.UserID), NextPageToken: l.NextPageToken}), nil
}

func (s *userServer) ListBlocks(ctx context.Context, req *connect.Request[flockv1.ListBlocksRequest]) (*connect.Response[flockv1.ListBlocksResponse], error) {
	p := principal(ctx)
	l, err := s.social.ListBlocks(ctx, p, req.Msg.GetPageSize(), req.Msg.GetPageToken())
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&flockv1.ListBlocksResponse{Users: s.conv.users(l.Users, p.UserID), NextPageToken: l.NextPageToken}), nil
}

func (s *userServer) SearchUsers(ctx context.Context, req *connect.Request[flockv1.SearchUsersRequest]) (*connect.Response[flockv1.SearchUsersResponse], error) {
	p := principal(ctx)
	l, err := s.social.SearchUsers(ctx, p, req.Msg.GetQuery(), req.Msg.GetPageSize(), req.Msg.GetPageToken())
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&flockv1.SearchUsersResponse{Users: s.conv.users(l.Users, p.UserID), NextPageToken: l.NextPageToken}), nil
}

func (s *userServer) ListUserPosts(ctx context.Context, req *connect.Request[flockv1.ListUserPostsRequest]) (*connect.Response[flockv1.ListUserPostsResponse], error) {
	p := principal(ctx)
	pg, err := s.posts.ListUserPosts(ctx, p, req.Msg.GetUserId(), req.Msg.GetPageSize(), req.Msg.GetPageToken())
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&flockv1.ListUserPostsResponse{Posts: s.conv.posts(pg.Posts, p.UserID), NextPageToken: pg.NextPageToken}), nil
}

type errUnknownMaskPath string

func (e errUnknownMaskPath) Error() string {
	return "update_mask: unknown field " + string(e) + "; use full_name, bio, avatar or interests (in JSON the mask names them fullName, bio, avatar, interests)"
}
