package e2e

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// a11yAudit runs in the page and lists what keyboard and screen-reader users
// would miss: a form control without an accessible name, missing or
// duplicated landmarks, a skip link that is not the first tab stop.
const a11yAudit = `(() => {
  const out = [];
  const named = el => {
    if (el.getAttribute('aria-label') || el.getAttribute('aria-labelledby') || el.title) return true;
    if (el.id && document.querySelector('label[for="' + CSS.escape(el.id) + '"]')) return true;
    return !!el.closest('label');
  };
  for (const el of document.querySelectorAll('input, select, textarea')) {
    if (el.type === 'hidden' || el.hidden) continue;
    if (!named(el)) out.push('unlabelled ' + el.tagName.toLowerCase() + (el.name ? '[name=' + el.name + ']' : '') + (el.id ? '#' + el.id : ''));
  }
  for (const b of document.querySelectorAll('button')) {
    if (!(b.textContent.trim() || b.getAttribute('aria-label'))) out.push('button without a name');
  }
  if (document.querySelectorAll('main').length !== 1) out.push('main landmarks: ' + document.querySelectorAll('main').length);
  if (document.querySelectorAll('body > header').length !== 1) out.push('no banner header');
  const first = document.querySelector('a[href], button, input:not([type=hidden]), select, textarea');
  if (!first || !first.classList.contains('skip') || first.getAttribute('href') !== '#main') out.push('skip link is not the first tab stop');
  for (const n of document.querySelectorAll('nav')) if (!n.getAttribute('aria-label')) out.push('nav without aria-label');
  if (!document.documentElement.lang) out.push('no lang');
  for (const f of document.querySelectorAll('.flash')) {
    if (!f.closest('[role=status], [role=alert]')) out.push('flash not announced: ' + f.textContent.trim().slice(0, 40));
  }
  for (const r of document.querySelectorAll('[aria-live]:not([aria-live=off])')) {
    if (r.closest('[data-live-url], [data-deliveries-url]') === r && r.id !== 'pipeline-announce') out.push('live region #' + r.id + ' is replaced by the script, so never announced');
  }
  const hs = document.querySelectorAll('h1'); if (hs.length !== 1) out.push('h1 count ' + hs.length);
  return out.join('; ');
})()`

