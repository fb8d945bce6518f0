// Package account holds the rules of Flock accounts: registration, email
// verification, login with rotating refresh tokens, authentication of
// requests, profiles and staff promotion.
package account

import (
	"context"
	"errors"
	"fmt"
	"github.com/alexedwards/argon2id"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/uptrace/bun"
	"gocloud.dev/blob"

	"github.com/flock-social/flock"
	"github.com/flock-social/flock/internal/account/accesstoken"
	"github.com/flock-social/flock/internal/account/emailaddr"
	flockmail "github.com/flock-social/flock/internal/mail"
	"github.com/flock-social/flock/internal/media"
	"github.com/flock-social/flock/internal/notify"
	"github.com/flock-social/flock/internal/session"
	"github.com/flock-social/flock/internal/store"
)

// DefaultRefreshReuseGrace is the refresh reuse grace that cmd/flock and
// server.Config use when none is set (see Config.RefreshReuseGrace).
const DefaultRefreshReuseGrace = 30 * time.Second

// Config holds the account settings.
type Config struct {
	// PublicURL is the base of links in emails, without a trailing slash.
	PublicURL string
	// AccessTTL is how long an access token is valid (default 15 minutes).
	AccessTTL time.Duration
	// RefreshTTL is how long a refresh token is valid (default 30 days);
	// each rotation issues a fresh one, but never past the session's end.
	RefreshTTL time.Duration
	// SessionTTL bounds a login however often it is refreshed (default 90 days).
	SessionTTL time.Duration
	// VerificationTTL is how long a verification link works (default 24 hours).
	VerificationTTL time.Duration
	// RefreshReuseGrace is how long after its rotation a refresh token is
	// still answered with a new pair in the same session, so that two tabs
	// or processes refreshing one token at once both stay signed in (Okta's
	// rotation grace, Auth0's reuse interval). Within it a stolen rotated
	// token works too. Zero, the default here, means none: a rotated token
	// presented again revokes its session at once. server.Config defaults
	// to DefaultRefreshReuseGrace.
	RefreshReuseGrace time.Duration
	// PasswordParams are the argon2id parameters of new password hashes;
	// nil means OWASP's minimum (m=19 MiB, t=2, p=1). Only test harnesses
	// set cheaper ones: a hash takes ~45 ms, and ~215 ms under the race
	// detector, which dominated the server tests' run time.
	PasswordParams *argon2id.Params
	// Sessions remembers live sessions for a few seconds, so that most
	// requests authenticate without a query, and carries the end of a
	// session or a change of a user to every instance. Nil: every request
	// reads its session from the database.
	Sessions *session.Cache
	// SignedIn, when set, runs in the transaction of every login and
	// refresh, after the account's checks: the server starts the user's
	// home timeline there (timeline.Service.Warm). Its error fails the
	// sign-in.
	SignedIn func(ctx context.Context, tx bun.Tx, userID string) error
}

// Service carries out account actions.
type Service struct {
	db        *store.DB
	outbox    *flockmail.Outbox
	bucket    *blob.Bucket
	tokens    *accesstoken.Tokens
	cfg       Config
	log       *slog.Logger
	dummyHash string
	events    *notify.Service
	// background tracks work that runs after its request has answered
	// (password-reset requests); Close waits for it.
	background sync.WaitGroup
}

// NewService returns a Service. outbox sends its emails; bucket stores
// profile pictures; events records profile changes and announces ended
// sessions to open streams.
func NewService(db *store.DB, outbox *flockmail.Outbox, bucket *blob.Bucket, tokens *accesstoken.Tokens, events *notify.Service, cfg Config, log *slog.Logger) (*Service, error) {
	if cfg.AccessTTL == 0 {
		cfg.AccessTTL = 15 * time.Minute
	}
	if cfg.RefreshTTL == 0 {
		cfg.RefreshTTL = 30 * 24 * time.Hour
	}
	if cfg.SessionTTL == 0 {
		cfg.SessionTTL = 90 * 24 * time.Hour
	}
	if cfg.VerificationTTL == 0 {
		cfg.VerificationTTL = 24 * time.Hour
	}
	cfg.PublicURL = strings.TrimRight(cfg.PublicURL, "/")
	dummy, err := newDummyHash(cfg.PasswordParams)
	if err != nil {
		return nil, err
	}
	return &Service{db: db, outbox: outbox, bucket: bucket, tokens: tokens, events: events, cfg: cfg, log: log, dummyHash: dummy}, nil
}

