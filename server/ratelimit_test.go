package server_test

import (
	"bytes"
	"errors"
	"fmt"
	"image/color"
	"image/png"
	"mime/multipart"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	flockv1 "github.com/flock-social/flock/gen/go/flock/v1"
	"github.com/flock-social/flock/gen/go/flock/v1/flockv1connect"
	"github.com/flock-social/flock/internal/ratelimit"
	tu "github.com/flock-social/flock/internal/testutil"
	"github.com/flock-social/flock/server"
)

func withRateLimits(c *server.Config) { c.RateLimits = true }

// P12: login is limited per account (5 a minute) and answers 429 with
// Retry-After on every transport; another account still gets in.
func TestRateLimits_LoginPerAccount429_P12(t *testing.T) {
	t.Parallel()
	for _, tr := range tu.Transports {
		t.Run(string(tr), func(t *testing.T) {
			t.Parallel()
			s := tu.MustServer(t, "sqlite", withRateLimits) // one server each: the IP budget is per server
			victim, other := s.MustAccount(t, "victim"), s.MustAccount(t, "other")
			login := func(username, password string) error {
				_, err := tu.Call[flockv1.LoginResponse](t.Context(), s, tr, flockv1connect.UserServiceLoginProcedure, "",
					&flockv1.LoginRequest{Identifier: &flockv1.LoginRequest_Username{Username: username}, Password: password})
				return err
			}
			// MustAccount logged each in once; four more wrong guesses use up the five.
			for range 4 {
				wantCode(t, login("VICTIM", "wrong guess"), connect.CodeUnauthenticated)
			}
			err := login("victim", victim.Password)
			wantCode(t, err, connect.CodeResourceExhausted)
			var ce *connect.Error
			if tr != tu.REST && (!errors.As(err, &ce) || ce.Meta().Get("Retry-After") == "") {
				t.Errorf("no Retry-After on the refusal: %v", err)
			}
			if err := login("other", other.Password); err != nil {
				t.Errorf("another account is limited too: %v", err)
			}
		})
	}
}

// P12 over REST: 429, Retry-After and RateLimit-* headers, google.rpc.Status body.
func TestRateLimits_RESTHeaders_P12(t *testing.T) {
	t.Parallel()
	s := tu.MustServer(t, "sqlite", withRateLimits)
	s.MustAccount(t, "limited")
	var res *http.Response
	var body map[string]any
	for range 5 {
		res, body = rawJSON(t, s, http.MethodPost, "/api/users/login/", "", `{"username":"limited","password":"wrong password"}`)
	}
	if res.StatusCode != http.StatusTooManyRequests || body["code"] != float64(8) {
		t.Fatalf("sixth login = %d %v, want 429", res.StatusCode, body)
	}
	if n, err := strconv.Atoi(res.Header.Get("Retry-After")); err != nil || n < 1 {
		t.Errorf("Retry-After = %q", res.Header.Get("Retry-After"))
	}
	for _, h := range []string{"RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"} {
		if res.Header.Get(h) == "" {
			t.Errorf("no %s header: %v", h, res.Header)
		}
	}
	// Answers that pass carry the headers too.
	a := s.MustAccount(t, "poster")
	res, _ = rawJSON(t, s, http.MethodPost, "/api/posts/", a.AccessToken, `{"content":"counted"}`)
	if res.StatusCode != http.StatusOK || res.Header.Get("RateLimit-Remaining") == "" {
		t.Errorf("create post = %d, headers %v", res.StatusCode, res.Header)
	}
}

// With FLOCK_RATE_LIMITS=off nothing is limited (load tests, harnesses).
func TestRateLimits_Off(t *testing.T) {
	t.Parallel()
	s := tu.MustServer(t, "sqlite")
	s.MustAccount(t, "free")
	for range 8 {
		res, _ := rawJSON(t, s, http.MethodPost, "/api/users/login/", "", `{"username":"free","password":"wrong password"}`)
		if res.StatusCode != http.StatusUnauthorized {
			t.Fatalf("login with limits off = %d", res.StatusCode)
		}
	}
}

