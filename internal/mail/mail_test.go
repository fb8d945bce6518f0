package mail

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	netmail "net/mail"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

const (
	testUser = "alice"
	testPass = "s3cret"
	testLink = "http://x/verify?token=abc"
)

// testMessage has a text line long enough that quoted-printable must fold it
// with a soft line break, and an "=" that it must escape.
var testMessage = Message{
	To:      "Bob <bob@example.com>",
	Subject: "Vérifiez your Flock email",
	Text:    "Welcome to Flock! Please confirm your email address by opening " + testLink + " within a day.\n",
	HTML:    `<p><a href="` + testLink + `">Confirm your email</a></p>`,
}

// received is one message the test SMTP server accepted.
type received struct {
	from string
	to   []string
	data []byte
	tls  bool
}

// testServer is a real SMTP server that accepts mail from testUser/testPass
// and records it.
type testServer struct {
	addr string
	mu   sync.Mutex
	msgs []received
}

func (s *testServer) received() []received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]received(nil), s.msgs...)
}

// session implements smtp.Session and smtp.AuthSession.
type session struct {
	srv    *testServer
	conn   *smtp.Conn
	authed bool
	cur    received
}

func (s *session) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *session) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		if user != testUser || pass != testPass {
			return smtp.ErrAuthFailed
		}
		s.authed = true
		return nil
	}), nil
}

func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	if !s.authed {
		return smtp.ErrAuthRequired
	}
	s.cur.from = from
	return nil
}

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.cur.to = append(s.cur.to, to)
	return nil
}

func (s *session) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.cur.data = data
	_, s.cur.tls = s.conn.TLSConnectionState()
	s.srv.mu.Lock()
	s.srv.msgs = append(s.srv.msgs, s.cur)
	s.srv.mu.Unlock()
	return nil
}

func (s *session) Reset()        { s.cur = received{} }
func (s *session) Logout() error { return nil }

// MustSMTPServer starts an SMTP server on 127.0.0.1 for the test's lifetime.
// mode is "plain", "starttls" (offers STARTTLS) or "tls" (implicit TLS);
// for the TLS modes it returns a client config that trusts the server.
func MustSMTPServer(tb testing.TB, mode string) (*testServer, *tls.Config) {
	tb.Helper()
	ts := &testServer{}
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &session{srv: ts, conn: c}, nil
	}))
	srv.Domain = "localhost"
	srv.AllowInsecureAuth = true
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	var clientTLS *tls.Config
	if mode != "plain" {
		cert, pool := mustCert(tb)
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
		clientTLS = &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
		if mode == "tls" {
			ln = tls.NewListener(ln, srv.TLSConfig)
		}
	}
	ts.addr = ln.Addr().String()
	go srv.Serve(ln)
	tb.Cleanup(func() { srv.Close() })
	return ts, clientTLS
}

// mustCert returns a self-signed certificate for 127.0.0.1 and a pool that trusts it.
func mustCert(tb testing.TB) (tls.Certificate, *x509.CertPool) {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:         true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

// MustOpen opens spec with the test sender, failing the test on error.
func MustOpen(tb testing.TB, spec string) Mailer {
	tb.Helper()
	m, err := Open(spec, "Flock <noreply@flock.test>", slog.New(slog.DiscardHandler))
	if err != nil {
		tb.Fatalf("Open(%q): %v", spec, err)
	}
	return m
}

// parsed is an email as a recipient would read it: headers decoded, bodies
// transfer-decoded.
type parsed struct {
	to, from, subject string
	text, html        string
}

// MustParse parses raw RFC 5322 bytes with net/mail and decodes the
// text/plain and text/html parts, whatever transfer encoding they use.
func MustParse(tb testing.TB, raw []byte) parsed {
	tb.Helper()
	msg, err := netmail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		tb.Fatalf("parse message: %v\n%s", err, raw)
	}
	subject, err := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
	if err != nil {
		tb.Fatalf("decode subject: %v", err)
	}
	p := parsed{to: msg.Header.Get("To"), from: msg.Header.Get("From"), subject: subject}
	var walk func(h map[string][]string, body io.Reader)
	walk = func(h map[string][]string, body io.Reader) {
		header := netmail.Header(h)
		mediaType, params, err := mime.ParseMediaType(header.Get("Content-Type"))
		if err != nil {
			tb.Fatalf("content type %q: %v", header.Get("Content-Type"), err)
		}
		if strings.HasPrefix(mediaType, "multipart/") {
			mr := multipart.NewReader(body, params["boundary"])
			for {
				part, err := mr.NextRawPart()
				if errors.Is(err, io.EOF) {
					return
				} else if err != nil {
					tb.Fatalf("multipart: %v", err)
				}
				walk(part.Header, part)
			}
		}
		switch strings.ToLower(header.Get("Content-Transfer-Encoding")) {
		case "quoted-printable":
			body = quotedprintable.NewReader(body)
		case "base64":
			body = base64.NewDecoder(base64.StdEncoding, body)
		}
		b, err := io.ReadAll(body)
		if err != nil {
			tb.Fatalf("decode %s body: %v", mediaType, err)
		}
		switch mediaType {
		case "text/plain":
			p.text = strings.ReplaceAll(string(b), "\r\n", "\n")
		case "text/html":
			p.html = string(b)
		}
	}
	walk(msg.Header, msg.Body)
	return p
}

