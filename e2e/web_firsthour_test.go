package e2e

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestWebFirstHourFlows drives a new user's first steps in Chromium against
// the real binary: a signed-out link to a private page leads through sign-in
// back to that page; creating a trigger token shows it once and reloading
// the page neither shows it again nor creates a second token; changing the
// password needs the current one and the new one signs in.
func TestWebFirstHourFlows(t *testing.T) {
	b := newBrowser(t)
	s := newServer(t, "sqlite")
	s.start()
	var proj map[string]any
	if code, _ := s.call("POST", "/api/v4/projects", url.Values{"name": {"app"}}, &proj); code != 201 {
		t.Fatalf("create project: %d %v", code, proj)
	}
	pid := jsonID(proj["id"])
	var user map[string]any
	if code, _ := s.call("POST", "/api/v4/users", map[string]any{"username": "newbie", "name": "New Bie", "email": "newbie@example.com", "password": "firstpassword1"}, &user); code != 201 {
		t.Fatalf("create user: %d %v", code, user)
	}

	// 1. A link from the API (web_url) opened signed out.
	tab := b.tab()
	var where string
	b.run(tab, "return-to",
		chromedp.Navigate(s.URL+"/root/app/-/pipelines?scope=all"),
		chromedp.WaitVisible(chromedp.ID(`username`)),
	)
	b.pngShot(tab, "sign-in")
	b.run(tab, "return-to-submit",
		chromedp.SendKeys(chromedp.ID(`username`), "root"),
		chromedp.SendKeys(chromedp.ID(`password`), "rootpassword1"),
		chromedp.Click(chromedp.ID(`sign-in`)),
		chromedp.WaitVisible(chromedp.Search(`//h1[contains(., "Pipelines")]`)),
		into(chromedp.Location(), &where),
	)
	if where != s.URL+"/root/app/-/pipelines?scope=all" {
		t.Fatalf("after sign-in at %q", where)
	}

	// 2. Create a trigger token, then reload the page it landed on.
	var token string
	var rows []*chromedp.Node
	b.run(tab, "create-trigger",
		chromedp.Navigate(s.URL+"/root/app/-/settings/ci_cd"),
		chromedp.WaitVisible(chromedp.ID(`trigger-description`)),
		chromedp.SendKeys(chromedp.ID(`trigger-description`), "deploy"),
		chromedp.Click(chromedp.ID(`create-trigger`)),
		chromedp.WaitVisible(chromedp.ID(`new-trigger-token`)),
		text(`#new-trigger-token`, &token),
	)
	if !regexp.MustCompile(`^glptt-[0-9a-f]{40}$`).MatchString(token) {
		t.Fatalf("token %q", token)
	}
	b.run(tab, "reload",
		chromedp.Reload(),
		chromedp.WaitVisible(chromedp.ID(`trigger-description`)),
		chromedp.WaitNotPresent(chromedp.ID(`new-trigger-token`)),
		into(chromedp.Nodes(chromedp.CSS(`.trigger-row`)), &rows),
	)
	var trs []map[string]any
	s.call("GET", "/api/v4/projects/"+pid+"/triggers", nil, &trs)
	if len(trs) != 1 || len(rows) != 1 {
		t.Fatalf("after reload: %d triggers, %d rows", len(trs), len(rows))
	}

	// 3. newbie changes the password: a wrong current one is refused.
	nb := b.tab()
	b.run(nb, "newbie-sign-in",
		chromedp.Navigate(s.URL+"/-/user_settings/password/edit"),
		chromedp.WaitVisible(chromedp.ID(`username`)),
		chromedp.SendKeys(chromedp.ID(`username`), "newbie"),
		chromedp.SendKeys(chromedp.ID(`password`), "firstpassword1"),
		chromedp.Click(chromedp.ID(`sign-in`)),
		chromedp.WaitVisible(chromedp.ID(`current_password`)),
		chromedp.SendKeys(chromedp.ID(`current_password`), "wrongpassword"),
		chromedp.SendKeys(chromedp.ID(`new_password`), "secondpassword2"),
		chromedp.SendKeys(chromedp.ID(`password_confirmation`), "secondpassword2"),
		chromedp.Click(chromedp.ID(`save-password`)),
		chromedp.WaitVisible(chromedp.Search(`//div[@role="alert" and contains(., "valid current password")]`)),
		chromedp.SendKeys(chromedp.ID(`current_password`), "firstpassword1"),
		chromedp.SendKeys(chromedp.ID(`new_password`), "secondpassword2"),
		chromedp.SendKeys(chromedp.ID(`password_confirmation`), "secondpassword2"),
		chromedp.Click(chromedp.ID(`save-password`)),
		chromedp.WaitVisible(chromedp.Search(`//div[@role="status" and contains(., "Password was successfully updated.")]`)),
	)
	b.pngShot(nb, "password-changed")
	again := b.tab()
	b.signIn(again, s.URL, "newbie", "secondpassword2")

	// 4. A triggered pipeline whose trigger job starts a child pipeline:
	// the list shows the mini graph, the variable's name and the child
	// under its parent.
	ci := "stages: [build, deploy]\nbuild: {stage: build, script: echo build}\nchild:\n  stage: deploy\n  trigger:\n    include: child.yml\n"
	work := newWorkRepo(t, "main", map[string]string{".gitlab-ci.yml": ci, "child.yml": "inner: {script: echo inner}\n"})
	git(t, work, "push", "-q", s.authURL("root/app"), "main")
	resp, err := http.PostForm(s.URL+"/api/v4/projects/"+pid+"/trigger/pipeline", url.Values{"token": {token}, "ref": {"main"}, "variables[DEPLOY_TARGET]": {"production-secret"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 201 {
		t.Fatalf("trigger: %d", resp.StatusCode)
	}
	childDeadline := time.Now().Add(90 * time.Second)
	for {
		var pls []map[string]any
		s.call("GET", "/api/v4/projects/"+pid+"/pipelines?source=parent_pipeline", nil, &pls)
		if len(pls) > 0 {
			break
		}
		if time.Now().After(childDeadline) {
			t.Fatal("no child pipeline")
		}
		time.Sleep(300 * time.Millisecond)
	}
	var varNames, upstream string
	var dots int
	b.run(tab, "pipelines-family",
		chromedp.Navigate(s.URL+"/root/app/-/pipelines"),
		chromedp.WaitVisible(chromedp.CSS(`tr.child-row .upstream a`)),
		text(`.var-names`, &varNames),
		text(`tr.child-row .upstream`, &upstream),
		eval(`document.querySelector("tr.pipeline-row:not(.child-row)").querySelectorAll(".mini-graph li").length`, &dots),
	)
	if !strings.Contains(varNames, "DEPLOY_TARGET") || !strings.Contains(upstream, "root/app #") || dots != 2 {
		t.Fatalf("list: variables %q, upstream %q, %d mini-graph dots", varNames, upstream, dots)
	}
	b.pngShot(tab, "pipelines")

	// 5. A job no runner can take explains itself.
	var gp map[string]any
	if code, _ := s.call("POST", "/api/v4/projects", url.Values{"name": {"gpu"}}, &gp); code != 201 {
		t.Fatalf("create project: %d", code)
	}
	w2 := newWorkRepo(t, "main", map[string]string{".gitlab-ci.yml": "train: {tags: [gpu], script: echo train}\n"})
	git(t, w2, "push", "-q", s.authURL("root/gpu"), "main")
	var jobs []map[string]any
	deadline := time.Now().Add(30 * time.Second)
	for len(jobs) == 0 && time.Now().Before(deadline) {
		s.call("GET", "/api/v4/projects/"+jsonID(gp["id"])+"/jobs", nil, &jobs)
		time.Sleep(200 * time.Millisecond)
	}
	if len(jobs) == 0 {
		t.Fatal("no job")
	}
	var stuck string
	b.run(tab, "stuck-job",
		chromedp.Navigate(s.URL+"/root/gpu/-/jobs/"+jsonID(jobs[0]["id"])),
		chromedp.WaitVisible(chromedp.ID(`job-stuck`)),
		text(`#job-stuck`, &stuck),
	)
	if !strings.Contains(stuck, "it has the tags gpu") || !strings.Contains(stuck, "built-in runner") {
		t.Fatalf("stuck explanation: %q", stuck)
	}
	b.pngShot(tab, "job-stuck")
}
