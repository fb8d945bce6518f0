package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"connectrpc.com/connect"

	flockv1 "github.com/flock-social/flock/gen/go/flock/v1"
	"github.com/flock-social/flock/gen/go/flock/v1/flockv1connect"
)

// api is the part of Flock's public API the scenarios call, over one
// transport; tok is a user's access token.
type api interface {
	feed(ctx context.Context, tok string) error
	createPost(ctx context.Context, tok, content string) error
	like(ctx context.Context, tok, postID string) error
	comment(ctx context.Context, tok, postID, content string) error
	getUser(ctx context.Context, tok, userID string) error
	me(ctx context.Context, tok string) error
	searchPosts(ctx context.Context, tok, hashtag string) error
	searchUsers(ctx context.Context, tok, query string) error
	comments(ctx context.Context, tok, postID string) error
	notifications(ctx context.Context, tok string) error
	activity(ctx context.Context, tok string) error
}

// feedPageSize is the page the feed scenario asks for.
const feedPageSize = 20

// restAPI calls the REST JSON routes of api-contract.md.
type restAPI struct {
	client *http.Client
	base   string
}

func (c restAPI) do(ctx context.Context, method, path, tok string, body any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	res, err := c.client.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode/100 != 2 {
		b, _ := io.ReadAll(io.LimitReader(res.Body, 300))
		return fmt.Errorf("%s %s: HTTP %d: %s", method, path, res.StatusCode, bytes.TrimSpace(b))
	}
	_, err = io.Copy(io.Discard, res.Body)
	return err
}

func (c restAPI) feed(ctx context.Context, tok string) error {
	return c.do(ctx, http.MethodGet, fmt.Sprintf("/api/posts/?pageSize=%d", feedPageSize), tok, nil)
}

func (c restAPI) createPost(ctx context.Context, tok, content string) error {
	return c.do(ctx, http.MethodPost, "/api/posts/", tok, map[string]string{"content": content})
}

func (c restAPI) like(ctx context.Context, tok, postID string) error {
	return c.do(ctx, http.MethodPost, "/api/posts/"+url.PathEscape(postID)+"/like/", tok, struct{}{})
}

func (c restAPI) comment(ctx context.Context, tok, postID, content string) error {
	return c.do(ctx, http.MethodPost, "/api/posts/"+url.PathEscape(postID)+"/comments/", tok, map[string]string{"content": content})
}

func (c restAPI) getUser(ctx context.Context, tok, userID string) error {
	return c.do(ctx, http.MethodGet, "/api/users/"+url.PathEscape(userID)+"/", tok, nil)
}

func (c restAPI) me(ctx context.Context, tok string) error {
	return c.do(ctx, http.MethodGet, "/api/users/", tok, nil)
}

func (c restAPI) searchPosts(ctx context.Context, tok, hashtag string) error {
	return c.do(ctx, http.MethodGet, fmt.Sprintf("/api/posts/search/?hashtag=%s&pageSize=%d", url.QueryEscape(hashtag), feedPageSize), tok, nil)
}

func (c restAPI) searchUsers(ctx context.Context, tok, query string) error {
	return c.do(ctx, http.MethodGet, fmt.Sprintf("/api/users/search/?query=%s&pageSize=%d", url.QueryEscape(query), feedPageSize), tok, nil)
}

func (c restAPI) comments(ctx context.Context, tok, postID string) error {
	return c.do(ctx, http.MethodGet, fmt.Sprintf("/api/posts/%s/comments/?pageSize=%d", url.PathEscape(postID), feedPageSize), tok, nil)
}

func (c restAPI) notifications(ctx context.Context, tok string) error {
	return c.do(ctx, http.MethodGet, fmt.Sprintf("/api/notifications/?pageSize=%d", feedPageSize), tok, nil)
}

func (c restAPI) activity(ctx context.Context, tok string) error {
	return c.do(ctx, http.MethodGet, fmt.Sprintf("/api/activity-log/?pageSize=%d", feedPageSize), tok, nil)
}

// connectAPI calls the Connect procedures with the generated clients, in
// binary protobuf (their default).
type connectAPI struct {
	posts  flockv1connect.PostServiceClient
	users  flockv1connect.UserServiceClient
	notify flockv1connect.NotificationServiceClient
	actlog flockv1connect.ActivityServiceClient
}

func newConnectAPI(client *http.Client, base string) connectAPI {
	return connectAPI{posts: flockv1connect.NewPostServiceClient(client, base), users: flockv1connect.NewUserServiceClient(client, base),
		notify: flockv1connect.NewNotificationServiceClient(client, base), actlog: flockv1connect.NewActivityServiceClient(client, base)}
}

func authed[T any](msg *T, tok string) *connect.Request[T] {
	req := connect.NewRequest(msg)
	req.Header().Set("Authorization", "Bearer "+tok)
	return req
}

func (c connectAPI) feed(ctx context.Context, tok string) error {
	_, err := c.posts.ListFeed(ctx, authed(&flockv1.ListFeedRequest{PageSize: feedPageSize}, tok))
	return err
}

func (c connectAPI) createPost(ctx context.Context, tok, content string) error {
	_, err := c.posts.CreatePost(ctx, authed(&flockv1.CreatePostRequest{Content: content}, tok))
	return err
}

func (c connectAPI) like(ctx context.Context, tok, postID string) error {
	_, err := c.posts.LikePost(ctx, authed(&flockv1.LikePostRequest{PostId: postID}, tok))
	return err
}

func (c connectAPI) comment(ctx context.Context, tok, postID, content string) error {
	_, err := c.posts.CreateComment(ctx, authed(&flockv1.CreateCommentRequest{PostId: postID, Content: content}, tok))
	return err
}

func (c connectAPI) getUser(ctx context.Context, tok, userID string) error {
	_, err := c.users.GetUser(ctx, authed(&flockv1.GetUserRequest{UserId: userID}, tok))
	return err
}

func (c connectAPI) me(ctx context.Context, tok string) error {
	_, err := c.users.GetMe(ctx, authed(&flockv1.GetMeRequest{}, tok))
	return err
}

func (c connectAPI) searchPosts(ctx context.Context, tok, hashtag string) error {
	_, err := c.posts.SearchPosts(ctx, authed(&flockv1.SearchPostsRequest{Hashtag: hashtag, PageSize: feedPageSize}, tok))
	return err
}

func (c connectAPI) searchUsers(ctx context.Context, tok, query string) error {
	_, err := c.users.SearchUsers(ctx, authed(&flockv1.SearchUsersRequest{Query: query, PageSize: feedPageSize}, tok))
	return err
}

func (c connectAPI) comments(ctx context.Context, tok, postID string) error {
	_, err := c.posts.ListComments(ctx, authed(&flockv1.ListCommentsRequest{PostId: postID, PageSize: feedPageSize}, tok))
	return err
}

func (c connectAPI) notifications(ctx context.Context, tok string) error {
	_, err := c.notify.ListNotifications(ctx, authed(&flockv1.ListNotificationsRequest{PageSize: feedPageSize}, tok))
	return err
}

func (c connectAPI) activity(ctx context.Context, tok string) error {
	_, err := c.actlog.ListActivity(ctx, authed(&flockv1.ListActivityRequest{PageSize: feedPageSize}, tok))
	return err
}
