package testutil

import (
	"bytes"
	"io"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// RejectedDomain is the domain whose recipients an SMTPServer refuses for
// good (550), like a mailbox that does not exist.
const RejectedDomain = "rejected.test"

// SMTPServer is a real SMTP server on 127.0.0.1 (github.com/emersion/go-smtp)
// that accepts mail from anyone, without authentication, and records it.
// While it is down it answers every connection with "421 service not
// available" and closes it, as a mail server that is restarting does.
type SMTPServer struct {
	// Addr is host:port.
	Addr string

	mu      sync.Mutex
	down    bool
	refused int
	msgs    []SMTPMessage
}

// SMTPMessage is one message an SMTPServer accepted.
type SMTPMessage struct {
	From string
	To   []string
	Data []byte
}

// MustSMTPServer starts an SMTP server for the test's lifetime.
func MustSMTPServer(tb testing.TB) *SMTPServer {
	tb.Helper()
	s := &SMTPServer{}
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) {
		return &smtpSession{srv: s}, nil
	}))
	srv.Domain = "localhost"
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	s.Addr = ln.Addr().String()
	go srv.Serve(&outageListener{Listener: ln, srv: s})
	tb.Cleanup(func() { srv.Close() })
	return s
}

// URL is the FLOCK_MAILER value that sends to s.
func (s *SMTPServer) URL() string { return "smtp://" + s.Addr }

// SetDown takes the server down (every connection refused with 421) or
// brings it back up.
func (s *SMTPServer) SetDown(down bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down = down
}

// Refused is how many connections were refused while the server was down.
func (s *SMTPServer) Refused() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refused
}

// Messages returns the messages accepted so far, oldest first.
func (s *SMTPServer) Messages() []SMTPMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]SMTPMessage(nil), s.msgs...)
}

// MustMessages waits (up to 30s) until at least n messages were accepted
// and returns them all.
func (s *SMTPServer) MustMessages(tb testing.TB, n int) []SMTPMessage {
	tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if msgs := s.Messages(); len(msgs) >= n {
			return msgs
		} else if time.Now().After(deadline) {
			tb.Fatalf("SMTP server at %s accepted %d messages in 30s, want %d", s.Addr, len(msgs), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Text returns the message's text body, decoded (single-part messages).
func (m SMTPMessage) Text(tb testing.TB) string {
	tb.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(m.Data))
	if err != nil {
		tb.Fatalf("parse message: %v", err)
	}
	var body io.Reader = msg.Body
	if strings.EqualFold(msg.Header.Get("Content-Transfer-Encoding"), "quoted-printable") {
		body = quotedprintable.NewReader(body)
	}
	b, err := io.ReadAll(body)
	if err != nil {
		tb.Fatalf("read message body: %v", err)
	}
	return string(b)
}

// VerificationToken returns the token of the message's verification link,
// or "" if it has none.
func (m SMTPMessage) VerificationToken(tb testing.TB) string {
	tb.Helper()
	if sub := tokenInLink.FindStringSubmatch(m.Text(tb)); sub != nil {
		return sub[1]
	}
	return ""
}

// outageListener hands connections to the SMTP server while it is up and
// refuses them itself while it is down.
type outageListener struct {
	net.Listener
	srv *SMTPServer
}

func (l *outageListener) Accept() (net.Conn, error) {
	for {
		conn, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		l.srv.mu.Lock()
		down := l.srv.down
		if down {
			l.srv.refused++
		}
		l.srv.mu.Unlock()
		if !down {
			return conn, nil
		}
		_ = conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
		_, _ = io.WriteString(conn, "421 4.3.2 Service not available, closing transmission channel\r\n")
		conn.Close()
	}
}

type smtpSession struct {
	srv *SMTPServer
	cur SMTPMessage
}

func (s *smtpSession) Mail(from string, _ *smtp.MailOptions) error {
	s.cur.From = from
	return nil
}

func (s *smtpSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	if strings.HasSuffix(strings.ToLower(to), "@"+RejectedDomain) {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "No such user here"}
	}
	s.cur.To = append(s.cur.To, to)
	return nil
}

func (s *smtpSession) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.cur.Data = data
	s.srv.mu.Lock()
	s.srv.msgs = append(s.srv.msgs, s.cur)
	s.srv.mu.Unlock()
	return nil
}

func (s *smtpSession) Reset()        { s.cur = SMTPMessage{} }
func (s *smtpSession) Logout() error { return nil }
