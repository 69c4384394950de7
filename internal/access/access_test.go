package access

import (
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
