package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	flockv1 "github.com/flock-social/flock/gen/go/flock/v1"
	"github.com/flock-social/flock/gen/go/flock/v1/flockv1connect"
	tu "github.com/flock-social/flock/internal/testutil"
)

// `flock --help` lists every setting of the contract, flag and variable.
func TestHelp_ListsEverySetting(t *testing.T) {
	var out bytes.Buffer
	err := run(t.Context(), []string{"--help"}, &out, &out)
	if err != flag.ErrHelp {
		t.Fatalf("--help: %v", err)
	}
	for _, env := range []string{"FLOCK_ADDR", "FLOCK_DATA_DIR", "FLOCK_DATABASE_URL", "FLOCK_REDIS_URL", "FLOCK_PUBLIC_URL",
		"FLOCK_MAILER", "FLOCK_JWT_SECRET", "FLOCK_CORS_ORIGINS", "FLOCK_RATE_LIMITS", "FLOCK_TRUSTED_PROXIES",
		"FLOCK_ACCESS_TOKEN_TTL", "FLOCK_BODY_IDLE_TIMEOUT", "FLOCK_BODY_MIN_RATE",
		"FLOCK_MAX_STREAMS_PER_USER", "FLOCK_MAX_STREAMS", "FLOCK_TIMELINE_BIG_AUTHOR", "FLOCK_TIMELINE_WORKERS", "FLOCK_JOB_WORKERS",
		"FLOCK_MAX_ACTIVE_REQUESTS"} {
		if !strings.Contains(out.String(), env) {
			t.Errorf("--help does not mention %s:\n%s", env, out.String())
		}
	}
}

func TestMigrateThenPromote(t *testing.T) {
	for _, engine := range tu.Engines(t) {
		t.Run(engine, func(t *testing.T) {
			dir := t.TempDir()
			args := []string{"--data-dir", dir, "--database-url", tu.MustDatabaseURL(t, engine), "--mailer", "file:" + filepath.Join(dir, "mail")}
			var out bytes.Buffer
			if err := run(t.Context(), append(args, "migrate"), &out, &out); err != nil || !strings.Contains(out.String(), "applied") {
				t.Fatalf("migrate: %v\n%s", err, out.String())
			}
			out.Reset()
			if err := run(t.Context(), append(args, "migrate"), &out, &out); err != nil || !strings.Contains(out.String(), "up to date") {
				t.Fatalf("second migrate: %v\n%s", err, out.String())
			}
			err := run(t.Context(), append(args, "user", "promote", "nobody"), &out, &out)
			if err == nil || !strings.Contains(err.Error(), "nobody") {
				t.Fatalf("promote unknown user = %v", err)
			}

			s := tu.MustServer(t, engine)
			mod := s.MustAccount(t, "Moderator")
			out.Reset()
			args = []string{"--data-dir", s.Config.DataDir, "--database-url", s.Config.DatabaseURL, "--jwt-secret", s.Config.JWTSecret}
			if err := run(t.Context(), append(args, "user", "promote", "moderator"), &out, &out); err != nil || !strings.Contains(out.String(), "now staff") {
				t.Fatalf("promote: %v\n%s", err, out.String())
			}
			me := tu.MustCall[flockv1.GetMeResponse](t, s, tu.Connect, flockv1connect.UserServiceGetMeProcedure, mod.AccessToken, &flockv1.GetMeRequest{})
			if me.GetUser().GetRole() != flockv1.UserRole_USER_ROLE_STAFF {
				t.Fatalf("role after promote = %v", me.GetUser().GetRole())
			}
		})
	}
}

