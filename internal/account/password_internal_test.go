package account

import (
	"context"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/alexedwards/argon2id"
)

// Password hashing runs at most one argon2id computation per CPU at once,
// whatever the number of logins in flight: each holds 19 MiB for its run.
func TestPassword_HashesAtMostOnePerCPUAtOnce(t *testing.T) {
	hash, err := hashPassword(t.Context(), "correct horse", nil)
	if err != nil {
		t.Fatal(err)
	}
	hashingPeak.Store(0)
	var wg sync.WaitGroup
	for i := range 4 * runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			if i%2 == 0 {
				if _, err := hashPassword(t.Context(), "another password", nil); err != nil {
					t.Error(err)
				}
			} else if ok, err := passwordMatches(t.Context(), "correct horse", hash); err != nil || !ok {
				t.Errorf("passwordMatches = %v, %v", ok, err)
			}
		})
	}
	wg.Wait()
	if peak, cpus := hashingPeak.Load(), int64(runtime.GOMAXPROCS(0)); peak < 1 || peak > cpus {
		t.Errorf("%d computations ran at once, want 1 to %d", peak, cpus)
	}
}

// A login waiting for a slot gives up when its request ends.
func TestPassword_WaitingForASlotEndsWithTheContext(t *testing.T) {
	for range cap(hashSlots) {
		hashSlots <- struct{}{}
	}
	defer func() {
		for range cap(hashSlots) {
			<-hashSlots
		}
	}()
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if _, err := passwordMatches(ctx, "pw", "$argon2id$v=19$m=65536,t=1,p=1$c2FsdHNhbHQ$aGFzaA"); err == nil || ctx.Err() == nil {
		t.Fatalf("passwordMatches with every slot taken = %v, want the context's error", err)
	}
}

// A hash with the production parameters leaves 19 MiB of garbage, collected
// at once so that logins do not set the peak RSS; one with the tests' cheap
// parameters forces no collection, which in a test process holding dozens of
// servers would mark the whole heap for 64 KiB (not parallel: the count of
// forced collections is the process's).
func TestPassword_CollectsOnlyAfterLargeHashes(t *testing.T) {
	forced := func() uint32 {
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.NumForcedGC
	}
	cheap := &argon2id.Params{Memory: 64, Iterations: 1, Parallelism: 1, SaltLength: 16, KeyLength: 32}
	for _, c := range []struct {
		name    string
		params  *argon2id.Params
		collect bool
	}{{"production", nil, true}, {"cheap", cheap, false}} {
		before := forced()
		hash, err := hashPassword(t.Context(), "correct horse", c.params)
		if err != nil {
			t.Fatal(err)
		}
		if ok, err := passwordMatches(t.Context(), "correct horse", hash); err != nil || !ok {
			t.Fatalf("%s: passwordMatches = %v, %v", c.name, ok, err)
		}
		got := forced() - before
		if c.collect && got < 2 {
			t.Errorf("%s parameters: %d forced collections for a hash and a check, want 2", c.name, got)
		}
		if !c.collect && got != 0 {
			t.Errorf("%s parameters: %d forced collections for a hash and a check, want none", c.name, got)
		}
	}
}
