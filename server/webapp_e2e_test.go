package server_test

import (
	"context"
	"encoding/json"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/flock-social/flock/internal/notify"
	"github.com/flock-social/flock/internal/store"
	tu "github.com/flock-social/flock/internal/testutil"
	"github.com/flock-social/flock/server"
)

// webAccessTTL is the access-token lifetime of the server that the two-tab
// scenario runs against: short enough to expire mid-test.
const webAccessTTL = 2 * time.Second

var webTokenInLink = regexp.MustCompile(`/verify-email\?token=([A-Za-z0-9_-]+)`)

// The web app in Chromium (client/web/e2e/run.mjs, playwright-core driving
// the system's chromium): a user signs up, verifies by the emailed link and
// posts with a hashtag; a second user follows and likes and the first sees
// the notifications arrive without reloading; a video uploads with progress
// and plays; a private group's post stays invisible to a non-member; two
// tabs refresh at once and both stay signed in. It also measures a cold
// home-feed load (JS+CSS bytes transferred, time to the first feed render,
// requests to other origins) and takes the screenshots of docs/web.md
// (written to docs/web/ when FLOCK_UPDATE_SCREENSHOTS=1). Needs node,
// client/web/node_modules (npm ci) and chromium; skipped without them,
// except under CI=true.
func TestWebAppChromium(t *testing.T) {
	t.Parallel()
	need := func(what string) {
		t.Helper()
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s (required under CI=true)", what)
		}
		t.Skip(what)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		need("needs node (Node 20.19+)")
	}
	dir := filepath.Join("..", "client", "web")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "playwright-core")); err != nil {
		need("needs client/web/node_modules: run npm ci --prefix client/web")
	}
	browser := os.Getenv("CHROMIUM")
	if browser == "" {
		for _, name := range []string{"chromium", "chromium-browser"} {
			if p, err := exec.LookPath(name); err == nil {
				browser = p
				break
			}
		}
	}
	if browser == "" {
		need("needs chromium: apt-get install -y chromium")
	}

	env := []string{"CHROMIUM=" + browser}
	mainConfig := []func(*server.Config){}
	if _, err := exec.LookPath("ffmpeg"); err == nil || os.Getenv("CI") == "true" {
		file := filepath.Join(t.TempDir(), "clip.mp4")
		if err := os.WriteFile(file, mp4Fixture(t, "320x240", 24, 3), 0o600); err != nil {
			t.Fatal(err)
		}
		env = append(env, "FLOCK_VIDEO="+file)
		mainConfig = append(mainConfig, processing)
	}
	s := tu.MustServer(t, "sqlite", mainConfig...)
	short := tu.MustServer(t, "sqlite", func(c *server.Config) { c.AccessTTL = webAccessTTL })

	accounts := map[string]tsAccount{}
	for srv, names := range map[*tu.Server][]string{s: {"bob", "carol"}, short: {"dave"}} {
		for _, name := range names {
			a := srv.MustAccount(t, name)
			accounts[name] = tsAccount{ID: a.ID, Username: a.Username, Email: a.Email, Password: a.Password}
		}
	}
	// erin has 1,001 unread notifications: past the server's count of 1000,
	// which the badge shows as "999+".
	erin := s.MustAccount(t, "erin")
	accounts["erin"] = tsAccount{ID: erin.ID, Username: erin.Username, Email: erin.Email, Password: erin.Password}
	db := s.App.DB()
	err = db.InTx(t.Context(), func(ctx context.Context, tx bun.Tx) error {
		for range store.MaxUnreadCount + 1 {
			if _, err := db.CreateNotification(ctx, tx, &store.Notification{UserID: erin.ID, Type: notify.TypeFollow, ActorID: accounts["bob"].ID}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	accountsJSON, err := json.Marshal(accounts)
	if err != nil {
		t.Fatal(err)
	}

	// The browser cannot read the file mailer: the script asks here for the
	// token of the newest verification email to an address (404 until it is sent).
	control := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		bodies := s.Emails(t, r.URL.Query().Get("email"))
		if len(bodies) > 0 {
			if m := webTokenInLink.FindStringSubmatch(bodies[len(bodies)-1]); m != nil {
				_, _ = w.Write([]byte(m[1]))
				return
			}
		}
		http.NotFound(w, r)
	}))
	t.Cleanup(control.Close)

	shots := t.TempDir()
	env = append(env,
		"FLOCK_URL="+s.URL,
		"FLOCK_SHORT_URL="+short.URL,
		"FLOCK_CONTROL="+control.URL,
		"FLOCK_ACCESS_TTL_MS="+strconv.FormatInt(webAccessTTL.Milliseconds(), 10),
		"FLOCK_ACCOUNTS="+string(accountsJSON),
		"FLOCK_SHOTS="+shots,
	)
	cmd := exec.Command(node, filepath.Join("e2e", "run.mjs"))
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	t.Logf("client/web/e2e/run.mjs:\n%s", out)
	if err != nil {
		t.Fatalf("the Chromium scenarios failed: %v", err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if rest, ok := strings.CutPrefix(line, "FIGURES "); ok {
			var f struct {
				JSCSSBytes        int     `json:"jsCssBytes"`
				FirstFeedRenderMs int     `json:"firstFeedRenderMs"`
				OtherOrigins      int     `json:"otherOrigins"`
				Seconds           float64 `json:"seconds"`
			}
			if err := json.Unmarshal([]byte(rest), &f); err != nil {
				t.Fatalf("figures %q: %v", rest, err)
			}
			// Printed even without -v: the Lighthouse-style figures of docs/web.md.
			os.Stdout.WriteString("TestWebAppChromium: cold home feed: JS+CSS " + strconv.Itoa(f.JSCSSBytes) + " bytes transferred (gzip), first feed render " +
				strconv.Itoa(f.FirstFeedRenderMs) + " ms, requests to other origins " + strconv.Itoa(f.OtherOrigins) + "; scenarios " + strconv.FormatFloat(f.Seconds, 'f', 1, 64) + " s\n")
			if f.JSCSSBytes > 200<<10 || f.OtherOrigins != 0 {
				t.Errorf("cold home feed: %+v (budget: 200 KB of JS+CSS, no other origin)", f)
			}
		}
	}
	if os.Getenv("FLOCK_UPDATE_SCREENSHOTS") == "1" {
		docs := filepath.Join("..", "docs", "web")
		if err := os.MkdirAll(docs, 0o755); err != nil {
			t.Fatal(err)
		}
		err := filepath.WalkDir(shots, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(docs, d.Name()), b, 0o644)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}
