package auth

import (
	"regexp"
	"testing"
)

func TestNewTokenFormat(t *testing.T) {
	tok := NewToken(TriggerPrefix)
	if !regexp.MustCompile(`^glptt-[0-9a-f]{40}$`).MatchString(tok) {
		t.Fatalf("token %q has the wrong shape", tok)
	}
	if NewToken(TriggerPrefix) == tok {
		t.Fatal("two tokens are equal")
	}
}

func TestShortToken(t *testing.T) {
	for in, want := range map[string]string{
		"glptt-abcdef0123": "abcd",
		"glpat-xy":         "xy",
		"6d056f63e50fe6f8": "6d05",
	} {
		if got := ShortToken(in); got != want {
			t.Errorf("ShortToken(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestPassword(t *testing.T) {
	h, err := HashPassword("s3cret pass")
	if err != nil {
		t.Fatal(err)
	}
	if !CheckPassword(h, "s3cret pass") {
		t.Fatal("right password refused")
	}
	for _, bad := range []string{"", "s3cret", "s3cret pass "} {
		if CheckPassword(h, bad) {
			t.Errorf("wrong password %q accepted", bad)
		}
	}
	for _, stored := range []string{"", "x$y", "pbkdf2-sha256$-1$a$b", "pbkdf2-sha256$99999999999$a$b"} {
		if CheckPassword(stored, "x") {
			t.Errorf("malformed hash %q accepted", stored)
		}
	}
}

func TestHashStable(t *testing.T) {
	if Hash("a") != Hash("a") || Hash("a") == Hash("b") || !Equal("x", "x") || Equal("x", "y") {
		t.Fatal("hash or compare broken")
	}
}
