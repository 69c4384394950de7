package runnerapi

import (
	"net/url"
	"testing"
)

func TestFormInto(t *testing.T) {
	var req registerRequest
	vals := url.Values{"token": {"GR1348941abc"}, "description": {"ci box"}, "tag_list": {"ruby,mysql"}, "run_untagged": {"false"}, "maximum_timeout": {"600"}}
	if err := formInto(&req, vals); err != nil {
		t.Fatal(err)
	}
	tags, ok := ParseTagList(req.TagList)
	if req.Token != "GR1348941abc" || req.Description != "ci box" || !ok || len(tags) != 2 || req.RunUntagged == nil || *req.RunUntagged || req.MaximumTimeout != 600 {
		t.Fatalf("got %+v tags %v", req, tags)
	}
	if err := formInto(&req, url.Values{"maximum_timeout": {"ten"}}); err == nil || err.Error() != "maximum_timeout is invalid" {
		t.Fatalf("bad int: %v", err)
	}
	if err := formInto(&req, url.Values{"locked": {"maybe"}}); err == nil {
		t.Fatal("bad bool accepted")
	}
}
