package account

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/uptrace/bun"

	"github.com/flock-social/flock"
	"github.com/flock-social/flock/internal/account/emailaddr"
	flockmail "github.com/flock-social/flock/internal/mail"
	"github.com/flock-social/flock/internal/store"
)

// ResetTTL is how long a password-reset link works.
const ResetTTL = time.Hour

// afterAnswerTimeout bounds the background work of one reset or resend
// request.
const afterAnswerTimeout = 30 * time.Second

// RequestPasswordReset emails a password-reset link to the account with
// this email, if there is one that is not suspended, and voids its earlier
// links. It returns nil whether or not there is such an account, and it
// returns before looking: the lookup, the token and the queued email are
// made in the background, so the answer takes as long for every address
// (security.md property 10). Only a malformed email is an error.
//
// The email is durable once queued (see mail.Outbox); a crash in the few
// milliseconds between the answer and that commit loses the request, and
// the user asks again.
func (s *Service) RequestPasswordReset(ctx context.Context, rawEmail string) error {
	email, err := emailaddr.Normalize(rawEmail)
	if err != nil {
		return err
	}
	s.afterAnswer("password reset request", func(ctx context.Context) error { return s.startPasswordReset(ctx, email) })
	return nil
}

// afterAnswer runs work in the background, after the request that asked
// for it has answered, bounded by afterAnswerTimeout; Close waits for it.
// The work gets a context of its own: it is not the request's (and is not
// counted as such), and the caller may have gone.
func (s *Service) afterAnswer(what string, work func(ctx context.Context) error) {
	s.background.Add(1)
	go func() {
		defer s.background.Done()
		ctx, cancel := context.WithTimeout(context.Background(), afterAnswerTimeout)
		defer cancel()
		if err := work(ctx); err != nil {
			s.log.ErrorContext(ctx, what, "err", err)
		}
	}()
}

func (s *Service) startPasswordReset(ctx context.Context, email string) error {
	var mails flockmail.Pending
	err := s.db.InTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		mails = flockmail.Pending{} // InTx may run this again
		u, err := s.db.FindUserByLogin(ctx, tx, email)
		if store.IsNotFound(err) {
			return nil
		} else if err != nil {
			return err
		}
		if u.SuspendedAt != nil {
			return nil
		}
		if err := s.db.InvalidatePasswordResets(ctx, tx, u.ID); err != nil {
			return err
		}
		token, hash := newSecretToken()
		now := s.db.Now()
		if err := s.db.CreatePasswordReset(ctx, tx, &store.PasswordReset{TokenHash: hash, UserID: u.ID, CreatedAt: now, ExpiresAt: now.Add(ResetTTL)}); err != nil {
			return err
		}
		link := s.cfg.PublicURL + "/reset-password?token=" + token
		return s.outbox.Queue(ctx, tx, &mails, flockmail.Message{
			To:      u.Email,
			Subject: "Reset your Flock password",
			Text: fmt.Sprintf("Hi %s,\n\nsomeone (we hope you) asked to reset the password of your Flock account. Choose a new one here:\n\n%s\n\n"+
				"Or send the token to the API:\n\n  curl -X POST %s/api/users/password/reset/confirm/ -H 'Content-Type: application/json' -d '{\"token\":\"%s\",\"newPassword\":\"...\"}'\n\n"+
				"The link works once, for %s; a newer request or a successful login voids it, and using it signs out every session.\n"+
				"If you did not ask for this, ignore this email: your password stays as it is.\n",
				u.Username, link, s.cfg.PublicURL, token, inWords(ResetTTL)),
			Expires: now.Add(ResetTTL),
		})
	})
	if err != nil {
		return err
	}
	s.outbox.Send(&mails)
	return nil
}

var errBadReset = flock.FieldErrorf("token", "password reset token is invalid, used, expired or replaced by a newer one; request a new email with RequestPasswordReset")

