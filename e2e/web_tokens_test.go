package e2e

import (
	"net/http"
	"regexp"
	"testing"

	"github.com/chromedp/chromedp"
)

// TestWebPersonalAccessTokens drives the personal access tokens page in
// Chromium against the real binary: a token created with a scope is shown
// once, works on the API, is gone from the page after a reload (one row, no
// second token), and revoking it (confirmed) stops it working.
func TestWebPersonalAccessTokens(t *testing.T) {
	b := newBrowser(t)
	s := newServer(t, "sqlite")
	s.start()
	var user map[string]any
	if code, _ := s.call("POST", "/api/v4/users", map[string]any{"username": "newbie", "name": "New Bie", "email": "newbie@example.com", "password": "firstpassword1"}, &user); code != 201 {
		t.Fatalf("create user: %d %v", code, user)
	}
	tab := b.tab()
	b.signIn(tab, s.URL, "newbie", "firstpassword1")
	var token string
	b.run(tab, "create-pat",
		chromedp.Navigate(s.URL+"/-/user_settings/personal_access_tokens"),
		chromedp.WaitVisible(chromedp.ID(`pat-name`)),
		chromedp.SendKeys(chromedp.ID(`pat-name`), "laptop"),
		chromedp.Click(chromedp.ID(`create-pat`)),
		chromedp.WaitVisible(chromedp.Search(`//div[@role="alert" and contains(., "Select at least one scope.")]`)),
		chromedp.Click(chromedp.ID(`scope-read_api`)),
		chromedp.Click(chromedp.ID(`create-pat`)),
		chromedp.WaitVisible(chromedp.ID(`new-pat-token`)),
		into(chromedp.Value(chromedp.ID(`new-pat-token`)), &token),
	)
	if !regexp.MustCompile(`^glpat-[0-9a-f]{40}$`).MatchString(token) {
		t.Fatalf("token %q", token)
	}
	b.pngShot(tab, "personal-access-tokens")
	apiUser := func() int {
		req, _ := http.NewRequest("GET", s.URL+"/api/v4/user", nil)
		req.Header.Set("PRIVATE-TOKEN", token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := apiUser(); code != 200 {
		t.Fatalf("new token on the API: %d", code)
	}
	var rows []*chromedp.Node
	var scopes string
	b.run(tab, "reload",
		chromedp.Reload(),
		chromedp.WaitVisible(chromedp.ID(`pat-name`)),
		chromedp.WaitNotPresent(chromedp.ID(`new-pat-token`)),
		into(chromedp.Nodes(chromedp.CSS(`.pat-row`)), &rows),
		text(`.pat-row .pat-scopes`, &scopes),
	)
	if len(rows) != 1 || scopes != "read_api" {
		t.Fatalf("after reload: %d rows, scopes %q", len(rows), scopes)
	}
	b.run(tab, "revoke",
		chromedp.Click(chromedp.CSS(`.revoke-pat`)),
		chromedp.WaitVisible(chromedp.Search(`//div[@role="status" and contains(., "Revoked personal access token laptop.")]`)),
		chromedp.WaitNotPresent(chromedp.CSS(`.pat-row`)),
	)
	if code := apiUser(); code != 401 {
		t.Fatalf("revoked token on the API: %d", code)
	}
	if n := b.alerts.Load(); n != 0 {
		t.Fatalf("%d unexpected dialogs", n)
	}
}
