package store

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/uptrace/bun"
)

// User roles as stored.
const (
	RoleMember = "member"
	RoleStaff  = "staff"
)

// User is an account row.
//
// users has a column this model does not map (interests, which GetUser
// reads): select db.columns((*User)(nil), "u") into it, never "u.*".
type User struct {
	bun.BaseModel `bun:"table:users,alias:u"`

	ID              string     `bun:"id,pk"`
	Username        string     `bun:"username,notnull"`
	Email           string     `bun:"email,notnull"`
	PasswordHash    string     `bun:"password_hash,notnull"`
	FullName        string     `bun:"full_name,notnull"`
	Bio             string     `bun:"bio,notnull"`
	AvatarKey       string     `bun:"avatar_key,notnull"`
	Role            string     `bun:"role,notnull"`
	EmailVerifiedAt *time.Time `bun:"email_verified_at"`
	SuspendedAt     *time.Time `bun:"suspended_at"`
	FollowersCount  int64      `bun:"followers_count,notnull"`
	FollowingCount  int64      `bun:"following_count,notnull"`
	PostsCount      int64      `bun:"posts_count,notnull"`
	CreatedAt       time.Time  `bun:"created_at,notnull"`
	UpdatedAt       time.Time  `bun:"updated_at,notnull"`

	// Interests is loaded by GetUser and set by UpdateUser; it lives in
	// user_interests (a row each, which suggestions read by topic) and, as
	// a sorted JSON array, in users.interests (which GetUser reads).
	Interests []string `bun:"-"`
}

// UserInterest is one topic a user follows, for suggestions.
type UserInterest struct {
	bun.BaseModel `bun:"table:user_interests"`

	UserID   string `bun:"user_id,pk"`
	Interest string `bun:"interest,pk"`
}

// UserUpdate lists the profile fields to change; nil fields stay as they are.
type UserUpdate struct {
	FullName  *string
	Bio       *string
	AvatarKey *string
	Interests *[]string
}

// CreateUser inserts u, giving it an ID and timestamps when they are empty.
// Returns an error wrapping ErrConflict when the username (in any letter
// case) or the email is taken.
func (db *DB) CreateUser(ctx context.Context, tx bun.IDB, u *User) error {
	if u.ID == "" {
		u.ID = NewID()
	}
	now := db.Now()
	if u.CreatedAt.IsZero() {
		u.CreatedAt = now
	}
	u.UpdatedAt = u.CreatedAt
	if u.Role == "" {
		u.Role = RoleMember
	}
	if _, err := tx.NewInsert().Model(u).Exec(ctx); err != nil {
		return fmt.Errorf("create user: %w", translate(err))
	}
	// A new account follows nobody and has posted nothing: its home
	// timeline is complete, and empty, from the start.
	if _, err := tx.NewInsert().Model(&Timeline{UserID: u.ID, State: TimelineReady, ReadAt: now}).Exec(ctx); err != nil {
		return fmt.Errorf("create user: timeline: %w", translate(err))
	}
	return nil
}

// GetUser returns the user with the given ID, with its interests. Returns an
// error matching IsNotFound when there is none.
func (db *DB) GetUser(ctx context.Context, tx bun.IDB, id string) (*User, error) {
	// One prepared statement (see queryPrepared) reading one row: every
	// authenticated GetMe and most writes read a user. The interests are
	// the users.interests copy of user_interests (UpdateUser writes both),
	// not a subquery with its aggregate, which was 11-20 % of Postgres's
	// CPU for a GetMe.
	query := db.sqlText("user", func() string {
		return "SELECT " + db.columns((*User)(nil), "u") + ", u.interests AS interest_list FROM users AS u WHERE u.id = $1"
	})
	row, err := queryFirst[struct {
		User         `bun:",extend"`
		InterestList string `bun:"interest_list"`
	}](ctx, db, tx, query, id)
	if err != nil {
		return nil, fmt.Errorf("get user: %w", translate(err))
	}
	u := &row.User
	if err := json.Unmarshal([]byte(row.InterestList), &u.Interests); err != nil {
		return nil, fmt.Errorf("get user interests: %w", err)
	}
	if len(u.Interests) == 0 {
		u.Interests = nil // as a query of none scanned it
	}
	slices.Sort(u.Interests)
	return u, nil
}

