package server

import (
	"encoding/base64"
	"strings"
	"testing"
)

func TestDummyHashParses(t *testing.T) {
	parts := strings.Split(dummyPasswordHash, "$")
	if len(parts) != 4 {
		t.Fatal("parts")
	}
	if _, err := base64.RawStdEncoding.DecodeString(parts[2]); err != nil {
		t.Fatal(err)
	}
	if b, err := base64.RawStdEncoding.DecodeString(parts[3]); err != nil || len(b) != 32 {
		t.Fatal(err, len(b))
	}
}
