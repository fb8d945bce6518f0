package emailaddr_test

import (
	"strings"
	"testing"
	"unicode"

	"github.com/flock-social/flock"
	"github.com/flock-social/flock/internal/account/emailaddr"
)

func TestNormalize_CaseAndSpaceMakeNoSecondAddress_P11(t *testing.T) {
	t.Parallel()
	accepted := map[string]string{
		"alice@example.com":              "alice@example.com",
		" Alice@Example.COM ":            "alice@example.com",
		"\tALICE@EXAMPLE.COM\n":          "alice@example.com",
		"first.last+tag@sub.example.org": "first.last+tag@sub.example.org",
		"\u212A@example.com":             "k@example.com", // KELVIN SIGN lower-cases to ASCII k
	}
	for in, want := range accepted {
		got, err := emailaddr.Normalize(in)
		if err != nil || got != want {
			t.Errorf("Normalize(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{
		"", "   ", "alice", "alice@", "@example.com", "alice@localhost", "alice@example",
		"Alice <alice@example.com>", "alice@example.com, bob@example.com", "alice@@example.com",
		"al ice@example.com", "alice@example.com.", strings.Repeat("a", 250) + "@example.com",
		// Non-ASCII: ϒ has no lower case, ſ is the case-fold twin of s, and
		// é has two encodings (NFC and NFD).
		"ϒ@example.com", "ſ@example.com", "\u00e9@example.com", "e\u0301@example.com", "alice@exämple.com",
	} {
		got, err := emailaddr.Normalize(in)
		if err == nil {
			t.Errorf("Normalize(%q) = %q, want an error", in, got)
			continue
		}
		if code := flock.ErrorCode(err); code != flock.EINVALID {
			t.Errorf("Normalize(%q): code %q, want %q", in, code, flock.EINVALID)
		}
	}
}

// FuzzNormalize: Normalize never panics; what it accepts it
// returns trimmed and without upper-case letters, and normalising that again
// gives the same address, so one account has one spelling.
func FuzzNormalize(f *testing.F) {
	for _, s := range []string{
		"alice@example.com", " Alice@Example.COM ", "a.b+c@d.e", `"quoted local"@example.com`,
		"Alice <alice@example.com>", "ÄLICE@EXAMPLE.COM", "alice@EXAMPLE.com\x00", "\u212A@example.com", "ϒ@example.com", "ſ@example.com",
		"x@y", "", "@", "a@b.c,d@e.f", "(comment)a@b.c",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		out, err := emailaddr.Normalize(raw)
		if err != nil {
			if out != "" {
				t.Fatalf("Normalize(%q) returned %q with error %v", raw, out, err)
			}
			return
		}
		if strings.TrimSpace(out) != out {
			t.Fatalf("Normalize(%q) = %q has surrounding space", raw, out)
		}
		if strings.ContainsFunc(out, unicode.IsUpper) {
			t.Fatalf("Normalize(%q) = %q has an upper-case letter", raw, out)
		}
		again, err := emailaddr.Normalize(out)
		if err != nil || again != out {
			t.Fatalf("Normalize(%q) = %q, but normalising that gives %q, %v", raw, out, again, err)
		}
	})
}
