package e2e

import (
	"net/url"
	"regexp"
	"testing"

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
}
