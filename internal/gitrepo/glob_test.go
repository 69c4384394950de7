package gitrepo

import (
	"reflect"
	"strings"
	"testing"
)

// Expectations follow Ruby's File.fnmatch(pattern, path,
// File::FNM_PATHNAME | File::FNM_DOTMATCH | File::FNM_EXTGLOB).
func TestGlobMatch(t *testing.T) {
	tests := []struct {
		pattern, path string
		want          bool
	}{
		{"*", "a.txt", true},
		{"*", "dir/a.txt", false},
		{"*", ".hidden", true},
		{"*.rb", "lib/a.rb", false},
		{"**/*.rb", "a.rb", true},
		{"**/*.rb", "lib/a.rb", true},
		{"**/*.rb", "lib/x/y/a.rb", true},
		{"**/*.rb", ".dot/a.rb", true},
		{"lib/**/*.rb", "lib/a.rb", true},
		{"lib/**/*.rb", "lib/x/a.rb", true},
		{"lib/**/*.rb", "other/lib/a.rb", false},
		{"**/lib/*.rb", "x/lib/a.rb", true},
		{"lib/**", "lib/a", true},
		{"lib/**", "lib/a/b", false},
		{"**", "a", true},
		{"**", "a/b", false},
		{"**/**/*.go", "a/b/c.go", true},
		{"a**b", "axxb", true},
		{"?", "a", true},
		{"?", "ab", false},
		{"?", "é", true},
		{"[a-c]x", "bx", true},
		{"[a-c]x", "dx", false},
		{"[!a-c]x", "dx", true},
		{"[^a-c]x", "ax", false},
		{"[]]", "]", true},
		{"[\\]]", "]", true},
		{"[", "[", true},
		{"a[", "a[", true},
		{"\\*", "*", true},
		{"\\*", "a", false},
		{"{a,b}.txt", "b.txt", true},
		{"{a,b}.txt", "c.txt", false},
		{"{src,lib}/**/*.{js,ts}", "lib/x/y.ts", true},
		{"{src,lib}/**/*.{js,ts}", "test/y.ts", false},
		{"{a,{b,c}}", "c", true},
		{"{a", "{a", true},
		{"x{}y", "xy", true},
		{"*.{yml,yaml}", ".gitlab-ci.yml", true},
		{"Dockerfile*", "Dockerfile.prod", true},
		{"*a*b*c*", "xxaxxbxxcxx", true},
		{"*a*b*c*d", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaabc", false},
	}
	for _, tc := range tests {
		pats := compileGlob(tc.pattern)
		got := false
		for _, p := range pats {
			if p.match(strings.Split(tc.path, "/")) {
				got = true
			}
		}
		if got != tc.want {
			t.Errorf("match(%q, %q) = %v, want %v", tc.pattern, tc.path, got, tc.want)
		}
	}
}

func TestGlobPruning(t *testing.T) {
	tests := []struct {
		pattern, dir string
		want         bool
	}{
		{"src/*.go", "src", true},
		{"src/*.go", "lib", false},
		{"src/*.go", "src/sub", false},
		{"**/*.go", "any/depth/here", true},
		{"a/**/b/*.go", "a/x/y", true},
		{"*", "dir", false},
		{"{src,lib}/*", "lib", true},
	}
	for _, tc := range tests {
		got := false
		for _, p := range compileGlob(tc.pattern) {
			if p.couldMatchUnder(strings.Split(tc.dir, "/")) {
				got = true
			}
		}
		if got != tc.want {
			t.Errorf("couldMatchUnder(%q, %q) = %v, want %v", tc.pattern, tc.dir, got, tc.want)
		}
	}
}

func TestExpandBracesBounded(t *testing.T) {
	if got := expandBraces("{a,b}{c,d}", 100); !reflect.DeepEqual(got, []string{"ac", "ad", "bc", "bd"}) {
		t.Errorf("expandBraces = %q", got)
	}
	hostile := strings.Repeat("{a,b,c,d}", 30)
	if got := expandBraces(hostile, maxBraceExpansions); len(got) > maxBraceExpansions {
		t.Errorf("expansion not bounded: %d", len(got))
	}
}