// behindProxy returns a copy of s whose requests, on every transport, carry
// "X-Forwarded-For: <xff>" as a proxy in front of Flock would send it (none
// when xff is ""), and the headers of the latest answer it got.
func behindProxy(t *testing.T, s *tu.Server, xff string) (*tu.Server, func() http.Header) {
	t.Helper()
	last := &lastHeader{}
	h1 := &http.Transport{}
	h2c := tu.NewH2CClient()
	c := *s
	c.HTTP = &http.Client{Timeout: 30 * time.Second, Transport: &forwardedFor{xff: xff, next: h1, last: last}}
	c.H2C = &http.Client{Transport: &forwardedFor{xff: xff, next: h2c.Transport, last: last}}
	t.Cleanup(func() {
		h1.CloseIdleConnections()
		h2c.CloseIdleConnections()
	})
	return &c, last.get
}

type lastHeader struct {
	mu sync.Mutex
	h  http.Header
}

func (l *lastHeader) get() http.Header {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.h
}

// forwardedFor adds an X-Forwarded-For header to each request and keeps the
// headers of each answer.
type forwardedFor struct {
	xff  string
	next http.RoundTripper
	last *lastHeader
}

func (f *forwardedFor) RoundTrip(r *http.Request) (*http.Response, error) {
	if f.xff != "" {
		r = r.Clone(r.Context())
		r.Header.Set("X-Forwarded-For", f.xff)
	}
	res, err := f.next.RoundTrip(r)
	if err == nil {
		f.last.mu.Lock()
		f.last.h = res.Header.Clone()
		f.last.mu.Unlock()
	}
	return res, err
}

func withTrustedProxies(cidrs ...string) func(*server.Config) {
	return func(c *server.Config) {
		for _, p := range cidrs {
			c.TrustedProxies = append(c.TrustedProxies, netip.MustParsePrefix(p))
		}
	}
}

// wantRateLimited fails the test unless err is resource_exhausted with the
// plain message "<tooMany>; try again in <when>", <when> in words for the
// Retry-After the answer carried (from the error's metadata, or for REST
// from the answer's headers), and no "flock error: code=" in it.
func wantRateLimited(t *testing.T, tr tu.Transport, err error, header http.Header, tooMany string) {
	t.Helper()
	wantCode(t, err, connect.CodeResourceExhausted)
	var ce *connect.Error
	if !errors.As(err, &ce) {
		t.Fatalf("error %v is not a *connect.Error", err)
	}
	retry := ce.Meta().Get("Retry-After")
	if tr == tu.REST {
		retry = header.Get("Retry-After")
		for _, h := range []string{"RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"} {
			if header.Get(h) == "" {
				t.Errorf("no %s header on the REST refusal: %v", h, header)
			}
		}
	}
	if want := refusalMessage(t, tooMany, retry); ce.Message() != want {
		t.Errorf("refusal message = %q, want %q", ce.Message(), want)
	}
}

// refusalMessage is the message a 429 with Retry-After retry must carry:
// "<tooMany>; try again in <retry in words>".
func refusalMessage(t *testing.T, tooMany, retry string) string {
	t.Helper()
	n, err := strconv.Atoi(retry)
	if err != nil || n < 1 {
		t.Fatalf("Retry-After = %q, want whole seconds >= 1", retry)
	}
	var when string
	switch {
	case n == 1:
		when = "1 second"
	case n < 60:
		when = strconv.Itoa(n) + " seconds"
	case n <= 60:
		when = "1 minute"
	case n < 2*3600:
		when = strconv.Itoa((n+59)/60) + " minutes"
	default:
		when = strconv.Itoa((n+3599)/3600) + " hours"
	}
	return tooMany + "; try again in " + when
}