// Close waits for the work that runs after its request has answered
// (password-reset requests, bounded by resetRequestTimeout). The emails it
// queued are the outbox's to finish (mail.Outbox.Close).
func (s *Service) Close() { s.background.Wait() }

// Principal is the authenticated caller of a request.
type Principal struct {
	UserID    string
	SessionID string
	Role      string
}

// IsStaff reports whether the caller may moderate.
func (p *Principal) IsStaff() bool { return p != nil && p.Role == store.RoleStaff }

// TokenPair is what Login and Refresh return.
type TokenPair struct {
	AccessToken  string
	RefreshToken string
	ExpiresIn    time.Duration
	User         *store.User
}

var usernamePattern = regexp.MustCompile(`^[A-Za-z0-9_]{3,30}$`)

// RegisterInput is a registration request.
type RegisterInput struct {
	Username, Email, Password, FullName string
}

// Register creates an unverified account and emails a verification link.
// Returns EINVALID for a malformed field and ECONFLICT when the username (in
// any letter case) or the email is taken.
func (s *Service) Register(ctx context.Context, in RegisterInput) (*store.User, error) {
	if !usernamePattern.MatchString(in.Username) {
		return nil, flock.FieldErrorf("username", "username must be 3-30 letters, digits or underscores")
	}
	email, err := emailaddr.Normalize(in.Email)
	if err != nil {
		return nil, err
	}
	if err := checkPassword(in.Password); err != nil {
		return nil, err
	}
	fullName, err := cleanText("full_name", in.FullName, 100)
	if err != nil {
		return nil, err
	}
	hash, err := hashPassword(ctx, in.Password, s.cfg.PasswordParams)
	if err != nil {
		return nil, err
	}
	u := &store.User{Username: in.Username, Email: email, PasswordHash: hash, FullName: fullName}
	var mails flockmail.Pending
	err = s.db.InTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		if _, err := s.db.FindUserByLogin(ctx, tx, in.Username); err == nil {
			return flock.FieldErrorf("username", "username %q is taken", in.Username)
		} else if !store.IsNotFound(err) {
			return err
		}
		if _, err := s.db.FindUserByLogin(ctx, tx, email); err == nil {
			return flock.FieldErrorf("email", "an account with this email already exists; log in or verify it instead")
		} else if !store.IsNotFound(err) {
			return err
		}
		if err := s.db.CreateUser(ctx, tx, u); err != nil {
			return err
		}
		if err := checkUsernameHeld(ctx, s.db, tx, in.Username); err != nil {
			return err
		}
		token, err := s.newVerification(ctx, tx, u.ID)
		if err != nil {
			return err
		}
		return s.outbox.Queue(ctx, tx, &mails, s.verificationEmail(u, token))
	})
	var fe *flock.Error
	switch {
	case errors.Is(err, store.ErrConflict):
		return nil, flock.Errorf(flock.ECONFLICT, "username or email is taken")
	case errors.As(err, &fe) && fe.Field != "":
		return nil, &flock.Error{Code: flock.ECONFLICT, Field: fe.Field, Message: fe.Message}
	case err != nil:
		return nil, fmt.Errorf("register: %w", err)
	}
	s.outbox.Send(&mails)
	return u, nil
}

