package e2e

import (
	"context"
	"image/png"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestWebScreenshots builds one small world (a project whose triggered
// pipeline has a slow job and a child pipeline, a job no runner can take, a
// schedule, a group with a member, a webhook trigger, a second user) and
// takes a screenshot of every page of the UI in a fixed 1280-pixel-wide window,
// each once the page's content is there (never an error page or a page
// still loading). With KILN_SCREENSHOTS=1 they replace docs/screenshots:
//
//	KILN_SCREENSHOTS=1 go test ./e2e -run 'TestWebScreenshots$'
//
// Otherwise they go to a temporary directory, and the test checks that
// every file in docs/screenshots has a shot here and is shown in docs/ui.md.
func TestWebScreenshots(t *testing.T) {
	// The files in docs/screenshots, each written here and shown in docs/ui.md.
	docScreenshots := []string{
		"sign-in", "dashboard", "project-new", "admin", "password-changed", "personal-access-tokens",
		"groups", "group-new", "group-members", "project", "settings-trigger-created", "job-running",
		"job-trigger-block", "pipelines", "pipeline", "pipeline-new", "jobs", "settings-ci-cd",
		"settings-webhooks", "job-stuck", "schedules", "schedule-new", "run-pipeline-inputs",
	}
	dir := t.TempDir()
	if os.Getenv("KILN_SCREENSHOTS") == "1" {
		abs, err := filepath.Abs(filepath.Join("..", "docs", "screenshots"))
		if err != nil {
			t.Fatal(err)
		}
		dir = abs
	}
	b := newBrowser(t)
	s := newServer(t, "sqlite")
	s.start()
	var taken []string
	// shoot checks the page is a real page of the UI, not an error page,
	// hides the text caret, and saves the viewport as name.png.
	shoot := func(tab context.Context, name string) {
		t.Helper()
		var bad string
		b.run(tab, "check-"+name, chromedp.WaitReady(chromedp.CSS(`main`)), eval(`(() => {
			if (document.querySelector('main .error-page')) return 'error page: ' + document.title;
			if (document.readyState !== 'complete') return 'still loading';
			document.documentElement.style.caretColor = 'transparent';
			if (document.activeElement) document.activeElement.blur();
			return '';
		})()`, &bad))
		if bad != "" {
			t.Fatalf("%s: %s", name, bad)
		}
		c, cancel := context.WithTimeout(tab, 10*time.Second)
		defer cancel()
		buf, err := chromedp.Run(c, chromedp.CaptureScreenshot())
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		if err := os.WriteFile(filepath.Join(dir, name+".png"), buf, 0o644); err != nil {
			t.Fatal(err)
		}
		taken = append(taken, name)
	}

	// The world, over the API.
	var proj map[string]any
	if code, _ := s.call("POST", "/api/v4/projects", url.Values{"name": {"app"}, "description": {"The web shop"}}, &proj); code != 201 {
		t.Fatalf("create project: %d %v", code, proj)
	}
	pid := jsonID(proj["id"])
	ci := "stages: [build, test, deploy]\n" +
		"compile:\n  stage: build\n  script:\n" +
		"    - 'for i in $(seq 1 25); do echo \"compiling module $i\"; sleep 0.3; done'\n" +
		"    - printf '\\033[32mbuild ok\\033[0m\\n'\n" +
		"unit:\n  stage: test\n  needs: [compile]\n  script: echo tests pass\n" +
		"lint:\n  stage: test\n  script: echo lint clean\n" +
		"child:\n  stage: deploy\n  trigger:\n    include: child.yml\n"
	work := newWorkRepo(t, "main", map[string]string{".gitlab-ci.yml": ci, "child.yml": "smoke: {script: echo smoke test}\n"})
	var user map[string]any
	if code, _ := s.call("POST", "/api/v4/users", map[string]any{"username": "dev", "name": "Dee Veloper", "email": "dev@example.com", "password": "firstpassword1"}, &user); code != 201 {
		t.Fatalf("create user: %d %v", code, user)
	}
	s.call("POST", "/api/v4/projects/"+pid+"/members", map[string]any{"user_id": user["id"], "access_level": 30}, nil)
	s.call("POST", "/api/v4/projects/"+pid+"/variables", url.Values{"key": {"DEPLOY_REGION"}, "value": {"eu-west"}}, nil)
	s.call("POST", "/api/v4/projects/"+pid+"/pipeline_schedules", url.Values{"description": {"Nightly build"}, "ref": {"main"}, "cron": {"0 1 * * *"}, "cron_timezone": {"Europe/Berlin"}}, nil)
	s.call("POST", "/api/v4/projects/"+pid+"/webhook_triggers", map[string]any{"description": "GitHub pushes", "kind": "github", "secret": "a-long-shared-secret", "filter": "payload.ref == 'refs/heads/main'", "ref": "'main'"}, nil)
	var grp map[string]any
	s.call("POST", "/api/v4/groups", url.Values{"name": {"Platform Team"}, "path": {"platform"}, "description": {"Build and release"}}, &grp)
	s.call("POST", "/api/v4/groups/platform/members", map[string]any{"user_id": user["id"], "access_level": 30}, nil)

	// Signed out, a link to a private page leads to sign-in.
	anon := b.tab()
	b.run(anon, "sign-in", chromedp.Navigate(s.URL+"/root/app/-/pipelines"), chromedp.WaitVisible(chromedp.ID(`username`)))
	shoot(anon, "sign-in")

	tab := b.tab()
	b.signIn(tab, s.URL, "root", "rootpassword1")
	b.run(tab, "dashboard", chromedp.Navigate(s.URL+"/"), chromedp.WaitVisible(chromedp.CSS(`a.project-link`)))
	shoot(tab, "dashboard")
	b.run(tab, "project-new", chromedp.Navigate(s.URL+"/projects/new"), chromedp.WaitVisible(chromedp.ID(`name`)))
	shoot(tab, "project-new")

	// The password page after dev changes theirs.
	dev := b.tab()
	b.signIn(dev, s.URL, "dev", "firstpassword1")
	b.run(dev, "password",
		chromedp.Navigate(s.URL+"/-/user_settings/password/edit"),
		chromedp.WaitVisible(chromedp.ID(`current_password`)),
		chromedp.SendKeys(chromedp.ID(`current_password`), "firstpassword1"),
		chromedp.SendKeys(chromedp.ID(`new_password`), "secondpassword2"),
		chromedp.SendKeys(chromedp.ID(`password_confirmation`), "secondpassword2"),
		chromedp.Click(chromedp.ID(`save-password`)),
		chromedp.WaitVisible(chromedp.Search(`//div[@role="status" and contains(., "Password was successfully updated.")]`)),
	)
	shoot(dev, "password-changed")

	// A personal access token, just created.
	b.run(tab, "pat",
		chromedp.Navigate(s.URL+"/-/user_settings/personal_access_tokens"),
		chromedp.WaitVisible(chromedp.ID(`pat-name`)),
		chromedp.SendKeys(chromedp.ID(`pat-name`), "laptop"),
		chromedp.Click(chromedp.ID(`scope-read_api`)),
		chromedp.Click(chromedp.ID(`create-pat`)),
		chromedp.WaitVisible(chromedp.ID(`new-pat-token`)),
	)
	shoot(tab, "personal-access-tokens")

	b.run(tab, "groups", chromedp.Navigate(s.URL+"/dashboard/groups"), chromedp.WaitVisible(chromedp.Search(`//table[@id="groups-table"]//a[text()="Platform Team"]`)))
	shoot(tab, "groups")
	b.run(tab, "group-new", chromedp.Navigate(s.URL+"/groups/new"), chromedp.WaitVisible(chromedp.ID(`group-name`)))
	shoot(tab, "group-new")
	b.run(tab, "group-members", chromedp.Navigate(s.URL+"/groups/platform/-/group_members"), chromedp.WaitVisible(chromedp.CSS(`tr[data-username="dev"]`)))
	shoot(tab, "group-members")

	// Push, then a trigger token made in the UI fires a pipeline whose
	// first job takes a few seconds.
	git(t, work, "push", "-q", s.authURL("root/app"), "main")
	mustWaitFor(t, 60*time.Second, "push pipeline done", func() bool {
		var pls []map[string]any
		s.call("GET", "/api/v4/projects/"+pid+"/pipelines?source=push", nil, &pls)
		return len(pls) == 1 && pls[0]["status"] == "success"
	})
	b.run(tab, "project", chromedp.Navigate(s.URL+"/root/app"), chromedp.WaitVisible(chromedp.ID(`clone-url`)))
	shoot(tab, "project")
	var token string
	b.run(tab, "create-trigger",
		chromedp.Navigate(s.URL+"/root/app/-/settings/ci_cd"),
		chromedp.WaitVisible(chromedp.ID(`trigger-description`)),
		chromedp.SendKeys(chromedp.ID(`trigger-description`), "Deploy from the release bot"),
		chromedp.Click(chromedp.ID(`create-trigger`)),
		chromedp.WaitVisible(chromedp.ID(`new-trigger-token`)),
		text(`#new-trigger-token`, &token),
	)
	shoot(tab, "settings-trigger-created")
	if !regexp.MustCompile(`^glptt-[0-9a-f]{40}$`).MatchString(token) {
		t.Fatalf("token %q", token)
	}
	resp, err := http.PostForm(s.URL+"/api/v4/projects/"+pid+"/trigger/pipeline", url.Values{"token": {token}, "ref": {"main"}, "variables[DEPLOY_TARGET]": {"production"}})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 201 {
		t.Fatalf("trigger: %d %s", resp.StatusCode, body)
	}
	plID := regexp.MustCompile(`"id":(\d+)`).FindStringSubmatch(string(body))[1]
	var jobs []map[string]any
	mustWaitFor(t, 30*time.Second, "compile job", func() bool {
		s.call("GET", "/api/v4/projects/"+pid+"/pipelines/"+plID+"/jobs", nil, &jobs)
		return len(jobs) > 0
	})
	var compile string
	for _, j := range jobs {
		if j["name"] == "compile" {
			compile = jsonID(j["id"])
		}
	}
	jobURL := s.URL + "/root/app/-/jobs/" + compile
	b.run(tab, "job-running",
		chromedp.Navigate(jobURL),
		chromedp.WaitVisible(chromedp.Search(`//div[@id="job-log"]//div[contains(., "compiling module 4")]`)),
	)
	shoot(tab, "job-running")
	b.run(tab, "job-done",
		chromedp.WaitVisible(chromedp.Search(`//div[@id="job-log"]//span[text()="build ok"]`)),
		chromedp.Navigate(jobURL),
		chromedp.WaitVisible(chromedp.ID(`reveal-trigger-vars`)),
		chromedp.Click(chromedp.ID(`reveal-trigger-vars`)),
		chromedp.WaitVisible(chromedp.Search(`//table[@id="trigger-vars"]//span[contains(., "production")]`)),
	)
	shoot(tab, "job-trigger-block")

	mustWaitFor(t, 90*time.Second, "triggered pipeline and its child done", func() bool {
		var pls []map[string]any
		s.call("GET", "/api/v4/projects/"+pid+"/pipelines", nil, &pls)
		done := 0
		for _, p := range pls {
			if p["status"] == "success" {
				done++
			}
		}
		return len(pls) == 4 && done == 4 // push and trigger, each with a child
	})
	b.run(tab, "pipelines", chromedp.Navigate(s.URL+"/root/app/-/pipelines"), chromedp.WaitVisible(chromedp.CSS(`tr.child-row .upstream a`)))
	shoot(tab, "pipelines")
	b.run(tab, "pipeline", chromedp.Navigate(s.URL+"/root/app/-/pipelines/"+plID), chromedp.WaitVisible(chromedp.CSS(`#pipeline-live[data-active="false"] .job-card`)))
	shoot(tab, "pipeline")
	b.run(tab, "pipeline-new", chromedp.Navigate(s.URL+"/root/app/-/pipelines/new"), chromedp.WaitVisible(chromedp.ID(`ref`)))
	shoot(tab, "pipeline-new")
	b.run(tab, "jobs", chromedp.Navigate(s.URL+"/root/app/-/jobs"), chromedp.WaitVisible(chromedp.CSS(`tr.job-row .badge-info`)))
	shoot(tab, "jobs")
	b.run(tab, "settings-ci-cd",
		chromedp.Navigate(s.URL+"/root/app/-/settings/ci_cd"),
		chromedp.WaitVisible(chromedp.CSS(`.trigger-row`)),
	)
	shoot(tab, "settings-ci-cd")
	b.run(tab, "settings-webhooks", chromedp.Navigate(s.URL+"/root/app/-/settings/webhooks"), chromedp.WaitVisible(chromedp.CSS(`.webhook-url`)))
	shoot(tab, "settings-webhooks")
	b.run(tab, "schedules", chromedp.Navigate(s.URL+"/root/app/-/pipeline_schedules"), chromedp.WaitVisible(chromedp.CSS(`.schedule-row`)))
	shoot(tab, "schedules")
	b.run(tab, "schedule-new",
		chromedp.Navigate(s.URL+"/root/app/-/pipeline_schedules/new"),
		chromedp.WaitVisible(chromedp.ID(`s-cron`)),
		chromedp.SendKeys(chromedp.ID(`s-description`), "Weekly dependency update"),
		chromedp.Clear(chromedp.ID(`s-cron`)),
		chromedp.SendKeys(chromedp.ID(`s-cron`), "30 6 * * 1"),
		chromedp.WaitVisible(chromedp.Search(`//p[@id="cron-description" and contains(., "06:30")]`)),
	)
	shoot(tab, "schedule-new")

	// A job no runner can take, explaining why.
	var gpu map[string]any
	if code, _ := s.call("POST", "/api/v4/projects", url.Values{"name": {"gpu"}}, &gpu); code != 201 {
		t.Fatalf("create project: %d", code)
	}
	w2 := newWorkRepo(t, "main", map[string]string{".gitlab-ci.yml": "train: {tags: [gpu], script: echo train}\n"})
	git(t, w2, "push", "-q", s.authURL("root/gpu"), "main")
	var gpuJobs []map[string]any
	mustWaitFor(t, 30*time.Second, "gpu job", func() bool {
		s.call("GET", "/api/v4/projects/"+jsonID(gpu["id"])+"/jobs", nil, &gpuJobs)
		return len(gpuJobs) > 0
	})
	b.run(tab, "job-stuck", chromedp.Navigate(s.URL+"/root/gpu/-/jobs/"+jsonID(gpuJobs[0]["id"])), chromedp.WaitVisible(chromedp.ID(`job-stuck`)))
	shoot(tab, "job-stuck")
	// The Run pipeline form of a project whose CI configuration declares
	// typed inputs: one control per input.
	if code, _ := s.call("POST", "/api/v4/projects", url.Values{"name": {"deploy"}}, nil); code != 201 {
		t.Fatalf("create project: %d", code)
	}
	w3 := newWorkRepo(t, "main", map[string]string{".gitlab-ci.yml": webInputsCI})
	git(t, w3, "push", "-q", s.authURL("root/deploy"), "main")
	b.run(tab, "run-pipeline-inputs", chromedp.Navigate(s.URL+"/root/deploy/-/pipelines/new"), chromedp.WaitVisible(chromedp.ID(`input-version`)))
	shoot(tab, "run-pipeline-inputs")
	b.run(tab, "admin", chromedp.Navigate(s.URL+"/admin"), chromedp.WaitVisible(chromedp.ID(`runners`)))
	shoot(tab, "admin")

	// Every documented screenshot was taken, and no more; each is a PNG
	// of the viewport, modest in size, and docs/ui.md shows it.
	slices.Sort(taken)
	want := slices.Clone(docScreenshots)
	slices.Sort(want)
	if !slices.Equal(taken, want) {
		t.Errorf("screenshots taken %v, documented %v", taken, want)
	}
	ui, err := os.ReadFile(filepath.Join("..", "docs", "ui.md"))
	if err != nil {
		t.Fatal(err)
	}
	inRepo, _ := filepath.Glob(filepath.Join("..", "docs", "screenshots", "*.png"))
	var names []string
	for _, f := range inRepo {
		names = append(names, strings.TrimSuffix(filepath.Base(f), ".png"))
	}
	slices.Sort(names)
	if !slices.Equal(names, want) {
		t.Errorf("docs/screenshots holds %v, want %v (refresh with KILN_SCREENSHOTS=1)", names, want)
	}
	for _, n := range want {
		if !strings.Contains(string(ui), "(screenshots/"+n+".png)") {
			t.Errorf("docs/ui.md does not show screenshots/%s.png", n)
		}
		f, err := os.Open(filepath.Join(dir, n+".png"))
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := png.DecodeConfig(f)
		st, _ := f.Stat()
		f.Close()
		if err != nil || cfg.Width != 1280 || cfg.Height < 800 || st.Size() > 400<<10 {
			t.Errorf("%s.png: %dx%d, %d bytes, %v", n, cfg.Width, cfg.Height, st.Size(), err)
		}
	}
}

// mustWaitFor is waitFor, failing the test when cond never holds.
func mustWaitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	if !waitFor(t, timeout, what, cond) {
		t.Fatalf("timed out waiting for %s", what)
	}
}
