package runnerapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kilnci/kiln/internal/artifacts"
	"github.com/kilnci/kiln/internal/blob"
	"github.com/kilnci/kiln/internal/gitrepo"
	"github.com/kilnci/kiln/internal/pipeline"
	"github.com/kilnci/kiln/internal/queue"
	"github.com/kilnci/kiln/internal/secrets"
	"github.com/kilnci/kiln/internal/store"
	"github.com/kilnci/kiln/internal/testenv"
	"github.com/kilnci/kiln/internal/traces"
)

const testSHA = "0123456789abcdef0123456789abcdef01234567"

// fakeRepos answers the engine's repository reads without git.
type fakeRepos struct{}

func (fakeRepos) ResolveRef(ctx context.Context, repo, name string) (gitrepo.Ref, error) {
	return gitrepo.Ref{Name: name, SHA: testSHA}, nil
}
func (fakeRepos) ReadFile(ctx context.Context, repo, sha, path string) ([]byte, string, error) {
	return nil, "", gitrepo.ErrFileNotFound
}
func (fakeRepos) Commit(ctx context.Context, repo, sha string) (gitrepo.Commit, error) {
	return gitrepo.Commit{SHA: sha, Title: "t", Message: "t"}, nil
}
func (fakeRepos) ChangedFiles(ctx context.Context, repo, a, b string) ([]string, error) {
	return nil, nil
}
func (fakeRepos) Exists(ctx context.Context, repo, sha string, globs []string) (bool, error) {
	return false, nil
}
func (fakeRepos) UpdateRef(ctx context.Context, repo, ref, sha string) error      { return nil }
func (fakeRepos) IsAncestor(ctx context.Context, repo, a, d string) (bool, error) { return a == d, nil }

type env struct {
	t       testing.TB
	st      *store.Store
	svc     *Service
	srv     *httptest.Server
	project *store.Project
	user    *store.User
	note    queue.Notifier
}

func eachDB(t *testing.T, fn func(t *testing.T, e *env)) {
	t.Run("sqlite", func(t *testing.T) {
		st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "kiln.db"), nil, store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		fn(t, newEnv(t, st, queue.NewMemory()))
	})
	t.Run("postgres", func(t *testing.T) {
		dsn := testenv.PostgresDSN(t)
		st, err := store.Open(context.Background(), dsn, nil, store.Options{Schema: testenv.UniqueName("kiln_runnerapi")})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.DropSchema(context.Background()); st.Close() })
		fn(t, newEnv(t, st, queue.NewMemory()))
	})
}

