// Package post holds the rules of posts: creating, editing and deleting
// them, who may see them, the home feed, hashtag search, likes and comments.
//
// Who may see a post: its author; everyone for a public post; the author's
// followers for a followers-only post; never anyone a block stands between
// with the author (security.md property 4), nor anyone while the author is
// suspended. The store applies the same rule in SQL to every list
// (store.PostVisible, store.ListPosts), so pages are filtered before they
// are cut.
package post

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/uptrace/bun"

	"github.com/flock-social/flock"
	"github.com/flock-social/flock/internal/account"
	"github.com/flock-social/flock/internal/notify"
	"github.com/flock-social/flock/internal/page"
	"github.com/flock-social/flock/internal/post/hashtag"
	"github.com/flock-social/flock/internal/social"
	"github.com/flock-social/flock/internal/store"
	"github.com/flock-social/flock/internal/timeline"
	"github.com/flock-social/flock/internal/video"
)

// Content limits, in characters.
const (
	MaxPostLen       = 5000
	MaxCommentLen    = 2000
	MaxIdempotentKey = 255
)

// Service carries out post actions.
type Service struct {
	db     *store.DB
	social *social.Service
	events *notify.Service
	videos *video.Service // nil: posts cannot carry videos
	// timelines serves the home feed and learns of new posts.
	timelines *timeline.Service
}

// NewService returns a Service that records its actions with events.
// videos, when not nil, lets posts carry uploaded videos.
func NewService(db *store.DB, social *social.Service, events *notify.Service, videos *video.Service, timelines *timeline.Service) *Service {
	return &Service{db: db, social: social, events: events, videos: videos, timelines: timelines}
}

// View is a post as the viewer sees it: with its author and whether the
// viewer likes it.
type View struct {
	*store.Post
	Author    *social.UserView
	LikedByMe bool
	// Video is the video the post carries, if any.
	Video *store.Video
}

// CommentView is a comment with its author.
type CommentView struct {
	*store.Comment
	Author *social.UserView
}

// CreateInput is a new post.
type CreateInput struct {
	Content    string
	Visibility string // store.VisibilityPublic (default) or store.VisibilityFollowers
	GroupID    string
	VideoID    string
	// IdempotencyKey, when set, makes a retry return the first post.
	IdempotencyKey string
}

func checkContent(field, content string, max int) (string, error) {
	if !utf8.ValidString(content) || strings.ContainsRune(content, 0) {
		return "", flock.FieldErrorf(field, "%s must be valid UTF-8 text", field)
	}
	n := utf8.RuneCountInString(content)
	if strings.TrimSpace(content) == "" {
		return "", flock.FieldErrorf(field, "%s must not be empty", field)
	}
	if n > max {
		return "", flock.FieldErrorf(field, "%s must be at most %d characters, got %d", field, max, n)
	}
	return content, nil
}

func checkKey(key string) error {
	if len(key) > MaxIdempotentKey || !utf8.ValidString(key) {
		return flock.FieldErrorf("Idempotency-Key", "Idempotency-Key must be at most %d bytes of text", MaxIdempotentKey)
	}
	return nil
}

func requestHash(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		fmt.Fprintf(h, "%d:%s;", len(p), p)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// idempotent runs create at most once per (user, scope, key): a retry with
// the same key and request returns the ID of the first result; the same key
// with a different request is refused with EPRECONDITION. Two concurrent
// requests with one key create one resource: the loser of the key's insert
// rolls back and returns the winner's.
func (s *Service) idempotent(ctx context.Context, userID, scope, key, hash string, create func(ctx context.Context, tx bun.Tx, ev *notify.Events) (string, error)) (id string, err error) {
	var ev notify.Events
	find := func(ctx context.Context, tx bun.IDB) (string, bool, error) {
		k, err := s.db.GetIdempotencyKey(ctx, tx, userID, scope, key)
		if store.IsNotFound(err) {
			return "", false, nil
		} else if err != nil {
			return "", false, err
		}
		if k.RequestHash != hash {
			return "", false, flock.Errorf(flock.EPRECONDITION, "this Idempotency-Key was used for a different request; use a new key for a new request")
		}
		return k.ResourceID, true, nil
	}
	err = s.db.InTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		if key != "" {
			var found bool
			if id, found, err = find(ctx, tx); err != nil || found {
				return err
			}
		}
		if id, err = create(ctx, tx, &ev); err != nil {
			return err
		}
		if key == "" {
			return nil
		}
		return s.db.CreateIdempotencyKey(ctx, tx, &store.IdempotencyKey{UserID: userID, Scope: scope, Key: key, RequestHash: hash, ResourceID: id})
	})
	if errors.Is(err, store.ErrConflict) && key != "" {
		var found bool
		if id, found, err = find(ctx, s.db); err == nil && !found {
			err = fmt.Errorf("idempotency key vanished after a conflict")
		}
		return id, err
	}
	if err == nil {
		s.events.Publish(ctx, &ev)
	}
	return id, err
}

