package ratelimit

import (
	"context"
	"sync"
	"time"
)

// memory is the in-process Limiter. It keeps, per key, the GCRA theoretical
// arrival time (tat): the instant the key's bucket would be full again.
type memory struct {
	now     func() time.Time
	maxKeys int

	mu    sync.Mutex
	tats  map[string]time.Time
	swept time.Time
}

var _ Limiter = (*memory)(nil)

// sweepEvery is how often idle keys are dropped even below maxKeys.
const sweepEvery = time.Minute

// NewMemory returns an in-process Limiter for a single instance that reads
// the time from now (time.Now if nil). Keys whose bucket has refilled are
// dropped, as forgetting them changes nothing; if more than 100,000 keys are
// still busy, random ones are forgotten too, giving them a fresh budget. It
// starts no goroutines and is safe for concurrent use.
func NewMemory(now func() time.Time) Limiter {
	return newMemory(now, 100_000)
}

func newMemory(now func() time.Time, maxKeys int) *memory {
	if now == nil {
		now = time.Now
	}
	return &memory{now: now, maxKeys: maxKeys, tats: make(map[string]time.Time)}
}

// Allow implements Limiter with GCRA, matching the Redis backend.
func (m *memory) Allow(_ context.Context, key string, l Limit) (Result, error) {
	interval, err := l.interval()
	if err != nil {
		return Result{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	if len(m.tats) >= m.maxKeys || now.Sub(m.swept) >= sweepEvery {
		m.sweep(now)
	}
	tat := m.tats[key]
	if tat.Before(now) {
		tat = now
	}
	next := tat.Add(interval)
	// A request is allowed once next is no more than the burst ahead of now.
	slack := now.Sub(next.Add(-interval * time.Duration(l.Burst)))
	if slack < 0 {
		return Result{Limit: l, RetryAfter: -slack, ResetAfter: tat.Sub(now)}, nil
	}
	m.tats[key] = next
	return Result{Allowed: true, Limit: l, Remaining: int(slack / interval), ResetAfter: next.Sub(now)}, nil
}

// sweep drops the keys whose bucket is full again, then, if the map is still
// near its cap, random keys (map order) until it is below 90% of the cap.
func (m *memory) sweep(now time.Time) {
	for k, tat := range m.tats {
		if !tat.After(now) {
			delete(m.tats, k)
		}
	}
	for k := range m.tats {
		if len(m.tats) < m.maxKeys*9/10 {
			break
		}
		delete(m.tats, k)
	}
	m.swept = now
}

// Close forgets every key.
func (m *memory) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	clear(m.tats)
	return nil
}
