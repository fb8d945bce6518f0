package ratelimit

import "time"

// NewMemoryCap is NewMemory with a cap of maxKeys keys, for eviction tests.
func NewMemoryCap(now func() time.Time, maxKeys int) Limiter { return newMemory(now, maxKeys) }

// Keys reports how many keys the memory Limiter l holds.
func Keys(l Limiter) int {
	m := l.(*memory)
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.tats)
}
