package testutil

import (
	"strings"
	"testing"

	flockv1 "github.com/flock-social/flock/gen/go/flock/v1"
	"github.com/flock-social/flock/gen/go/flock/v1/flockv1connect"
)

// Account is a registered, verified, logged-in user made by MustAccount.
type Account struct {
	ID, Username, Email, Password string
	AccessToken, RefreshToken     string
}

// MustAccount registers username (email <username>@example.com), verifies
// the email through the link that was sent, and logs in, all through the
// Connect transport.
func (s *Server) MustAccount(tb testing.TB, username string) *Account {
	tb.Helper()
	a := &Account{Username: username, Email: strings.ToLower(username) + "@example.com", Password: "password-of-" + username}
	reg := MustCall[flockv1.RegisterResponse](tb, s, Connect, flockv1connect.UserServiceRegisterProcedure, "",
		&flockv1.RegisterRequest{Username: username, Email: a.Email, Password: a.Password, FullName: "User " + username})
	a.ID = reg.GetUser().GetId()
	token := s.MustVerificationToken(tb, a.Email)
	MustCall[flockv1.VerifyEmailResponse](tb, s, Connect, flockv1connect.UserServiceVerifyEmailProcedure, "",
		&flockv1.VerifyEmailRequest{Token: token})
	login := MustCall[flockv1.LoginResponse](tb, s, Connect, flockv1connect.UserServiceLoginProcedure, "",
		&flockv1.LoginRequest{Identifier: &flockv1.LoginRequest_Username{Username: username}, Password: a.Password})
	a.AccessToken, a.RefreshToken = login.GetAccessToken(), login.GetRefreshToken()
	return a
}
