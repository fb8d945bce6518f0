package server

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/flock-social/flock/gen/go/flock/v1/flockv1connect"
)

// admissionHarness serves two procedures through an admission interceptor
// of n slots: a plain one and Login (exempt). Each call blocks in its
// handler until the test releases it, and the handler records the order
// in which calls entered.
type admissionHarness struct {
	adm     *admissionInterceptor
	srv     *httptest.Server
	mu      sync.Mutex
	entered []string // the x-call header of each call, in order of entry
	release map[string]chan struct{}
}

const admissionTestProcedure = "/flock.test.v1.Test/Hold"

func newAdmissionHarness(t *testing.T, n, maxWaiting int) *admissionHarness {
	h := &admissionHarness{adm: newAdmissionInterceptor(n, maxWaiting), release: map[string]chan struct{}{}}
	hold := func(ctx context.Context, req *connect.Request[emptypb.Empty]) (*connect.Response[emptypb.Empty], error) {
		name := req.Header().Get("x-call")
		h.mu.Lock()
		h.entered = append(h.entered, name)
		ch := h.release[name]
		h.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
		}
		return connect.NewResponse(&emptypb.Empty{}), nil
	}
	mux := http.NewServeMux()
	for _, p := range []string{admissionTestProcedure, flockv1connect.UserServiceLoginProcedure} {
		mux.Handle(p, connect.NewUnaryHandler(p, hold, connect.WithInterceptors(h.adm)))
	}
	h.srv = httptest.NewServer(mux)
	t.Cleanup(h.srv.Close)
	return h
}

// start calls procedure as name in the background; the returned channel
// yields its error once it is answered.
func (h *admissionHarness) start(ctx context.Context, procedure, name string) <-chan error {
	h.mu.Lock()
	h.release[name] = make(chan struct{})
	h.mu.Unlock()
	done := make(chan error, 1)
	go func() {
		req := connect.NewRequest(&emptypb.Empty{})
		req.Header().Set("x-call", name)
		_, err := connect.NewClient[emptypb.Empty, emptypb.Empty](h.srv.Client(), h.srv.URL+procedure).CallUnary(ctx, req)
		done <- err
	}()
	return done
}

func (h *admissionHarness) finish(name string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	close(h.release[name])
}

func (h *admissionHarness) order() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.entered...)
}

// waitFor polls until cond holds; the calls it waits for are in flight
// over a loopback connection, so it is reached within milliseconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestAdmission_AtMostNHandlersRunAndWaitersEnterInOrderOfArrival(t *testing.T) {
	t.Parallel()
	// The calls go to the interceptor itself, inside a synctest bubble:
	// synctest.Wait returns once every goroutine of the bubble is blocked,
	// that is once each call sent so far is in its handler or in the
	// semaphore's queue. The order of arrival is then known however
	// loaded the machine is; a pause between the calls could not promise
	// it (a waiter counts itself as waiting a few instructions before it
	// joins the queue).
	synctest.Test(t, func(t *testing.T) {
		adm := newAdmissionInterceptor(2, 0)
		names := []string{"a", "b", "c", "d", "e"}
		release := map[string]chan struct{}{}
		for _, name := range names {
			release[name] = make(chan struct{})
		}
		var mu sync.Mutex
		var entered []string
		order := func() []string {
			mu.Lock()
			defer mu.Unlock()
			return append([]string(nil), entered...)
		}
		call := adm.WrapUnary(func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
			name := req.Header().Get("x-call")
			mu.Lock()
			entered = append(entered, name)
			mu.Unlock()
			<-release[name]
			return connect.NewResponse(&emptypb.Empty{}), nil
		})
		done := map[string]chan error{}
		for _, name := range names {
			done[name] = make(chan error, 1)
			go func() {
				req := connect.NewRequest(&emptypb.Empty{})
				req.Header().Set("x-call", name)
				_, err := call(t.Context(), req)
				done[name] <- err
			}()
			synctest.Wait()
		}
		if got := order(); len(got) != 2 || adm.active.Load() != 2 || adm.waiting.Load() != 3 {
			t.Fatalf("with 2 slots and 5 calls: entered %v, %d active, %d waiting; want 2 entered and active, 3 waiting", got, adm.active.Load(), adm.waiting.Load())
		}
		for _, name := range names {
			close(release[name])
			if err := <-done[name]; err != nil {
				t.Fatalf("call %s: %v", name, err)
			}
			synctest.Wait()
		}
		if got := order(); len(got) != 5 || got[2] != "c" || got[3] != "d" || got[4] != "e" {
			t.Fatalf("order of entry %v: the waiters did not enter in their order of arrival (c, d, e)", got)
		}
		if a, w := adm.active.Load(), adm.waiting.Load(); a != 0 || w != 0 {
			t.Fatalf("after every call: %d active, %d waiting", a, w)
		}
	})
}