// P24: a login counts against the account it names and the client's IP,
// never against the token that rides along: an attacker who sends the valid
// token of an account of their own (or a broken token) with each guess
// still gets 429 on the victim's sixth wrong password in a minute, with the
// plain message, on every transport and engine.
func TestRateLimit_LoginCountsAgainstNamedAccount_P24(t *testing.T) {
	t.Parallel()
	for _, engine := range tu.Engines(t) {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			s := tu.MustServer(t, engine, withRateLimits, withTrustedProxies("127.0.0.1/32"))
			for i, tr := range tu.Transports {
				t.Run(string(tr), func(t *testing.T) {
					t.Parallel()
					// Every account and every case from its own client
					// address (5 registrations and 10 logins per IP), so
					// that only the victim's own budget can run out.
					ac, _ := behindProxy(t, s, fmt.Sprintf("198.51.100.%d", 10*i+1))
					attacker := ac.MustAccount(t, "attacker_"+string(tr))
					for j, tc := range []struct{ name, token string }{
						{"valid token of another account", attacker.AccessToken},
						{"invalid token", "not-a-token"},
						{"tampered token of another account", attacker.AccessToken + "x"},
					} {
						t.Run(tc.name, func(t *testing.T) {
							c, header := behindProxy(t, s, fmt.Sprintf("198.51.100.%d", 10*i+j+2))
							victim := c.MustAccount(t, fmt.Sprintf("victim_%s_%d", tr, j))
							login := func(username, password string) error {
								_, err := tu.Call[flockv1.LoginResponse](t.Context(), c, tr, flockv1connect.UserServiceLoginProcedure, tc.token,
									&flockv1.LoginRequest{Identifier: &flockv1.LoginRequest_Username{Username: username}, Password: password})
								return err
							}
							// MustAccount logged the victim in once; four wrong
							// guesses use up the five.
							for range 4 {
								wantCode(t, login(strings.ToUpper(victim.Username), "wrong guess"), connect.CodeUnauthenticated)
							}
							err := login(victim.Username, "wrong guess")
							wantRateLimited(t, tr, err, header(), "too many login attempts")
							// Even the right password waits: the budget is the account's.
							wantCode(t, login(victim.Username, victim.Password), connect.CodeResourceExhausted)
						})
					}
				})
			}
		})
	}
}

// P24: registration counts against the username and the email it names, so
// one address cannot be probed with endless registrations from many IPs.
func TestRateLimit_RegisterCountsAgainstNamedUsernameAndEmail_P24(t *testing.T) {
	t.Parallel()
	s := tu.MustServer(t, "sqlite", withRateLimits, withTrustedProxies("127.0.0.1/32"))
	register := func(tr tu.Transport, xff, username, email string) (http.Header, error) {
		c, header := behindProxy(t, s, xff)
		_, err := tu.Call[flockv1.RegisterResponse](t.Context(), c, tr, flockv1connect.UserServiceRegisterProcedure, "",
			&flockv1.RegisterRequest{Username: username, Email: email, Password: "password-123", FullName: "Probe"})
		return header(), err
	}
	// The first registration takes the email; the next four are refused as
	// taken, each from a fresh address and with a fresh username.
	if _, err := register(tu.Connect, "203.0.113.1", "taken_one", "taken@example.com"); err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		_, err := register(tu.Transports[i], fmt.Sprintf("203.0.113.%d", i+2), fmt.Sprintf("probe_%d", i), " TAKEN@example.com")
		wantCode(t, err, connect.CodeAlreadyExists)
	}
	for i, tr := range tu.Transports {
		header, err := register(tr, fmt.Sprintf("203.0.113.%d", i+10), "probe_"+string(tr), "Taken@Example.com")
		wantRateLimited(t, tr, err, header, "too many registrations")
	}
}

