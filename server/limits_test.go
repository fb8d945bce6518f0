package server_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	flockv1 "github.com/flock-social/flock/gen/go/flock/v1"
	"github.com/flock-social/flock/gen/go/flock/v1/flockv1connect"
	tu "github.com/flock-social/flock/internal/testutil"
	"github.com/flock-social/flock/server"
)

// rawHTTP opens a connection to s and writes head (and body), returning
// the connection for the test to go on with.
func rawHTTP(t *testing.T, s *tu.Server, head string, body []byte) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(s.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if _, err := conn.Write(append([]byte(head), body...)); err != nil {
		t.Fatal(err)
	}
	return conn
}

// waitClosedOrAnswered reads conn until the server answers or closes it,
// and fails if neither happens within bound (a generous bound: the test
// proves the server ends the request at all, not how fast).
func waitClosedOrAnswered(t *testing.T, conn net.Conn, bound time.Duration) string {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(bound))
	got, err := io.ReadAll(conn)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the server neither answered nor closed the connection within %s (read %q)", bound, got)
	}
	return string(got)
}

// P23: a REST body over the limit answers 413 from its Content-Length,
// before the body is sent; a chunked one as soon as it passes the limit.
// Connect and gRPC keep their protocol's code.
func TestBody_OverLimitIs413OnREST_P23(t *testing.T) {
	t.Parallel()
	forEachServer(t, func(t *testing.T, s *tu.Server) {
		u := s.MustAccount(t, "big")
		conn := rawHTTP(t, s, fmt.Sprintf("POST /api/posts/ HTTP/1.1\r\nHost: flock\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", u.AccessToken, 10<<20), []byte(`{"content":"`))
		res, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("no answer before the body was sent: %v", err)
		}
		body, _ := io.ReadAll(res.Body)
		if res.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(body), "8 MiB") {
			t.Errorf("10 MB by Content-Length: %d %s, want 413 naming the limit", res.StatusCode, body)
		}

		// Chunked: the length is unknown until the limit is passed. On a raw
		// connection, with the answer read while the body is still being
		// written: the server closes the connection after its 413, and a
		// client that only reads once it has written everything can lose the
		// answer to the reset (Go's transport did, under load).
		conn = rawHTTP(t, s, fmt.Sprintf("POST /api/posts/ HTTP/1.1\r\nHost: flock\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n", u.AccessToken), nil)
		go func() {
			chunk := bytes.Repeat([]byte("a"), 64<<10)
			frame := append(append([]byte(fmt.Sprintf("%x\r\n", len(chunk))), chunk...), "\r\n"...)
			for range 10 << 20 / len(chunk) {
				if _, err := conn.Write(frame); err != nil {
					return
				}
			}
			_, _ = conn.Write([]byte("0\r\n\r\n"))
		}()
		res, err = http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("no answer to the 10 MB chunked body: %v", err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("10 MB chunked: %d, want 413", res.StatusCode)
		}

		// A profile form past the limit is told the picture's own limit, not
		// to send a form (which it did).
		conn = rawHTTP(t, s, fmt.Sprintf("PATCH /api/users/ HTTP/1.1\r\nHost: flock\r\nAuthorization: Bearer %s\r\nContent-Type: multipart/form-data; boundary=x\r\nContent-Length: %d\r\n\r\n", u.AccessToken, 9<<20), []byte("--x\r\n"))
		if res, err = http.ReadResponse(bufio.NewReader(conn), nil); err != nil {
			t.Fatalf("no answer before the form was sent: %v", err)
		}
		body, _ = io.ReadAll(res.Body)
		if res.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(body), "a profile picture may be at most 5 MiB") {
			t.Errorf("a 9 MiB profile form: %d %s, want 413 naming the picture's limit", res.StatusCode, body)
		}

		big := &flockv1.CreatePostRequest{Content: strings.Repeat("a", 9<<20)}
		for _, tr := range []tu.Transport{tu.Connect, tu.GRPC} {
			_, err := tu.Call[flockv1.CreatePostResponse](t.Context(), s, tr, flockv1connect.PostServiceCreatePostProcedure, u.AccessToken, big)
			if connect.CodeOf(err) != connect.CodeResourceExhausted {
				t.Errorf("%s with 9 MiB: %v, want resource_exhausted", tr, err)
			}
		}
	})
}

func quickBodies(c *server.Config) {
	c.BodyIdleTimeout, c.BodyMinRate = 300*time.Millisecond, 1000
}

