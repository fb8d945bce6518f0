package server

import (
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	flockv1 "github.com/flock-social/flock/gen/go/flock/v1"
	"github.com/flock-social/flock/internal/post"
	"github.com/flock-social/flock/internal/social"
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

// userView converts a user with the viewer's relationship to them.
func (c converter) userView(v *social.UserView, viewerID string) *flockv1.User {
	if v == nil {
		return nil
	}
	out := c.user(v.User, v.ID == viewerID)
	out.FollowedByMe = v.Rel.FollowedByMe
	out.FollowsMe = v.Rel.FollowsMe
	out.BlockedByMe = v.Rel.BlockedByMe
	return out
}

func (c converter) users(vs []*social.UserView, viewerID string) []*flockv1.User {
	out := make([]*flockv1.User, len(vs))
	for i, v := range vs {
		out[i] = c.userView(v, viewerID)
	}
	return out
}

var visibilities = map[string]flockv1.Visibility{
	store.VisibilityPublic:    flockv1.Visibility_VISIBILITY_PUBLIC,
	store.VisibilityFollowers: flockv1.Visibility_VISIBILITY_FOLLOWERS,
	store.VisibilityGroup:     flockv1.Visibility_VISIBILITY_GROUP,
}

func (c converter) post(v *post.View, viewerID string) *flockv1.Post {
	out := &flockv1.Post{
		Id:            v.ID,
		Author:        c.userView(v.Author, viewerID),
		Content:       v.Content,
		Hashtags:      v.Hashtags,
		Visibility:    visibilities[v.Visibility],
		LikesCount:    int32(v.LikesCount),
		CommentsCount: int32(v.CommentsCount),
		LikedByMe:     v.LikedByMe,
		CreatedAt:     timestamp(v.CreatedAt),
		UpdatedAt:     timestamp(v.UpdatedAt),
	}
	if out.Hashtags == nil {
		out.Hashtags = []string{}
	}
	if v.GroupID != nil {
		out.GroupId = *v.GroupID
	}
	return out
}

func (c converter) posts(vs []*post.View, viewerID string) []*flockv1.Post {
	out := make([]*flockv1.Post, len(vs))
	for i, v := range vs {
		out[i] = c.post(v, viewerID)
	}
	return out
}

func (c converter) comment(v *post.CommentView, viewerID string) *flockv1.Comment {
	return &flockv1.Comment{
		Id:        v.ID,
		PostId:    v.PostID,
		Author:    c.userView(v.Author, viewerID),
		Content:   v.Content,
		CreatedAt: timestamp(v.CreatedAt),
	}
}