func (s *Service) newVerification(ctx context.Context, tx bun.IDB, userID string) (string, error) {
	token, hash := newSecretToken()
	now := s.db.Now()
	v := &store.EmailVerification{TokenHash: hash, UserID: userID, CreatedAt: now, ExpiresAt: now.Add(s.cfg.VerificationTTL)}
	if err := s.db.CreateEmailVerification(ctx, tx, v); err != nil {
		return "", err
	}
	return token, nil
}

// verificationEmail is the email that carries a verification token. It is
// queued in the transaction that creates the token and sent after the
// commit in the background, so that the answer takes as long whether or
// not an email goes out (no enumeration by timing).
func (s *Service) verificationEmail(u *store.User, token string) flockmail.Message {
	link := s.cfg.PublicURL + "/verify-email?token=" + token
	return flockmail.Message{
		To:      u.Email,
		Subject: "Verify your Flock email address",
		Text: fmt.Sprintf("Hi %s,\n\nconfirm your email address to start using Flock:\n\n%s\n\n"+
			"Or send the token to the API:\n\n  curl -X POST %s/api/users/verify-email/ -H 'Content-Type: application/json' -d '{\"token\":\"%s\"}'\n\n"+
			"The link works once and expires in %s. If you did not sign up, ignore this email.\n",
			u.Username, link, s.cfg.PublicURL, token, inWords(s.cfg.VerificationTTL)),
		Expires: s.db.Now().Add(s.cfg.VerificationTTL),
	}
}

// inWords writes a link's lifetime for an email: "24 hours", "1 hour",
// "30 minutes", where a Go duration would read "24h0m0s".
func inWords(d time.Duration) string {
	unit, n := "", int64(0)
	switch {
	case d >= time.Hour && d%time.Hour == 0:
		unit, n = "hour", int64(d/time.Hour)
	case d >= time.Minute && d%time.Minute == 0:
		unit, n = "minute", int64(d/time.Minute)
	default:
		return d.String()
	}
	if n != 1 {
		unit += "s"
	}
	return fmt.Sprintf("%d %s", n, unit)
}

// errBadVerification refuses a token that cannot verify anything (any more).
var errBadVerification = flock.FieldErrorf("token", "verification token is invalid, used, expired or voided: request a new registration email with ResendVerification, or for a change of address call ChangeEmail again")

// VerifyEmail consumes a verification token: the token of a registration
// marks its account's email verified; the token of an email change makes
// the new address the account's email and tells the old one. Returns
// EINVALID when the token is unknown, used, expired or voided (an email
// change's, by a password change or reset, a session revoked or stolen, a
// suspension), and ECONFLICT when another account took the new address
// meanwhile.
func (s *Service) VerifyEmail(ctx context.Context, token string) (*store.User, error) {
	var (
		u     *store.User
		mails flockmail.Pending
	)
	err := s.db.InTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		mails = flockmail.Pending{} // InTx may run this again
		v, err := s.db.UseEmailToken(ctx, tx, hashToken(token))
		if store.IsNotFound(err) {
			return errBadVerification
		} else if err != nil {
			return err
		}
		if v.NewEmail != nil {
			err = s.confirmEmailChange(ctx, tx, v, &mails)
		} else {
			err = s.db.MarkEmailVerified(ctx, tx, v.UserID)
		}
		if err != nil {
			return err
		}
		u, err = s.db.GetUser(ctx, tx, v.UserID)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("verify email: %w", err)
	}
	s.outbox.Send(&mails)
	return u, nil
}

