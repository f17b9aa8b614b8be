package webhook

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// SecretPrefix starts every signing secret: "whsec_<base64 of the key>", as the Standard
// Webhooks specification has it.
const SecretPrefix = "whsec_"

// secretBytes is the size of a signing key (the specification asks for 24 to 64).
const secretBytes = 32

// newSecret returns a fresh signing key.
func newSecret() []byte {
	b := make([]byte, secretBytes)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Errorf("webhook: reading randomness: %w", err)) // never fails on supported platforms
	}
	return b
}

// FormatSecret writes a signing key the way receivers configure it.
func FormatSecret(key []byte) string { return SecretPrefix + base64.StdEncoding.EncodeToString(key) }

// ParseSecret reads a "whsec_…" secret (the prefix is optional) into its key.
func ParseSecret(s string) ([]byte, error) {
	s = strings.TrimPrefix(s, SecretPrefix)
	key, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("webhook secret: %w", err)
	}
	return key, nil
}

// Keyring encrypts signing secrets at rest. They cannot be hashed, since signing needs
// them, so they are sealed with AES-256-GCM under a key the operator provides
// (WAGATE_SECRET_KEY) or, by default, a key generated into the data directory. Each sealed
// secret is bound to its webhook's id, so a sealed value copied to another row is useless.
type Keyring struct {
	aead cipher.AEAD
	id   [4]byte // identifies the key in sealed values, for a clear error after a key change
}

// sealedVersion is the first byte of every sealed value.
const sealedVersion = 1

// NewKeyring returns a keyring for a 32-byte key.
func NewKeyring(key []byte) (*Keyring, error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("the secret key must be 32 bytes, got %d", len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	k := &Keyring{aead: aead}
	sum := sha256.Sum256(append([]byte("wagate key id:"), key...))
	copy(k.id[:], sum[:])
	return k, nil
}

// ParseKey reads a key given as base64 (standard or URL alphabet, padded or not).
func ParseKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if key, err := enc.DecodeString(s); err == nil {
			if len(key) != 32 {
				return nil, fmt.Errorf("the secret key must be 32 bytes (base64), got %d", len(key))
			}
			return key, nil
		}
	}
	return nil, errors.New("the secret key is not base64: generate one with `openssl rand -base64 32`")
}

// KeyFile is the name of the generated key in the data directory.
const KeyFile = "secret.key"

// LoadKeyring returns the keyring for the configured key (base64), or, when there is none,
// for the key in dataDir/secret.key, which it creates on first use. generated reports the
// latter.
func LoadKeyring(configured, dataDir string) (k *Keyring, generated bool, err error) {
	if configured != "" {
		key, err := ParseKey(configured)
		if err != nil {
			return nil, false, err
		}
		k, err := NewKeyring(key)
		return k, false, err
	}
	path := filepath.Join(dataDir, KeyFile)
	raw, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		key := newSecret()
		if err := os.MkdirAll(dataDir, 0o700); err != nil {
			return nil, true, fmt.Errorf("creating data directory: %w", err)
		}
		// O_EXCL: two processes starting together do not overwrite each other's key.
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, os.ErrExist) {
			return LoadKeyring("", dataDir)
		}
		if err != nil {
			return nil, true, fmt.Errorf("writing %s: %w", path, err)
		}
		_, werr := f.WriteString(base64.StdEncoding.EncodeToString(key) + "\n")
		if cerr := f.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			return nil, true, fmt.Errorf("writing %s: %w", path, werr)
		}
		k, err := NewKeyring(key)
		return k, true, err
	case err != nil:
		return nil, true, fmt.Errorf("reading %s: %w", path, err)
	}
	key, err := ParseKey(string(raw))
	if err != nil {
		return nil, true, fmt.Errorf("%s: %w", path, err)
	}
	k, err = NewKeyring(key)
	return k, true, err
}

// Seal encrypts secret for the row identified by aad.
func (k *Keyring) Seal(secret []byte, aad string) []byte {
	nonce := make([]byte, k.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		panic(fmt.Errorf("webhook: reading randomness: %w", err))
	}
	out := append([]byte{sealedVersion}, k.id[:]...)
	out = append(out, nonce...)
	return k.aead.Seal(out, nonce, secret, []byte(aad))
}

// ErrOtherKey means a secret was sealed under another key than the configured one.
var ErrOtherKey = errors.New("the webhook secret was encrypted with another WAGATE_SECRET_KEY")

// Open decrypts a value sealed for aad.
func (k *Keyring) Open(sealed []byte, aad string) ([]byte, error) {
	head := 1 + len(k.id) + k.aead.NonceSize()
	if len(sealed) < head+k.aead.Overhead() || sealed[0] != sealedVersion {
		return nil, errors.New("the webhook secret is malformed")
	}
	if string(sealed[1:1+len(k.id)]) != string(k.id[:]) {
		return nil, ErrOtherKey
	}
	nonce := sealed[1+len(k.id) : head]
	plain, err := k.aead.Open(nil, nonce, sealed[head:], []byte(aad))
	if err != nil {
		return nil, errors.New("the webhook secret does not decrypt")
	}
	return plain, nil
}
