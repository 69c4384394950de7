package web

import (
	"context"
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
