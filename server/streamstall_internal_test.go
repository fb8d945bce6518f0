package server

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// P20 and P24 over HTTP/1.1: a live stream whose client stopped reading
// ends once its writes have waited the stall time (its place under the
// stream caps with it); before, its handler blocked in a write for as long
// as the client stayed silent. The handler writes as a busy stream does,
// to a client that never reads.
func TestStreamStall_StalledHTTP1StreamEnds_P20_P24(t *testing.T) {
	ended := make(chan error, 1)
	h := withStreamStall(300*time.Millisecond, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		chunk := make([]byte, 64<<10)
		for {
			if _, err := w.Write(chunk); err != nil {
				ended <- err
				return
			}
			w.(http.Flusher).Flush()
		}
	}))
	srv := httptest.NewServer(h)
	defer srv.Close()
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.(*net.TCPConn).SetReadBuffer(4 << 10)
	if _, err := fmt.Fprintf(conn, "POST /flock.v1.NotificationService/Subscribe HTTP/1.1\r\nHost: flock\r\nContent-Length: 0\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-ended:
		t.Logf("the stream ended: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("a stream whose client reads nothing still writes after 20 s (stall time 300 ms)")
	}
}
