package account_test

import (
	"context"
	"encoding/base64"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flock-social/flock"
	"github.com/flock-social/flock/internal/account"
	"github.com/flock-social/flock/internal/store"
)

// Registration, email verification, passwords and login (security.md
// properties 9, 10 and 11).

func TestRegister_StoresAnArgon2idHashWithOWASPParameters_P9(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		u := e.MustRegister(t, "alice")
		stored, err := e.db.GetUser(ctx, e.db, u.ID)
		if err != nil {
			t.Fatal(err)
		}
		h := stored.PasswordHash
		if strings.Contains(h, password) {
			t.Fatal("the stored hash contains the password")
		}
		// PHC string: $argon2id$v=19$m=<KiB>,t=<passes>,p=<lanes>$<salt>$<key>
		parts := strings.Split(h, "$")
		if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" || parts[2] != "v=19" {
			t.Fatalf("stored hash %q is not a PHC argon2id v19 string", h)
		}
		params := map[string]int{}
		for _, kv := range strings.Split(parts[3], ",") {
			k, v, _ := strings.Cut(kv, "=")
			n, err := strconv.Atoi(v)
			if err != nil {
				t.Fatalf("parameter %q of %q: %v", kv, h, err)
			}
			params[k] = n
		}
		if params["m"] < 19456 || params["t"] < 2 || params["p"] != 1 {
			t.Fatalf("argon2id parameters %v, want m >= 19456 KiB, t >= 2, p = 1", params)
		}
		salt, err := base64.RawStdEncoding.DecodeString(parts[4])
		if err != nil || len(salt) < 16 {
			t.Fatalf("salt %q: %d bytes, %v; want at least 16", parts[4], len(salt), err)
		}
		key, err := base64.RawStdEncoding.DecodeString(parts[5])
		if err != nil || len(key) < 32 {
			t.Fatalf("key %q: %d bytes, %v; want at least 32", parts[5], len(key), err)
		}
	})
}

func TestRegister_PasswordLengthCountsCharactersFrom8To128_P9(t *testing.T) {
	t.Parallel()
	e := MustEnv(t, store.SQLite) // a rule of the service, not of the store
	ctx := context.Background()
	cases := []struct {
		name     string
		password string
		ok       bool
	}{
		{"7 ASCII characters", strings.Repeat("a", 7), false},
		{"7 two-byte characters (14 bytes)", strings.Repeat("é", 7), false},
		{"8 ASCII characters", strings.Repeat("a", 8), true},
		{"8 two-byte characters", strings.Repeat("é", 8), true},
		{"128 three-byte characters (384 bytes)", strings.Repeat("€", 128), true},
		{"129 ASCII characters", strings.Repeat("a", 129), false},
		{"129 two-byte characters", strings.Repeat("é", 129), false},
		{"invalid UTF-8", strings.Repeat("\xff", 10), false},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			name := "user" + strconv.Itoa(i)
			_, err := e.svc.Register(ctx, account.RegisterInput{Username: name, Email: name + "@example.com", Password: tc.password})
			if tc.ok {
				if err != nil {
					t.Fatalf("Register refused a %d-character password: %v", len([]rune(tc.password)), err)
				}
				return
			}
			wantCode(t, "Register", err, flock.EINVALID)
			if fe := asFlockError(err); fe.Field != "password" {
				t.Fatalf("Register blamed field %q, want password", fe.Field)
			}
		})
	}
}

func TestLogin_LongPasswordIsNotTruncated_P9(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		// 100 characters, past bcrypt's 72-byte limit.
		long := strings.Repeat("0123456789", 10)
		u, err := e.svc.Register(ctx, account.RegisterInput{Username: "alice", Email: "alice@example.com", Password: long})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.VerifyEmail(ctx, e.LatestToken(t, u.Email)); err != nil {
			t.Fatal(err)
		}
		e.MustLogin(t, "alice", long)
		for name, pw := range map[string]string{
			"only the last character changed": long[:99] + "X",
			"only the first 72 bytes":         long[:72],
		} {
			_, err := e.svc.Login(ctx, "alice", pw)
			wantCode(t, "Login with "+name, err, flock.EUNAUTHORIZED)
		}
	})
}

