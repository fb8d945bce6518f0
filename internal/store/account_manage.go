package store

import (
	"context"
	"fmt"
	"time"

	"github.com/uptrace/bun"
)

// ListLiveSessions returns up to limit live (unrevoked, unexpired) sessions
// of a user, newest first, starting after the session beforeID (session
// IDs sort by creation time). One query on sessions_user_id_idx.
func (db *DB) ListLiveSessions(ctx context.Context, tx bun.IDB, userID, beforeID string, limit int) ([]Session, error) {
	var out []Session
	q := tx.NewSelect().Model(&out).
		Where("user_id = ?", userID).
		Where("revoked_at IS NULL").
		Where("expires_at > ?", db.Now()).
		OrderExpr("id DESC").
		Limit(int64(limit))
	if beforeID != "" {
		q = q.Where("id < ?", beforeID)
	}
	if err := q.Scan(ctx); err != nil {
		return nil, fmt.Errorf("list sessions: %w", translate(err))
	}
	return out, nil
}

// RevokeUserSession revokes one live session of a user and reports whether
// there was one: a session of another user, or one already ended, is left
// alone and reported false.
func (db *DB) RevokeUserSession(ctx context.Context, tx bun.IDB, userID, sessionID, why string) (bool, error) {
	now := db.Now()
	res, err := tx.NewUpdate().Model((*Session)(nil)).
		Set("revoked_at = ?", now).Set("revoked_why = ?", why).
		Where("id = ? AND user_id = ?", sessionID, userID).
		Where("revoked_at IS NULL").
		Where("expires_at > ?", now).
		Exec(ctx)
	if err != nil {
		return false, fmt.Errorf("revoke session: %w", translate(err))
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// RevokeOtherSessions revokes every live session of a user but keep (empty:
// all of them) and returns the IDs it revoked, in one statement.
func (db *DB) RevokeOtherSessions(ctx context.Context, tx bun.IDB, userID, keep, why string) ([]string, error) {
	var ids []string
	err := tx.NewUpdate().Model((*Session)(nil)).
		Set("revoked_at = ?", db.Now()).Set("revoked_why = ?", why).
		Where("user_id = ? AND revoked_at IS NULL AND id <> ?", userID, keep).
		Returning("id").
		Scan(ctx, &ids)
	if err != nil {
		return nil, fmt.Errorf("revoke sessions: %w", translate(err))
	}
	return ids, nil
}

// TouchSession records a use of a session: last_used_at moves to now when it
// is older than stale (or unset). Callers call it only when they saw a stale
// value, so a session is written at most once per stale period.
func (db *DB) TouchSession(ctx context.Context, tx bun.IDB, sessionID string, stale time.Duration) error {
	now := db.Now()
	_, err := tx.NewUpdate().Model((*Session)(nil)).
		Set("last_used_at = ?", now).
		Where("id = ?", sessionID).
		Where("(last_used_at IS NULL OR last_used_at < ?)", now.Add(-stale)).
		Exec(ctx)
	if err != nil {
		return fmt.Errorf("touch session: %w", translate(err))
	}
	return nil
}

// SetPasswordHash replaces a user's password hash.
func (db *DB) SetPasswordHash(ctx context.Context, tx bun.IDB, userID, hash string) error {
	res, err := tx.NewUpdate().Model((*User)(nil)).
		Set("password_hash = ?", hash).Set("updated_at = ?", db.Now()).
		Where("id = ?", userID).Exec(ctx)
	if err != nil {
		return fmt.Errorf("set password: %w", translate(err))
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("set password: %w", errNoRows)
	}
	return nil
}

// CreatePasswordReset inserts a password-reset token.
func (db *DB) CreatePasswordReset(ctx context.Context, tx bun.IDB, r *PasswordReset) error {
	if _, err := tx.NewInsert().Model(r).Exec(ctx); err != nil {
		return fmt.Errorf("create password reset: %w", translate(err))
	}
	return nil
}

// InvalidatePasswordResets marks every outstanding reset token of a user
// used, so that only a token issued afterwards works.
func (db *DB) InvalidatePasswordResets(ctx context.Context, tx bun.IDB, userID string) error {
	_, err := tx.NewUpdate().Model((*PasswordReset)(nil)).
		Set("used_at = ?", db.Now()).
		Where("user_id = ? AND used_at IS NULL", userID).Exec(ctx)
	if err != nil {
		return fmt.Errorf("invalidate password resets: %w", translate(err))
	}
	return nil
}

// UsePasswordReset marks an unused, unexpired reset token used and returns
// its user's ID, atomically: of two concurrent calls with one token only
// one gets the user. Returns an error matching IsNotFound when the token is
// unknown, used, voided or expired.
func (db *DB) UsePasswordReset(ctx context.Context, tx bun.IDB, hash string) (string, error) {
	now := db.Now()
	r := new(PasswordReset)
	err := tx.NewUpdate().Model(r).
		Set("used_at = ?", now).
		Where("token_hash = ?", hash).
		Where("used_at IS NULL").
		Where("expires_at > ?", now).
		Returning("user_id").
		Scan(ctx)
	if err != nil {
		return "", fmt.Errorf("use password reset: %w", translate(err))
	}
	return r.UserID, nil
}

// InvalidateEmailChanges marks every outstanding email-change token of a
// user used, so that only the newest requested address can be confirmed.
func (db *DB) InvalidateEmailChanges(ctx context.Context, tx bun.IDB, userID string) error {
	_, err := tx.NewUpdate().Model((*EmailVerification)(nil)).
		Set("used_at = ?", db.Now()).
		Where("user_id = ? AND used_at IS NULL AND new_email IS NOT NULL", userID).Exec(ctx)
	if err != nil {
		return fmt.Errorf("invalidate email changes: %w", translate(err))
	}
	return nil
}

// SetUserEmail makes address a user's (verified) email. Returns an error
// matching ErrConflict when another account has it: the unique index
// decides between racing changes.
func (db *DB) SetUserEmail(ctx context.Context, tx bun.IDB, userID, address string) error {
	now := db.Now()
	res, err := tx.NewUpdate().Model((*User)(nil)).
		Set("email = ?", address).
		Set("email_verified_at = COALESCE(email_verified_at, ?)", now).
		Set("updated_at = ?", now).
		Where("id = ?", userID).Exec(ctx)
	if err != nil {
		return fmt.Errorf("set email: %w", translate(err))
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("set email: %w", errNoRows)
	}
	return nil
}
