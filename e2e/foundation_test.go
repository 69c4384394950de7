package e2e

import (
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestFoundation is issue #2's walk-through: create a group and a project,
// push with git, clone back, restart, and find everything still there.
func TestFoundation(t *testing.T) {
	for _, kind := range dbKinds() {
		t.Run(kind, func(t *testing.T) {
			testenv := newServer(t, kind)
			s := testenv
			s.start()

			var me map[string]any
			if code, _ := s.call("GET", "/api/v4/user", nil, &me); code != 200 || me["username"] != "root" {
				t.Fatalf("GET /user: %d %v", code, me)
			}
			var group map[string]any
			if code, _ := s.call("POST", "/api/v4/groups", map[string]any{"name": "Group", "path": "group"}, &group); code != 201 {
				t.Fatalf("create group: %d %v", code, group)
			}
			var proj map[string]any
			code, _ := s.call("POST", "/api/v4/projects", url.Values{"name": {"App"}, "path": {"app"}, "namespace_id": {jsonID(group["id"])}}, &proj)
			if code != 201 || proj["path_with_namespace"] != "group/app" || proj["http_url_to_repo"] != s.URL+"/group/app.git" {
				t.Fatalf("create project: %d %v", code, proj)
			}

			work := newWorkRepo(t, "main", map[string]string{"README.md": "hello\n", "dir/file.txt": "x\n"})
			git(t, work, "push", "-q", s.authURL("group/app"), "main")
			git(t, work, "tag", "v1.0")
			git(t, work, "push", "-q", s.authURL("group/app"), "v1.0")

			// First pushed branch becomes the default branch.
			var got map[string]any
			s.call("GET", "/api/v4/projects/group%2Fapp", nil, &got)
			if got["default_branch"] != "main" {
				t.Fatalf("default_branch = %v, want main", got["default_branch"])
			}
			var branches []map[string]any
			if code, _ := s.call("GET", "/api/v4/projects/group%2Fapp/repository/branches", nil, &branches); code != 200 || len(branches) != 1 || branches[0]["name"] != "main" {
				t.Fatalf("branches: %d %v", code, branches)
			}
			var file map[string]any
			if code, _ := s.call("GET", "/api/v4/projects/"+jsonID(proj["id"])+"/repository/files/dir%2Ffile.txt?ref=v1.0", nil, &file); code != 200 || file["content"] != "eAo=" {
				t.Fatalf("file: %d %v", code, file)
			}

			clone := filepath.Join(t.TempDir(), "clone")
			git(t, "", "clone", "-q", s.authURL("group/app"), clone)
			if b, _ := os.ReadFile(filepath.Join(clone, "README.md")); string(b) != "hello\n" {
				t.Fatalf("clone README = %q", b)
			}

			// Anonymous access to a private project is challenged, not served.
			if out, err := gitErr("", "ls-remote", s.URL+"/group/app.git"); err == nil {
				t.Fatalf("anonymous ls-remote of a private project succeeded: %s", out)
			}
			// A wrong token is refused.
			bad := strings.Replace(s.authURL("group/app"), rootToken, "glpat-wrong", 1)
			if _, err := gitErr("", "ls-remote", bad); err == nil {
				t.Fatal("ls-remote with a wrong token succeeded")
			}

			// URLs that try to leave the repositories directory find nothing.
			for _, evil := range []string{"/..%2f..%2fetc.git/info/refs?service=git-upload-pack", "/group/..%2f..%2f..%2fetc.git/info/refs?service=git-upload-pack", "/group/app.git/../../x.git/info/refs"} {
				req, _ := http.NewRequest("GET", s.URL+evil, nil)
				req.SetBasicAuth("root", rootToken)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode == 200 {
					t.Errorf("%s answered 200", evil)
				}
			}

			// Restart (a crash, then a normal start): everything is still there.
			s.kill()
			s.start()
			s.call("GET", "/api/v4/projects/group%2Fapp", nil, &got)
			if got["default_branch"] != "main" || got["name"] != "App" {
				t.Fatalf("after restart: %v", got)
			}
			clone2 := filepath.Join(t.TempDir(), "clone2")
			git(t, "", "clone", "-q", s.authURL("group/app"), clone2)
			var tags []map[string]any
			if code, _ := s.call("GET", "/api/v4/projects/group%2Fapp/repository/tags", nil, &tags); code != 200 || len(tags) != 1 {
				t.Fatalf("tags after restart: %d %v", code, tags)
			}
			s.stop()
		})
	}
}

func jsonID(v any) string {
	if f, ok := v.(float64); ok {
		return strconv.FormatInt(int64(f), 10)
	}
	return fmt.Sprint(v)
}