func TestLogin_UnknownUserAndWrongPasswordSameAnswer_P10(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		e.MustVerifiedUser(t, "alice")
		e.MustRegister(t, "bob") // not verified
		attempts := map[string][2]string{
			"unknown username":                   {"nobody", password},
			"unknown email":                      {"nobody@example.com", password},
			"wrong password":                     {"alice", "wrong password!"},
			"wrong password by email":            {"alice@example.com", "wrong password!"},
			"wrong password, unverified account": {"bob", "wrong password!"},
		}
		var first *flock.Error
		for name, a := range attempts {
			_, err := e.svc.Login(ctx, a[0], a[1])
			wantCode(t, name, err, flock.EUNAUTHORIZED)
			fe := asFlockError(err)
			if first == nil {
				first = fe
			} else if *fe != *first {
				t.Fatalf("%s answered %+v, another failure answered %+v", name, *fe, *first)
			}
		}
	})
}

func TestResendVerification_SameAnswerForAnyEmail_P10(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		e.MustVerifiedUser(t, "alice")
		e.MustRegister(t, "bob") // not verified
		for _, email := range []string{"nobody@example.com", "alice@example.com", "bob@example.com", " BOB@Example.com "} {
			if err := e.svc.ResendVerification(ctx, email); err != nil {
				t.Fatalf("ResendVerification(%q) = %v, want nil", email, err)
			}
		}
		// Only the unverified account gets mail: its registration email
		// and one per resend.
		for address, want := range map[string]int{"nobody@example.com": 0, "alice@example.com": 1, "bob@example.com": 3} {
			if got := len(e.Emails(t, address)); got != want {
				t.Errorf("%s received %d emails, want %d", address, got, want)
			}
		}
		wantCode(t, "ResendVerification of a malformed address", e.svc.ResendVerification(ctx, "not-an-email"), flock.EINVALID)
	})
}

func TestVerifyEmail_TokenIsSingleUse_P11(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		u := e.MustRegister(t, "alice")
		token := e.LatestToken(t, u.Email)
		if len(token) < 43 {
			t.Fatalf("token %q is shorter than 256 bits in base64url", token)
		}
		got, err := e.svc.VerifyEmail(ctx, token)
		if err != nil {
			t.Fatalf("VerifyEmail: %v", err)
		}
		if got.ID != u.ID || got.EmailVerifiedAt == nil {
			t.Fatalf("VerifyEmail returned %+v", got)
		}
		_, err = e.svc.VerifyEmail(ctx, token)
		wantCode(t, "second VerifyEmail with one token", err, flock.EINVALID)
		_, err = e.svc.VerifyEmail(ctx, "never-issued")
		wantCode(t, "VerifyEmail with a token nobody issued", err, flock.EINVALID)
	})
}

func TestVerifyEmail_TokenExpiresAfter24Hours_P11(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		u := e.MustRegister(t, "alice")
		token := e.LatestToken(t, u.Email)
		e.clock.Advance(24*time.Hour + time.Second)
		_, err := e.svc.VerifyEmail(ctx, token)
		wantCode(t, "VerifyEmail after 24 hours", err, flock.EINVALID)

		// A resend gives a token that works for another 24 hours.
		if err := e.svc.ResendVerification(ctx, u.Email); err != nil {
			t.Fatal(err)
		}
		e.clock.Advance(23 * time.Hour)
		if _, err := e.svc.VerifyEmail(ctx, e.LatestToken(t, u.Email)); err != nil {
			t.Fatalf("VerifyEmail with the resent token: %v", err)
		}
	})
}

func TestResendVerification_InvalidatesTheEarlierToken_P11(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		u := e.MustRegister(t, "alice")
		// Emails go out in the background, so take the first token before
		// the resend: the two sends may finish in either order.
		first := e.LatestToken(t, u.Email)
		if err := e.svc.ResendVerification(ctx, u.Email); err != nil {
			t.Fatal(err)
		}
		tokens := e.Tokens(t, u.Email)
		if len(tokens) != 2 || tokens[0] == tokens[1] {
			t.Fatalf("tokens after a resend: %q, want two different ones", tokens)
		}
		second := tokens[0]
		if second == first {
			second = tokens[1]
		}
		_, err := e.svc.VerifyEmail(ctx, first)
		wantCode(t, "VerifyEmail with the token sent before the resend", err, flock.EINVALID)
		if _, err := e.svc.VerifyEmail(ctx, second); err != nil {
			t.Fatalf("VerifyEmail with the resent token: %v", err)
		}
	})
}

