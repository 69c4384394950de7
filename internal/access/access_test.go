package access

import (
	"os/exec"
	"testing"

	"github.com/kilnci/kiln/internal/store"
)

func TestMatchRef(t *testing.T) {
	for _, tc := range []struct {
		pattern, name string
		want          bool
	}{
		{"main", "main", true},
		{"main", "main2", false},
		{"release/*", "release/1.0", true},
		{"release/*", "release/a/b", true}, // GitLab: '*' crosses '/'
		{"release/*", "release/", true},
		{"release/*", "release", false},
		{"release/*", "xrelease/1", false},
		{"*-stable", "1-0-stable", true},
		{"*-stable", "1-0-stable-test", false},
		{"*gitlab*", "master/gitlab/production", true},
		{"7.*.x", "7.3.x", true},
		{"7.*.x", "7.3.x-patch", false},
		{"v*", "v9", true},
		{"a*b*c", "abc", true},
		{"a*b*c", "aXbYbZc", true},
		{"a*b*c", "acb", false},
		{"ab*ba", "aba", false}, // prefix and suffix may not overlap
		{"v?", "v1", false},     // '?' is literal
		{"v?", "v?", true},
		{"[ab]", "a", false}, // '[' is literal
		{"", "", false},
		{"*", "anything/at/all", true},
	} {
		if got := MatchRef(tc.pattern, tc.name); got != tc.want {
			t.Errorf("MatchRef(%q, %q) = %v, want %v", tc.pattern, tc.name, got, tc.want)
		}
	}
}

func TestRefProtected(t *testing.T) {
	p := &store.Project{DefaultBranch: "main"}
	refs := []*store.ProtectedRef{{Kind: "branch", Name: "release/*"}, {Kind: "tag", Name: "v*"}}
	for _, tc := range []struct {
		name string
		tag  bool
		want bool
	}{
		{"main", false, true},
		{"main", true, false}, // a tag named like the default branch is not the branch
		{"release/a/b", false, true},
		{"v9", true, true},
		{"v9", false, false},
		{"feature", false, false},
	} {
		if got := RefProtected(p, refs, tc.name, tc.tag); got != tc.want {
			t.Errorf("RefProtected(%q, tag=%v) = %v, want %v", tc.name, tc.tag, got, tc.want)
		}
	}
}

func TestPipelineDenial(t *testing.T) {
	for _, tc := range []struct {
		level     int
		protected bool
		want      string
	}{
		{NoAccess, false, MsgCreatePipeline},
		{Reporter, false, MsgCreatePipeline},
		{Developer, false, ""},
		{Developer, true, MsgProtectedRef("main")},
		{Maintainer, true, ""},
		{Owner, true, ""},
	} {
		if got := PipelineDenial(tc.level, tc.protected, "main"); got != tc.want {
			t.Errorf("PipelineDenial(%d, %v) = %q, want %q", tc.level, tc.protected, got, tc.want)
		}
	}
}

func TestCanRead(t *testing.T) {
	u := &store.User{ID: 1}
	for _, tc := range []struct {
		vis   string
		u     *store.User
		level int
		want  bool
	}{
		{"private", u, NoAccess, false},
		{"private", u, Guest, false},
		{"private", u, Reporter, true},
		{"internal", nil, NoAccess, false},
		{"internal", u, NoAccess, true},
		{"public", nil, NoAccess, true},
	} {
		if got := CanRead(&store.Project{Visibility: tc.vis}, tc.u, tc.level); got != tc.want {
			t.Errorf("CanRead(%s, user=%v, %d) = %v", tc.vis, tc.u != nil, tc.level, got)
		}
	}
}

// TestMatchRefAgreesWithHook: the git pre-receive hook matches protected
// patterns with the shell's case (gitrepo's preReceiveHook, set -f). For
// every pattern a protected name can hold (ref-name characters and '*'),
// the shell and MatchRef must agree, or pushes and pipelines would disagree
// about what is protected.
func TestMatchRefAgreesWithHook(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	names := []string{"main", "release/1.0", "release/a/b", "release", "xrelease/1", "1-0-stable", "1-0-stable-test",
		"master/gitlab/production", "7.3.x", "7.3.x-patch", "v9", "v10", "aba", "feature/x"}
	patterns := []string{"main", "release/*", "*-stable", "*gitlab*", "7.*.x", "v*", "ab*ba", "*", "release/*/b", "*/x"}
	for _, pat := range patterns {
		for _, name := range names {
			cmd := exec.Command(sh, "-c", `set -f; case "refs/heads/$1" in $2) exit 0;; esac; exit 1`, "sh", name, "refs/heads/"+pat)
			hook := cmd.Run() == nil
			if got := MatchRef(pat, name); got != hook {
				t.Errorf("pattern %q, name %q: MatchRef %v, hook %v", pat, name, got, hook)
			}
		}
	}
}

func TestGitAccess(t *testing.T) {
	priv := &store.Project{ID: 1, Visibility: "private", JobTokenAllowlist: true}
	open := &store.Project{ID: 1, Visibility: "private"}
	pub := &store.Project{ID: 1, Visibility: "public", JobTokenAllowlist: true}
	u := &store.User{ID: 7}
	readOnly := &store.Token{Scopes: []string{"read_repository"}}
	for _, tc := range []struct {
		name        string
		p           *store.Project
		g           Git
		read, write bool
	}{
		{"developer", priv, Git{User: u, Level: Developer}, true, true},
		{"reporter", priv, Git{User: u, Level: Reporter}, true, false},
		{"guest", priv, Git{User: u, Level: Guest}, false, false},
		{"outsider of public", pub, Git{}, true, false},
		{"read-only token", priv, Git{User: u, Level: Maintainer, Token: readOnly}, true, false},
		{"job token, own project", priv, Git{User: u, Level: NoAccess, JobProjectID: 1}, true, false},
		{"job token, other project, allowlist on", priv, Git{User: u, Level: Developer, JobProjectID: 2}, false, false},
		{"job token, other project, allowlist off", open, Git{User: u, Level: Developer, JobProjectID: 2}, true, false},
		{"job token, other project, user cannot read", open, Git{User: u, Level: NoAccess, JobProjectID: 2}, false, false},
	} {
		r, w := GitAccess(tc.p, tc.g)
		if r != tc.read || w != tc.write {
			t.Errorf("%s: read %v write %v, want %v %v", tc.name, r, w, tc.read, tc.write)
		}
	}
}

func TestManagesToken(t *testing.T) {
	owner := &store.User{ID: 7}
	other := &store.User{ID: 8}
	admin := &store.User{ID: 9, IsAdmin: true}
	for _, c := range []struct {
		u    *store.User
		want bool
	}{{owner, true}, {other, false}, {admin, true}, {nil, false}} {
		if got := ManagesToken(7, c.u); got != c.want {
			t.Errorf("ManagesToken(7, %+v) = %v", c.u, got)
		}
	}
}
