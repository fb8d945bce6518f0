package accesstoken_test

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/flock-social/flock/internal/account/accesstoken"
)

// testSecret is the HS256 key of the tests' Tokens: fixed, so that fuzz
// workers (separate processes) agree on which inputs carry a valid signature.
var testSecret = []byte("flock-test-secret-0123456789abcdef")

// fixedNow is the clock of the fuzz target, fixed for the same reason.
var fixedNow = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

// MustTokens returns Tokens signing with testSecret, valid for 15 minutes,
// reading the time from now.
func MustTokens(tb testing.TB, now func() time.Time) *accesstoken.Tokens {
	tb.Helper()
	tokens, err := accesstoken.New(testSecret, 15*time.Minute, now)
	if err != nil {
		tb.Fatal(err)
	}
	return tokens
}

// kidOf returns the kid header of a token without checking it.
func kidOf(tb testing.TB, raw string) string {
	tb.Helper()
	tok, _, err := jwt.NewParser().ParseUnverified(raw, jwt.MapClaims{})
	if err != nil {
		tb.Fatal(err)
	}
	kid, _ := tok.Header["kid"].(string)
	if kid == "" {
		tb.Fatalf("issued token has no kid: %v", tok.Header)
	}
	return kid
}

// forge signs claims with method and key under exactly the given header
// (alg is set from method), the way an attacker with golang-jwt would.
func forge(tb testing.TB, method jwt.SigningMethod, key any, header map[string]any, claims jwt.MapClaims) string {
	tb.Helper()
	tok := jwt.NewWithClaims(method, claims)
	for k := range tok.Header {
		delete(tok.Header, k)
	}
	for k, v := range header {
		tok.Header[k] = v
	}
	tok.Header["alg"] = method.Alg()
	s, err := tok.SignedString(key)
	if err != nil {
		tb.Fatalf("forge %s token: %v", method.Alg(), err)
	}
	return s
}

func TestTokens_IssuedTokenParses_P7(t *testing.T) {
	t.Parallel()
	now := time.Now().UTC().Truncate(time.Second)
	tokens := MustTokens(t, func() time.Time { return now })
	raw, exp, err := tokens.Issue("user-1", "session-1")
	if err != nil {
		t.Fatal(err)
	}
	if !exp.Equal(now.Add(15 * time.Minute)) {
		t.Errorf("Issue expiry = %v, want %v", exp, now.Add(15*time.Minute))
	}
	claims, err := tokens.Parse(raw)
	if err != nil {
		t.Fatalf("Parse of an issued token: %v", err)
	}
	if claims.Subject != "user-1" || claims.SessionID != "session-1" || claims.Issuer != "flock" ||
		len(claims.Audience) != 1 || claims.Audience[0] != "flock-api" || claims.ID == "" ||
		!claims.ExpiresAt.Time.Equal(exp) {
		t.Fatalf("claims = %+v", claims)
	}
	tok, _, err := jwt.NewParser().ParseUnverified(raw, jwt.MapClaims{})
	if err != nil {
		t.Fatal(err)
	}
	if tok.Header["alg"] != "HS256" || tok.Header["typ"] != "at+jwt" {
		t.Errorf("header = %v, want alg HS256 and typ at+jwt", tok.Header)
	}
	// Every token gets its own ID, so two tokens of one session differ.
	raw2, _, _ := tokens.Issue("user-1", "session-1")
	if raw2 == raw {
		t.Error("two tokens issued for one session are identical")
	}
}

