// Package client is the Go SDK of Flock. A [Client] holds the generated
// Connect clients of every service (Users, Posts, Groups, Notifications,
// Activity, Moderation) and signs their calls in as one account: it logs
// in, sends the access token, renews it with the refresh token before it
// expires or when the server refuses it (one refresh at a time, since a
// refresh token works once), and hands each new pair to OnTokens for
// saving. SubscribeNotifications and SubscribeActivity follow the live
// streams through disconnections without missing or repeating an event,
// and UploadVideo sends a video over the plain-HTTP upload endpoint.
//
// Typical use:
//
//	c := client.New("https://flock.example")
//	c.OnTokens(func(access, refresh string) { save(access, refresh) })
//	if _, err := c.Login(ctx, "alice", password); err != nil {
//		if connect.CodeOf(err) == connect.CodeUnauthenticated {
//			// wrong username or password
//		}
//		return err
//	}
//
//	me, err := c.Users.GetMe(ctx, connect.NewRequest(&flockv1.GetMeRequest{}))
//	...
//	post, err := c.Posts.CreatePost(ctx, connect.NewRequest(&flockv1.CreatePostRequest{Content: "Hello #flock"}))
//	...
//	err = c.SubscribeNotifications(ctx, lastSeenID, func(n *flockv1.Notification) error {
//		lastSeenID = n.GetId()
//		fmt.Println(n.GetType(), n.GetActor().GetUsername())
//		return nil
//	})
//
// On the next start, c := client.New(url, client.WithTokens(access, refresh))
// resumes without a password. [WithGRPC] and [WithGRPCWeb] switch the
// protocol from Connect. Errors of calls are *connect.Error: check them
// with connect.CodeOf. docs/sdk-go.md in the repository has the details.
//
// The functions [UploadVideo] and [WaitVideo] do the same as the methods
// for programs that keep tokens themselves.
package client
