// Package secrets encrypts values kept at rest (CI/CD variables, pipeline
// and schedule variables) with AES-256-GCM.
package secrets

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Box encrypts and decrypts with one key.
type Box struct{ aead cipher.AEAD }

// New makes a Box from a 32-byte key.
func New(key []byte) (*Box, error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("secrets key must be 32 bytes, got %d", len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Box{aead: aead}, nil
}

// LoadKey returns the key from env (64 hex characters) when set, otherwise
// from <dataDir>/secrets.key, creating it (mode 0600) on first start.
func LoadKey(env, dataDir string) ([]byte, error) {
	return LoadKeyFrom(env, "", dataDir)
}

// LoadKeyFrom returns the key from env (64 hex characters) when set,
// otherwise from file when given (it must exist: replicas that share one
// database must share one key, so a missing file is an operator's mistake,
// not a first start), otherwise from <dataDir>/secrets.key, creating it
// (mode 0600) on first start.
func LoadKeyFrom(env, file, dataDir string) ([]byte, error) {
	if env != "" {
		k, err := hex.DecodeString(strings.TrimSpace(env))
		if err != nil || len(k) != 32 {
			return nil, errors.New("KILN_SECRETS_KEY must be 64 hex characters (32 bytes)")
		}
		return k, nil
	}
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("secrets key file: %w (make one with: openssl rand -hex 32 > %s; chmod 600 %s)", err, file, file)
		}
		k, err := hex.DecodeString(strings.TrimSpace(string(b)))
		if err != nil || len(k) != 32 {
			return nil, fmt.Errorf("%s is corrupt: want 64 hex characters", file)
		}
		return k, nil
	}
	path := filepath.Join(dataDir, "secrets.key")
	if b, err := os.ReadFile(path); err == nil {
		k, err := hex.DecodeString(strings.TrimSpace(string(b)))
		if err != nil || len(k) != 32 {
			return nil, fmt.Errorf("%s is corrupt: want 64 hex characters", path)
		}
		return k, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", path, err)
	}
	defer f.Close()
	if _, err := f.WriteString(hex.EncodeToString(k) + "\n"); err != nil {
		return nil, err
	}
	return k, f.Sync()
}

// CheckPlaintext is what the key check sealed in the database decrypts to.
const CheckPlaintext = "kiln secrets key check v1"

// ErrWrongKey reports a key that cannot open what the database holds.
var ErrWrongKey = errors.New("secrets: this key cannot decrypt the database's secrets")

// Verify checks b against the database's key check (stored, as sealed by
// the first server that started with it) and, when there is none yet,
// against samples (values already sealed, from before the check existed).
// It returns the check to store when there was none. A wrong key is
// ErrWrongKey: starting with it would seal new values that the other
// replicas cannot read, and fail every job that needs an old one.
func (b *Box) Verify(stored string, samples []string) (newCheck string, err error) {
	if stored != "" {
		if pt, err := b.Open(stored); err != nil || pt != CheckPlaintext {
			return "", ErrWrongKey
		}
		return "", nil
	}
	for _, s := range samples {
		if _, err := b.Open(s); err != nil {
			return "", ErrWrongKey
		}
	}
	return b.Seal(CheckPlaintext), nil
}

// Seal encrypts plaintext into a printable string.
func (b *Box) Seal(plaintext string) string {
	nonce := make([]byte, b.aead.NonceSize())
	rand.Read(nonce)
	out := b.aead.Seal(nonce, nonce, []byte(plaintext), nil)
	return base64.RawStdEncoding.EncodeToString(out)
}

// Open decrypts a Seal result.
func (b *Box) Open(sealed string) (string, error) {
	raw, err := base64.RawStdEncoding.DecodeString(sealed)
	if err != nil || len(raw) < b.aead.NonceSize() {
		return "", errors.New("secrets: malformed ciphertext")
	}
	n := b.aead.NonceSize()
	pt, err := b.aead.Open(nil, raw[:n], raw[n:], nil)
	if err != nil {
		return "", errors.New("secrets: cannot decrypt (wrong key?)")
	}
	return string(pt), nil
}
