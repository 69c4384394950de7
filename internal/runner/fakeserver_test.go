package runner

import (
	"archive/zip"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kilnci/kiln/internal/runner/client"
)

const testRunnerToken = "glrt-test-runner-token"

type upload struct {
	query    url.Values
	filename string
	body     []byte
}

// fakeServer implements just enough of Kiln's server side of the protocol,
// following the algorithm in the protocol reference.
type fakeServer struct {
	t   *testing.T
	srv *httptest.Server

	mu      sync.Mutex
	queue   []*client.JobResponse
	jobs    map[int64]*client.JobResponse
	events  []string
	traces  map[int64][]byte
	puts    map[int64][]client.UpdateJobRequest
	finals  map[int64]client.UpdateJobRequest
	uploads map[int64][]upload
	depZips map[int64][]byte
	// depRedirect, if set, answers the n-th (from 1) download of a
	// dependency's artifacts with a 302 to the URL it returns (as Kiln does
	// with direct_download=true and an object store), unless it is "".
	depRedirect func(id int64, n int) string
	depGets     map[int64]int
	jobStatus   map[int64]string
	// cancelOn sets the job's status once its trace contains the key.
	cancelOn  map[int64][2]string
	failFinal int
	// statusMS, if set, is sent as Kiln's status-interval header.
	statusMS string
	finalCh  chan int64
	git      http.Handler
	jobAvail chan struct{}
}

