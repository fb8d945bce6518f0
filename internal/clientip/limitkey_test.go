package clientip_test

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/flock-social/flock/internal/clientip"
)

func TestLimitKey(t *testing.T) {
	t.Parallel()
	tests := []struct{ addr, want string }{
		{"203.0.113.7", "203.0.113.7"},
		{"203.0.113.7:443", "203.0.113.7"},
		{"::ffff:203.0.113.7", "203.0.113.7"},
		{"[::ffff:203.0.113.7]:443", "203.0.113.7"},
		{"2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"},
		{"[2001:db8:1:2:3:4:5:6]:8080", "2001:db8:1:2::/64"},
		{"[2001:db8:1:2::1]", "2001:db8:1:2::/64"},
		{"fe80::1%eth0", "fe80::/64"},
		{"2001:DB8:1:2::FFFF", "2001:db8:1:2::/64"},
		{"not an ip", "not an ip"},
		{"", ""},
	}
	for _, tt := range tests {
		if got := clientip.LimitKey(tt.addr); got != tt.want {
			t.Errorf("LimitKey(%q) = %q, want %q", tt.addr, got, tt.want)
		}
	}

	t.Run("one /64 is one key", func(t *testing.T) {
		t.Parallel()
		a, b := clientip.LimitKey("2001:db8:aa:bb::1"), clientip.LimitKey("[2001:db8:aa:bb:ffff:ffff:ffff:ffff]:1")
		if a != b {
			t.Errorf("same /64: keys %q and %q differ", a, b)
		}
		if c := clientip.LimitKey("2001:db8:aa:bc::1"); c == a {
			t.Errorf("different /64s share key %q", c)
		}
	})
}

func FuzzLimitKey(f *testing.F) {
	for _, s := range []string{"203.0.113.7", "203.0.113.7:443", "[::ffff:1.2.3.4]:80", "2001:db8::1", "[2001:db8::1]:443", "fe80::1%eth0", "[::1]", "::ffff:1.2.3.4%x", "1:2", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, addr string) {
		key := clientip.LimitKey(addr)
		if again := clientip.LimitKey(key); again != key {
			t.Errorf("LimitKey(%q) = %q, but LimitKey(%q) = %q: not idempotent", addr, key, key, again)
		}
		if key == addr {
			return
		}
		// A changed key is the canonical form of an IPv4 address or a /64.
		if p, err := netip.ParsePrefix(key); err == nil {
			if p.Bits() != 64 || !p.Addr().Is6() || p.Masked() != p {
				t.Errorf("LimitKey(%q) = %q, want an IPv6 /64", addr, key)
			}
		} else if a, err := netip.ParseAddr(key); err != nil || !a.Is4() || strings.Contains(key, ":") {
			t.Errorf("LimitKey(%q) = %q, want an IPv4 address or an IPv6 /64", addr, key)
		}
	})
}
