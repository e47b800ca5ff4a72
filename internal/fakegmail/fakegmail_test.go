package fakegmail

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

const user = "alice@example.com"

// grant posts an assertion signed by key with these claims and returns the status and the
// decoded answer.
func grant(t *testing.T, s *Server, key *rsa.PrivateKey, c assertionClaims) (int, map[string]any) {
	t.Helper()
	a, err := signJWT(key, c)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := s.Client().PostForm(s.TokenURL(), url.Values{
		"grant_type": {"urn:ietf:params:oauth:grant-type:jwt-bearer"},
		"assertion":  {a},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, out
}

func good(s *Server) assertionClaims {
	now := time.Now().Unix()
	return assertionClaims{Iss: s.ClientEmail(), Scope: ScopeModify, Aud: s.TokenURL(), Sub: user, Iat: now, Exp: now + 3600}
}

func TestTokenAssertionChecks(t *testing.T) {
	s := New(t, Options{Users: []string{user}, Scopes: []string{ScopeModify}})
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		key    *rsa.PrivateKey
		change func(*assertionClaims)
		status int
		code   string
	}{
		{"good", s.saKey, func(*assertionClaims) {}, 200, ""},
		{"other key", other, func(*assertionClaims) {}, 400, "invalid_grant"},
		{"wrong aud", s.saKey, func(c *assertionClaims) { c.Aud = "https://oauth2.googleapis.com/token" }, 400, "invalid_grant"},
		{"wrong iss", s.saKey, func(c *assertionClaims) { c.Iss = "x@example.com" }, 400, "invalid_grant"},
		{"over an hour", s.saKey, func(c *assertionClaims) { c.Exp = c.Iat + 3601 }, 400, "invalid_grant"},
		{"expired", s.saKey, func(c *assertionClaims) { c.Iat -= 7200; c.Exp -= 7200 }, 400, "invalid_grant"},
		{"no delegation", s.saKey, func(c *assertionClaims) { c.Sub = "bob@example.com" }, 400, "unauthorized_client"},
		{"no subject", s.saKey, func(c *assertionClaims) { c.Sub = "" }, 400, "unauthorized_client"},
		{"scope not granted", s.saKey, func(c *assertionClaims) { c.Scope = ScopeModify + " " + ScopeFull }, 400, "unauthorized_client"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := good(s)
			tc.change(&c)
			status, out := grant(t, s, tc.key, c)
			if status != tc.status || (tc.code != "" && out["error"] != tc.code) {
				t.Fatalf("HTTP %d %v, want %d %s", status, out, tc.status, tc.code)
			}
			if tc.code == "" && out["access_token"] == "" {
				t.Fatalf("no access token: %v", out)
			}
		})
	}
}

func call(t *testing.T, s *Server, method, path, token string) int {
	t.Helper()
	req, err := http.NewRequest(method, s.URL()+path, strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := s.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	return resp.StatusCode
}

func TestAPITokenChecks(t *testing.T) {
	s := New(t, Options{Users: []string{user, "bob@example.com"}})
	_, out := grant(t, s, s.saKey, good(s))
	tok, _ := out["access_token"].(string)
	expired, err := signJWT(s.issuer, accessClaims{Sub: user, Scope: ScopeModify, Exp: time.Now().Add(-time.Minute).Unix()})
	if err != nil {
		t.Fatal(err)
	}
	forged, err := signJWT(s.saKey, accessClaims{Sub: user, Scope: ScopeFull, Exp: time.Now().Add(time.Hour).Unix()})
	if err != nil {
		t.Fatal(err)
	}
	id := s.Deliver(user, "<x@example.com>")
	for _, tc := range []struct {
		name, method, path, token string
		want                      int
	}{
		{"own mailbox", "GET", "/gmail/v1/users/" + user + "/labels", tok, 200},
		{"me", "GET", "/gmail/v1/users/me/labels", tok, 200},
		{"other mailbox", "GET", "/gmail/v1/users/bob@example.com/labels", tok, 403},
		{"no token", "GET", "/gmail/v1/users/me/labels", "", 401},
		{"expired", "GET", "/gmail/v1/users/me/labels", expired, 401},
		{"forged", "GET", "/gmail/v1/users/me/labels", forged, 401},
		{"delete needs the full scope", "DELETE", "/gmail/v1/users/me/messages/" + id, tok, 403},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := call(t, s, tc.method, tc.path, tc.token); got != tc.want {
				t.Fatalf("HTTP %d, want %d", got, tc.want)
			}
		})
	}
}

func TestQuotaAndKnobs(t *testing.T) {
	s := New(t, Options{Users: []string{user}, QuotaPerMinute: 10})
	_, out := grant(t, s, s.saKey, good(s))
	tok, _ := out["access_token"].(string)
	path := "/gmail/v1/users/me/labels"

	s.Unavailable(user, 1)
	if got := call(t, s, "GET", path, tok); got != 503 {
		t.Fatalf("HTTP %d, want 503", got)
	}
	s.Throttle(user, 2, "9")
	for range 2 {
		if got := call(t, s, "GET", path, tok); got != 429 {
			t.Fatalf("HTTP %d, want 429", got)
		}
	}
	for range 2 {
		if got := call(t, s, "GET", path, tok); got != 200 {
			t.Fatalf("HTTP %d, want 200 within quota", got)
		}
	}
	if got := call(t, s, "GET", path, tok); got != 429 {
		t.Fatalf("HTTP %d, want 429 past 10 units", got)
	}
	if s.QuotaUsed(user) != 10 || s.Count("quota_exceeded") != 1 || s.Count("labels.list") != 2 {
		t.Fatalf("used %d, exceeded %d, lists %d", s.QuotaUsed(user), s.Count("quota_exceeded"), s.Count("labels.list"))
	}
}
