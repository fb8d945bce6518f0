package account

import (
	"crypto/rand"
	"fmt"
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

func hashPassword(password string, params *argon2id.Params) (string, error) {
	if params == nil {
		params = passwordParams
	}
	h, err := argon2id.CreateHash(password, params)
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	return h, nil
}

// passwordMatches reports whether password matches the PHC-encoded hash.
func passwordMatches(password, hash string) (bool, error) {
	ok, err := argon2id.ComparePasswordAndHash(password, hash)
	if err != nil {
		return false, fmt.Errorf("compare password: %w", err)
	}
	return ok, nil
}

// newDummyHash returns the hash of a random password. Login compares
// passwords against it when the account does not exist, so that an unknown
// account costs the same time as a wrong password.
func newDummyHash(params *argon2id.Params) (string, error) {
	return hashPassword(rand.Text(), params)
}
