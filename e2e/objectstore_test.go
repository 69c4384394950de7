package e2e

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/kilnci/kiln/internal/testenv"
)

// s3Flags are the server flags of an S3 object store in bucket; the
// secret key goes through the environment (s3Env), as operators should.
func s3Flags(s3 *testenv.S3Server, bucket string) []string {
	return []string{"--object-store", "s3", "--s3-endpoint", s3.Endpoint, "--s3-bucket", bucket,
		"--s3-region", s3.Region, "--s3-access-key", s3.AccessKey}
}

func s3Env(s3 *testenv.S3Server) []string { return []string{"KILN_S3_SECRET_KEY=" + s3.SecretKey} }

// bucketObject reads an object from the bucket directly.
func bucketObject(t *testing.T, s3 *testenv.S3Server, bucket, name string) []byte {
	t.Helper()
	o, err := s3.Client(t).GetObject(context.Background(), bucket, name, minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	b, err := io.ReadAll(o)
	if err != nil {
		t.Fatalf("reading %s/%s: %v", bucket, name, err)
	}
	return b
}

// waitObjects waits until the bucket holds exactly n objects under prefix.
func waitObjects(t *testing.T, s3 *testenv.S3Server, bucket, prefix string, n int, timeout time.Duration) []string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got := s3.ObjectNames(t, bucket, prefix)
		if len(got) == n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("bucket %s: %d objects under %q, want %d: %q", bucket, len(got), prefix, n, got)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// getArtifacts GETs path as root without following redirects.
func getArtifacts(t *testing.T, s *server, path string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest("GET", s.URL+path, nil)
	req.Header.Set("PRIVATE-TOKEN", rootToken)
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// metricCount is the count of a kiln_http_request_duration_seconds series.
func metricCount(t *testing.T, s *server, route, code string) string {
	t.Helper()
	resp, err := http.Get(s.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	re := regexp.MustCompile(`kiln_http_request_duration_seconds_count\{code="` + code + `",route="` + regexp.QuoteMeta(route) + `"\} (\d+)`)
	if m := re.FindSubmatch(b); m != nil {
		return string(m[1])
	}
	return "0"
}

const objectStoreCI = `stages: [build, test]
build:
  stage: build
  script:
    - mkdir -p out && echo built-for-s3 > out/result.txt
  artifacts:
    paths: [out/]
test:
  stage: test
  script:
    - test "$(cat out/result.txt)" = built-for-s3
    - echo "artifact from the bucket ok"
`

// TestObjectStoreS3Artifacts (issue #18): with --object-store s3, an
// artifacts archive uploaded by a real `kiln runner` lands in the bucket
// (not in the data dir), the next job downloads it (the runner asks for
// direct_download and follows the presigned redirect), the API serves it
// streamed and, with direct_download=true, as a 302 to a presigned URL;
// deleting the pipeline, then the project, removes the objects.
func TestObjectStoreS3Artifacts(t *testing.T) {
	s3 := testenv.S3(t)
	for _, kind := range dbKinds() {
		t.Run(kind, func(t *testing.T) {
			bucket := s3.NewBucket(t)
			s := newServer(t, kind, append([]string{"--builtin-runners", "0"}, s3Flags(s3, bucket)...)...)
			s.Env = s3Env(s3)
			s.start()
			if strings.Contains(s.Log(), s3.SecretKey) {
				t.Error("the server log shows the S3 secret key")
			}
			pid := newCIProject(t, s, "app")
			_, tok := createRunner(t, s, map[string]any{"runner_type": "instance_type", "description": "s3-runner", "run_untagged": true})
			startRunner(t, s, "s3", tok)
			pushBranch(t, s, "root/app", "main", map[string]string{".gitlab-ci.yml": objectStoreCI})
			pl := waitPipeline(t, s, pid, "main", 90*time.Second)
			jobs := pipelineJobs(t, s, pid, pl)
			if pl["status"] != "success" {
				for n, j := range jobs {
					t.Logf("%s: %v\n%s", n, j["status"], jobTrace(t, s, pid, jsonID(j["id"])))
				}
				t.Fatalf("pipeline: %v", pl["status"])
			}
			if tr := jobTrace(t, s, pid, jsonID(jobs["test"]["id"])); !strings.Contains(tr, "artifact from the bucket ok") {
				t.Fatalf("test job did not get the artifact:\n%s", tr)
			}
			// The runner's download was answered with a redirect.
			if n := metricCount(t, s, "GET /api/v4/jobs/{id}/artifacts", "302"); n != "1" {
				t.Errorf("runner artifact downloads answered 302: %s, want 1", n)
			}
			buildID := jsonID(jobs["build"]["id"])
			names := waitObjects(t, s3, bucket, "artifacts/"+buildID+"/", 1, time.Second)
			stored := bucketObject(t, s3, bucket, names[0])
			if !bytes.HasPrefix(stored, []byte("PK")) {
				t.Fatalf("object %s is not a zip: %q", names[0], stored[:min(len(stored), 20)])
			}
			if _, err := os.Stat(filepath.Join(s.DataDir, "artifacts")); !os.IsNotExist(err) {
				t.Errorf("artifacts written to the data dir: %v", err)
			}

			// API: streamed by default...
			path := "/api/v4/projects/" + pid + "/jobs/" + buildID + "/artifacts"
			resp, body := getArtifacts(t, s, path)
			if resp.StatusCode != 200 || !bytes.Equal(body, stored) || resp.Header.Get("Content-Type") != "application/zip" {
				t.Fatalf("streamed download: %d %s, %d bytes (stored %d)", resp.StatusCode, resp.Header.Get("Content-Type"), len(body), len(stored))
			}
			// ...and a range of it.
			req, _ := http.NewRequest("GET", s.URL+path, nil)
			req.Header.Set("PRIVATE-TOKEN", rootToken)
			req.Header.Set("Range", "bytes=0-1")
			if r, err := http.DefaultClient.Do(req); err != nil {
				t.Fatal(err)
			} else {
				b, _ := io.ReadAll(r.Body)
				r.Body.Close()
				if r.StatusCode != 206 || string(b) != "PK" {
					t.Errorf("range: %d %q", r.StatusCode, b)
				}
			}
			// ...a redirect to a presigned URL on request.
			resp, _ = getArtifacts(t, s, path+"?direct_download=true")
			loc := resp.Header.Get("Location")
			if resp.StatusCode != 302 || !strings.HasPrefix(loc, s3.Endpoint+"/"+bucket+"/artifacts/"+buildID+"/") || !strings.Contains(loc, "X-Amz-Signature=") {
				t.Fatalf("direct download: %d Location %q", resp.StatusCode, loc)
			}
			r, err := http.Get(loc) // no credentials: the URL is the permission
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(r.Body)
			r.Body.Close()
			if r.StatusCode != 200 || !bytes.Equal(b, stored) {
				t.Fatalf("presigned GET: %d, %d bytes", r.StatusCode, len(b))
			}
			if cd := r.Header.Get("Content-Disposition"); !strings.Contains(cd, "attachment") {
				t.Errorf("presigned Content-Disposition %q", cd)
			}
			// Without a token the job's artifacts of a private project stay closed.
			anon, _ := http.NewRequest("GET", s.URL+path+"?direct_download=true", nil)
			if r, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(anon); err != nil {
				t.Fatal(err)
			} else {
				r.Body.Close()
				if r.StatusCode == 302 || r.StatusCode == 200 {
					t.Errorf("anonymous direct download: %d", r.StatusCode)
				}
			}

			// Deleting the pipeline removes its objects.
			if code, _ := s.call("DELETE", "/api/v4/projects/"+pid+"/pipelines/"+jsonID(pl["id"]), nil, nil); code != 204 {
				t.Fatalf("delete pipeline: %d", code)
			}
			waitObjects(t, s3, bucket, "artifacts/", 0, 30*time.Second)
			if resp, _ := getArtifacts(t, s, path); resp.StatusCode != 404 {
				t.Errorf("artifacts of a deleted pipeline: %d", resp.StatusCode)
			}

			// Deleting the project removes the objects of its jobs.
			second := s.runPipeline(t, pid)
			if got := s.waitPipelineID(t, pid, jsonID(second["id"])); got["status"] != "success" {
				t.Fatalf("second pipeline: %v", got["status"])
			}
			waitObjects(t, s3, bucket, "artifacts/", 1, 10*time.Second)
			if code, _ := s.call("DELETE", "/api/v4/projects/"+pid, nil, nil); code != 202 {
				t.Fatalf("delete project: %d", code)
			}
			waitObjects(t, s3, bucket, "artifacts/", 0, 30*time.Second)
		})
	}
}

// readiness GETs /-/readiness.
func readiness(t *testing.T, s *server) (int, string) {
	t.Helper()
	resp, err := http.Get(s.URL + "/-/readiness")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestObjectStoreReadiness (issue #18): /-/readiness checks the object
// store: it fails, saying which check failed, while the S3 server is down
// and recovers when it is back; a server whose bucket is unreachable at
// start refuses to start, saying why.
func TestObjectStoreReadiness(t *testing.T) {
	weed := testenv.SeaweedFS(t)
	bucket := weed.NewBucket(t)
	s := newServer(t, "sqlite", append([]string{"--builtin-runners", "0"}, s3Flags(weed, bucket)...)...)
	s.Env = s3Env(weed)
	s.start()
	if code, body := readiness(t, s); code != 200 || !strings.Contains(body, `"object_store_check":[{"status":"ok"}]`) {
		t.Fatalf("readiness with S3 up: %d %s", code, body)
	}
	weed.Stop(t)
	start := time.Now()
	code, body := readiness(t, s)
	if code != 503 || !strings.Contains(body, `"object_store_check":[{"status":"failed"}]`) || !strings.Contains(body, `"db_check":[{"status":"ok"}]`) {
		t.Fatalf("readiness with S3 down: %d %s", code, body)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("readiness took %s with S3 down", took)
	}
	weed.Start(t)
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, body = readiness(t, s)
		if code == 200 && strings.Contains(body, `"object_store_check":[{"status":"ok"}]`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("readiness after S3 came back: %d %s", code, body)
		}
		time.Sleep(200 * time.Millisecond)
	}

	// Start-up checks the bucket.
	cmd := exec.Command(kilnBin, append([]string{"server", "--listen", freeAddr(t), "--data-dir", t.TempDir(), "--builtin-runners", "0"},
		s3Flags(weed, "no-such-bucket")...)...)
	cmd.Env = append(os.Environ(), s3Env(weed)...)
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), `bucket \"no-such-bucket\" does not exist`) && !strings.Contains(string(out), `bucket "no-such-bucket" does not exist`) {
		t.Errorf("server with a missing bucket: %v\n%s", err, out)
	}
	if strings.Contains(string(out), weed.SecretKey) {
		t.Errorf("the error shows the secret key:\n%s", out)
	}
}

// TestMigrateStorage (issue #18): `kiln admin migrate-storage` copies a
// data dir's artifacts and finished logs into the bucket, verifies them,
// is idempotent and resumes after an interruption; the server then runs on
// the bucket and serves the migrated artifacts.
func TestMigrateStorage(t *testing.T) {
	s3 := testenv.S3(t)
	bucket := s3.NewBucket(t)
	s := newServer(t, "sqlite", "--builtin-runners", "1")
	s.start()
	pid := newCIProject(t, s, "app")
	pushBranch(t, s, "root/app", "main", map[string]string{".gitlab-ci.yml": objectStoreCI})
	pl := waitPipeline(t, s, pid, "main", 90*time.Second)
	if pl["status"] != "success" {
		t.Fatalf("pipeline: %v", pl["status"])
	}
	jobs := pipelineJobs(t, s, pid, pl)
	buildID := jsonID(jobs["build"]["id"])
	path := "/api/v4/projects/" + pid + "/jobs/" + buildID + "/artifacts"
	resp, before := getArtifacts(t, s, path)
	if resp.StatusCode != 200 {
		t.Fatalf("download on disk: %d", resp.StatusCode)
	}
	s.stop()
	onDisk, _ := filepath.Glob(filepath.Join(s.DataDir, "traces", "*.log"))
	if len(onDisk) != 2 {
		t.Fatalf("finished logs on disk: %q", onDisk)
	}

	migrate := func() string {
		t.Helper()
		cmd := exec.Command(kilnBin, append([]string{"admin", "migrate-storage", "--data-dir", s.DataDir}, s3Flags(s3, bucket)...)...)
		cmd.Env = append(os.Environ(), s3Env(s3)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("migrate-storage: %v\n%s", err, out)
		}
		return string(out)
	}
	out := migrate()
	if !strings.Contains(out, "copied 3 objects") || !strings.Contains(out, "skipped 0") || !strings.Contains(out, " 0 failed") {
		t.Fatalf("first run:\n%s", out)
	}
	names := s3.ObjectNames(t, bucket, "")
	want := map[string]bool{"artifacts/" + buildID + "/artifacts.zip": true}
	for _, j := range jobs {
		want["traces/"+jsonID(j["id"])+".log"] = true
	}
	if len(names) != 3 {
		t.Fatalf("bucket: %q, want %v", names, want)
	}
	for _, n := range names {
		if !want[n] {
			t.Errorf("unexpected object %s", n)
		}
	}
	if got := bucketObject(t, s3, bucket, "artifacts/"+buildID+"/artifacts.zip"); !bytes.Equal(got, before) {
		t.Errorf("migrated archive differs: %d bytes, %d before", len(got), len(before))
	}
	// Idempotent.
	if out := migrate(); !strings.Contains(out, "copied 0 objects") || !strings.Contains(out, "skipped 3") {
		t.Fatalf("second run:\n%s", out)
	}
	// Resumable: an interrupted run left one object missing, one cut short.
	ctx := context.Background()
	if err := s3.Client(t).RemoveObject(ctx, bucket, "traces/"+jsonID(jobs["test"]["id"])+".log", minio.RemoveObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s3.Client(t).PutObject(ctx, bucket, "artifacts/"+buildID+"/artifacts.zip", strings.NewReader("PK"), 2, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	if out := migrate(); !strings.Contains(out, "copied 2 objects") || !strings.Contains(out, "skipped 1") {
		t.Fatalf("resumed run:\n%s", out)
	}
	if got := bucketObject(t, s3, bucket, "artifacts/"+buildID+"/artifacts.zip"); !bytes.Equal(got, before) {
		t.Errorf("re-copied archive differs: %d bytes, %d before", len(got), len(before))
	}
	// Refuses without a target object store.
	bad := exec.Command(kilnBin, "admin", "migrate-storage", "--data-dir", s.DataDir)
	if out, err := bad.CombinedOutput(); err == nil || !strings.Contains(string(out), "--object-store s3") {
		t.Errorf("migrate-storage to disk: %v\n%s", err, out)
	}

	// The server on the bucket serves the migrated archive, even with the
	// data dir's copy gone.
	if err := os.RemoveAll(filepath.Join(s.DataDir, "artifacts")); err != nil {
		t.Fatal(err)
	}
	s.Extra = append([]string{"--builtin-runners", "0"}, s3Flags(s3, bucket)...)
	s.Env = s3Env(s3)
	s.start()
	resp, after := getArtifacts(t, s, path)
	if resp.StatusCode != 200 || !bytes.Equal(after, before) {
		t.Fatalf("download from the bucket after migration: %d, %d bytes (%d before)", resp.StatusCode, len(after), len(before))
	}
	if resp, _ := getArtifacts(t, s, path+"?direct_download=true"); resp.StatusCode != 302 {
		t.Errorf("direct download after migration: %d", resp.StatusCode)
	}
}
