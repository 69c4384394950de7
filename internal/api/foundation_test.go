package api

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/kilnci/kiln/internal/auth"
	"github.com/kilnci/kiln/internal/store"
	"github.com/kilnci/kiln/internal/testfix"
)

// testAPI is an API over a real SQLite file and real repositories.
type testAPI struct {
	t     *testing.T
	srv   *httptest.Server
	store *store.Store
	root  string // root's token
}

func newTestAPI(t *testing.T) *testAPI {
	t.Helper()
	ctx := context.Background()
	_, st, repos := testfix.StoreAndRepos(t)
	root := &store.User{Username: "root", Name: "Admin", IsAdmin: true}
	token := auth.NewToken(auth.PATPrefix)
	st.Write(ctx, func(tx *store.Tx) error {
		if err := tx.CreateUser(ctx, root); err != nil {
			return err
		}
		return tx.CreateToken(ctx, &store.Token{UserID: root.ID, Name: "t", Scopes: []string{"api"}}, auth.Hash(token))
	})
	a := New(Deps{Store: st, Repos: repos, Log: slog.New(slog.DiscardHandler), ExternalURL: "http://kiln.test", MaxBody: 64 << 10})
	srv := httptest.NewServer(a)
	t.Cleanup(srv.Close)
	return &testAPI{t: t, srv: srv, store: st, root: token}
}

func (ta *testAPI) do(token, method, path, ct, body string) (int, map[string]any, http.Header) {
	ta.t.Helper()
	req, _ := http.NewRequest(method, ta.srv.URL+path, strings.NewReader(body))
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	if token != "" {
		req.Header.Set("PRIVATE-TOKEN", token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		ta.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	json.Unmarshal(raw, &m)
	return resp.StatusCode, m, resp.Header
}

func (ta *testAPI) user(name string, scopes ...string) (string, *store.User) {
	ctx := context.Background()
	u := &store.User{Username: name, Name: name}
	tok := auth.NewToken(auth.PATPrefix)
	if len(scopes) == 0 {
		scopes = []string{"api"}
	}
	ta.store.Write(ctx, func(tx *store.Tx) error {
		if err := tx.CreateUser(ctx, u); err != nil {
			return err
		}
		return tx.CreateToken(ctx, &store.Token{UserID: u.ID, Name: "t", Scopes: scopes}, auth.Hash(tok))
	})
	return tok, u
}

func form(kv ...string) string {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Add(kv[i], kv[i+1])
	}
	return v.Encode()
}

const formCT = "application/x-www-form-urlencoded"

func TestHostileProjectInput(t *testing.T) {
	ta := newTestAPI(t)
	for _, tc := range []struct {
		name string
		body string
		code int
	}{
		{"dotdot", form("name", "x", "path", ".."), 400},
		{"slash", form("name", "x", "path", "a/b"), 400},
		{"leading dash", form("name", "x", "path", "-rf"), 400},
		{"control char", form("name", "x", "path", "a\x01b"), 400},
		{"dot git", form("name", "x", "path", "app.git"), 400},
		{"reserved", form("name", "x", "path", "-"), 400},
		{"bad visibility", form("name", "x", "path", "ok", "visibility", "secret"), 400},
		{"name with newline", form("name", "a\nb", "path", "ok2"), 400},
		{"missing both", form("description", "x"), 400},
		{"bad namespace", form("name", "x", "path", "ok3", "namespace_id", "999"), 404},
		{"bad default branch", form("name", "x", "path", "ok4", "default_branch", "--upload-pack=evil"), 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body, _ := ta.do(ta.root, "POST", "/api/v4/projects", formCT, tc.body)
			if code != tc.code {
				t.Fatalf("code %d body %v, want %d", code, body, tc.code)
			}
			if body["message"] == nil && body["error"] == nil {
				t.Fatalf("no GitLab error shape: %v", body)
			}
		})
	}
	_, total, _ := ta.store.ListProjects(context.Background(), store.ProjectFilter{Admin: true}, store.Page{Number: 1, PerPage: 10})
	if total != 0 {
		t.Fatalf("refused requests created %d projects", total)
	}
	// Reserved top-level group names.
	if code, _, _ := ta.do(ta.root, "POST", "/api/v4/groups", formCT, form("name", "API", "path", "api")); code != 400 {
		t.Fatalf("reserved group path: %d", code)
	}
	// SQL-looking text is stored verbatim.
	evil := `x'); DROP TABLE projects; --`
	code, body, _ := ta.do(ta.root, "POST", "/api/v4/projects", formCT, form("name", "evil", "path", "evil", "description", evil))
	if code != 201 || body["description"] != evil {
		t.Fatalf("create: %d %v", code, body)
	}
}

