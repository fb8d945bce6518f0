package server_test

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	flockv1 "github.com/flock-social/flock/gen/go/flock/v1"
	"github.com/flock-social/flock/gen/go/flock/v1/flockv1connect"
	tu "github.com/flock-social/flock/internal/testutil"
	"github.com/flock-social/flock/server"
)

// Managing an account by email (api-contract rows A2-A4): password resets
// and email changes.

// waitEmail waits (up to 10s) for the n-th email (1-based) to address whose
// text contains want, and returns its text.
func waitEmail(t *testing.T, s *tu.Server, address, want string, n int) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var seen []string
		for _, body := range s.Emails(t, address) {
			if strings.Contains(body, want) {
				seen = append(seen, body)
			}
		}
		if len(seen) >= n {
			return seen[n-1]
		}
		if time.Now().After(deadline) {
			t.Fatalf("no email %d to %s containing %q within 10s (have %d)", n, address, want, len(seen))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// linkToken returns the token of the link to path in an email.
func linkToken(t *testing.T, body, path string) string {
	t.Helper()
	m := regexp.MustCompile(regexp.QuoteMeta(path) + `\?token=([A-Za-z0-9_-]+)`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("email has no %s link:\n%s", path, body)
	}
	return m[1]
}

// oneCharOff returns token with its first character changed: a guess one
// character away. (Replacing it with a fixed "A" left the token as it was
// whenever it began with "A", one run in 64 per token.)
func oneCharOff(token string) string {
	if token[0] == 'A' {
		return "B" + token[1:]
	}
	return "A" + token[1:]
}

func (a api) requestReset(email string) error {
	return do[flockv1.RequestPasswordResetResponse](a, flockv1connect.UserServiceRequestPasswordResetProcedure, "", &flockv1.RequestPasswordResetRequest{Email: email})
}

func (a api) resetPassword(token, password string) error {
	return do[flockv1.ResetPasswordResponse](a, flockv1connect.UserServiceResetPasswordProcedure, "", &flockv1.ResetPasswordRequest{Token: token, NewPassword: password})
}

func (a api) login(username, password string) (*flockv1.LoginResponse, error) {
	return call[flockv1.LoginResponse](a, flockv1connect.UserServiceLoginProcedure, "",
		&flockv1.LoginRequest{Identifier: &flockv1.LoginRequest_Username{Username: username}, Password: password})
}

// P10 for resets: RequestPasswordReset answers the same for an account's
// email (in any letter case) and for an address nobody has, and in the same
// work: the request itself sends no query either way (the lookup runs after
// the answer), so its time cannot tell them apart. Only the account's
// address gets an email.
func TestPasswordReset_SameAnswerAndWorkForAnyEmail_P10(t *testing.T) {
	t.Parallel()
	forEachServer(t, func(t *testing.T, s *tu.Server) {
		counter := &queryCounter{}
		s.App.DB().AddQueryHook(counter)
		for _, tr := range tu.Transports {
			a := api{t: t, s: s, tr: tr}
			acc := s.MustAccount(t, "resetp10_"+string(tr))
			queries := func(email string) int64 {
				before := counter.n.Load()
				if err := a.requestReset(email); err != nil {
					t.Fatalf("%s: RequestPasswordReset(%q) = %v, want success", tr, email, err)
				}
				return counter.n.Load() - before
			}
			known, unknown := queries("  "+strings.ToUpper(acc.Email)+" "), queries("nobody-"+string(tr)+"@example.com")
			if known != unknown || known != 0 {
				t.Errorf("%s: the request sent %d queries for an account's email and %d for an unknown one, want 0 and 0", tr, known, unknown)
			}
			waitEmail(t, s, acc.Email, "/reset-password?token=", 1)
			wantCode(t, a.requestReset("not an email"), connect.CodeInvalidArgument)
		}
		// The unknown addresses got nothing (the known ones' emails, sent
		// after them, have arrived by now).
		for _, tr := range tu.Transports {
			if got := s.Emails(t, "nobody-"+string(tr)+"@example.com"); len(got) != 0 {
				t.Errorf("an unknown address got %d emails", len(got))
			}
		}
	})
}

// P5 and P11 for resets: the token works once, a newer request or a login
// voids the older ones, a guess does nothing; using it sets the password,
// ends every session and its streams, and the account is told.
func TestPasswordReset_SingleUseVoidedAndSignsOutEverySession_P5_P11(t *testing.T) {
	t.Parallel()
	forEachServer(t, func(t *testing.T, s *tu.Server) {
		for _, tr := range tu.Transports {
			t.Run(string(tr), func(t *testing.T) {
				a := api{t: t, s: s, tr: tr}
				acc := s.MustAccount(t, "reset_"+string(tr))
				if err := a.requestReset(acc.Email); err != nil {
					t.Fatal(err)
				}
				first := linkToken(t, waitEmail(t, s, acc.Email, "The link works once, for 1 hour;", 1), "/reset-password")
				// A login voids it.
				if _, err := a.login(acc.Username, acc.Password); err != nil {
					t.Fatal(err)
				}
				wantCode(t, a.resetPassword(first, "after-a-login-1"), connect.CodeInvalidArgument)

				if err := a.requestReset(acc.Email); err != nil {
					t.Fatal(err)
				}
				older := linkToken(t, waitEmail(t, s, acc.Email, "/reset-password?token=", 2), "/reset-password")
				if err := a.requestReset(acc.Email); err != nil {
					t.Fatal(err)
				}
				newest := linkToken(t, waitEmail(t, s, acc.Email, "/reset-password?token=", 3), "/reset-password")
				wantCode(t, a.resetPassword(older, "voided-by-newer-1"), connect.CodeInvalidArgument)
				wantCode(t, a.resetPassword(oneCharOff(newest), "guessed-token-1"), connect.CodeInvalidArgument)
				wantCode(t, a.resetPassword(newest, "short"), connect.CodeInvalidArgument)

				stream := mustOpenStream(t, s, tu.Connect, false, acc.AccessToken)
				if err := a.resetPassword(newest, "the-reset-password"); err != nil {
					t.Fatalf("ResetPassword: %v", err)
				}
				if err := stream.ended(t); connect.CodeOf(err) != connect.CodeUnauthenticated {
					t.Errorf("stream ended with %v, want unauthenticated", err)
				}
				wantCode(t, getMe(t, s, tr, acc.AccessToken), connect.CodeUnauthenticated)
				_, err := tu.Call[flockv1.RefreshTokenResponse](t.Context(), s, tr, flockv1connect.UserServiceRefreshTokenProcedure, "", &flockv1.RefreshTokenRequest{RefreshToken: acc.RefreshToken})
				wantCode(t, err, connect.CodeUnauthenticated)
				wantCode(t, a.resetPassword(newest, "used-twice-1234"), connect.CodeInvalidArgument)
				_, err = a.login(acc.Username, acc.Password)
				wantCode(t, err, connect.CodeUnauthenticated)
				if _, err := a.login(acc.Username, "the-reset-password"); err != nil {
					t.Fatalf("login with the reset password: %v", err)
				}
				waitEmail(t, s, acc.Email, "the password of your Flock account was just reset", 1)
			})
		}
	})
}

// P11: of concurrent ResetPassword calls with one token exactly one
// succeeds (the database decides, on both engines).
func TestPasswordReset_ConcurrentUseOfOneTokenOnceOnly_P11(t *testing.T) {
	t.Parallel()
	forEachServer(t, func(t *testing.T, s *tu.Server) {
		a := api{t: t, s: s, tr: tu.Connect}
		acc := s.MustAccount(t, "resetrace")
		if err := a.requestReset(acc.Email); err != nil {
			t.Fatal(err)
		}
		token := linkToken(t, waitEmail(t, s, acc.Email, "/reset-password?token=", 1), "/reset-password")
		const n = 8
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() { errs[i] = a.resetPassword(token, fmt.Sprintf("racing-password-%d", i)) })
		}
		wg.Wait()
		won := -1
		for i, err := range errs {
			switch {
			case err == nil && won >= 0:
				t.Fatalf("two concurrent resets with one token succeeded (%d and %d)", won, i)
			case err == nil:
				won = i
			case connect.CodeOf(err) != connect.CodeInvalidArgument:
				t.Fatalf("reset %d: %v, want invalid_argument", i, err)
			}
		}
		if won < 0 {
			t.Fatal("no reset succeeded")
		}
		if _, err := a.login(acc.Username, fmt.Sprintf("racing-password-%d", won)); err != nil {
			t.Fatalf("login with the winner's password: %v", err)
		}
	})
}

