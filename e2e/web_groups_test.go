package e2e

import (
	"testing"

	"github.com/chromedp/chromedp"
)

// TestWebGroups drives the groups pages in Chromium against the real
// binary: a bad group URL is refused with the API's message, a group is
// created (its creator Owner), a member added as Developer and removed with
// the confirmation, and the API agrees at each step.
func TestWebGroups(t *testing.T) {
	b := newBrowser(t)
	s := newServer(t, "sqlite")
	s.start()
	var user map[string]any
	if code, _ := s.call("POST", "/api/v4/users", map[string]any{"username": "dev1", "name": "Dev One", "email": "dev1@example.com", "password": "firstpassword1"}, &user); code != 201 {
		t.Fatalf("create user: %d %v", code, user)
	}
	tab := b.tab()
	b.signIn(tab, s.URL, "root", "rootpassword1")
	b.run(tab, "create-group",
		chromedp.Navigate(s.URL+"/dashboard/groups"),
		chromedp.Click(chromedp.ID(`new-group`)),
		chromedp.WaitVisible(chromedp.ID(`group-name`)),
		chromedp.SendKeys(chromedp.ID(`group-name`), "Platform Team"),
		chromedp.SendKeys(chromedp.ID(`group-path`), "admin"),
		chromedp.Click(chromedp.ID(`create-group`)),
		chromedp.WaitVisible(chromedp.Search(`//div[@role="alert" and contains(., "admin is a reserved name")]`)),
		chromedp.Clear(chromedp.ID(`group-path`)),
		chromedp.SendKeys(chromedp.ID(`group-path`), "platform"),
		chromedp.Click(chromedp.ID(`create-group`)),
		chromedp.WaitVisible(chromedp.Search(`//div[@role="status" and contains(., "Group 'Platform Team' was successfully created.")]`)),
		chromedp.SendKeys(chromedp.ID(`member-username`), "dev1"),
		chromedp.SetValue(chromedp.ID(`member-access-level`), "30"),
		chromedp.Click(chromedp.ID(`add-member`)),
		chromedp.WaitVisible(chromedp.Search(`//tr[@data-username="dev1"]/td[contains(@class,"member-role") and text()="Developer"]`)),
	)
	b.pngShot(tab, "group-members")
	var ms []map[string]any
	s.call("GET", "/api/v4/groups/platform/members", nil, &ms)
	if len(ms) != 2 {
		t.Fatalf("API members after add: %v", ms)
	}
	b.run(tab, "groups-list",
		chromedp.Navigate(s.URL+"/dashboard/groups"),
		chromedp.WaitVisible(chromedp.Search(`//table[@id="groups-table"]//a[text()="Platform Team"]`)),
	)
	b.pngShot(tab, "groups")
	b.run(tab, "remove-member",
		chromedp.Navigate(s.URL+"/groups/platform/-/group_members"),
		chromedp.Click(chromedp.CSS(`tr[data-username="dev1"] .remove-member`)),
		chromedp.WaitVisible(chromedp.Search(`//div[@role="status" and contains(., "@dev1 was removed from Platform Team.")]`)),
		chromedp.WaitNotPresent(chromedp.CSS(`tr[data-username="dev1"]`)),
	)
	s.call("GET", "/api/v4/groups/platform/members", nil, &ms)
	if len(ms) != 1 {
		t.Fatalf("API members after remove: %v", ms)
	}
	if n := b.alerts.Load(); n != 0 {
		t.Fatalf("%d unexpected dialogs", n)
	}
}
