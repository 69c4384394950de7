package web

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/kilnci/kiln/internal/store"
)

// TestTriggerFormExpiry: the create form takes an expiration date with the
// API's rules (future, at most a year ahead); refused dates create nothing;
// the table shows Expires and Last Used.
func TestTriggerFormExpiry(t *testing.T) {
	f := newFixture(t)
	c := f.client()
	_, tok := f.signIn(c, "root", "password123")
	u := f.srv.URL + "/root/app/-/settings/ci_cd/triggers"
	day := func(d time.Duration) string { return time.Now().Add(d).UTC().Format("2006-01-02") }
	for _, tc := range []struct{ exp, want string }{
		{day(-48 * time.Hour), "must be in the future"},
		{day(400 * 24 * time.Hour), "must be before"},
		{"31/12/2027", "is not a date"},
	} {
		code, body := post(t, c, u, url.Values{"authenticity_token": {tok}, "description": {"x"}, "expires_at": {tc.exp}})
		if code != http.StatusUnprocessableEntity || !strings.Contains(body, tc.want) {
			t.Errorf("expires_at %s: %d, want 422 %q", tc.exp, code, tc.want)
		}
	}
	trs, _, _ := f.st.TriggersOfProject(context.Background(), f.project.ID, store.Page{Number: 1, PerPage: 10})
	if len(trs) != 0 {
		t.Fatalf("refused forms created %d triggers", len(trs))
	}
	exp := day(30 * 24 * time.Hour)
	if code, _ := post(t, c, u, url.Values{"authenticity_token": {tok}, "description": {"monthly"}, "expires_at": {exp}}); code != http.StatusSeeOther {
		t.Fatalf("good expiry: %d", code)
	}
	trs, _, _ = f.st.TriggersOfProject(context.Background(), f.project.ID, store.Page{Number: 1, PerPage: 10})
	if len(trs) != 1 || trs[0].ExpiresAt == nil || trs[0].ExpiresAt.Format("2006-01-02") != exp {
		t.Fatalf("stored: %+v", trs)
	}
	_, body := get(t, c, f.srv.URL+"/root/app/-/settings/ci_cd")
	if !strings.Contains(body, `<th scope="col">Expires</th>`) || !strings.Contains(body, `class="expires"><time datetime="`+exp) || !strings.Contains(body, `class="last-used">Never`) {
		t.Fatalf("table without expiry / last use")
	}
}

