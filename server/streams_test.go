package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/coder/websocket"

	flockv1 "github.com/flock-social/flock/gen/go/flock/v1"
	"github.com/flock-social/flock/gen/go/flock/v1/flockv1connect"
	tu "github.com/flock-social/flock/internal/testutil"
	"github.com/flock-social/flock/server"
)

// ws is the WebSocket "transport" of the live streams, beside tu's.
const ws tu.Transport = "websocket"

// liveStream is one open stream of either kind over any transport, read in
// the background: ids of the events it delivers, then how it ended.
type liveStream struct {
	ids    chan string
	done   chan error
	cancel context.CancelFunc
}

// openStream opens a notifications (or, with activity, activity-log)
// stream over tr and returns once the server listens, or the error that
// refused it.
func openStream(t *testing.T, s *tu.Server, tr tu.Transport, activity bool, token string) (*liveStream, error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ls := &liveStream{ids: make(chan string, 1000), done: make(chan error, 1), cancel: cancel}
	if tr == ws {
		path := "/api/notifications/"
		if activity {
			path = "/api/activity-log/"
		}
		conn, res, err := wsDial(t, s, path, token)
		if err != nil {
			cancel()
			if res != nil {
				body, _ := io.ReadAll(res.Body)
				return nil, fmt.Errorf("websocket refused with HTTP %d %s: %w", res.StatusCode, body, err)
			}
			return nil, err
		}
		context.AfterFunc(ctx, func() { conn.Close(websocket.StatusNormalClosure, "") })
		go func() {
			defer close(ls.ids)
			for {
				_, b, err := conn.Read(ctx)
				if err != nil {
					ls.done <- err
					return
				}
				var ev struct{ ID string }
				if err := json.Unmarshal(b, &ev); err != nil {
					ls.done <- err
					return
				}
				ls.ids <- ev.ID
			}
		}()
		return ls, nil
	}
	hc, opts := s.HTTP, []connect.ClientOption{connect.WithProtoJSON()}
	switch tr {
	case tu.GRPC:
		hc, opts = s.H2C, []connect.ClientOption{connect.WithGRPC()}
	case tu.GRPCWeb:
		opts = []connect.ClientOption{connect.WithGRPCWeb()}
	}
	var (
		receive func() (string, bool)
		end     func() error
	)
	if activity {
		req := connect.NewRequest(&flockv1.ActivityServiceSubscribeRequest{})
		req.Header().Set("Authorization", "Bearer "+token)
		st, err := flockv1connect.NewActivityServiceClient(hc, s.URL, opts...).Subscribe(ctx, req)
		if err != nil {
			cancel()
			return nil, err
		}
		st.ResponseHeader() // waits for the answer: listening, or refused
		receive = func() (string, bool) { ok := st.Receive(); return st.Msg().GetId(), ok }
		end = func() error { err := st.Err(); st.Close(); return err }
	} else {
		req := connect.NewRequest(&flockv1.NotificationServiceSubscribeRequest{})
		req.Header().Set("Authorization", "Bearer "+token)
		st, err := flockv1connect.NewNotificationServiceClient(hc, s.URL, opts...).Subscribe(ctx, req)
		if err != nil {
			cancel()
			return nil, err
		}
		st.ResponseHeader()
		receive = func() (string, bool) { ok := st.Receive(); return st.Msg().GetId(), ok }
		end = func() error { err := st.Err(); st.Close(); return err }
	}
	go func() {
		defer close(ls.ids)
		for {
			id, ok := receive()
			if !ok {
				ls.done <- end()
				return
			}
			ls.ids <- id
		}
	}()
	return ls, nil
}

// mustOpenStream opens a stream that the server must accept.
func mustOpenStream(t *testing.T, s *tu.Server, tr tu.Transport, activity bool, token string) *liveStream {
	t.Helper()
	ls, err := openStream(t, s, tr, activity, token)
	if err != nil {
		t.Fatalf("open %s stream: %v", tr, err)
	}
	return ls
}

func (ls *liveStream) next(t *testing.T) string {
	t.Helper()
	select {
	case id, ok := <-ls.ids:
		if !ok {
			t.Fatalf("stream ended: %v", <-ls.done)
		}
		return id
	case <-time.After(10 * time.Second):
		t.Fatal("no event within 10s")
	}
	return ""
}

// ended waits for the stream to end and returns why.
func (ls *liveStream) ended(t *testing.T) error {
	t.Helper()
	for {
		select {
		case _, ok := <-ls.ids:
			if !ok {
				return <-ls.done
			}
		case <-time.After(10 * time.Second):
			t.Fatal("stream did not end within 10s")
		}
	}
}

