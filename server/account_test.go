package server_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	flockv1 "github.com/flock-social/flock/gen/go/flock/v1"
	"github.com/flock-social/flock/gen/go/flock/v1/flockv1connect"
	tu "github.com/flock-social/flock/internal/testutil"
)

// Managing an account (api-contract rows A1-A7): sessions and passwords.

// loginAs logs acc in again over REST with the given User-Agent and returns
// the new session's tokens.
func loginAs(t *testing.T, s *tu.Server, acc *tu.Account, userAgent string) (access, refresh string) {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"username": acc.Username, "password": acc.Password})
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, s.URL+"/api/users/login/", strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", userAgent)
	res, err := s.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var out struct{ AccessToken, RefreshToken string }
	if err := json.NewDecoder(res.Body).Decode(&out); err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("login: HTTP %d, %v", res.StatusCode, err)
	}
	return out.AccessToken, out.RefreshToken
}

func (a api) sessions(tok string) []*flockv1.Session {
	return must[flockv1.ListSessionsResponse](a, flockv1connect.UserServiceListSessionsProcedure, tok, &flockv1.ListSessionsRequest{}).GetSessions()
}

func (a api) revokeSession(tok, id string) error {
	return do[flockv1.RevokeSessionResponse](a, flockv1connect.UserServiceRevokeSessionProcedure, tok, &flockv1.RevokeSessionRequest{SessionId: id})
}

func currentSession(t *testing.T, list []*flockv1.Session) *flockv1.Session {
	t.Helper()
	var cur *flockv1.Session
	for _, s := range list {
		if s.GetCurrent() {
			if cur != nil {
				t.Fatalf("two sessions marked current: %v", list)
			}
			cur = s
		}
	}
	if cur == nil {
		t.Fatalf("no session marked current: %v", list)
	}
	return cur
}

// A5, A6 and P5: ListSessions shows each sign-in with where it came from;
// revoking one ends its access and refresh tokens and its open stream at
// once, and leaves the caller's own session working; on every transport.
func TestSessions_ListedAndRevokedWithTheirStreams_P5(t *testing.T) {
	t.Parallel()
	forEachServer(t, func(t *testing.T, s *tu.Server) {
		for _, tr := range tu.Transports {
			t.Run(string(tr), func(t *testing.T) {
				a := api{t: t, s: s, tr: tr}
				acc := s.MustAccount(t, "sess_"+string(tr))
				phone, phoneRefresh := loginAs(t, s, acc, "FlockPhone/2.1 (test)")

				list := a.sessions(acc.AccessToken)
				if len(list) != 2 {
					t.Fatalf("ListSessions = %d sessions, want 2: %v", len(list), list)
				}
				mine := currentSession(t, list)
				var other *flockv1.Session
				for _, x := range list {
					if x != mine {
						other = x
					}
					if x.GetId() == "" || x.GetIp() != "127.0.0.1" || x.GetCreatedAt() == nil || x.GetLastUsedAt() == nil ||
						x.GetLastUsedAt().AsTime().Before(x.GetCreatedAt().AsTime()) || !x.GetExpiresAt().AsTime().After(time.Now()) {
						t.Errorf("session %v: want an id, ip 127.0.0.1, createdAt <= lastUsedAt and a future expiresAt", x)
					}
				}
				if other.GetUserAgent() != "FlockPhone/2.1 (test)" {
					t.Errorf("phone session's userAgent = %q", other.GetUserAgent())
				}
				// Newest first: the phone signed in last.
				if list[0].GetId() != other.GetId() {
					t.Errorf("sessions not newest first: %v", list)
				}
				if cur := currentSession(t, a.sessions(phone)); cur.GetId() != other.GetId() {
					t.Errorf("from the phone, current = %s, want %s", cur.GetId(), other.GetId())
				}

				stream := mustOpenStream(t, s, tu.Connect, false, phone)
				if err := a.revokeSession(acc.AccessToken, other.GetId()); err != nil {
					t.Fatalf("RevokeSession: %v", err)
				}
				if err := stream.ended(t); connect.CodeOf(err) != connect.CodeUnauthenticated {
					t.Errorf("the revoked session's stream ended with %v, want unauthenticated", err)
				}
				if err := getMe(t, s, tr, phone); connect.CodeOf(err) != connect.CodeUnauthenticated || !strings.Contains(err.Error(), "signed out from another session of the account") {
					t.Errorf("the revoked session's next call: %v, want unauthenticated saying another session ended it", err)
				}
				_, err := tu.Call[flockv1.RefreshTokenResponse](t.Context(), s, tr, flockv1connect.UserServiceRefreshTokenProcedure, "", &flockv1.RefreshTokenRequest{RefreshToken: phoneRefresh})
				wantCode(t, err, connect.CodeUnauthenticated)
				if err := getMe(t, s, tr, acc.AccessToken); err != nil {
					t.Fatalf("the caller's own session after revoking another: %v", err)
				}
				if got := a.sessions(acc.AccessToken); len(got) != 1 || got[0].GetId() != mine.GetId() {
					t.Errorf("sessions after the revocation = %v, want only the caller's", got)
				}
				// Ended already: nothing left to revoke.
				wantCode(t, a.revokeSession(acc.AccessToken, other.GetId()), connect.CodeNotFound)
				// Revoking one's own session is a logout, and reads as one.
				if err := a.revokeSession(acc.AccessToken, mine.GetId()); err != nil {
					t.Fatalf("RevokeSession of the caller's own session: %v", err)
				}
				if err := getMe(t, s, tr, acc.AccessToken); connect.CodeOf(err) != connect.CodeUnauthenticated || !strings.Contains(err.Error(), "this session was logged out") {
					t.Errorf("after revoking its own session: %v, want unauthenticated saying it was logged out", err)
				}
			})
		}
	})
}