// ResendVerification sends a new verification link to an unverified account
// with this email and invalidates the earlier ones. It returns nil whether
// or not there is such an account, and returns before looking, as
// RequestPasswordReset does: the work happens after the answer, so neither
// the answer nor its time tells callers anything about accounts. Only a
// malformed email is an error.
func (s *Service) ResendVerification(ctx context.Context, rawEmail string) error {
	email, err := emailaddr.Normalize(rawEmail)
	if err != nil {
		return err
	}
	s.afterAnswer("resend verification", func(ctx context.Context) error {
		var mails flockmail.Pending
		err := s.db.InTx(ctx, func(ctx context.Context, tx bun.Tx) error {
			mails = flockmail.Pending{} // InTx may run this again
			found, err := s.db.FindUserByLogin(ctx, tx, email)
			if store.IsNotFound(err) {
				return nil
			} else if err != nil {
				return err
			}
			if found.EmailVerifiedAt != nil || found.SuspendedAt != nil {
				return nil
			}
			if err := s.db.InvalidateEmailVerifications(ctx, tx, found.ID); err != nil {
				return err
			}
			token, err := s.newVerification(ctx, tx, found.ID)
			if err != nil {
				return err
			}
			return s.outbox.Queue(ctx, tx, &mails, s.verificationEmail(found, token))
		})
		if err == nil {
			s.outbox.Send(&mails)
		}
		return err
	})
	return nil
}

// LoginIdentity names the account a login attempt is against, for rate
// limits (security.md property 24): "user:<id>" when the username or email
// belongs to an account, so that trying a victim by username and by email
// draws on one budget; otherwise the normalised identifier itself.
func (s *Service) LoginIdentity(ctx context.Context, login string) string {
	// Usernames match in any letter case, emails are stored lower-cased.
	login = strings.ToLower(strings.TrimSpace(login))
	if u, err := s.db.FindUserByLogin(ctx, s.db, login); err == nil {
		return "user:" + u.ID
	}
	return login
}

var errBadLogin = flock.Errorf(flock.EUNAUTHORIZED, "invalid username/email or password")

// Login checks a username or email and a password and starts a session.
// Returns EUNAUTHORIZED for an unknown account and for a wrong password
// alike (taking the same time for both), EPRECONDITION while the email is
// unverified, and EFORBIDDEN for a suspended account.
func (s *Service) Login(ctx context.Context, login, password string) (*TokenPair, error) {
	return s.LoginFrom(ctx, login, password, Client{})
}

// LoginFrom is Login recording where the session comes from (ListSessions).
func (s *Service) LoginFrom(ctx context.Context, login, password string, c Client) (*TokenPair, error) {
	login = strings.TrimSpace(login)
	if strings.Contains(login, "@") {
		login = strings.ToLower(login)
	}
	u, err := s.db.FindUserByLogin(ctx, s.db, login)
	if store.IsNotFound(err) {
		_, _ = passwordMatches(ctx, password, s.dummyHash)
		return nil, errBadLogin
	} else if err != nil {
		return nil, fmt.Errorf("login: %w", err)
	}
	ok, err := passwordMatches(ctx, password, u.PasswordHash)
	if err != nil {
		return nil, fmt.Errorf("login: %w", err)
	}
	switch {
	case !ok:
		return nil, errBadLogin
	case u.SuspendedAt != nil:
		return nil, flock.Errorf(flock.EFORBIDDEN, "this account is suspended")
	case u.EmailVerifiedAt == nil:
		return nil, flock.Errorf(flock.EPRECONDITION, "verify your email address before logging in: follow the link in the verification email, or request a new one with ResendVerification")
	}
	var pair *TokenPair
	err = s.db.InTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		now := s.db.Now()
		c := c.clean()
		sess := &store.Session{ID: store.NewID(), UserID: u.ID, CreatedAt: now, ExpiresAt: now.Add(s.cfg.SessionTTL), UserAgent: c.UserAgent, IP: c.IP}
		if err := s.db.CreateSession(ctx, tx, sess); err != nil {
			return err
		}
		// Remembering the password voids the reset links still out, so a
		// link read later from a leaked mailbox is of no use.
		if err := s.db.InvalidatePasswordResets(ctx, tx, u.ID); err != nil {
			return err
		}
		if err := s.signedIn(ctx, tx, u.ID); err != nil {
			return err
		}
		pair, err = s.issue(ctx, tx, u, sess)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("login: %w", err)
	}
	return pair, nil
}

