package gotest

import (
	"archive/zip"
	"bytes"
	"testing"

	"connectrpc.com/connect"

	client "github.com/flock-social/flock/client/go"
	flockv1 "github.com/flock-social/flock/gen/go/flock/v1"
	tu "github.com/flock-social/flock/internal/testutil"
)

// SignOutOtherSessions ends every session of the account but the Client's
// own, on each protocol.
func TestClient_SignOutOtherSessions(t *testing.T) {
	t.Parallel()
	s := tu.MustServer(t, "sqlite")
	for _, p := range protocols(s) {
		t.Run(p.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			a := s.MustAccount(t, "signout_"+p.name) // one session already
			laptop, phone := client.New(s.URL, p.opts...), client.New(s.URL, p.opts...)
			for _, c := range []*client.Client{laptop, phone} {
				if _, err := c.Login(ctx, a.Username, a.Password); err != nil {
					t.Fatal(err)
				}
			}
			n, err := laptop.SignOutOtherSessions(ctx)
			if err != nil || n != 2 {
				t.Fatalf("SignOutOtherSessions = %d, %v; want 2 ended", n, err)
			}
			res, err := laptop.Users.ListSessions(ctx, connect.NewRequest(&flockv1.ListSessionsRequest{}))
			if err != nil || len(res.Msg.GetSessions()) != 1 || !res.Msg.GetSessions()[0].GetCurrent() {
				t.Fatalf("sessions after = %v, %v; want only the laptop's", res, err)
			}
			_, err = phone.Users.GetMe(ctx, connect.NewRequest(&flockv1.GetMeRequest{}))
			mustRPCCode(t, err, connect.CodeUnauthenticated)
		})
	}
}

// DownloadExport streams the account's zip; a refused download is a
// *connect.Error with the server's code.
func TestClient_DownloadExport(t *testing.T) {
	t.Parallel()
	s := tu.MustServer(t, "sqlite")
	ctx := t.Context()
	a := s.MustAccount(t, "exporter")
	c := client.New(s.URL, client.WithHTTPClient(s.HTTP), client.WithTokens(a.AccessToken, a.RefreshToken))
	var buf bytes.Buffer
	n, err := c.DownloadExport(ctx, &buf)
	if err != nil || n != int64(buf.Len()) || n == 0 {
		t.Fatalf("DownloadExport = %d, %v (buffer %d bytes)", n, err, buf.Len())
	}
	zr, err := zip.NewReader(bytes.NewReader(buf.Bytes()), n)
	if err != nil {
		t.Fatalf("not a zip: %v", err)
	}
	names := map[string]bool{}
	for _, f := range zr.File {
		names[f.Name] = true
	}
	for _, want := range []string{"manifest.json", "profile.json", "posts.json"} {
		if !names[want] {
			t.Errorf("the archive has no %s: %v", want, names)
		}
	}
	_, err = client.DownloadExport(ctx, s.HTTP, s.URL, "not-a-token", &buf)
	mustRPCCode(t, err, connect.CodeUnauthenticated)
}
