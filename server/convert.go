package server

import (
	"context"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	flockv1 "github.com/flock-social/flock/gen/go/flock/v1"
	"github.com/flock-social/flock/internal/media"
	"github.com/flock-social/flock/internal/moderation"
	"github.com/flock-social/flock/internal/notify"
	"github.com/flock-social/flock/internal/post"
	"github.com/flock-social/flock/internal/social"
	"github.com/flock-social/flock/internal/store"
	"github.com/flock-social/flock/internal/video"
)

// converter turns store rows into API messages. It is the one place that
// decides which fields of a row reach the wire: private fields only for the
// account's owner, never the password hash.
type converter struct {
	// mediaURL is the public base URL of stored media, ending in "/".
	mediaURL string
	// signer signs the URLs of videos that are not public.
	signer *media.Signer
}

var videoStatuses = map[string]flockv1.VideoStatus{
	store.VideoProcessing: flockv1.VideoStatus_VIDEO_STATUS_PROCESSING,
	store.VideoReady:      flockv1.VideoStatus_VIDEO_STATUS_READY,
	store.VideoFailed:     flockv1.VideoStatus_VIDEO_STATUS_FAILED,
}

// video converts a video; once ready it carries its file URLs: plain for a
// public video, else signed and valid until the top of the hour after next
// (between one and two hours), so that a page shown twice within the hour
// gets the same URL and the browser's cache.
func (c converter) video(v *store.Video, now time.Time) *flockv1.Video {
	if v == nil {
		return nil
	}
	out := &flockv1.Video{
		Id:              v.ID,
		Status:          videoStatuses[v.Status],
		DurationSeconds: v.DurationSeconds,
		Width:           v.Width,
		Height:          v.Height,
		SizeBytes:       v.SizeBytes,
		FailureReason:   v.FailureReason,
		CreatedAt:       timestamp(v.CreatedAt),
	}
	if v.Status == store.VideoReady {
		exp := now.Truncate(time.Hour).Add(2 * time.Hour)
		url := func(key string) string {
			if v.Public {
				return c.mediaURL + key
			}
			return c.mediaURL + key + "?" + c.signer.Sign(key, exp)
		}
		out.PlaybackUrl = url(video.PlaybackKey(v.ID))
		out.PosterUrl = url(video.PosterKey(v.ID))
	}
	return out
}

// user converts an account as the viewer sees it; self marks the viewer's
// own account, which alone carries the private fields (email,
// emailVerified, role, interests). Another user's profile leaves them unset,
// so that they are absent from the answer on every transport (property 26).
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
		// Set, even to false: the caller's own profile always carries them.
		role := flockv1.UserRole_USER_ROLE_MEMBER
		if u.Role == store.RoleStaff {
			role = flockv1.UserRole_USER_ROLE_STAFF
		}
		out.Email = proto.String(u.Email)
		out.EmailVerified = proto.Bool(u.EmailVerifiedAt != nil)
		out.Role = role.Enum()
		out.Interests = u.Interests
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
	out.Video = c.video(v.Video, time.Now())
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

var notificationTypes = map[string]flockv1.NotificationType{
	notify.TypeFollow:           flockv1.NotificationType_NOTIFICATION_TYPE_FOLLOW,
	notify.TypeLike:             flockv1.NotificationType_NOTIFICATION_TYPE_LIKE,
	notify.TypeComment:          flockv1.NotificationType_NOTIFICATION_TYPE_COMMENT,
	notify.TypeGroupInvite:      flockv1.NotificationType_NOTIFICATION_TYPE_GROUP_INVITE,
	notify.TypeGroupJoinRequest: flockv1.NotificationType_NOTIFICATION_TYPE_GROUP_JOIN_REQUEST,
	notify.TypeGroupJoined:      flockv1.NotificationType_NOTIFICATION_TYPE_GROUP_JOINED,
}

