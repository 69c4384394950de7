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
	work := newWorkRepo(t, "main", map[string]string{".gitlab-ci.yml": "build: {script: echo hi}\n"})
	git(t, work, "push", "-q", s.authURL("root/app"), "main")
	s.call("POST", "/api/v4/projects/"+pid+"/variables", url.Values{"key": {"A_RATHER_LONG_DEPLOYMENT_VARIABLE_NAME_FOR_THE_PRODUCTION_ENVIRONMENT_IN_THE_EUROPEAN_REGION_WITH_FAILOVER_ENABLED"}, "value": {"v"}}, nil)
	s.call("POST", "/api/v4/projects/"+pid+"/pipeline_schedules", url.Values{"description": {"Nightly build of the whole thing with a long description"}, "ref": {"main"}, "cron": {"0 1 * * *"}}, nil)
	s.call("POST", "/api/v4/projects/"+pid+"/triggers", url.Values{"description": {"deploy"}}, nil)
	s.call("POST", "/api/v4/groups", url.Values{"name": {"Team"}, "path": {"team"}}, nil)
	var pl map[string]any
	s.call("POST", "/api/v4/projects/"+pid+"/pipeline", url.Values{"ref": {"main"}}, &pl)
	plID := jsonID(pl["id"])
	var jobs []map[string]any
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(300 * time.Millisecond) {
		if s.call("GET", "/api/v4/projects/"+pid+"/pipelines/"+plID+"/jobs", nil, &jobs); len(jobs) > 0 {
			break
		}
	}
	if len(jobs) == 0 {
		t.Fatal("no job")
	}
	jobID := jsonID(jobs[0]["id"])

	anon := b.tab()
	b.run(anon, "sign-in-page", chromedp.Navigate(s.URL+"/users/sign_in"), chromedp.WaitVisible(chromedp.ID(`username`)))
	var problems string
	b.run(anon, "audit-sign-in", eval(a11yAudit, &problems))
	var failed []string
	if problems != "" {
		failed = append(failed, "/users/sign_in: "+problems)
	}
	tab := b.tab()
	b.signIn(tab, s.URL, "root", "rootpassword1")
	pages := []string{
		"/", "/projects/new", "/admin", "/-/user_settings/password/edit", "/-/user_settings/personal_access_tokens",
		"/dashboard/groups", "/groups/new", "/groups/team/-/group_members",
		"/root/app", "/root/app/-/pipelines", "/root/app/-/pipelines/new", "/root/app/-/pipelines/" + plID,
		"/root/app/-/jobs", "/root/app/-/jobs/" + jobID, "/root/app/-/settings/ci_cd", "/root/app/-/settings/webhooks",
		"/root/app/-/pipeline_schedules", "/root/app/-/pipeline_schedules/new",
	}
	for _, p := range pages {
		b.run(tab, "audit "+p, chromedp.Navigate(s.URL+p), chromedp.WaitReady(chromedp.CSS(`main`)), eval(a11yAudit, &problems))
		if problems != "" {
			failed = append(failed, p+": "+problems)
		}
	}
	if len(failed) > 0 {
		t.Errorf("accessibility problems:\n%s", strings.Join(failed, "\n"))
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
	b.pngShot(tab, "schedules")
	if cells != "" {
		t.Errorf("schedule row cells not aligned with the row: %s", cells)
	}
}