// The reset link opens a page of Flock's that sets the password without
// the web app: GET shows a form (and uses nothing up), POST sets it.
func TestResetPasswordPage_FormSetsThePassword(t *testing.T) {
	t.Parallel()
	s := tu.MustServer(t, "sqlite")
	a := api{t: t, s: s, tr: tu.Connect}
	acc := s.MustAccount(t, "resetpage")
	if err := a.requestReset(acc.Email); err != nil {
		t.Fatal(err)
	}
	token := linkToken(t, waitEmail(t, s, acc.Email, "/reset-password?token=", 1), "/reset-password")
	res, page := rawBody(t, s, http.MethodGet, "/reset-password?token="+token, "", "")
	if res.StatusCode != http.StatusOK || !strings.Contains(page, `name="token" value="`+token+`"`) || !strings.Contains(page, `type="password"`) {
		t.Fatalf("GET: %d\n%s", res.StatusCode, page)
	}
	if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || strings.Contains(csp, "unsafe") {
		t.Errorf("Content-Security-Policy %q", csp)
	}
	post := func(pw, confirm string) (*http.Response, string) {
		form := url.Values{"token": {token}, "password": {pw}, "confirm": {confirm}}
		return rawBody(t, s, http.MethodPost, "/reset-password", "", form.Encode(), "application/x-www-form-urlencoded")
	}
	if res, page := post("page-password-1", "page-password-2"); res.StatusCode != http.StatusBadRequest || !strings.Contains(page, "differ") {
		t.Fatalf("mismatched passwords: %d\n%s", res.StatusCode, page)
	}
	if res, page := post("page-password-1", "page-password-1"); res.StatusCode != http.StatusOK || !strings.Contains(page, "Log in with the new password") {
		t.Fatalf("POST: %d\n%s", res.StatusCode, page)
	}
	if _, err := a.login(acc.Username, "page-password-1"); err != nil {
		t.Fatalf("login with the password set on the page: %v", err)
	}
	if res, page := post("page-password-3", "page-password-3"); res.StatusCode != http.StatusBadRequest || !strings.Contains(page, "RequestPasswordReset") {
		t.Fatalf("second POST with the used token: %d\n%s", res.StatusCode, page)
	}
}

