package e2e

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestWebPipelinePreview: the Run pipeline form's Preview button shows the
// jobs that would run, with the rule that decided, and creates nothing.
func TestWebPipelinePreview(t *testing.T) {
	b := newBrowser(t)
	s := newServer(t, "sqlite", "--builtin-runners", "0")
	s.start()
	var proj map[string]any
	if code, _ := s.call("POST", "/api/v4/projects", url.Values{"name": {"app"}}, &proj); code != 201 {
		t.Fatalf("create project: %d %v", code, proj)
	}
	ci := "stages: [build, deploy]\nbuild:\n  stage: build\n  script: echo\n" +
		"deploy:\n  stage: deploy\n  rules:\n    - if: $DEPLOY\n      when: manual\n  script: echo\n" +
		"pushes:\n  stage: build\n  rules:\n    - if: $CI_PIPELINE_SOURCE == \"push\"\n  script: echo\n"
	work := newWorkRepo(t, "main", map[string]string{".gitlab-ci.yml": ci})
	git(t, work, "push", "-q", s.authURL("root/app"), "main")
	count := func() int {
		var pls []map[string]any
		s.call("GET", "/api/v4/projects/"+jsonID(proj["id"])+"/pipelines", nil, &pls)
		return len(pls)
	}
	if !trigWaitFor(10*time.Second, func() bool { return count() == 1 }) {
		t.Fatalf("push pipeline: %d pipelines", count())
	}

	tab := b.tab()
	b.signIn(tab, s.URL, "root", "rootpassword1")
	var preview string
	b.run(tab, "preview",
		chromedp.Navigate(s.URL+"/root/app/-/pipelines/new"),
		chromedp.WaitVisible(chromedp.ID(`preview-pipeline`)),
		chromedp.SendKeys(chromedp.CSS(`input[name=var_key]`), "DEPLOY"),
		chromedp.SendKeys(chromedp.CSS(`input[name=var_value]`), "secret-yes-value"),
		chromedp.Click(chromedp.ID(`preview-pipeline`)),
		chromedp.WaitVisible(chromedp.ID(`pipeline-preview`)),
		text(`#pipeline-preview`, &preview),
	)
	b.shot(tab, "pipeline-preview")
	for _, want := range []string{"nothing was created", "build", "deploy", "manual", "rules[0]: if: $DEPLOY", "DEPLOY", "(protected)"} {
		if !strings.Contains(preview, want) {
			t.Fatalf("preview lacks %q:\n%s", want, preview)
		}
	}
	if strings.Contains(preview, "pushes") || strings.Contains(preview, "secret-yes-value") {
		t.Fatalf("preview shows a push-only job or a variable value:\n%s", preview)
	}
	if n := count(); n != 1 {
		t.Fatalf("preview created a pipeline: %d pipelines", n)
	}
}
