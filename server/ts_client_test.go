package server_test

import (
	"encoding/json"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	tu "github.com/flock-social/flock/internal/testutil"
	"github.com/flock-social/flock/server"
)

// tsAccessTTL is the access-token lifetime of the server that the
// TypeScript refresh tests run against: short enough to expire mid-test.
const tsAccessTTL = 2 * time.Second

// The TypeScript SDK (client/ts), run by Node's test runner against live
// servers: login, automatic and single-flight token refresh, resumable
// notification and activity streams, video upload, error mapping. The
// tests are client/ts/test/*.test.mjs; they import the built package
// (client/ts/dist), so this test first makes sure it is built from the
// current sources.
func TestTSClient(t *testing.T) {
	t.Parallel()
	node, err := exec.LookPath("node")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("node is not installed")
		}
		t.Skip("needs Node 20+")
	}
	dir := filepath.Join("..", "client", "ts")
	mustBuiltSDK(t, dir)

	env := []string{}
	const limit = 256 << 10
	mainConfig := []func(*server.Config){func(c *server.Config) { c.Video.MaxBytes = limit }}
	if _, err := exec.LookPath("ffmpeg"); err == nil || os.Getenv("CI") == "true" {
		// Without ffmpeg (outside CI) the video tests skip themselves.
		file := filepath.Join(t.TempDir(), "clip.mp4")
		if err := os.WriteFile(file, mp4Fixture(t, "160x120", 10, 1), 0o600); err != nil {
			t.Fatal(err)
		}
		env = append(env, "FLOCK_VIDEO="+file)
		mainConfig = append(mainConfig, processing)
	}
	s := tu.MustServer(t, "sqlite", mainConfig...)
	// The short server has no refresh reuse grace, so that presenting a
	// rotated refresh token revokes the session at once; the main one has
	// the default grace (30 s) that tabs refreshing at once rely on.
	short := tu.MustServer(t, "sqlite", func(c *server.Config) { c.AccessTTL = tsAccessTTL; c.RefreshReuseGrace = -1 })

	// Each test file has accounts of its own, so that files running at
	// once see only their own notifications.
	accounts := map[string]tsAccount{}
	for srv, names := range map[*tu.Server][]string{
		s:     {"vic", "alice", "bob", "sam", "tom", "uma", "ivy", "tabby", "tilda", "ada"},
		short: {"dave", "erin"},
	} {
		for _, name := range names {
			a := srv.MustAccount(t, name)
			accounts[name] = tsAccount{ID: a.ID, Username: a.Username, Email: a.Email, Password: a.Password,
				AccessToken: a.AccessToken, RefreshToken: a.RefreshToken}
		}
	}
	accountsJSON, err := json.Marshal(accounts)
	if err != nil {
		t.Fatal(err)
	}
	env = append(env,
		"FLOCK_URL="+s.URL,
		"FLOCK_SHORT_URL="+short.URL,
		"FLOCK_ACCESS_TTL_MS="+strconv.FormatInt(tsAccessTTL.Milliseconds(), 10),
		"FLOCK_ACCOUNTS="+string(accountsJSON),
		"FLOCK_TOKEN="+accounts["vic"].AccessToken,
		"FLOCK_MAX_BYTES="+strconv.Itoa(limit),
	)

	cmd := exec.CommandContext(t.Context(), node, "--test", "test/")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	t.Logf("node --test:\n%s", out)
	if err != nil {
		t.Fatalf("node --test: %v", err)
	}
}

// tsAccount is a tu.Account as the TypeScript tests read it from
// FLOCK_ACCOUNTS.
type tsAccount struct {
	ID           string `json:"id"`
	Username     string `json:"username"`
	Email        string `json:"email"`
	Password     string `json:"password"`
	AccessToken  string `json:"accessToken"`
	RefreshToken string `json:"refreshToken"`
}

// mustBuiltSDK makes sure client/ts/dist is built from the current sources
// (client/ts and gen/ts). Under CI=true it installs and builds what is
// missing or stale itself (npm ci, npm run build); elsewhere it skips with
// the command to run, since other test runs may share the work tree.
func mustBuiltSDK(t *testing.T, dir string) {
	t.Helper()
	needInstall, needBuild, why := sdkState(t, dir)
	if !needInstall && !needBuild {
		return
	}
	if os.Getenv("CI") != "true" {
		t.Skipf("the TypeScript SDK is %s: run `cd client/ts && npm ci && npm run build`", why)
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		t.Fatalf("the TypeScript SDK is %s and npm is not installed", why)
	}
	var steps [][]string
	if needInstall {
		steps = append(steps, []string{"ci", "--no-audit", "--no-fund"})
	}
	steps = append(steps, []string{"run", "build"})
	for _, args := range steps {
		cmd := exec.CommandContext(t.Context(), npm, args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("npm %s in client/ts: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// sdkState tells whether client/ts needs `npm ci` (no node_modules, or
// older than package-lock.json) and `npm run build` (no dist, or dist older
// than a source), and why.
func sdkState(t *testing.T, dir string) (needInstall, needBuild bool, why string) {
	t.Helper()
	lock := modTime(t, filepath.Join(dir, "package-lock.json"))
	installed := modTime(t, filepath.Join(dir, "node_modules", ".package-lock.json"))
	if installed.IsZero() {
		return true, true, "not installed (no node_modules)"
	}
	if installed.Before(lock) {
		return true, true, "installed from an older package-lock.json"
	}
	built := modTime(t, filepath.Join(dir, "dist", "index.js"))
	if built.IsZero() {
		return false, true, "not built (no dist)"
	}
	var newest time.Time
	var newestPath string
	for _, root := range []string{
		filepath.Join(dir, "src"), filepath.Join(dir, "scripts"), filepath.Join(dir, "package.json"),
		filepath.Join(dir, "tsconfig.json"), filepath.Join(dir, "..", "..", "gen", "ts"),
	} {
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				if path == filepath.Join(dir, "src", "gen") {
					return filepath.SkipDir // a copy of gen/ts made by the build
				}
				return nil
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			if info.ModTime().After(newest) {
				newest, newestPath = info.ModTime(), path
			}
			return nil
		})
		if err != nil {
			t.Fatalf("look at the SDK's sources: %v", err)
		}
	}
	if newest.After(built) {
		return false, true, "built before " + newestPath + " changed"
	}
	return false, false, ""
}

// modTime is the modification time of path, zero when it does not exist.
func modTime(t *testing.T, path string) time.Time {
	t.Helper()
	info, err := os.Stat(path)
	if os.IsNotExist(err) {
		return time.Time{}
	} else if err != nil {
		t.Fatal(err)
	}
	return info.ModTime()
}