func (a api) changeEmail(tok, address, password string) error {
	return do[flockv1.ChangeEmailResponse](a, flockv1connect.UserServiceChangeEmailProcedure, tok, &flockv1.ChangeEmailRequest{NewEmail: address, CurrentPassword: password})
}

// A4, P10 and P11: ChangeEmail needs the password; the address changes only
// when the link sent to the new address is used, once; the old address is
// told at the request and at the change; a taken address gets the same
// answer (and a note instead of a link), so nothing is enumerated.
func TestChangeEmail_ConfirmedByTheNewAddressOldOneTold_P10_P11(t *testing.T) {
	t.Parallel()
	forEachServer(t, func(t *testing.T, s *tu.Server) {
		for _, tr := range tu.Transports {
			t.Run(string(tr), func(t *testing.T) {
				a := api{t: t, s: s, tr: tr}
				acc, other := s.MustAccount(t, "chem_"+string(tr)), s.MustAccount(t, "chemo_"+string(tr))
				fresh := "moved-" + string(tr) + "@example.org"
				wantCode(t, a.changeEmail(acc.AccessToken, fresh, "wrong password"), connect.CodePermissionDenied)
				wantCode(t, a.changeEmail(acc.AccessToken, "not-an-address", acc.Password), connect.CodeInvalidArgument)
				wantCode(t, a.changeEmail(acc.AccessToken, strings.ToUpper(acc.Email), acc.Password), connect.CodeInvalidArgument)
				wantCode(t, a.changeEmail("", fresh, acc.Password), connect.CodeUnauthenticated)

				// Taken: the same answer; the owner of the address gets a note.
				if err := a.changeEmail(acc.AccessToken, other.Email, acc.Password); err != nil {
					t.Fatalf("ChangeEmail to a taken address = %v, want the same answer as any", err)
				}
				note := waitEmail(t, s, other.Email, "already belongs to an account", 1)
				if strings.Contains(note, "token=") {
					t.Errorf("the taken address got a link:\n%s", note)
				}
				waitEmail(t, s, acc.Email, "asked to change its email address", 1)

				if err := a.changeEmail(acc.AccessToken, " "+strings.ToUpper(fresh), acc.Password); err != nil {
					t.Fatalf("ChangeEmail: %v", err)
				}
				token := linkToken(t, waitEmail(t, s, fresh, "/verify-email?token=", 1), "/verify-email")
				waitEmail(t, s, acc.Email, "asked to change its email address", 2)
				me := must[flockv1.GetMeResponse](a, flockv1connect.UserServiceGetMeProcedure, acc.AccessToken, &flockv1.GetMeRequest{})
				if me.GetUser().GetEmail() != acc.Email {
					t.Fatalf("email changed to %q before the link was used", me.GetUser().GetEmail())
				}

				v := must[flockv1.VerifyEmailResponse](a, flockv1connect.UserServiceVerifyEmailProcedure, "", &flockv1.VerifyEmailRequest{Token: token})
				if v.GetUser().GetEmail() != fresh {
					t.Fatalf("VerifyEmail answered email %q, want %q", v.GetUser().GetEmail(), fresh)
				}
				wantCode(t, do[flockv1.VerifyEmailResponse](a, flockv1connect.UserServiceVerifyEmailProcedure, "", &flockv1.VerifyEmailRequest{Token: token}), connect.CodeInvalidArgument)
				told := waitEmail(t, s, acc.Email, "no longer receives its emails", 1)
				if strings.Contains(told, fresh) {
					t.Errorf("the notice to the old address shows the whole new one:\n%s", told)
				}
				login := func(email string) error {
					_, err := call[flockv1.LoginResponse](a, flockv1connect.UserServiceLoginProcedure, "",
						&flockv1.LoginRequest{Identifier: &flockv1.LoginRequest_Email{Email: email}, Password: acc.Password})
					return err
				}
				if err := login(fresh); err != nil {
					t.Fatalf("login with the new email: %v", err)
				}
				wantCode(t, login(acc.Email), connect.CodeUnauthenticated)
			})
		}
	})
}

