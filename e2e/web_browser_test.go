package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/kilnci/kiln/internal/testenv"
)

// browser is a headless Chromium driven over the DevTools protocol, with
// one isolated browser context (cookies) per signed-in user.
type browser struct {
	t     *testing.T
	alloc context.Context
	shots string
	// dialogs counts JavaScript dialogs other than expected confirms: an
	// alert() means injected markup ran.
	alerts atomic.Int32
}

func newBrowser(t *testing.T) *browser {
	path := testenv.Chromium(t)
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 1000),
	}
	alloc, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	// The first context starts the browser; tabs get their own browser
	// contexts (separate cookies) from it.
	root, cancelRoot := chromedp.NewContext(alloc)
	t.Cleanup(cancelRoot)
	if err := chromedp.Do(root); err != nil {
		t.Fatal(err)
	}
	b := &browser{t: t, alloc: root}
	// Screenshots go to KILN_SCREENSHOT_DIR when set (docs/screenshots is
	// refreshed that way); otherwise to a directory kept only on failure.
	b.shots = os.Getenv("KILN_SCREENSHOT_DIR")
	if b.shots == "" {
		dir, err := os.MkdirTemp("", "kiln-web-shots")
		if err != nil {
			t.Fatal(err)
		}
		b.shots = dir
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("screenshots of the pages visited are in %s", dir)
			} else {
				os.RemoveAll(dir)
			}
		})
	}
	return b
}

// tab opens a tab in a fresh browser context. Confirm dialogs are accepted;
// any alert is counted as a failure of escaping.
func (b *browser) tab() context.Context {
	ctx, cancel := chromedp.NewContext(b.alloc, chromedp.WithNewBrowserContext())
	b.t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		b.t.Fatal(err)
	}
	dialogs := chromedp.Events(ctx, page.JavascriptDialogOpening)
	go func() {
		for ev, err := range dialogs {
			if err != nil {
				return
			}
			if ev.Type != page.DialogTypeConfirm {
				b.alerts.Add(1)
			}
			chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true})
		}
	}()
	return ctx
}

// run runs actions with a deadline, saving a screenshot named name first
// when they fail.
func (b *browser) run(ctx context.Context, name string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	c, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(c, actions...); err != nil {
		b.shot(ctx, "failed-"+name)
		b.t.Fatalf("%s: %v", name, err)
	}
}

func (b *browser) shot(ctx context.Context, name string) {
	c, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	buf, err := chromedp.Run(c, chromedp.FullScreenshot(80))
	if err != nil {
		b.t.Logf("screenshot %s: %v", name, err)
		return
	}
	ext := ".jpg"
	if len(buf) > 4 && string(buf[1:4]) == "PNG" {
		ext = ".png"
	}
	os.WriteFile(filepath.Join(b.shots, name+ext), buf, 0o644)
}

// pngShot saves a PNG of the viewport for the docs.
func (b *browser) pngShot(ctx context.Context, name string) {
	c, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if buf, err := chromedp.Run(c, chromedp.CaptureScreenshot()); err == nil {
		os.WriteFile(filepath.Join(b.shots, name+".png"), buf, 0o644)
	}
}

func (b *browser) signIn(ctx context.Context, base, user, password string) {
	b.run(ctx, "sign-in-"+user,
		chromedp.Navigate(base+"/users/sign_in"),
		chromedp.WaitVisible(chromedp.ID(`username`)),
		chromedp.SendKeys(chromedp.ID(`username`), user),
		chromedp.SendKeys(chromedp.ID(`password`), password),
		chromedp.Click(chromedp.ID(`sign-in`)),
		chromedp.WaitVisible(chromedp.Search(`//h1[text()="Projects"]`)),
	)
}

// into runs a value-returning action as a step, storing its result.
func into[T any](a chromedp.Action[T], out *T) chromedp.Action[chromedp.Void] {
	return func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		v, err := a(ctx, t)
		*out = v
		return chromedp.Void{}, err
	}
}

func text(sel string, out *string) chromedp.Action[chromedp.Void] {
	return into(chromedp.TextContent(chromedp.CSS(sel)), out)
}

func eval[T any](js string, out *T) chromedp.Action[chromedp.Void] {
	return into(chromedp.Evaluate[T](js), out)
}