func TestTokens_RejectsForgedExpiredAndMisdirectedTokens_P7(t *testing.T) {
	t.Parallel()
	now := time.Now().UTC().Truncate(time.Second)
	tokens := MustTokens(t, func() time.Time { return now })
	issued, _, err := tokens.Issue("user-1", "session-1")
	if err != nil {
		t.Fatal(err)
	}
	kid := kidOf(t, issued)

	// good returns the header and claims of a valid token; each case spoils one thing.
	good := func() (map[string]any, jwt.MapClaims) {
		return map[string]any{"typ": "at+jwt", "kid": kid}, jwt.MapClaims{
			"iss": "flock", "aud": []string{"flock-api"}, "sub": "user-1", "sid": "session-1",
			"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(15 * time.Minute).Unix(), "jti": "j1",
		}
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	otherKey := []byte("another-secret-of-at-least-32-bytes!")
	hs256 := func(edit func(h map[string]any, c jwt.MapClaims)) string {
		h, c := good()
		edit(h, c)
		return forge(t, jwt.SigningMethodHS256, testSecret, h, c)
	}

	// The control: a token built here the honest way parses, so every
	// rejection below is down to the one thing each case changes.
	if _, err := tokens.Parse(hs256(func(map[string]any, jwt.MapClaims) {})); err != nil {
		t.Fatalf("control token built in the test is refused: %v", err)
	}

	h, c := good()
	opaque, _ := func() (string, error) { // a refresh token: 256 random bits, base64url
		b := make([]byte, 32)
		_, err := rand.Read(b)
		return base64.RawURLEncoding.EncodeToString(b), err
	}()
	parts := strings.Split(issued, ".")
	cases := []struct {
		name  string
		token string
	}{
		{"alg none", forge(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, h, c)},
		{"alg none with the real signature", func() string {
			p := strings.Split(forge(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, h, c), ".")
			return p[0] + "." + p[1] + "." + parts[2]
		}()},
		{"alg HS384 with the right key", forge(t, jwt.SigningMethodHS384, testSecret, h, c)},
		{"alg HS512 with the right key", forge(t, jwt.SigningMethodHS512, testSecret, h, c)},
		{"alg RS256", forge(t, jwt.SigningMethodRS256, rsaKey, h, c)},
		{"signed with another key", forge(t, jwt.SigningMethodHS256, otherKey, h, c)},
		{"expired exp", hs256(func(_ map[string]any, c jwt.MapClaims) { c["exp"] = now.Add(-time.Second).Unix() })},
		{"missing exp", hs256(func(_ map[string]any, c jwt.MapClaims) { delete(c, "exp") })},
		{"future nbf", hs256(func(_ map[string]any, c jwt.MapClaims) { c["nbf"] = now.Add(time.Minute).Unix() })},
		{"future iat", hs256(func(_ map[string]any, c jwt.MapClaims) { c["iat"] = now.Add(time.Minute).Unix() })},
		{"wrong iss", hs256(func(_ map[string]any, c jwt.MapClaims) { c["iss"] = "evil" })},
		{"missing iss", hs256(func(_ map[string]any, c jwt.MapClaims) { delete(c, "iss") })},
		{"wrong aud", hs256(func(_ map[string]any, c jwt.MapClaims) { c["aud"] = []string{"another-api"} })},
		{"missing aud", hs256(func(_ map[string]any, c jwt.MapClaims) { delete(c, "aud") })},
		{"missing sub", hs256(func(_ map[string]any, c jwt.MapClaims) { delete(c, "sub") })},
		{"missing sid", hs256(func(_ map[string]any, c jwt.MapClaims) { delete(c, "sid") })},
		{"unknown kid", hs256(func(h map[string]any, _ jwt.MapClaims) { h["kid"] = "deadbeef" })},
		{"missing kid", hs256(func(h map[string]any, _ jwt.MapClaims) { delete(h, "kid") })},
		{"jwk header", hs256(func(h map[string]any, _ jwt.MapClaims) {
			h["jwk"] = map[string]any{"kty": "oct", "k": base64.RawURLEncoding.EncodeToString(testSecret)}
		})},
		{"jku header", hs256(func(h map[string]any, _ jwt.MapClaims) { h["jku"] = "https://evil.example/jwks.json" })},
		{"x5u header", hs256(func(h map[string]any, _ jwt.MapClaims) { h["x5u"] = "https://evil.example/cert.pem" })},
		{"x5c header", hs256(func(h map[string]any, _ jwt.MapClaims) { h["x5c"] = []string{"MIIB"} })},
		{"crit header", hs256(func(h map[string]any, _ jwt.MapClaims) { h["crit"] = []string{"exp"} })},
		{"typ JWT", hs256(func(h map[string]any, _ jwt.MapClaims) { h["typ"] = "JWT" })},
		{"missing typ", hs256(func(h map[string]any, _ jwt.MapClaims) { delete(h, "typ") })},
		{"refresh token as access token", opaque},
		{"empty", ""},
		{"garbage", "not a token"},
		{"three empty segments", ".."},
		{"issued token without its signature", parts[0] + "." + parts[1] + "."},
		{"issued token with a fourth segment", issued + ".x"},
		{"issued token with its payload from another token", func() string {
			other := strings.Split(hs256(func(_ map[string]any, c jwt.MapClaims) { c["sub"] = "admin" }), ".")
			return parts[0] + "." + other[1] + "." + parts[2]
		}()},
		{"issued token with non-canonical base64 in its signature", func() string {
			// 32 signature bytes leave 2 unused bits in the last character;
			// setting one changes the text but not the decoded bytes.
			const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
			sig := parts[2]
			last := strings.IndexByte(alphabet, sig[len(sig)-1])
			return parts[0] + "." + parts[1] + "." + sig[:len(sig)-1] + string(alphabet[last|1])
		}()},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			claims, err := tokens.Parse(tc.token)
			if err == nil || claims != nil {
				t.Fatalf("Parse accepted it: claims %+v, err %v", claims, err)
			}
		})
	}
}