// P1 for sessions: another user can neither see nor end your sessions; the
// answer for another user's session is the one for a session that does not
// exist.
func TestSessions_OthersCannotListOrRevoke_P1(t *testing.T) {
	t.Parallel()
	forEachServer(t, func(t *testing.T, s *tu.Server) {
		for _, tr := range tu.Transports {
			t.Run(string(tr), func(t *testing.T) {
				a := api{t: t, s: s, tr: tr}
				alice, mallory := s.MustAccount(t, "sessa_"+string(tr)), s.MustAccount(t, "sessm_"+string(tr))
				victim := currentSession(t, a.sessions(alice.AccessToken))
				for _, x := range a.sessions(mallory.AccessToken) {
					if x.GetId() == victim.GetId() {
						t.Fatalf("mallory's list shows alice's session")
					}
				}
				wantCode(t, a.revokeSession(mallory.AccessToken, victim.GetId()), connect.CodeNotFound)
				wantCode(t, a.revokeSession(mallory.AccessToken, "01JDOESNOTEXIST000000000000"), connect.CodeNotFound)
				wantCode(t, a.revokeSession("", victim.GetId()), connect.CodeUnauthenticated)
				if err := getMe(t, s, tr, alice.AccessToken); err != nil {
					t.Fatalf("alice after mallory's attempt: %v", err)
				}
			})
		}
	})
}

// A1, P5 and P9: ChangePassword needs the current password and a valid new
// one; it keeps the caller signed in, signs out every other session (their
// streams close at once), only the new password logs in afterwards, and
// the account's address is told by email.
func TestChangePassword_SignsOutOtherSessionsKeepsCaller_P5_P9(t *testing.T) {
	t.Parallel()
	forEachServer(t, func(t *testing.T, s *tu.Server) {
		for _, tr := range tu.Transports {
			t.Run(string(tr), func(t *testing.T) {
				a := api{t: t, s: s, tr: tr}
				acc := s.MustAccount(t, "chpw_"+string(tr))
				laptop, laptopRefresh := loginAs(t, s, acc, "laptop")
				stream := mustOpenStream(t, s, tu.Connect, true, laptop)
				change := func(current, next string) error {
					return do[flockv1.ChangePasswordResponse](a, flockv1connect.UserServiceChangePasswordProcedure, acc.AccessToken,
						&flockv1.ChangePasswordRequest{CurrentPassword: current, NewPassword: next})
				}
				wantCode(t, change("not-the-password", "brand-new-password"), connect.CodePermissionDenied)
				wantCode(t, change(acc.Password, "short"), connect.CodeInvalidArgument)
				wantCode(t, change(acc.Password, acc.Password), connect.CodeInvalidArgument)
				if err := getMe(t, s, tr, laptop); err != nil {
					t.Fatalf("refused changes signed the laptop out: %v", err)
				}

				if err := change(acc.Password, "brand-new-password"); err != nil {
					t.Fatalf("ChangePassword: %v", err)
				}
				if err := getMe(t, s, tr, acc.AccessToken); err != nil {
					t.Fatalf("the caller's session after ChangePassword: %v", err)
				}
				if err := stream.ended(t); connect.CodeOf(err) != connect.CodeUnauthenticated {
					t.Errorf("the other session's stream ended with %v, want unauthenticated", err)
				}
				// The laptop is told why, not only "invalid or expired".
				if err := getMe(t, s, tr, laptop); connect.CodeOf(err) != connect.CodeUnauthenticated || !strings.Contains(err.Error(), "signed out when the account's password was changed") {
					t.Errorf("GetMe on the other session: %v, want unauthenticated saying the password was changed", err)
				}
				_, err := tu.Call[flockv1.RefreshTokenResponse](t.Context(), s, tr, flockv1connect.UserServiceRefreshTokenProcedure, "", &flockv1.RefreshTokenRequest{RefreshToken: laptopRefresh})
				if connect.CodeOf(err) != connect.CodeUnauthenticated || !strings.Contains(err.Error(), "password was changed") {
					t.Errorf("refresh on the other session: %v, want unauthenticated saying the password was changed", err)
				}
				if got := a.sessions(acc.AccessToken); len(got) != 1 || !got[0].GetCurrent() {
					t.Errorf("sessions after ChangePassword = %v, want only the caller's", got)
				}

				login := func(pw string) error {
					_, err := tu.Call[flockv1.LoginResponse](t.Context(), s, tr, flockv1connect.UserServiceLoginProcedure, "",
						&flockv1.LoginRequest{Identifier: &flockv1.LoginRequest_Username{Username: acc.Username}, Password: pw})
					return err
				}
				wantCode(t, login(acc.Password), connect.CodeUnauthenticated)
				if err := login("brand-new-password"); err != nil {
					t.Fatalf("login with the new password: %v", err)
				}
				// The address is told, as after a reset, so that a change
				// made from a stolen session does not go unnoticed.
				waitEmail(t, s, acc.Email, "the password of your Flock account was just changed from one of your signed-in sessions", 1)
			})
		}
	})
}
