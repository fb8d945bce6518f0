package clientip_test

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/flock-social/flock/internal/clientip"
)

func mustPrefixes(tb testing.TB, list string) []netip.Prefix {
	tb.Helper()
	p, err := clientip.ParsePrefixes(list)
	if err != nil {
		tb.Fatalf("ParsePrefixes(%q): %v", list, err)
	}
	return p
}

// P25: the client is the first untrusted X-Forwarded-For hop, read from the
// right, and only when the peer is a trusted proxy.
func TestResolve_P25(t *testing.T) {
	t.Parallel()
	proxies := clientip.New(mustPrefixes(t, "10.0.0.0/8, 192.168.1.1, fd00::/8, 127.0.0.1"))
	tests := []struct {
		name string
		peer string
		xff  []string
		want string
	}{
		{"untrusted peer is the client", "203.0.113.9", []string{"198.51.100.1"}, "203.0.113.9"},
		{"untrusted peer with a forged chain of trusted hops", "203.0.113.9", []string{"198.51.100.1, 10.0.0.1"}, "203.0.113.9"},
		{"trusted peer without a header", "10.0.0.2", nil, "10.0.0.2"},
		{"trusted peer with an empty header", "10.0.0.2", []string{""}, "10.0.0.2"},
		{"trusted peer, one hop", "10.0.0.2", []string{"198.51.100.1"}, "198.51.100.1"},
		{"forged hops left of the client are ignored", "10.0.0.2", []string{"1.1.1.1, 2.2.2.2, 198.51.100.1"}, "198.51.100.1"},
		{"trusted hops are skipped from the right", "10.0.0.2", []string{"1.1.1.1, 198.51.100.1, 10.9.9.9, 192.168.1.1"}, "198.51.100.1"},
		{"several header lines are one list", "10.0.0.2", []string{"1.1.1.1, 198.51.100.1", "10.9.9.9", "192.168.1.1"}, "198.51.100.1"},
		{"last header line holds the client", "10.0.0.2", []string{"1.1.1.1", "198.51.100.7"}, "198.51.100.7"},
		{"all trusted: the leftmost", "10.0.0.2", []string{"10.1.1.1, 10.2.2.2"}, "10.1.1.1"},
		{"spaces and tabs around hops", "10.0.0.2", []string{" \t198.51.100.1 \t,\t10.3.3.3 "}, "198.51.100.1"},
		{"empty hops are skipped", "10.0.0.2", []string{"198.51.100.1,, ,10.3.3.3,"}, "198.51.100.1"},
		{"IPv4 with a port", "10.0.0.2", []string{"198.51.100.1:5123"}, "198.51.100.1"},
		{"IPv6", "10.0.0.2", []string{"2001:db8::1"}, "2001:db8::1"},
		{"IPv6 in brackets", "10.0.0.2", []string{"[2001:db8::1]"}, "2001:db8::1"},
		{"IPv6 in brackets with a port", "10.0.0.2", []string{"[2001:db8::1]:443"}, "2001:db8::1"},
		{"IPv6 zone is dropped", "10.0.0.2", []string{"fe80::1%eth0"}, "fe80::1"},
		{"IPv4-mapped IPv6 hop is IPv4", "10.0.0.2", []string{"::ffff:198.51.100.1"}, "198.51.100.1"},
		{"IPv4-mapped trusted hop is skipped", "10.0.0.2", []string{"198.51.100.1, [::ffff:10.3.3.3]:80"}, "198.51.100.1"},
		{"IPv4-mapped peer is trusted as IPv4", "::ffff:10.0.0.2", []string{"198.51.100.1"}, "198.51.100.1"},
		{"IPv6 proxy", "fd00::2", []string{"198.51.100.1, fd00::3"}, "198.51.100.1"},
		{"loopback proxy", "127.0.0.1", []string{"198.51.100.1"}, "198.51.100.1"},
		{"garbage stops the walk at the peer", "10.0.0.2", []string{"198.51.100.1, unknown"}, "10.0.0.2"},
		{"garbage stops the walk at the last trusted hop", "10.0.0.2", []string{"198.51.100.1, nonsense, 10.4.4.4"}, "10.4.4.4"},
		{"garbage left of the client is never reached", "10.0.0.2", []string{"<script>, 198.51.100.1"}, "198.51.100.1"},
		{"RFC 7239 obfuscated name is garbage", "10.0.0.2", []string{"_hidden"}, "10.0.0.2"},
		{"unclosed bracket is garbage", "10.0.0.2", []string{"[2001:db8::1"}, "10.0.0.2"},
		{"IPv4 in brackets is garbage", "10.0.0.2", []string{"[198.51.100.1]"}, "10.0.0.2"},
		{"port without digits is garbage", "10.0.0.2", []string{"198.51.100.1:"}, "10.0.0.2"},
		{"port out of range is garbage", "10.0.0.2", []string{"198.51.100.1:65536"}, "10.0.0.2"},
		{"text after brackets is garbage", "10.0.0.2", []string{"[2001:db8::1]x"}, "10.0.0.2"},
		{"a hostname is garbage", "10.0.0.2", []string{"client.example.com"}, "10.0.0.2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := proxies.Resolve(netip.MustParseAddr(tt.peer), tt.xff)
			if got != netip.MustParseAddr(tt.want) {
				t.Errorf("Resolve(%s, %q) = %s, want %s", tt.peer, tt.xff, got, tt.want)
			}
		})
	}
}

