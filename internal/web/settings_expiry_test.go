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
