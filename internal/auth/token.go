package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"strings"
)

// SessionTokenPrefix starts every user session token, so leaked tokens are recognisable
// by secret scanners and cannot be confused with API keys.
const SessionTokenPrefix = "wst_"

// NewSecret returns a random 256-bit secret that starts with prefix (so a leaked one says
// what it is), and the hash stored in its place.
func NewSecret(prefix string) (secret string, hash []byte) {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never returns an error
	secret = prefix + base64.RawURLEncoding.EncodeToString(b)
	return secret, HashToken(secret)
}

// HashToken returns the SHA-256 of a high-entropy secret. Session tokens are 256 random
// bits, so a fast hash is enough: there is nothing to brute-force.
func HashToken(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// bearer extracts the credential from an Authorization header value.
func bearer(header string) (string, bool) {
	scheme, cred, ok := strings.Cut(strings.TrimSpace(header), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	cred = strings.TrimSpace(cred)
	return cred, cred != ""
}
