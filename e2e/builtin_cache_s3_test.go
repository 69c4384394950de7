package e2e

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kilnci/kiln/internal/testenv"
)

// builtinCacheCI: MODE=write saves a cache, MODE=read restores it.
const builtinCacheCI = `write:
  rules: [{if: '$MODE == "write"'}]
  script:
    - mkdir -p vendor && echo "written-by-$CI_RUNNER_DESCRIPTION" > vendor/lib.txt
  cache:
    key: deps
    paths: [vendor/]
read:
  rules: [{if: '$MODE == "read"'}]
  script:
    - if [ -f vendor/lib.txt ]; then echo "RESTORED=$(cat vendor/lib.txt)"; else echo "NO-CACHE"; fi
  cache:
    key: deps
    paths: [vendor/]
    policy: pull
`

// TestBuiltinRunnerCacheS3 (issue #18): with --object-store s3, built-in
// runners keep job caches in the bucket, so replicas with separate data
// dirs share them: a cache saved by replica A's built-in runner is
// restored by replica B's (A stopped meanwhile), and neither data dir
// holds a cache file.
func TestBuiltinRunnerCacheS3(t *testing.T) {
	s3 := testenv.S3(t)
	bucket := s3.NewBucket(t)
	repos := filepath.Join(t.TempDir(), "shared-repositories")
	common := append([]string{"--builtin-runners", "1", "--repositories-dir", repos}, s3Flags(s3, bucket)...)
	a := newServer(t, "postgres", common...)
	a.Env = s3Env(s3)
	a.start()
	b := &server{t: t, DataDir: t.TempDir(), DB: a.DB, Env: a.Env,
		Extra: append(slices.Clone(common), "--secrets-key-file", filepath.Join(a.DataDir, "secrets.key"))}
	b.addr = freeAddr(t)
	b.URL = "http://" + b.addr

	pid := newCIProject(t, a, "app")
	pushBranch(t, a, "root/app", "main", map[string]string{".gitlab-ci.yml": builtinCacheCI})
	run := func(s *server, mode string) string {
		t.Helper()
		pl := s.runPipeline(t, pid, "MODE", mode)
		got := s.waitPipelineID(t, pid, jsonID(pl["id"]))
		jobs := pipelineJobs(t, s, pid, got)
		tr := jobTrace(t, s, pid, jsonID(jobs[mode]["id"]))
		if got["status"] != "success" {
			t.Fatalf("%s pipeline: %v\n%s", mode, got["status"], tr)
		}
		return tr
	}
	w := run(a, "write")
	a.stop()
	b.start()
	r := run(b, "read")
	if !strings.Contains(r, "RESTORED=written-by-") {
		t.Fatalf("replica B's built-in runner did not restore replica A's cache:\nwrite:\n%s\nread:\n%s", w, r)
	}
	var inBucket []string
	for _, n := range s3.ObjectNames(t, bucket, "") {
		if strings.Contains(n, "deps") {
			inBucket = append(inBucket, n)
		}
	}
	if len(inBucket) == 0 {
		t.Errorf("no cache object in the bucket: %q", s3.ObjectNames(t, bucket, ""))
	}
	for _, s := range []*server{a, b} {
		filepath.WalkDir(filepath.Join(s.DataDir, "cache"), func(p string, e os.DirEntry, err error) error {
			if err == nil && !e.IsDir() {
				t.Errorf("cache file in a data dir although the object store is S3: %s", p)
			}
			return nil
		})
	}
	t.Logf("cache objects %q; read job: %s", inBucket, r[strings.Index(r, "RESTORED=written-by-"):][:40])
}