// P25: behind a trusted proxy each client has its own per-IP budget, read
// from the first untrusted X-Forwarded-For hop, and forged hops left of it
// buy nothing; with no trusted proxy configured, X-Forwarded-For is ignored,
// so forging it never buys a fresh budget. Every transport, both engines.
func TestRateLimit_PerClientBehindTrustedProxy_P25(t *testing.T) {
	t.Parallel()
	perIP := ratelimit.Rules["login"].PerIP.Burst
	for _, engine := range tu.Engines(t) {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			// login tries an unknown account each time, so that only the
			// per-IP budget is counted down.
			n := 0
			login := func(c *tu.Server, tr tu.Transport) error {
				n++
				_, err := tu.Call[flockv1.LoginResponse](t.Context(), c, tr, flockv1connect.UserServiceLoginProcedure, "",
					&flockv1.LoginRequest{Identifier: &flockv1.LoginRequest_Username{Username: fmt.Sprintf("nobody_%d", n)}, Password: "wrong guess"})
				return err
			}

			t.Run("trusted proxy: one budget per client", func(t *testing.T) {
				s := tu.MustServer(t, engine, withRateLimits, withTrustedProxies("127.0.0.1/32"))
				for i, tr := range tu.Transports {
					a, aHeader := behindProxy(t, s, fmt.Sprintf("203.0.113.%d", 10*i+1))
					for range perIP {
						wantCode(t, login(a, tr), connect.CodeUnauthenticated)
					}
					err := login(a, tr)
					wantRateLimited(t, tr, err, aHeader(), "too many login attempts")
					// The same client with a forged hop in front: the proxy
					// appended the real address, which is what counts.
					forged, _ := behindProxy(t, s, fmt.Sprintf("192.0.2.77, 203.0.113.%d", 10*i+1))
					wantCode(t, login(forged, tr), connect.CodeResourceExhausted)
					// Another client behind the same proxy has its own budget.
					b, _ := behindProxy(t, s, fmt.Sprintf("203.0.113.%d", 10*i+2))
					wantCode(t, login(b, tr), connect.CodeUnauthenticated)
				}
			})

			t.Run("no trusted proxy: X-Forwarded-For is ignored", func(t *testing.T) {
				s := tu.MustServer(t, engine, withRateLimits)
				a, _ := behindProxy(t, s, "203.0.113.1")
				for range perIP {
					wantCode(t, login(a, tu.Connect), connect.CodeUnauthenticated)
				}
				for i, tr := range tu.Transports {
					forged, header := behindProxy(t, s, fmt.Sprintf("203.0.113.%d", 100+i))
					wantRateLimited(t, tr, login(forged, tr), header(), "too many login attempts")
				}
			})
		})
	}
}

// P23: changing the profile picture is limited per account (and per IP),
// since each upload is decoded: the eleventh picture in an hour is refused
// with 429 on every transport, JSON and multipart alike, while other profile
// edits and removing the picture go on. Both engines.
func TestRateLimit_AvatarChanges_P23(t *testing.T) {
	t.Parallel()
	rule := ratelimit.Rules["avatar"]
	var pic bytes.Buffer
	if err := png.Encode(&pic, solid(8, 8, color.RGBA{200, 0, 0, 255})); err != nil {
		t.Fatal(err)
	}
	ways := []struct {
		name string
		tr   tu.Transport
	}{{"connect", tu.Connect}, {"grpc", tu.GRPC}, {"grpcweb", tu.GRPCWeb}, {"rest", tu.REST}, {"rest multipart", ""}}
	for _, engine := range tu.Engines(t) {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			s := tu.MustServer(t, engine, withRateLimits, withTrustedProxies("127.0.0.1/32"))
			for i, way := range ways {
				t.Run(way.name, func(t *testing.T) {
					t.Parallel()
					c, header := behindProxy(t, s, fmt.Sprintf("192.0.2.%d", i+1))
					a := c.MustAccount(t, fmt.Sprintf("pic_%d", i))
					// update sends a profile change the way of this subtest and
					// returns the error a client sees.
					update := func(req *flockv1.UpdateMeRequest) error {
						if way.tr != "" {
							_, err := tu.Call[flockv1.UpdateMeResponse](t.Context(), c, way.tr, flockv1connect.UserServiceUpdateMeProcedure, a.AccessToken, req)
							return err
						}
						fields := map[string]string{}
						if req.Bio != nil {
							fields["bio"] = req.GetBio()
						}
						var res *http.Response
						var out map[string]any
						if req.Avatar != nil {
							body, ctype := multipartBody(t, fields, "avatar", req.GetAvatar())
							res, out = rawJSON(t, c, http.MethodPatch, "/api/users/", a.AccessToken, body, ctype)
						} else {
							var b bytes.Buffer
							w := multipart.NewWriter(&b)
							for k, v := range fields {
								_ = w.WriteField(k, v)
							}
							_ = w.Close()
							res, out = rawJSON(t, c, http.MethodPatch, "/api/users/", a.AccessToken, b.String(), w.FormDataContentType())
						}
						if res.StatusCode == http.StatusOK {
							return nil
						}
						code, _ := out["code"].(float64)
						msg, _ := out["message"].(string)
						return connect.NewError(connect.Code(code), errors.New(msg))
					}
					for j := range rule.PerAccount.Burst {
						if err := update(&flockv1.UpdateMeRequest{Avatar: pic.Bytes()}); err != nil {
							t.Fatalf("picture %d: %v", j+1, err)
						}
					}
					err := update(&flockv1.UpdateMeRequest{Avatar: pic.Bytes()})
					wantRateLimited(t, orREST(way.tr), err, header(), "too many profile picture changes")
					// Other profile edits are not limited.
					if err := update(&flockv1.UpdateMeRequest{Bio: new("still here")}); err != nil {
						t.Errorf("bio edit after the picture limit: %v", err)
					}
					if way.tr != "" {
						// Removing the picture decodes nothing and is not limited.
						if err := update(&flockv1.UpdateMeRequest{Avatar: []byte{}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"avatar"}}}); err != nil {
							t.Errorf("removing the picture after the limit: %v", err)
						}
					}
				})
			}
		})
	}
}

