package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/uptrace/bun"
)

// Session is one login. Every refresh token rotated from that login belongs
// to it, and so does every access token issued with them (the JWT's sid).
type Session struct {
	bun.BaseModel `bun:"table:sessions,alias:s"`

	ID         string     `bun:"id,pk"`
	UserID     string     `bun:"user_id,notnull"`
	CreatedAt  time.Time  `bun:"created_at,notnull"`
	ExpiresAt  time.Time  `bun:"expires_at,notnull"`
	RevokedAt  *time.Time `bun:"revoked_at"`
	RevokedWhy string     `bun:"revoked_why,notnull"`
	// UserAgent and IP are those of the Login that started the session.
	UserAgent string `bun:"user_agent,notnull"`
	IP        string `bun:"ip,notnull"`
	// LastUsedAt is when a token of the session was last used, advanced at
	// most every few minutes; nil until then.
	LastUsedAt *time.Time `bun:"last_used_at"`
}

// RefreshToken is a refresh token, stored as a hash of its value.
type RefreshToken struct {
	bun.BaseModel `bun:"table:refresh_tokens,alias:rt"`

	TokenHash string     `bun:"token_hash,pk"`
	SessionID string     `bun:"session_id,notnull"`
	CreatedAt time.Time  `bun:"created_at,notnull"`
	ExpiresAt time.Time  `bun:"expires_at,notnull"`
	UsedAt    *time.Time `bun:"used_at"`
}

// EmailVerification is an outstanding email-verification token, stored as a
// hash of its value.
type EmailVerification struct {
	bun.BaseModel `bun:"table:email_verifications,alias:ev"`

	TokenHash string     `bun:"token_hash,pk"`
	UserID    string     `bun:"user_id,notnull"`
	CreatedAt time.Time  `bun:"created_at,notnull"`
	ExpiresAt time.Time  `bun:"expires_at,notnull"`
	UsedAt    *time.Time `bun:"used_at"`
	// NewEmail is set on the token of an email change: the address that
	// becomes the account's email when the token is used.
	NewEmail *string `bun:"new_email"`
}

// PasswordReset is an outstanding password-reset token, stored as a hash
// of its value.
type PasswordReset struct {
	bun.BaseModel `bun:"table:password_resets,alias:pr"`

	TokenHash string     `bun:"token_hash,pk"`
	UserID    string     `bun:"user_id,notnull"`
	CreatedAt time.Time  `bun:"created_at,notnull"`
	ExpiresAt time.Time  `bun:"expires_at,notnull"`
	UsedAt    *time.Time `bun:"used_at"`
}

// CreateSession inserts a session.
func (db *DB) CreateSession(ctx context.Context, tx bun.IDB, s *Session) error {
	if _, err := tx.NewInsert().Model(s).Exec(ctx); err != nil {
		return fmt.Errorf("create session: %w", translate(err))
	}
	return nil
}

// CreateRefreshToken inserts a refresh token.
func (db *DB) CreateRefreshToken(ctx context.Context, tx bun.IDB, t *RefreshToken) error {
	if _, err := tx.NewInsert().Model(t).Exec(ctx); err != nil {
		return fmt.Errorf("create refresh token: %w", translate(err))
	}
	return nil
}

// GetRefreshToken returns the refresh token with the given hash. Returns an
// error matching IsNotFound when there is none.
func (db *DB) GetRefreshToken(ctx context.Context, tx bun.IDB, hash string) (*RefreshToken, error) {
	t := new(RefreshToken)
	if err := tx.NewSelect().Model(t).Where("token_hash = ?", hash).Scan(ctx); err != nil {
		return nil, fmt.Errorf("get refresh token: %w", translate(err))
	}
	return t, nil
}