func newEnv(t testing.TB, st *store.Store, n queue.Notifier) *env {
	ctx := context.Background()
	box, err := secrets.New(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	eng := &pipeline.Engine{Store: st, Repos: fakeRepos{}, Secrets: box, ExternalURL: "http://kiln.test"}
	objs, _ := blob.NewDir(t.TempDir())
	tr := traces.New(st, objs, 0)
	ar := artifacts.New(objs, 1<<20)
	svc := New(Config{Store: st, Engine: eng, Repos: fakeRepos{}, Notifier: n, Traces: tr, Artifacts: ar,
		ExternalURL: "http://kiln.test", PollTimeout: 2 * time.Second, StaleTimeout: time.Second})
	eng.JobsPending = svc.JobsPending
	mux := http.NewServeMux()
	svc.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(func() { svc.Shutdown(); srv.Close(); svc.Wait() })
	u := &store.User{Username: "alice", Name: "Alice", Email: "a@example.com"}
	var p *store.Project
	err = st.Write(ctx, func(tx *store.Tx) error {
		if err := tx.CreateUser(ctx, u); err != nil {
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	ns, err := st.UserNamespace(ctx, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	p = &store.Project{NamespaceID: ns.ID, Name: "app", Path: "app", FullPath: "alice/app", Visibility: "private", CreatorID: u.ID}
	if err := st.Write(ctx, func(tx *store.Tx) error { return tx.CreateProject(ctx, p) }); err != nil {
		t.Fatal(err)
	}
	return &env{t: t, st: st, svc: svc, srv: srv, project: p, user: u, note: n}
}

// addRunner creates a runner and returns its token.
func (e *env) addRunner(r store.Runner) string {
	e.t.Helper()
	if r.RunnerType == "" {
		r.RunnerType = "instance_type"
	}
	tok, err := e.svc.CreateRunner(context.Background(), &r)
	if err != nil {
		e.t.Fatal(err)
	}
	return tok
}

// addJobs inserts a pipeline with n pending jobs (with tags) and wakes runners.
func (e *env) addJobs(n int, spec string, tags ...string) []int64 {
	e.t.Helper()
	ctx := context.Background()
	if spec == "" {
		spec = `{"script":["echo hi"]}`
	}
	var ids []int64
	err := e.st.Write(ctx, func(tx *store.Tx) error {
		pl := &store.Pipeline{ProjectID: e.project.ID, Ref: "main", SHA: testSHA, BeforeSHA: gitrepo.ZeroSHA, Source: "push", Status: "pending", UserID: e.user.ID}
		if err := tx.InsertPipeline(ctx, pl); err != nil {
			return err
		}
		for i := range n {
			j := &store.Job{PipelineID: pl.ID, ProjectID: e.project.ID, Name: fmt.Sprintf("job%d", i), Stage: "test", Status: "pending", When: "on_success", Spec: spec, Tags: tags, UserID: e.user.ID}
			if err := tx.InsertJob(ctx, j); err != nil {
				return err
			}
			ids = append(ids, j.ID)
		}
		tx.AfterCommit(e.svc.JobsPending)
		return nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return ids
}

type resp struct {
	code int
	hdr  http.Header
	body []byte
}

func (e *env) do(method, path string, hdr map[string]string, body any) resp {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	case string:
		rd = strings.NewReader(b)
	default:
		js, _ := json.Marshal(b)
		rd = bytes.NewReader(js)
	}
	req, _ := http.NewRequest(method, e.srv.URL+path, rd)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return resp{res.StatusCode, res.Header, b}
}

// request polls for a job and decodes the payload (nil on 204).
func (e *env) request(token string) (map[string]any, resp) {
	e.t.Helper()
	r := e.do("POST", "/api/v4/jobs/request", map[string]string{"Content-Type": "application/json"}, map[string]any{"token": token, "info": map[string]any{"version": "19.3.0"}})
	if r.code != http.StatusCreated {
		return nil, r
	}
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		e.t.Fatalf("payload: %v", err)
	}
	return m, r
}

func idOf(m map[string]any) int64 { return int64(m["id"].(float64)) }

func TestTracePatchRanges(t *testing.T) {
	eachDB(t, func(t *testing.T, e *env) {
		tok := e.addRunner(store.Runner{RunUntagged: true})
		e.addJobs(2, "")
		job, r := e.request(tok)
		if job == nil {
			t.Fatalf("no job: %d %s", r.code, r.body)
		}
		other, _ := e.request(tok)
		path := fmt.Sprintf("/api/v4/jobs/%d/trace", idOf(job))
		h := func(rng string) map[string]string {
			return map[string]string{"JOB-TOKEN": job["token"].(string), "Content-Range": rng, "Content-Type": "text/plain"}
		}
		if r := e.do("PATCH", path, h("0-4"), "hello"); r.code != 202 || r.hdr.Get("Range") != "0-5" || r.hdr.Get("Job-Status") != "running" || r.hdr.Get("X-GitLab-Trace-Update-Interval") == "" {
			t.Fatalf("first patch: %d %v", r.code, r.hdr)
		}
		if r := e.do("PATCH", path, h("10-12"), "abc"); r.code != 416 || r.hdr.Get("Range") != "0-5" {
			t.Fatalf("gap: %d %v", r.code, r.hdr)
		}
		if r := e.do("PATCH", path, h("3-5"), "XYZ"); r.code != 202 || r.hdr.Get("Range") != "0-6" {
			t.Fatalf("overlap: %d %v", r.code, r.hdr)
		}
		if b, _ := e.svc.cfg.Traces.ReadAll(context.Background(), idOf(job)); string(b) != "helXYZ" {
			t.Fatalf("stored %q", b)
		}
		for _, bad := range []string{"", "abc", "5", "-1-3", "9-2", "99999999999999999999-1"} {
			if r := e.do("PATCH", path, h(bad), "x"); r.code != 400 {
				t.Errorf("Content-Range %q: %d", bad, r.code)
			}
		}
		// Another job's token, an unknown token, a bad id.
		if r := e.do("PATCH", fmt.Sprintf("/api/v4/jobs/%d/trace", idOf(other)), h("0-0"), "x"); r.code != 403 {
			t.Errorf("other job's token: %d", r.code)
		}
		if r := e.do("PATCH", path, map[string]string{"JOB-TOKEN": "glcbt-nope", "Content-Range": "0-0"}, "x"); r.code != 403 {
			t.Errorf("unknown token: %d", r.code)
		}
		if r := e.do("PATCH", "/api/v4/jobs/abc/trace", h("0-0"), "x"); r.code != 404 {
			t.Errorf("bad id: %d", r.code)
		}
		big := bytes.Repeat([]byte("x"), maxTracePatch+1)
		if r := e.do("PATCH", path, h(fmt.Sprintf("6-%d", 6+len(big)-1)), big); r.code != 413 {
			t.Errorf("huge patch: %d", r.code)
		}
		if b, _ := e.svc.cfg.Traces.ReadAll(context.Background(), idOf(job)); string(b) != "helXYZ" {
			t.Fatalf("rejected patches changed the trace: %q", b)
		}
	})
}

func TestUpdateJobStatesAndTokens(t *testing.T) {
	eachDB(t, func(t *testing.T, e *env) {
		tok := e.addRunner(store.Runner{RunUntagged: true})
		e.addJobs(3, "")
		ctx := context.Background()
		for i, where := range []string{"JOB-TOKEN", "PRIVATE-TOKEN", "body"} {
			job, _ := e.request(tok)
			if job == nil {
				t.Fatal("no job")
			}
			jt := job["token"].(string)
			path := fmt.Sprintf("/api/v4/jobs/%d", idOf(job))
			put := func(state string, extra map[string]any) resp {
				body := map[string]any{"state": state, "output": map[string]any{}}
				for k, v := range extra {
					body[k] = v
				}
				hdr := map[string]string{"Content-Type": "application/json"}
				if where == "body" {
					body["token"] = jt
				} else {
					hdr[where] = jt
				}
				return e.do("PUT", path, hdr, body)
			}
			// Kiln's runner is told to check a silent job's status every
			// second; GitLab's update interval is unchanged.
			if r := put("running", nil); r.code != 200 || r.hdr.Get("Job-Status") != "running" ||
				r.hdr.Get("X-Kiln-Job-Status-Interval") != "1000" || r.hdr.Get("X-GitLab-Trace-Update-Interval") != "3" {
				t.Fatalf("%s running: %d %v %s", where, r.code, r.hdr, r.body)
			}
			if r := put("bogus", nil); r.code != 400 {
				t.Errorf("bad state: %d", r.code)
			}
			// The job is canceled by a user: the runner is told.
			if i == 2 {
				if err := e.svc.cfg.Engine.CancelJob(ctx, e.user, idOf(job)); err != nil {
					t.Fatal(err)
				}
				if r := put("running", nil); r.code != 200 || r.hdr.Get("Job-Status") != "canceling" {
					t.Errorf("canceling: %d %v", r.code, r.hdr)
				}
				if r := e.do("PATCH", path+"/trace", map[string]string{"JOB-TOKEN": jt, "Content-Range": "0-1"}, "ok"); r.code != 202 || r.hdr.Get("Job-Status") != "canceling" || r.hdr.Get("X-Kiln-Job-Status-Interval") != "1000" {
					t.Errorf("canceling patch: %d %v", r.code, r.hdr)
				}
			}
			state, extra := "success", map[string]any(nil)
			if i == 1 {
				state, extra = "failed", map[string]any{"failure_reason": "script_failure", "exit_code": 3}
			}
			if r := put(state, extra); r.code != 200 {
				t.Fatalf("%s final: %d %s", where, r.code, r.body)
			}
			j, _ := e.st.JobByID(ctx, idOf(job))
			want := map[int]string{0: "success", 1: "failed", 2: "canceled"}[i]
			if j.Status != want || (i == 1 && (j.FailureReason != "script_failure" || j.ExitCode == nil || *j.ExitCode != 3)) {
				t.Errorf("job after %s: %s %s %v", state, j.Status, j.FailureReason, j.ExitCode)
			}
			// The token is revoked with the job's end: 403 from now on.
			if r := put("running", nil); r.code != 403 {
				t.Errorf("update after finish: %d", r.code)
			}
			if r := e.do("PATCH", path+"/trace", map[string]string{"JOB-TOKEN": jt, "Content-Range": "0-1"}, "ok"); r.code != 403 {
				t.Errorf("patch after finish: %d", r.code)
			}
			if _, _, ok := e.svc.JobToken(ctx, jt); ok {
				t.Errorf("job token still valid after finish")
			}
		}
	})
}

func TestChecksumMismatchAsksForWholeTrace(t *testing.T) {
	eachDB(t, func(t *testing.T, e *env) {
		tok := e.addRunner(store.Runner{RunUntagged: true})
		e.addJobs(1, "")
		job, _ := e.request(tok)
		jt := job["token"].(string)
		path := fmt.Sprintf("/api/v4/jobs/%d", idOf(job))
		e.do("PATCH", path+"/trace", map[string]string{"JOB-TOKEN": jt, "Content-Range": "0-2"}, "abc")
		r := e.do("PUT", path, map[string]string{"JOB-TOKEN": jt}, map[string]any{"state": "success", "output": map[string]any{"checksum": "crc32:00000000", "bytesize": 10}})
		if r.code != 412 {
			t.Fatalf("mismatch: %d", r.code)
		}
		sum, _ := e.svc.cfg.Traces.Checksum(context.Background(), idOf(job))
		r = e.do("PUT", path, map[string]string{"JOB-TOKEN": jt}, map[string]any{"state": "success", "output": map[string]any{"checksum": sum, "bytesize": 3}})
		if r.code != 200 {
			t.Fatalf("match: %d", r.code)
		}
	})
}

func TestConcurrentRequestersNeverShareAJob(t *testing.T) {
	eachDB(t, func(t *testing.T, e *env) {
		const jobs, runners, workers = 40, 4, 3
		var toks []string
		for range runners {
			toks = append(toks, e.addRunner(store.Runner{RunUntagged: true}))
		}
		e.svc.cfg.PollTimeout = 300 * time.Millisecond
		want := e.addJobs(jobs, "")
		var mu sync.Mutex
		got := map[int64]int{}
		var wg sync.WaitGroup
		for i := range runners * workers {
			tok := toks[i%runners]
			wg.Go(func() {
				for {
					job, r := e.request(tok)
					if job == nil {
						if r.code != 204 {
							t.Errorf("poll: %d %s", r.code, r.body)
						}
						return
					}
					mu.Lock()
					got[idOf(job)]++
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if len(got) != len(want) {
			t.Fatalf("assigned %d distinct jobs, want %d", len(got), len(want))
		}
		for id, n := range got {
			if n != 1 {
				t.Errorf("job %d handed out %d times", id, n)
			}
		}
	})
}

func TestTagsAndScopes(t *testing.T) {
	eachDB(t, func(t *testing.T, e *env) {
		e.svc.cfg.PollTimeout = 100 * time.Millisecond
		untaggedOnly := e.addRunner(store.Runner{RunUntagged: true})
		tagged := e.addRunner(store.Runner{Tags: []string{"linux", "docker"}})
		paused := e.addRunner(store.Runner{Tags: []string{"linux"}, RunUntagged: true, Paused: true})
		otherProject := e.addRunner(store.Runner{RunnerType: "project_type", ProjectID: e.project.ID + 1000, RunUntagged: true, Tags: []string{"linux"}})
		protected := e.addRunner(store.Runner{RunUntagged: true, Tags: []string{"linux"}, AccessLevel: "ref_protected"})
		ids := e.addJobs(1, "", "linux")
		for name, tok := range map[string]string{"untagged-only": untaggedOnly, "paused": paused, "other project": otherProject, "protected": protected} {
			if job, _ := e.request(tok); job != nil {
				t.Errorf("%s runner got a linux job", name)
			}
		}
		if j, _ := e.st.JobByID(context.Background(), ids[0]); !e.svc.IsStuck(context.Background(), j) {
			t.Errorf("job should be stuck: the only matching runner has never been in contact")
		}
		job, _ := e.request(tagged)
		if job == nil || idOf(job) != ids[0] {
			t.Fatalf("tagged runner did not get the job: %v", job)
		}
	})
}

// TestLongPollWakesAtOnce: a waiting runner answers within milliseconds of
// a job becoming pending, and idle polls do not query the database.
func TestLongPollWakesAtOnce(t *testing.T) {
	eachDB(t, func(t *testing.T, e *env) {
		tok := e.addRunner(store.Runner{RunUntagged: true})
		e.svc.cfg.PollTimeout = 200 * time.Millisecond
		// First poll: one check, nothing. Later idle polls: no check.
		for range 3 {
			if job, r := e.request(tok); job != nil || r.code != 204 {
				t.Fatalf("idle poll: %d", r.code)
			}
		}
		if n := e.svc.checks.Load(); n != 1 {
			t.Fatalf("idle polls made %d database checks, want 1", n)
		}
		e.svc.cfg.PollTimeout = 10 * time.Second
		type result struct {
			job map[string]any
			at  time.Time
		}
		ch := make(chan result, 1)
		go func() {
			job, _ := e.request(tok)
			ch <- result{job, time.Now()}
		}()
		time.Sleep(200 * time.Millisecond)
		var made time.Time
		ctx := context.Background()
		err := e.st.Write(ctx, func(tx *store.Tx) error {
			pl := &store.Pipeline{ProjectID: e.project.ID, Ref: "main", SHA: testSHA, BeforeSHA: gitrepo.ZeroSHA, Source: "push", Status: "pending"}
			if err := tx.InsertPipeline(ctx, pl); err != nil {
				return err
			}
			if err := tx.InsertJob(ctx, &store.Job{PipelineID: pl.ID, ProjectID: e.project.ID, Name: "x", Stage: "test", Status: "pending", When: "on_success", Spec: `{"script":["true"]}`}); err != nil {
				return err
			}
			tx.AfterCommit(func() { made = time.Now(); e.svc.JobsPending() })
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		res := <-ch
		if res.job == nil {
			t.Fatal("no job")
		}
		lat := res.at.Sub(made)
		t.Logf("pending → 201 in %s", lat)
		if lat > 100*time.Millisecond {
			t.Errorf("wake-up took %s", lat)
		}
	})
}

func TestShutdownReleasesPolls(t *testing.T) {
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "kiln.db"), nil, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	e := newEnv(t, st, queue.NewMemory())
	tok := e.addRunner(store.Runner{RunUntagged: true})
	e.svc.cfg.PollTimeout = time.Minute
	done := make(chan int, 1)
	go func() { _, r := e.request(tok); done <- r.code }()
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	e.svc.Shutdown()
	select {
	case code := <-done:
		if code != 204 || time.Since(start) > time.Second {
			t.Fatalf("%d after %s", code, time.Since(start))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("poll not released by Shutdown")
	}
}

func TestStaleJobsFail(t *testing.T) {
	eachDB(t, func(t *testing.T, e *env) {
		tok := e.addRunner(store.Runner{RunUntagged: true})
		e.addJobs(1, "")
		job, _ := e.request(tok)
		time.Sleep(1200 * time.Millisecond)
		// Two loops (two replicas) racing: the job is failed once.
		var wg sync.WaitGroup
		for range 2 {
			wg.Go(func() { e.svc.FailStaleJobs(context.Background()) })
		}
		wg.Wait()
		j, _ := e.st.JobByID(context.Background(), idOf(job))
		if j.Status != "failed" || j.FailureReason != "runner_system_failure" {
			t.Fatalf("stale job: %s %s", j.Status, j.FailureReason)
		}
	})
}

func TestArtifactsUploadAndDownload(t *testing.T) {
	eachDB(t, func(t *testing.T, e *env) {
		tok := e.addRunner(store.Runner{RunUntagged: true})
		e.addJobs(2, `{"script":["true"],"artifacts":{"Paths":["out/"]}}`)
		job, _ := e.request(tok)
		jt := job["token"].(string)
		up := func(id int64, token string, content []byte) resp {
			var b bytes.Buffer
			fmt.Fprintf(&b, "--XX\r\nContent-Disposition: form-data; name=\"file\"; filename=\"../../artifacts.zip\"\r\nContent-Type: application/zip\r\n\r\n")
			b.Write(content)
			b.WriteString("\r\n--XX--\r\n")
			return e.do("POST", fmt.Sprintf("/api/v4/jobs/%d/artifacts?expire_in=1+week", id), map[string]string{"JOB-TOKEN": token, "Content-Type": "multipart/form-data; boundary=XX"}, b.Bytes())
		}
		if r := up(idOf(job), jt, bytes.Repeat([]byte("z"), 2<<20)); r.code != 413 {
			t.Errorf("oversized upload: %d", r.code)
		}
		if r := up(idOf(job), "glcbt-wrong", []byte("PK")); r.code != 403 {
			t.Errorf("wrong token: %d", r.code)
		}
		if r := up(idOf(job), jt, []byte("PKzipdata")); r.code != 201 {
			t.Fatalf("upload: %d %s", r.code, r.body)
		}
		j, _ := e.st.JobByID(context.Background(), idOf(job))
		if j.ArtifactsFile != "artifacts.zip" || j.ArtifactsSize != 9 || j.ArtifactsExpireAt == nil {
			t.Fatalf("recorded: %+v", j)
		}
		// The next job (same pipeline) downloads it with its own token.
		job2, _ := e.request(tok)
		r := e.do("GET", fmt.Sprintf("/api/v4/jobs/%d/artifacts?direct_download=true", idOf(job)), map[string]string{"JOB-TOKEN": job2["token"].(string)}, nil)
		if r.code != 200 || string(r.body) != "PKzipdata" {
			t.Fatalf("download: %d %q", r.code, r.body)
		}
		if r := e.do("GET", fmt.Sprintf("/api/v4/jobs/%d/artifacts", idOf(job)), nil, nil); r.code != 401 {
			t.Errorf("anonymous download of a private project: %d", r.code)
		}
	})
}

// TestArtifactsObjectStoreDown: while the object store is unreachable
// (an S3 endpoint that refuses connections), an artifacts upload and every
// kind of download answer 503 with a message naming the object store (the
// runner prints it in the job log and retries 5xx), not a bare 500.
func TestArtifactsObjectStoreDown(t *testing.T) {
	eachDB(t, func(t *testing.T, e *env) {
		tok := e.addRunner(store.Runner{RunUntagged: true})
		e.addJobs(2, `{"script":["true"],"artifacts":{"Paths":["out/"]}}`)
		job, _ := e.request(tok)
		jt := job["token"].(string)
		up := func() resp {
			body := "--XX\r\nContent-Disposition: form-data; name=\"file\"; filename=\"artifacts.zip\"\r\nContent-Type: application/zip\r\n\r\nPKzipdata\r\n--XX--\r\n"
			return e.do("POST", fmt.Sprintf("/api/v4/jobs/%d/artifacts", idOf(job)), map[string]string{"JOB-TOKEN": jt, "Content-Type": "multipart/form-data; boundary=XX"}, body)
		}
		if r := up(); r.code != 201 {
			t.Fatalf("upload: %d %s", r.code, r.body)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		down, err := blob.NewS3(blob.S3Config{Endpoint: "http://" + addr, Bucket: "kiln", AccessKey: "k", SecretKey: "s", StallTimeout: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		e.svc.cfg.Artifacts = artifacts.New(down, 1<<20)
		want := func(what string, r resp) {
			t.Helper()
			var m struct{ Message string }
			json.Unmarshal(r.body, &m)
			if r.code != 503 || !strings.Contains(m.Message, "object store unavailable") || r.hdr.Get("Retry-After") == "" {
				t.Errorf("%s with the object store down: %d %s, want 503 naming the object store", what, r.code, r.body)
			}
		}
		want("upload", up())
		job2, _ := e.request(tok)
		for _, q := range []string{"?direct_download=true", ""} {
			want("download"+q, e.do("GET", fmt.Sprintf("/api/v4/jobs/%d/artifacts%s", idOf(job), q), map[string]string{"JOB-TOKEN": job2["token"].(string)}, nil))
		}
	})
}

// TestExpiredArtifactsRemoved: the artifact-expiry loop's pass deletes an
// archive past its expire_in from the object store and clears the job's
// record; an archive kept longer ("never") stays.
func TestExpiredArtifactsRemoved(t *testing.T) {
	eachDB(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		tok := e.addRunner(store.Runner{RunUntagged: true})
		e.addJobs(2, `{"script":["true"],"artifacts":{"Paths":["out/"]}}`)
		up := func(expireIn string) int64 {
			job, _ := e.request(tok)
			var b bytes.Buffer
			fmt.Fprintf(&b, "--XX\r\nContent-Disposition: form-data; name=\"file\"; filename=\"artifacts.zip\"\r\nContent-Type: application/zip\r\n\r\nPKdata\r\n--XX--\r\n")
			r := e.do("POST", fmt.Sprintf("/api/v4/jobs/%d/artifacts?expire_in=%s", idOf(job), url.QueryEscape(expireIn)),
				map[string]string{"JOB-TOKEN": job["token"].(string), "Content-Type": "multipart/form-data; boundary=XX"}, b.Bytes())
			if r.code != 201 {
				t.Fatalf("upload: %d %s", r.code, r.body)
			}
			return idOf(job)
		}
		short, kept := up("1 sec"), up("never")
		time.Sleep(1100 * time.Millisecond)
		if err := e.svc.ExpireArtifacts(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.cfg.Artifacts.Stat(ctx, short, "artifacts.zip"); !errors.Is(err, blob.ErrNotFound) {
			t.Errorf("expired archive still in the object store: %v", err)
		}
		if j, _ := e.st.JobByID(ctx, short); j.ArtifactsFile != "" {
			t.Errorf("expired archive still recorded: %q", j.ArtifactsFile)
		}
		if _, err := e.svc.cfg.Artifacts.Stat(ctx, kept, "artifacts.zip"); err != nil {
			t.Errorf("kept archive: %v", err)
		}
	})
}

// TestUnpauseWakesWaitingRunner: a paused runner waiting in a long-poll gets
// a pending job as soon as it is resumed.
func TestUnpauseWakesWaitingRunner(t *testing.T) {
	eachDB(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		tok := e.addRunner(store.Runner{RunUntagged: true, Paused: true})
		e.addJobs(1, "")
		e.svc.cfg.PollTimeout = 10 * time.Second
		ch := make(chan map[string]any, 1)
		go func() { job, _ := e.request(tok); ch <- job }()
		time.Sleep(200 * time.Millisecond)
		select {
		case <-ch:
			t.Fatal("paused runner got an answer")
		default:
		}
		cr, _ := e.svc.runnerByToken(ctx, tok)
		r := *cr.runner()
		r.Paused = false
		if err := e.st.Write(ctx, func(tx *store.Tx) error { return tx.UpdateRunner(ctx, &r) }); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		e.svc.RunnersChanged()
		select {
		case job := <-ch:
			if job == nil {
				t.Fatal("no job after resume")
			}
			t.Logf("resumed runner got its job in %s", time.Since(start))
		case <-time.After(3 * time.Second):
			t.Fatal("resumed runner was not woken")
		}
	})
}