// TestTriggerFormPolicyAndRotate: the create form sets the token's policy
// by the API's rules (a bad network is a 422 that creates nothing), the
// table shows it, and Rotate issues a new token with the same policy,
// shown once after the redirect, ending the old one after the overlap.
func TestTriggerFormPolicyAndRotate(t *testing.T) {
	f := newFixture(t)
	c := f.client()
	_, tok := f.signIn(c, "root", "password123")
	u := f.srv.URL + "/root/app/-/settings/ci_cd/triggers"
	code, body := post(t, c, u, url.Values{"authenticity_token": {tok}, "description": {"x"}, "allowed_cidrs": {"not-a-net"}, "variables_allowed": {"1"}})
	if code != http.StatusUnprocessableEntity || !strings.Contains(body, "is not a network") || !strings.Contains(body, `value="not-a-net"`) {
		t.Fatalf("bad network: %d", code)
	}
	if code, body := post(t, c, u, url.Values{"authenticity_token": {tok}, "description": {"x"}, "rate_limit": {"-3"}}); code != http.StatusUnprocessableEntity || !strings.Contains(body, "Rate limit must be between") {
		t.Fatalf("bad rate: %d", code)
	}
	ctx := context.Background()
	if trs, _, _ := f.st.TriggersOfProject(ctx, f.project.ID, store.Page{Number: 1, PerPage: 10}); len(trs) != 0 {
		t.Fatalf("refused forms created %d triggers", len(trs))
	}
	if code, _ := post(t, c, u, url.Values{"authenticity_token": {tok}, "description": {"deploy"}, "allowed_refs": {"release-*, main"},
		"allowed_cidrs": {"10.0.0.1"}, "allowed_variables": {"DEPLOY_ENV"}, "rate_limit": {"7"}}); code != http.StatusSeeOther {
		t.Fatalf("create: %d", code)
	}
	trs, _, _ := f.st.TriggersOfProject(ctx, f.project.ID, store.Page{Number: 1, PerPage: 10})
	if len(trs) != 1 || fmt.Sprint(trs[0].AllowedRefs) != "[release-* main]" || fmt.Sprint(trs[0].AllowedCIDRs) != "[10.0.0.1/32]" ||
		!trs[0].NoVariables || fmt.Sprint(trs[0].AllowedVariables) != "[DEPLOY_ENV]" || trs[0].RateLimit != 7 {
		t.Fatalf("stored: %+v", trs[0])
	}
	old := trs[0]
	_, body = get(t, c, f.srv.URL+"/root/app/-/settings/ci_cd")
	if !strings.Contains(body, "no variables") || !strings.Contains(body, "at most 7/min") || !strings.Contains(body, `/triggers/`+fmt.Sprint(old.ID)+`/rotate"`) {
		t.Fatalf("table lacks the policy or the Rotate button")
	}
	if code, _ := post(t, c, u+"/"+fmt.Sprint(old.ID)+"/rotate", url.Values{"authenticity_token": {tok}, "overlap": {"0s"}}); code != http.StatusSeeOther {
		t.Fatalf("rotate: %d", code)
	}
	trs, _, _ = f.st.TriggersOfProject(ctx, f.project.ID, store.Page{Number: 1, PerPage: 10})
	if len(trs) != 2 || trs[1].RateLimit != 7 || !trs[1].NoVariables || fmt.Sprint(trs[1].AllowedRefs) != "[release-* main]" || !trs[0].Expired(time.Now().Add(time.Second)) {
		t.Fatalf("after rotate: %+v %+v", trs[0], trs[1])
	}
	_, body = get(t, c, f.srv.URL+"/root/app/-/settings/ci_cd")
	if !strings.Contains(body, `id="new-trigger-token"`) {
		t.Fatalf("rotated token not shown")
	}
	if _, body = get(t, c, f.srv.URL+"/root/app/-/settings/ci_cd"); strings.Contains(body, `id="new-trigger-token"`) {
		t.Fatalf("rotated token shown twice")
	}
}