func TestSecretTokens_AreStoredHashed_P11(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		u := e.MustRegister(t, "alice")
		token := e.LatestToken(t, u.Email)
		var stored []string
		if err := e.db.NewSelect().Table("email_verifications").Column("token_hash").Where("user_id = ?", u.ID).Scan(ctx, &stored); err != nil {
			t.Fatal(err)
		}
		if len(stored) != 1 {
			t.Fatalf("%d verification rows, want 1", len(stored))
		}
		if stored[0] == token || strings.Contains(stored[0], token) {
			t.Fatalf("email_verifications.token_hash holds the token itself: %q", stored[0])
		}

		if _, err := e.svc.VerifyEmail(ctx, token); err != nil {
			t.Fatal(err)
		}
		pair := e.MustLogin(t, "alice", password)
		var refresh []string
		if err := e.db.NewSelect().Table("refresh_tokens").Column("token_hash").Scan(ctx, &refresh); err != nil {
			t.Fatal(err)
		}
		if len(refresh) != 1 || refresh[0] == pair.RefreshToken || strings.Contains(refresh[0], pair.RefreshToken) {
			t.Fatalf("refresh_tokens.token_hash = %q holds the refresh token %q", refresh, pair.RefreshToken)
		}
	})
}

func TestRegister_EmailIsNormalisedSoNoSecondAccount_P11(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		u, err := e.svc.Register(ctx, account.RegisterInput{Username: "alice", Email: " Alice@Example.COM ", Password: password})
		if err != nil {
			t.Fatal(err)
		}
		if u.Email != "alice@example.com" {
			t.Fatalf("registered email %q, want alice@example.com", u.Email)
		}
		for _, in := range []account.RegisterInput{
			{Username: "bob", Email: "alice@example.com", Password: password},
			{Username: "bob", Email: "ALICE@EXAMPLE.COM", Password: password},
			{Username: "ALICE", Email: "bob@example.com", Password: password},
		} {
			_, err := e.svc.Register(ctx, in)
			wantCode(t, "Register "+in.Username+" <"+in.Email+">", err, flock.ECONFLICT)
		}
		// The verification email went to the normalised address, once.
		if _, err := e.svc.VerifyEmail(ctx, e.LatestToken(t, "alice@example.com")); err != nil {
			t.Fatal(err)
		}
		if n := len(e.Emails(t, "bob@example.com")); n != 0 {
			t.Fatalf("refused registrations sent %d emails", n)
		}
		for _, login := range []string{"ALICE", " Alice@EXAMPLE.com "} {
			e.MustLogin(t, login, password)
		}
	})
}

func TestLogin_RefusedUntilEmailVerified_P11(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		u := e.MustRegister(t, "alice")
		_, err := e.svc.Login(ctx, "alice", password)
		wantCode(t, "Login before verification", err, flock.EPRECONDITION)
		if _, err := e.svc.VerifyEmail(ctx, e.LatestToken(t, u.Email)); err != nil {
			t.Fatal(err)
		}
		e.MustLogin(t, "alice", password)
	})
}

func TestRegister_RefusesMalformedFields(t *testing.T) {
	t.Parallel()
	e := MustEnv(t, store.SQLite)
	ctx := context.Background()
	for _, tc := range []struct {
		in    account.RegisterInput
		field string
	}{
		{account.RegisterInput{Username: "al", Email: "al@example.com", Password: password}, "username"},
		{account.RegisterInput{Username: "al ice", Email: "al@example.com", Password: password}, "username"},
		{account.RegisterInput{Username: strings.Repeat("a", 31), Email: "al@example.com", Password: password}, "username"},
		{account.RegisterInput{Username: "alice", Email: "Alice <al@example.com>", Password: password}, "email"},
		{account.RegisterInput{Username: "alice", Email: "al@example.com", Password: password, FullName: strings.Repeat("x", 101)}, "full_name"},
	} {
		_, err := e.svc.Register(ctx, tc.in)
		wantCode(t, "Register "+tc.field, err, flock.EINVALID)
		if fe := asFlockError(err); fe.Field != tc.field {
			t.Errorf("Register %+v blamed %q, want %q", tc.in, fe.Field, tc.field)
		}
	}
}