// signedIn runs Config.SignedIn, if any.
func (s *Service) signedIn(ctx context.Context, tx bun.Tx, userID string) error {
	if s.cfg.SignedIn == nil {
		return nil
	}
	if err := s.cfg.SignedIn(ctx, tx, userID); err != nil {
		return fmt.Errorf("signed in: %w", err)
	}
	return nil
}

// issue makes a new refresh token in sess and an access token for it.
func (s *Service) issue(ctx context.Context, tx bun.IDB, u *store.User, sess *store.Session) (*TokenPair, error) {
	now := s.db.Now()
	refresh, hash := newSecretToken()
	exp := now.Add(s.cfg.RefreshTTL)
	if exp.After(sess.ExpiresAt) {
		exp = sess.ExpiresAt
	}
	if err := s.db.CreateRefreshToken(ctx, tx, &store.RefreshToken{TokenHash: hash, SessionID: sess.ID, CreatedAt: now, ExpiresAt: exp}); err != nil {
		return nil, err
	}
	access, _, err := s.tokens.Issue(u.ID, sess.ID)
	if err != nil {
		return nil, err
	}
	return &TokenPair{AccessToken: access, RefreshToken: refresh, ExpiresIn: s.cfg.AccessTTL, User: u}, nil
}

var errBadRefresh = flock.Errorf(flock.EUNAUTHORIZED, "refresh token is invalid, expired or already used; log in again")

// Refresh rotates a refresh token: it is used up and a new pair is issued in
// the same session. Presenting a token that was used longer than
// RefreshReuseGrace ago revokes the session (RFC 9700 reuse detection), so
// a stolen token stops working for the thief and the victim alike; every
// token of the session, those issued within the grace included, ends with
// it. Within the grace the used token gets a fresh pair of its own in the
// same session, and the successor issued by the first use stays valid: of
// two concurrent refreshes with one token both succeed, and each caller
// goes on with its own refresh token. Without a grace, at most one
// succeeds. Returns EUNAUTHORIZED when the token is unknown, expired, or
// its session has ended, and EFORBIDDEN when the account is suspended.
func (s *Service) Refresh(ctx context.Context, refreshToken string) (*TokenPair, error) {
	hash := hashToken(refreshToken)
	var (
		pair    *TokenPair
		reused  bool
		revoked string
		ended   string // the session of a token refused for its session's end
	)
	err := s.db.InTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		reused, revoked, ended = false, "", "" // InTx may run this again after a deadlock
		ok, err := s.db.UseRefreshToken(ctx, tx, hash, max(s.cfg.RefreshReuseGrace, 0))
		if err != nil {
			return err
		}
		tok, err := s.db.GetRefreshToken(ctx, tx, hash)
		if store.IsNotFound(err) {
			return errBadRefresh
		} else if err != nil {
			return err
		}
		if !ok {
			if tok.UsedAt != nil {
				// Commit the revocation, then refuse.
				// A stolen session: a change of address it may have
				// asked for ends with it.
				reused, revoked = true, tok.SessionID
				if err := s.db.RevokeSession(ctx, tx, tok.SessionID, "refresh token reused"); err != nil {
					return err
				}
				sess, err := s.db.GetSession(ctx, tx, tok.SessionID)
				if err != nil {
					return err
				}
				return s.db.InvalidateEmailChanges(ctx, tx, sess.UserID)
			}
			ended = tok.SessionID
			return errBadRefresh
		}
		sess, err := s.db.GetSession(ctx, tx, tok.SessionID)
		if err != nil {
			return err
		}
		u, err := s.db.GetSessionUser(ctx, tx, sess.ID, sess.UserID)
		if store.IsNotFound(err) {
			ended = sess.ID
			return errBadRefresh
		} else if err != nil {
			return err
		}
		if u.SuspendedAt != nil {
			return flock.Errorf(flock.EFORBIDDEN, "this account is suspended")
		}
		if err := s.db.TouchSession(ctx, tx, sess.ID, sessionTouchEvery); err != nil {
			return err
		}
		if err := s.signedIn(ctx, tx, u.ID); err != nil {
			return err
		}
		pair, err = s.issue(ctx, tx, u, sess)
		return err
	})
	if reused {
		s.log.Warn("refresh token reuse: session revoked", "token_hash_prefix", hash[:8])
		s.cfg.Sessions.EndSession(ctx, revoked)
		s.events.Announce(ctx, notify.SessionChannel(revoked))
		// Says why, as the session's access tokens now do (sessionEnded):
		// "refresh token reused", or whatever ended it before.
		return nil, s.sessionEnded(ctx, revoked, "", errBadRefresh)
	}
	if ended != "" && errors.Is(err, errBadRefresh) {
		return nil, s.sessionEnded(ctx, ended, "", errBadRefresh)
	}
	if err != nil {
		return nil, fmt.Errorf("refresh: %w", err)
	}
	return pair, nil
}