// CreatePost publishes a post, shared with a group when GroupID is set (it
// is then visible to the group's members only, whatever Visibility says).
// Returns EINVALID for empty or too long content or an unknown visibility,
// ENOTFOUND for a group that does not exist or a video the caller did not
// upload, ECONFLICT for a video another post carries, EPRECONDITION for a
// video that failed processing, EFORBIDDEN when posting to a group the caller is not a
// member of, and EPRECONDITION when an Idempotency-Key is reused for
// another request.
func (s *Service) CreatePost(ctx context.Context, p *account.Principal, in CreateInput) (*View, error) {
	content, err := checkContent("content", in.Content, MaxPostLen)
	if err != nil {
		return nil, err
	}
	if err := checkKey(in.IdempotencyKey); err != nil {
		return nil, err
	}
	switch {
	case in.GroupID != "":
		// Ignored, whatever it says: a group post is seen by the group's
		// members (VISIBILITY_GROUP, set below).
	case in.Visibility == "":
		in.Visibility = store.VisibilityPublic
	case in.Visibility == store.VisibilityPublic || in.Visibility == store.VisibilityFollowers:
	default:
		return nil, flock.FieldErrorf("visibility", "visibility must be VISIBILITY_PUBLIC or VISIBILITY_FOLLOWERS; to post in a group, send its groupId (the post is then VISIBILITY_GROUP, seen by its members)")
	}
	if in.VideoID != "" && s.videos == nil {
		return nil, flock.FieldErrorf("videoId", "this server does not take videos")
	}
	hash := requestHash(content, in.Visibility, in.GroupID, in.VideoID)
	id, err := s.idempotent(ctx, p.UserID, "post", in.IdempotencyKey, hash, func(ctx context.Context, tx bun.Tx, ev *notify.Events) (string, error) {
		post := &store.Post{AuthorID: p.UserID, Content: content, Visibility: in.Visibility, Hashtags: hashtag.Find(content)}
		if in.GroupID != "" {
			// Held as the post's foreign key will hold it, but before the
			// check: a deletion of the group in progress is waited for and
			// then found, instead of failing the insert.
			if err := s.db.ShareGroup(ctx, tx, in.GroupID); err != nil {
				return "", err
			}
			if err := s.checkGroupMember(ctx, tx, p, in.GroupID); err != nil {
				return "", err
			}
			post.GroupID, post.Visibility = &in.GroupID, store.VisibilityGroup
		}
		if in.VideoID != "" {
			if err := s.videos.CheckAttach(ctx, tx, p.UserID, in.VideoID); err != nil {
				return "", err
			}
			post.VideoID = &in.VideoID
		}
		if err := s.db.CreatePost(ctx, tx, post); errors.Is(err, store.ErrConflict) && in.VideoID != "" {
			return "", flock.Errorf(flock.ECONFLICT, "video %q is already on another post; upload it again to post it twice", in.VideoID)
		} else if err != nil {
			return "", err
		}
		if err := s.timelines.Posted(ctx, tx, post.ID); err != nil {
			return "", err
		}
		return post.ID, s.events.Record(ctx, tx, ev, &store.Activity{UserID: p.UserID, Type: notify.PostCreated, PostID: &post.ID})
	})
	if err != nil {
		return nil, fmt.Errorf("create post: %w", err)
	}
	return s.GetPost(ctx, p, id)
}

