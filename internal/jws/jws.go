// Package jws signs and checks compact JSON Web Signatures (RFC 7515) with RSA keys: RS256
// and PS256, the two algorithms Entra and Google use for the tokens and assertions the
// sensor makes, and the fake Graph and Gmail servers check. No JWT library is needed for
// two algorithms and a dozen lines each.
package jws

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

var b64 = base64.RawURLEncoding

// Sign makes a compact JWS of claims, signed with key by alg ("RS256" or "PS256"). header's
// fields (typ, a certificate thumbprint) go beside "alg", which Sign sets.
func Sign(key crypto.Signer, alg string, header map[string]any, claims any) (string, error) {
	var opts crypto.SignerOpts
	switch alg {
	case "RS256":
		opts = crypto.SHA256
	case "PS256":
		opts = &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA256}
	default:
		return "", fmt.Errorf("jws: algorithm %q", alg)
	}
	h := map[string]any{"alg": alg}
	for k, v := range header {
		if k != "alg" {
			h[k] = v
		}
	}
	hb, err := json.Marshal(h)
	if err != nil {
		return "", fmt.Errorf("jws: header: %w", err)
	}
	cb, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("jws: claims: %w", err)
	}
	input := b64.EncodeToString(hb) + "." + b64.EncodeToString(cb)
	digest := sha256.Sum256([]byte(input))
	sig, err := key.Sign(rand.Reader, digest[:], opts)
	if err != nil {
		return "", fmt.Errorf("jws: sign: %w", err)
	}
	return input + "." + b64.EncodeToString(sig), nil
}

// Verify checks tok's signature (RS256 or PS256) with the RSA key keyFor picks from its
// header, then decodes its claims into claims. It returns the header.
func Verify(tok string, keyFor func(header map[string]any) (crypto.PublicKey, error), claims any) (map[string]any, error) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return nil, errors.New("jws: not a compact JWS")
	}
	var header map[string]any
	if err := decode(parts[0], &header); err != nil {
		return nil, fmt.Errorf("jws: header: %w", err)
	}
	sig, err := b64.DecodeString(parts[2])
	if err != nil {
		return nil, fmt.Errorf("jws: signature: %w", err)
	}
	pub, err := keyFor(header)
	if err != nil {
		return nil, err
	}
	rpub, ok := pub.(*rsa.PublicKey)
	if !ok {
		return nil, errors.New("jws: not an RSA key")
	}
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	switch header["alg"] {
	case "RS256":
		err = rsa.VerifyPKCS1v15(rpub, crypto.SHA256, digest[:], sig)
	case "PS256":
		err = rsa.VerifyPSS(rpub, crypto.SHA256, digest[:], sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
	default:
		err = fmt.Errorf("algorithm %v not accepted", header["alg"])
	}
	if err != nil {
		return nil, fmt.Errorf("jws: signature: %w", err)
	}
	if err := decode(parts[1], claims); err != nil {
		return nil, fmt.Errorf("jws: claims: %w", err)
	}
	return header, nil
}

func decode(part string, v any) error {
	b, err := b64.DecodeString(part)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}
