package web

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestPasswordChange: the current password is required, the new one is
// checked, success answers with a redirect and keeps this browser signed in
// while signing out the others, and the old password stops working.
func TestPasswordChange(t *testing.T) {
	f := newFixture(t)
	c, other := f.client(), f.client()
	if code, _ := f.signIn(other, "alice", "password123"); code != http.StatusSeeOther {
		t.Fatalf("other browser sign-in: %d", code)
	}
	_, tok := f.signIn(c, "alice", "password123")
	u := f.srv.URL + "/-/user_settings/password"
	if code, body := get(t, c, u+"/edit"); code != http.StatusOK || !strings.Contains(body, `id="current_password"`) {
		t.Fatalf("edit page: %d", code)
	}
	for _, tc := range []struct {
		name                   string
		current, next, confirm string
		want                   string
	}{
		{"wrong current", "nope", "newpassword1", "newpassword1", "valid current password"},
		{"empty current", "", "newpassword1", "newpassword1", "valid current password"},
		{"too short", "password123", "short", "short", "too short"},
		{"mismatch", "password123", "newpassword1", "newpassword2", "doesn&#39;t match"},
	} {
		code, body := post(t, c, u, url.Values{"authenticity_token": {tok}, "current_password": {tc.current}, "new_password": {tc.next}, "password_confirmation": {tc.confirm}})
		if code != http.StatusUnprocessableEntity || !strings.Contains(body, tc.want) {
			t.Errorf("%s: %d, want 422 with %q", tc.name, code, tc.want)
		}
	}
	if code, _ := f.signIn(f.client(), "alice", "password123"); code != http.StatusSeeOther {
		t.Fatalf("refused changes changed the password: %d", code)
	}
	resp, err := c.PostForm(u, url.Values{"authenticity_token": {tok}, "current_password": {"password123"}, "new_password": {"newpassword1"}, "password_confirmation": {"newpassword1"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/-/user_settings/password/edit" {
		t.Fatalf("change: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if code, body := get(t, c, f.srv.URL+"/-/user_settings/password/edit"); code != http.StatusOK || !strings.Contains(body, "Password was successfully updated.") {
		t.Fatalf("this browser after the change: %d", code)
	}
	// The other browser was signed out: it is sent to sign in.
	resp, err = other.Get(f.srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(resp.Header.Get("Location"), "/users/sign_in") {
		t.Fatalf("other browser still signed in: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if code, _ := f.signIn(f.client(), "alice", "password123"); code != http.StatusUnauthorized {
		t.Fatalf("old password: %d", code)
	}
	if code, _ := f.signIn(f.client(), "alice", "newpassword1"); code != http.StatusSeeOther {
		t.Fatalf("new password: %d", code)
	}
	// Anonymous: sign in first, then back to the page.
	resp, err = f.client().Get(f.srv.URL + "/-/user_settings/password/edit")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/users/sign_in?redirect_to="+url.QueryEscape("/-/user_settings/password/edit") {
		t.Fatalf("anonymous: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
}

// TestSignInReturnsToPage: a signed-out visit to a private page leads to the
// sign-in form and, after signing in, back to the page; an off-site
// redirect_to still lands on "/".
func TestSignInReturnsToPage(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct{ to, want string }{
		{"/root/app/-/pipelines?page=2", "/root/app/-/pipelines?page=2"},
		{"//evil.example/x", "/"},
		{"https://evil.example/", "/"},
	} {
		c := f.client()
		_, page := get(t, c, f.srv.URL+"/users/sign_in?redirect_to="+url.QueryEscape(tc.to))
		if tc.want != "/" && !strings.Contains(page, `name="redirect_to" value="`+tc.want+`"`) {
			t.Errorf("%s: the form does not carry redirect_to", tc.to)
		}
		resp, err := c.PostForm(f.srv.URL+"/users/sign_in", url.Values{"authenticity_token": {csrfOf(t, page)}, "username": {"alice"}, "password": {"password123"}, "redirect_to": {tc.to}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != tc.want {
			t.Errorf("%s: %d %q, want %q", tc.to, resp.StatusCode, resp.Header.Get("Location"), tc.want)
		}
	}
}