// With no trusted proxy, X-Forwarded-For is never read.
func TestResolve_NoTrustedProxies_P25(t *testing.T) {
	t.Parallel()
	for _, r := range []*clientip.Resolver{nil, clientip.New(nil), {}} {
		if r.Enabled() {
			t.Errorf("%v: Enabled with no trusted proxies", r)
		}
		if got := r.Resolve(netip.MustParseAddr("127.0.0.1"), []string{"198.51.100.1"}); got != netip.MustParseAddr("127.0.0.1") {
			t.Errorf("Resolve with no trusted proxies = %s, want the peer", got)
		}
	}
}

// A header of thousands of trusted hops is read only MaxHops deep.
func TestResolve_ReadsAtMostMaxHops(t *testing.T) {
	t.Parallel()
	r := clientip.New(mustPrefixes(t, "10.0.0.0/8"))
	hops := make([]string, 0, 5000)
	hops = append(hops, "198.51.100.1")
	for range 4999 {
		hops = append(hops, "10.0.0.7")
	}
	if got := r.Resolve(netip.MustParseAddr("10.0.0.2"), []string{strings.Join(hops, ",")}); got != netip.MustParseAddr("10.0.0.7") {
		t.Errorf("Resolve of a deep chain = %s, want the last trusted hop read", got)
	}
	short := []string{"198.51.100.1" + strings.Repeat(",10.0.0.7", clientip.MaxHops-1)}
	if got := r.Resolve(netip.MustParseAddr("10.0.0.2"), short); got != netip.MustParseAddr("198.51.100.1") {
		t.Errorf("Resolve of %d hops = %s, want the client", clientip.MaxHops, got)
	}
}

func TestParsePrefixes(t *testing.T) {
	t.Parallel()
	good := map[string]string{
		"":                              "",
		" , ":                           "",
		"10.0.0.0/8":                    "10.0.0.0/8",
		"10.1.2.3/8":                    "10.0.0.0/8",
		" 10.0.0.0/8 ,fd00::/8 ":        "10.0.0.0/8 fd00::/8",
		"127.0.0.1":                     "127.0.0.1/32",
		"::1":                           "::1/128",
		"::ffff:10.0.0.0/104":           "10.0.0.0/8",
		"::ffff:10.0.0.1":               "10.0.0.1/32",
		"0.0.0.0/0":                     "0.0.0.0/0",
		"10.0.0.0/8,192.168.0.0/16,::1": "10.0.0.0/8 192.168.0.0/16 ::1/128",
	}
	for in, want := range good {
		p, err := clientip.ParsePrefixes(in)
		if err != nil {
			t.Errorf("ParsePrefixes(%q): %v", in, err)
			continue
		}
		var got []string
		for _, x := range p {
			got = append(got, x.String())
		}
		if strings.Join(got, " ") != want {
			t.Errorf("ParsePrefixes(%q) = %v, want %s", in, got, want)
		}
	}
	for in, wantInErr := range map[string]string{
		"10.0.0.0/33":         `"10.0.0.0/33" is not a CIDR prefix`,
		"10.0.0/8":            `"10.0.0/8" is not a CIDR prefix`,
		"10.0.0.0/8, nginx":   `"nginx" is neither an IP address nor a CIDR prefix`,
		"10.0.0.0 10.1.0.0":   `"10.0.0.0 10.1.0.0" is neither`,
		"fe80::1%eth0":        `cannot be trusted`,
		"10.0.0.0/8;fd00::/8": `"10.0.0.0/8;fd00::/8" is not a CIDR prefix`,
	} {
		_, err := clientip.ParsePrefixes(in)
		if err == nil || !strings.Contains(err.Error(), wantInErr) {
			t.Errorf("ParsePrefixes(%q) error = %v, want one containing %q", in, err, wantInErr)
		}
	}
}

