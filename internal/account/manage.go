package account

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/uptrace/bun"

	"github.com/flock-social/flock"
	flockmail "github.com/flock-social/flock/internal/mail"
	"github.com/flock-social/flock/internal/notify"
	"github.com/flock-social/flock/internal/page"
	"github.com/flock-social/flock/internal/store"
)

// Client is where a request comes from, as recorded on the sessions it
// starts and shown by ListSessions.
type Client struct {
	UserAgent string
	IP        string
}

// maxUserAgentLen bounds the User-Agent kept on a session, in bytes.
const maxUserAgentLen = 256

// clean returns c fit for storage: valid UTF-8 without NUL, the user agent
// cut to maxUserAgentLen bytes on a character boundary.
func (c Client) clean() Client {
	ua := strings.ToValidUTF8(strings.ReplaceAll(c.UserAgent, "\x00", ""), "")
	if len(ua) > maxUserAgentLen {
		ua = ua[:maxUserAgentLen]
		for !utf8.ValidString(ua) {
			ua = ua[:len(ua)-1]
		}
	}
	return Client{UserAgent: strings.TrimSpace(ua), IP: c.IP}
}

// sessionTouchEvery is how stale a session's last use may get before a
// request records a new one: a session is written at most this often,
// never once per request.
const sessionTouchEvery = 5 * time.Minute

var errWrongPassword = flock.Errorf(flock.EFORBIDDEN, "current password is incorrect")

// checkCurrentPassword returns the caller's account when password is its
// password, EFORBIDDEN otherwise.
func (s *Service) checkCurrentPassword(ctx context.Context, p *Principal, password string) (*store.User, error) {
	u, err := s.db.GetUser(ctx, s.db, p.UserID)
	if err != nil {
		return nil, err
	}
	ok, err := passwordMatches(ctx, password, u.PasswordHash)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, errWrongPassword
	}
	return u, nil
}

// checkNewPassword is checkPassword for a field named new_password.
func checkNewPassword(password string) error {
	if err := checkPassword(password); err != nil {
		var fe *flock.Error
		if errors.As(err, &fe) {
			return flock.FieldErrorf("new_password", "new %s", fe.Message)
		}
		return err
	}
	return nil
}

// ChangePassword replaces the caller's password. Every other session of the
// account ends (tokens and open streams, on every instance); the caller's
// own stays, outstanding password-reset links stop working, and the
// account's address is told by email (so a stolen session that changes the
// password does not go unnoticed). Returns EFORBIDDEN when current is wrong and EINVALID when next is out of bounds
// or equals current.
func (s *Service) ChangePassword(ctx context.Context, p *Principal, current, next string) error {
	if err := checkNewPassword(next); err != nil {
		return err
	}
	u, err := s.checkCurrentPassword(ctx, p, current)
	if err != nil {
		return fmt.Errorf("change password: %w", err)
	}
	if current == next {
		return flock.FieldErrorf("new_password", "new password must differ from the current one")
	}
	hash, err := hashPassword(ctx, next, s.cfg.PasswordParams)
	if err != nil {
		return err
	}
	var (
		ended []string
		mails flockmail.Pending
	)
	err = s.db.InTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		mails = flockmail.Pending{}
		if err := s.db.SetPasswordHash(ctx, tx, p.UserID, hash); err != nil {
			return err
		}
		if err := s.db.InvalidatePasswordResets(ctx, tx, p.UserID); err != nil {
			return err
		}
		// A change of address asked for by whoever else held a session
		// ends too: the notice it sent says to change the password.
		if err := s.db.InvalidateEmailChanges(ctx, tx, p.UserID); err != nil {
			return err
		}
		if ended, err = s.db.RevokeOtherSessions(ctx, tx, p.UserID, p.SessionID, "password changed"); err != nil {
			return err
		}
		return s.outbox.Queue(ctx, tx, &mails, s.passwordChangedEmail(u, "changed from one of your signed-in sessions"))
	})
	if err != nil {
		return fmt.Errorf("change password: %w", err)
	}
	s.endSessions(ctx, ended)
	s.outbox.Send(&mails)
	return nil
}

// endSessions makes revoked sessions stop at once on every instance: their
// cached entries go and their open streams are told to close.
func (s *Service) endSessions(ctx context.Context, ids []string) {
	for _, id := range ids {
		s.cfg.Sessions.EndSession(ctx, id)
		s.events.Announce(ctx, notify.SessionChannel(id))
	}
}

// SessionList is a page of sessions.
type SessionList struct {
	Sessions      []store.Session
	NextPageToken string
}

// ListSessions lists the caller's live sessions, newest first.
func (s *Service) ListSessions(ctx context.Context, p *Principal, size int32, token string) (*SessionList, error) {
	cur, _, err := page.Decode("sessions", token)
	if err != nil {
		return nil, err
	}
	n := page.Size(size)
	rows, err := s.db.ListLiveSessions(ctx, s.db, p.UserID, cur.ID, n+1)
	if err != nil {
		return nil, fmt.Errorf("list sessions: %w", err)
	}
	rows, next := page.Next(rows, n, func(r store.Session) page.Cursor { return page.Cursor{Kind: "sessions", ID: r.ID} })
	return &SessionList{Sessions: rows, NextPageToken: next}, nil
}

// RevokeSession ends one of the caller's sessions: its refresh and access
// tokens stop working and its open streams close, on every instance.
// Returns ENOTFOUND when the caller has no live session with this ID
// (another user's session is not theirs to end, nor to learn about).
func (s *Service) RevokeSession(ctx context.Context, p *Principal, sessionID string) error {
	// Revoking the session that asks is a logout, and its next request
	// says so, not that another session ended it.
	why := "revoked by its user"
	if sessionID == p.SessionID {
		why = "logout"
	}
	var ok bool
	err := s.db.InTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		var err error
		if ok, err = s.db.RevokeUserSession(ctx, tx, p.UserID, sessionID, why); err != nil || !ok {
			return err
		}
		// The session revoked may be the one that asked to move the
		// account to another address: that change ends with it (its
		// notice says to end the sessions one does not know).
		return s.db.InvalidateEmailChanges(ctx, tx, p.UserID)
	})
	if err != nil {
		return fmt.Errorf("revoke session: %w", err)
	}
	if !ok {
		return flock.Errorf(flock.ENOTFOUND, "you have no signed-in session %q; ListSessions shows yours", sessionID)
	}
	s.endSessions(ctx, []string{sessionID})
	return nil
}