// TestWebAccessibilityBasics visits every page of the UI in Chromium with
// data on it and checks labels, landmarks and the skip link, that Tab
// reaches the skip link first with a visible focus ring, that variable names
// do not wrap mid-word, and that the schedule table's cells line up.
func TestWebAccessibilityBasics(t *testing.T) {
	b := newBrowser(t)
	s := newServer(t, "sqlite")
	s.start()
	var proj map[string]any
	if code, _ := s.call("POST", "/api/v4/projects", url.Values{"name": {"app"}}, &proj); code != 201 {
		t.Fatalf("create project: %d %v", code, proj)
	}
	pid := jsonID(proj["id"])
	// Jobs in every colour the UI uses: passed, failed, allowed to fail,
	// skipped, a log with ANSI colours; and, in a second project, a job no
	// runner takes (pending, with its explanation).
	ci := "stages: [build, test, deploy]\n" +
		"colours:\n  stage: build\n  script:\n" +
		"    - printf '\\033[30mblack\\033[0m \\033[31mred\\033[0m \\033[32mgreen\\033[0m \\033[33myellow\\033[0m \\033[34mblue\\033[0m \\033[35mmagenta\\033[0m \\033[36mcyan\\033[0m \\033[90mgrey\\033[0m \\033[1mbold\\033[0m \\033[42mon green\\033[0m \\033[43mon yellow\\033[0m \\033[103mon bright yellow\\033[0m\\n'\n" +
		"broken: {stage: test, script: exit 1}\n" +
		"flaky: {stage: test, script: exit 1, allow_failure: true}\n" +
		"deploy: {stage: deploy, script: echo deploy}\n"
	work := newWorkRepo(t, "main", map[string]string{".gitlab-ci.yml": ci})
	git(t, work, "push", "-q", s.authURL("root/app"), "main")
	var gpu map[string]any
	if code, _ := s.call("POST", "/api/v4/projects", url.Values{"name": {"gpu"}}, &gpu); code != 201 {
		t.Fatalf("create project: %d %v", code, gpu)
	}
	gpuWork := newWorkRepo(t, "main", map[string]string{".gitlab-ci.yml": "train: {tags: [gpu], script: echo train}\n"})
	git(t, gpuWork, "push", "-q", s.authURL("root/gpu"), "main")
	s.call("POST", "/api/v4/projects/"+pid+"/variables", url.Values{"key": {"A_RATHER_LONG_DEPLOYMENT_VARIABLE_NAME_FOR_THE_PRODUCTION_ENVIRONMENT_IN_THE_EUROPEAN_REGION_WITH_FAILOVER_ENABLED"}, "value": {"v"}}, nil)
	s.call("POST", "/api/v4/projects/"+pid+"/pipeline_schedules", url.Values{"description": {"Nightly build of the whole thing with a long description"}, "ref": {"main"}, "cron": {"0 1 * * *"}}, nil)
	s.call("POST", "/api/v4/projects/"+pid+"/triggers", url.Values{"description": {"deploy"}}, nil)
	s.call("POST", "/api/v4/groups", url.Values{"name": {"Team"}, "path": {"team"}}, nil)
	var pl map[string]any
	s.call("POST", "/api/v4/projects/"+pid+"/pipeline", url.Values{"ref": {"main"}}, &pl)
	plID := jsonID(pl["id"])
	// Wait for the pipeline to finish, so pages show final colours.
	var jobID string
	for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(300 * time.Millisecond) {
		var cur map[string]any
		s.call("GET", "/api/v4/projects/"+pid+"/pipelines/"+plID, nil, &cur)
		if cur["status"] == "failed" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pipeline %s still %v", plID, cur["status"])
		}
	}
	var jobs []map[string]any
	s.call("GET", "/api/v4/projects/"+pid+"/pipelines/"+plID+"/jobs", nil, &jobs)
	for _, j := range jobs {
		if j["name"] == "colours" {
			jobID = jsonID(j["id"])
		}
	}
	var gpuJobs []map[string]any
	for deadline := time.Now().Add(30 * time.Second); len(gpuJobs) == 0 && time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		s.call("GET", "/api/v4/projects/"+jsonID(gpu["id"])+"/jobs", nil, &gpuJobs)
	}
	if jobID == "" || len(gpuJobs) == 0 {
		t.Fatalf("jobs: %v; gpu jobs: %v", jobs, gpuJobs)
	}
	gpuJob := jsonID(gpuJobs[0]["id"])
	gpuPipeline := jsonID(gpuJobs[0]["pipeline"].(map[string]any)["id"])

	anon := b.tab()
	b.run(anon, "sign-in-page", chromedp.Navigate(s.URL+"/users/sign_in"), chromedp.WaitVisible(chromedp.ID(`username`)))
	axeSrc := loadAxe(t)
	var problems, violations string
	b.run(anon, "audit-sign-in", eval(a11yAudit, &problems), axeAudit(axeSrc, &violations))
	var failed, axeFailed []string
	if problems != "" {
		failed = append(failed, "/users/sign_in: "+problems)
	}
	if violations != "" {
		axeFailed = append(axeFailed, "/users/sign_in:\n"+violations)
	}
	tab := b.tab()
	b.signIn(tab, s.URL, "root", "rootpassword1")
	pages := []string{
		"/", "/projects/new", "/admin", "/-/user_settings/password/edit", "/-/user_settings/personal_access_tokens",
		"/dashboard/groups", "/groups/new", "/groups/team/-/group_members",
		"/root/app", "/root/app/-/pipelines", "/root/app/-/pipelines/new", "/root/app/-/pipelines/" + plID,
		"/root/app/-/jobs", "/root/app/-/jobs/" + jobID, "/root/app/-/settings/ci_cd", "/root/app/-/settings/webhooks",
		"/root/app/-/pipeline_schedules", "/root/app/-/pipeline_schedules/new",
		"/root/gpu/-/pipelines", "/root/gpu/-/jobs/" + gpuJob,
	}
	for _, p := range pages {
		b.run(tab, "audit "+p, chromedp.Navigate(s.URL+p), chromedp.WaitReady(chromedp.CSS(`main`)), eval(a11yAudit, &problems), axeAudit(axeSrc, &violations))
		if problems != "" {
			failed = append(failed, p+": "+problems)
		}
		if violations != "" {
			axeFailed = append(axeFailed, p+":\n"+violations)
		}
	}
	if len(failed) > 0 {
		t.Errorf("accessibility problems:\n%s", strings.Join(failed, "\n"))
	}
	if len(axeFailed) > 0 {
		t.Errorf("axe-core %s violations (rules tagged %s):\n%s", axeVersion, axeTags, strings.Join(axeFailed, "\n"))
	}

	// Tab from the top: the skip link first, with a visible focus ring.
	var focused, outline string
	b.run(tab, "tab-order",
		chromedp.Navigate(s.URL+"/root/app/-/settings/ci_cd"),
		chromedp.WaitVisible(chromedp.ID(`trigger-description`)),
		eval(`document.activeElement.blur(), ''`, &focused),
		chromedp.KeyEvent("\t"),
		eval(`document.activeElement.className + '|' + document.activeElement.getAttribute('href')`, &focused),
		eval(`getComputedStyle(document.activeElement).outlineStyle + ' ' + getComputedStyle(document.activeElement).left`, &outline),
	)
	if focused != "skip|#main" || !strings.HasPrefix(outline, "solid") {
		t.Errorf("first Tab: focus %q, style %q", focused, outline)
	}

	// A long variable name stays on one line (no mid-word break).
	var lines float64
	b.run(tab, "variable-name",
		chromedp.Navigate(s.URL+"/root/app/-/settings/ci_cd"),
		chromedp.WaitVisible(chromedp.CSS(`.variable-row code.var-key`)),
		eval(`(() => { const e = document.querySelector('.variable-row code.var-key'); return e.getClientRects().length; })()`, &lines),
	)
	if lines != 1 {
		t.Errorf("variable name spans %v line boxes", lines)
	}

	// Every cell of a schedule row is a table cell as tall as the row (the
	// actions cell used to be a flex box, shorter, its border off the line).
	var cells string
	b.run(tab, "schedule-row",
		chromedp.Navigate(s.URL+"/root/app/-/pipeline_schedules"),
		chromedp.WaitVisible(chromedp.CSS(`.schedule-row`)),
		eval(`(() => { const row = document.querySelector('.schedule-row'); const rb = row.getBoundingClientRect(); return [...row.children].filter(td => getComputedStyle(td).display !== 'table-cell' || Math.abs(td.getBoundingClientRect().bottom - rb.bottom) > 1 || Math.abs(td.getBoundingClientRect().top - rb.top) > 1).map(td => td.className || td.dataset.label).join(','); })()`, &cells),
	)
	if cells != "" {
		t.Errorf("schedule row cells not aligned with the row: %s", cells)
	}

	// After post/redirect/get the notice is a role=status region; a refused
	// form's error a role=alert. axe-core checks both pages too.
	var notice, alert string
	b.run(tab, "flash-notice",
		chromedp.Click(chromedp.CSS(`.schedule-row button[aria-label^="Play schedule"]`)),
		chromedp.WaitVisible(chromedp.CSS(`main > .flash-notice`)),
		eval(`(() => { const f = document.querySelector('main > .flash-notice'); return f.getAttribute('role') + ': ' + f.textContent; })()`, &notice),
		axeAudit(axeSrc, &violations),
	)
	if !strings.HasPrefix(notice, "status: Successfully scheduled") || violations != "" {
		t.Errorf("flash after play: %q; axe: %s", notice, violations)
	}
	b.run(tab, "flash-alert",
		chromedp.Navigate(s.URL+"/root/app/-/pipeline_schedules/new"),
		chromedp.WaitVisible(chromedp.ID(`s-description`)),
		chromedp.SendKeys(chromedp.ID(`s-description`), "broken"),
		chromedp.SetValue(chromedp.ID(`s-cron`), "every tuesday"),
		chromedp.SetValue(chromedp.ID(`s-ref`), "main"),
		chromedp.Click(chromedp.CSS(`form.card button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`main .flash-alert`)),
		eval(`document.querySelector('main .flash-alert').getAttribute('role')`, &alert),
		axeAudit(axeSrc, &violations),
	)
	if alert != "alert" || violations != "" {
		t.Errorf("refused form's error role %q; axe: %s", alert, violations)
	}

	// Live regions: the pipeline page and the job page announce status
	// changes through role=status regions that stay in place (a replaced
	// element is not announced) while the page follows the pipeline.
	jobTab := b.tab()
	b.signIn(jobTab, s.URL, "root", "rootpassword1")
	var pipelineRegion, jobRegion string
	b.run(tab, "pipeline-region",
		chromedp.Navigate(s.URL+"/root/gpu/-/pipelines/"+gpuPipeline),
		chromedp.WaitReady(chromedp.CSS(`#pipeline-live[data-active="true"]`)),
		eval(`(() => { window.kilnRegion = document.querySelector('main [role=status]#pipeline-announce'); return window.kilnRegion ? 'ok' : 'missing'; })()`, &pipelineRegion),
	)
	b.run(jobTab, "job-region",
		chromedp.Navigate(s.URL+"/root/gpu/-/jobs/"+gpuJob),
		chromedp.WaitVisible(chromedp.ID(`job-stuck`)),
		eval(`(() => { window.kilnRegion = document.querySelector('main [role=status]#log-tail'); return window.kilnRegion ? 'ok' : 'missing'; })()`, &jobRegion),
	)
	if pipelineRegion != "ok" || jobRegion != "ok" {
		t.Fatalf("status regions: pipeline page %s, job page %s", pipelineRegion, jobRegion)
	}
	if code, _ := s.call("POST", "/api/v4/projects/"+jsonID(gpu["id"])+"/pipelines/"+gpuPipeline+"/cancel", nil, nil); code != 201 {
		t.Fatalf("cancel: %d", code)
	}
	b.run(tab, "pipeline-announced", into(chromedp.Poll[string](`window.kilnRegion.isConnected && /Pipeline canceled/.test(window.kilnRegion.textContent) && window.kilnRegion.textContent`, chromedp.WithPollingTimeout(20*time.Second)), &pipelineRegion))
	b.run(jobTab, "job-announced", into(chromedp.Poll[string](`window.kilnRegion.isConnected && /Job canceled/.test(window.kilnRegion.textContent) && window.kilnRegion.textContent`, chromedp.WithPollingTimeout(20*time.Second)), &jobRegion))
	if !strings.Contains(pipelineRegion, "train canceled") {
		t.Errorf("pipeline region said %q, want the job's change too", pipelineRegion)
	}
}
