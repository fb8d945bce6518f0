package server

import (
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	flockv1 "github.com/flock-social/flock/gen/go/flock/v1"
	"github.com/flock-social/flock/internal/store"
)

// converter turns store rows into API messages. It is the one place that
// decides which fields of a row reach the wire: private fields only for the
// account's owner, never the password hash.
type converter struct {
	// mediaURL is the public base URL of stored media, ending in "/".
	mediaURL string
}

// user converts an account as the viewer sees it; self marks the viewer's
// own account, which alone carries the private fields.
func (c converter) user(u *store.User, self bool) *flockv1.User {
	if u == nil {
		return nil
	}
	out := &flockv1.User{
		Id:             u.ID,
		Username:       u.Username,
		FullName:       u.FullName,
		Bio:            u.Bio,
		FollowersCount: int32(u.FollowersCount),
		FollowingCount: int32(u.FollowingCount),
		PostsCount:     int32(u.PostsCount),
		CreatedAt:      timestamp(u.CreatedAt),
	}
	if u.AvatarKey != "" {
		out.AvatarUrl = c.mediaURL + u.AvatarKey
	}
	if self {
		out.Email = u.Email
		out.EmailVerified = u.EmailVerifiedAt != nil
		out.Interests = u.Interests
		out.Role = flockv1.UserRole_USER_ROLE_MEMBER
		if u.Role == store.RoleStaff {
			out.Role = flockv1.UserRole_USER_ROLE_STAFF
		}
	}
	return out
}

func timestamp(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}
