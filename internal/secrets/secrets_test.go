package secrets

import (
	"errors"
	"os"
	"path/filepath"
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

func TestVerify(t *testing.T) {
	k1, k2 := make([]byte, 32), make([]byte, 32)
	k2[0] = 1
	b1, _ := New(k1)
	b2, _ := New(k2)
	check, err := b1.Verify("", nil)
	if err != nil || check == "" {
		t.Fatalf("first start: %q, %v", check, err)
	}
	for _, tc := range []struct {
		name    string
		box     *Box
		stored  string
		samples []string
		wrong   bool
		newOne  bool
	}{
		{"same key, stored check", b1, check, nil, false, false},
		{"other key, stored check", b2, check, nil, true, false},
		{"garbage check", b1, "xyz", nil, true, false},
		{"no check, samples sealed with it", b1, "", []string{b1.Seal("a"), b1.Seal("b")}, false, true},
		{"no check, a sample of another key", b1, "", []string{b1.Seal("a"), b2.Seal("b")}, true, false},
		{"no check, nothing sealed", b2, "", nil, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.box.Verify(tc.stored, tc.samples)
			if (err != nil) != tc.wrong || (tc.wrong && !errors.Is(err, ErrWrongKey)) {
				t.Fatalf("err %v, want wrong=%v", err, tc.wrong)
			}
			if (got != "") != tc.newOne {
				t.Fatalf("new check %q, want one=%v", got, tc.newOne)
			}
			if got != "" {
				if pt, err := tc.box.Open(got); err != nil || pt != CheckPlaintext {
					t.Fatalf("new check opens to %q, %v", pt, err)
				}
			}
		})
	}
	f := filepath.Join(t.TempDir(), "k")
	if _, err := LoadKeyFrom("", f, t.TempDir()); err == nil {
		t.Error("missing key file accepted")
	}
	os.WriteFile(f, []byte(strings.Repeat("ab", 32)+"\n"), 0o600)
	if k, err := LoadKeyFrom("", f, t.TempDir()); err != nil || k[0] != 0xab {
		t.Errorf("key file: %x, %v", k, err)
	}
}
