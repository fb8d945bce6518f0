package gotest

import (
	"net/http"
	"sync"
	"testing"

	"connectrpc.com/connect"

	client "github.com/flock-social/flock/client/go"
	flockv1 "github.com/flock-social/flock/gen/go/flock/v1"
	"github.com/flock-social/flock/gen/go/flock/v1/flockv1connect"
	tu "github.com/flock-social/flock/internal/testutil"
)

// protocols are the ways a Client speaks to the server, for table tests:
// each with the HTTP client a program would give it (none for gRPC, whose
// default is a cleartext HTTP/2 client for http:// URLs).
func protocols(s *tu.Server) []struct {
	name string
	opts []client.Option
} {
	return []struct {
		name string
		opts []client.Option
	}{
		{"connect", []client.Option{client.WithHTTPClient(s.HTTP)}},
		{"grpc", []client.Option{client.WithGRPC()}},
		{"grpcweb", []client.Option{client.WithHTTPClient(s.HTTP), client.WithGRPCWeb()}},
	}
}

// tokenLog records what OnTokens receives.
type tokenLog struct {
	mu    sync.Mutex
	pairs [][2]string
}

func (l *tokenLog) record(access, refresh string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.pairs = append(l.pairs, [2]string{access, refresh})
}

func (l *tokenLog) get() [][2]string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([][2]string(nil), l.pairs...)
}

// mustRPCCode fails the test unless err is a *connect.Error with code.
func mustRPCCode(t *testing.T, err error, code connect.Code) {
	t.Helper()
	if connect.CodeOf(err) != code {
		t.Fatalf("err = %v (code %s), want code %s", err, connect.CodeOf(err), code)
	}
}

// Login keeps the tokens and every service field calls as the account, on
// Connect, gRPC (h2c by default) and gRPC-Web.
func TestClient_LoginThenCallOnEachProtocol(t *testing.T) {
	t.Parallel()
	s := tu.MustServer(t, "sqlite")
	for _, p := range protocols(s) {
		t.Run(p.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			a := s.MustAccount(t, "proto_"+p.name)
			c := client.New(s.URL, p.opts...)
			var log tokenLog
			c.OnTokens(log.record)

			t.Run("a wrong password is unauthenticated", func(t *testing.T) {
				_, err := c.Login(ctx, a.Username, "not the password")
				mustRPCCode(t, err, connect.CodeUnauthenticated)
			})
			t.Run("calls before login are unauthenticated", func(t *testing.T) {
				_, err := c.Users.GetMe(ctx, connect.NewRequest(&flockv1.GetMeRequest{}))
				mustRPCCode(t, err, connect.CodeUnauthenticated)
			})

			// By email here; by username in the other tests.
			res, err := c.Login(ctx, a.Email, a.Password)
			if err != nil {
				t.Fatalf("login: %v", err)
			}
			access, refresh := c.Tokens()
			if access == "" || access != res.GetAccessToken() || refresh != res.GetRefreshToken() {
				t.Fatalf("Tokens() = %q, %q; login answered %q, %q", access, refresh, res.GetAccessToken(), res.GetRefreshToken())
			}
			if got := log.get(); len(got) != 1 || got[0] != [2]string{access, refresh} {
				t.Fatalf("OnTokens got %v, want the login's pair once", got)
			}

			me, err := c.Users.GetMe(ctx, connect.NewRequest(&flockv1.GetMeRequest{}))
			if err != nil || me.Msg.GetUser().GetId() != a.ID {
				t.Fatalf("GetMe = %v, %v; want user %s", me, err, a.ID)
			}
			post, err := c.Posts.CreatePost(ctx, connect.NewRequest(&flockv1.CreatePostRequest{Content: "over " + p.name}))
			if err != nil {
				t.Fatalf("CreatePost: %v", err)
			}
			got, err := c.Posts.GetPost(ctx, connect.NewRequest(&flockv1.GetPostRequest{PostId: post.Msg.GetPost().GetId()}))
			if err != nil || got.Msg.GetPost().GetContent() != "over "+p.name {
				t.Fatalf("GetPost = %v, %v", got, err)
			}
			if _, err := c.Notifications.ListNotifications(ctx, connect.NewRequest(&flockv1.ListNotificationsRequest{})); err != nil {
				t.Errorf("ListNotifications: %v", err)
			}
			if _, err := c.Activity.ListActivity(ctx, connect.NewRequest(&flockv1.ListActivityRequest{})); err != nil {
				t.Errorf("ListActivity: %v", err)
			}
			if _, err := c.Groups.ListGroups(ctx, connect.NewRequest(&flockv1.ListGroupsRequest{})); err != nil {
				t.Errorf("ListGroups: %v", err)
			}
			// The token reaches the moderation service, which turns members away.
			_, err = c.Moderation.ListReports(ctx, connect.NewRequest(&flockv1.ListReportsRequest{}))
			mustRPCCode(t, err, connect.CodePermissionDenied)
		})
	}
}