// FindUserByLogin returns the user whose username (any letter case) or
// normalised email equals login. Returns an error matching IsNotFound when
// there is none.
func (db *DB) FindUserByLogin(ctx context.Context, tx bun.IDB, login string) (*User, error) {
	u := new(User)
	q := tx.NewSelect().Model(u)
	if strings.Contains(login, "@") {
		q = q.Where("u.email = ?", login)
	} else {
		q = q.Where("lower(u.username) = lower(?)", login)
	}
	if err := q.Scan(ctx); err != nil {
		return nil, fmt.Errorf("find user: %w", translate(err))
	}
	return u, nil
}

// UpdateUser applies upd to the user and returns the updated row. Returns an
// error matching IsNotFound when the user does not exist.
func (db *DB) UpdateUser(ctx context.Context, tx bun.IDB, id string, upd UserUpdate) (*User, error) {
	q := tx.NewUpdate().Model((*User)(nil)).Where("id = ?", id).Set("updated_at = ?", db.Now())
	if upd.Interests != nil {
		// The copy GetUser reads, sorted, beside the rows below.
		list := slices.Sorted(slices.Values(*upd.Interests))
		if list == nil {
			list = []string{}
		}
		b, err := json.Marshal(list)
		if err != nil {
			return nil, fmt.Errorf("update user interests: %w", err)
		}
		q = q.Set("interests = ?", string(b))
	}
	if upd.FullName != nil {
		q = q.Set("full_name = ?", *upd.FullName)
	}
	if upd.Bio != nil {
		q = q.Set("bio = ?", *upd.Bio)
	}
	if upd.AvatarKey != nil {
		q = q.Set("avatar_key = ?", *upd.AvatarKey)
	}
	res, err := q.Exec(ctx)
	if err != nil {
		return nil, fmt.Errorf("update user: %w", translate(err))
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return nil, fmt.Errorf("update user: %w", errNoRows)
	}
	if upd.Interests != nil {
		if _, err := tx.NewDelete().Model((*UserInterest)(nil)).Where("user_id = ?", id).Exec(ctx); err != nil {
			return nil, fmt.Errorf("update user interests: %w", translate(err))
		}
		if len(*upd.Interests) > 0 {
			rows := make([]UserInterest, 0, len(*upd.Interests))
			for _, in := range *upd.Interests {
				rows = append(rows, UserInterest{UserID: id, Interest: in})
			}
			if _, err := tx.NewInsert().Model(&rows).Exec(ctx); err != nil {
				return nil, fmt.Errorf("update user interests: %w", translate(err))
			}
		}
	}
	return db.GetUser(ctx, tx, id)
}

// MarkEmailVerified records that the user's email is verified (keeping the
// first time it was). It sets updated_at, as every change of a column the
// row caches keep must (rowcache.go).
func (db *DB) MarkEmailVerified(ctx context.Context, tx bun.IDB, userID string) error {
	now := db.Now()
	_, err := tx.NewUpdate().Model((*User)(nil)).
		Set("email_verified_at = ?", now).Set("updated_at = ?", now).
		Where("id = ? AND email_verified_at IS NULL", userID).Exec(ctx)
	if err != nil {
		return fmt.Errorf("mark email verified: %w", translate(err))
	}
	return nil
}

// SetUserRole sets the role of the user with the given username (any letter
// case) and returns the user. Returns an error matching IsNotFound when there
// is none.
func (db *DB) SetUserRole(ctx context.Context, tx bun.IDB, username, role string) (*User, error) {
	u := new(User)
	res, err := tx.NewUpdate().Model(u).Set("role = ?", role).Set("updated_at = ?", db.Now()).
		Where("lower(username) = lower(?)", username).Exec(ctx)
	if err != nil {
		return nil, fmt.Errorf("set user role: %w", translate(err))
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return nil, fmt.Errorf("set user role: %w", errNoRows)
	}
	return db.FindUserByLogin(ctx, tx, username)
}