func TestTokens_ExpireWithTheirClock_P7(t *testing.T) {
	t.Parallel()
	now := time.Now().UTC()
	clock := func() time.Time { return now }
	tokens := MustTokens(t, clock)
	raw, _, err := tokens.Issue("user-1", "session-1")
	if err != nil {
		t.Fatal(err)
	}
	now = now.Add(14 * time.Minute)
	// Twice: the second finds the token among those already checked, and
	// the expiry is still checked on that path.
	for range 2 {
		if c, err := tokens.Parse(raw); err != nil || c.Subject != "user-1" || c.SessionID != "session-1" {
			t.Fatalf("Parse before expiry: %+v, %v", c, err)
		}
	}
	now = now.Add(2 * time.Minute)
	for range 2 {
		if _, err := tokens.Parse(raw); err == nil {
			t.Fatal("Parse accepted a token 16 minutes after a 15-minute lifetime began")
		}
	}
}

func TestNew_RefusesShortSecrets_P7(t *testing.T) {
	t.Parallel()
	if _, err := accesstoken.New(make([]byte, accesstoken.MinSecretLen-1), time.Minute, time.Now); err == nil {
		t.Fatalf("New accepted a %d-byte secret", accesstoken.MinSecretLen-1)
	}
}

// signedByTestSecret is the fuzz oracle, independent of golang-jwt: raw is
// an HS256 JWS whose signature, in canonical base64url, is the HMAC of its
// first two segments under testSecret, with a header naming HS256, at+jwt
// and no other key.
func signedByTestSecret(raw string) bool {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return false
	}
	mac := hmac.New(sha256.New, testSecret)
	mac.Write([]byte(parts[0] + "." + parts[1]))
	if base64.RawURLEncoding.EncodeToString(mac.Sum(nil)) != parts[2] {
		return false
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(parts[0])
	if err != nil {
		return false
	}
	var h map[string]any
	if err := json.Unmarshal(b, &h); err != nil {
		return false
	}
	for _, k := range []string{"jwk", "jku", "x5u", "x5c", "crit"} {
		if _, ok := h[k]; ok {
			return false
		}
	}
	return h["alg"] == "HS256" && h["typ"] == "at+jwt"
}

// FuzzTokensParse: Parse never panics, and never returns claims for a token
// that does not carry a valid signature under the key Tokens.Issue uses.
func FuzzTokensParse(f *testing.F) {
	now := func() time.Time { return fixedNow }
	tokens := MustTokens(f, now)
	issued, _, err := tokens.Issue("user-1", "session-1")
	if err != nil {
		f.Fatal(err)
	}
	if !signedByTestSecret(issued) {
		f.Fatal("the oracle refuses a token that Tokens.Issue made")
	}
	kid := kidOf(f, issued)
	h := map[string]any{"typ": "at+jwt", "kid": kid}
	c := jwt.MapClaims{
		"iss": "flock", "aud": "flock-api", "sub": "u", "sid": "s",
		"iat": fixedNow.Unix(), "nbf": fixedNow.Unix(), "exp": fixedNow.Add(time.Hour).Unix(),
	}
	f.Add(issued)
	f.Add(forge(f, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, h, c))
	f.Add(forge(f, jwt.SigningMethodHS512, testSecret, h, c))
	f.Add(forge(f, jwt.SigningMethodHS256, []byte("another-secret-of-at-least-32-bytes!"), h, c))
	f.Add(forge(f, jwt.SigningMethodHS256, testSecret, map[string]any{"typ": "at+jwt", "kid": kid, "jku": "https://evil.example/"}, c))
	f.Add("")
	f.Add("..")
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Fuzz(func(t *testing.T, raw string) {
		claims, err := tokens.Parse(raw)
		if err != nil {
			if claims != nil {
				t.Fatalf("Parse returned claims with an error: %+v, %v", claims, err)
			}
			return
		}
		if claims == nil || claims.Subject == "" || claims.SessionID == "" {
			t.Fatalf("Parse succeeded with claims %+v", claims)
		}
		if !signedByTestSecret(raw) {
			t.Fatalf("Parse accepted %q, which Tokens.Issue did not sign", raw)
		}
	})
}