// Logout revokes the session of a refresh token: the refresh token and every
// access token of that session stop working. An unknown token is not an
// error, so logging out twice succeeds.
func (s *Service) Logout(ctx context.Context, refreshToken string) error {
	var ended string
	err := s.db.InTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		tok, err := s.db.GetRefreshToken(ctx, tx, hashToken(refreshToken))
		if store.IsNotFound(err) {
			return nil
		} else if err != nil {
			return err
		}
		ended = tok.SessionID
		return s.db.RevokeSession(ctx, tx, tok.SessionID, "logout")
	})
	if err != nil {
		return fmt.Errorf("logout: %w", err)
	}
	if ended != "" {
		// Every instance stops accepting its access tokens before this
		// answers; open streams of the session close now, not at their
		// next check.
		s.cfg.Sessions.EndSession(ctx, ended)
		s.events.Announce(ctx, notify.SessionChannel(ended))
	}
	return nil
}

var errBadAccess = flock.Errorf(flock.EUNAUTHORIZED, "access token is invalid or expired; refresh it or log in again")

// errSessionGone refuses a well-signed access token whose session is no
// longer stored: its account was deleted (with its sessions), so
// refreshing cannot help.
var errSessionGone = flock.Errorf(flock.EUNAUTHORIZED, "this session no longer exists (its account may have been deleted); log in again")

// Authenticate checks an access token and that its session is still live
// and its account not suspended: from the session cache when it holds the
// session (see package session), otherwise in one query. Returns
// EUNAUTHORIZED otherwise.
func (s *Service) Authenticate(ctx context.Context, accessToken string) (*Principal, error) {
	claims, err := s.tokens.Parse(accessToken)
	if err != nil {
		s.log.DebugContext(ctx, "access token refused", "err", err)
		return nil, errBadAccess
	}
	if live, ok := s.cfg.Sessions.Get(claims.SessionID); ok && live.UserID == claims.Subject {
		return &Principal{UserID: live.UserID, SessionID: claims.SessionID, Role: live.Role}, nil
	}
	gen := s.cfg.Sessions.Generation()
	a, err := s.db.GetSessionAuth(ctx, s.db, claims.SessionID, claims.Subject)
	if store.IsNotFound(err) {
		return nil, s.sessionEnded(ctx, claims.SessionID, claims.Subject, errSessionGone)
	} else if err != nil {
		return nil, fmt.Errorf("authenticate: %w", err)
	}
	if a.SuspendedAt != nil {
		return nil, flock.Errorf(flock.EUNAUTHORIZED, "this account is suspended")
	}
	// The last use shown by ListSessions: written only when it has gone
	// stale, and only on this path (a cache miss), so at most once per
	// sessionTouchEvery per session, never once per request.
	if s.db.Now().Sub(a.LastUsedAt) > sessionTouchEvery {
		if err := s.db.TouchSession(ctx, s.db, claims.SessionID, sessionTouchEvery); err != nil {
			s.log.WarnContext(ctx, "record session use", "err", err)
		}
	}
	s.cfg.Sessions.Put(claims.SessionID, session.Live{UserID: a.UserID, Role: a.Role, ExpiresAt: a.ExpiresAt}, gen)
	return &Principal{UserID: a.UserID, SessionID: claims.SessionID, Role: a.Role}, nil
}

