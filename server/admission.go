package server

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/semaphore"

	"github.com/flock-social/flock/gen/go/flock/v1/flockv1connect"
	"github.com/flock-social/flock/internal/store"
)

// admissionExempt are the procedures that wait for a slot of their own
// instead: each runs an argon2id hash (account.withHashSlot, one per CPU)
// or decodes a picture (media.MaxConcurrentDecodes). Holding an admission
// slot while queued there would keep the cheap requests behind them out
// for a whole hash. A new procedure that hashes a password or decodes a
// picture belongs here.
var admissionExempt = map[string]bool{
	flockv1connect.UserServiceLoginProcedure:          true,
	flockv1connect.UserServiceRegisterProcedure:       true,
	flockv1connect.UserServiceChangePasswordProcedure: true,
	flockv1connect.UserServiceChangeEmailProcedure:    true,
	flockv1connect.UserServiceDeleteAccountProcedure:  true,
	flockv1connect.UserServiceResetPasswordProcedure:  true,
	flockv1connect.UserServiceUpdateMeProcedure:       true,
}

// admissionInterceptor lets at most a fixed number of unary handlers run
// at once; the others wait in their order of arrival (semaphore.Weighted
// serves its waiters first in, first out) until a handler ends or their
// own deadline passes. Streams are not counted: they are open for hours
// and hold no CPU while idle.
//
// Without it, every request in flight ran at once: 16 handlers, and on
// Postgres 16 backends, shared 2 cores, and database/sql hands a freed
// connection to a random waiter. Medium profile, feed at 16 in flight:
// p99 31-64 ms without a limit, 18.5-30.3 ms with 4 in the same rounds
// (docs/performance.md, item 32).
type admissionInterceptor struct {
	sem *semaphore.Weighted
	// slots is the limit; maxWaiting how many requests may wait for a
	// slot. Past it a request is refused at once (busy): a flood of
	// requests would otherwise pile up goroutines and memory here, and be
	// answered only after clients had given up on them.
	slots, maxWaiting     int64
	active, waiting, shed atomic.Int64
}

// waitingPerSlot sets the queue's bound: 64 requests per slot is a queue
// that 4 slots serving feed pages at about 1,300 a second (bench/load,
// medium profile) empty in 200 ms.
const waitingPerSlot = 64

// DefaultMaxActiveRequests is the admission limit (Config.MaxActiveRequests)
// for db: twice the CPUs when the database shares them, so that the
// handlers running at once are about as many as the CPUs can serve; when
// it runs elsewhere, requests spend most of their time waiting for its
// answers, and the limit is the pool's size (at least twice the CPUs).
// With every answer of Postgres 1 ms late, 4 slots halved the feed's rate
// and the pool's 20 beat no limit (docs/performance.md, item 32).
func DefaultMaxActiveRequests(db *store.DB) int {
	n := 2 * runtime.GOMAXPROCS(0)
	if !db.Local() {
		n = max(n, db.MaxConns())
	}
	return n
}

// newAdmissionInterceptor admits slots handlers at once and queues at most
// maxWaiting more (0: waitingPerSlot per slot).
func newAdmissionInterceptor(slots, maxWaiting int) *admissionInterceptor {
	if maxWaiting <= 0 {
		maxWaiting = waitingPerSlot * slots
	}
	return &admissionInterceptor{sem: semaphore.NewWeighted(int64(slots)), slots: int64(slots), maxWaiting: int64(maxWaiting)}
}

func (i *admissionInterceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		if admissionExempt[req.Spec().Procedure] {
			return next(ctx, req)
		}
		if !i.sem.TryAcquire(1) {
			if i.waiting.Add(1) > i.maxWaiting {
				i.waiting.Add(-1)
				i.shed.Add(1)
				return nil, i.busy()
			}
			err := i.sem.Acquire(ctx, 1)
			i.waiting.Add(-1)
			if err != nil {
				// The client gave up or its deadline passed while it
				// waited: the error interceptor answers canceled or
				// deadline_exceeded.
				return nil, err
			}
		}
		i.active.Add(1)
		defer func() {
			i.active.Add(-1)
			i.sem.Release(1)
		}()
		return next(ctx, req)
	}
}

// busy is the answer to a request that finds the queue full: unavailable
// (HTTP 503) with Retry-After, which clients and proxies take as "try
// again shortly", as they do from an overloaded server behind Envoy or
// nginx.
func (i *admissionInterceptor) busy() error {
	err := connect.NewError(connect.CodeUnavailable, fmt.Errorf(
		"this server is busy: %d requests are already waiting for one of its %d handlers; retry in a second", i.maxWaiting, i.slots))
	err.Meta().Set("Retry-After", "1")
	return err
}

func (*admissionInterceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (*admissionInterceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return next
}

func admissionCollectors(i *admissionInterceptor) []prometheus.Collector {
	return []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "flock_requests_active", Help: "Unary requests whose handlers are running (at most FLOCK_MAX_ACTIVE_REQUESTS)."},
			func() float64 { return float64(i.active.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "flock_requests_waiting", Help: "Unary requests waiting for one of FLOCK_MAX_ACTIVE_REQUESTS to end."},
			func() float64 { return float64(i.waiting.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "flock_requests_shed_total", Help: fmt.Sprintf("Unary requests refused as unavailable because %d per slot of FLOCK_MAX_ACTIVE_REQUESTS were already waiting.", waitingPerSlot)},
			func() float64 { return float64(i.shed.Load()) }),
	}
}
