package e2e

import (
	"net/url"
	"strings"
	"testing"
)

// TestDevelopersCannotPushProtectedRefs: the default branch and protected
// branches are maintainers' (pipelines there get protected variables);
// developers push everything else.
func TestDevelopersCannotPushProtectedRefs(t *testing.T) {
	s := newServer(t, "sqlite", "--builtin-runners", "0")
	s.start()
	var p, u, tok map[string]any
	if code, _ := s.call("POST", "/api/v4/projects", url.Values{"name": {"app"}}, &p); code != 201 {
		t.Fatalf("project: %d", code)
	}
	work := newWorkRepo(t, "main", map[string]string{"README.md": "x\n"})
	git(t, work, "push", "-q", s.authURL("root/app"), "main")
	s.call("POST", "/api/v4/users", url.Values{"username": {"dev"}, "name": {"Dev"}, "email": {"dev@example.com"}}, &u)
	s.call("POST", "/api/v4/users/"+jsonID(u["id"])+"/personal_access_tokens", url.Values{"name": {"t"}, "scopes[]": {"api"}}, &tok)
	if code, _ := s.call("POST", "/api/v4/projects/"+jsonID(p["id"])+"/members", url.Values{"user_id": {jsonID(u["id"])}, "access_level": {"30"}}, nil); code != 201 {
		t.Fatalf("member: %d", code)
	}
	s.call("POST", "/api/v4/projects/"+jsonID(p["id"])+"/protected_branches", url.Values{"name": {"release/*"}}, nil)
	devURL := strings.Replace(s.authURL("root/app"), "root:"+rootToken, "dev:"+tok["token"].(string), 1)

	git(t, work, "commit", "-q", "--allow-empty", "-m", "dev change")
	if out, err := gitErr(work, "push", devURL, "HEAD:main"); err == nil || !strings.Contains(out, "protected ref") {
		t.Fatalf("developer push to main: err %v\n%s", err, out)
	}
	if out, err := gitErr(work, "push", devURL, "HEAD:release/1.0"); err == nil {
		t.Fatalf("developer push to a protected wildcard branch succeeded:\n%s", out)
	}
	git(t, work, "push", "-q", devURL, "HEAD:feature")
	git(t, work, "push", "-q", s.authURL("root/app"), "HEAD:main") // maintainers (owner) may
}
