package runner

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/kilnci/kiln/internal/runner/client"
)

func TestOriginURL(t *testing.T) {
	dir := t.TempDir()
	gitCmd(t, dir, "init", "-q")
	gitDir := filepath.Join(dir, ".git")
	if _, ok := originURL(gitDir); ok {
		t.Fatal("origin reported for a repository without remotes")
	}
	const u = "http://127.0.0.1:8080/group/my proj.git"
	gitCmd(t, dir, "remote", "add", "origin", u)
	if got, ok := originURL(gitDir); !ok || got != u {
		t.Fatalf("originURL = %q, %v", got, ok)
	}
	gitCmd(t, dir, "remote", "set-url", "origin", "http://other/x.git")
	if got, _ := originURL(gitDir); got != "http://other/x.git" {
		t.Fatalf("after set-url: %q", got)
	}
	// Includes may redefine the remote: never claim a match.
	gitCmd(t, dir, "config", "include.path", "/nonexistent")
	if got, ok := originURL(gitDir); !ok || got != "" {
		t.Fatalf("with include: %q, %v", got, ok)
	}
}

func TestMaintenanceDue(t *testing.T) {
	gitDir := t.TempDir()
	if maintenanceDue(gitDir) {
		t.Fatal("due for an empty directory")
	}
	loose := filepath.Join(gitDir, "objects", "17")
	os.MkdirAll(loose, 0o755)
	for i := 0; i < 27; i++ {
		os.WriteFile(filepath.Join(loose, fmt.Sprintf("%038x", i)), nil, 0o444)
	}
	os.WriteFile(filepath.Join(loose, "tmp_obj_x"), nil, 0o444)
	if maintenanceDue(gitDir) {
		t.Fatal("due at 27 loose objects in 17/")
	}
	os.WriteFile(filepath.Join(loose, fmt.Sprintf("%038x", 99)), nil, 0o444)
	if !maintenanceDue(gitDir) {
		t.Fatal("not due at 28 loose objects in 17/ (gc.auto=6700)")
	}
	os.RemoveAll(loose)
	packs := filepath.Join(gitDir, "objects", "pack")
	os.MkdirAll(packs, 0o755)
	for i := 0; i < 51; i++ {
		os.WriteFile(filepath.Join(packs, fmt.Sprintf("pack-%d.pack", i)), nil, 0o444)
	}
	if !maintenanceDue(gitDir) {
		t.Fatal("not due at 51 packs")
	}
	os.WriteFile(filepath.Join(packs, "pack-0.keep"), nil, 0o444)
	if maintenanceDue(gitDir) {
		t.Fatal("kept pack counted")
	}
}

func TestLocalRepoOnlyForLoopbackServers(t *testing.T) {
	bare := t.TempDir()
	gitCmd(t, bare, "init", "-q", "--bare")
	for _, c := range []struct {
		server, dir string
		ok          bool
	}{
		{"http://127.0.0.1:8080/", bare, true},
		{"http://[::1]:8080/", bare, true},
		{"http://localhost:8080/", bare, true},
		{"https://kiln.example.com/", bare, false},
		{"http://10.0.0.1:8080/", bare, false},
		{"http://127.0.0.1:8080/", "relative/path", false},
		{"http://127.0.0.1:8080/", t.TempDir(), false}, // no HEAD
		{"http://127.0.0.1:8080/", "", false},
	} {
		j := &jobRun{r: &Runner{cfg: Config{URL: c.server}}, job: &client.JobResponse{GitInfo: client.GitInfo{KilnLocalRepo: c.dir}}}
		if got := j.localRepo(); (got != "") != c.ok {
			t.Errorf("server %s, dir %q: localRepo = %q", c.server, c.dir, got)
		}
	}
}