// sessionEnded words the refusal of a well-signed access token whose
// session is over: why it ended, where the database recorded it, so that
// a client signed out by a password change or a suspension does not only
// read "invalid or expired". The token proved it was issued for this
// session, so its holder learns nothing they could not act on. A failure
// to read the reason falls back to the generic refusal.
//
// It also words the refusal of a refresh token whose session is over
// (userID empty: the token was issued, which proves as much). When there
// is no such session, or it is still live (the refusal is about the token
// itself), the answer is gone.
func (s *Service) sessionEnded(ctx context.Context, sessionID, userID string, gone error) error {
	e, err := s.db.GetSessionEnd(ctx, s.db, sessionID, userID)
	if err != nil {
		if !store.IsNotFound(err) {
			s.log.WarnContext(ctx, "read why a session ended", "err", err)
		}
		return gone
	}
	switch {
	case e.Suspended:
		return flock.Errorf(flock.EUNAUTHORIZED, "this account is suspended")
	case !e.Revoked && e.ExpiresAt.After(s.db.Now()):
		return gone
	}
	msg := "this session has expired; log in again"
	if e.Revoked {
		var ok bool
		if msg, ok = sessionEndWords[e.RevokedWhy]; !ok {
			msg = "this session was signed out; log in again"
		}
	}
	return flock.Errorf(flock.EUNAUTHORIZED, "%s", msg)
}

// sessionEndWords tells a client why its session ended, by the reason its
// revocation recorded (sessions.revoked_why).
var sessionEndWords = map[string]string{
	"logout":               "this session was logged out; log in again",
	"password changed":     "this session was signed out when the account's password was changed; log in again with the new password",
	"password reset":       "this session was signed out when the account's password was reset; log in again with the new password",
	"revoked by its user":  "this session was signed out from another session of the account (RevokeSession); log in again",
	"suspended":            "this session was ended when the account was suspended; log in again",
	"refresh token reused": "this session was ended because one of its refresh tokens was used twice, which happens when a token is stolen; log in again",
}

// GetMe returns the caller's own account.
func (s *Service) GetMe(ctx context.Context, p *Principal) (*store.User, error) {
	u, err := s.db.GetUser(ctx, s.db, p.UserID)
	if err != nil {
		return nil, fmt.Errorf("get me: %w", err)
	}
	return u, nil
}

// ProfileUpdate lists the profile fields to change; nil fields stay.
type ProfileUpdate struct {
	FullName *string
	Bio      *string
	// Avatar is the uploaded picture; a pointer to an empty slice removes it.
	Avatar    *[]byte
	Interests *[]string
}

// Limits of profile fields, in characters.
const (
	MaxFullNameLen = 100
	MaxBioLen      = 500
	MaxInterests   = 20
	MaxInterestLen = 50
)

