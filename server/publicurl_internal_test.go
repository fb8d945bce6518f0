package server

import "testing"

// Without FLOCK_PUBLIC_URL the links in emails use the listen address; one
// that listens on every address names localhost, since a link to
// http://:8080/ or http://0.0.0.0:8080/ opens nowhere.
func TestDefaultPublicURL_NamesAHostABrowserOpens(t *testing.T) {
	for addr, want := range map[string]string{
		"127.0.0.1:8080":   "http://127.0.0.1:8080",
		":8080":            "http://localhost:8080",
		"0.0.0.0:8080":     "http://localhost:8080",
		"[::]:8080":        "http://localhost:8080",
		"flock.local:8080": "http://flock.local:8080",
		"[::1]:8080":       "http://[::1]:8080",
	} {
		if got := defaultPublicURL(addr); got != want {
			t.Errorf("defaultPublicURL(%q) = %q, want %q", addr, got, want)
		}
	}
}