func assertDelivered(t *testing.T, got parsed) {
	t.Helper()
	if got.to != "\"Bob\" <bob@example.com>" && got.to != "Bob <bob@example.com>" {
		t.Errorf("To = %q", got.to)
	}
	if got.subject != testMessage.Subject {
		t.Errorf("Subject = %q, want %q", got.subject, testMessage.Subject)
	}
	if got.text != testMessage.Text {
		t.Errorf("text body = %q, want %q", got.text, testMessage.Text)
	}
	if !strings.Contains(got.html, `href="`+testLink+`"`) {
		t.Errorf("html body = %q, want the link intact", got.html)
	}
}

func TestOpen(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "new", "outbox")
	valid := []struct {
		spec  string
		check func(t *testing.T, m Mailer)
	}{
		{"", func(t *testing.T, m Mailer) { _ = m.(*logMailer) }},
		{"log", func(t *testing.T, m Mailer) { _ = m.(*logMailer) }},
		{"file:" + dir, func(t *testing.T, m Mailer) {
			if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
				t.Errorf("dir not created 0700: %v %v", fi, err)
			}
		}},
		{"smtp://u:p%40ss@mail.example.com:2525", func(t *testing.T, m Mailer) {
			s := m.(*smtpMailer)
			want := smtpMailer{host: "mail.example.com", port: 2525, user: "u", pass: "p@ss",
				from: "Flock <noreply@flock.test>", policy: s.policy, timeout: DefaultTimeout}
			if *s != want || s.policy.String() != "TLSOpportunistic" {
				t.Errorf("got %+v", *s)
			}
		}},
		{"smtp://mail.example.com?tls=required&from=ops@example.com&timeout=3s", func(t *testing.T, m Mailer) {
			s := m.(*smtpMailer)
			if s.port != 587 || s.user != "" || s.from != "ops@example.com" ||
				s.timeout != 3*time.Second || s.policy.String() != "TLSMandatory" {
				t.Errorf("got %+v", *s)
			}
		}},
		{"smtps://u:p@mail.example.com", func(t *testing.T, m Mailer) {
			if s := m.(*smtpMailer); !s.implicitTLS || s.port != 465 {
				t.Errorf("got %+v", *s)
			}
		}},
	}
	for _, tc := range valid {
		t.Run("accepts "+tc.spec, func(t *testing.T) {
			tc.check(t, MustOpen(t, tc.spec))
		})
	}

	invalid := []string{
		"logs", "log:x", "file:", "file", "sendmail", "smtp", "smtp://", "smtp://:25",
		"smtp://u:hunter2@host:99999", "smtp://u:hunter2@host:abc", "smtp://h?tls=maybe",
		"smtps://h?tls=required", "smtp://h?timeout=soon", "smtp://h?timeout=-1s",
		"smtp://h?bogus=1", "smtp://h?from=not-an-address", "smtp://u:hunter2@ho st",
		"smpt://u:hunter2@host",
	}
	for _, spec := range invalid {
		t.Run("rejects "+spec, func(t *testing.T) {
			_, err := Open(spec, "", nil)
			if err == nil {
				t.Fatal("want error")
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error leaks the password: %v", err)
			}
		})
	}
	t.Run("rejects a bad sender", func(t *testing.T) {
		if _, err := Open("smtp://h", "not an address", nil); err == nil {
			t.Fatal("want error")
		}
	})
	t.Run("unknown kind lists the accepted forms", func(t *testing.T) {
		_, err := Open("sendmail", "", nil)
		if err == nil || !strings.Contains(err.Error(), `"file:<dir>"`) {
			t.Errorf("error = %v", err)
		}
	})
}

func TestLogMailer(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	m, err := Open("log", "", slog.New(slog.NewTextHandler(&buf, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Send(t.Context(), testMessage); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"level=INFO", "bob@example.com", "Vérifiez", testLink} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("log %q lacks %q", buf.String(), want)
		}
	}
}

