package client

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"

	"connectrpc.com/connect"

	flockv1 "github.com/flock-social/flock/gen/go/flock/v1"
)

// SignOutOtherSessions ends every session of the Client's account but its
// own (ListSessions, then RevokeSession for each other one): their tokens
// stop working and their streams close. It returns how many it ended.
func (c *Client) SignOutOtherSessions(ctx context.Context) (int, error) {
	var others []string
	token := ""
	for {
		res, err := c.Users.ListSessions(ctx, connect.NewRequest(&flockv1.ListSessionsRequest{PageSize: 100, PageToken: token}))
		if err != nil {
			return 0, err
		}
		for _, s := range res.Msg.GetSessions() {
			if !s.GetCurrent() {
				others = append(others, s.GetId())
			}
		}
		if token = res.Msg.GetNextPageToken(); token == "" {
			break
		}
	}
	for i, id := range others {
		_, err := c.Users.RevokeSession(ctx, connect.NewRequest(&flockv1.RevokeSessionRequest{SessionId: id}))
		if err != nil && connect.CodeOf(err) != connect.CodeNotFound { // ended meanwhile: fine
			return i, err
		}
	}
	return len(others), nil
}

// DownloadExport writes the zip of the account's data (GET
// /api/users/export/, see docs/accounts.md) to w as it arrives, refreshing
// the access token first when it is about to expire, and returns the
// number of bytes written. Memory use does not grow with the archive. An
// error after some bytes were written means the archive in w is
// incomplete: the server broke the download off rather than send a short
// zip. Refusals are *connect.Error with the server's code and message
// (CodeResourceExhausted past the rate limit, CodeUnavailable when the
// server runs too many exports).
func (c *Client) DownloadExport(ctx context.Context, w io.Writer) (int64, error) {
	access, err := c.auth.current(ctx)
	if err != nil {
		return 0, fmt.Errorf("download export: %w", err)
	}
	return DownloadExport(ctx, c.httpClient, c.baseURL, access, w)
}

// DownloadExport is Client.DownloadExport for a base URL (e.g.
// "http://127.0.0.1:8080") and an access token.
func DownloadExport(ctx context.Context, httpClient *http.Client, baseURL, accessToken string, w io.Writer) (int64, error) {
	if httpClient == nil {
		httpClient = http.DefaultClient
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(baseURL, "/")+"/api/users/export/", nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+accessToken)
	res, err := httpClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("download export: %w", err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
		return 0, responseError(res.StatusCode, body)
	}
	n, err := io.Copy(w, res.Body)
	if err != nil {
		return n, fmt.Errorf("download export: broken off after %d bytes: %w", n, err)
	}
	return n, nil
}