// ResetPassword sets a new password with a reset token: the token is used
// up (of two concurrent calls, one wins), every session of the account
// ends, its other reset links are voided, and the account's address, now
// proven, counts as verified. The account is told by email. Returns
// EINVALID for a bad token or password.
func (s *Service) ResetPassword(ctx context.Context, token, password string) error {
	if err := checkNewPassword(password); err != nil {
		return err
	}
	hash, err := hashPassword(ctx, password, s.cfg.PasswordParams)
	if err != nil {
		return err
	}
	var (
		ended []string
		mails flockmail.Pending
	)
	err = s.db.InTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		mails = flockmail.Pending{}
		userID, err := s.db.UsePasswordReset(ctx, tx, hashToken(token))
		if store.IsNotFound(err) {
			return errBadReset
		} else if err != nil {
			return err
		}
		u, err := s.db.GetUser(ctx, tx, userID)
		if err != nil {
			return err
		}
		if u.SuspendedAt != nil {
			return errBadReset
		}
		if err := s.db.SetPasswordHash(ctx, tx, u.ID, hash); err != nil {
			return err
		}
		if err := s.db.InvalidatePasswordResets(ctx, tx, u.ID); err != nil {
			return err
		}
		if err := s.db.InvalidateEmailChanges(ctx, tx, u.ID); err != nil {
			return err
		}
		if err := s.db.MarkEmailVerified(ctx, tx, u.ID); err != nil {
			return err
		}
		if ended, err = s.db.RevokeOtherSessions(ctx, tx, u.ID, "", "password reset"); err != nil {
			return err
		}
		return s.outbox.Queue(ctx, tx, &mails, s.passwordChangedEmail(u, "reset with a link sent to this address"))
	})
	if err != nil {
		return fmt.Errorf("reset password: %w", err)
	}
	s.endSessions(ctx, ended)
	s.outbox.Send(&mails)
	return nil
}

// passwordChangedEmail tells an account that its password changed.
func (s *Service) passwordChangedEmail(u *store.User, how string) flockmail.Message {
	return flockmail.Message{
		To:      u.Email,
		Subject: "Your Flock password was changed",
		Text: fmt.Sprintf("Hi %s,\n\nthe password of your Flock account was just %s, and your other sessions were signed out.\n\n"+
			"If this was not you, reset your password at once from the login page (%s) and review your sessions.\n",
			u.Username, how, s.cfg.PublicURL),
	}
}

