// Package auth creates and checks secrets: personal access tokens, trigger,
// runner and job tokens, and passwords. Secrets are stored only as hashes.
package auth

import (
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
)

// Token prefixes, as GitLab uses them, so that secret scanners recognise Kiln's tokens.
const (
	PATPrefix     = "glpat-"
	TriggerPrefix = "glptt-"
	RunnerPrefix  = "glrt-"
	JobPrefix     = "glcbt-"
	// RegistrationPrefix marks the legacy instance runner registration token.
	RegistrationPrefix = "GR1348941"
)

// NewToken returns prefix followed by 40 hex characters (160 bits) of randomness.
func NewToken(prefix string) string {
	var b [20]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("crypto/rand failed: " + err.Error()) // the OS RNG failing leaves nothing safe to do
	}
	return prefix + hex.EncodeToString(b[:])
}

// Hash returns the storage form of a high-entropy token. A plain SHA-256 is
// enough: the tokens carry 160 random bits, so there is nothing to brute-force,
// and a fast hash keeps the lookup on the trigger hot path cheap.
func Hash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// Equal compares two secrets in constant time.
func Equal(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// ShortToken is the form shown after creation: the prefix dropped and the
// first four characters kept, as GitLab's short_token.
func ShortToken(token string) string {
	for _, p := range []string{PATPrefix, TriggerPrefix, RunnerPrefix, JobPrefix} {
		token = strings.TrimPrefix(token, p)
	}
	if len(token) > 4 {
		token = token[:4]
	}
	return token
}

const pbkdf2Iterations = 100_000

// HashPassword derives a salted PBKDF2-SHA256 hash for storage.
func HashPassword(password string) (string, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	key, err := pbkdf2.Key(sha256.New, password, salt, pbkdf2Iterations, 32)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("pbkdf2-sha256$%d$%s$%s", pbkdf2Iterations, base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key)), nil
}

// CheckPassword reports whether password matches a HashPassword result.
func CheckPassword(stored, password string) bool {
	parts := strings.Split(stored, "$")
	if len(parts) != 4 || parts[0] != "pbkdf2-sha256" {
		return false
	}
	iter, err := strconv.Atoi(parts[1])
	if err != nil || iter < 1 || iter > 10_000_000 {
		return false
	}
	salt, err1 := base64.RawStdEncoding.DecodeString(parts[2])
	want, err2 := base64.RawStdEncoding.DecodeString(parts[3])
	if err1 != nil || err2 != nil {
		return false
	}
	got, err := pbkdf2.Key(sha256.New, password, salt, iter, len(want))
	if err != nil {
		return false
	}
	return subtle.ConstantTimeCompare(got, want) == 1
}
