package ratelimit_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/flock-social/flock"
	"github.com/flock-social/flock/internal/ratelimit"
)

// MustCheck calls ratelimit.Check and fails the test on error.
func MustCheck(tb testing.TB, l ratelimit.Limiter, action, account, ip string) ratelimit.Result {
	tb.Helper()
	res, err := ratelimit.Check(context.Background(), l, action, account, ip)
	if err != nil {
		tb.Fatalf("Check(%q, %q, %q): %v", action, account, ip, err)
	}
	return res
}

func TestCheck(t *testing.T) {
	t.Parallel()
	login := ratelimit.Rules["login"]

	t.Run("exhausted IP denies an account with budget", func(t *testing.T) {
		t.Parallel()
		l := ratelimit.NewMemory(newClock().Now)
		for i := range login.PerIP.Burst {
			if res := MustCheck(t, l, "login", fmt.Sprintf("user%d@example.com", i), "203.0.113.7:4000"); !res.Allowed {
				t.Fatalf("login %d: got %+v, want allowed", i+1, res)
			}
		}
		res := MustCheck(t, l, "login", "fresh@example.com", "203.0.113.7:4001")
		if res.Allowed || res.RetryAfter <= 0 || res.Limit != login.PerIP {
			t.Errorf("fresh account from an exhausted IP: got %+v, want denied by the per-IP limit", res)
		}
	})

	t.Run("exhausted account is denied from a fresh IP", func(t *testing.T) {
		t.Parallel()
		l := ratelimit.NewMemory(newClock().Now)
		for i := range login.PerAccount.Burst {
			if res := MustCheck(t, l, "login", "alice@example.com", fmt.Sprintf("198.51.100.%d", i)); !res.Allowed {
				t.Fatalf("login %d: got %+v, want allowed", i+1, res)
			}
		}
		res := MustCheck(t, l, "login", "alice@example.com", "192.0.2.1")
		if res.Allowed || res.RetryAfter <= 0 || res.Limit != login.PerAccount {
			t.Errorf("exhausted account from a fresh IP: got %+v, want denied by the per-account limit", res)
		}
	})

	t.Run("longest retry wins when both deny", func(t *testing.T) {
		t.Parallel()
		l := ratelimit.NewMemory(newClock().Now)
		for range login.PerIP.Burst {
			MustCheck(t, l, "login", "bob@example.com", "192.0.2.9")
		}
		res := MustCheck(t, l, "login", "bob@example.com", "192.0.2.9")
		// Denied requests are not counted, so each waits for one interval:
		// the account's is the longer (12s against 6s).
		want := login.PerAccount.Period / time.Duration(login.PerAccount.Rate)
		if res.Allowed || res.RetryAfter != want || res.Limit != login.PerAccount {
			t.Errorf("both exhausted: got %+v, want denied for %v by the per-account limit", res, want)
		}
	})

	t.Run("fewest remaining wins when both allow", func(t *testing.T) {
		t.Parallel()
		res := MustCheck(t, ratelimit.NewMemory(newClock().Now), "login", "carol@example.com", "192.0.2.2")
		if !res.Allowed || res.Remaining != login.PerAccount.Burst-1 || res.Limit != login.PerAccount {
			t.Errorf("first login: got %+v, want allowed with %d remaining", res, login.PerAccount.Burst-1)
		}
	})

	t.Run("anonymous caller is limited per IP only", func(t *testing.T) {
		t.Parallel()
		res := MustCheck(t, ratelimit.NewMemory(newClock().Now), "login", "", "192.0.2.3")
		if !res.Allowed || res.Limit != login.PerIP || res.Remaining != login.PerIP.Burst-1 {
			t.Errorf("anonymous login: got %+v, want allowed by the per-IP limit", res)
		}
	})

	t.Run("one IPv6 /64 shares a budget", func(t *testing.T) {
		t.Parallel()
		l := ratelimit.NewMemory(newClock().Now)
		reg := ratelimit.Rules["register"]
		for i := range reg.PerIP.Burst {
			MustCheck(t, l, "register", "", fmt.Sprintf("[2001:db8:1:2::%x]:443", i+1))
		}
		if res := MustCheck(t, l, "register", "", "2001:db8:1:2:ffff::1"); res.Allowed {
			t.Errorf("register from the same /64: got %+v, want denied", res)
		}
		if res := MustCheck(t, l, "register", "", "2001:db8:1:3::1"); !res.Allowed {
			t.Errorf("register from the next /64: got %+v, want allowed", res)
		}
	})

	t.Run("unknown action is an error", func(t *testing.T) {
		t.Parallel()
		if _, err := ratelimit.Check(context.Background(), ratelimit.NewMemory(nil), "dance", "", "192.0.2.4"); err == nil {
			t.Error("Check with an unknown action: want an error")
		}
	})

	t.Run("backend error is wrapped", func(t *testing.T) {
		t.Parallel()
		boom := errors.New("boom")
		_, err := ratelimit.Check(context.Background(), failing{boom}, "post", "acct1", "192.0.2.5")
		if !errors.Is(err, boom) {
			t.Errorf("Check on a failing limiter: err = %v, want one wrapping %v", err, boom)
		}
	})
}