// checkGroupMember refuses a group post by anyone but an active member:
// ENOTFOUND for an unknown group, EFORBIDDEN for a non-member.
func (s *Service) checkGroupMember(ctx context.Context, tx bun.IDB, p *account.Principal, groupID string) error {
	if _, err := s.db.GetGroup(ctx, tx, groupID); store.IsNotFound(err) {
		return flock.Errorf(flock.ENOTFOUND, "group %q not found", groupID)
	} else if err != nil {
		return err
	}
	m, err := s.db.GetMembership(ctx, tx, groupID, p.UserID)
	if store.IsNotFound(err) || (err == nil && m.State != store.MemberActive) {
		return flock.Errorf(flock.EFORBIDDEN, "only members of the group may post to it; join it first")
	}
	return err
}

func postNotFound(id string) error { return flock.Errorf(flock.ENOTFOUND, "post %q not found", id) }

// visiblePost loads a post the caller may see; ENOTFOUND otherwise.
func (s *Service) visiblePost(ctx context.Context, tx bun.IDB, p *account.Principal, id string) (*store.Post, error) {
	post, err := s.db.GetVisiblePost(ctx, tx, p.UserID, id)
	if store.IsNotFound(err) {
		return nil, postNotFound(id)
	}
	return post, err
}

// GetPost returns a post the caller may see. Returns ENOTFOUND when it does
// not exist or the caller may not see it.
func (s *Service) GetPost(ctx context.Context, p *account.Principal, id string) (*View, error) {
	post, err := s.visiblePost(ctx, s.db, p, id)
	if err != nil {
		return nil, fmt.Errorf("get post: %w", err)
	}
	views, err := s.hydrate(ctx, p, []*store.Post{post}, true)
	if err != nil {
		return nil, fmt.Errorf("get post: %w", err)
	}
	return views[0], nil
}

// ownPost loads a post for a change by its author: ENOTFOUND when the
// caller may not see it, EFORBIDDEN when they see it but did not write it.
func (s *Service) ownPost(ctx context.Context, tx bun.IDB, p *account.Principal, id, verb string) (*store.Post, error) {
	post, err := s.visiblePost(ctx, tx, p, id)
	if err != nil {
		return nil, err
	}
	if post.AuthorID != p.UserID {
		return nil, flock.Errorf(flock.EFORBIDDEN, "only the author may %s a post", verb)
	}
	return post, nil
}

// UpdatePost replaces a post's content (and so its hashtags). Author only.
func (s *Service) UpdatePost(ctx context.Context, p *account.Principal, id, content string) (*View, error) {
	content, err := checkContent("content", content, MaxPostLen)
	if err != nil {
		return nil, err
	}
	var ev notify.Events
	err = s.db.InTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		if _, err := s.ownPost(ctx, tx, p, id, "edit"); err != nil {
			return err
		}
		if err := s.db.UpdatePostContent(ctx, tx, id, content, hashtag.Find(content)); err != nil {
			return err
		}
		return s.events.Record(ctx, tx, &ev, &store.Activity{UserID: p.UserID, Type: notify.PostUpdated, PostID: &id})
	})
	if err != nil {
		return nil, fmt.Errorf("update post: %w", err)
	}
	s.events.Publish(ctx, &ev)
	return s.GetPost(ctx, p, id)
}

// DeletePost deletes a post with its likes, comments, hashtags and video
// (with the video's files). Author only.
func (s *Service) DeletePost(ctx context.Context, p *account.Principal, id string) error {
	var ev notify.Events
	var videoID *string
	err := s.db.InTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		// The post first, then its author's counter (store.LockPost).
		if err := s.db.LockPost(ctx, tx, id, true); err != nil {
			return err
		}
		post, err := s.ownPost(ctx, tx, p, id, "delete")
		if err != nil {
			return err
		}
		videoID = post.VideoID
		// Then its author, before the post's timeline entries go with
		// it: an unfollow holds both users and then removes entries, so
		// taking the entries first deadlocked with it.
		if err := s.db.LockUsers(ctx, tx, post.AuthorID); err != nil {
			return err
		}
		if err := s.db.DeletePost(ctx, tx, post); err != nil {
			return err
		}
		return s.events.Record(ctx, tx, &ev, &store.Activity{UserID: p.UserID, Type: notify.PostDeleted, PostID: &id})
	})
	if err != nil {
		return fmt.Errorf("delete post: %w", err)
	}
	if videoID != nil && s.videos != nil {
		s.videos.Removed(ctx, *videoID)
	}
	s.events.Publish(ctx, &ev)
	return nil
}

// Page is a page of posts.
type Page struct {
	Posts         []*View
	NextPageToken string
}