func TestFileMailer(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "outbox")
	m := MustOpen(t, "file:"+dir)
	clock := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	m.(*fileMailer).now = func() time.Time { clock = clock.Add(time.Millisecond); return clock }

	second := Message{To: "carol@example.com", Subject: "second", Text: "two"}
	for _, msg := range []Message{testMessage, second} {
		if err := m.Send(t.Context(), msg); err != nil {
			t.Fatal(err)
		}
	}
	entries, err := os.ReadDir(dir) // sorted by name
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 {
		t.Fatalf("want 2 files and no leftovers, got %v", entries)
	}
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), "20260102T030405.") || filepath.Ext(e.Name()) != ".eml" {
			t.Errorf("file name %q is not a timestamped .eml", e.Name())
		}
	}
	first, err := os.ReadFile(filepath.Join(dir, entries[0].Name()))
	if err != nil {
		t.Fatal(err)
	}
	got := MustParse(t, first)
	assertDelivered(t, got)
	if got.from != `"Flock" <noreply@flock.test>` {
		t.Errorf("From = %q", got.from)
	}
	last, err := os.ReadFile(filepath.Join(dir, entries[1].Name()))
	if err != nil {
		t.Fatal(err)
	}
	if got := MustParse(t, last); got.subject != "second" || got.text != "two" {
		t.Errorf("second file = %+v", got)
	}
	t.Run("rejects a bad recipient", func(t *testing.T) {
		if err := m.Send(t.Context(), Message{To: "nobody", Text: "x"}); err == nil {
			t.Error("want error")
		}
	})
}

func TestSMTPMailer(t *testing.T) {
	t.Parallel()
	spec := func(scheme, user, pass, addr, query string) string {
		return fmt.Sprintf("%s://%s:%s@%s%s", scheme, user, pass, addr, query)
	}

	t.Run("delivers with PLAIN auth and the link intact", func(t *testing.T) {
		t.Parallel()
		srv, _ := MustSMTPServer(t, "plain")
		m := MustOpen(t, spec("smtp", testUser, testPass, srv.addr, ""))
		if err := m.Send(t.Context(), testMessage); err != nil {
			t.Fatal(err)
		}
		msgs := srv.received()
		if len(msgs) != 1 {
			t.Fatalf("server received %d messages, want 1", len(msgs))
		}
		if got := msgs[0]; got.from != "noreply@flock.test" || len(got.to) != 1 || got.to[0] != "bob@example.com" {
			t.Errorf("envelope from %q to %q", got.from, got.to)
		}
		assertDelivered(t, MustParse(t, msgs[0].data))
	})

	t.Run("wrong password is an error", func(t *testing.T) {
		t.Parallel()
		srv, _ := MustSMTPServer(t, "plain")
		m := MustOpen(t, spec("smtp", testUser, "wrong", srv.addr, ""))
		if err := m.Send(t.Context(), testMessage); err == nil {
			t.Fatal("want error")
		}
		if n := len(srv.received()); n != 0 {
			t.Errorf("server received %d messages", n)
		}
	})

	t.Run("connection refused is an error, not a hang", func(t *testing.T) {
		t.Parallel()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		m := MustOpen(t, spec("smtp", testUser, testPass, addr, "?timeout=5s"))
		start := time.Now()
		if err := m.Send(t.Context(), testMessage); err == nil {
			t.Fatal("want error")
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("took %v", d)
		}
	})

	t.Run("a stalled server is abandoned when ctx ends", func(t *testing.T) {
		t.Parallel()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		go func() { // accept and never greet
			var conns []net.Conn
			for {
				c, err := ln.Accept()
				if err != nil {
					for _, c := range conns {
						c.Close()
					}
					return
				}
				conns = append(conns, c)
			}
		}()
		m := MustOpen(t, spec("smtp", testUser, testPass, ln.Addr().String(), ""))
		ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
		defer cancel()
		start := time.Now()
		err = m.Send(ctx, testMessage)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("err = %v, want DeadlineExceeded", err)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("took %v", d)
		}
	})

	t.Run("tls=required refuses a server without STARTTLS", func(t *testing.T) {
		t.Parallel()
		srv, _ := MustSMTPServer(t, "plain")
		m := MustOpen(t, spec("smtp", testUser, testPass, srv.addr, "?tls=required"))
		if err := m.Send(t.Context(), testMessage); err == nil {
			t.Fatal("want error")
		}
	})

	for _, tc := range []struct{ name, mode, scheme, query string }{
		{"smtp upgrades with STARTTLS when offered", "starttls", "smtp", ""},
		{"tls=required uses STARTTLS", "starttls", "smtp", "?tls=required"},
		{"smtps uses implicit TLS", "tls", "smtps", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv, clientTLS := MustSMTPServer(t, tc.mode)
			m := MustOpen(t, spec(tc.scheme, testUser, testPass, srv.addr, tc.query))
			m.(*smtpMailer).tlsConfig = clientTLS
			if err := m.Send(t.Context(), testMessage); err != nil {
				t.Fatal(err)
			}
			msgs := srv.received()
			if len(msgs) != 1 || !msgs[0].tls {
				t.Fatalf("want one message over TLS, got %d", len(msgs))
			}
			assertDelivered(t, MustParse(t, msgs[0].data))
		})
	}
}