// eventually retries fn until it succeeds, for up to 10s.
func eventually(t *testing.T, what string, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// P24: an account holds at most MaxStreamsPerUser live streams on an
// instance, WebSocket and Subscribe, both kinds, all transports counted
// together; past it a new one is refused with resource_exhausted (429
// before the WebSocket upgrade) and a message saying what to do; another
// account is not affected; a closed stream frees its slot.
func TestStreams_CappedPerAccount_P24(t *testing.T) {
	t.Parallel()
	for _, engine := range tu.Engines(t) {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			const limit = 4
			s := tu.MustServer(t, engine, func(c *server.Config) { c.MaxStreamsPerUser = limit })
			alice, bob := s.MustAccount(t, "capped"), s.MustAccount(t, "uncapped")

			// One of each transport and both kinds: the count is shared.
			wsNotifications := mustOpenStream(t, s, ws, false, alice.AccessToken)
			mustOpenStream(t, s, tu.Connect, true, alice.AccessToken)
			mustOpenStream(t, s, tu.GRPC, false, alice.AccessToken)
			grpcWeb := mustOpenStream(t, s, tu.GRPCWeb, true, alice.AccessToken)
			if got := s.Metric(t, "flock_streams_open"); got != limit {
				t.Fatalf("flock_streams_open = %v, want %d", got, limit)
			}

			for _, tr := range []tu.Transport{ws, tu.Connect, tu.GRPC, tu.GRPCWeb} {
				for _, activity := range []bool{false, true} {
					t.Run(fmt.Sprintf("%s activity=%v refused", tr, activity), func(t *testing.T) {
						ls, err := openStream(t, s, tr, activity, alice.AccessToken)
						if err == nil {
							err = ls.ended(t)
						}
						if tr == ws {
							if err == nil || !strings.Contains(err.Error(), "HTTP 429") {
								t.Fatalf("the WebSocket past the cap: %v, want HTTP 429 before the upgrade", err)
							}
						} else {
							wantCode(t, err, connect.CodeResourceExhausted)
						}
						for _, want := range []string{"4 live streams", "close streams or browser tabs"} {
							if !strings.Contains(err.Error(), want) {
								t.Errorf("message %q does not say %q", err, want)
							}
						}
					})
				}
			}
			if got := s.Metric(t, "flock_streams_refused_total"); got != 8 {
				t.Errorf("flock_streams_refused_total = %v, want 8", got)
			}

			// Another account has its own count.
			mustOpenStream(t, s, tu.GRPC, false, bob.AccessToken)

			// Closing a stream frees its slot, on every transport.
			for _, closing := range []*liveStream{wsNotifications, grpcWeb} {
				closing.cancel()
				closing.ended(t)
				eventually(t, "the closed stream's slot freed", func() error {
					if got := s.Metric(t, "flock_streams_open"); got != limit-1+1 /* bob's */ {
						return fmt.Errorf("flock_streams_open = %v", got)
					}
					return nil
				})
				mustOpenStream(t, s, tu.Connect, false, alice.AccessToken)
				if got := s.Metric(t, "flock_streams_open"); got != limit+1 {
					t.Fatalf("the stream in the freed slot was not accepted: flock_streams_open = %v, want %d", got, limit+1)
				}
			}
		})
	}
}

// P24: a negative cap setting means no cap.
func TestStreams_NegativeCapMeansNone_P24(t *testing.T) {
	t.Parallel()
	s := tu.MustServer(t, "sqlite", func(c *server.Config) { c.MaxStreamsPerUser = -1 })
	alice := s.MustAccount(t, "uncappedall")
	for range 25 { // past the default of 20
		mustOpenStream(t, s, tu.GRPC, false, alice.AccessToken)
	}
	if got := s.Metric(t, "flock_streams_open"); got != 25 {
		t.Fatalf("flock_streams_open = %v, want 25", got)
	}
}

// P24: the per-instance bound refuses the stream past it, whoever asks.
func TestStreams_CappedPerInstance_P24(t *testing.T) {
	t.Parallel()
	s := tu.MustServer(t, "sqlite", func(c *server.Config) { c.MaxStreams = 2 })
	alice, bob := s.MustAccount(t, "firstin"), s.MustAccount(t, "secondin")
	mustOpenStream(t, s, ws, false, alice.AccessToken)
	mustOpenStream(t, s, tu.GRPC, false, bob.AccessToken)
	ls, err := openStream(t, s, tu.Connect, false, bob.AccessToken)
	if err == nil {
		err = ls.ended(t)
	}
	wantCode(t, err, connect.CodeResourceExhausted)
	if !strings.Contains(err.Error(), "this server already holds 2 live streams") {
		t.Errorf("message: %v", err)
	}
}

