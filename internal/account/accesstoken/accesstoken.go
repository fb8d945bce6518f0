// Package accesstoken issues and checks Flock's access tokens: short-lived
// HS256 JWTs naming a user and their session. It imports nothing of
// Flock's, so its fuzz target builds without the store (.ci/run).
package accesstoken

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
	lru "github.com/hashicorp/golang-lru/v2"
)

// MinSecretLen is the shortest HS256 key accepted (RFC 7518 §3.2).
const MinSecretLen = 32

// JWT claims that every access token carries and every check requires.
const (
	tokenIssuer   = "flock"
	tokenAudience = "flock-api"
	// accessTokenType is the JWT "typ" header (RFC 9068); refresh tokens are
	// opaque strings, never JWTs, so they cannot pass as access tokens.
	accessTokenType = "at+jwt"
)

// errBadToken is what every rejected access token becomes; the reason is
// logged, not told to the client.
var errBadToken = errors.New("invalid access token")

// Claims are the claims of an access token.
type Claims struct {
	jwt.RegisteredClaims
	// SessionID ties the token to the login it came from, so logging out or
	// a suspension ends it before it expires.
	SessionID string `json:"sid"`
}

// Tokens issues and checks access tokens: HS256 JWTs with the algorithm,
// issuer, audience, type and key id pinned in code (RFC 8725).
type Tokens struct {
	key []byte
	kid string
	ttl time.Duration
	now func() time.Time
	// parser is built once: a jwt.Parser is read-only once made, and
	// building one per request cost a dozen allocations on every call.
	parser *jwt.Parser
	// verified holds the claims of tokens that passed every check of
	// Parse, by token. A client sends the same token with every request
	// until it expires, and decoding it (base64, JSON, HMAC) was a tenth of
	// a GetMe's CPU; a token found here only has its claims validated
	// again (expiry, not-before, issuer, audience: validator). Only tokens
	// signed with our key get in, so no client can fill it.
	verified  *lru.Cache[string, Claims]
	validator *jwt.Validator
}

// verifiedTokens is how many checked tokens Tokens remembers (a few
// hundred bytes each): about one per client active within a token's
// lifetime.
const verifiedTokens = 10_000

// New returns a Tokens that signs with secret (at least MinSecretLen
// bytes, used as given) and issues tokens valid for ttl.
func New(secret []byte, ttl time.Duration, now func() time.Time) (*Tokens, error) {
	if len(secret) < MinSecretLen {
		return nil, fmt.Errorf("JWT secret must be at least %d bytes, got %d", MinSecretLen, len(secret))
	}
	if ttl <= 0 {
		return nil, fmt.Errorf("access token lifetime must be positive, got %s", ttl)
	}
	sum := sha256.Sum256(secret)
	t := &Tokens{key: secret, kid: hex.EncodeToString(sum[:4]), ttl: ttl, now: now}
	claimChecks := []jwt.ParserOption{
		jwt.WithIssuer(tokenIssuer),
		jwt.WithAudience(tokenAudience),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithTimeFunc(now),
	}
	t.parser = jwt.NewParser(append(claimChecks,
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithStrictDecoding(),
	)...)
	t.validator = jwt.NewValidator(claimChecks...)
	t.verified, _ = lru.New[string, Claims](verifiedTokens) // fails only for a size <= 0
	return t, nil
}

// Issue returns a signed access token for a user's session and when it expires.
func (t *Tokens) Issue(userID, sessionID string) (string, time.Time, error) {
	now := t.now()
	exp := now.Add(t.ttl)
	claims := Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    tokenIssuer,
			Audience:  jwt.ClaimStrings{tokenAudience},
			Subject:   userID,
			IssuedAt:  jwt.NewNumericDate(now),
			NotBefore: jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(exp),
			ID:        rand.Text(),
		},
		SessionID: sessionID,
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, claims)
	tok.Header["kid"] = t.kid
	tok.Header["typ"] = accessTokenType
	s, err := tok.SignedString(t.key)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("sign access token: %w", err)
	}
	return s, exp, nil
}

// refusedHeaders name key material or key URLs, which a token never carries.
var refusedHeaders = []string{"jwk", "jku", "x5u", "x5c", "crit"}

// Parse checks an access token and returns its claims. It rejects any
// algorithm but HS256 (alg "none" included), an unknown kid, key material or
// key URLs in the header, a wrong typ, iss or aud, a missing or past exp, a
// future nbf or iat, and a missing sub or sid.
func (t *Tokens) Parse(raw string) (*Claims, error) {
	if c, ok := t.verified.Get(raw); ok {
		if err := t.validator.Validate(&c); err != nil {
			t.verified.Remove(raw)
			return nil, fmt.Errorf("%w: %w", errBadToken, err)
		}
		return &c, nil
	}
	claims := new(Claims)
	_, err := t.parser.ParseWithClaims(raw, claims, func(tok *jwt.Token) (any, error) {
		for _, h := range refusedHeaders {
			if _, ok := tok.Header[h]; ok {
				return nil, fmt.Errorf("header %q is not accepted", h)
			}
		}
		if typ, _ := tok.Header["typ"].(string); typ != accessTokenType {
			return nil, fmt.Errorf("typ %q is not an access token", typ)
		}
		if kid, _ := tok.Header["kid"].(string); kid != t.kid {
			return nil, fmt.Errorf("unknown kid %q", kid)
		}
		return t.key, nil
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errBadToken, err)
	}
	if claims.Subject == "" || claims.SessionID == "" {
		return nil, fmt.Errorf("%w: missing sub or sid", errBadToken)
	}
	t.verified.Add(raw, *claims)
	return claims, nil
}
