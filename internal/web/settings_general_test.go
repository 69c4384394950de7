package web

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/kilnci/kiln/internal/store"
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

// TestGeneralPipelinesVariablesRole: the General pipelines form sets the
// minimum role to use pipeline variables; an unknown role saves nothing;
// the run form then refuses variables below it with GitLab's message and
// creates nothing.
func TestGeneralPipelinesVariablesRole(t *testing.T) {
	f := newFixture(t)
	c := f.client()
	_, tok := f.signIn(c, "root", "password123")
	u := f.srv.URL + "/root/app/-/settings/ci_cd/general"
	post(t, c, u, url.Values{"authenticity_token": {tok}, "ci_separated_caches": {"1"}, "ci_pipeline_variables_minimum_override_role": {"guest"}})
	if p, _ := f.st.ProjectByID(context.Background(), f.project.ID); p.VariablesMinRole != "developer" {
		t.Fatalf("invalid role saved: %q", p.VariablesMinRole)
	}
	if code, _ := post(t, c, u, url.Values{"authenticity_token": {tok}, "ci_separated_caches": {"1"}, "ci_pipeline_variables_minimum_override_role": {"no_one_allowed"}}); code != http.StatusSeeOther {
		t.Fatalf("save: %d", code)
	}
	if p, _ := f.st.ProjectByID(context.Background(), f.project.ID); p.VariablesMinRole != "no_one_allowed" {
		t.Fatalf("role not saved: %q", p.VariablesMinRole)
	}
	if _, body := get(t, c, f.srv.URL+"/root/app/-/settings/ci_cd"); !strings.Contains(body, `<option value="no_one_allowed" selected>`) {
		t.Fatalf("select does not show the saved role")
	}
	code, body := post(t, c, f.srv.URL+"/root/app/-/pipelines", url.Values{"authenticity_token": {tok}, "ref": {"main"}, "var_key": {"A"}, "var_value": {"1"}})
	if code != http.StatusForbidden || !strings.Contains(body, "Insufficient permissions to set pipeline variables") {
		t.Fatalf("run form with variables: %d", code)
	}
	if pls, _, _ := f.st.ListPipelines(context.Background(), store.PipelineFilter{ProjectID: f.project.ID}, store.Page{Number: 1, PerPage: 10}); len(pls) != 0 {
		t.Fatalf("refused run created %d pipelines", len(pls))
	}
}
