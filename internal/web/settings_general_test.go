package web

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// The "Use separate caches for protected branches" box saves
// ci_separated_caches; developers cannot change it.
func TestSeparatedCachesSetting(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	u := f.srv.URL + "/root/app/-/settings/ci_cd/general"

	dev := f.client()
	_, devTok := f.signIn(dev, "alice", "password123")
	if code, _ := post(t, dev, u, url.Values{"authenticity_token": {devTok}}); code == http.StatusSeeOther || code == http.StatusOK {
		t.Errorf("a developer changed the setting: %d", code)
	}
	if p, _ := f.st.ProjectByID(ctx, f.project.ID); !p.SeparatedCaches {
		t.Fatal("a developer turned separate caches off")
	}

	c := f.client()
	_, tok := f.signIn(c, "root", "password123")
	if _, page := get(t, c, f.srv.URL+"/root/app/-/settings/ci_cd"); !strings.Contains(page, `id="ci-separated-caches" checked`) {
		t.Fatal("the box is not shown checked by default")
	}
	if code, _ := post(t, c, u, url.Values{"authenticity_token": {tok}}); code != http.StatusSeeOther {
		t.Fatalf("turn off: %d", code)
	}
	if p, _ := f.st.ProjectByID(ctx, f.project.ID); p.SeparatedCaches {
		t.Error("unchecking the box did not turn separate caches off")
	}
	if code, _ := post(t, c, u, url.Values{"authenticity_token": {tok}, "ci_separated_caches": {"1"}}); code != http.StatusSeeOther {
		t.Fatalf("turn on: %d", code)
	}
	if p, _ := f.st.ProjectByID(ctx, f.project.ID); !p.SeparatedCaches {
		t.Error("checking the box did not turn separate caches on")
	}
}