// Races for one address are decided by the database: two accounts ask for
// the same new address; the first link used wins, the second answers
// already_exists and leaves its account as it was. A newer ChangeEmail
// voids the older link.
func TestChangeEmail_RaceForOneAddressDecidedAtConfirmation(t *testing.T) {
	t.Parallel()
	forEachServer(t, func(t *testing.T, s *tu.Server) {
		a := api{t: t, s: s, tr: tu.REST}
		one, two := s.MustAccount(t, "race_one"), s.MustAccount(t, "race_two")
		const contested = "contested@example.org"
		if err := a.changeEmail(one.AccessToken, "first-choice@example.org", one.Password); err != nil {
			t.Fatal(err)
		}
		voided := linkToken(t, waitEmail(t, s, "first-choice@example.org", "/verify-email?token=", 1), "/verify-email")
		var tokens []string
		for i, acc := range []*tu.Account{one, two} {
			if err := a.changeEmail(acc.AccessToken, contested, acc.Password); err != nil {
				t.Fatal(err)
			}
			tokens = append(tokens, linkToken(t, waitEmail(t, s, contested, "/verify-email?token=", i+1), "/verify-email"))
		}
		tokOne, tokTwo := tokens[0], tokens[1]
		wantCode(t, do[flockv1.VerifyEmailResponse](a, flockv1connect.UserServiceVerifyEmailProcedure, "", &flockv1.VerifyEmailRequest{Token: voided}), connect.CodeInvalidArgument)
		must[flockv1.VerifyEmailResponse](a, flockv1connect.UserServiceVerifyEmailProcedure, "", &flockv1.VerifyEmailRequest{Token: tokTwo})
		wantCode(t, do[flockv1.VerifyEmailResponse](a, flockv1connect.UserServiceVerifyEmailProcedure, "", &flockv1.VerifyEmailRequest{Token: tokOne}), connect.CodeAlreadyExists)
		me := must[flockv1.GetMeResponse](a, flockv1connect.UserServiceGetMeProcedure, one.AccessToken, &flockv1.GetMeRequest{})
		if me.GetUser().GetEmail() != one.Email {
			t.Errorf("the loser's email is %q, want it unchanged (%q)", me.GetUser().GetEmail(), one.Email)
		}
	})
}

