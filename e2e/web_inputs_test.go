package e2e

import (
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

const webInputsCI = `spec:
  inputs:
    env:
      options: [staging, production]
      default: staging
      description: Where to deploy
    tier:
      rules:
        - if: $[[ inputs.env ]] == "production"
          options: [large, xlarge]
          default: large
        - options: [small]
          default: small
    replicas:
      type: number
      default: 1
    dry:
      type: boolean
      default: true
    targets:
      type: array
      default: [web]
    version:
      regex: ^v\d+\.\d+$
      default: v1.0
      description: Release tag
---
"deploy $[[ inputs.env ]] $[[ inputs.tier ]] r$[[ inputs.replicas ]] dry=$[[ inputs.dry ]] $[[ inputs.version ]] $[[ inputs.targets ]]":
  script: echo
`

// TestWebRunPipelineInputs: the Run pipeline form renders the ref's
// spec:inputs as controls (select for options, checkbox for boolean,
// number, textarea for array, text with a pattern for regex, defaults
// prefilled, descriptions as help text), reloads them when the ref or an
// input other inputs' rules read changes, creates a pipeline with the
// filled values, and shows GitLab's message for a refused input while
// creating nothing.
func TestWebRunPipelineInputs(t *testing.T) {
	b := newBrowser(t)
	s := newServer(t, "sqlite", "--builtin-runners", "0")
	s.start()
	var proj map[string]any
	if code, _ := s.call("POST", "/api/v4/projects", url.Values{"name": {"app"}}, &proj); code != 201 {
		t.Fatalf("create project: %d %v", code, proj)
	}
	pid := jsonID(proj["id"])
	work := newWorkRepo(t, "main", map[string]string{".gitlab-ci.yml": webInputsCI})
	git(t, work, "push", "-q", s.authURL("root/app"), "main")
	git(t, work, "checkout", "-q", "-b", "other")
	if err := os.WriteFile(filepath.Join(work, ".gitlab-ci.yml"), []byte("spec:\n  inputs:\n    region:\n      description: Only on the other branch\n---\njob-$[[ inputs.region ]]:\n  script: echo\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	git(t, work, "commit", "-qam", "other spec")
	git(t, work, "push", "-q", s.authURL("root/app"), "other")
	pipelines := func() []map[string]any {
		var pls []map[string]any
		s.call("GET", "/api/v4/projects/"+pid+"/pipelines?per_page=100", nil, &pls)
		return pls
	}
	if !trigWaitFor(10*time.Second, func() bool { return len(pipelines()) == 2 }) {
		t.Fatalf("push pipelines: %v", pipelines())
	}

	tab := b.tab()
	b.signIn(tab, s.URL, "root", "rootpassword1")
	var controls, help, region string
	b.run(tab, "form",
		chromedp.Navigate(s.URL+"/root/app/-/pipelines/new"),
		chromedp.WaitVisible(chromedp.ID(`inputs`)),
		eval(`[...document.querySelectorAll('#inputs [name^="inputs["]')].filter(e => e.type !== 'hidden').map(e =>
			e.name + ':' + e.tagName.toLowerCase() + ':' + (e.type || '') + ':' + (e.type === 'checkbox' ? e.checked : e.value) +
			':' + (e.getAttribute('pattern') || '') + ':' + (e.labels.length ? 'label' : 'nolabel')).join('|')`, &controls),
		eval(`document.getElementById(document.getElementById('input-env').getAttribute('aria-describedby')).textContent + '|' +
			[...document.querySelectorAll('#input-tier option')].map(o => o.value).join(',')`, &help),
	)
	want := `inputs[env]:select:select-one:staging::label|inputs[tier]:select:select-one:small::label|inputs[replicas]:input:number:1::label|` +
		`inputs[dry]:input:checkbox:true::label|inputs[targets]:textarea:textarea:web::label|inputs[version]:input:text:v1.0:.*(?:^v\d+\.\d+$).*:label`
	if controls != want {
		t.Fatalf("controls:\n%s\nwant\n%s", controls, want)
	}
	if help != "Where to deploy|small" {
		t.Fatalf("help and tier options: %q", help)
	}
	// Accessibility of the inputs form (labels, descriptions).
	var problems, violations string
	b.run(tab, "audit", eval(a11yAudit, &problems), axeAudit(loadAxe(t), &violations))
	if problems != "" || violations != "" {
		t.Fatalf("accessibility: %s\n%s", problems, violations)
	}

	// Choosing production reloads the form: the tier's options follow the
	// rules (large, xlarge; default large).
	b.run(tab, "rules-reload",
		// SetValue fires input and change, as a user's choice does.
		chromedp.SetValue(chromedp.ID(`input-env`), "production"),
		chromedp.WaitReady(chromedp.CSS(`#input-tier option[value=xlarge]`)),
		eval(`document.getElementById('input-env').value + '|' + document.getElementById('input-tier').value + '|' + location.search`, &help),
	)
	if !strings.HasPrefix(help, "production|large|?") {
		t.Fatalf("after choosing production: %q", help)
	}

	// Fill every control type and run.
	b.run(tab, "fill",
		chromedp.SetValue(chromedp.ID(`input-tier`), "xlarge"),
		chromedp.SetValue(chromedp.ID(`input-replicas`), ""),
		chromedp.SendKeys(chromedp.ID(`input-replicas`), "3"),
		chromedp.Click(chromedp.ID(`input-dry`)),
		chromedp.SetValue(chromedp.ID(`input-targets`), "web\napi"),
		chromedp.SetValue(chromedp.ID(`input-version`), "v2.5"),
	)
	b.pngShot(tab, "run-pipeline-inputs")
	b.run(tab, "run",
		chromedp.Click(chromedp.CSS(`button.btn-primary[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`.pipeline-graph, .job-card, main h1`)),
	)
	if !trigWaitFor(10*time.Second, func() bool { return len(pipelines()) == 3 }) {
		t.Fatalf("run pipeline created nothing: %v", pipelines())
	}
	var jobs []map[string]any
	s.call("GET", "/api/v4/projects/"+pid+"/pipelines/"+jsonID(pipelines()[0]["id"])+"/jobs", nil, &jobs)
	var names []string
	for _, j := range jobs {
		names = append(names, j["name"].(string))
	}
	sort.Strings(names)
	if len(names) != 1 || names[0] != `deploy production xlarge r3 dry=false v2.5 ["web","api"]` {
		t.Fatalf("created pipeline's jobs: %q", names)
	}

	// A refused input (the browser's pattern check removed, as an old
	// browser or a script would): GitLab's message next to the form, the
	// values kept, nothing created.
	var alert, kept string
	b.run(tab, "refused",
		chromedp.Navigate(s.URL+"/root/app/-/pipelines/new"),
		chromedp.WaitVisible(chromedp.ID(`input-version`)),
		eval(`document.getElementById('input-version').removeAttribute('pattern'), ''`, &kept),
		chromedp.SetValue(chromedp.ID(`input-version`), "1.0; rm -rf /"),
		chromedp.Click(chromedp.CSS(`button.btn-primary[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`.flash-alert`)),
		text(`.flash-alert`, &alert),
		eval(`document.getElementById('input-env').value`, &kept),
	)
	if !strings.Contains(alert, "`version` input: provided value does not match required RegEx pattern") || kept != "staging" {
		t.Fatalf("refused input: alert %q, env kept %q", alert, kept)
	}
	if n := len(pipelines()); n != 3 {
		t.Fatalf("a refused input created a pipeline: %d", n)
	}

	// Another ref has another spec: changing the ref reloads the inputs.
	b.run(tab, "ref-reload",
		chromedp.Navigate(s.URL+"/root/app/-/pipelines/new"),
		chromedp.WaitVisible(chromedp.ID(`input-env`)),
		chromedp.SetValue(chromedp.ID(`ref`), "other"),
		chromedp.WaitVisible(chromedp.ID(`input-region`)),
		eval(`document.querySelectorAll('#input-env').length + '|' + document.getElementById('input-region').required + '|' + document.getElementById('ref').value`, &region),
	)
	if region != "0|true|other" {
		t.Fatalf("after changing the ref: %q", region)
	}
	if b.alerts.Load() != 0 {
		t.Fatal("an alert() ran")
	}
}
