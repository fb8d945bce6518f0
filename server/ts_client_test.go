package server_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	tu "github.com/flock-social/flock/internal/testutil"
	"github.com/flock-social/flock/server"
)

// The TypeScript client's upload helpers (client/ts), run by Node's test
// runner against a live server: the same multipart upload a browser makes.
func TestTSClient_UploadHelpers(t *testing.T) {
	t.Parallel()
	node, err := exec.LookPath("node")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("node is not installed")
		}
		t.Skip("needs Node 20+")
	}
	mp4 := mp4Fixture(t, "160x120", 10, 1)
	file := filepath.Join(t.TempDir(), "clip.mp4")
	if err := os.WriteFile(file, mp4, 0o600); err != nil {
		t.Fatal(err)
	}
	const limit = 256 << 10
	s := tu.MustServer(t, "sqlite", processing, func(c *server.Config) { c.Video.MaxBytes = limit })
	alice := s.MustAccount(t, "alice")
	cmd := exec.CommandContext(t.Context(), node, "--test", "test/")
	cmd.Dir = filepath.Join("..", "client", "ts")
	cmd.Env = append(os.Environ(), "FLOCK_URL="+s.URL, "FLOCK_TOKEN="+alice.AccessToken, "FLOCK_VIDEO="+file,
		"FLOCK_MAX_BYTES="+strconv.Itoa(limit))
	out, err := cmd.CombinedOutput()
	t.Logf("node --test:\n%s", out)
	if err != nil {
		t.Fatalf("node --test: %v", err)
	}
}