// P12 for resets: reset emails are limited per address (3 an hour), in any
// spelling of it; another address still gets its email. Every transport
// answers 429 with Retry-After.
func TestRateLimit_PasswordResetPerEmail_P12(t *testing.T) {
	t.Parallel()
	for _, tr := range tu.Transports {
		t.Run(string(tr), func(t *testing.T) {
			t.Parallel()
			s := tu.MustServer(t, "sqlite", withRateLimits) // one server each: the IP budget is per server
			acc, other := s.MustAccount(t, "resetlim"), s.MustAccount(t, "resetok")
			a := api{t: t, s: s, tr: tr}
			for i, spelling := range []string{acc.Email, strings.ToUpper(acc.Email), " " + acc.Email} {
				if err := a.requestReset(spelling); err != nil {
					t.Fatalf("request %d: %v", i+1, err)
				}
			}
			// The fourth: refused (the copy records the answer's headers).
			proxied, header := behindProxy(t, s, "")
			err := api{t: t, s: proxied, tr: tr}.requestReset(acc.Email)
			wantRateLimited(t, tr, err, header(), "too many password reset emails requested")
			if err := a.requestReset(other.Email); err != nil {
				t.Fatalf("another address: %v", err)
			}
			waitEmail(t, s, other.Email, "/reset-password?token=", 1)
		})
	}
}