func TestProduction_RefusesToStartWithoutJWTSecret(t *testing.T) {
	var out bytes.Buffer
	err := run(t.Context(), []string{"--env", "production", "--data-dir", t.TempDir()}, &out, &out)
	if err == nil || !strings.Contains(err.Error(), "FLOCK_JWT_SECRET") {
		t.Fatalf("production without a secret = %v", err)
	}
	err = run(t.Context(), []string{"--env", "production", "--jwt-secret", "short", "--data-dir", t.TempDir()}, &out, &out)
	if err == nil || !strings.Contains(err.Error(), "32") {
		t.Fatalf("production with a short secret = %v", err)
	}
}

func TestBadSettings_SayWhatIsAccepted(t *testing.T) {
	for args, want := range map[string]string{
		"--rate-limits=maybe":                  "on or off",
		"--env=staging":                        "development or production",
		"--database-url=mysql://x":             "postgres://",
		"--mailer=carrier-pigeon":              "log",
		"--log-level=loud":                     "debug, info",
		"--redis-url=memcached://127.0.0.1:11": "redis://",
		"--trusted-proxies=10.0.0.0/33":        `FLOCK_TRUSTED_PROXIES: want comma-separated CIDRs like 10.0.0.0/8,fd00::/8 or single IPs: "10.0.0.0/33" is not a CIDR prefix`,
		"--trusted-proxies=10.0.0.0/8,nginx":   `"nginx" is neither an IP address nor a CIDR prefix`,
		"--body-min-rate=0":                    "FLOCK_BODY_MIN_RATE: want a number of bytes per second >= 1, or -1",
		"--max-streams-per-user=-1":            "FLOCK_MAX_STREAMS_PER_USER: want a whole number >= 0 (0 for no cap)",
		"--max-streams=2.5":                    "FLOCK_MAX_STREAMS: want a whole number >= 0",
		"--max-active-requests=-3":             "FLOCK_MAX_ACTIVE_REQUESTS: want auto, a whole number >= 1, or 0 for no limit",
		"--max-active-requests=lots":           `FLOCK_MAX_ACTIVE_REQUESTS: want auto, a whole number >= 1, or 0 for no limit, got "lots"`,
	} {
		var out bytes.Buffer
		err := run(t.Context(), []string{args, "--data-dir", t.TempDir()}, &out, &out)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v does not mention %q", args, err, want)
		}
	}
}

// FLOCK_TRUSTED_PROXIES takes CIDRs and plain addresses (one-address prefixes).
func TestTrustedProxies_CIDRsAndPlainIPs(t *testing.T) {
	t.Setenv("FLOCK_TRUSTED_PROXIES", " 10.0.0.0/8, 127.0.0.1 ,::1,")
	s, _, err := parse(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(s.TrustedProxies); got != "[10.0.0.0/8 127.0.0.1/32 ::1/128]" {
		t.Errorf("TrustedProxies = %s", got)
	}
}

// FLOCK_REFRESH_REUSE_GRACE defaults to 30 s; 0 turns the grace off
// (negative in server.Config, where 0 means the default).
func TestRefreshReuseGrace_DefaultAndOff_P8(t *testing.T) {
	for _, c := range []struct {
		env  string
		want time.Duration
	}{{"", 30 * time.Second}, {"0", -1}, {"5s", 5 * time.Second}} {
		env, want := c.env, c.want
		if env != "" {
			t.Setenv("FLOCK_REFRESH_REUSE_GRACE", env)
		}
		s, _, err := parse(nil, io.Discard)
		if err != nil {
			t.Fatalf("FLOCK_REFRESH_REUSE_GRACE=%q: %v", env, err)
		}
		if s.RefreshReuseGrace != want {
			t.Errorf("FLOCK_REFRESH_REUSE_GRACE=%q: RefreshReuseGrace = %s, want %s", env, s.RefreshReuseGrace, want)
		}
	}
	_, _, err := parse([]string{"--refresh-reuse-grace=-1s"}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "FLOCK_REFRESH_REUSE_GRACE: want a duration like 30s, or 0 for none") {
		t.Errorf("a negative grace: error %v", err)
	}
}

// `flock` with no subcommand serves, and SIGTERM (here: ctx) drains and exits.
func TestServe_ServesThenShutsDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	var out bytes.Buffer
	go func() {
		done <- run(ctx, []string{"--addr", addr, "--data-dir", t.TempDir(), "--log-level", "warn"}, &out, &out)
	}()
	var res *http.Response
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if res, err = http.Get("http://" + addr + "/readyz"); err == nil {
			break
		}
	}
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("readyz: %v %v", res, err)
	}
	res.Body.Close()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve returned %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop after its context ended")
	}
}

