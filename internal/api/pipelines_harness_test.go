package api

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kilnci/kiln/internal/auth"
	"github.com/kilnci/kiln/internal/gitrepo"
	"github.com/kilnci/kiln/internal/pipeline"
	"github.com/kilnci/kiln/internal/secrets"
	"github.com/kilnci/kiln/internal/store"
	"github.com/kilnci/kiln/internal/testfix"
)

// ciEnv is an API over a real SQLite store, a real repository and a real
// pipeline engine, with users at each access level of project group/app.
type ciEnv struct {
	t      *testing.T
	api    *API
	srv    *httptest.Server
	st     *store.Store
	repos  *gitrepo.Store
	engine *pipeline.Engine
	p      *store.Project
	// tokens by role: root (admin), owner, maintainer, developer, reporter,
	// stranger (no access), and "" for anonymous.
	tokens map[string]string
	users  map[string]*store.User
	work   string // the local clone the repository was pushed from
	bare   string
}

func (e *ciEnv) git(args ...string) string {
	e.t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = e.work
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=T", "GIT_AUTHOR_EMAIL=t@e", "GIT_COMMITTER_NAME=T", "GIT_COMMITTER_EMAIL=t@e", "GIT_CONFIG_NOSYSTEM=1", "HOME="+e.t.TempDir())
	out, err := cmd.CombinedOutput()
	if err != nil {
		e.t.Fatalf("git %v: %v %s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// commit writes files, commits them on the current branch and pushes it
// (and any tags) to the bare repository.
func (e *ciEnv) commit(branch string, files map[string]string) {
	e.t.Helper()
	for n, c := range files {
		os.MkdirAll(filepath.Dir(filepath.Join(e.work, n)), 0o755)
		if err := os.WriteFile(filepath.Join(e.work, n), []byte(c), 0o644); err != nil {
			e.t.Fatal(err)
		}
	}
	e.git("add", "-A")
	e.git("commit", "-qm", "change", "--allow-empty")
	e.git("push", "-q", "-f", e.bare, "HEAD:refs/heads/"+branch)
}

func newCIEnv(t *testing.T, files map[string]string) *ciEnv {
	t.Helper()
	ctx := context.Background()
	dir, st, repos := testfix.StoreAndRepos(t)
	if err := repos.Create(ctx, "group/app"); err != nil {
		t.Fatal(err)
	}
	e := &ciEnv{t: t, st: st, repos: repos, work: t.TempDir(), bare: filepath.Join(dir, "repos", "group", "app.git"),
		tokens: map[string]string{"": ""}, users: map[string]*store.User{}}
	e.git("init", "-q", "-b", "main")
	e.commit("main", files)

	box, _ := secrets.New(make([]byte, 32))
	e.engine = &pipeline.Engine{Store: st, Repos: repos, Secrets: box, ExternalURL: "http://kiln.test"}
	g := &store.Namespace{Name: "group", Path: "group", FullPath: "group", Visibility: "private"}
	e.p = &store.Project{Name: "app", Path: "app", FullPath: "group/app", Visibility: "private", DefaultBranch: "main"}
	roles := map[string]int{"root": 0, "owner": store.Owner, "maintainer": store.Maintainer, "developer": store.Developer, "reporter": store.Reporter, "stranger": 0}
	err := st.Write(ctx, func(tx *store.Tx) error {
		for name := range roles {
			u := &store.User{Username: name, Name: name, Email: name + "@example.com", IsAdmin: name == "root", State: "active"}
			if err := tx.CreateUser(ctx, u); err != nil {
				return err
			}
			e.users[name] = u
			tok := auth.NewToken(auth.PATPrefix)
			if err := tx.CreateToken(ctx, &store.Token{UserID: u.ID, Name: "t", Scopes: []string{"api"}}, auth.Hash(tok)); err != nil {
				return err
			}
			e.tokens[name] = tok
		}
		if err := tx.CreateGroup(ctx, g, e.users["root"].ID); err != nil {
			return err
		}
		e.p.NamespaceID, e.p.CreatorID = g.ID, e.users["root"].ID
		if err := tx.CreateProject(ctx, e.p); err != nil {
			return err
		}
		for name, level := range roles {
			if level > 0 {
				if err := tx.SetProjectMember(ctx, e.p.ID, e.users[name].ID, level); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	e.api = New(Deps{Store: st, Repos: repos, Engine: e.engine, Secrets: box, Log: slog.New(slog.DiscardHandler),
		ExternalURL: "http://kiln.test", MaxBody: 64 << 10})
	e.srv = httptest.NewServer(e.api)
	t.Cleanup(e.srv.Close)
	return e
}

// do sends a request as role; body may be nil, a string (raw JSON),
// url.Values (form) or anything JSON-encodable. It returns the status and
// the decoded JSON body (nil when empty).
func (e *ciEnv) do(role, method, path string, body any) (int, any) {
	e.t.Helper()
	code, raw, _ := e.doRaw(role, method, path, body)
	var out any
	if len(bytes.TrimSpace(raw)) > 0 {
		if err := json.Unmarshal(raw, &out); err != nil {
			e.t.Fatalf("%s %s: %d, not JSON: %q", method, path, code, raw)
		}
	}
	return code, out
}

func (e *ciEnv) doRaw(role, method, path string, body any) (int, []byte, http.Header) {
	e.t.Helper()
	var rd io.Reader
	ct := ""
	switch b := body.(type) {
	case nil:
	case url.Values:
		rd, ct = strings.NewReader(b.Encode()), "application/x-www-form-urlencoded"
	case string:
		rd, ct = strings.NewReader(b), "application/json"
	case []byte:
		rd, ct = bytes.NewReader(b), "application/json"
	default:
		js, _ := json.Marshal(b)
		rd, ct = bytes.NewReader(js), "application/json"
	}
	req, _ := http.NewRequest(method, e.srv.URL+path, rd)
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	if tok := e.tokens[role]; tok != "" {
		req.Header.Set("PRIVATE-TOKEN", tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, raw, resp.Header
}

// expect fails unless the request answers want; it returns the body.
func (e *ciEnv) expect(want int, role, method, path string, body any) any {
	e.t.Helper()
	code, out := e.do(role, method, path, body)
	if code != want {
		e.t.Fatalf("%s %s as %q: %d %v, want %d", method, path, role, code, out, want)
	}
	return out
}

func obj(v any) map[string]any { m, _ := v.(map[string]any); return m }
func list(v any) []any         { l, _ := v.([]any); return l }

// num reads a JSON number as int64.
func num(v any) int64 { f, _ := v.(float64); return int64(f) }
