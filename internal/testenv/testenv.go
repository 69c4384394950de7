// Package testenv finds the real services Kiln's tests use (PostgreSQL,
// Chromium) and decides whether a test skips or fails when one is missing:
// locally a missing service skips with a clear message; under .ci/run
// (KILN_REQUIRE_SERVICES=1) it fails, so CI can never pass by skipping.
package testenv

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"os"
	"os/exec"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
)

// DefaultPostgres is the PostgreSQL these machines run.
const DefaultPostgres = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

func required() bool { return os.Getenv("KILN_REQUIRE_SERVICES") == "1" }

func missing(t testing.TB, what string) {
	t.Helper()
	if required() {
		t.Fatalf("%s is required (KILN_REQUIRE_SERVICES=1) but not available", what)
	}
	t.Skipf("SKIP: %s is not available; set it up (see README) or run bash .ci/run", what)
}

// PostgresDSN returns a DSN for the test PostgreSQL, or skips/fails.
func PostgresDSN(t testing.TB) string {
	t.Helper()
	dsn := os.Getenv("KILN_TEST_POSTGRES")
	if dsn == "" {
		dsn = DefaultPostgres
	}
	db, err := sql.Open("pgx", dsn)
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		err = db.PingContext(ctx)
		cancel()
		db.Close()
	}
	if err != nil {
		missing(t, "PostgreSQL at "+dsn+" ("+err.Error()+")")
	}
	return dsn
}

// UniqueName returns a name for a per-test schema or database.
func UniqueName(prefix string) string {
	var b [6]byte
	rand.Read(b[:])
	return prefix + "_" + hex.EncodeToString(b[:])
}

// Chromium returns the path of a headless-capable Chromium, or skips/fails.
func Chromium(t testing.TB) string {
	t.Helper()
	for _, p := range []string{os.Getenv("KILN_CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if p == "" {
			continue
		}
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("chromium"); err == nil {
		return p
	}
	missing(t, "Chromium (apt-get install chromium)")
	return ""
}

// Git returns the git binary path, or fails: git is a hard requirement.
func Git(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("git")
	if err != nil {
		t.Fatal("git is required for Kiln's tests: install git")
	}
	return p
}