// orREST is tr, or REST for the plain multipart form (tr "").
func orREST(tr tu.Transport) tu.Transport {
	if tr == "" {
		return tu.REST
	}
	return tr
}

// The refusal of the plain-HTTP video upload is the same plain sentence,
// with Retry-After and the RateLimit-* headers. Both engines.
func TestRateLimit_VideoUploadRefusalIsPlainSentence(t *testing.T) {
	t.Parallel()
	for _, engine := range tu.Engines(t) {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			s := tu.MustServer(t, engine, withRateLimits)
			a := s.MustAccount(t, "uploader")
			var res *http.Response
			var out map[string]any
			for range ratelimit.Rules["upload"].PerAccount.Burst + 1 {
				// Not multipart: refused with 400 after it is counted.
				res, out = rawJSON(t, s, http.MethodPost, "/api/posts/videos/", a.AccessToken, `{"not":"a video"}`)
			}
			if res.StatusCode != http.StatusTooManyRequests || out["code"] != float64(connect.CodeResourceExhausted) {
				t.Fatalf("eleventh upload = %d %v, want 429", res.StatusCode, out)
			}
			if want := refusalMessage(t, "too many video uploads", res.Header.Get("Retry-After")); out["message"] != want {
				t.Errorf("message = %q, want %q", out["message"], want)
			}
			for _, h := range []string{"RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"} {
				if res.Header.Get(h) == "" {
					t.Errorf("no %s header: %v", h, res.Header)
				}
			}
		})
	}
}

// P24: logging in by username and by email names one account, so the two
// forms draw on one budget: an attacker alternating them gets no more
// guesses than one who does not.
func TestRateLimit_LoginByUsernameOrEmailSharesOneBudget_P24(t *testing.T) {
	t.Parallel()
	for _, engine := range tu.Engines(t) {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			s := tu.MustServer(t, engine, withRateLimits, withTrustedProxies("127.0.0.1/32"))
			for i, tr := range tu.Transports {
				t.Run(string(tr), func(t *testing.T) {
					t.Parallel()
					c, _ := behindProxy(t, s, fmt.Sprintf("198.51.100.%d", 100+i))
					victim := c.MustAccount(t, "twoforms_"+string(tr))
					login := func(id *flockv1.LoginRequest) error {
						_, err := tu.Call[flockv1.LoginResponse](t.Context(), c, tr, flockv1connect.UserServiceLoginProcedure, "", id)
						return err
					}
					byName := &flockv1.LoginRequest{Identifier: &flockv1.LoginRequest_Username{Username: victim.Username}, Password: "wrong guess"}
					byEmail := &flockv1.LoginRequest{Identifier: &flockv1.LoginRequest_Email{Email: " " + strings.ToUpper(victim.Email)}, Password: "wrong guess"}
					// MustAccount logged in once; four more guesses, two each way.
					for _, req := range []*flockv1.LoginRequest{byEmail, byName, byEmail, byName} {
						wantCode(t, login(req), connect.CodeUnauthenticated)
					}
					wantCode(t, login(byEmail), connect.CodeResourceExhausted)
					wantCode(t, login(byName), connect.CodeResourceExhausted)
				})
			}
		})
	}
}
