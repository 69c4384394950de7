package web

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/kilnci/kiln/internal/auth"
	"github.com/kilnci/kiln/internal/pipeline"
	"github.com/kilnci/kiln/internal/secrets"
	"github.com/kilnci/kiln/internal/store"
	"github.com/kilnci/kiln/internal/testfix"
)

// fixture is a UI over a fresh SQLite store with root (admin), alice (a
// developer of root/app) and eve (no access), and a private project.
type fixture struct {
	t       *testing.T
	st      *store.Store
	srv     *httptest.Server
	project *store.Project
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	_, st, repos := testfix.StoreAndRepos(t)
	box, err := secrets.New(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	eng := &pipeline.Engine{Store: st, Repos: repos, Secrets: box}
	w, err := New(Deps{Store: st, Repos: repos, Engine: eng, Secrets: box, ExternalURL: "http://kiln.test"})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, st: st, srv: httptest.NewServer(w)}
	t.Cleanup(f.srv.Close)
	hash, _ := auth.HashPassword("password123")
	var alice *store.User
	err = st.Write(ctx, func(tx *store.Tx) error {
		for _, u := range []*store.User{{Username: "root", Name: "Root", IsAdmin: true, PasswordHash: hash}, {Username: "alice", Name: "Alice", PasswordHash: hash}, {Username: "eve", Name: "Eve", PasswordHash: hash}} {
			if err := tx.CreateUser(ctx, u); err != nil {
				return err
			}
			if u.Username == "alice" {
				alice = u
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	ns, err := st.UserNamespace(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	err = st.Write(ctx, func(tx *store.Tx) error {
		f.project = &store.Project{NamespaceID: ns.ID, Name: "app", Path: "app", FullPath: "root/app", Visibility: "private", CreatorID: 1, DefaultBranch: "main"}
		if err := tx.CreateProject(ctx, f.project); err != nil {
			return err
		}
		return tx.SetProjectMember(ctx, f.project.ID, alice.ID, store.Developer)
	})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// client is a browser-like client with a cookie jar that does not follow
// redirects (tests look at them).
func (f *fixture) client() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func get(t *testing.T, c *http.Client, u string) (int, string) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func post(t *testing.T, c *http.Client, u string, v url.Values) (int, string) {
	t.Helper()
	resp, err := c.PostForm(u, v)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

var tokenRE = regexp.MustCompile(`name="authenticity_token" value="([0-9a-f]+)"`)

func csrfOf(t *testing.T, body string) string {
	t.Helper()
	m := tokenRE.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no CSRF token in page:\n%s", body)
	}
	return m[1]
}

// signIn signs in and returns the session's CSRF token.
func (f *fixture) signIn(c *http.Client, user, password string) (int, string) {
	_, page := get(f.t, c, f.srv.URL+"/users/sign_in")
	code, _ := post(f.t, c, f.srv.URL+"/users/sign_in", url.Values{"authenticity_token": {csrfOf(f.t, page)}, "username": {user}, "password": {password}})
	if code != http.StatusSeeOther {
		return code, ""
	}
	_, home := get(f.t, c, f.srv.URL+"/")
	return code, csrfOf(f.t, home)
}

func TestSignInFailures(t *testing.T) {
	f := newFixture(t)
	c := f.client()
	if code, _ := f.signIn(c, "root", "wrong"); code != http.StatusUnauthorized {
		t.Fatalf("wrong password: %d", code)
	}
	if code, _ := f.signIn(c, "nobody", "password123"); code != http.StatusUnauthorized {
		t.Fatalf("unknown user: %d", code)
	}
	_, body := get(t, c, f.srv.URL+"/users/sign_in")
	if !strings.Contains(body, "Sign in") {
		t.Fatal("sign-in page missing")
	}
	// A sign-in POST without the form's token (login CSRF) is refused.
	if code, _ := post(t, f.client(), f.srv.URL+"/users/sign_in", url.Values{"username": {"root"}, "password": {"password123"}}); code != http.StatusForbidden {
		t.Fatalf("sign-in without CSRF token: %d", code)
	}
	code, _ := f.signIn(c, "root", "password123")
	if code != http.StatusSeeOther {
		t.Fatalf("good sign-in: %d", code)
	}
	// The session cookie is HttpOnly and SameSite=Lax; only a hash is stored.
	resp, _ := f.client().Get(f.srv.URL + "/users/sign_in")
	resp.Body.Close()
	var n int
	f.st.DB().QueryRow(`SELECT COUNT(*) FROM sessions`).Scan(&n)
	if n != 1 {
		t.Fatalf("sessions = %d", n)
	}
}

func TestSessionCookieFlags(t *testing.T) {
	f := newFixture(t)
	c := f.client()
	_, page := get(t, c, f.srv.URL+"/users/sign_in")
	resp, err := c.PostForm(f.srv.URL+"/users/sign_in", url.Values{"authenticity_token": {csrfOf(t, page)}, "username": {"root"}, "password": {"password123"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var found bool
	for _, ck := range resp.Cookies() {
		if ck.Name == sessionCookie && ck.Value != "" {
			found = true
			if !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode || ck.Secure {
				t.Fatalf("cookie flags: %+v", ck)
			}
			var stored string
			f.st.DB().QueryRow(`SELECT id_hash FROM sessions`).Scan(&stored)
			if stored == ck.Value || stored != auth.Hash(ck.Value) {
				t.Fatal("sessions table must hold the hash of the id, not the id")
			}
		}
	}
	if !found {
		t.Fatal("no session cookie")
	}
}

func TestCSRFRefused(t *testing.T) {
	f := newFixture(t)
	c := f.client()
	_, tok := f.signIn(c, "root", "password123")
	u := f.srv.URL + "/root/app/-/settings/ci_cd/triggers"
	if code, _ := post(t, c, u, url.Values{"description": {"x"}}); code != http.StatusForbidden {
		t.Fatalf("no token: %d", code)
	}
	if code, _ := post(t, c, u, url.Values{"description": {"x"}, "authenticity_token": {"0000"}}); code != http.StatusForbidden {
		t.Fatalf("wrong token: %d", code)
	}
	// A cross-site Origin is refused even with the right token.
	req, _ := http.NewRequest("POST", u, strings.NewReader(url.Values{"description": {"x"}, "authenticity_token": {tok}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "https://evil.example")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-origin: %d", resp.StatusCode)
	}
	trs, _, _ := f.st.TriggersOfProject(context.Background(), f.project.ID, store.Page{Number: 1, PerPage: 10})
	if len(trs) != 0 {
		t.Fatal("a refused POST created a trigger")
	}
	code, _ := post(t, c, u, url.Values{"description": {"deploy"}, "authenticity_token": {tok}})
	if code != http.StatusSeeOther {
		t.Fatalf("good POST: %d, want a redirect", code)
	}
}

// TestTriggerCreatePostRedirectGet: creating a trigger token answers with a
// redirect; the page it lands on shows the full token once; reloading it
// neither shows the token again nor creates a second trigger; another
// browser (another session) never sees it.
func TestTriggerCreatePostRedirectGet(t *testing.T) {
	f := newFixture(t)
	c := f.client()
	_, tok := f.signIn(c, "root", "password123")
	settings := f.srv.URL + "/root/app/-/settings/ci_cd"
	resp, err := c.PostForm(settings+"/triggers", url.Values{"description": {"deploy"}, "authenticity_token": {tok}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/root/app/-/settings/ci_cd#triggers" {
		t.Fatalf("create: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	tokenRE := regexp.MustCompile(`glptt-[0-9a-f]{40}`)
	// A second browser signed in as root has its own session: no token.
	other := f.client()
	f.signIn(other, "root", "password123")
	for _, ck := range c.Jar.Cookies(mustURL(t, settings)) {
		if ck.Name == newTriggerCookie {
			other.Jar.SetCookies(mustURL(t, settings), []*http.Cookie{ck})
		}
	}
	if _, body := get(t, other, settings); tokenRE.MatchString(body) {
		t.Fatal("another session was shown the token")
	}
	_, body := get(t, c, settings)
	secret := tokenRE.FindString(body)
	trs, _, _ := f.st.TriggersOfProject(context.Background(), f.project.ID, store.Page{Number: 1, PerPage: 10})
	if secret == "" || len(trs) != 1 || trs[0].TokenHash != auth.Hash(secret) {
		t.Fatalf("landing page: token %q, %d triggers", secret, len(trs))
	}
	if _, body := get(t, c, settings); tokenRE.MatchString(body) {
		t.Fatal("reload showed the token again")
	}
	trs, _, _ = f.st.TriggersOfProject(context.Background(), f.project.ID, store.Page{Number: 1, PerPage: 10})
	if len(trs) != 1 {
		t.Fatalf("%d triggers after reload", len(trs))
	}
}

func mustURL(t *testing.T, s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestPrivateProjectIs404(t *testing.T) {
	f := newFixture(t)
	// Anonymous visitors are sent to sign in, the same for a project that
	// exists and one that does not (GitLab's answer; nothing is revealed).
	for _, p := range []string{"/root/app", "/root/app/-/pipelines", "/root/app/-/jobs", "/root/app/-/settings/ci_cd", "/root/app/-/pipeline_schedules", "/root/nothing", "/nobody/nothing/-/pipelines/1"} {
		resp, err := f.client().Get(f.srv.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if want := "/users/sign_in?redirect_to=" + url.QueryEscape(p); resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != want {
			t.Errorf("anonymous %s: %d %q, want 302 to %q", p, resp.StatusCode, resp.Header.Get("Location"), want)
		}
	}
	eve := f.client()
	f.signIn(eve, "eve", "password123")
	for _, p := range []string{"/root/app", "/root/app/-/pipelines", "/root/app/-/settings/ci_cd"} {
		if code, _ := get(t, eve, f.srv.URL+p); code != http.StatusNotFound {
			t.Errorf("eve %s: %d", p, code)
		}
	}
	alice := f.client()
	f.signIn(alice, "alice", "password123")
	if code, _ := get(t, alice, f.srv.URL+"/root/app/-/pipelines"); code != http.StatusOK {
		t.Errorf("developer pipelines: %d", code)
	}
	// Settings are for maintainers: a developer gets 404 as well.
	if code, _ := get(t, alice, f.srv.URL+"/root/app/-/settings/ci_cd"); code != http.StatusNotFound {
		t.Errorf("developer settings: %d", code)
	}
	if code, _ := get(t, alice, f.srv.URL+"/admin"); code != http.StatusNotFound {
		t.Errorf("developer admin: %d", code)
	}
}

func TestHostileValuesAreEscaped(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	hostile := `<img/src=x/onerror=alert(1)>`
	var job *store.Job
	err := f.st.Write(ctx, func(tx *store.Tx) error {
		pl := &store.Pipeline{ProjectID: f.project.ID, Ref: hostile, SHA: strings.Repeat("a", 40), Source: "trigger", Status: "failed", CommitTitle: `"><script>alert(2)</script>`}
		if err := tx.InsertPipeline(ctx, pl); err != nil {
			return err
		}
		job = &store.Job{PipelineID: pl.ID, ProjectID: f.project.ID, Name: `<b>job</b>`, Stage: `<i>test</i>`, Status: "failed", Spec: `{}`}
		return tx.InsertJob(ctx, job)
	})
	if err != nil {
		t.Fatal(err)
	}
	c := f.client()
	f.signIn(c, "root", "password123")
	for _, p := range []string{"/root/app", "/root/app/-/pipelines", "/root/app/-/pipelines/1", "/root/app/-/jobs", "/root/app/-/jobs/1"} {
		code, body := get(t, c, f.srv.URL+p)
		if code != http.StatusOK {
			t.Fatalf("%s: %d", p, code)
		}
		for _, bad := range []string{"<img", "<script>alert", "<b>job", "<i>test"} {
			if strings.Contains(body, bad) {
				t.Errorf("%s contains unescaped %q", p, bad)
			}
		}
	}
	_, body := get(t, c, f.srv.URL+"/root/app/-/pipelines")
	if !strings.Contains(body, "&lt;img/src=x/onerror=alert(1)&gt;") || !strings.Contains(body, ">triggered<") {
		t.Errorf("pipelines page lacks the escaped ref or the triggered badge")
	}
}

func TestLogRendering(t *testing.T) {
	log := "plain <script>alert(1)</script>\n" +
		"\x1b[0Ksection_start:1700000000:build_step[collapsed=true]\r\x1b[0K\x1b[36;1mBuilding & testing\x1b[0m\n" +
		"\x1b[31mred\x1b[0m and \x1b[1;92mbright\x1b[0m\n" +
		"progress 10%\rprogress 100%\n" +
		"\x1b[0Ksection_end:1700000001:build_step\r\x1b[0K\n" +
		"section_start:1:bad name\n"
	out := logHTML(newLogRenderer().render([]byte(log)))
	for _, want := range []string{
		`<div class="line">plain &lt;script&gt;alert(1)&lt;/script&gt;</div>`,
		`<details class="section" data-section="build_step"><summary class="line section-header"><span class="term-fg-cyan term-bold">Building &amp; testing</span></summary>`,
		`<span class="term-fg-red">red</span> and <span class="term-fg-l-green term-bold">bright</span>`,
		`<div class="line">progress 100%</div>`,
		`</details>`,
		`section_start:1:bad name`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log HTML lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "\x1b") || strings.Contains(out, "progress 10%") {
		t.Errorf("escape sequences or overwritten text leaked:\n%s", out)
	}
	// A section still open at the end is marked for the live view.
	open := logHTML(newLogRenderer().render([]byte("section_start:1:s1\r\x1b[0KHeader\nline\n")))
	if !strings.Contains(open, "data-unclosed") {
		t.Errorf("open section not marked: %s", open)
	}
}

func TestSafeRedirect(t *testing.T) {
	for in, want := range map[string]string{
		"/root/app/-/pipelines": "/root/app/-/pipelines",
		"//evil.example":        "/",
		"/\t/evil.example":      "/",
		"/\\evil.example":       "/",
		"https://evil.example":  "/",
		"/a\nb":                 "/",
		"relative":              "/",
	} {
		if got := safeRedirect(in); got != want {
			t.Errorf("safeRedirect(%q) = %q, want %q", in, got, want)
		}
	}
}
