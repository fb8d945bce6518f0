package client_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"connectrpc.com/connect"

	client "github.com/flock-social/flock/client/go"
	flockv1 "github.com/flock-social/flock/gen/go/flock/v1"
)

// Log in and call an RPC as the account. flockURL is the server's base
// URL, such as "http://127.0.0.1:8080".
func ExampleNew_login() {
	ctx := context.Background()
	c := client.New(flockURL)
	c.OnTokens(func(access, refresh string) {
		// Save the pair (a keychain, a file only the user can read) and
		// start with client.WithTokens(access, refresh) next time.
	})
	if _, err := c.Login(ctx, "alice", "correct horse"); err != nil {
		log.Fatal(err)
	}
	me, err := c.Users.GetMe(ctx, connect.NewRequest(&flockv1.GetMeRequest{}))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(me.Msg.GetUser().GetUsername())
	// Output: alice
}

// Follow notifications live: the helper reconnects after a dropped
// connection and resumes after the last notification it delivered.
func ExampleClient_SubscribeNotifications() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Two fresh, verified accounts (see docs/accounts.md for registering).
	aliceName, bobName := newExampleUser("alice"), newExampleUser("bob")
	alice, bob := client.New(flockURL), client.New(flockURL)
	me, err := alice.Login(ctx, aliceName, "correct horse")
	if err != nil {
		log.Fatal(err)
	}
	if _, err := bob.Login(ctx, bobName, "correct horse"); err != nil {
		log.Fatal(err)
	}

	errEnough := errors.New("enough")
	err = alice.SubscribeNotifications(ctx, "", func(n *flockv1.Notification) error {
		fmt.Println(n.GetType())
		return errEnough // one is enough here; return nil to keep listening
	}, client.OnConnect(func() {
		// Alice is listening: what happens from now on reaches her.
		req := connect.NewRequest(&flockv1.FollowRequest{UserId: me.GetUser().GetId()})
		if _, err := bob.Users.Follow(ctx, req); err != nil {
			log.Fatal(err)
		}
	}))
	if !errors.Is(err, errEnough) {
		log.Fatal(err)
	}
	// Output: NOTIFICATION_TYPE_FOLLOW
}

// Upload a video, then put its id on a post (CreatePost's video_id). It
// is processed in the background: WaitVideo waits until it is ready.
func ExampleClient_UploadVideo() {
	ctx := context.Background()
	c := client.New(flockURL)
	if _, err := c.Login(ctx, "alice", "correct horse"); err != nil {
		log.Fatal(err)
	}
	// Any io.Reader: usually an *os.File. The server decides the type from
	// the first bytes, here an MP4 "ftyp" box.
	clip := append([]byte("\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2"), make([]byte, 1024)...)
	v, err := c.UploadVideo(ctx, "clip.mp4", bytes.NewReader(clip))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(v.GetStatus())
	// Output: VIDEO_STATUS_PROCESSING
}
