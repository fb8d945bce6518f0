package server_test

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/flock-social/flock/gen/go/flock/v1/flockv1connect"
	"github.com/flock-social/flock/internal/store"
	tu "github.com/flock-social/flock/internal/testutil"
)

// Answers under 1 KiB go uncompressed even to a client that accepts gzip
// (gzip saves next to nothing there and costs CPU on every answer); larger
// ones are gzipped for Connect and REST clients that ask.
func TestCompression_OnlyAnswersOfAKilobyteOrMore(t *testing.T) {
	t.Parallel()
	s := tu.MustServer(t, store.SQLite)
	a := api{t: t, s: s, tr: tu.Connect}
	ada := s.MustAccount(t, "ada_gz")
	for i := range 12 {
		a.post(ada.AccessToken, strings.Repeat("a post long enough to count ", 4)+string(rune('a'+i)))
	}
	get := func(method, path, body string) (encoding string, plain []byte) {
		t.Helper()
		req, err := http.NewRequest(method, s.URL+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+ada.AccessToken)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept-Encoding", "gzip") // set by hand: the transport then leaves the answer as sent
		res, err := s.HTTP.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		raw, err := io.ReadAll(res.Body)
		if err != nil || res.StatusCode != http.StatusOK {
			t.Fatalf("%s %s = %d %s, %v", method, path, res.StatusCode, raw, err)
		}
		encoding = res.Header.Get("Content-Encoding")
		plain = raw
		if encoding == "gzip" {
			zr, err := gzip.NewReader(bytes.NewReader(raw))
			if err != nil {
				t.Fatal(err)
			}
			if plain, err = io.ReadAll(zr); err != nil {
				t.Fatal(err)
			}
		}
		return encoding, plain
	}
	me := "/" + flockv1connect.UserServiceGetMeProcedure[1:]
	if enc, body := get(http.MethodPost, me, "{}"); enc != "" || len(body) >= 1024 {
		t.Errorf("Connect GetMe: Content-Encoding %q for %d bytes, want none under 1 KiB", enc, len(body))
	}
	if enc, body := get(http.MethodGet, "/api/users", ""); enc != "" || len(body) >= 1024 {
		t.Errorf("REST GetMe: Content-Encoding %q for %d bytes, want none under 1 KiB", enc, len(body))
	}
	list := "/" + flockv1connect.UserServiceListUserPostsProcedure[1:]
	if enc, body := get(http.MethodPost, list, `{"userId":"`+ada.ID+`","pageSize":12}`); enc != "gzip" || len(body) < 1024 {
		t.Errorf("Connect ListUserPosts: Content-Encoding %q for %d bytes, want gzip over 1 KiB", enc, len(body))
	}
	if enc, body := get(http.MethodGet, "/api/users/"+ada.ID+"/posts?pageSize=12", ""); enc != "gzip" || len(body) < 1024 {
		t.Errorf("REST ListUserPosts: Content-Encoding %q for %d bytes, want gzip over 1 KiB", enc, len(body))
	}
}
