package account

import (
	"context"
	"crypto/rand"
	"fmt"
	"runtime"
	"sync/atomic"
	"unicode/utf8"

	"github.com/alexedwards/argon2id"

	"github.com/flock-social/flock"
)

// Password limits, in characters (not bytes). argon2id has no input limit,
// so nothing is ever truncated.
const (
	MinPasswordLen = 8
	MaxPasswordLen = 128
)

// passwordParams are OWASP's argon2id minimum (m=19 MiB, t=2, p=1).
var passwordParams = &argon2id.Params{
	Memory:      19 * 1024,
	Iterations:  2,
	Parallelism: 1,
	SaltLength:  16,
	KeyLength:   32,
}

func checkPassword(password string) error {
	n := utf8.RuneCountInString(password)
	switch {
	case !utf8.ValidString(password):
		return flock.FieldErrorf("password", "password must be valid UTF-8 text")
	case n < MinPasswordLen:
		return flock.FieldErrorf("password", "password must be at least %d characters long", MinPasswordLen)
	case n > MaxPasswordLen:
		return flock.FieldErrorf("password", "password must be at most %d characters long", MaxPasswordLen)
	}
	return nil
}

// hashSlots bounds the argon2id computations running at once to the
// number of CPUs: each holds its memory parameter (19 MiB) for its whole
// run, and more at once than there are CPUs only splits the same CPU
// time. Without it, 16 logins in flight (bench/load's log-in phase) could
// hold 300 MiB at once, and a burst of logins could take a small
// instance's memory. Waiting logins keep their place until their context
// ends.
var hashSlots = make(chan struct{}, runtime.GOMAXPROCS(0))

// hashing counts the computations running, and hashingPeak the most at
// once, for the test of hashSlots.
var hashing, hashingPeak atomic.Int64

// collectAfter is the memory parameter (KiB) from which a hash's memory is
// collected as soon as the hash is done: 19 MiB of garbage per login is
// worth a collection, the 64 KiB of the tests' cheap parameters is not. A
// collection marks the whole live heap; forced after every hash of a test
// process holding dozens of servers, collections were two thirds of the
// server package's CPU under -race.
const collectAfter = 4 * 1024

// withHashSlot runs fn, an argon2id computation, once a slot is free. fn
// returns the memory parameter it ran with (KiB), or 0 when it did not run
// one (a malformed hash).
func withHashSlot(ctx context.Context, fn func() uint32) error {
	select {
	case hashSlots <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-hashSlots }()
	n := hashing.Add(1)
	defer hashing.Add(-1)
	for {
		peak := hashingPeak.Load()
		if n <= peak || hashingPeak.CompareAndSwap(peak, n) {
			break
		}
	}
	// The computation's memory (19 MiB) is garbage now: collect it before
	// the next one allocates its own. Left to the pacer, a burst of logins
	// grew the heap to twice its live size (86 MiB in use, 120 MiB mapped
	// after bench/load's 100 logins, held for seconds after), so peak RSS
	// was set by logins; a collection costs a few percent of a hash's CPU.
	if fn() >= collectAfter {
		runtime.GC()
	}
	return nil
}

func hashPassword(ctx context.Context, password string, params *argon2id.Params) (string, error) {
	if params == nil {
		params = passwordParams
	}
	var h string
	var err error
	if werr := withHashSlot(ctx, func() uint32 {
		h, err = argon2id.CreateHash(password, params)
		return params.Memory
	}); werr != nil {
		return "", fmt.Errorf("hash password: %w", werr)
	}
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	return h, nil
}

// passwordMatches reports whether password matches the PHC-encoded hash.
func passwordMatches(ctx context.Context, password, hash string) (bool, error) {
	var ok bool
	var err error
	if werr := withHashSlot(ctx, func() uint32 {
		var params *argon2id.Params
		ok, params, err = argon2id.CheckHash(password, hash)
		if params == nil {
			return 0
		}
		return params.Memory
	}); werr != nil {
		return false, fmt.Errorf("compare password: %w", werr)
	}
	if err != nil {
		return false, fmt.Errorf("compare password: %w", err)
	}
	return ok, nil
}

// newDummyHash returns the hash of a random password. Login compares
// passwords against it when the account does not exist, so that an unknown
// account costs the same time as a wrong password.
func newDummyHash(params *argon2id.Params) (string, error) {
	return hashPassword(context.Background(), rand.Text(), params)
}
