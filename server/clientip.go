package server

import (
	"net/http"
	"net/netip"

	"github.com/flock-social/flock/internal/clientip"
)

// withClientIP sets r.RemoteAddr to the client's address when the request
// came through a trusted proxy (Config.TrustedProxies), read from
// X-Forwarded-For by clientip.Resolver, and keeps the peer's port. It wraps
// every other handler, so Connect's Peer().Addr, the rate limits (RPCs,
// video uploads, WebSockets) and the request log all see the client, never
// the proxy (security.md property 25). With no trusted proxy it is not
// installed, and X-Forwarded-For is never read.
func withClientIP(trusted []netip.Prefix, next http.Handler) http.Handler {
	r := clientip.New(trusted)
	if !r.Enabled() {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		peer, err := netip.ParseAddrPort(req.RemoteAddr)
		if err != nil {
			// Not a TCP peer (a test's httptest request, a Unix socket):
			// nothing to trust.
			next.ServeHTTP(w, req)
			return
		}
		xff := req.Header.Values("X-Forwarded-For")
		if len(xff) == 0 {
			next.ServeHTTP(w, req)
			return
		}
		client := r.Resolve(peer.Addr(), xff)
		if client == peer.Addr() {
			next.ServeHTTP(w, req)
			return
		}
		// A shallow copy (WithContext's): only RemoteAddr changes.
		r2 := req.WithContext(req.Context())
		r2.RemoteAddr = netip.AddrPortFrom(client, peer.Port()).String()
		next.ServeHTTP(w, r2)
	})
}
