// Package mail sends Flock's outgoing email. Open turns a FLOCK_MAILER value
// into a Mailer: a log mailer and a file mailer for development, and an SMTP
// mailer for production.
package mail

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	netmail "net/mail"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	gomail "github.com/wneessen/go-mail"
)

// DefaultFrom is the sender used when neither Open's from argument nor a
// ?from= query option names one.
const DefaultFrom = "Flock <flock@localhost>"

// DefaultTimeout bounds one SMTP delivery (dial, TLS, auth and data) unless
// the spec's ?timeout= option says otherwise.
const DefaultTimeout = 15 * time.Second

// specForms is quoted in every error about a FLOCK_MAILER value.
const specForms = `want "log", "file:<dir>", "smtp://user:pass@host:port" or "smtps://user:pass@host:port"`

// Message is one outgoing email (plain text, optional HTML alternative).
// To is a single address, with or without a display name.
type Message struct {
	To, Subject, Text, HTML string
	// Expires, when set, is when the email stops being worth sending (the
	// link it carries stops working): the Outbox gives up retrying it
	// then. Mailers ignore it.
	Expires time.Time
}

// errBadRecipient marks a message whose To is not an address: no retry
// can send it.
var errBadRecipient = errors.New("bad recipient")

// Mailer sends email. Send returns an error if the message could not be
// handed on (logged, written, or accepted by the SMTP server); it is safe for
// concurrent use.
type Mailer interface {
	Send(ctx context.Context, m Message) error
}

// Open returns the mailer a FLOCK_MAILER value names:
//
//   - "log" or "": log every message at INFO, text body included.
//   - "file:<dir>": write one .eml file per message into dir, created 0700 if missing.
//   - "smtp://user:pass@host:port": SMTP with opportunistic STARTTLS (port 587
//     if omitted); add ?tls=required to refuse servers without STARTTLS.
//   - "smtps://user:pass@host:port": SMTP over implicit TLS (port 465 if omitted).
//
// SMTP specs also take ?from=<address> (overrides from) and ?timeout=<duration>.
// from is the sender address; DefaultFrom is used when it is empty. logger is
// used by the log mailer; nil means slog.Default(). Errors never repeat the
// password in the spec.
func Open(spec string, from string, logger *slog.Logger) (Mailer, error) {
	if from == "" {
		from = DefaultFrom
	}
	scheme, rest, _ := strings.Cut(spec, ":")
	switch scheme {
	case "", "log":
		if rest != "" {
			return nil, fmt.Errorf("open mailer: %q takes no argument: %s", scheme, specForms)
		}
		if logger == nil {
			logger = slog.Default()
		}
		return &logMailer{logger: logger}, nil
	case "file":
		if rest == "" {
			return nil, fmt.Errorf("open mailer: file mailer needs a directory: %s", specForms)
		}
		if _, err := netmail.ParseAddress(from); err != nil {
			return nil, fmt.Errorf("open mailer: sender %q: %w", from, err)
		}
		if err := os.MkdirAll(rest, 0o700); err != nil {
			return nil, fmt.Errorf("open mailer: create %s: %w", rest, err)
		}
		return &fileMailer{dir: rest, from: from, now: time.Now}, nil
	case "smtp", "smtps":
		return openSMTP(spec, from)
	default:
		return nil, fmt.Errorf("open mailer: unknown kind %q: %s", scheme, specForms)
	}
}

// logMailer logs each message instead of sending it.
type logMailer struct{ logger *slog.Logger }

// Send logs the whole text body so a developer can copy links from it.
func (l *logMailer) Send(ctx context.Context, m Message) error {
	l.logger.InfoContext(ctx, "mail not sent (log mailer)",
		slog.String("to", m.To), slog.String("subject", m.Subject), slog.String("text", m.Text))
	return nil
}

// fileMailer writes each message as an RFC 5322 .eml file into dir.
type fileMailer struct {
	dir, from string
	now       func() time.Time
}

// Send writes the message to a temporary file and renames it into place, so
// a reader listing *.eml never sees a partial file. Names start with a UTC
// timestamp, so they sort in the order the messages were sent.
func (f *fileMailer) Send(ctx context.Context, m Message) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("write mail: %w", err)
	}
	msg, err := newMsg(f.from, m)
	if err != nil {
		return fmt.Errorf("write mail: %w", err)
	}
	var suffix [6]byte
	_, _ = rand.Read(suffix[:]) // crypto/rand.Read never fails.
	name := f.now().UTC().Format("20060102T150405.000000000Z") + "-" + hex.EncodeToString(suffix[:]) + ".eml"

	tmp, err := os.CreateTemp(f.dir, ".mail-*.tmp")
	if err != nil {
		return fmt.Errorf("write mail: %w", err)
	}
	_, err = msg.WriteTo(tmp)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), filepath.Join(f.dir, name))
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("write mail %s: %w", name, err)
	}
	return nil
}

// smtpMailer delivers messages over SMTP, one connection per message.
type smtpMailer struct {
	host, user, pass, from string
	port                   int
	implicitTLS            bool
	policy                 gomail.TLSPolicy
	timeout                time.Duration
	tlsConfig              *tls.Config // nil: verify host against system roots
}

