package api

import (
	"context"
	"fmt"
	"net/http"
	"testing"

	"github.com/kilnci/kiln/internal/auth"
)

// TestUpdateUser: GitLab's PUT /users/:id is for administrators; it changes
// name, email, admin and password (checked like on creation), refuses bad
// input with 400 and nothing written, and 404s unknown users.
func TestUpdateUser(t *testing.T) {
	ta := newTestAPI(t)
	ctx := context.Background()
	aliceTok, alice := ta.user("alice")
	path := fmt.Sprintf("/api/v4/users/%d", alice.ID)

	if code, _, _ := ta.do(aliceTok, "PUT", path, formCT, form("name", "Mallory")); code != http.StatusForbidden {
		t.Fatalf("non-admin: %d", code)
	}
	if code, _, _ := ta.do("", "PUT", path, formCT, form("name", "Mallory")); code != http.StatusUnauthorized {
		t.Fatalf("anonymous: %d", code)
	}
	for _, tc := range []struct{ name, body string }{
		{"short password", form("password", "short", "name", "Changed")},
		{"bad email", form("email", "nope", "name", "Changed")},
		{"empty name", form("name", "")},
		{"rename", form("username", "bob", "name", "Changed")},
		{"bad admin", form("admin", "maybe", "name", "Changed")},
		{"list name", `{"name":["a","b"]}`},
	} {
		ct := formCT
		if tc.body[0] == '{' {
			ct = "application/json"
		}
		code, body, _ := ta.do(ta.root, "PUT", path, ct, tc.body)
		if code != http.StatusBadRequest || (body["message"] == nil && body["error"] == nil) {
			t.Errorf("%s: %d %v", tc.name, code, body)
		}
	}
	u, _ := ta.store.UserByID(ctx, alice.ID)
	if u.Name != "alice" || u.PasswordHash != "" {
		t.Fatalf("refused updates wrote: %+v", u)
	}
	code, body, _ := ta.do(ta.root, "PUT", path, formCT, form("name", "Alice A.", "email", "alice@example.com", "password", "alicepassword1"))
	if code != http.StatusOK || body["name"] != "Alice A." || body["email"] != "alice@example.com" {
		t.Fatalf("update: %d %v", code, body)
	}
	u, _ = ta.store.UserByID(ctx, alice.ID)
	if !auth.CheckPassword(u.PasswordHash, "alicepassword1") {
		t.Fatal("password not set")
	}
	if code, _, _ := ta.do(ta.root, "PUT", "/api/v4/users/999", formCT, form("name", "x")); code != http.StatusNotFound {
		t.Fatalf("unknown user: %d", code)
	}
	// An administrator cannot demote themselves (nobody would be left to undo it).
	if code, _, _ := ta.do(ta.root, "PUT", "/api/v4/users/1", formCT, form("admin", "false")); code != http.StatusBadRequest {
		t.Fatalf("self-demotion: %d", code)
	}
}
