// Package ratelimit decides whether a request may proceed, per key, with the
// generic cell rate algorithm (GCRA, a token bucket without a refill timer).
// The in-process backend serves a single instance; the Redis backend shares
// every budget between all instances on one Redis. Rules holds the limits
// Flock applies to each action, so the transport only looks them up.
package ratelimit

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/flock-social/flock/internal/clientip"

	"github.com/flock-social/flock"
)

// Limit is a rate: Burst requests at once, refilled at Rate per Period, so
// one request is regained every Period/Rate. The zero Limit means no limit.
type Limit struct {
	Rate   int
	Period time.Duration
	Burst  int
}

// interval returns Period/Rate, the time in which one request is regained,
// or an error if l cannot be enforced.
func (l Limit) interval() (time.Duration, error) {
	if l.Rate <= 0 || l.Burst <= 0 || l.Period < time.Duration(l.Rate) {
		return 0, fmt.Errorf("ratelimit: invalid limit %+v: rate, period and burst must be positive", l)
	}
	return l.Period / time.Duration(l.Rate), nil
}

// Result is the outcome of one check against one Limit.
type Result struct {
	Allowed bool
	// Limit is the limit the result was decided by.
	Limit Limit
	// Remaining is how many more requests would be allowed right now.
	Remaining int
	// RetryAfter is how long until the next request is allowed; 0 when allowed.
	RetryAfter time.Duration
	// ResetAfter is how long until the full burst is available again.
	ResetAfter time.Duration
	// Action is the action of Rules that Check counted, "" for a bare
	// Limiter result; Err names it in its message.
	Action string
}

// Limiter decides whether the request identified by key may proceed now and,
// if so, counts it. Allow returns an error when l is invalid or the backend
// fails; the caller chooses whether to fail open or closed.
type Limiter interface {
	Allow(ctx context.Context, key string, l Limit) (Result, error)
	Close() error
}

// Open returns a Limiter for redisURL: "" gives the in-process limiter for a
// single instance; "redis://..." or "rediss://..." (see redis.ParseURL) gives
// one shared by every instance on that Redis. Open fails if Redis does not
// answer a PING within five seconds. Close releases the Redis client.
func Open(redisURL string) (Limiter, error) {
	if redisURL == "" {
		return NewMemory(time.Now), nil
	}
	if !strings.HasPrefix(redisURL, "redis://") && !strings.HasPrefix(redisURL, "rediss://") {
		scheme, _, _ := strings.Cut(redisURL, ":")
		return nil, fmt.Errorf("ratelimit: unsupported url scheme %q: want redis://, rediss:// or empty for in-process", scheme)
	}
	opt, err := redis.ParseURL(redisURL)
	if err != nil {
		return nil, fmt.Errorf("ratelimit: parse redis url: %w", err)
	}
	client := redis.NewClient(opt)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := client.Ping(ctx).Err(); err != nil {
		_ = client.Close()
		return nil, fmt.Errorf("ratelimit: ping redis %s: %w", opt.Addr, err)
	}
	r := NewRedis(client).(*redisLimiter)
	r.close = client.Close
	return r, nil
}

// Rule limits one action per account (when the caller is known) and per
// client IP. A zero Limit means no limit of that kind.
type Rule struct {
	Action     string
	PerAccount Limit
	PerIP      Limit
	// TooMany is the start of the refusal's message, such as "too many
	// login attempts"; Result.Err adds when to try again.
	TooMany string
}

// Rules maps each rate-limited action, as named by the transport, to its
// Rule. The account of "login", "register", "resend_verification" and
// "password_reset" is the identity the request names (the normalised
// username or email: both, for "register"), whoever is signed in; of the
// others, the account ID of the caller. Read only.
var Rules = map[string]Rule{
	"login":               {Action: "login", PerAccount: perMinute(5), PerIP: perMinute(10), TooMany: "too many login attempts"},
	"register":            {Action: "register", PerAccount: perHour(5), PerIP: perHour(5), TooMany: "too many registrations"},
	"resend_verification": {Action: "resend_verification", PerAccount: perHour(3), PerIP: perHour(5), TooMany: "too many verification emails requested"},
	"refresh":             {Action: "refresh", PerAccount: perMinute(30), PerIP: perMinute(60), TooMany: "too many token refreshes"},
	"post":                {Action: "post", PerAccount: perMinute(30), PerIP: perMinute(60), TooMany: "too many posts"},
	"comment":             {Action: "comment", PerAccount: perMinute(60), PerIP: perMinute(120), TooMany: "too many comments"},
	"upload":              {Action: "upload", PerAccount: perHour(10), PerIP: perHour(30), TooMany: "too many video uploads"},
	"search":              {Action: "search", PerAccount: perMinute(60), PerIP: perMinute(120), TooMany: "too many searches"},
	"avatar":              {Action: "avatar", PerAccount: perHour(10), PerIP: perHour(30), TooMany: "too many profile picture changes"},
	// The actions that check a signed-in caller's password (ChangePassword,
	// DeleteAccount) share one budget, so a stolen access token buys no
	// more guesses at the password than a login does.
	"password":     {Action: "password", PerAccount: perMinute(5), PerIP: perMinute(10), TooMany: "too many password attempts"},
	"change_email": {Action: "change_email", PerAccount: perHour(5), PerIP: perHour(10), TooMany: "too many email changes"},
	// The account of "password_reset" is the email the request names.
	"password_reset":         {Action: "password_reset", PerAccount: perHour(3), PerIP: perHour(10), TooMany: "too many password reset emails requested"},
	"password_reset_confirm": {Action: "password_reset_confirm", PerIP: perMinute(10), TooMany: "too many password reset attempts"},
	// Each export reads the whole account and holds a database connection.
	"export": {Action: "export", PerAccount: perHour(3), PerIP: perHour(10), TooMany: "too many data exports"},
}

