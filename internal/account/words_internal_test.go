package account

import (
	"testing"
	"time"
)

// A link's lifetime reads as words in an email, never as a Go duration
// ("24h0m0s").
func TestInWords_LinkLifetimesReadAsWords(t *testing.T) {
	for d, want := range map[time.Duration]string{
		24 * time.Hour:          "24 hours",
		time.Hour:               "1 hour",
		30 * time.Minute:        "30 minutes",
		time.Minute:             "1 minute",
		90 * time.Minute:        "90 minutes",
		1500 * time.Millisecond: "1.5s",
	} {
		if got := inWords(d); got != want {
			t.Errorf("inWords(%s) = %q, want %q", d, got, want)
		}
	}
}