// P24: one user's streams on an instance share one store read per event:
// with ten streams open over every transport, an event costs one read of
// events, one conversion and one session check, not ten of each, and every
// stream still gets it.
func TestStreams_OneReadPerUserPerEvent_P24(t *testing.T) {
	t.Parallel()
	for _, engine := range tu.Engines(t) {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			// No periodic re-read during the test: only wake-ups read.
			s := tu.MustServer(t, engine, func(c *server.Config) { c.StreamPoll = time.Hour })
			a := api{t: t, s: s, tr: tu.Connect}
			alice := s.MustAccount(t, "readonce")
			var streams []*liveStream
			for _, tr := range []tu.Transport{ws, ws, ws, tu.Connect, tu.Connect, tu.Connect, tu.GRPC, tu.GRPC, tu.GRPCWeb, tu.GRPCWeb} {
				streams = append(streams, mustOpenStream(t, s, tr, false, alice.AccessToken))
			}
			everyoneGets := func() {
				t.Helper()
				var want string
				for i, ls := range streams {
					id := ls.next(t)
					if i == 0 {
						want = id
					} else if id != want {
						t.Fatalf("stream %d got %s, stream 0 got %s", i, id, want)
					}
				}
			}
			// A first event: once every stream has it, every stream is past
			// its own opening read.
			fan := s.MustAccount(t, "readfan0")
			if err := a.follow(fan.AccessToken, alice.ID); err != nil {
				t.Fatal(err)
			}
			everyoneGets()

			reads := func() (events, prepare, session float64) {
				return s.Metric(t, `flock_stream_store_reads_total{read="events"}`),
					s.Metric(t, `flock_stream_store_reads_total{read="prepare"}`),
					s.Metric(t, `flock_stream_store_reads_total{read="session"}`)
			}
			// A stream whose opening read came after the first event
			// committed has it from that read, so every stream may have it
			// while the hub's read of it is still under way: wait for the
			// hub's read and session check (each stream made one of each
			// while opening). The hub counts its conversion between the two.
			opened := float64(len(streams))
			eventually(t, "the hub's read of the first event", func() error {
				if e, _, sess := reads(); e < opened+1 || sess < opened+1 {
					return fmt.Errorf("%v event reads and %v session checks after %v streams opened and one event, want at least %v of each", e, sess, opened, opened+1)
				}
				return nil
			})
			const n = 3
			e0, p0, s0 := reads()
			for i := range n {
				fan := s.MustAccount(t, fmt.Sprintf("readfan%d", i+1))
				if err := a.follow(fan.AccessToken, alice.ID); err != nil {
					t.Fatal(err)
				}
				everyoneGets()
			}
			e1, p1, s1 := reads()
			t.Logf("%d events to %d streams: %v event reads, %v conversions, %v session checks", n, len(streams), e1-e0, p1-p0, s1-s0)
			if e1-e0 > n || p1-p0 > n || s1-s0 > n {
				t.Errorf("%d events to %d streams of one user cost %v event reads, %v conversions and %v session checks; want at most %d of each (one per event)",
					n, len(streams), e1-e0, p1-p0, s1-s0, n)
			}
		})
	}
}

// P20 and P24 together: among one user's streams, one that stops reading
// is cut off alone; the others, fed by the same hub, get every event.
func TestStreams_StalledStreamOfSameUserCutOffAlone_P24(t *testing.T) {
	t.Parallel()
	s := tu.MustServer(t, "sqlite")
	a := api{t: t, s: s, tr: tu.Connect}
	alice := s.MustAccount(t, "stallmate")
	stalled, _, err := wsDial(t, s, "/api/notifications/", alice.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	defer stalled.CloseNow() // never read
	healthy := []*liveStream{mustOpenStream(t, s, ws, false, alice.AccessToken), mustOpenStream(t, s, tu.GRPC, false, alice.AccessToken)}
	p := a.post(alice.AccessToken, "storm")
	fan := s.MustAccount(t, "stormer")
	const n = 120
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			content := fmt.Sprintf("%03d %s", i, strings.Repeat("y", 1500))
			if _, err := tu.Call[flockv1.CreateCommentResponse](t.Context(), s, tu.Connect, flockv1connect.PostServiceCreateCommentProcedure, fan.AccessToken,
				&flockv1.CreateCommentRequest{PostId: p.GetId(), Content: content}); err != nil {
				t.Errorf("comment: %v", err)
			}
		})
	}
	wg.Wait()
	for _, h := range healthy {
		seen := map[string]bool{}
		for range n {
			id := h.next(t)
			if seen[id] {
				t.Fatalf("event %s delivered twice", id)
			}
			seen[id] = true
		}
	}
}
