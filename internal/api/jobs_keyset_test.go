package api

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"
)

// TestJobsKeysetPagination follows the Link header of keyset pages to the
// end and checks that every job comes exactly once, newest first.
func TestJobsKeysetPagination(t *testing.T) {
	e := newCIEnv(t, map[string]string{".gitlab-ci.yml": "a:\n  script: x\nb:\n  script: x\nc:\n  script: x\n"})
	base := "/api/v4/projects/group%2Fapp"
	for i := 0; i < 3; i++ {
		e.expect(201, "maintainer", "POST", base+"/pipeline", map[string]any{"ref": "main"})
	}
	path := base + "/jobs?pagination=keyset&per_page=4"
	var ids []int64
	for pages := 0; path != ""; pages++ {
		if pages > 5 {
			t.Fatal("Link never ends")
		}
		code, raw, h := e.doRaw("reporter", "GET", path, nil)
		if code != 200 || h.Get("X-Total") != "" {
			t.Fatalf("GET %s: %d %s (X-Total %q)", path, code, raw, h.Get("X-Total"))
		}
		var page []map[string]any
		json.Unmarshal(raw, &page)
		for _, j := range page {
			ids = append(ids, num(j["id"]))
		}
		path = ""
		if l := h.Get("Link"); l != "" {
			u, err := url.Parse(strings.TrimSuffix(strings.TrimPrefix(l, "<"), `>; rel="next"`))
			if err != nil {
				t.Fatal(err)
			}
			path = u.RequestURI()
		}
	}
	if len(ids) != 9 {
		t.Fatalf("got %d jobs: %v", len(ids), ids)
	}
	for i := 1; i < len(ids); i++ {
		if ids[i] >= ids[i-1] {
			t.Fatalf("not newest first: %v", ids)
		}
	}
	if code, _ := e.do("reporter", "GET", base+"/jobs?pagination=keyset&cursor=!!", nil); code != 400 {
		t.Fatalf("bad cursor: %d", code)
	}
	if code, _ := e.do("reporter", "GET", base+"/jobs?pagination=keyset&order_by=name", nil); code != 400 {
		t.Fatalf("bad order_by: %d", code)
	}
}
