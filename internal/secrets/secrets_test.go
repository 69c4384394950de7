package secrets

import (
	"strings"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	dir := t.TempDir()
	k1, err := LoadKey("", dir)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := LoadKey("", dir)
	if err != nil || string(k1) != string(k2) {
		t.Fatalf("key not persisted: %v", err)
	}
	b, _ := New(k1)
	s := b.Seal("hunter2")
	if strings.Contains(s, "hunter2") {
		t.Fatal("plaintext visible")
	}
	if got, err := b.Open(s); err != nil || got != "hunter2" {
		t.Fatalf("Open = %q, %v", got, err)
	}
	if _, err := b.Open(s[:len(s)-2] + "AA"); err == nil {
		t.Fatal("tampered ciphertext accepted")
	}
	if _, err := LoadKey("zz", dir); err == nil {
		t.Fatal("bad env key accepted")
	}
}
