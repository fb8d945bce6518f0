// Package emailaddr gives an email address the one spelling under which
// Flock stores and finds it. It imports nothing of Flock's but its error
// type, so its fuzz target builds without the store (.ci/run).
package emailaddr

import (
	"net/mail"
	"strings"
	"unicode/utf8"

	"github.com/flock-social/flock"
)

// Normalize trims and lower-cases an email address and checks that it
// is one plain ASCII address (no display name, no list). Two spellings that
// differ only in case or surrounding space are one account. Non-ASCII
// addresses are refused: Unicode has letters with no lower case (ϒ) and
// letters whose case folds onto ASCII without lowering to it (ſ and s), so
// lower-casing alone would not give one spelling per address.
func Normalize(raw string) (string, error) {
	e := strings.ToLower(strings.TrimSpace(raw))
	if len(e) > 254 {
		return "", flock.FieldErrorf("email", "email must be at most 254 characters")
	}
	if strings.ContainsFunc(e, func(r rune) bool { return r >= utf8.RuneSelf }) {
		return "", flock.FieldErrorf("email", "email must be a single ASCII address like name@example.com")
	}
	addr, err := mail.ParseAddress(e)
	if err != nil || addr.Address != e || addr.Name != "" || !strings.Contains(e[strings.LastIndexByte(e, '@')+1:], ".") {
		return "", flock.FieldErrorf("email", "email must be a single address like name@example.com")
	}
	return e, nil
}