// TestWebUI walks the seed's screens in a real browser against the real
// binary: trigger tokens, triggered pipelines and jobs, the trigger block's
// permissions, a live log, revocation and a hostile branch name.
func TestWebUI(t *testing.T) {
	b := newBrowser(t)
	s := newServer(t, "sqlite")
	s.start()

	// Setup over the API: a project with a slow job, and a developer.
	var proj map[string]any
	if code, _ := s.call("POST", "/api/v4/projects", url.Values{"name": {"app"}}, &proj); code != 201 {
		t.Fatalf("create project: %d %v", code, proj)
	}
	pid := jsonID(proj["id"])
	var dev map[string]any
	if code, _ := s.call("POST", "/api/v4/users", map[string]any{"username": "dev", "name": "Dev Eloper", "email": "dev@example.com", "password": "devpassword1"}, &dev); code != 201 {
		t.Fatalf("create user: %d %v", code, dev)
	}
	if code, _ := s.call("POST", "/api/v4/projects/"+pid+"/members", map[string]any{"user_id": dev["id"], "access_level": 30}, nil); code != 201 {
		t.Fatalf("add member: %d", code)
	}
	ci := "stages: [build]\n" +
		"count:\n  stage: build\n  script:\n" +
		"    - 'for i in $(seq 1 20); do echo line $i; sleep 0.3; done'\n" +
		"    - printf '\\033[32mall green\\033[0m\\n'\n"
	work := newWorkRepo(t, "main", map[string]string{".gitlab-ci.yml": ci})
	git(t, work, "push", "-q", s.authURL("root/app"), "main")

	root := b.tab()
	b.signIn(root, s.URL, "root", "rootpassword1")
	b.run(root, "dashboard", chromedp.WaitVisible(chromedp.CSS(`a.project-link`)))
	b.pngShot(root, "dashboard")

	// Create a trigger token in the UI and read it from the page.
	var token, short, lastUsed string
	settings := s.URL + "/root/app/-/settings/ci_cd"
	b.run(root, "create-trigger",
		chromedp.Navigate(settings),
		chromedp.WaitVisible(chromedp.ID(`trigger-description`)),
		chromedp.SendKeys(chromedp.ID(`trigger-description`), "nightly <deploy>"),
		chromedp.Click(chromedp.ID(`create-trigger`)),
		chromedp.WaitVisible(chromedp.ID(`new-trigger-token`)),
		text(`#new-trigger-token`, &token),
		chromedp.Click(chromedp.ID(`copy-new-token`)),
		text(`.trigger-row .short-token`, &short),
		text(`.trigger-row .last-used`, &lastUsed),
	)
	if !regexp.MustCompile(`^glptt-[0-9a-f]{40}$`).MatchString(token) || short != token[6:10] || lastUsed != "Never" {
		t.Fatalf("token %q short %q last used %q", token, short, lastUsed)
	}
	var example string
	b.run(root, "examples", text(`#ex-curl`, &example))
	if !strings.Contains(example, "--form-string token="+token) || !strings.Contains(example, s.URL+"/api/v4/projects/"+pid+"/trigger/pipeline") {
		t.Fatalf("curl example not filled in: %q", example)
	}
	b.pngShot(root, "settings-trigger-created")

	// Fire it like curl --form, with a variable.
	resp, err := http.PostForm(s.URL+"/api/v4/projects/"+pid+"/trigger/pipeline", url.Values{"token": {token}, "ref": {"main"}, "variables[DEPLOY_SECRET]": {"s3cr3t-value-42"}})
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
	deadline := time.Now().Add(10 * time.Second)
	for len(jobs) == 0 && time.Now().Before(deadline) {
		s.call("GET", "/api/v4/projects/"+pid+"/pipelines/"+plID+"/jobs", nil, &jobs)
	}
	if len(jobs) == 0 {
		t.Fatal("triggered pipeline has no jobs")
	}
	jobURL := s.URL + "/root/app/-/jobs/" + jsonID(jobs[0]["id"])

	// The running job's log grows on screen without a reload.
	var first, last, jobShort string
	b.run(root, "live-log",
		chromedp.Navigate(jobURL),
		chromedp.WaitVisible(chromedp.ID(`job-log`)),
		chromedp.Evaluate[chromedp.Void](`window.kilnMarker = 42`),
		chromedp.WaitVisible(chromedp.Search(`//div[@id="job-log"]//div[contains(., "line 3")]`)),
		text(`#job-log`, &first),
	)
	if strings.Contains(first, "line 20") {
		t.Fatalf("the job finished before the page could watch it grow:\n%s", first)
	}
	b.pngShot(root, "job-running")
	var marker int
	b.run(root, "live-log-end",
		chromedp.WaitVisible(chromedp.Search(`//div[@id="job-log"]//div[contains(., "line 20")]`)),
		chromedp.WaitVisible(chromedp.Search(`//div[@id="job-log"]//span[contains(@class, "term-fg-green") and text()="all green"]`)),
		eval(`window.kilnMarker`, &marker),
		text(`#job-log`, &last),
		text(`.trigger-short-token`, &jobShort),
	)
	if marker != 42 {
		t.Fatal("the job page reloaded instead of following the log")
	}
	if len(last) <= len(first) || jobShort != short {
		t.Fatalf("log did not grow (%d → %d bytes) or short token %q != %q", len(first), len(last), jobShort, short)
	}

	// The trigger block reveals the variables to a maintainer.
	var hidden, revealed string
	b.run(root, "reveal",
		chromedp.Navigate(jobURL),
		chromedp.WaitVisible(chromedp.ID(`reveal-trigger-vars`)),
		// innerText: what is rendered, not what the DOM holds hidden.
		eval(`document.getElementById('trigger-vars').innerText`, &hidden),
		chromedp.Click(chromedp.ID(`reveal-trigger-vars`)),
		chromedp.WaitVisible(chromedp.Search(`//table[@id="trigger-vars"]//span[contains(., "s3cr3t-value-42")]`)),
		eval(`document.getElementById('trigger-vars').innerText`, &revealed),
	)
	if strings.Contains(hidden, "s3cr3t-value-42") || !strings.Contains(revealed, "s3cr3t-value-42") {
		t.Fatalf("reveal: before %q after %q", hidden, revealed)
	}
	b.pngShot(root, "job-trigger-block")

	// A developer sees the short token but never the values.
	devTab := b.tab()
	b.signIn(devTab, s.URL, "dev", "devpassword1")
	var devHTML, devShort string
	b.run(devTab, "developer-job",
		chromedp.Navigate(jobURL),
		chromedp.WaitVisible(chromedp.CSS(`.trigger-short-token`)),
		text(`.trigger-short-token`, &devShort),
		into(chromedp.OuterHTML(chromedp.CSS(`html`)), &devHTML),
	)
	if devShort != short || strings.Contains(devHTML, "s3cr3t-value-42") || strings.Contains(devHTML, "reveal-trigger-vars") {
		t.Fatalf("developer's job page: short %q, leaks values: %v", devShort, strings.Contains(devHTML, "s3cr3t-value-42"))
	}

	// The pipeline appears with a triggered badge and the trigger's
	// description; the token's last use changed.
	var badge, desc string
	b.run(root, "pipelines",
		chromedp.Navigate(s.URL+"/root/app/-/pipelines"),
		chromedp.WaitVisible(chromedp.CSS(fmt.Sprintf(`tr[data-pipeline-id="%s"] .badge-info`, plID))),
		text(fmt.Sprintf(`tr[data-pipeline-id="%s"] .badge-info`, plID), &badge),
		text(fmt.Sprintf(`tr[data-pipeline-id="%s"] .trigger-desc`, plID), &desc),
	)
	if badge != "triggered" || desc != "nightly <deploy>" {
		t.Fatalf("badge %q desc %q", badge, desc)
	}
	b.pngShot(root, "pipelines")
	var jobsBadge string
	b.run(root, "jobs", chromedp.Navigate(s.URL+"/root/app/-/jobs"),
		chromedp.WaitVisible(chromedp.CSS(`tr.job-row .badge-info`)), text(`tr.job-row .badge-info`, &jobsBadge))
	if jobsBadge != "triggered" {
		t.Fatalf("jobs badge %q", jobsBadge)
	}
	b.run(root, "last-used", chromedp.Navigate(settings), chromedp.WaitVisible(chromedp.CSS(`.trigger-row`)), text(`.trigger-row .last-used`, &lastUsed))
	if lastUsed == "Never" || lastUsed == "" {
		t.Fatalf("last used still %q after a trigger", lastUsed)
	}
	b.pngShot(root, "settings-ci-cd")

	// Revoke it (accepting the confirmation); the token stops working.
	var rows int
	b.run(root, "revoke",
		chromedp.Click(chromedp.CSS(`.revoke-trigger`)),
		chromedp.WaitVisible(chromedp.CSS(`.flash-notice`)),
		eval(`document.querySelectorAll('.trigger-row').length`, &rows),
	)
	if rows != 0 {
		t.Fatalf("%d trigger rows after revoke", rows)
	}
	resp, err = http.PostForm(s.URL+"/api/v4/projects/"+pid+"/trigger/pipeline", url.Values{"token": {token}, "ref": {"main"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Fatalf("revoked token: %d", resp.StatusCode)
	}

	// A hostile branch name renders as text and runs nothing.
	hostile := `<img/src=x/onerror=alert(1)>`
	git(t, work, "checkout", "-q", "-b", hostile)
	git(t, work, "push", "-q", s.authURL("root/app"), hostile)
	var refs string
	deadline = time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) && !strings.Contains(refs, hostile) {
		b.run(root, "hostile-ref", chromedp.Navigate(s.URL+"/root/app/-/pipelines"), chromedp.WaitVisible(chromedp.CSS(`.ref-name`)),
			eval(`Array.from(document.querySelectorAll('.ref-name')).map(e => e.textContent).join('\n')`, &refs))
	}
	var imgs int
	b.run(root, "hostile-img", eval(`document.querySelectorAll('main img').length`, &imgs))
	if !strings.Contains(refs, hostile) || imgs != 0 {
		t.Fatalf("hostile ref: texts %q, img elements %d", refs, imgs)
	}
	time.Sleep(300 * time.Millisecond)
	if n := b.alerts.Load(); n != 0 {
		t.Fatalf("%d alert dialogs: injected markup ran", n)
	}
	b.shot(root, "hostile-branch")
}
