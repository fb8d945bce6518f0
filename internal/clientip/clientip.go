// Package clientip finds the address of the client behind reverse proxies.
//
// A proxy appends the address it received a request from to the
// X-Forwarded-For header, so the header reads "client, proxy1, proxy2" and
// the TCP peer is the last proxy. Everything left of the last hop written by
// a proxy you run is whatever the client chose to send, so the header is
// believed only from a trusted peer, and read from the right: each trusted
// address is skipped, and the first untrusted one is the client.
//
// Decisions for the odd cases, all in favour of never letting a client
// choose its own address:
//
//   - a peer that is not trusted is the client, whatever the header says;
//   - several X-Forwarded-For header lines are one list, in order;
//   - a hop may be an IPv4 or IPv6 address, with or without a port, an IPv6
//     address in brackets with or without a port, with surrounding spaces
//     or tabs; empty hops (",,") are skipped; IPv4-mapped IPv6 addresses
//     are read as IPv4, and IPv6 zones are dropped;
//   - a hop that is not an address ("unknown", an obfuscated RFC 7239 name,
//     garbage) stops the walk: the answer is the last address read before
//     it (the nearest trusted proxy), since a trusted proxy wrote the
//     garbage and what lies left of it cannot be told apart from forgery;
//   - when every hop is trusted, the leftmost one is the client;
//   - the walk reads at most MaxHops addresses, then stops in the same way.
//
// The standard Forwarded header (RFC 7239) is not read.
package clientip

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// MaxHops bounds how many X-Forwarded-For hops Resolve reads, so that a
// header of thousands of trusted-looking hops costs no more than this.
const MaxHops = 32

// Resolver answers the client address of requests that may have passed
// through trusted proxies. The zero Resolver trusts nobody. It is safe for
// concurrent use.
type Resolver struct {
	trusted []netip.Prefix
}

// New returns a Resolver that believes X-Forwarded-For from peers in any of
// the trusted prefixes. IPv4-mapped IPv6 prefixes are read as IPv4.
func New(trusted []netip.Prefix) *Resolver {
	r := &Resolver{}
	for _, p := range trusted {
		if !p.IsValid() {
			continue
		}
		r.trusted = append(r.trusted, unmapPrefix(p).Masked())
	}
	return r
}

// Enabled reports whether any proxy is trusted; when none is, Resolve
// always answers the peer.
func (r *Resolver) Enabled() bool { return r != nil && len(r.trusted) > 0 }

