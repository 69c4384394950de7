package e2e

import (
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestReplicasSeparateDataDirs: two replicas on one PostgreSQL database
// with separate data dirs share only the repositories (--repositories-dir)
// and the secrets key (--secrets-key-file). What is pushed through one is
// read through the other, both ways; a CI/CD variable sealed by one is
// read by the other; nothing lands in the data dirs' own repositories
// folders. A third replica that made its own secrets key refuses to start
// and says why.
func TestReplicasSeparateDataDirs(t *testing.T) {
	repos := filepath.Join(t.TempDir(), "shared-repositories")
	a := newServer(t, "postgres", "--builtin-runners", "0", "--repositories-dir", repos)
	a.start()
	key := filepath.Join(a.DataDir, "secrets.key")
	b := &server{t: t, DataDir: t.TempDir(), DB: a.DB, Extra: []string{"--builtin-runners", "0", "--repositories-dir", repos, "--secrets-key-file", key}}
	b.addr = freeAddr(t)
	b.URL = "http://" + b.addr
	b.start()

	pid := newCIProject(t, a, "app")
	pushBranch(t, a, "root/app", "main", map[string]string{"README.md": "through a\n"})
	pushBranch(t, b, "root/app", "other", map[string]string{"README.md": "through b\n"})
	for _, tc := range []struct {
		via       *server
		ref, want string
	}{{b, "main", "through a\n"}, {a, "other", "through b\n"}} {
		req, _ := http.NewRequest("GET", tc.via.URL+"/api/v4/projects/"+pid+"/repository/files/README.md/raw?ref="+tc.ref, nil)
		req.Header.Set("PRIVATE-TOKEN", rootToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != tc.want {
			t.Errorf("README.md on %s through the other replica: %d %q, want %q", tc.ref, resp.StatusCode, body, tc.want)
		}
	}
	if _, err := os.Stat(filepath.Join(repos, "root", "app.git", "HEAD")); err != nil {
		t.Errorf("repository not in --repositories-dir: %v", err)
	}
	for _, s := range []*server{a, b} {
		if _, err := os.Stat(filepath.Join(s.DataDir, "repositories", "root", "app.git")); err == nil {
			t.Errorf("a repository in the data dir %s although --repositories-dir is set", s.DataDir)
		}
	}
	if code, _ := a.call("POST", "/api/v4/projects/"+pid+"/variables", map[string]any{"key": "SHARED", "value": "sealed by a"}, nil); code != 201 {
		t.Fatalf("create variable: %d", code)
	}
	var v map[string]any
	if code, _ := b.call("GET", "/api/v4/projects/"+pid+"/variables/SHARED", nil, &v); code != 200 || v["value"] != "sealed by a" {
		t.Errorf("variable through b: %d %v", code, v)
	}

	// A replica with its own data dir and no shared key: its fresh
	// secrets.key cannot open the database's check.
	dir := t.TempDir()
	cmd := exec.Command(kilnBin, "server", "--listen", freeAddr(t), "--data-dir", dir, "--database", a.DB, "--builtin-runners", "0", "--repositories-dir", repos)
	cmd.Env = append(os.Environ(), "KILN_INITIAL_ROOT_TOKEN="+rootToken)
	done := make(chan struct{})
	var out []byte
	var err error
	go func() { out, err = cmd.CombinedOutput(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("a replica with another secrets key started:\n%s", out)
	}
	if err == nil || !strings.Contains(string(out), "same secrets key") {
		t.Errorf("replica with another key: err %v, log:\n%s", err, out)
	}
}
