package archtest

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestAPIDocsListEveryRoute: every route registered with a literal
// "METHOD /path" pattern (handle, Handle, HandleFunc) anywhere under
// internal/ is listed in docs/api.md's endpoint index, and the index lists
// nothing twice. (Patterns built by concatenation, as for schedules,
// protected refs and webhook triggers, are listed by hand.)
func TestAPIDocsListEveryRoute(t *testing.T) {
	doc, err := os.ReadFile("../../docs/api.md")
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(doc), "<!-- endpoint-index -->\n```text\n")
	if !ok {
		t.Fatal("docs/api.md has no endpoint index")
	}
	block, _, _ := strings.Cut(after, "```")
	listed := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(block), "\n") {
		if listed[line] {
			t.Errorf("listed twice: %s", line)
		}
		listed[line] = true
	}
	re := regexp.MustCompile(`(?:\.handle|\.Handle|HandleFunc)\("((?:GET|POST|PUT|PATCH|DELETE|HEAD) /[^"]*)"`)
	found := 0
	err = filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range re.FindAllStringSubmatch(string(src), -1) {
			found++
			if !listed[m[1]] {
				t.Errorf("%s registers %q, which docs/api.md's endpoint index does not list", path, m[1])
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if found < 50 {
		t.Fatalf("found only %d literal routes: the scan is broken", found)
	}
}