// openSMTP parses an smtp:// or smtps:// spec. It never wraps url.Parse's
// error as is, because that quotes the whole URL, password included.
func openSMTP(spec, from string) (*smtpMailer, error) {
	u, err := url.Parse(spec)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return nil, fmt.Errorf("open mailer: invalid SMTP URL: %w: %s", err, specForms)
	}
	s := &smtpMailer{
		host: u.Hostname(), from: from, port: 587,
		implicitTLS: u.Scheme == "smtps", policy: gomail.TLSOpportunistic, timeout: DefaultTimeout,
	}
	if s.host == "" {
		return nil, fmt.Errorf("open mailer: SMTP URL has no host: %s", specForms)
	}
	if s.implicitTLS {
		s.port = 465
	}
	if p := u.Port(); p != "" {
		if s.port, err = strconv.Atoi(p); err != nil || s.port < 1 || s.port > 65535 {
			return nil, fmt.Errorf("open mailer: invalid SMTP port %q", p)
		}
	}
	if u.User != nil {
		s.user = u.User.Username()
		s.pass, _ = u.User.Password()
	}
	for key, vals := range u.Query() {
		v := vals[len(vals)-1]
		switch {
		case key == "from" && v != "":
			s.from = v
		case key == "tls" && v == "required" && !s.implicitTLS:
			s.policy = gomail.TLSMandatory
		case key == "tls" && v == "opportunistic" && !s.implicitTLS:
		case key == "timeout":
			if s.timeout, err = time.ParseDuration(v); err != nil || s.timeout <= 0 {
				return nil, fmt.Errorf("open mailer: invalid SMTP timeout %q", v)
			}
		default:
			return nil, fmt.Errorf("open mailer: unsupported SMTP option %s=%q (want from=, timeout=, and for smtp:// tls=required or tls=opportunistic)", key, v)
		}
	}
	if _, err := netmail.ParseAddress(s.from); err != nil {
		return nil, fmt.Errorf("open mailer: sender %q: %w", s.from, err)
	}
	return s, nil
}

// Send dials the server, upgrades with STARTTLS when the server offers it
// (or fails if tls=required and it does not), authenticates if the spec had a
// user, and delivers the message. It gives up when ctx ends or the timeout
// passes, at any step. Credentials go out with PLAIN or LOGIN only over TLS
// or to localhost; go-mail refuses otherwise.
func (s *smtpMailer) Send(ctx context.Context, m Message) error {
	msg, err := newMsg(s.from, m)
	if err != nil {
		return fmt.Errorf("send mail: %w", err)
	}
	tlsConfig := s.tlsConfig
	if tlsConfig == nil {
		tlsConfig = &tls.Config{ServerName: s.host, MinVersion: tls.VersionTLS12}
	}
	// go-mail only watches ctx while dialing; closing the connection when ctx
	// ends aborts a server that stalls later in the conversation.
	stop := func() bool { return false }
	dial := func(dctx context.Context, network, addr string) (net.Conn, error) {
		d := &net.Dialer{}
		var conn net.Conn
		var err error
		if s.implicitTLS {
			conn, err = (&tls.Dialer{NetDialer: d, Config: tlsConfig}).DialContext(dctx, network, addr)
		} else {
			conn, err = d.DialContext(dctx, network, addr)
		}
		if err == nil {
			stop = context.AfterFunc(ctx, func() { conn.Close() })
		}
		return conn, err
	}
	opts := []gomail.Option{
		gomail.WithPort(s.port), gomail.WithTimeout(s.timeout), gomail.WithTLSPolicy(s.policy),
		gomail.WithTLSConfig(tlsConfig), gomail.WithDialContextFunc(dial),
	}
	if s.implicitTLS {
		opts = append(opts, gomail.WithSSL()) // skips STARTTLS; dial does the TLS
	}
	if s.user != "" {
		opts = append(opts, gomail.WithUsername(s.user), gomail.WithPassword(s.pass),
			gomail.WithOpportunisticSMTPAuth(gomail.SMTPAuthPlain, gomail.SMTPAuthLogin))
	}
	// A client per message: go-mail's Client keeps per-connection state.
	c, err := gomail.NewClient(s.host, opts...)
	if err != nil {
		return fmt.Errorf("send mail: %w", err)
	}
	err = c.DialAndSendWithContext(ctx, msg)
	stop()
	if err != nil {
		if cerr := ctx.Err(); cerr != nil {
			err = fmt.Errorf("%w (%v)", cerr, err)
		}
		return fmt.Errorf("send mail via %s:%d: %w", s.host, s.port, err)
	}
	return nil
}

// newMsg renders m as a go-mail message, the one format both the file and
// SMTP mailers write. Returns an error if from or m.To is not an address.
func newMsg(from string, m Message) (*gomail.Msg, error) {
	msg := gomail.NewMsg()
	if err := msg.From(from); err != nil {
		return nil, fmt.Errorf("sender %q: %w", from, err)
	}
	if err := msg.To(m.To); err != nil {
		return nil, fmt.Errorf("%w %q: %w", errBadRecipient, m.To, err)
	}
	msg.Subject(m.Subject)
	msg.SetDate()
	msg.SetMessageID()
	msg.SetBodyString(gomail.TypeTextPlain, m.Text)
	if m.HTML != "" {
		msg.AddAlternativeString(gomail.TypeTextHTML, m.HTML)
	}
	return msg, nil
}