// List kinds, for page tokens.
const (
	kindFeed     = "feed"
	kindUser     = "user-posts"
	kindTag      = "hashtag"
	kindComments = "comments"
	kindGroup    = "group-posts"
)

// ListFeed returns the caller's home feed, newest first: their own posts and
// those of everyone they follow that they may see.
func (s *Service) ListFeed(ctx context.Context, p *account.Principal, size int32, token string) (*Page, error) {
	return s.page(ctx, p, kindFeed, size, token, func(before string, limit int) ([]*store.Post, error) {
		return s.timelines.Feed(ctx, p.UserID, before, limit)
	})
}

// ListUserPosts returns a user's posts that the caller may see, newest
// first. ENOTFOUND when the user is not visible to the caller.
func (s *Service) ListUserPosts(ctx context.Context, p *account.Principal, userID string, size int32, token string) (*Page, error) {
	if _, err := s.social.GetUser(ctx, p, userID); err != nil {
		return nil, err
	}
	return s.list(ctx, p, kindUser, store.PostFilter{AuthorID: userID}, size, token)
}

// ListGroupPosts returns the posts shared with a group that the caller may
// see (the group package checks membership first), newest first.
func (s *Service) ListGroupPosts(ctx context.Context, p *account.Principal, groupID string, size int32, token string) (*Page, error) {
	return s.list(ctx, p, kindGroup+":"+groupID, store.PostFilter{GroupID: groupID}, size, token)
}

// SearchPosts returns the posts with a hashtag that the caller may see,
// newest first. The '#' is optional; letter case does not matter.
func (s *Service) SearchPosts(ctx context.Context, p *account.Principal, query string, size int32, token string) (*Page, error) {
	tag := hashtag.Normalize(query)
	if tag == "" || utf8.RuneCountInString(tag) > hashtag.MaxLen {
		return nil, flock.FieldErrorf("hashtag", "hashtag must be 1-%d characters, with or without '#'", hashtag.MaxLen)
	}
	return s.list(ctx, p, kindTag, store.PostFilter{Tag: tag}, size, token)
}

func (s *Service) list(ctx context.Context, p *account.Principal, kind string, f store.PostFilter, size int32, token string) (*Page, error) {
	return s.page(ctx, p, kind, size, token, func(before string, limit int) ([]*store.Post, error) {
		f.ViewerID, f.BeforeID, f.Limit = p.UserID, before, limit
		return s.db.ListPosts(ctx, s.db, f)
	})
}

// page reads one page with read (posts below an id, newest first, with
// LikedByMe set) and hydrates it.
func (s *Service) page(ctx context.Context, p *account.Principal, kind string, size int32, token string, read func(before string, limit int) ([]*store.Post, error)) (*Page, error) {
	cur, _, err := page.Decode(kind, token)
	if err != nil {
		return nil, err
	}
	n := page.Size(size)
	posts, err := read(cur.ID, n+1)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", kind, err)
	}
	posts, next := page.Next(posts, n, func(p *store.Post) page.Cursor { return page.Cursor{Kind: kind, ID: p.ID} })
	views, err := s.hydrate(ctx, p, posts, true)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", kind, err)
	}
	return &Page{Posts: views, NextPageToken: next}, nil
}

// hydrate adds authors (with the viewer's relationship) and likedByMe to a
// page of posts in a fixed number of queries whatever the page size: one
// for the authors with their relationships, one for likes unless the
// posts carry LikedByMe already (haveLiked: lists read it with the posts),
// one for videos when any post has one.
func (s *Service) hydrate(ctx context.Context, p *account.Principal, posts []*store.Post, haveLiked bool) ([]*View, error) {
	ids := make([]string, len(posts))
	var authorIDs []string
	seen := map[string]bool{}
	for i, post := range posts {
		ids[i] = post.ID
		if !seen[post.AuthorID] {
			seen[post.AuthorID] = true
			authorIDs = append(authorIDs, post.AuthorID)
		}
	}
	authors, err := s.authors(ctx, p.UserID, posts, authorIDs)
	if err != nil {
		return nil, err
	}
	var liked map[string]bool
	if haveLiked {
		liked = make(map[string]bool, len(posts))
		for _, post := range posts {
			liked[post.ID] = post.LikedByMe
		}
	} else if liked, err = s.db.LikedPosts(ctx, s.db, p.UserID, ids); err != nil {
		return nil, err
	}
	var videoIDs []string
	for _, post := range posts {
		if post.VideoID != nil {
			videoIDs = append(videoIDs, *post.VideoID)
		}
	}
	var videos map[string]*store.Video
	if len(videoIDs) > 0 && s.videos != nil {
		if videos, err = s.videos.ByID(ctx, videoIDs); err != nil {
			return nil, err
		}
	}
	out := make([]*View, len(posts))
	for i, post := range posts {
		out[i] = &View{Post: post, Author: authors[post.AuthorID], LikedByMe: liked[post.ID]}
		if post.VideoID != nil {
			out[i].Video = videos[*post.VideoID]
		}
	}
	return out, nil
}