// FuzzClientIP: Resolve never panics, and whatever the header says, the
// answer is the peer or an address that appears in the header; a peer that
// is not trusted is always the answer; an untrusted answer is never one a
// trusted hop to its right could have been forged past.
func FuzzClientIP(f *testing.F) {
	for _, seed := range []struct{ peer, xff1, xff2 string }{
		{"10.0.0.2", "198.51.100.1", ""},
		{"10.0.0.2", "1.1.1.1, 198.51.100.1, 10.9.9.9", "192.168.1.1"},
		{"203.0.113.9", "198.51.100.1", "10.0.0.1"},
		{"10.0.0.2", "[2001:db8::1]:443, ::ffff:10.3.3.3", ""},
		{"fd00::2", "fe80::1%eth0,,unknown", " \t"},
		{"::ffff:10.0.0.2", "198.51.100.1:65536", "[::1"},
	} {
		f.Add(seed.peer, seed.xff1, seed.xff2)
	}
	r := clientip.New([]netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8"), netip.MustParsePrefix("127.0.0.1/32"),
	})
	f.Fuzz(func(t *testing.T, peerText, xff1, xff2 string) {
		peer, err := netip.ParseAddr(peerText)
		if err != nil {
			return
		}
		xff := []string{xff1, xff2}
		got := r.Resolve(peer, xff)
		if !got.IsValid() {
			t.Fatalf("Resolve(%s, %q) = invalid address", peer, xff)
		}
		if got.Zone() != "" || got.Is4In6() {
			t.Fatalf("Resolve(%s, %q) = %s, want no zone and no IPv4-mapped form", peer, xff, got)
		}
		norm := peer.Unmap().WithZone("")
		if !r.Trusted(norm) {
			if got != norm {
				t.Fatalf("untrusted peer %s: Resolve = %s, want the peer", peer, got)
			}
			return
		}
		if got == norm {
			return
		}
		// Otherwise got is a hop of the header, and every hop right of
		// its last occurrence is trusted.
		var hops []string
		for _, line := range xff {
			for h := range strings.SplitSeq(line, ",") {
				if h = strings.Trim(h, " \t"); h != "" {
					hops = append(hops, h)
				}
			}
		}
		for i := len(hops) - 1; i >= 0; i-- {
			ip, ok := clientip.ParseHop(hops[i])
			if !ok {
				t.Fatalf("Resolve(%s, %q) = %s, read past the garbage hop %q", peer, xff, got, hops[i])
			}
			if ip == got {
				return
			}
			if !r.Trusted(ip) {
				t.Fatalf("Resolve(%s, %q) = %s, skipped the untrusted hop %s", peer, xff, got, ip)
			}
		}
		t.Fatalf("Resolve(%s, %q) = %s, which is neither the peer nor a hop", peer, xff, got)
	})
}

// BenchmarkResolve: the cost per request behind nginx (one hop) and behind
// a CDN, a load balancer and nginx (three hops, two of them trusted).
func BenchmarkResolve(b *testing.B) {
	r := clientip.New(mustPrefixes(b, "127.0.0.1,10.0.0.0/8,fd00::/8"))
	peer := netip.MustParseAddr("127.0.0.1")
	for _, bm := range []struct {
		name string
		xff  []string
	}{
		{"one hop", []string{"198.51.100.1"}},
		{"three hops", []string{"192.0.2.1, 198.51.100.1, 10.1.2.3", "10.4.5.6"}},
	} {
		b.Run(bm.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if !r.Resolve(peer, bm.xff).IsValid() {
					b.Fatal("invalid")
				}
			}
		})
	}
}