// ChangeEmail starts moving the caller's account to a new address: the new
// address gets a verification link (VerifyEmail takes its token) and the
// current address is told. The account's email changes only when the link
// is used, so a typo or a stolen session cannot move it silently. Newer
// requests void older links.
//
// When another account has the address, the answer is the same and the
// address gets a note instead of a link, so ChangeEmail cannot be used to
// discover accounts (security.md property 10); uniqueness is checked again,
// by the database, when the link is used. Returns EFORBIDDEN when password
// is wrong and EINVALID for a malformed or unchanged address.
func (s *Service) ChangeEmail(ctx context.Context, p *Principal, rawEmail, password string) error {
	address, err := emailaddr.Normalize(rawEmail)
	if err != nil {
		var fe *flock.Error
		if errors.As(err, &fe) {
			return flock.FieldErrorf("new_email", "new_%s", fe.Message)
		}
		return err
	}
	u, err := s.checkCurrentPassword(ctx, p, password)
	if err != nil {
		return fmt.Errorf("change email: %w", err)
	}
	if address == u.Email {
		return flock.FieldErrorf("new_email", "new_email is already the address of your account")
	}
	var mails flockmail.Pending
	err = s.db.InTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		mails = flockmail.Pending{}
		if err := s.db.InvalidateEmailChanges(ctx, tx, u.ID); err != nil {
			return err
		}
		// The note to the current address goes out whatever happens next,
		// so the requester learns nothing from their own inbox either.
		if err := s.outbox.Queue(ctx, tx, &mails, flockmail.Message{
			To:      u.Email,
			Subject: "A change of your Flock email address was requested",
			Text: fmt.Sprintf("Hi %s,\n\nsomeone signed in to your Flock account asked to change its email address to %s.\n\n"+
				"Nothing changes unless the link sent to that address is used; you will get another email here if it is.\n"+
				"If this was not you, change your password now: that signs out every other session.\n",
				u.Username, maskEmail(address)),
		}); err != nil {
			return err
		}
		if _, err := s.db.FindUserByLogin(ctx, tx, address); err == nil {
			return s.outbox.Queue(ctx, tx, &mails, flockmail.Message{
				To:      address,
				Subject: "Someone tried to use your address on Flock",
				Text: "Hi,\n\nsomeone asked to move another Flock account to this email address. It already belongs to an account, so nothing changed.\n" +
					"If you have forgotten your password, reset it from the login page.\n",
			})
		} else if !store.IsNotFound(err) {
			return err
		}
		token, hash := newSecretToken()
		now := s.db.Now()
		if err := s.db.CreateEmailVerification(ctx, tx, &store.EmailVerification{
			TokenHash: hash, UserID: u.ID, CreatedAt: now, ExpiresAt: now.Add(s.cfg.VerificationTTL), NewEmail: &address,
		}); err != nil {
			return err
		}
		link := s.cfg.PublicURL + "/verify-email?token=" + token
		return s.outbox.Queue(ctx, tx, &mails, flockmail.Message{
			To:      address,
			Subject: "Confirm your new Flock email address",
			Text: fmt.Sprintf("Hi %s,\n\nconfirm this address to make it the email of your Flock account:\n\n%s\n\n"+
				"Or send the token to the API:\n\n  curl -X POST %s/api/users/verify-email/ -H 'Content-Type: application/json' -d '{\"token\":\"%s\"}'\n\n"+
				"The link works once and expires in %s. If you did not ask for this, ignore this email.\n",
				u.Username, link, s.cfg.PublicURL, token, inWords(s.cfg.VerificationTTL)),
			Expires: now.Add(s.cfg.VerificationTTL),
		})
	})
	if err != nil {
		return fmt.Errorf("change email: %w", err)
	}
	s.outbox.Send(&mails)
	return nil
}

// confirmEmailChange makes v.NewEmail the account's address (VerifyEmail
// with an email-change token) and tells the old address. Returns ECONFLICT
// when another account took the address meanwhile.
func (s *Service) confirmEmailChange(ctx context.Context, tx bun.Tx, v *store.EmailVerification, mails *flockmail.Pending) error {
	old, err := s.db.GetUser(ctx, tx, v.UserID)
	if err != nil {
		return err
	}
	if old.SuspendedAt != nil {
		return errBadVerification
	}
	if err := s.db.SetUserEmail(ctx, tx, v.UserID, *v.NewEmail); errors.Is(err, store.ErrConflict) {
		return &flock.Error{Code: flock.ECONFLICT, Field: "token", Message: "another account has taken this email address meanwhile; your address is unchanged"}
	} else if err != nil {
		return err
	}
	// Reset links mailed to the old address stop working with it.
	if err := s.db.InvalidatePasswordResets(ctx, tx, v.UserID); err != nil {
		return err
	}
	return s.outbox.Queue(ctx, tx, mails, flockmail.Message{
		To:      old.Email,
		Subject: "Your Flock email address was changed",
		Text: fmt.Sprintf("Hi %s,\n\nthe email address of your Flock account is now %s; this address no longer receives its emails.\n\n"+
			"If this was not you, someone has access to your account: reset your password from the login page right away (the reset link goes to the new address, so contact the operator of this Flock server if you cannot).\n",
			old.Username, maskEmail(*v.NewEmail)),
	})
}

// maskEmail shows enough of an address to recognise it, not to harvest it:
// "alice@example.com" becomes "a***@example.com".
func maskEmail(address string) string {
	local, domain, ok := strings.Cut(address, "@")
	if !ok || local == "" {
		return "***"
	}
	return local[:1] + "***@" + domain
}
