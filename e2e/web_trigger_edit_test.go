package e2e

import (
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestWebTriggerEdit: in Chromium, the owner edits a trigger token's
// allowed refs on its edit page (Settings › CI/CD › trigger tokens ›
// Edit); afterwards a call for a ref the new policy refuses is a 403 that
// creates nothing, one for an allowed ref still runs, and the refusal's
// reason shows in the trigger deliveries table. On SQLite and PostgreSQL.
func TestWebTriggerEdit(t *testing.T) {
	b := newBrowser(t)
	for _, kind := range dbKinds() {
		t.Run(kind, func(t *testing.T) { testWebTriggerEdit(t, b, kind) })
	}
}

func testWebTriggerEdit(t *testing.T, b *browser, kind string) {
	f := newHookFixture(t, kind)
	s := f.s
	var tr map[string]any
	if code, _ := s.call("POST", "/api/v4/projects/"+f.projectID+"/triggers", url.Values{"description": {"deployer"}}, &tr); code != 201 {
		t.Fatalf("create trigger: %d %v", code, tr)
	}
	token := tr["token"].(string)
	api := s.URL + "/api/v4/projects/" + f.projectID + "/trigger/pipeline"
	// Before the edit any ref runs.
	trigDo(t, "POST", api, "application/x-www-form-urlencoded", strings.NewReader(url.Values{"token": {token}, "ref": {"master"}}.Encode()), nil).
		want(t, 201, "master before the edit")

	root := b.tab()
	b.signIn(root, s.URL, "root", "rootpassword1")
	var policy, flash string
	b.run(root, "edit-trigger",
		chromedp.Navigate(s.URL+"/hooks/app/-/settings/ci_cd"),
		chromedp.WaitVisible(chromedp.CSS(`.trigger-row .edit-trigger`)),
		chromedp.Click(chromedp.CSS(`.trigger-row .edit-trigger`)),
		chromedp.WaitVisible(chromedp.ID(`edit-allowed-refs`)),
		chromedp.Clear(chromedp.ID(`edit-description`)),
		chromedp.SendKeys(chromedp.ID(`edit-description`), "tags only"),
		chromedp.SendKeys(chromedp.ID(`edit-allowed-refs`), "v*"),
		chromedp.SendKeys(chromedp.ID(`edit-rate-limit`), "30"),
		chromedp.Click(chromedp.ID(`save-trigger`)),
		chromedp.WaitVisible(chromedp.CSS(`.trigger-row .trigger-policy`)),
		text(`.trigger-row .trigger-policy`, &policy),
		text(`.flash`, &flash),
	)
	if !strings.Contains(policy, "refs: v*") || !strings.Contains(flash, "was updated") {
		t.Fatalf("after the edit: policy %q, flash %q", policy, flash)
	}
	// A bad value is shown on the edit page and changes nothing.
	var errText, violations string
	b.run(root, "edit-trigger-bad",
		chromedp.Click(chromedp.CSS(`.trigger-row .edit-trigger`)),
		chromedp.WaitVisible(chromedp.ID(`edit-allowed-cidrs`)),
		chromedp.SendKeys(chromedp.ID(`edit-allowed-cidrs`), "10.0.0.0/33"),
		chromedp.Click(chromedp.ID(`save-trigger`)),
		chromedp.WaitVisible(chromedp.ID(`trigger-edit-error`)),
		text(`#trigger-edit-error`, &errText),
		axeAudit(loadAxe(t), &violations),
	)
	if !strings.Contains(errText, "is not a network") {
		t.Fatalf("error shown: %q", errText)
	}
	if violations != "" {
		t.Errorf("axe-core violations on the edit page:\n%s", violations)
	}
	var got map[string]any
	s.call("GET", "/api/v4/projects/"+f.projectID+"/triggers/"+jsonID(tr["id"]), nil, &got)
	if got["description"] != "tags only" || jsonString(got["allowed_refs"]) != `["v*"]` || jsonString(got["allowed_cidrs"]) != `[]` || got["rate_limit"] != float64(30) {
		t.Fatalf("stored policy: %v", got)
	}

	before := f.pipelineCount(t)
	r := trigDo(t, "POST", api, "application/x-www-form-urlencoded", strings.NewReader(url.Values{"token": {token}, "ref": {"master"}}.Encode()), nil)
	r.want(t, 403, "master after the edit")
	if !strings.Contains(r.raw, "may not run pipelines for ref 'master'") {
		t.Fatalf("refusal: %s", r.raw)
	}
	if n := f.pipelineCount(t); n != before {
		t.Fatalf("a refused ref created a pipeline")
	}
	trigDo(t, "POST", api, "application/x-www-form-urlencoded", strings.NewReader(url.Values{"token": {token}, "ref": {"v1.0.0"}}.Encode()), nil).
		want(t, 201, "an allowed tag after the edit")

	var reason string
	b.run(root, "deliveries",
		chromedp.Navigate(s.URL+"/hooks/app/-/settings/ci_cd#deliveries"),
		chromedp.WaitVisible(chromedp.CSS(`.deliveries .delivery-refused .reason`)),
		text(`.deliveries .delivery-refused .reason`, &reason),
	)
	if !strings.Contains(reason, "ref 'master' matches none of the allowed refs v*") {
		t.Fatalf("delivery reason: %q", reason)
	}
	b.shot(root, "trigger-edit-"+kind)

	// The API's PUT (the same rules): expires_at set and cleared; a bad
	// field refuses the whole request, the description given with it too.
	put := "/api/v4/projects/" + f.projectID + "/triggers/" + jsonID(tr["id"])
	exp := time.Now().Add(45 * 24 * time.Hour).UTC().Format("2006-01-02")
	var upd map[string]any
	if code, _ := s.call("PUT", put, url.Values{"expires_at": {exp}}, &upd); code != 200 || !strings.HasPrefix(fmt.Sprint(upd["expires_at"]), exp) {
		t.Fatalf("PUT expires_at: %d %v", code, upd)
	}
	if code, _ := s.call("PUT", put, url.Values{"description": {"renamed"}, "expires_at": {"2001-01-01"}}, &upd); code != 400 || !strings.Contains(jsonString(upd), "must be in the future") {
		t.Fatalf("PUT past expires_at: %d %v", code, upd)
	}
	if code, _ := s.call("PUT", put, url.Values{"description": {"renamed"}, "rate_limit": {"-1"}}, &upd); code != 400 {
		t.Fatalf("PUT bad rate: %d %v", code, upd)
	}
	s.call("GET", put, nil, &got)
	if got["description"] != "tags only" || !strings.HasPrefix(fmt.Sprint(got["expires_at"]), exp) {
		t.Fatalf("refused PUTs wrote: %v", got)
	}
	upd = nil
	if code, _ := s.call("PUT", put, url.Values{"expires_at": {""}}, &upd); code != 200 || upd["expires_at"] != nil {
		t.Fatalf("PUT clear expires_at: %d %v", code, upd)
	}
}