func TestBodiesAndTokens(t *testing.T) {
	ta := newTestAPI(t)
	big := form("name", "x", "path", "big", "description", strings.Repeat("a", 100<<10))
	if code, body, _ := ta.do(ta.root, "POST", "/api/v4/projects", formCT, big); code != 413 {
		t.Fatalf("oversized body: %d %v", code, body)
	}
	if code, body, _ := ta.do(ta.root, "POST", "/api/v4/projects", "application/json", `{"name": "x",`); code != 400 || !strings.Contains(body["message"].(string), "malformed JSON") {
		t.Fatalf("malformed JSON: %d %v", code, body)
	}
	if code, _, _ := ta.do("glpat-nope", "GET", "/api/v4/user", "", ""); code != 401 {
		t.Fatalf("unknown token: %d", code)
	}
	if code, _, _ := ta.do(strings.Repeat("x", 5000), "GET", "/api/v4/user", "", ""); code != 401 {
		t.Fatalf("huge token: %d", code)
	}
	ro, _ := ta.user("reader", "read_api")
	if code, _, _ := ta.do(ro, "GET", "/api/v4/user", "", ""); code != 200 {
		t.Fatalf("read_api GET: %d", code)
	}
	if code, body, _ := ta.do(ro, "POST", "/api/v4/projects", formCT, form("name", "x")); code != 403 || body["error"] != "insufficient_scope" {
		t.Fatalf("read_api POST: %d %v", code, body)
	}
	// Revocation takes effect at once.
	tok, _ := ta.user("bob")
	code, self, _ := ta.do(tok, "GET", "/api/v4/personal_access_tokens/self", "", "")
	if code != 200 {
		t.Fatalf("self: %d", code)
	}
	if code, _, _ := ta.do(tok, "DELETE", "/api/v4/personal_access_tokens/self", "", ""); code != 204 {
		t.Fatalf("revoke self: %d", code)
	}
	if code, _, _ := ta.do(tok, "GET", "/api/v4/user", "", ""); code != 401 {
		t.Fatalf("revoked token still works: %d (%v)", code, self)
	}
	// Bearer and query forms.
	req, _ := http.NewRequest("GET", ta.srv.URL+"/api/v4/user", nil)
	req.Header.Set("Authorization", "Bearer "+ta.root)
	if resp, _ := http.DefaultClient.Do(req); resp.StatusCode != 200 {
		t.Fatalf("bearer: %d", resp.StatusCode)
	}
	if resp, _ := http.Get(ta.srv.URL + "/api/v4/user?private_token=" + ta.root); resp.StatusCode != 200 {
		t.Fatalf("query token: %d", resp.StatusCode)
	}
}

