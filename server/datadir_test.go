package server_test

import (
	"image/color"
	"os"
	"path/filepath"
	"strings"
	"testing"

	flockv1 "github.com/flock-social/flock/gen/go/flock/v1"
	"github.com/flock-social/flock/gen/go/flock/v1/flockv1connect"
	"github.com/flock-social/flock/internal/store"
	tu "github.com/flock-social/flock/internal/testutil"
	"github.com/flock-social/flock/server"
)

// A data directory is a path, not a URL: the characters a URL gives a
// meaning to ("#", "?", "%", a space) stay part of its name, both for the
// default SQLite file and for the media kept beside it.
func TestServer_DataDirWithURLCharacters(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "flock #2 ?x=1 %41")
	s := tu.MustServer(t, store.SQLite, func(c *server.Config) { c.DataDir, c.DatabaseURL = dir, "" })
	a := api{t: t, s: s, tr: tu.Connect}
	ada := s.MustAccount(t, "ada_dir")
	me := must[flockv1.UpdateMeResponse](a, flockv1connect.UserServiceUpdateMeProcedure, ada.AccessToken,
		&flockv1.UpdateMeRequest{Avatar: pngAvatar(t, color.RGBA{10, 200, 10, 255})}).GetUser()

	if _, err := os.Stat(filepath.Join(dir, "flock.db")); err != nil {
		t.Errorf("the database is not in the data directory: %v", err)
	}
	// fileblob keeps each file's attributes in a ".attrs" file beside it.
	entries, err := os.ReadDir(filepath.Join(dir, "media", "avatars", ada.ID))
	var avatars []string
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".attrs") {
			avatars = append(avatars, e.Name())
		}
	}
	if err != nil || len(avatars) != 1 {
		t.Errorf("avatars in the data directory = %v, %v; want the one uploaded", avatars, err)
	}
	res, err := s.HTTP.Get(me.GetAvatarUrl())
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Errorf("GET %s = %d, want 200", me.GetAvatarUrl(), res.StatusCode)
	}
}