// TestTriggerEditForm: the owner edits a token's description, expiry and
// policy through its edit page by PUT's rules (post/redirect/get); a bad
// field is a 422 showing the problem, with nothing written; a developer
// gets no edit page; another maintainer is sent back without a change; a
// form without the CSRF token is refused.
func TestTriggerEditForm(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	c := f.client()
	_, tok := f.signIn(c, "root", "password123")
	u := f.srv.URL + "/root/app/-/settings/ci_cd/triggers"
	if code, _ := post(t, c, u, url.Values{"authenticity_token": {tok}, "description": {"deploy"}, "allowed_refs": {"main"}, "rate_limit": {"5"}}); code != http.StatusSeeOther {
		t.Fatalf("create: %d", code)
	}
	trs, _, _ := f.st.TriggersOfProject(ctx, f.project.ID, store.Page{Number: 1, PerPage: 10})
	tr := trs[0]
	edit := fmt.Sprintf("%s/%d", u, tr.ID)
	code, body := get(t, c, edit+"/edit")
	if code != http.StatusOK || !strings.Contains(body, `id="edit-allowed-refs" name="allowed_refs" value="main"`) || !strings.Contains(body, `name="rate_limit" type="number" min="0" max="10000" value="5"`) ||
		!strings.Contains(body, `action="/root/app/-/settings/ci_cd/triggers/`+fmt.Sprint(tr.ID)+`"`) {
		t.Fatalf("edit page: %d %s", code, body)
	}
	if _, body := get(t, c, f.srv.URL+"/root/app/-/settings/ci_cd"); !strings.Contains(body, fmt.Sprintf(`/triggers/%d/edit"`, tr.ID)) {
		t.Fatalf("table lacks the Edit link")
	}
	form := func(kv ...string) url.Values {
		v := url.Values{"authenticity_token": {tok}, "description": {"deploy"}, "allowed_refs": {"main"}, "rate_limit": {"5"}}
		for i := 0; i < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		return v
	}
	day := func(d time.Duration) string { return time.Now().Add(d).UTC().Format("2006-01-02") }
	for _, tc := range []struct {
		v    url.Values
		want string
	}{
		{form("allowed_cidrs", "not-a-net"), "Allowed cidrs &#39;not-a-net&#39; is not a network"},
		{form("rate_limit", "-1"), "Rate limit must be between 0 and 10000"},
		{form("allowed_variables", "BAD-NAME"), "is not a variable name"},
		{form("expires_at", day(-48*time.Hour)), "Expires at must be in the future"},
		{form("expires_at", day(400*24*time.Hour)), "Expires at must be before"},
		{form("expires_at", "31/12/2027"), "Expires at is invalid"},
		{form("description", strings.Repeat("x", 256)), "Description is too long"},
		{form("description", " "), "Description can&#39;t be blank"},
	} {
		code, body := post(t, c, edit, tc.v)
		if code != http.StatusUnprocessableEntity || !strings.Contains(body, tc.want) {
			t.Errorf("%v: %d, want 422 with %q", tc.v, code, tc.want)
		}
	}
	if got, _ := f.st.TriggerByID(ctx, tr.ID); fmt.Sprint(got.AllowedRefs) != "[main]" || got.RateLimit != 5 || got.Description != "deploy" || got.ExpiresAt != nil {
		t.Fatalf("refused forms changed the token: %+v", got)
	}
	if code, _ := post(t, c, edit, url.Values{"description": {"x"}}); code != http.StatusForbidden {
		t.Fatalf("no CSRF token: %d", code)
	}
	exp := day(60 * 24 * time.Hour)
	code, _ = post(t, c, edit, url.Values{"authenticity_token": {tok}, "description": {"deploy v2"}, "expires_at": {exp}, "allowed_refs": {"release-*, v*"},
		"allowed_cidrs": {"10.0.0.0/8, 192.168.1.7"}, "allowed_variables": {"DEPLOY_ENV"}, "variables_allowed": {"1"}, "rate_limit": {""}})
	if code != http.StatusSeeOther {
		t.Fatalf("save: %d", code)
	}
	got, _ := f.st.TriggerByID(ctx, tr.ID)
	if got.Description != "deploy v2" || got.ExpiresAt == nil || got.ExpiresAt.Format("2006-01-02") != exp || fmt.Sprint(got.AllowedRefs) != "[release-* v*]" ||
		fmt.Sprint(got.AllowedCIDRs) != "[10.0.0.0/8 192.168.1.7/32]" || got.NoVariables || fmt.Sprint(got.AllowedVariables) != "[DEPLOY_ENV]" || got.RateLimit != 0 ||
		got.TokenHash != tr.TokenHash {
		t.Fatalf("saved: %+v", got)
	}
	// Unchecked box: no variables; empty lists lift the restriction; an
	// empty date: never expires.
	if code, _ := post(t, c, edit, url.Values{"authenticity_token": {tok}, "description": {"deploy v2"}}); code != http.StatusSeeOther {
		t.Fatalf("clear: %d", code)
	}
	got, _ = f.st.TriggerByID(ctx, tr.ID)
	if !got.NoVariables || got.AllowedRefs != nil || got.AllowedCIDRs != nil || got.ExpiresAt != nil {
		t.Fatalf("cleared: %+v", got)
	}

	// alice, a developer, gets no edit page; as a maintainer who does not
	// own the token she is sent back and nothing changes.
	ca := f.client()
	_, atok := f.signIn(ca, "alice", "password123")
	if code, _ := get(t, ca, edit+"/edit"); code != http.StatusNotFound && code != http.StatusForbidden {
		t.Fatalf("developer edit page: %d", code)
	}
	if err := f.st.Write(ctx, func(tx *store.Tx) error {
		return tx.SetProjectMember(ctx, f.project.ID, f.userID("alice"), store.Maintainer)
	}); err != nil {
		t.Fatal(err)
	}
	if code, _ := get(t, ca, edit+"/edit"); code != http.StatusSeeOther {
		t.Fatalf("maintainer, not the owner, edit page: %d", code)
	}
	if code, _ := post(t, ca, edit, url.Values{"authenticity_token": {atok}, "description": {"mine now"}, "variables_allowed": {"1"}}); code != http.StatusSeeOther {
		t.Fatalf("maintainer, not the owner, save: %d", code)
	}
	if got, _ := f.st.TriggerByID(ctx, tr.ID); got.Description != "deploy v2" || !got.NoVariables {
		t.Fatalf("a non-owner changed the token: %+v", got)
	}
}
