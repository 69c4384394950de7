package e2e

import (
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kilnci/kiln/internal/testenv"
)

// cacheShareCI: "write" (on runners tagged a) saves a cache, "read" (a
// later stage, runners tagged b) restores it.
const cacheShareCI = `stages: [write, read]
write:
  stage: write
  tags: [a]
  script:
    - mkdir -p vendor && echo "written-on-$CI_RUNNER_DESCRIPTION-for-$CI_COMMIT_REF_NAME" > vendor/lib.txt
  cache:
    key: deps
    paths: [vendor/]
read:
  stage: read
  tags: [b]
  script:
    - if [ -f vendor/lib.txt ]; then echo "RESTORED=$(cat vendor/lib.txt)"; else echo "NO-CACHE"; fi
  cache:
    key: deps
    paths: [vendor/]
    policy: pull
`

// TestRunnerCacheS3 (issue #18): two `kiln runner` processes with separate
// cache dirs and --cache-type s3 on one SeaweedFS bucket share a cache:
// what a job on the first saves, a job on the second restores. The keys
// in the bucket keep the -protected / -non_protected separation: a job of
// an unprotected branch neither restores main's cache nor overwrites it.
// Nothing is left in either runner's cache dir.
func TestRunnerCacheS3(t *testing.T) {
	s3 := testenv.S3(t)
	bucket := s3.NewBucket(t)
	s := newServer(t, "sqlite", "--builtin-runners", "0")
	s.start()
	pid := newCIProject(t, s, "app")
	var runners []*runnerProc
	for _, tag := range []string{"a", "b"} {
		_, tok := createRunner(t, s, map[string]any{"runner_type": "instance_type", "description": "runner-" + tag, "tag_list": tag})
		runners = append(runners, startRunner(t, s, "runner-"+tag, tok,
			"--cache-type", "s3", "--cache-s3-server-address", s3.Endpoint, "--cache-s3-bucket-name", bucket,
			"--cache-s3-bucket-location", s3.Region, "--cache-s3-access-key", s3.AccessKey, "--cache-s3-secret-key", s3.SecretKey,
			"--cache-path", "runners"))
	}
	files := map[string]string{".gitlab-ci.yml": cacheShareCI}
	pushBranch(t, s, "root/app", "main", files)
	traces := func(ref string) (write, read string) {
		t.Helper()
		pl := waitPipeline(t, s, pid, ref, 90*time.Second)
		if pl["status"] != "success" {
			t.Fatalf("pipeline on %s: %v", ref, pl["status"])
		}
		jobs := pipelineJobs(t, s, pid, pl)
		return jobTrace(t, s, pid, jsonID(jobs["write"]["id"])), jobTrace(t, s, pid, jsonID(jobs["read"]["id"]))
	}
	w, r := traces("main")
	if !strings.Contains(r, "RESTORED=written-on-runner-a-for-main") {
		t.Fatalf("runner b did not restore runner a's cache:\nwrite:\n%s\nread:\n%s", w, r)
	}
	if !strings.Contains(w, "Uploaded cache to the shared cache") {
		t.Errorf("write job log:\n%s", w)
	}
	want := "runners/cache/root/app/deps-protected/cache.zip"
	if names := s3.ObjectNames(t, bucket, ""); !slices.Contains(names, want) {
		t.Errorf("bucket holds %q, want %q", names, want)
	}

	// An unprotected branch: its own -non_protected cache, never main's.
	work := newWorkRepo(t, "dev", files)
	git(t, work, "push", "-q", s.authURL("root/app"), "dev")
	_, r = traces("dev")
	if !strings.Contains(r, "RESTORED=written-on-runner-a-for-dev") {
		t.Errorf("dev's read job:\n%s", r)
	}
	names := s3.ObjectNames(t, bucket, "")
	if !slices.Contains(names, "runners/cache/root/app/deps-non_protected/cache.zip") {
		t.Errorf("no non_protected object: %q", names)
	}
	// main again: still its own.
	var pl map[string]any
	if code, _ := s.call("POST", "/api/v4/projects/"+pid+"/pipeline", url.Values{"ref": {"main"}}, &pl); code != 201 {
		t.Fatalf("pipeline: %d %v", code, pl)
	}
	deadline := time.Now().Add(90 * time.Second)
	for {
		var got map[string]any
		s.call("GET", "/api/v4/projects/"+pid+"/pipelines/"+jsonID(pl["id"]), nil, &got)
		if got["status"] == "success" {
			r = jobTrace(t, s, pid, jsonID(pipelineJobs(t, s, pid, got)["read"]["id"]))
			break
		}
		if got["status"] == "failed" || time.Now().After(deadline) {
			t.Fatalf("second main pipeline: %v", got["status"])
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(r, "RESTORED=written-on-runner-a-for-main") {
		t.Errorf("main restored something else after dev ran:\n%s", r)
	}
	for _, rp := range runners {
		filepath.WalkDir(filepath.Join(rp.cmd.Dir, "cache"), func(p string, e os.DirEntry, err error) error {
			if err == nil && !e.IsDir() {
				t.Errorf("file left in a runner's cache dir: %s", p)
			}
			return nil
		})
	}
}