// A change of address that someone else asked for, from a session of the
// account they hold, ends with what the notice to the old address tells the
// owner to do, and with a suspension: its link no longer moves the account
// (which would have let them reset the password through the new address).
// It ends with a password change or reset, the revocation of that session,
// the reuse of its refresh token (theft) and a suspension; a VerifyEmail
// refused leaves the email as it was.
func TestChangeEmail_PendingChangeEndsWithPasswordChangeResetRevocationTheftAndSuspension_P5_P11(t *testing.T) {
	t.Parallel()
	forEachServer(t, func(t *testing.T, s *tu.Server) {
		ends := map[string]func(a api, owner *tu.Account, intruder *flockv1.LoginResponse){
			"password change": func(a api, owner *tu.Account, _ *flockv1.LoginResponse) {
				must[flockv1.ChangePasswordResponse](a, flockv1connect.UserServiceChangePasswordProcedure, owner.AccessToken,
					&flockv1.ChangePasswordRequest{CurrentPassword: owner.Password, NewPassword: owner.Password + "-new"})
			},
			"password reset": func(a api, owner *tu.Account, _ *flockv1.LoginResponse) {
				if err := a.requestReset(owner.Email); err != nil {
					t.Fatal(err)
				}
				token := linkToken(t, waitEmail(t, s, owner.Email, "/reset-password?token=", 1), "/reset-password")
				if err := a.resetPassword(token, owner.Password+"-new"); err != nil {
					t.Fatal(err)
				}
			},
			"revocation": func(a api, owner *tu.Account, intruder *flockv1.LoginResponse) {
				theirs := must[flockv1.ListSessionsResponse](a, flockv1connect.UserServiceListSessionsProcedure, intruder.GetAccessToken(), &flockv1.ListSessionsRequest{})
				for _, sess := range theirs.GetSessions() {
					if sess.GetCurrent() {
						must[flockv1.RevokeSessionResponse](a, flockv1connect.UserServiceRevokeSessionProcedure, owner.AccessToken, &flockv1.RevokeSessionRequest{SessionId: sess.GetId()})
					}
				}
			},
			"refresh token reused": func(a api, _ *tu.Account, intruder *flockv1.LoginResponse) {
				refresh := func() error {
					return do[flockv1.RefreshTokenResponse](a, flockv1connect.UserServiceRefreshTokenProcedure, "", &flockv1.RefreshTokenRequest{RefreshToken: intruder.GetRefreshToken()})
				}
				if err := refresh(); err != nil {
					t.Fatal(err)
				}
				wantCode(t, refresh(), connect.CodeUnauthenticated)
			},
			"suspension": func(_ api, owner *tu.Account, _ *flockv1.LoginResponse) { suspend(t, s, owner.ID) },
		}
		for what, end := range ends {
			t.Run(strings.ReplaceAll(what, " ", "_"), func(t *testing.T) {
				t.Parallel()
				a := api{t: t, s: s, tr: tu.Connect}
				owner := s.MustAccount(t, "pend_"+strings.ReplaceAll(what, " ", "_"))
				intruder, err := a.login(owner.Username, owner.Password)
				if err != nil {
					t.Fatal(err)
				}
				elsewhere := "elsewhere-" + owner.Username + "@example.org"
				if err := a.changeEmail(intruder.GetAccessToken(), elsewhere, owner.Password); err != nil {
					t.Fatal(err)
				}
				token := linkToken(t, waitEmail(t, s, elsewhere, "/verify-email?token=", 1), "/verify-email")
				end(a, owner, intruder)
				wantCode(t, do[flockv1.VerifyEmailResponse](a, flockv1connect.UserServiceVerifyEmailProcedure, "", &flockv1.VerifyEmailRequest{Token: token}), connect.CodeInvalidArgument)
				if _, err := call[flockv1.LoginResponse](a, flockv1connect.UserServiceLoginProcedure, "",
					&flockv1.LoginRequest{Identifier: &flockv1.LoginRequest_Email{Email: elsewhere}, Password: owner.Password}); err == nil {
					t.Errorf("after the %s, the account answers to the address asked for by another session", what)
				}
			})
		}
	}, func(c *server.Config) { c.RefreshReuseGrace = -1 }) // a rotated token presented again is theft at once
}

// A reset link mailed to the old address stops working once the account
// has moved to a new one (OWASP's forgot-password guidance): whoever reads
// the old mailbox no longer controls the account.
func TestPasswordReset_LinkToTheOldAddressVoidedByAnEmailChange_P11(t *testing.T) {
	t.Parallel()
	forEachServer(t, func(t *testing.T, s *tu.Server) {
		a := api{t: t, s: s, tr: tu.REST}
		acc := s.MustAccount(t, "resetmoved")
		if err := a.requestReset(acc.Email); err != nil {
			t.Fatal(err)
		}
		reset := linkToken(t, waitEmail(t, s, acc.Email, "/reset-password?token=", 1), "/reset-password")
		fresh := "resetmoved-new@example.org"
		if err := a.changeEmail(acc.AccessToken, fresh, acc.Password); err != nil {
			t.Fatal(err)
		}
		must[flockv1.VerifyEmailResponse](a, flockv1connect.UserServiceVerifyEmailProcedure, "",
			&flockv1.VerifyEmailRequest{Token: linkToken(t, waitEmail(t, s, fresh, "/verify-email?token=", 1), "/verify-email")})
		wantCode(t, a.resetPassword(reset, "a-new-password-1"), connect.CodeInvalidArgument)
		if _, err := a.login(acc.Username, acc.Password); err != nil {
			t.Errorf("the password changed through a link to the old address: %v", err)
		}
	})
}