// notifications converts notifications with their actors as their
// recipient sees them (public fields and the recipient's relationship to
// each: followedByMe and the rest), loaded for the whole batch in a fixed
// number of queries. A batch has one recipient.
func (c converter) notifications(ctx context.Context, sv *social.Service, ns []*store.Notification) ([]*flockv1.Notification, error) {
	if len(ns) == 0 {
		return []*flockv1.Notification{}, nil
	}
	ids := make([]string, 0, len(ns))
	for _, n := range ns {
		ids = append(ids, n.ActorID)
	}
	recipient := ns[0].UserID
	actors, err := sv.ViewsByID(ctx, recipient, ids)
	if err != nil {
		return nil, err
	}
	out := make([]*flockv1.Notification, len(ns))
	for i, n := range ns {
		out[i] = &flockv1.Notification{
			Id:        n.ID,
			Type:      notificationTypes[n.Type],
			Actor:     c.userView(actors[n.ActorID], recipient),
			PostId:    deref(n.PostID),
			CommentId: deref(n.CommentID),
			GroupId:   deref(n.GroupID),
			Read:      n.ReadAt != nil,
			CreatedAt: timestamp(n.CreatedAt),
		}
	}
	return out, nil
}

var activityTypes = map[string]flockv1.ActivityType{
	notify.PostCreated:    flockv1.ActivityType_ACTIVITY_TYPE_POST_CREATED,
	notify.PostUpdated:    flockv1.ActivityType_ACTIVITY_TYPE_POST_UPDATED,
	notify.PostDeleted:    flockv1.ActivityType_ACTIVITY_TYPE_POST_DELETED,
	notify.CommentCreated: flockv1.ActivityType_ACTIVITY_TYPE_COMMENT_CREATED,
	notify.CommentDeleted: flockv1.ActivityType_ACTIVITY_TYPE_COMMENT_DELETED,
	notify.PostLiked:      flockv1.ActivityType_ACTIVITY_TYPE_POST_LIKED,
	notify.PostUnliked:    flockv1.ActivityType_ACTIVITY_TYPE_POST_UNLIKED,
	notify.UserFollowed:   flockv1.ActivityType_ACTIVITY_TYPE_USER_FOLLOWED,
	notify.UserUnfollowed: flockv1.ActivityType_ACTIVITY_TYPE_USER_UNFOLLOWED,
	notify.UserBlocked:    flockv1.ActivityType_ACTIVITY_TYPE_USER_BLOCKED,
	notify.UserUnblocked:  flockv1.ActivityType_ACTIVITY_TYPE_USER_UNBLOCKED,
	notify.ProfileUpdated: flockv1.ActivityType_ACTIVITY_TYPE_PROFILE_UPDATED,
	notify.PostReported:   flockv1.ActivityType_ACTIVITY_TYPE_POST_REPORTED,
	notify.GroupCreated:   flockv1.ActivityType_ACTIVITY_TYPE_GROUP_CREATED,
	notify.GroupUpdated:   flockv1.ActivityType_ACTIVITY_TYPE_GROUP_UPDATED,
	notify.GroupDeleted:   flockv1.ActivityType_ACTIVITY_TYPE_GROUP_DELETED,
	notify.GroupJoined:    flockv1.ActivityType_ACTIVITY_TYPE_GROUP_JOINED,
	notify.GroupLeft:      flockv1.ActivityType_ACTIVITY_TYPE_GROUP_LEFT,
}

func (c converter) activity(a *store.Activity) *flockv1.Activity {
	return &flockv1.Activity{
		Id:           a.ID,
		Type:         activityTypes[a.Type],
		TargetUserId: deref(a.TargetUserID),
		PostId:       deref(a.PostID),
		CommentId:    deref(a.CommentID),
		GroupId:      deref(a.GroupID),
		CreatedAt:    timestamp(a.CreatedAt),
	}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// report converts a report for viewerID (staff, or the reporter): the
// reporter's public profile, and the post as it is now, unset once it was
// removed.
func (c converter) report(v *moderation.View, viewerID string) *flockv1.Report {
	out := &flockv1.Report{
		Id:           v.ID,
		PostId:       v.PostID,
		Reporter:     c.user(v.Reporter, false),
		Reason:       reportReasons[v.Reason],
		Details:      v.Details,
		Status:       reportStatuses[v.Status],
		Action:       reportActions[deref(v.Action)],
		CreatedAt:    timestamp(v.CreatedAt),
		ResolvedById: deref(v.ResolvedByID),
	}
	if v.ResolvedAt != nil {
		out.ResolvedAt = timestamp(*v.ResolvedAt)
	}
	if v.Post != nil {
		pv := &post.View{Post: v.Post, LikedByMe: v.LikedByMe}
		if v.Author != nil {
			pv.Author = &social.UserView{User: v.Author, Rel: v.AuthorRel}
		}
		out.Post = c.post(pv, viewerID)
	}
	return out
}