// P23: a body that stalls, or trickles in below the minimum rate, is cut
// off: the login bodies that stayed open for minutes.
func TestBody_StalledOrTricklingIsCutOff_P23(t *testing.T) {
	t.Parallel()
	s := tu.MustServer(t, "sqlite", quickBodies)
	for _, path := range []string{"/api/users/login/", flockv1connect.UserServiceLoginProcedure} {
		t.Run("stalled "+path, func(t *testing.T) {
			t.Parallel()
			conn := rawHTTP(t, s, "POST "+path+" HTTP/1.1\r\nHost: flock\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n", []byte(`{"username":`))
			waitClosedOrAnswered(t, conn, 30*time.Second)
		})
		t.Run("trickling "+path, func(t *testing.T) {
			t.Parallel()
			conn := rawHTTP(t, s, "POST "+path+" HTTP/1.1\r\nHost: flock\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n", nil)
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			go func() { // a byte every 50 ms: 20 bytes a second, never idle
				for ctx.Err() == nil {
					if _, err := conn.Write([]byte(" ")); err != nil {
						return
					}
					time.Sleep(50 * time.Millisecond)
				}
			}()
			waitClosedOrAnswered(t, conn, 30*time.Second)
		})
	}
}

// The body guard ends with the body: a live stream over HTTP/1.1 and a
// keep-alive connection outlive the idle timeout.
func TestBody_GuardLiftedOnceTheBodyIsWhole(t *testing.T) {
	t.Parallel()
	s := tu.MustServer(t, "sqlite", quickBodies)
	alice, bob := s.MustAccount(t, "alice"), s.MustAccount(t, "bob")
	client := flockv1connect.NewNotificationServiceClient(s.HTTP, s.URL)
	req := connect.NewRequest(&flockv1.NotificationServiceSubscribeRequest{})
	req.Header().Set("Authorization", "Bearer "+alice.AccessToken)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	stream, err := client.Subscribe(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	time.Sleep(1 * time.Second) // past the 300 ms idle timeout
	tu.MustCall[flockv1.FollowResponse](t, s, tu.Connect, flockv1connect.UserServiceFollowProcedure, bob.AccessToken, &flockv1.FollowRequest{UserId: alice.ID})
	if !stream.Receive() {
		t.Fatalf("the stream ended: %v", stream.Err())
	}
	if got := stream.Msg().GetType(); got != flockv1.NotificationType_NOTIFICATION_TYPE_FOLLOW {
		t.Errorf("event = %v, want a follow", got)
	}

	// Keep-alive: a second request on the same connection after the timeout.
	conn := rawHTTP(t, s, "POST /api/users/login/ HTTP/1.1\r\nHost: flock\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n", []byte("{}"))
	br := bufio.NewReader(conn)
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, res.Body)
	time.Sleep(1 * time.Second)
	if _, err := conn.Write([]byte("GET /healthz HTTP/1.1\r\nHost: flock\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	if res, err = http.ReadResponse(br, nil); err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("second request on a kept-alive connection: %v, %v", res, err)
	}
}

// P23: an upload gets a minimum rate, not a total deadline: one that keeps
// sending for several idle timeouts is taken; one that stalls is cut off.
// The idle timeout here is ten times the pause between writes, so only a
// stall of a whole second on a loaded machine could cut the steady upload.
func TestUpload_MinimumRateNotTotalDeadline_P23(t *testing.T) {
	t.Parallel()
	needFFmpeg(t)
	const idle, pause = time.Second, 100 * time.Millisecond
	s := tu.MustServer(t, "sqlite", func(c *server.Config) {
		c.BodyIdleTimeout, c.BodyMinRate = idle, 1000
	})
	u := s.MustAccount(t, "uploader")
	mp4 := mp4Fixture(t, "160x120", 10, 1)
	var form bytes.Buffer
	mw := multipart.NewWriter(&form)
	fw, _ := mw.CreateFormFile("file", "clip.mp4")
	_, _ = fw.Write(mp4)
	_ = mw.Close()
	body := form.Bytes()
	head := fmt.Sprintf("POST /api/posts/videos/ HTTP/1.1\r\nHost: flock\r\nAuthorization: Bearer %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n", u.AccessToken, mw.FormDataContentType(), len(body))

	t.Run("steady over several idle timeouts", func(t *testing.T) {
		conn := rawHTTP(t, s, head, nil)
		const writes = 35 // 3.5 s in all: three idle timeouts and more
		step := max(len(body)/writes+1, 1)
		start := time.Now()
		for i := 0; i < len(body); i += step { // ~20 KB in 3.5 s, far above 1000 B/s
			if _, err := conn.Write(body[i:min(i+step, len(body))]); err != nil {
				t.Fatal(err)
			}
			time.Sleep(pause)
		}
		if took := time.Since(start); took < 3*idle {
			t.Fatalf("the upload took %s, not several idle timeouts (%s)", took, idle)
		}
		res, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		if res.StatusCode != http.StatusAccepted {
			b, _ := io.ReadAll(res.Body)
			t.Errorf("steady upload: %d %s, want 202", res.StatusCode, b)
		}
	})
	t.Run("stalled", func(t *testing.T) {
		conn := rawHTTP(t, s, head, body[:len(body)/2])
		waitClosedOrAnswered(t, conn, 30*time.Second)
	})
}

// P22 and P23 for bodies REST used to take whole or answer 500: a gzip body
// is inflated at most to the limit (vanguard inflated it all, then answered
// 429: 64 MiB of zeros in a 64 KiB request, before any login), one that is
// not gzip is a 400, another coding a 415; GET and DELETE routes drop an
// empty JSON object, which some clients send with every request, and refuse
// any other body with 400 (vanguard answered 500 to both).
func TestBody_CompressedAndStrayBodiesOnREST_P22_P23(t *testing.T) {
	t.Parallel()
	forEachServer(t, func(t *testing.T, s *tu.Server) {
		u := s.MustAccount(t, "bodies")
		gz := func(b []byte) []byte {
			var buf bytes.Buffer
			zw := gzip.NewWriter(&buf)
			_, _ = zw.Write(b)
			_ = zw.Close()
			return buf.Bytes()
		}
		do := func(method, path, encoding string, body []byte) (int, string) {
			t.Helper()
			req, err := http.NewRequestWithContext(t.Context(), method, s.URL+path, bytes.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+u.AccessToken)
			if encoding != "" {
				req.Header.Set("Content-Encoding", encoding)
			}
			res, err := s.HTTP.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			out, _ := io.ReadAll(res.Body)
			return res.StatusCode, string(out)
		}
		for _, c := range []struct {
			what, method, path, encoding string
			body                         []byte
			status                       int
			says                         string
		}{
			{"64 MiB of zeros in gzip", http.MethodPost, "/api/users/login/", "gzip", gz(make([]byte, 64<<20)), http.StatusRequestEntityTooLarge, "once decompressed: the limit is 8 MiB"},
			{"a gzip login", http.MethodPost, "/api/users/login/", "gzip", gz([]byte(`{"username":"bodies","password":"wrong password"}`)), http.StatusUnauthorized, "or password"},
			{"a gzip post", http.MethodPost, "/api/posts/", "GZip", gz([]byte(`{"content":"squeezed"}`)), http.StatusOK, "squeezed"},
			{"not gzip", http.MethodPost, "/api/posts/", "gzip", []byte(`{"content":"plain"}`), http.StatusBadRequest, "not valid gzip"},
			{"gzip cut short", http.MethodPost, "/api/posts/", "gzip", gz([]byte(`{"content":"cut"}`))[:20], http.StatusBadRequest, "not valid gzip"},
			{"brotli", http.MethodPost, "/api/posts/", "br", []byte(`{"content":"b"}`), http.StatusUnsupportedMediaType, "is not supported: send the body uncompressed, or with gzip"},
			{"GET with {}", http.MethodGet, "/api/users/", "", []byte(" {} "), http.StatusOK, u.Email},
			{"DELETE with {}", http.MethodDelete, "/api/users/sessions/01NOSUCHSESSION0000000000/", "", []byte("{}"), http.StatusNotFound, "no signed-in session"},
			{"DELETE with fields", http.MethodDelete, "/api/users/sessions/01NOSUCHSESSION0000000000/", "", []byte(`{"sessionId":"x"}`), http.StatusBadRequest, "takes no request body"},
			{"GET with gzip fields", http.MethodGet, "/api/users/", "gzip", gz([]byte(`{"x":1}`)), http.StatusBadRequest, "takes no request body"},
		} {
			status, out := do(c.method, c.path, c.encoding, c.body)
			if status != c.status || !strings.Contains(out, c.says) {
				t.Errorf("%s: %d %s, want %d saying %q", c.what, status, out, c.status, c.says)
			}
		}
	})
}