func newFakeServer(t *testing.T) *fakeServer {
	fs := &fakeServer{
		t: t, jobs: map[int64]*client.JobResponse{}, traces: map[int64][]byte{},
		puts: map[int64][]client.UpdateJobRequest{}, finals: map[int64]client.UpdateJobRequest{},
		uploads: map[int64][]upload{}, depZips: map[int64][]byte{}, depGets: map[int64]int{}, jobStatus: map[int64]string{},
		cancelOn: map[int64][2]string{}, finalCh: make(chan int64, 16), jobAvail: make(chan struct{}, 16),
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v4/jobs/request", fs.request)
	mux.HandleFunc("PUT /api/v4/jobs/{id}", fs.update)
	mux.HandleFunc("PATCH /api/v4/jobs/{id}/trace", fs.patch)
	mux.HandleFunc("POST /api/v4/jobs/{id}/artifacts", fs.uploadArtifacts)
	mux.HandleFunc("GET /api/v4/jobs/{id}/artifacts", fs.downloadArtifacts)
	mux.HandleFunc("POST /api/v4/runners/verify", func(w http.ResponseWriter, r *http.Request) {
		var req client.VerifyRunnerRequest
		_ = json.NewDecoder(r.Body).Decode(&req)
		if req.Token != testRunnerToken {
			w.WriteHeader(http.StatusForbidden)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"id":5,"token":"`+testRunnerToken+`","token_expires_at":null}`)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fs.mu.Lock()
		g := fs.git
		fs.mu.Unlock()
		if g == nil {
			http.NotFound(w, r)
			return
		}
		g.ServeHTTP(w, r)
	})
	fs.srv = httptest.NewServer(mux)
	t.Cleanup(fs.srv.Close)
	return fs
}

func (fs *fakeServer) event(format string, args ...any) {
	fs.events = append(fs.events, fmt.Sprintf(format, args...))
}

func (fs *fakeServer) addJob(job *client.JobResponse) {
	fs.mu.Lock()
	fs.queue = append(fs.queue, job)
	fs.jobs[job.ID] = job
	fs.mu.Unlock()
	fs.jobAvail <- struct{}{}
}

func (fs *fakeServer) request(w http.ResponseWriter, r *http.Request) {
	var req client.JobRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Token != testRunnerToken ||
		r.Header.Get("Runner-Token") != testRunnerToken || !req.Info.Features.TwoPhaseJobCommit {
		w.WriteHeader(http.StatusForbidden)
		return
	}
	// Long-poll briefly, as Workhorse would for much longer.
	select {
	case <-fs.jobAvail:
	case <-time.After(300 * time.Millisecond):
	case <-r.Context().Done():
		return
	}
	fs.mu.Lock()
	if len(fs.queue) == 0 {
		fs.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
		return
	}
	job := fs.queue[0]
	fs.queue = fs.queue[1:]
	fs.event("request:%d", job.ID)
	fs.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	_ = json.NewEncoder(w).Encode(job)
}

func (fs *fakeServer) jobFor(w http.ResponseWriter, r *http.Request) *client.JobResponse {
	id, _ := strconv.ParseInt(r.PathValue("id"), 10, 64)
	fs.mu.Lock()
	job := fs.jobs[id]
	fs.mu.Unlock()
	if job == nil {
		w.WriteHeader(http.StatusNotFound)
		return nil
	}
	if r.Header.Get("Job-Token") != job.Token {
		w.WriteHeader(http.StatusForbidden)
		return nil
	}
	return job
}

func (fs *fakeServer) update(w http.ResponseWriter, r *http.Request) {
	job := fs.jobFor(w, r)
	if job == nil {
		return
	}
	var req client.UpdateJobRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Token != job.Token {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.event("put:%d:%s", job.ID, req.State)
	fs.puts[job.ID] = append(fs.puts[job.ID], req)
	if st := fs.jobStatus[job.ID]; st != "" {
		w.Header().Set("Job-Status", st)
	}
	if fs.statusMS != "" {
		w.Header().Set(client.StatusIntervalHeader, fs.statusMS)
	}
	if req.State == client.StateRunning {
		w.WriteHeader(http.StatusOK)
		return
	}
	if fs.failFinal > 0 {
		fs.failFinal--
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	if want := fmt.Sprintf("crc32:%08x", crc32.ChecksumIEEE(fs.traces[job.ID])); req.Output.Checksum != want {
		fs.event("412:%d", job.ID)
		w.WriteHeader(http.StatusPreconditionFailed)
		return
	}
	if _, done := fs.finals[job.ID]; !done {
		fs.finals[job.ID] = req
		fs.finalCh <- job.ID
	}
	w.WriteHeader(http.StatusOK)
}

func (fs *fakeServer) patch(w http.ResponseWriter, r *http.Request) {
	job := fs.jobFor(w, r)
	if job == nil {
		return
	}
	cr := r.Header.Get("Content-Range")
	startS, _, ok := strings.Cut(cr, "-")
	start, err := strconv.Atoi(startS)
	if !ok || err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	body, _ := io.ReadAll(r.Body)
	fs.mu.Lock()
	defer fs.mu.Unlock()
	stored := fs.traces[job.ID]
	if start > len(stored) {
		fs.event("416:%d", job.ID)
		w.Header().Set("Range", fmt.Sprintf("0-%d", len(stored)))
		w.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
		return
	}
	stored = append(stored[:start:start], body...)
	fs.traces[job.ID] = stored
	fs.event("patch:%d:%d-%d", job.ID, start, start+len(body))
	if c, ok := fs.cancelOn[job.ID]; ok && bytes.Contains(stored, []byte(c[0])) {
		fs.jobStatus[job.ID] = c[1]
	}
	st := fs.jobStatus[job.ID]
	if st == "" {
		st = "running"
	}
	w.Header().Set("Job-Status", st)
	w.Header().Set("Range", fmt.Sprintf("0-%d", len(stored)))
	w.Header().Set("X-GitLab-Trace-Update-Interval", "3")
	if fs.statusMS != "" {
		w.Header().Set(client.StatusIntervalHeader, fs.statusMS)
	}
	w.WriteHeader(http.StatusAccepted)
}

func (fs *fakeServer) uploadArtifacts(w http.ResponseWriter, r *http.Request) {
	job := fs.jobFor(w, r)
	if job == nil {
		return
	}
	f, hdr, err := r.FormFile("file")
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	b, _ := io.ReadAll(f)
	fs.mu.Lock()
	fs.uploads[job.ID] = append(fs.uploads[job.ID], upload{query: r.URL.Query(), filename: hdr.Filename, body: b})
	fs.event("artifacts:%d", job.ID)
	fs.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	fmt.Fprint(w, "{}")
}

func (fs *fakeServer) downloadArtifacts(w http.ResponseWriter, r *http.Request) {
	id, _ := strconv.ParseInt(r.PathValue("id"), 10, 64)
	fs.mu.Lock()
	z, ok := fs.depZips[id]
	fs.depGets[id]++
	n, redirect := fs.depGets[id], fs.depRedirect
	fs.mu.Unlock()
	if !ok || r.Header.Get("Job-Token") != "dep-token-"+strconv.FormatInt(id, 10) {
		w.WriteHeader(http.StatusForbidden)
		return
	}
	if redirect != nil && r.URL.Query().Get("direct_download") == "true" {
		if u := redirect(id, n); u != "" {
			http.Redirect(w, r, u, http.StatusFound)
			return
		}
	}
	w.Write(z)
}

// waitFinal waits for the job's final state update.
func (fs *fakeServer) waitFinal(t *testing.T, id int64, within time.Duration) (client.UpdateJobRequest, string) {
	t.Helper()
	deadline := time.After(within)
	for {
		fs.mu.Lock()
		final, ok := fs.finals[id]
		trace := string(fs.traces[id])
		fs.mu.Unlock()
		if ok {
			return final, trace
		}
		select {
		case <-fs.finalCh:
		case <-deadline:
			t.Fatalf("job %d: no final update within %v; trace so far:\n%s", id, within, trace)
		}
	}
}

func (fs *fakeServer) eventsFor(id int64) []string {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	var out []string
	p := ":" + strconv.FormatInt(id, 10)
	for _, e := range fs.events {
		if strings.Contains(e, p+":") || strings.HasSuffix(e, p) {
			out = append(out, e)
		}
	}
	return out
}

func (fs *fakeServer) newJob(id int64, script ...string) *client.JobResponse {
	tok := fmt.Sprintf("jobtok-%d-secret", id)
	return &client.JobResponse{
		ID:    id,
		Token: tok,
		JobInfo: client.JobInfo{
			Name: "test", Stage: "test", ProjectID: 1, ProjectName: "proj",
		},
		GitInfo:    client.GitInfo{RepoURL: fs.srv.URL + "/group/proj.git", Ref: "main", Sha: strings.Repeat("0", 40)},
		RunnerInfo: client.RunnerInfo{Timeout: 60},
		Variables: []client.Variable{
			{Key: "CI_JOB_ID", Value: strconv.FormatInt(id, 10), Public: true},
			{Key: "CI_JOB_TOKEN", Value: tok, Masked: true},
			{Key: "CI_PROJECT_PATH", Value: "group/proj", Public: true},
			{Key: "GIT_STRATEGY", Value: "none", Public: true},
		},
		Steps: []client.Step{{Name: "script", Script: script, Timeout: 60, When: "on_success"}},
		Features: client.GitlabFeatures{TraceSections: true,
			FailureReasons: []string{"script_failure", "runner_system_failure", "job_execution_timeout", "unknown_failure"}},
	}
}

func zipEntries(t *testing.T, b []byte) map[string]string {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatalf("artifact is not a zip: %v", err)
	}
	out := map[string]string{}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		c, _ := io.ReadAll(rc)
		rc.Close()
		out[f.Name] = string(c)
	}
	return out
}

func basicAuth(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

// trace returns what the server holds of the job's log.
func (fs *fakeServer) trace(id int64) string {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return string(fs.traces[id])
}