func perMinute(n int) Limit { return Limit{Rate: n, Period: time.Minute, Burst: n} }
func perHour(n int) Limit   { return Limit{Rate: n, Period: time.Hour, Burst: n} }

// Check counts one request for action against its Rule: per account under
// key "acct:<action>:<account>" unless account is "", and per IP under key
// "ip:<action>:<clientip.LimitKey(ip)>". It returns the most restrictive
// result: denied if either denies, with the longest RetryAfter, else the
// fewest Remaining.
// Both budgets are counted even when one denies. Returns an error for an
// action missing from Rules or when l fails.
func Check(ctx context.Context, l Limiter, action, account, ip string) (Result, error) {
	var accounts []string
	if account != "" {
		accounts = []string{account}
	}
	return CheckAll(ctx, l, action, accounts, ip)
}

// CheckAll is Check for a request that names several accounts, such as a
// registration (its username and its email): each non-empty one has its own
// per-account budget, and the request is denied if any budget, or the IP's,
// is used up. Duplicates count once.
func CheckAll(ctx context.Context, l Limiter, action string, accounts []string, ip string) (Result, error) {
	rule, ok := Rules[action]
	if !ok {
		return Result{}, fmt.Errorf("ratelimit: check: unknown action %q", action)
	}
	res := Result{Allowed: true, Action: action}
	check := func(key string, lim Limit) error {
		if lim == (Limit{}) {
			return nil
		}
		r, err := l.Allow(ctx, key, lim)
		if err != nil {
			return fmt.Errorf("ratelimit: check %s: %w", action, err)
		}
		if res.Limit == (Limit{}) || stricter(r, res) {
			res = r
			res.Action = action
		}
		return nil
	}
	for i, account := range accounts {
		if account == "" || slices.Contains(accounts[:i], account) {
			continue
		}
		if err := check("acct:"+action+":"+account, rule.PerAccount); err != nil {
			return Result{}, err
		}
	}
	if err := check("ip:"+action+":"+clientip.LimitKey(ip), rule.PerIP); err != nil {
		return Result{}, err
	}
	return res, nil
}

// stricter reports whether a restricts the caller more than b.
func stricter(a, b Result) bool {
	switch {
	case a.Allowed != b.Allowed:
		return !a.Allowed
	case !a.Allowed:
		return a.RetryAfter > b.RetryAfter
	default:
		return a.Remaining < b.Remaining
	}
}

// Headers returns the response headers for r: RateLimit-Limit (the burst),
// RateLimit-Remaining and RateLimit-Reset (seconds until the full burst is
// back, per the IETF RateLimit header draft), and Retry-After in whole
// seconds, rounded up and at least 1, when r is denied. A result that no
// limit applied to gives no headers.
func (r Result) Headers() http.Header {
	h := http.Header{}
	if r.Limit == (Limit{}) {
		return h
	}
	h.Set("RateLimit-Limit", strconv.Itoa(r.Limit.Burst))
	h.Set("RateLimit-Remaining", strconv.Itoa(r.Remaining))
	h.Set("RateLimit-Reset", strconv.FormatInt(ceilSeconds(r.ResetAfter), 10))
	if !r.Allowed {
		h.Set("Retry-After", strconv.FormatInt(max(ceilSeconds(r.RetryAfter), 1), 10))
	}
	return h
}

// Err returns nil when r is allowed, else a resource_exhausted *flock.Error
// whose Message is a plain sentence that says what was limited and when to
// try again, such as "too many login attempts; try again in 12 seconds".
// The transport sends Message alone (never Error(), which adds the code).
func (r Result) Err() error {
	if r.Allowed {
		return nil
	}
	what := "too many requests"
	if rule, ok := Rules[r.Action]; ok && rule.TooMany != "" {
		what = rule.TooMany
	}
	return flock.Errorf(flock.ERATELIMIT, "%s; try again in %s", what, waitText(r.RetryAfter))
}

// waitText says d in words for a person: whole seconds under a minute,
// whole minutes under two hours, else whole hours; always rounded up, and
// never less than one second, so that a client that waits that long is let in.
func waitText(d time.Duration) string {
	s := max(ceilSeconds(d), 1)
	unit := func(n int64, name string) string {
		if n == 1 {
			return "1 " + name
		}
		return strconv.FormatInt(n, 10) + " " + name + "s"
	}
	switch {
	case s < 60:
		return unit(s, "second")
	case s < 2*3600:
		return unit((s+59)/60, "minute")
	default:
		return unit((s+3599)/3600, "hour")
	}
}

func ceilSeconds(d time.Duration) int64 {
	return int64((max(d, 0) + time.Second - 1) / time.Second)
}