// authors returns the views of the posts' authors: those the posts were
// read with (a timeline's page), or else read in one query.
func (s *Service) authors(ctx context.Context, viewerID string, posts []*store.Post, ids []string) (map[string]*social.UserView, error) {
	out := make(map[string]*social.UserView, len(ids))
	for _, post := range posts {
		if post.Author == nil {
			return s.social.ViewsByID(ctx, viewerID, ids)
		}
		if out[post.AuthorID] == nil {
			out[post.AuthorID] = &social.UserView{User: post.Author, Rel: post.AuthorRel}
		}
	}
	return out, nil
}

// LikePost likes a post the caller may see; liking again succeeds and
// changes nothing. ENOTFOUND for a post the caller may not see.
func (s *Service) LikePost(ctx context.Context, p *account.Principal, id string) error {
	var ev notify.Events
	err := s.db.InTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		// The post first (store.LockPost): a deletion in progress is
		// waited for, and the check below then finds the post gone.
		if err := s.db.LockPost(ctx, tx, id, false); err != nil {
			return err
		}
		post, err := s.visiblePost(ctx, tx, p, id)
		if err != nil {
			return err
		}
		created, err := s.db.CreateLike(ctx, tx, id, p.UserID)
		if err != nil || !created {
			return err
		}
		if err := s.events.Notify(ctx, tx, &ev, &store.Notification{UserID: post.AuthorID, Type: notify.TypeLike, ActorID: p.UserID,
			PostID: &id, DedupeKey: notify.Str("like:" + p.UserID + ":" + id)}); err != nil {
			return err
		}
		return s.events.Record(ctx, tx, &ev, &store.Activity{UserID: p.UserID, Type: notify.PostLiked, PostID: &id})
	})
	if err != nil {
		return fmt.Errorf("like post: %w", err)
	}
	s.events.Publish(ctx, &ev)
	return nil
}

// UnlikePost removes the caller's like; it succeeds when there was none.
func (s *Service) UnlikePost(ctx context.Context, p *account.Principal, id string) error {
	var ev notify.Events
	err := s.db.InTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		if err := s.db.LockPost(ctx, tx, id, false); err != nil {
			return err
		}
		if _, err := s.visiblePost(ctx, tx, p, id); err != nil {
			return err
		}
		deleted, err := s.db.DeleteLike(ctx, tx, id, p.UserID)
		if err != nil || !deleted {
			return err
		}
		return s.events.Record(ctx, tx, &ev, &store.Activity{UserID: p.UserID, Type: notify.PostUnliked, PostID: &id})
	})
	if err != nil {
		return fmt.Errorf("unlike post: %w", err)
	}
	s.events.Publish(ctx, &ev)
	return nil
}