// A waiter whose deadline passes, or whose client gives up, is answered
// deadline_exceeded or canceled and leaves no slot taken behind it.
func TestAdmission_WaiterEndsWithItsContext(t *testing.T) {
	t.Parallel()
	h := newAdmissionHarness(t, 1, 0)
	holder := h.start(t.Context(), admissionTestProcedure, "holder")
	waitFor(t, "the holder runs", func() bool { return h.adm.active.Load() == 1 })

	short, cancelShort := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancelShort()
	if err := <-h.start(short, admissionTestProcedure, "late"); connect.CodeOf(err) != connect.CodeDeadlineExceeded {
		t.Fatalf("waiter past its deadline: %v, want deadline_exceeded", err)
	}
	gaveUp, cancel := context.WithCancel(t.Context())
	leaving := h.start(gaveUp, admissionTestProcedure, "leaving")
	waitFor(t, "the second waiter queues", func() bool { return h.adm.waiting.Load() == 1 })
	cancel()
	if err := <-leaving; connect.CodeOf(err) != connect.CodeCanceled && !errors.Is(err, context.Canceled) {
		t.Fatalf("waiter whose client gave up: %v, want canceled", err)
	}
	waitFor(t, "no call waits", func() bool { return h.adm.waiting.Load() == 0 })

	h.finish("holder")
	if err := <-holder; err != nil {
		t.Fatal(err)
	}
	next := h.start(t.Context(), admissionTestProcedure, "next")
	waitFor(t, "the next call runs", func() bool { return h.adm.active.Load() == 1 })
	h.finish("next")
	if err := <-next; err != nil {
		t.Fatal(err)
	}
	if got := h.order(); len(got) != 2 || got[1] != "next" {
		t.Fatalf("entered %v: a waiter that gave up ran, or the slot it waited for was lost", got)
	}
}

// The procedures that wait for a hash or decode slot of their own take no
// admission slot: a login goes through while every slot is held.
func TestAdmission_HashingProceduresTakeNoSlot(t *testing.T) {
	t.Parallel()
	h := newAdmissionHarness(t, 1, 0)
	holder := h.start(t.Context(), admissionTestProcedure, "holder")
	waitFor(t, "the holder runs", func() bool { return h.adm.active.Load() == 1 })
	login := h.start(t.Context(), flockv1connect.UserServiceLoginProcedure, "login")
	waitFor(t, "the login runs", func() bool { return len(h.order()) == 2 })
	h.finish("login")
	if err := <-login; err != nil {
		t.Fatal(err)
	}
	h.finish("holder")
	if err := <-holder; err != nil {
		t.Fatal(err)
	}
}

// A request that finds the queue full is refused at once, unavailable with
// Retry-After, and takes nothing from the requests already queued.
func TestAdmission_FullQueueRefusesAtOnceAsUnavailable(t *testing.T) {
	t.Parallel()
	h := newAdmissionHarness(t, 1, 2)
	holder := h.start(t.Context(), admissionTestProcedure, "holder")
	waitFor(t, "the holder runs", func() bool { return h.adm.active.Load() == 1 })
	first := h.start(t.Context(), admissionTestProcedure, "first")
	second := h.start(t.Context(), admissionTestProcedure, "second")
	waitFor(t, "two calls queue", func() bool { return h.adm.waiting.Load() == 2 })

	err := <-h.start(t.Context(), admissionTestProcedure, "third")
	var cerr *connect.Error
	if !errors.As(err, &cerr) || cerr.Code() != connect.CodeUnavailable {
		t.Fatalf("a call past the full queue: %v, want unavailable", err)
	}
	if !strings.Contains(cerr.Message(), "this server is busy: 2 requests are already waiting for one of its 1 handlers; retry in a second") {
		t.Errorf("message %q does not say why and what to do", cerr.Message())
	}
	if got := cerr.Meta().Get("Retry-After"); got != "1" {
		t.Errorf("Retry-After %q, want 1", got)
	}
	if got := h.adm.shed.Load(); got != 1 {
		t.Errorf("shed count %d, want 1", got)
	}
	for _, name := range []string{"holder", "first", "second"} {
		h.finish(name)
	}
	for _, done := range []<-chan error{holder, first, second} {
		if err := <-done; err != nil {
			t.Fatalf("a queued call failed after the refusal: %v", err)
		}
	}
	if got := h.order(); len(got) != 3 {
		t.Fatalf("entered %v: the refused call ran, or a queued one did not", got)
	}
}
