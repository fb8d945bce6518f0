// Package faultproxy gives tests a TCP proxy on loopback (toxiproxy, in
// process) to put between a client and a dependency: Stop makes the
// dependency go away for that client only (its connections close, new
// ones are refused), Start brings it back on the same address. It imports
// nothing of Flock, so that low packages (pubsub, session) can use it
// without building the server as testutil does.
package faultproxy

import (
	"net/url"
	"testing"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// New starts a proxy to upstream (host:port), stopped when the test ends.
func New(tb testing.TB, upstream string) *toxiproxy.Proxy {
	tb.Helper()
	api := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())
	p := toxiproxy.NewProxy(api, tb.Name(), "127.0.0.1:0", upstream)
	if err := p.Start(); err != nil {
		tb.Fatalf("start proxy: %v", err)
	}
	tb.Cleanup(p.Stop)
	return p
}

// Via rewrites the host of a service URL (redis://..., postgres://...) to
// the proxy's.
func Via(tb testing.TB, raw string, p *toxiproxy.Proxy) string {
	tb.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		tb.Fatal(err)
	}
	u.Host = p.Listen
	return u.String()
}