// failing is a Limiter whose every check fails with err.
type failing struct{ err error }

func (f failing) Allow(context.Context, string, ratelimit.Limit) (ratelimit.Result, error) {
	return ratelimit.Result{}, f.err
}
func (f failing) Close() error { return nil }

func TestRules(t *testing.T) {
	t.Parallel()
	for _, action := range []string{"login", "register", "resend_verification", "refresh", "post", "comment", "upload", "search", "avatar", "password", "change_email", "password_reset", "password_reset_confirm", "export"} {
		rule, ok := ratelimit.Rules[action]
		if !ok {
			t.Errorf("Rules has no %q", action)
			continue
		}
		if rule.Action != action {
			t.Errorf("Rules[%q].Action = %q", action, rule.Action)
		}
		if rule.PerIP == (ratelimit.Limit{}) {
			t.Errorf("Rules[%q] has no per-IP limit", action)
		}
		// Every non-zero limit must be one the backends accept.
		l := ratelimit.NewMemory(newClock().Now)
		if _, err := ratelimit.Check(context.Background(), l, action, "acct", "192.0.2.6"); err != nil {
			t.Errorf("Rules[%q]: %v", action, err)
		}
	}
}

func TestResultHeaders(t *testing.T) {
	t.Parallel()
	lim := ratelimit.Limit{Rate: 10, Period: time.Minute, Burst: 10}
	tests := []struct {
		name string
		res  ratelimit.Result
		want http.Header
	}{
		{
			name: "allowed has no Retry-After",
			res:  ratelimit.Result{Allowed: true, Limit: lim, Remaining: 7, ResetAfter: 18 * time.Second},
			want: http.Header{"Ratelimit-Limit": {"10"}, "Ratelimit-Remaining": {"7"}, "Ratelimit-Reset": {"18"}},
		},
		{
			name: "denied rounds Retry-After up",
			res:  ratelimit.Result{Limit: lim, RetryAfter: 1500 * time.Millisecond, ResetAfter: 59200 * time.Millisecond},
			want: http.Header{"Ratelimit-Limit": {"10"}, "Ratelimit-Remaining": {"0"}, "Ratelimit-Reset": {"60"}, "Retry-After": {"2"}},
		},
		{
			name: "denied Retry-After is at least 1",
			res:  ratelimit.Result{Limit: lim, RetryAfter: time.Millisecond, ResetAfter: time.Millisecond},
			want: http.Header{"Ratelimit-Limit": {"10"}, "Ratelimit-Remaining": {"0"}, "Ratelimit-Reset": {"1"}, "Retry-After": {"1"}},
		},
		{
			name: "no limit applied gives no headers",
			res:  ratelimit.Result{Allowed: true},
			want: http.Header{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := tt.res.Headers(); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Headers() = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestResultErr(t *testing.T) {
	t.Parallel()
	if err := (ratelimit.Result{Allowed: true}).Err(); err != nil {
		t.Errorf("allowed Err() = %v, want nil", err)
	}
	err := ratelimit.Result{RetryAfter: 2500 * time.Millisecond}.Err()
	if flock.ErrorCode(err) != flock.ERATELIMIT {
		t.Errorf("denied Err() = %v, want code %s", err, flock.ERATELIMIT)
	}
	// The message is one plain sentence: what was limited, when to come back.
	tests := []struct {
		action string
		retry  time.Duration
		want   string
	}{
		{"", 2500 * time.Millisecond, "too many requests; try again in 3 seconds"},
		{"login", 11*time.Second + time.Millisecond, "too many login attempts; try again in 12 seconds"},
		{"login", time.Millisecond, "too many login attempts; try again in 1 second"},
		{"login", 0, "too many login attempts; try again in 1 second"},
		{"register", 11*time.Minute + 30*time.Second, "too many registrations; try again in 12 minutes"},
		{"register", time.Minute, "too many registrations; try again in 1 minute"},
		{"avatar", 119 * time.Minute, "too many profile picture changes; try again in 119 minutes"},
		{"upload", 2*time.Hour + time.Second, "too many video uploads; try again in 3 hours"},
		{"no such action", time.Second, "too many requests; try again in 1 second"},
	}
	for _, tt := range tests {
		err := ratelimit.Result{Action: tt.action, RetryAfter: tt.retry}.Err()
		if msg := flock.ErrorMessage(err); msg != tt.want {
			t.Errorf("message for %q after %v = %q, want %q", tt.action, tt.retry, msg, tt.want)
		}
	}
}

// Check names the action it counted, so that the refusal says what was limited.
func TestCheck_RefusalNamesTheAction(t *testing.T) {
	t.Parallel()
	l := ratelimit.NewMemory(newClock().Now)
	var res ratelimit.Result
	for range ratelimit.Rules["login"].PerAccount.Burst + 1 {
		res = MustCheck(t, l, "login", "dave", "192.0.2.10")
	}
	if res.Allowed || res.Action != "login" {
		t.Fatalf("sixth login: got %+v, want denied for action login", res)
	}
	if msg := flock.ErrorMessage(res.Err()); !strings.HasPrefix(msg, "too many login attempts; try again in ") {
		t.Errorf("message = %q", msg)
	}
}

// CheckAll gives each account a request names its own budget: a
// registration is refused once its username or its email is used up, and
// naming one account twice counts it once.
func TestCheckAll_EachNamedAccountHasABudget(t *testing.T) {
	t.Parallel()
	reg := ratelimit.Rules["register"]
	l := ratelimit.NewMemory(newClock().Now)
	check := func(accounts []string, ip string) ratelimit.Result {
		t.Helper()
		res, err := ratelimit.CheckAll(context.Background(), l, "register", accounts, ip)
		if err != nil {
			t.Fatalf("CheckAll(%v, %q): %v", accounts, ip, err)
		}
		return res
	}
	for i := range reg.PerAccount.Burst {
		res := check([]string{"eve", "eve@example.com", "eve"}, fmt.Sprintf("198.51.100.%d", i))
		if !res.Allowed || res.Remaining != reg.PerAccount.Burst-1-i {
			t.Fatalf("registration %d: got %+v, want allowed with %d remaining", i+1, res, reg.PerAccount.Burst-1-i)
		}
	}
	if res := check([]string{"other", "eve@example.com"}, "192.0.2.20"); res.Allowed || res.Limit != reg.PerAccount {
		t.Errorf("fresh username, used-up email: got %+v, want denied per account", res)
	}
	if res := check([]string{"eve", "fresh@example.com"}, "192.0.2.21"); res.Allowed {
		t.Errorf("used-up username, fresh email: got %+v, want denied", res)
	}
	if res := check([]string{"", "fresh@example.com"}, "192.0.2.22"); !res.Allowed {
		t.Errorf("fresh email, no username: got %+v, want allowed", res)
	}
}
