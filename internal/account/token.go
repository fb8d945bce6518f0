package account

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
)

// newSecretToken returns a random opaque token (256 bits, URL-safe) and the
// hash under which it is stored. The token itself is never stored.
func newSecretToken() (token, hash string) {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	token = base64.RawURLEncoding.EncodeToString(b)
	return token, hashToken(token)
}

// hashToken is how opaque tokens (refresh, verification) are stored: a
// SHA-256 of a 256-bit random value cannot be reversed or guessed, so no
// slow hash or key is needed.
func hashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}