// P24: the stream caps default to 20 per account and 10,000 per instance;
// 0 turns a cap off (no cap reaches server.Config as a negative number,
// since 0 there means the default).
func TestStreamCaps_DefaultsAndZeroMeansNone_P24(t *testing.T) {
	for _, tc := range []struct {
		args                 []string
		perUser, perInstance int
	}{
		{nil, 20, 10000},
		{[]string{"--max-streams-per-user=5", "--max-streams=100"}, 5, 100},
		{[]string{"--max-streams-per-user=0", "--max-streams=0"}, -1, -1},
	} {
		s, _, err := parse(tc.args, io.Discard)
		if err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		if s.MaxStreamsPerUser != tc.perUser || s.MaxStreams != tc.perInstance {
			t.Errorf("%v: MaxStreamsPerUser %d, MaxStreams %d; want %d, %d", tc.args, s.MaxStreamsPerUser, s.MaxStreams, tc.perUser, tc.perInstance)
		}
	}
}

func TestMaxActiveRequests_AutoNumberAndZeroMeansNone(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want int
	}{
		{nil, 0}, // server.Config's 0: DefaultMaxActiveRequests
		{[]string{"--max-active-requests=auto"}, 0},
		{[]string{"--max-active-requests=12"}, 12},
		{[]string{"--max-active-requests=0"}, -1},
	} {
		s, _, err := parse(tc.args, io.Discard)
		if err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		if s.MaxActiveRequests != tc.want {
			t.Errorf("%v: MaxActiveRequests %d, want %d", tc.args, s.MaxActiveRequests, tc.want)
		}
	}
}

// Without GOGC in the environment Flock collects at 200; with it, the
// environment's value (already applied by the runtime) stays.
func TestGOGC_DefaultsTo200UnlessSet(t *testing.T) {
	prev := debug.SetGCPercent(100)
	defer debug.SetGCPercent(prev)
	unset := func(string) (string, bool) { return "", false }
	if !applyDefaultGOGC(unset) {
		t.Fatal("GOGC unset: the default was not applied")
	}
	if got := debug.SetGCPercent(100); got != defaultGOGC {
		t.Fatalf("GOGC unset: collecting at %d, want %d", got, defaultGOGC)
	}
	set := func(k string) (string, bool) { return "100", k == "GOGC" }
	if applyDefaultGOGC(set) {
		t.Fatal("GOGC=100 in the environment was overridden")
	}
	if got := debug.SetGCPercent(100); got != 100 {
		t.Fatalf("GOGC=100: collecting at %d", got)
	}
}

// An instance whose Redis is unreachable at start-up says so and exits with
// an error (systemd and Kubernetes restart it until Redis answers): it
// panicked closing a broker that was never opened.
func TestUnreachableRedis_StartupFailsWithAClearError(t *testing.T) {
	var out bytes.Buffer
	err := run(t.Context(), []string{"--redis-url=redis://127.0.0.1:1/0", "--data-dir", t.TempDir()}, &out, &out)
	if err == nil || !strings.Contains(err.Error(), "FLOCK_REDIS_URL") || !strings.Contains(err.Error(), "127.0.0.1:1") || !strings.Contains(err.Error(), "needs Redis to start") {
		t.Fatalf("start-up with Redis unreachable = %v, want an error naming FLOCK_REDIS_URL, the address and what to do", err)
	}
}
