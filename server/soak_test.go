package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/coder/websocket"
	"google.golang.org/protobuf/proto"

	flockv1 "github.com/flock-social/flock/gen/go/flock/v1"
	"github.com/flock-social/flock/gen/go/flock/v1/flockv1connect"
	"github.com/flock-social/flock/internal/store"
	tu "github.com/flock-social/flock/internal/testutil"
	"github.com/flock-social/flock/server"
)

// P21: every event a list shows reaches every live stream of its user
// exactly once, in the list's order (oldest first), with many writers on
// two instances committing in any order, and streams on both instances over
// Connect, gRPC, gRPC-Web and WebSocket, some of them closed on purpose
// mid-run and resumed with since_id (on the other instance, over another
// transport). Notifications and the activity log; Postgres, and SQLite with
// two instances on one file. Without commit-ordered event ids
// (store.NextEventID) Postgres loses events here.
func TestStreams_ExactlyOnceInOrderUnderConcurrentWriters_P21(t *testing.T) {
	t.Parallel()
	redis := tu.RedisURL(t)
	for _, engine := range tu.Engines(t) {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			soak(t, engine, redis)
		})
	}
}

// soakKind is one kind of stream of the soak test.
type soakKind struct {
	name     string
	activity bool
}

var soakKinds = []soakKind{{"notifications", false}, {"activity", true}}

// soakStream is one logical stream of a user: a connection that is closed
// on purpose now and then and reopened with since_id, on another instance
// and transport. ids is everything it received, across reconnects.
type soakStream struct {
	user, kind string
	reconnect  bool

	mu         sync.Mutex
	ids        []string
	reconnects int
	unexpected []error
	transports []string
}

func (st *soakStream) received() []string {
	st.mu.Lock()
	defer st.mu.Unlock()
	return slices.Clone(st.ids)
}