// Trusted reports whether ip is in a trusted prefix.
func (r *Resolver) Trusted(ip netip.Addr) bool {
	if r == nil {
		return false
	}
	ip = ip.Unmap().WithZone("")
	for _, p := range r.trusted {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// Resolve returns the client address of a request that arrived from peer
// with the given X-Forwarded-For header lines (http.Header.Values order).
// See the package documentation for the rules.
func (r *Resolver) Resolve(peer netip.Addr, xff []string) netip.Addr {
	peer = peer.Unmap().WithZone("")
	if !r.Trusted(peer) {
		return peer
	}
	last := peer // the nearest address read so far; all trusted
	read := 0
	for i := len(xff) - 1; i >= 0; i-- {
		line := xff[i]
		for line != "" {
			var hop string
			if j := strings.LastIndexByte(line, ','); j >= 0 {
				line, hop = line[:j], line[j+1:]
			} else {
				line, hop = "", line
			}
			hop = strings.Trim(hop, " \t")
			if hop == "" {
				continue
			}
			if read == MaxHops {
				return last
			}
			read++
			ip, ok := ParseHop(hop)
			if !ok {
				return last
			}
			if !r.Trusted(ip) {
				return ip
			}
			last = ip
		}
	}
	return last
}

// ParseHop reads one X-Forwarded-For element: "192.0.2.1",
// "192.0.2.1:8080", "2001:db8::1", "[2001:db8::1]" or "[2001:db8::1]:443".
// IPv4-mapped IPv6 addresses come back as IPv4, without an IPv6 zone. It
// reports false for anything else.
func ParseHop(hop string) (netip.Addr, bool) {
	var host string
	switch {
	case strings.HasPrefix(hop, "["):
		end := strings.IndexByte(hop, ']')
		if end < 0 {
			return netip.Addr{}, false
		}
		host = hop[1:end]
		if rest := hop[end+1:]; rest != "" && !validPort(rest) {
			return netip.Addr{}, false
		}
		ip, err := netip.ParseAddr(host)
		if err != nil || !ip.Is6() {
			return netip.Addr{}, false
		}
		return ip.Unmap().WithZone(""), true
	case strings.Count(hop, ":") == 1:
		i := strings.IndexByte(hop, ':')
		h, port := hop[:i], hop[i:]
		if !validPort(port) {
			return netip.Addr{}, false
		}
		ip, err := netip.ParseAddr(h)
		if err != nil || !ip.Is4() {
			return netip.Addr{}, false
		}
		return ip, true
	default:
		ip, err := netip.ParseAddr(hop)
		if err != nil {
			return netip.Addr{}, false
		}
		return ip.Unmap().WithZone(""), true
	}
}

// validPort reports whether s, found after an address, is ":" and a
// decimal port number of at most 65535.
func validPort(s string) bool {
	digits, ok := strings.CutPrefix(s, ":")
	if !ok || len(digits) == 0 || len(digits) > 5 {
		return false
	}
	n := 0
	for _, c := range digits {
		if c < '0' || c > '9' {
			return false
		}
		n = n*10 + int(c-'0')
	}
	return n <= 65535
}

// ParsePrefixes reads a comma-separated list of CIDR prefixes
// ("10.0.0.0/8, fd00::/8"); a plain address is read as the prefix of that
// one address (/32 or /128). Spaces around entries and empty entries are
// ignored, so "" gives none. The error names the entry at fault.
func ParsePrefixes(list string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range strings.Split(list, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if strings.Contains(s, "/") {
			p, err := netip.ParsePrefix(s)
			if err != nil {
				return nil, fmt.Errorf("%q is not a CIDR prefix like 10.0.0.0/8 or fd00::/8: %w", s, err)
			}
			out = append(out, unmapPrefix(p).Masked())
			continue
		}
		ip, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("%q is neither an IP address nor a CIDR prefix like 10.0.0.0/8: %w", s, err)
		}
		if ip.Zone() != "" {
			return nil, fmt.Errorf("%q: an address with a zone cannot be trusted; drop the %%%s", s, ip.Zone())
		}
		ip = ip.Unmap()
		out = append(out, netip.PrefixFrom(ip, ip.BitLen()))
	}
	return out, nil
}

// unmapPrefix turns an IPv4-mapped IPv6 prefix (::ffff:10.0.0.0/104) into
// its IPv4 form (10.0.0.0/8); other prefixes come back unchanged.
func unmapPrefix(p netip.Prefix) netip.Prefix {
	if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
		return netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p
}

// LimitKey returns the part of a rate-limit key for a client address, given
// as "host:port" or a bare IP: an IPv4 address (IPv4-mapped IPv6 included) as
// is, an IPv6 address as its /64 prefix, since one subscriber usually owns a
// whole /64. An unparseable addr is returned unchanged.
func LimitKey(addr string) string {
	host := addr
	if h, _, err := net.SplitHostPort(addr); err == nil {
		host = h
	} else if strings.HasPrefix(addr, "[") && strings.HasSuffix(addr, "]") {
		host = addr[1 : len(addr)-1]
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return addr
	}
	ip = ip.Unmap()
	if ip.Is4() {
		return ip.String()
	}
	p, err := ip.WithZone("").Prefix(64)
	if err != nil {
		return addr
	}
	return p.String()
}
