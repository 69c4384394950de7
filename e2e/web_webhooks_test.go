package e2e

import (
	"bytes"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// TestWebWebhookTriggers walks the webhook triggers page in Chromium on
// SQLite and PostgreSQL: a bad expression is refused with its position, a
// trigger is created, edited, tested with a sample (the preview of its
// jobs shown, nothing created), a signed delivery shows up in its
// deliveries table without a reload, and is replayed from it.
func TestWebWebhookTriggers(t *testing.T) {
	b := newBrowser(t)
	for _, kind := range dbKinds() {
		t.Run(kind, func(t *testing.T) { testWebWebhookTriggers(t, b, kind) })
	}
}

func testWebWebhookTriggers(t *testing.T, b *browser, kind string) {
	f := newHookFixture(t, kind)
	s := f.s
	page := s.URL + "/hooks/app/-/settings/webhooks"

	root := b.tab()
	b.signIn(root, s.URL, "root", "rootpassword1")
	form := func(name string) chromedp.CSS { return chromedp.CSS(`#new-webhook-form [name="` + name + `"]`) }

	var errText string
	b.run(root, "bad-expression",
		chromedp.Navigate(page),
		chromedp.WaitVisible(form("secret")),
		chromedp.SendKeys(form("description"), "GitHub pushes"),
		chromedp.SendKeys(form("secret"), "ui-secret"),
		chromedp.SendKeys(form("filter"), "headers['x-github-event'] =="),
		chromedp.SendKeys(form("ref"), "payload.repository.default_branch"),
		chromedp.Click(chromedp.ID(`create-webhook`)),
		chromedp.WaitVisible(chromedp.ID(`webhook-error`)),
		text(`#webhook-error`, &errText),
	)
	if !strings.Contains(errText, "line 1, column") || !strings.Contains(errText, "filter") {
		t.Fatalf("error shown: %q", errText)
	}

	var hookURL string
	b.run(root, "create",
		chromedp.Clear(form("filter")),
		chromedp.SendKeys(form("filter"), "headers['x-github-event'] == 'push'"),
		chromedp.SendKeys(form("secret"), "ui-secret"),
		chromedp.SendKeys(form("variables"), "PUSHER = payload.pusher.name"),
		chromedp.Click(chromedp.ID(`create-webhook`)),
		chromedp.WaitVisible(chromedp.CSS(`.webhook-url`)),
		text(`.webhook-url`, &hookURL),
	)
	if !strings.HasPrefix(hookURL, s.URL+"/api/v4/webhooks/") {
		t.Fatalf("url shown: %q", hookURL)
	}

	// Edit: the variable's expression changes, the secret is kept.
	var vars string
	edit := func(name string) chromedp.CSS { return chromedp.CSS(`.webhook-edit [name="` + name + `"]`) }
	b.run(root, "edit",
		chromedp.Click(chromedp.CSS(`.webhook-edit summary`)),
		chromedp.WaitVisible(edit("variables")),
		chromedp.Clear(edit("variables")),
		chromedp.SendKeys(edit("variables"), "PUSHER = payload.pusher.name + '@ui'"),
		chromedp.Clear(edit("description")),
		chromedp.SendKeys(edit("description"), "GitHub pushes (edited)"),
		chromedp.Click(chromedp.CSS(`.webhook-edit button[type=submit]`)),
		chromedp.WaitVisible(chromedp.Search(`//h2[contains(., "GitHub pushes (edited)")]`)),
		into(chromedp.Value(edit("variables")), &vars),
	)
	if !strings.Contains(vars, "PUSHER = payload.pusher.name + '@ui'") {
		t.Fatalf("variables after the edit: %q", vars)
	}

	var result, preview, violations string
	b.run(root, "test",
		chromedp.Click(chromedp.CSS(`.webhook-test summary`)),
		chromedp.WaitVisible(chromedp.CSS(`.test-headers`)),
		chromedp.SendKeys(chromedp.CSS(`.test-headers`), "X-GitHub-Event: push"),
		chromedp.SendKeys(chromedp.CSS(`.test-body`), `{"repository":{"default_branch":"master"},"pusher":{"name":"Octo"}}`),
		chromedp.Click(chromedp.CSS(`.webhook-test button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`.test-result`)),
		chromedp.WaitVisible(chromedp.CSS(`.test-preview .preview-job`)),
		text(`.test-result`, &result),
		text(`.test-preview`, &preview),
		axeAudit(loadAxe(t), &violations),
	)
	if violations != "" {
		t.Errorf("axe-core violations with the preview shown:\n%s", violations)
	}
	if !strings.Contains(result, `"would_create": true`) || !strings.Contains(result, `"PUSHER": "Octo@ui"`) {
		t.Fatalf("test result: %s", result)
	}
	if !strings.Contains(preview, "master") || !strings.Contains(preview, "job") || !strings.Contains(preview, "on_success") ||
		!strings.Contains(preview, "TRIGGER_PAYLOAD") || strings.Contains(preview, "Octo") {
		t.Fatalf("preview shown: %q", preview)
	}
	if n := f.pipelineCount(t); n != 0 {
		t.Fatalf("the test created %d pipelines", n)
	}
	b.shot(root, "webhook-test-preview-"+kind)

	// A signed delivery appears in the table without a reload.
	body := readPayload(t, "github_push.json")
	trigDo(t, "POST", hookURL, "application/json", bytes.NewReader(body), map[string]string{
		"X-GitHub-Event": "push", "X-GitHub-Delivery": "ui-1", "X-Hub-Signature-256": "sha256=" + opensslHMAC(t, "sha256", "ui-secret", body)}).
		want(t, 201, "signed delivery")
	var row string
	b.run(root, "live-delivery",
		chromedp.WaitVisible(chromedp.CSS(`.delivery-row[data-result="created"]`)),
		text(`.delivery-row[data-result="created"]`, &row),
	)
	if !strings.Contains(row, "ui-1") || !strings.Contains(row, "#") {
		t.Fatalf("delivery row: %q", row)
	}
	// Replay from the table: a new delivery linked to the first, a new pipeline.
	b.run(root, "replay",
		chromedp.Click(chromedp.CSS(`.delivery-row[data-result="created"] .replay-delivery`)),
		chromedp.WaitVisible(chromedp.Search(`//*[contains(@class, "delivery-row")]//*[contains(text(), "replay of")]`)),
	)
	if n := f.pipelineCount(t); n != 2 {
		t.Fatalf("pipelines after the replay: %d, want 2", n)
	}
	b.shot(root, "webhooks-"+kind)
}