func TestPrivateProjectIsNotFound(t *testing.T) {
	ta := newTestAPI(t)
	code, p, _ := ta.do(ta.root, "POST", "/api/v4/projects", formCT, form("name", "secret", "path", "secret"))
	if code != 201 {
		t.Fatalf("create: %d", code)
	}
	other, _ := ta.user("eve")
	for _, path := range []string{"/api/v4/projects/root%2Fsecret", "/api/v4/projects/1", "/api/v4/projects/1/repository/branches", "/api/v4/projects/1/members"} {
		if code, body, _ := ta.do(other, "GET", path, "", ""); code != 404 || body["message"] != "404 Project Not Found" {
			t.Errorf("%s as outsider: %d %v", path, code, body)
		}
	}
	if code, _, _ := ta.do("", "GET", "/api/v4/projects/1", "", ""); code != 404 {
		t.Errorf("anonymous: %d", code)
	}
	// A developer member can read but not delete.
	dev, devUser := ta.user("dev")
	if code, _, _ := ta.do(ta.root, "POST", "/api/v4/projects/1/members", formCT, form("user_id", jsonNum(devUser.ID), "access_level", "30")); code != 201 {
		t.Fatalf("add member: %d", code)
	}
	if code, _, _ := ta.do(dev, "GET", "/api/v4/projects/1", "", ""); code != 200 {
		t.Errorf("developer GET: %d", code)
	}
	if code, _, _ := ta.do(dev, "DELETE", "/api/v4/projects/1", "", ""); code != 403 {
		t.Errorf("developer DELETE: %d", code)
	}
	_ = p
}

func TestPagination(t *testing.T) {
	ta := newTestAPI(t)
	for i := 0; i < 5; i++ {
		ta.do(ta.root, "POST", "/api/v4/projects", formCT, form("name", "p"+string(rune('a'+i))))
	}
	req, _ := http.NewRequest("GET", ta.srv.URL+"/api/v4/projects?per_page=2&page=2", nil)
	req.Header.Set("PRIVATE-TOKEN", ta.root)
	resp, _ := http.DefaultClient.Do(req)
	var list []map[string]any
	json.NewDecoder(resp.Body).Decode(&list)
	h := resp.Header
	if len(list) != 2 || h.Get("X-Total") != "5" || h.Get("X-Total-Pages") != "3" || h.Get("X-Next-Page") != "3" || h.Get("X-Prev-Page") != "1" || !strings.Contains(h.Get("Link"), `rel="next"`) {
		t.Fatalf("pagination: %d items, headers %v", len(list), h)
	}
	if strings.Contains(h.Get("Link"), "private_token") {
		t.Fatal("Link header leaks a token")
	}
	if code, _, _ := ta.do(ta.root, "GET", "/api/v4/projects?page=abc", "", ""); code != 400 {
		t.Fatalf("bad page: %d", code)
	}
}

func jsonNum(n int64) string { b, _ := json.Marshal(n); return string(b) }

func TestWrongJSONTypesWriteNothing(t *testing.T) {
	ta := newTestAPI(t)
	for _, body := range []string{`{"name":["a"],"path":"p1"}`, `{"name":{"a":1},"path":"p2"}`, `{"name":"ok","path":["p3"]}`, `{"name":"ok","path":"p4","visibility":null}`} {
		code, resp, _ := ta.do(ta.root, "POST", "/api/v4/projects", "application/json", body)
		if code != 400 || resp["error"] == nil {
			t.Errorf("%s: %d %v", body, code, resp)
		}
	}
	if code, _, _ := ta.do(ta.root, "POST", "/api/v4/groups", "application/json", `{"name":"g","path":"g","description":[1]}`); code != 400 {
		t.Errorf("group with a list description: %d", code)
	}
	_, total, _ := ta.store.ListProjects(context.Background(), store.ProjectFilter{Admin: true}, store.Page{Number: 1, PerPage: 10})
	if total != 0 {
		t.Fatalf("refused requests created %d projects", total)
	}
	// A number is coerced as Grape coerces it.
	if code, _, _ := ta.do(ta.root, "POST", "/api/v4/projects", "application/json", `{"name":"n","path":5}`); code != 201 {
		t.Errorf("numeric path: %d", code)
	}
}