// CreateComment comments on a post the caller may see. Returns EINVALID for
// empty or too long content and ENOTFOUND for a post the caller may not see
// (including across a block).
func (s *Service) CreateComment(ctx context.Context, p *account.Principal, postID, content, key string) (*CommentView, error) {
	content, err := checkContent("content", content, MaxCommentLen)
	if err != nil {
		return nil, err
	}
	if err := checkKey(key); err != nil {
		return nil, err
	}
	id, err := s.idempotent(ctx, p.UserID, "comment:"+postID, key, requestHash(postID, content), func(ctx context.Context, tx bun.Tx, ev *notify.Events) (string, error) {
		if err := s.db.LockPost(ctx, tx, postID, false); err != nil {
			return "", err
		}
		post, err := s.visiblePost(ctx, tx, p, postID)
		if err != nil {
			return "", err
		}
		c := &store.Comment{PostID: postID, AuthorID: p.UserID, Content: content}
		if err := s.db.CreateComment(ctx, tx, c); err != nil {
			return "", err
		}
		if err := s.events.Notify(ctx, tx, ev, &store.Notification{UserID: post.AuthorID, Type: notify.TypeComment, ActorID: p.UserID,
			PostID: &postID, CommentID: &c.ID}); err != nil {
			return "", err
		}
		return c.ID, s.events.Record(ctx, tx, ev, &store.Activity{UserID: p.UserID, Type: notify.CommentCreated, PostID: &postID, CommentID: &c.ID})
	})
	if err != nil {
		return nil, fmt.Errorf("create comment: %w", err)
	}
	c, err := s.db.GetComment(ctx, s.db, postID, id)
	if store.IsNotFound(err) {
		// Deleted since the commit, alone or with its post.
		return nil, flock.Errorf(flock.ENOTFOUND, "the comment was deleted as soon as it was made, or post %q was", postID)
	} else if err != nil {
		return nil, fmt.Errorf("create comment: %w", err)
	}
	authors, err := s.social.ViewsByID(ctx, p.UserID, []string{p.UserID})
	if err != nil {
		return nil, fmt.Errorf("create comment: %w", err)
	}
	return &CommentView{Comment: c, Author: authors[p.UserID]}, nil
}

// CommentPage is a page of comments.
type CommentPage struct {
	Comments      []*CommentView
	NextPageToken string
}

// ListComments lists a post's comments oldest first, without those of users
// a block stands between with the caller. ENOTFOUND for a post the caller
// may not see.
func (s *Service) ListComments(ctx context.Context, p *account.Principal, postID string, size int32, token string) (*CommentPage, error) {
	if _, err := s.visiblePost(ctx, s.db, p, postID); err != nil {
		return nil, fmt.Errorf("list comments: %w", err)
	}
	cur, _, err := page.Decode(kindComments, token)
	if err != nil {
		return nil, err
	}
	n := page.Size(size)
	comments, err := s.db.ListComments(ctx, s.db, store.CommentFilter{PostID: postID, ViewerID: p.UserID, AfterID: cur.ID, Limit: n + 1})
	if err != nil {
		return nil, fmt.Errorf("list comments: %w", err)
	}
	comments, next := page.Next(comments, n, func(c *store.Comment) page.Cursor { return page.Cursor{Kind: kindComments, ID: c.ID} })
	var authorIDs []string
	for _, c := range comments {
		authorIDs = append(authorIDs, c.AuthorID)
	}
	authors, err := s.social.ViewsByID(ctx, p.UserID, authorIDs)
	if err != nil {
		return nil, fmt.Errorf("list comments: %w", err)
	}
	out := make([]*CommentView, len(comments))
	for i, c := range comments {
		out[i] = &CommentView{Comment: c, Author: authors[c.AuthorID]}
	}
	return &CommentPage{Comments: out, NextPageToken: next}, nil
}

// DeleteComment deletes a comment; allowed to its author and to the post's
// author. ENOTFOUND when the post or comment is not visible to the caller,
// EFORBIDDEN for anyone else.
func (s *Service) DeleteComment(ctx context.Context, p *account.Principal, postID, commentID string) error {
	var ev notify.Events
	err := s.db.InTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		if err := s.db.LockPost(ctx, tx, postID, false); err != nil {
			return err
		}
		post, err := s.visiblePost(ctx, tx, p, postID)
		if err != nil {
			return err
		}
		c, err := s.db.GetComment(ctx, tx, postID, commentID)
		if store.IsNotFound(err) {
			return flock.Errorf(flock.ENOTFOUND, "comment %q not found", commentID)
		} else if err != nil {
			return err
		}
		if c.AuthorID != p.UserID && post.AuthorID != p.UserID {
			return flock.Errorf(flock.EFORBIDDEN, "only the comment's author or the post's author may delete a comment")
		}
		if err := s.db.DeleteComment(ctx, tx, c); err != nil {
			return err
		}
		return s.events.Record(ctx, tx, &ev, &store.Activity{UserID: p.UserID, Type: notify.CommentDeleted, PostID: &postID, CommentID: &commentID})
	})
	if err != nil {
		return fmt.Errorf("delete comment: %w", err)
	}
	s.events.Publish(ctx, &ev)
	return nil
}