// Logout ends the session on the server, forgets the tokens and tells
// OnTokens so.
func TestClient_Logout(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := tu.MustServer(t, "sqlite")
	a := s.MustAccount(t, "leaver")
	c := client.New(s.URL, client.WithHTTPClient(s.HTTP))
	if _, err := c.Login(ctx, a.Username, a.Password); err != nil {
		t.Fatal(err)
	}
	oldAccess, _ := c.Tokens()
	var log tokenLog
	c.OnTokens(log.record)

	if err := c.Logout(ctx); err != nil {
		t.Fatalf("logout: %v", err)
	}
	if access, refresh := c.Tokens(); access != "" || refresh != "" {
		t.Errorf("Tokens() after logout = %q, %q", access, refresh)
	}
	if got := log.get(); len(got) != 1 || got[0] != [2]string{} {
		t.Errorf("OnTokens got %v, want one empty pair", got)
	}
	// The access token the client held stopped working at once.
	_, err := tu.Call[flockv1.GetMeResponse](ctx, s, tu.Connect, flockv1connect.UserServiceGetMeProcedure, oldAccess, &flockv1.GetMeRequest{})
	mustRPCCode(t, err, connect.CodeUnauthenticated)
	_, err = c.Users.GetMe(ctx, connect.NewRequest(&flockv1.GetMeRequest{}))
	mustRPCCode(t, err, connect.CodeUnauthenticated)
	// The account that logged in elsewhere is unaffected.
	if _, err := tu.Call[flockv1.GetMeResponse](ctx, s, tu.Connect, flockv1connect.UserServiceGetMeProcedure, a.AccessToken, &flockv1.GetMeRequest{}); err != nil {
		t.Errorf("the other session: %v", err)
	}
}

// Calls carry the Client's token along with the caller's own headers;
// the public procedures (Login here) carry none.
func TestClient_SendsTokenExceptToPublicProcedures(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := tu.MustServer(t, "sqlite")
	a := s.MustAccount(t, "headers")
	transport := &http.Transport{}
	t.Cleanup(transport.CloseIdleConnections)
	var mu sync.Mutex
	sent := map[string]http.Header{}
	hc := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		mu.Lock()
		sent[r.URL.Path] = r.Header.Clone()
		mu.Unlock()
		return transport.RoundTrip(r)
	})}
	c := client.New(s.URL, client.WithHTTPClient(hc), client.WithTokens(a.AccessToken, a.RefreshToken))
	req := connect.NewRequest(&flockv1.GetMeRequest{})
	req.Header().Set("X-Request-Id", "abc")
	if _, err := c.Users.GetMe(ctx, req); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Login(ctx, a.Username, a.Password); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if h := sent[flockv1connect.UserServiceGetMeProcedure]; h.Get("Authorization") != "Bearer "+a.AccessToken || h.Get("X-Request-Id") != "abc" {
		t.Errorf("GetMe sent headers %v", h)
	}
	if h := sent[flockv1connect.UserServiceLoginProcedure]; h == nil || h.Get("Authorization") != "" {
		t.Errorf("Login sent headers %v, want no Authorization", h)
	}
}

// roundTripFunc is an http.RoundTripper that observes requests on their
// way to the real server.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
