package runner

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kilnci/kiln/internal/blob"
	"github.com/kilnci/kiln/internal/runner/client"
	"github.com/kilnci/kiln/internal/testenv"
)

// depZip is a dependency's artifacts archive holding dep.txt.
func depZip(t *testing.T) []byte {
	t.Helper()
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "dep.txt"), []byte("from dependency\n"), 0o644)
	var b bytes.Buffer
	zp := filepath.Join(t.TempDir(), "dep.zip")
	f, err := os.Create(zp)
	if err != nil {
		t.Fatal(err)
	}
	if err := writeZip(f, src, []string{"dep.txt"}); err != nil {
		t.Fatal(err)
	}
	f.Close()
	z, _ := os.ReadFile(zp)
	b.Write(z)
	return b.Bytes()
}

// stallJob queues a job depending on job 7's artifacts (z), whose
// downloads fs answers with redirect.
func stallJob(t *testing.T, fs *fakeServer, id int64, z []byte, redirect func(id int64, n int) string) {
	t.Helper()
	job := fs.newJob(id, "cat dep.txt")
	job.Dependencies = []client.Dependency{
		{ID: 7, Token: "dep-token-7", Name: "build", ArtifactsFile: client.DependencyFile{Filename: "artifacts.zip", Size: int64(len(z))}},
	}
	fs.mu.Lock()
	fs.depZips[7] = z
	fs.depGets[7] = 0
	fs.depRedirect = redirect
	fs.mu.Unlock()
	fs.addJob(job)
}

// presigned stands for a presigned object store URL on base: its query
// carries a signature the job log must never show.
func presigned(base string) string {
	return base + "/kiln/artifacts/7/artifacts.zip?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=kiln-access&X-Amz-Signature=0123secret-signature4567"
}

// TestAgentArtifactDownloadStall: a dependency's artifacts download that
// the server redirected to the object store (direct_download) and that
// stalls there, the store never answering or stopping mid-body, fails each
// attempt after ArtifactStallTimeout instead of waiting ten minutes for
// headers or until the job's timeout for body bytes: the job fails within
// a few stall timeouts (3 tries) and its log names the object store's host
// and what happened, never the presigned URL's signature. A store that
// answers on the next try: the job succeeds after a warning.
func TestAgentArtifactDownloadStall(t *testing.T) {
	const stall = time.Second
	// 3 tries of one stall each, two pauses of at most 1 s and 2 s: ~6 s;
	// generous for a loaded machine, far below the 10 min (headers) and
	// 60 s (job timeout: body) a download waited before.
	const bound = 25 * time.Second
	z := depZip(t)
	for _, mode := range []string{"frozen", "stalled-body"} {
		t.Run(mode, func(t *testing.T) {
			store := testenv.StallingHTTP(t, mode)
			host := strings.TrimPrefix(store, "http://")
			fs := newFakeServer(t)
			stallJob(t, fs, 150, z, func(int64, int) string { return presigned(store) })
			// With ARTIFACT_DOWNLOAD_ATTEMPTS=2 the stage runs twice.
			attempts, bound := 1, bound
			if mode == "frozen" {
				attempts, bound = 2, 2*bound
				fs.mu.Lock()
				j := fs.jobs[150]
				j.Variables = append(j.Variables, client.Variable{Key: "ARTIFACT_DOWNLOAD_ATTEMPTS", Value: "2", Public: true})
				fs.mu.Unlock()
			}
			start := time.Now()
			startRunner(t, fs, func(c *Config) { c.ArtifactStallTimeout = stall })
			final, trace := fs.waitFinal(t, 150, 2*bound)
			took := time.Since(start)
			if final.State != client.StateFailed {
				t.Fatalf("job with a %s object store: %+v\n%s", mode, final, trace)
			}
			if took > bound {
				t.Errorf("the job ended %s after it started, want under %s", took, bound)
			}
			want := "did not answer within 1s"
			if mode == "stalled-body" {
				want = "stopped sending: no data for 1s"
			}
			line := "ERROR: Downloading artifacts for build (7) failed: download artifacts of job 7: object store " + host + " " + want
			if !strings.Contains(trace, line) {
				t.Errorf("the log does not say %q:\n%s", line, trace)
			}
			if n := strings.Count(trace, "WARNING: Downloading artifacts for build (7): download artifacts of job 7: object store "+host); n != 3*attempts {
				t.Errorf("%d warnings naming the object store, want %d (one per try, 3 tries per attempt):\n%s", n, 3*attempts, trace)
			}
			if attempts == 2 && !strings.Contains(trace, "WARNING: download_artifacts failed (exit code 1); attempt 2 of 2") {
				t.Errorf("no second download_artifacts attempt:\n%s", trace)
			}
			if strings.Contains(trace, "secret-signature") || strings.Contains(trace, "X-Amz-") {
				t.Errorf("the log shows the presigned URL's query:\n%s", trace)
			}
			t.Logf("%s store: job failed %s after it started; %s", mode, took.Round(time.Millisecond), line)
		})
	}
	t.Run("answers-on-retry", func(t *testing.T) {
		frozen := testenv.StallingHTTP(t, "frozen")
		good := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Job-Token") != "" {
				t.Error("the job token was sent to the object store")
			}
			w.Write(z)
		}))
		t.Cleanup(good.Close)
		fs := newFakeServer(t)
		stallJob(t, fs, 151, z, func(_ int64, n int) string {
			if n == 1 {
				return presigned(frozen)
			}
			return presigned(good.URL)
		})
		startRunner(t, fs, func(c *Config) { c.ArtifactStallTimeout = stall })
		final, trace := fs.waitFinal(t, 151, 2*bound)
		if final.State != client.StateSuccess || !strings.Contains(trace, "from dependency\n") ||
			!strings.Contains(trace, "WARNING: Downloading artifacts for build (7): download artifacts of job 7: object store "+strings.TrimPrefix(frozen, "http://")+" did not answer within 1s") {
			t.Fatalf("job whose first download try met a frozen store: %+v\n%s", final, trace)
		}
	})
}