// UseRefreshToken marks an unused, unexpired refresh token of a live session
// used, atomically, and reports whether the caller may rotate it. A token
// already used within the last grace (its first use at or after now-grace)
// is accepted again and keeps its first use time, so that two clients
// refreshing one token at once both get an answer; with grace 0 a token
// works once, and of two concurrent calls exactly one gets true. It returns
// false when the token is unknown, was used longer than grace ago, has
// expired, or its session is revoked or expired.
//
// The one UPDATE decides: on Postgres a concurrent call waits for the row
// lock and re-checks the condition against the committed row; on SQLite
// transactions take the write lock at BEGIN and run one after another.
func (db *DB) UseRefreshToken(ctx context.Context, tx bun.IDB, hash string, grace time.Duration) (bool, error) {
	now := db.Now()
	live := tx.NewSelect().Model((*Session)(nil)).Column("id").
		Where("revoked_at IS NULL").Where("expires_at > ?", now)
	q := tx.NewUpdate().Model((*RefreshToken)(nil)).
		Where("token_hash = ?", hash).
		Where("expires_at > ?", now).
		Where("session_id IN (?)", live)
	if grace > 0 {
		q = q.Set("used_at = COALESCE(used_at, ?)", now).
			Where("(used_at IS NULL OR used_at >= ?)", now.Add(-grace))
	} else {
		q = q.Set("used_at = ?", now).Where("used_at IS NULL")
	}
	res, err := q.Exec(ctx)
	if err != nil {
		return false, fmt.Errorf("use refresh token: %w", translate(err))
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// RevokeSession revokes a session (and so every token of it) unless it is
// already revoked.
func (db *DB) RevokeSession(ctx context.Context, tx bun.IDB, sessionID, why string) error {
	_, err := tx.NewUpdate().Model((*Session)(nil)).
		Set("revoked_at = ?", db.Now()).Set("revoked_why = ?", why).
		Where("id = ? AND revoked_at IS NULL", sessionID).Exec(ctx)
	if err != nil {
		return fmt.Errorf("revoke session: %w", translate(err))
	}
	return nil
}

// RevokeUserSessions revokes every live session of a user, for suspension.
func (db *DB) RevokeUserSessions(ctx context.Context, tx bun.IDB, userID, why string) error {
	_, err := tx.NewUpdate().Model((*Session)(nil)).
		Set("revoked_at = ?", db.Now()).Set("revoked_why = ?", why).
		Where("user_id = ? AND revoked_at IS NULL", userID).Exec(ctx)
	if err != nil {
		return fmt.Errorf("revoke user sessions: %w", translate(err))
	}
	return nil
}

// RevokeUserSessionsReturningIDs is RevokeUserSessions that returns the IDs
// of the sessions it revoked, so that their open streams can be told to
// close (notify.SessionChannel). One statement.
func (db *DB) RevokeUserSessionsReturningIDs(ctx context.Context, tx bun.IDB, userID, why string) ([]string, error) {
	var ids []string
	err := tx.NewUpdate().Model((*Session)(nil)).
		Set("revoked_at = ?", db.Now()).Set("revoked_why = ?", why).
		Where("user_id = ? AND revoked_at IS NULL", userID).
		Returning("id").
		Scan(ctx, &ids)
	if err != nil {
		return nil, fmt.Errorf("revoke user sessions: %w", translate(err))
	}
	return ids, nil
}

// GetSessionUser returns the user of a live (unrevoked, unexpired) session,
// in one query, for authenticating a request. Returns an error matching
// IsNotFound when the session is not live or belongs to another user.
func (db *DB) GetSessionUser(ctx context.Context, tx bun.IDB, sessionID, userID string) (*User, error) {
	u := new(User)
	err := tx.NewSelect().Model(u).
		Join("JOIN sessions AS s ON s.user_id = u.id").
		Where("s.id = ?", sessionID).
		Where("u.id = ?", userID).
		Where("s.revoked_at IS NULL").
		Where("s.expires_at > ?", db.Now()).
		Scan(ctx)
	if err != nil {
		return nil, fmt.Errorf("get session user: %w", translate(err))
	}
	return u, nil
}

// SessionAuth is what authenticating a request needs to know of a live
// session and its user.
type SessionAuth struct {
	UserID      string     `bun:"user_id"`
	Role        string     `bun:"role"`
	SuspendedAt *time.Time `bun:"suspended_at"`
	ExpiresAt   time.Time  `bun:"expires_at"`
	// LastUsedAt is the session's last recorded use (its creation before
	// the first).
	LastUsedAt time.Time `bun:"last_used_at"`
}

// GetSessionAuth returns the user's standing and the session's end for a
// live (unrevoked, unexpired) session, in one query on two primary keys.
// Returns an error matching IsNotFound when the session is not live or
// belongs to another user. Prepared (see queryPrepared): it runs for every
// session's first request on an instance and then once per session cache
// TTL, and Postgres planned bun's text anew each time, six times as long
// as running it (docs/performance.md, item 46).
func (db *DB) GetSessionAuth(ctx context.Context, tx bun.IDB, sessionID, userID string) (*SessionAuth, error) {
	query := db.sqlText("session auth", func() string {
		return "SELECT u.id AS user_id, u.role, u.suspended_at, s.expires_at, COALESCE(s.last_used_at, s.created_at) AS last_used_at" +
			" FROM sessions AS s JOIN users AS u ON u.id = s.user_id" +
			" WHERE s.id = $1 AND s.user_id = $2 AND s.revoked_at IS NULL"
	})
	a, err := queryFirst[SessionAuth](ctx, db, tx, query, sessionID, userID)
	if err == nil && !a.ExpiresAt.After(db.Now()) {
		// Compared here, not bound: no time is a parameter of a prepared
		// statement, whose text form would differ from bun's on SQLite.
		err = sql.ErrNoRows
	}
	if err != nil {
		return nil, fmt.Errorf("get session auth: %w", translate(err))
	}
	return a, nil
}

// SessionEnd is why a session is no longer live.
type SessionEnd struct {
	// RevokedWhy is the reason recorded when it was revoked ("logout",
	// "password changed", "suspended", ...); empty when it was not.
	RevokedWhy string `bun:"revoked_why"`
	Revoked    bool   `bun:"revoked"`
	// Suspended is whether its account is suspended.
	Suspended bool      `bun:"suspended"`
	ExpiresAt time.Time `bun:"expires_at"`
}

// GetSessionEnd reads why a session that GetSessionAuth did not find has
// ended, so that the refusal can say so; userID, when set, must be its
// user. Returns an error matching IsNotFound when there is no such session
// (its account was deleted, or the id was never issued). Not on any hot
// path: it runs only for a token that is well signed (or a refresh token
// that was issued) but whose session is over.
func (db *DB) GetSessionEnd(ctx context.Context, tx bun.IDB, sessionID, userID string) (*SessionEnd, error) {
	var e SessionEnd
	q := tx.NewSelect().TableExpr("sessions AS s").Join("JOIN users AS u ON u.id = s.user_id").
		ColumnExpr("s.revoked_why, s.revoked_at IS NOT NULL AS revoked, u.suspended_at IS NOT NULL AS suspended, s.expires_at").
		Where("s.id = ?", sessionID)
	if userID != "" {
		q = q.Where("s.user_id = ?", userID)
	}
	err := q.Scan(ctx, &e)
	if err != nil {
		return nil, fmt.Errorf("get session end: %w", translate(err))
	}
	return &e, nil
}

// CreateEmailVerification inserts a verification token.
func (db *DB) CreateEmailVerification(ctx context.Context, tx bun.IDB, v *EmailVerification) error {
	if _, err := tx.NewInsert().Model(v).Exec(ctx); err != nil {
		return fmt.Errorf("create email verification: %w", translate(err))
	}
	return nil
}

// InvalidateEmailVerifications marks every outstanding verification token of
// a user used, so that only a token issued afterwards works. Email-change
// tokens are left alone (InvalidateEmailChanges).
func (db *DB) InvalidateEmailVerifications(ctx context.Context, tx bun.IDB, userID string) error {
	_, err := tx.NewUpdate().Model((*EmailVerification)(nil)).
		Set("used_at = ?", db.Now()).
		Where("user_id = ? AND used_at IS NULL AND new_email IS NULL", userID).Exec(ctx)
	if err != nil {
		return fmt.Errorf("invalidate email verifications: %w", translate(err))
	}
	return nil
}

// UseEmailVerification marks an unused, unexpired verification token used
// and returns the ID of its user, atomically: of two concurrent calls with
// the same token, only one gets the user. Returns an error matching
// IsNotFound when the token is unknown, used or expired.
func (db *DB) UseEmailVerification(ctx context.Context, tx bun.IDB, hash string) (string, error) {
	v, err := db.UseEmailToken(ctx, tx, hash)
	if err != nil {
		return "", err
	}
	return v.UserID, nil
}

// UseEmailToken is UseEmailVerification returning the token's row, whose
// NewEmail tells an email change from the verification of a registration.
func (db *DB) UseEmailToken(ctx context.Context, tx bun.IDB, hash string) (*EmailVerification, error) {
	now := db.Now()
	v := new(EmailVerification)
	err := tx.NewUpdate().Model(v).
		Set("used_at = ?", now).
		Where("token_hash = ?", hash).
		Where("used_at IS NULL").
		Where("expires_at > ?", now).
		Returning("user_id, new_email").
		Scan(ctx)
	if err != nil {
		return nil, fmt.Errorf("use email verification: %w", translate(err))
	}
	return v, nil
}

// GetSession returns the session with the given ID. Returns an error
// matching IsNotFound when there is none.
func (db *DB) GetSession(ctx context.Context, tx bun.IDB, id string) (*Session, error) {
	s := new(Session)
	if err := tx.NewSelect().Model(s).Where("id = ?", id).Scan(ctx); err != nil {
		return nil, fmt.Errorf("get session: %w", translate(err))
	}
	return s, nil
}
