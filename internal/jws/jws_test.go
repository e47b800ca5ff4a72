package jws

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"strings"
	"testing"
)

func TestSignVerify(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	for _, alg := range []string{"RS256", "PS256"} {
		tok, err := Sign(key, alg, map[string]any{"typ": "JWT", "alg": "none"}, map[string]any{"sub": "a@example.com"})
		if err != nil {
			t.Fatal(err)
		}
		var claims struct{ Sub string }
		h, err := Verify(tok, func(map[string]any) (crypto.PublicKey, error) { return &key.PublicKey, nil }, &claims)
		if err != nil || claims.Sub != "a@example.com" || h["alg"] != alg || h["typ"] != "JWT" {
			t.Errorf("%s: %v %+v %v; want the claims, and alg %s (the caller's alg ignored)", alg, err, claims, h, alg)
		}
		if _, err := Verify(tok, func(map[string]any) (crypto.PublicKey, error) { return &other.PublicKey, nil }, &claims); err == nil {
			t.Errorf("%s: verified with another key", alg)
		}
		parts := strings.Split(tok, ".")
		forged := parts[0] + "." + b64.EncodeToString([]byte(`{"sub":"root"}`)) + "." + parts[2]
		if _, err := Verify(forged, func(map[string]any) (crypto.PublicKey, error) { return &key.PublicKey, nil }, &claims); err == nil {
			t.Errorf("%s: changed claims verified", alg)
		}
	}
	if _, err := Sign(key, "HS256", nil, nil); err == nil {
		t.Error("HS256 signed")
	}
}