// UpdateMe changes the caller's profile. A new avatar is validated, cropped,
// resized and re-encoded without metadata before it is stored. Returns
// EINVALID for a field out of its limits or an unacceptable picture.
func (s *Service) UpdateMe(ctx context.Context, p *Principal, in ProfileUpdate) (*store.User, error) {
	var upd store.UserUpdate
	if in.FullName != nil {
		v, err := cleanText("full_name", *in.FullName, MaxFullNameLen)
		if err != nil {
			return nil, err
		}
		upd.FullName = &v
	}
	if in.Bio != nil {
		v, err := cleanText("bio", *in.Bio, MaxBioLen)
		if err != nil {
			return nil, err
		}
		upd.Bio = &v
	}
	if in.Interests != nil {
		v, err := normalizeInterests(*in.Interests)
		if err != nil {
			return nil, err
		}
		upd.Interests = &v
	}
	if in.Avatar != nil {
		key := ""
		if len(*in.Avatar) > 0 {
			img, err := media.ProcessAvatar(ctx, *in.Avatar)
			var fe *flock.Error
			if errors.As(err, &fe) && fe.Field == "" {
				return nil, &flock.Error{Code: fe.Code, Field: "avatar", Message: fe.Message}
			} else if err != nil {
				return nil, err
			}
			key = media.AvatarKey(p.UserID, img)
			// Keys are content-addressed, so writing before the transaction
			// commits is safe: a retry writes the same object again.
			if err := s.bucket.WriteAll(ctx, key, img.Data, &blob.WriterOptions{ContentType: img.ContentType}); err != nil {
				return nil, fmt.Errorf("update me: store avatar: %w", err)
			}
		}
		upd.AvatarKey = &key
	}
	var (
		before, after *store.User
		ev            notify.Events
	)
	err := s.db.InTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		var err error
		if before, err = s.db.GetUser(ctx, tx, p.UserID); err != nil {
			return err
		}
		if after, err = s.db.UpdateUser(ctx, tx, p.UserID, upd); err != nil {
			return err
		}
		return s.events.Record(ctx, tx, &ev, &store.Activity{UserID: p.UserID, Type: notify.ProfileUpdated})
	})
	if err != nil {
		return nil, fmt.Errorf("update me: %w", err)
	}
	s.events.Publish(ctx, &ev)
	if old := before.AvatarKey; old != "" && old != after.AvatarKey {
		if err := s.bucket.Delete(ctx, old); err != nil {
			s.log.WarnContext(ctx, "delete replaced avatar", "key", old, "err", err)
		}
	}
	return after, nil
}

// Promote makes the account with the given username staff. Returns
// ENOTFOUND when there is none.
func (s *Service) Promote(ctx context.Context, username string) (*store.User, error) {
	u, err := s.db.SetUserRole(ctx, s.db, username, store.RoleStaff)
	if store.IsNotFound(err) {
		return nil, flock.Errorf(flock.ENOTFOUND, "no user named %q", username)
	} else if err != nil {
		return nil, fmt.Errorf("promote: %w", err)
	}
	// Cached sessions carry the role. From `flock user promote`, this
	// reaches running instances only through Redis; without it they see
	// the new role within the cache TTL.
	s.cfg.Sessions.UserChanged(ctx, u.ID)
	return u, nil
}

// cleanText trims a free-text field and checks its length in characters.
func cleanText(field, v string, max int) (string, error) {
	v = strings.TrimSpace(v)
	if !utf8.ValidString(v) || strings.ContainsRune(v, 0) {
		return "", flock.FieldErrorf(field, "%s must be valid UTF-8 text", field)
	}
	if utf8.RuneCountInString(v) > max {
		return "", flock.FieldErrorf(field, "%s must be at most %d characters", field, max)
	}
	return v, nil
}

// normalizeInterests lower-cases interests, drops a leading '#', removes
// duplicates and checks the limits.
func normalizeInterests(in []string) ([]string, error) {
	if len(in) > MaxInterests {
		return nil, flock.FieldErrorf("interests", "at most %d interests are allowed", MaxInterests)
	}
	seen := make(map[string]bool, len(in))
	out := make([]string, 0, len(in))
	for _, raw := range in {
		v := strings.ToLower(strings.TrimPrefix(strings.TrimSpace(raw), "#"))
		if n := utf8.RuneCountInString(v); n == 0 || n > MaxInterestLen || !utf8.ValidString(v) {
			return nil, flock.FieldErrorf("interests", "each interest must be 1-%d characters", MaxInterestLen)
		}
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out, nil
}