func soak(t *testing.T, engine, redis string) {
	servers := []*tu.Server{tu.MustServer(t, engine, func(c *server.Config) {
		c.RedisURL = redis
		c.StreamPoll = 500 * time.Millisecond
	})}
	servers = append(servers, tu.MustServer(t, engine, func(c *server.Config) {
		c.RedisURL = redis
		c.StreamPoll = 500 * time.Millisecond
		c.DatabaseURL = servers[0].Config.DatabaseURL
	}))
	// A few hot users, and fans who like, comment and follow them.
	const nTargets, nFans = 2, 12
	targets := make([]*tu.Account, nTargets)
	for i := range targets {
		targets[i] = servers[i%2].MustAccount(t, fmt.Sprintf("soakstar%d_%s", i, engine[:2]))
	}
	fans := make([]*tu.Account, nFans)
	for i := range fans {
		fans[i] = servers[i%2].MustAccount(t, fmt.Sprintf("soakfan%d_%s", i, engine[:2]))
	}
	posts := make([][]string, nTargets) // each target's posts
	for i, tg := range targets {
		for j := range 3 {
			p := tu.MustCall[flockv1.CreatePostResponse](t, servers[j%2], tu.Connect, flockv1connect.PostServiceCreatePostProcedure, tg.AccessToken,
				&flockv1.CreatePostRequest{Content: fmt.Sprintf("post %d of %d", j, i)})
			posts[i] = append(posts[i], p.GetPost().GetId())
		}
	}
	// Streams resume from the newest event listed now: the comparison
	// covers everything after it.
	baseline := map[string]string{}
	for _, tg := range targets {
		for _, k := range soakKinds {
			baseline[tg.ID+k.name] = store.MinID // since_id before any id
			if ids := soakList(t, servers[0], tg, k); len(ids) > 0 {
				baseline[tg.ID+k.name] = ids[len(ids)-1]
			}
		}
	}

	// Streams: per target, notifications on 5 and activity on 3, spread
	// over both instances and all transports; every other one reconnects.
	transports := []tu.Transport{tu.Connect, tu.GRPC, ws, tu.GRPCWeb, ws}
	streamCtx, stopStreams := context.WithCancel(context.Background())
	defer stopStreams()
	var (
		streams []*soakStream
		readers sync.WaitGroup
	)
	for ti, tg := range targets {
		for _, k := range soakKinds {
			n := 5
			if k.activity {
				n = 3
			}
			for j := range n {
				st := &soakStream{user: tg.Username, kind: k.name, reconnect: j%2 == 1}
				streams = append(streams, st)
				readers.Add(1)
				go func() {
					defer readers.Done()
					soakRead(streamCtx, servers, tg.AccessToken, k.activity, baseline[tg.ID+k.name], ti+j, transports, st)
				}()
			}
		}
	}

	// Writers, on both instances at once: fans comment on, like and
	// follow the targets; targets post and comment on their own posts
	// (their activity log, from several goroutines at once). They write
	// for 4 s and at least 200 actions (at most 12 s on a busy machine).
	start := time.Now()
	var (
		writers  sync.WaitGroup
		errMu    sync.Mutex
		writeErr []error
		actions  int
	)
	writing := func() bool {
		errMu.Lock()
		n := actions
		errMu.Unlock()
		d := time.Since(start)
		return d < 4*time.Second || (n < 200 && d < 12*time.Second)
	}
	act := func(i int, procedure, token string, req proto.Message) {
		var err error
		switch req := req.(type) {
		case *flockv1.CreateCommentRequest:
			_, err = tu.Call[flockv1.CreateCommentResponse](t.Context(), servers[i%2], tu.Connect, procedure, token, req)
		case *flockv1.LikePostRequest:
			_, err = tu.Call[flockv1.LikePostResponse](t.Context(), servers[i%2], tu.GRPC, procedure, token, req)
		case *flockv1.FollowRequest:
			_, err = tu.Call[flockv1.FollowResponse](t.Context(), servers[i%2], tu.REST, procedure, token, req)
		case *flockv1.CreatePostRequest:
			_, err = tu.Call[flockv1.CreatePostResponse](t.Context(), servers[i%2], tu.Connect, procedure, token, req)
		}
		errMu.Lock()
		defer errMu.Unlock()
		actions++
		if err != nil {
			writeErr = append(writeErr, fmt.Errorf("%s: %w", procedure, err))
		}
	}
	for fi, fan := range fans {
		writers.Add(1)
		go func() {
			defer writers.Done()
			rng := rand.New(rand.NewPCG(uint64(fi), 21))
			for n := 0; writing(); n++ {
				ti := rng.IntN(nTargets)
				post := posts[ti][rng.IntN(len(posts[ti]))]
				switch rng.IntN(4) {
				case 0:
					act(fi+n, flockv1connect.PostServiceLikePostProcedure, fan.AccessToken, &flockv1.LikePostRequest{PostId: post})
				case 1:
					act(fi+n, flockv1connect.UserServiceFollowProcedure, fan.AccessToken, &flockv1.FollowRequest{UserId: targets[ti].ID})
				default:
					act(fi+n, flockv1connect.PostServiceCreateCommentProcedure, fan.AccessToken, &flockv1.CreateCommentRequest{PostId: post, Content: fmt.Sprintf("c%d", n)})
				}
			}
		}()
	}
	for ti, tg := range targets {
		for g := range 2 {
			writers.Add(1)
			go func() {
				defer writers.Done()
				for n := 0; writing(); n++ {
					if n%2 == 0 {
						act(g+n, flockv1connect.PostServiceCreatePostProcedure, tg.AccessToken, &flockv1.CreatePostRequest{Content: fmt.Sprintf("more %d", n)})
					} else {
						act(g+n, flockv1connect.PostServiceCreateCommentProcedure, tg.AccessToken, &flockv1.CreateCommentRequest{PostId: posts[ti][n%len(posts[ti])], Content: "self"})
					}
				}
			}()
		}
	}
	writers.Wait()
	for _, err := range writeErr {
		t.Errorf("write failed: %v", err)
	}

	// What the lists show after the baseline, oldest first.
	want := map[string][]string{}
	for _, tg := range targets {
		for _, k := range soakKinds {
			ids := soakList(t, servers[1], tg, k)
			ids = ids[slices.Index(ids, baseline[tg.ID+k.name])+1:] // -1+1 for MinID
			want[tg.Username+k.name] = ids
		}
	}
	// Wait until every stream has as many events as its list (or 10 s:
	// then something was lost).
	settle := time.Now().Add(10 * time.Second)
	for time.Now().Before(settle) {
		done := true
		for _, st := range streams {
			if len(st.received()) < len(want[st.user+st.kind]) {
				done = false
				break
			}
		}
		if done {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(600 * time.Millisecond) // a poll more: anything extra would show
	stopStreams()
	readers.Wait()

	var listed, expected, delivered, lost, duplicated, unexpected, disordered, reconnects int
	for _, k := range soakKinds {
		for _, tg := range targets {
			listed += len(want[tg.Username+k.name])
		}
	}
	for _, st := range streams {
		exp := want[st.user+st.kind]
		got := st.received()
		expected += len(exp)
		delivered += len(got)
		reconnects += st.reconnects
		seen := map[string]bool{}
		var firsts []string
		for _, id := range got {
			if seen[id] {
				duplicated++
				continue
			}
			seen[id] = true
			firsts = append(firsts, id)
		}
		listedSet := map[string]bool{}
		var missing []string
		for _, id := range exp {
			listedSet[id] = true
			if !seen[id] {
				missing = append(missing, id)
			}
		}
		lost += len(missing)
		var inList []string
		for _, id := range firsts {
			if listedSet[id] {
				inList = append(inList, id)
			} else {
				unexpected++
			}
		}
		// In order: what it received is the list with the lost ones taken out.
		kept := slices.DeleteFunc(slices.Clone(exp), func(id string) bool { return !seen[id] })
		if !slices.Equal(inList, kept) {
			disordered++
		}
		for _, err := range st.unexpected {
			// A client resumes then, as it would after a restart: logged,
			// since a loaded machine may time a database read out.
			t.Logf("%s %s stream ended by the server and resumed: %v", st.user, st.kind, err)
		}
		if len(missing) > 0 {
			t.Errorf("%s %s stream (%v, %d reconnects) lost %d of %d events: %v", st.user, st.kind, st.transports, st.reconnects, len(missing), len(exp), missing)
		}
	}
	t.Logf("%s: %d actions; %d events listed; %d streams (%d reconnects with since_id) expected %d deliveries, got %d: %d lost, %d duplicated, %d unlisted, %d streams out of order",
		engine, actions, listed, len(streams), reconnects, expected, delivered, lost, duplicated, unexpected, disordered)
	if listed < 50 {
		t.Errorf("only %d events listed: the writers did too little for the test to mean anything", listed)
	}
	if duplicated > 0 || unexpected > 0 || disordered > 0 {
		t.Errorf("%d duplicated, %d delivered but not listed, %d streams out of the list's order", duplicated, unexpected, disordered)
	}
}

// soakList returns the ids of every event of kind of the account, fully
// paged, oldest first.
func soakList(t *testing.T, s *tu.Server, a *tu.Account, k soakKind) []string {
	t.Helper()
	var ids []string
	token := ""
	for {
		var next string
		if k.activity {
			res := tu.MustCall[flockv1.ListActivityResponse](t, s, tu.Connect, flockv1connect.ActivityServiceListActivityProcedure, a.AccessToken,
				&flockv1.ListActivityRequest{PageSize: 100, PageToken: token})
			for _, e := range res.GetActivities() {
				ids = append(ids, e.GetId())
			}
			next = res.GetNextPageToken()
		} else {
			res := tu.MustCall[flockv1.ListNotificationsResponse](t, s, tu.Connect, flockv1connect.NotificationServiceListNotificationsProcedure, a.AccessToken,
				&flockv1.ListNotificationsRequest{PageSize: 100, PageToken: token})
			for _, e := range res.GetNotifications() {
				ids = append(ids, e.GetId())
			}
			next = res.GetNextPageToken()
		}
		if next == "" {
			break
		}
		token = next
	}
	slices.Reverse(ids)
	return ids
}

// soakRead runs one logical stream until ctx ends: it opens the stream on
// an instance and transport chosen by turn, reads it, and, when st
// reconnects, closes it after 300-900 ms and reopens it with since_id set
// to the last id received (or since when none yet).
func soakRead(ctx context.Context, servers []*tu.Server, token string, activity bool, since string, turn int, transports []tu.Transport, st *soakStream) {
	rng := rand.New(rand.NewPCG(uint64(turn), uint64(len(st.user))))
	for ctx.Err() == nil {
		s, tr := servers[turn%2], transports[turn%len(transports)]
		turn++
		connCtx, cancel := context.WithCancel(ctx)
		if st.reconnect {
			connCtx, cancel = context.WithTimeout(ctx, time.Duration(300+rng.IntN(600))*time.Millisecond)
		}
		st.mu.Lock()
		if n := len(st.ids); n > 0 {
			since = st.ids[n-1]
		}
		st.transports = append(st.transports, string(tr))
		st.mu.Unlock()
		err := soakOpen(connCtx, s, tr, token, activity, since, func(id string) {
			st.mu.Lock()
			st.ids = append(st.ids, id)
			st.mu.Unlock()
		})
		cancel()
		if ctx.Err() != nil {
			return
		}
		st.mu.Lock()
		if connCtx.Err() == nil {
			// Ended by the server, not by us: worth a look, then resume.
			st.unexpected = append(st.unexpected, err)
		}
		st.reconnects++
		st.mu.Unlock()
	}
}

// soakOpen opens one stream with since_id and calls got with the id of
// each event until ctx ends or the stream does.
func soakOpen(ctx context.Context, s *tu.Server, tr tu.Transport, token string, activity bool, since string, got func(string)) error {
	if tr == ws {
		path := "/api/notifications/"
		if activity {
			path = "/api/activity-log/"
		}
		if since != "" {
			path += "?since_id=" + url.QueryEscape(since)
		}
		conn, _, err := websocket.Dial(ctx, strings.Replace(s.URL, "http", "ws", 1)+path,
			&websocket.DialOptions{HTTPClient: s.HTTP, Subprotocols: []string{"flock.v1", "bearer." + token}})
		if err != nil {
			return err
		}
		defer conn.CloseNow()
		for {
			_, b, err := conn.Read(ctx)
			if err != nil {
				return err
			}
			var ev struct{ ID string }
			if err := json.Unmarshal(b, &ev); err != nil {
				return err
			}
			got(ev.ID)
		}
	}
	hc, opts := s.HTTP, []connect.ClientOption{connect.WithProtoJSON()}
	switch tr {
	case tu.GRPC:
		hc, opts = s.H2C, []connect.ClientOption{connect.WithGRPC()}
	case tu.GRPCWeb:
		opts = []connect.ClientOption{connect.WithGRPCWeb()}
	}
	if activity {
		req := connect.NewRequest(&flockv1.ActivityServiceSubscribeRequest{SinceId: since})
		req.Header().Set("Authorization", "Bearer "+token)
		st, err := flockv1connect.NewActivityServiceClient(hc, s.URL, opts...).Subscribe(ctx, req)
		if err != nil {
			return err
		}
		defer st.Close()
		for st.Receive() {
			got(st.Msg().GetId())
		}
		return st.Err()
	}
	req := connect.NewRequest(&flockv1.NotificationServiceSubscribeRequest{SinceId: since})
	req.Header().Set("Authorization", "Bearer "+token)
	st, err := flockv1connect.NewNotificationServiceClient(hc, s.URL, opts...).Subscribe(ctx, req)
	if err != nil {
		return err
	}
	defer st.Close()
	for st.Receive() {
		got(st.Msg().GetId())
	}
	return st.Err()
}