// TestAgentArtifactDownloadSeaweedFSFrozen: the same with a real object
// store: the archive is in SeaweedFS, the server redirects to its
// presigned URL, and SeaweedFS is frozen (SIGSTOP) while the job
// downloads: the job fails within a few stall timeouts naming SeaweedFS's
// host; once it is resumed, the next job's download succeeds.
func TestAgentArtifactDownloadSeaweedFSFrozen(t *testing.T) {
	const stall = time.Second
	const bound = 25 * time.Second
	weed := testenv.SeaweedFS(t)
	bucket := weed.NewBucket(t)
	st, err := blob.NewS3(blob.S3Config{Endpoint: weed.Endpoint, Bucket: bucket, Region: weed.Region, AccessKey: weed.AccessKey, SecretKey: weed.SecretKey})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	z := depZip(t)
	if err := st.Put(ctx, "artifacts/7/artifacts.zip", bytes.NewReader(z), int64(len(z))); err != nil {
		t.Fatal(err)
	}
	u, ok, err := st.PresignGet(ctx, "artifacts/7/artifacts.zip", time.Hour, "artifacts.zip")
	if err != nil || !ok {
		t.Fatalf("presign: %v %v", ok, err)
	}
	pu, _ := url.Parse(u)
	fs := newFakeServer(t)
	startRunner(t, fs, func(c *Config) { c.ArtifactStallTimeout = stall })

	weed.Pause(t)
	stallJob(t, fs, 152, z, func(int64, int) string { return u })
	start := time.Now()
	final, trace := fs.waitFinal(t, 152, 2*bound)
	took := time.Since(start)
	weed.Resume(t)
	line := "ERROR: Downloading artifacts for build (7) failed: download artifacts of job 7: object store " + pu.Host + " did not answer within 1s"
	if final.State != client.StateFailed || !strings.Contains(trace, line) {
		t.Fatalf("job downloading from a frozen SeaweedFS: %+v, want failed saying %q\n%s", final, line, trace)
	}
	if took > bound {
		t.Errorf("the job ended %s after it was queued, want under %s", took, bound)
	}
	if strings.Contains(trace, "X-Amz-Signature") || strings.Contains(trace, pu.Query().Get("X-Amz-Signature")) {
		t.Errorf("the log shows the presigned URL's query:\n%s", trace)
	}
	t.Logf("SeaweedFS frozen: job failed %s after it was queued", took.Round(time.Millisecond))

	stallJob(t, fs, 153, z, func(int64, int) string { return u })
	final, trace = fs.waitFinal(t, 153, 2*bound)
	if final.State != client.StateSuccess || !strings.Contains(trace, "from dependency\n") {
		t.Fatalf("job downloading from the resumed SeaweedFS: %+v\n%s", final, trace)
	}
}

// TestCommandRunArtifactStallTimeout: `kiln runner run
// --artifact-stall-timeout` (or KILN_RUNNER_ARTIFACT_STALL_TIMEOUT; the
// flag wins) sets the bound a download from a frozen object store fails
// after; a malformed value is refused.
func TestCommandRunArtifactStallTimeout(t *testing.T) {
	z := depZip(t)
	store := testenv.StallingHTTP(t, "frozen")
	host := strings.TrimPrefix(store, "http://")
	var out, errb bytes.Buffer
	for i, tc := range []struct {
		flag, env, want string
	}{
		{flag: "1s", env: "5m", want: "within 1s"},
		{env: "2s", want: "within 2s"},
	} {
		t.Run(tc.want, func(t *testing.T) {
			fs := newFakeServer(t)
			id := int64(160 + i)
			stallJob(t, fs, id, z, func(int64, int) string { return presigned(store) })
			t.Setenv("KILN_RUNNER_ARTIFACT_STALL_TIMEOUT", tc.env)
			dir := t.TempDir()
			t.Setenv("KILN_RUNNER_CONFIG", filepath.Join(dir, "none.json"))
			args := []string{"run", "--url", fs.srv.URL, "--token", testRunnerToken,
				"--builds-dir", filepath.Join(dir, "b"), "--cache-dir", filepath.Join(dir, "c")}
			if tc.flag != "" {
				args = append(args, "--artifact-stall-timeout", tc.flag)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan int, 1)
			go func() { done <- Command(ctx, args, &out, &errb) }()
			t.Cleanup(func() {
				cancel()
				select {
				case <-done:
				case <-time.After(10 * time.Second):
					t.Error("run did not stop")
				}
			})
			final, trace := fs.waitFinal(t, id, 60*time.Second)
			line := "failed: download artifacts of job 7: object store " + host + " did not answer " + tc.want
			if final.State != client.StateFailed || !strings.Contains(trace, line) {
				t.Fatalf("final %+v, want failed saying %q\n%s", final, line, trace)
			}
		})
	}
	// Runners configured in code (built-in runners) get the default.
	if d := New(Config{}, nil).cfg.ArtifactStallTimeout; d != 30*time.Second {
		t.Errorf("default ArtifactStallTimeout %s, want 30s", d)
	}
	t.Setenv("KILN_RUNNER_ARTIFACT_STALL_TIMEOUT", "soon")
	if code := Command(context.Background(), []string{"run", "--url", "http://127.0.0.1:1", "--token", testRunnerToken}, &out, &errb); code != 2 {
		t.Fatalf("malformed KILN_RUNNER_ARTIFACT_STALL_TIMEOUT: exit %d", code)
	}
}
