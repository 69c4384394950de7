package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
)

func newTestClient(t *testing.T, h http.HandlerFunc) *Client {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	c, err := New(Options{URL: srv.URL + "/ci/", Token: "glrt-x", SystemID: "s_1"})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestBaseURL(t *testing.T) {
	tests := map[string]string{
		"http://h":             "http://h/api/v4/",
		"http://h/":            "http://h/api/v4/",
		"http://h/ci":          "http://h/api/v4/",
		"https://h/gitlab/ci/": "https://h/gitlab/api/v4/",
	}
	for in, want := range tests {
		u, err := BaseURL(in)
		if err != nil || u.String() != want {
			t.Errorf("BaseURL(%q) = %v, %v; want %s", in, u, err, want)
		}
	}
	if _, err := BaseURL("ftp://h/"); err == nil {
		t.Error("ftp accepted")
	}
}

func TestRangeEnd(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0-1234", 1234, true},
		{"0-0", 0, true},
		{"bytes 0-10/11", 10, true},
		{"", 0, false},
		{"0-x", 0, false},
	}
	for _, tt := range tests {
		got, ok := rangeEnd(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("rangeEnd(%q) = %d, %v", tt.in, got, ok)
		}
	}
}

func TestPatchTraceRanges(t *testing.T) {
	tests := []struct {
		name       string
		start      int64
		content    int
		status     int
		rangeHdr   string
		jobStatus  string
		wantState  PatchState
		wantOffset int64
		wantSent   int
	}{
		{"accepted", 0, 10, 202, "0-10", "running", PatchSucceeded, 10, 10},
		{"accepted without Range", 5, 10, 202, "", "", PatchSucceeded, 15, 10},
		{"server behind: resume", 100, 10, 416, "0-40", "", PatchRangeMismatch, 40, 10},
		{"200 is a failure", 0, 10, 200, "", "", PatchFailed, 0, 10},
		{"forbidden", 0, 10, 403, "", "", PatchAbort, 0, 10},
		{"canceled", 0, 10, 202, "0-10", "canceled", PatchAbort, 0, 10},
		{"gone", 0, 10, 404, "", "", PatchNotFound, 0, 10},
		{"capped at 1 MiB", 0, MaxPatchSize + 100, 202, "", "", PatchSucceeded, MaxPatchSize, MaxPatchSize},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var gotRange string
			var gotLen int
			c := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
				if r.Method != http.MethodPatch || r.URL.Path != "/api/v4/jobs/9/trace" || r.Header.Get("Job-Token") != "jt" {
					t.Errorf("bad request %s %s", r.Method, r.URL)
				}
				gotRange = r.Header.Get("Content-Range")
				b, _ := io.ReadAll(r.Body)
				gotLen = len(b)
				if tt.rangeHdr != "" {
					w.Header().Set("Range", tt.rangeHdr)
				}
				if tt.jobStatus != "" {
					w.Header().Set("Job-Status", tt.jobStatus)
				}
				w.WriteHeader(tt.status)
			})
			res, _ := c.PatchTrace(context.Background(), 9, "jt", bytes.Repeat([]byte("x"), tt.content), tt.start)
			if res.State != tt.wantState || (tt.wantOffset != 0 && res.NewOffset != tt.wantOffset) || res.Sent != tt.wantSent {
				t.Fatalf("got %+v", res)
			}
			if want := fmt.Sprintf("%d-%d", tt.start, tt.start+int64(tt.wantSent)-1); gotRange != want || gotLen != tt.wantSent {
				t.Fatalf("Content-Range %q (%d bytes), want %q", gotRange, gotLen, want)
			}
		})
	}
}

func TestUpdateJobResults(t *testing.T) {
	tests := []struct {
		state     string
		status    int
		jobStatus string
		want      UpdateState
	}{
		{StateRunning, 200, "running", UpdateSucceeded},
		{StateRunning, 200, "canceling", UpdateSucceeded},
		{StateRunning, 200, "canceled", UpdateAbort},
		{StateSuccess, 200, "success", UpdateSucceeded},
		{StateFailed, 200, "failed", UpdateSucceeded},
		{StateSuccess, 202, "", UpdateAcceptedNotCompleted},
		{StateSuccess, 412, "", UpdateTraceValidationFailed},
		{StateSuccess, 403, "", UpdateAbort},
		{StateSuccess, 404, "", UpdateAbort},
		{StateSuccess, 500, "", UpdateFailed},
		{StateSuccess, 400, "", UpdateFailed},
	}
	for _, tt := range tests {
		c := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
			var req UpdateJobRequest
			json.NewDecoder(r.Body).Decode(&req)
			if req.Token != "jt" || r.Header.Get("Job-Token") != "jt" || req.State != tt.state || req.Info.Name == "" {
				t.Errorf("bad update %+v", req)
			}
			w.Header().Set("Job-Status", tt.jobStatus)
			w.Header().Set("X-GitLab-Trace-Update-Interval", "7")
			w.WriteHeader(tt.status)
		})
		res, err := c.UpdateJob(context.Background(), 3, "jt", UpdateJobRequest{State: tt.state})
		if res.State != tt.want || res.JobStatus != tt.jobStatus || (err != nil) != (tt.want == UpdateFailed) {
			t.Errorf("%s/%d/%s: got %+v, %v", tt.state, tt.status, tt.jobStatus, res, err)
		}
	}
}

func TestRequestJob(t *testing.T) {
	calls := 0
	c := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		calls++
		var req JobRequest
		json.NewDecoder(r.Body).Decode(&req)
		if req.Token != "glrt-x" || r.Header.Get("Runner-Token") != "glrt-x" || req.SystemID != "s_1" || !req.Info.Features.TwoPhaseJobCommit {
			t.Errorf("bad job request %+v", req)
		}
		switch calls {
		case 1:
			if req.LastUpdate != "" {
				t.Errorf("unexpected last_update %q", req.LastUpdate)
			}
			w.Header().Set("X-GitLab-Last-Update", "lu-1")
			w.WriteHeader(http.StatusNoContent)
		case 2:
			if req.LastUpdate != "lu-1" {
				t.Errorf("last_update %q not echoed", req.LastUpdate)
			}
			w.Header().Set("Content-Type", "application/json; charset=utf-8")
			w.WriteHeader(http.StatusCreated)
			io.WriteString(w, `{"id":42,"token":"jt","image":null,"job_info":{"project_jobs_running_on_instance_runners_count":"3"},"steps":[{"name":"script","script":["true"]}],"unknown":1}`)
		case 3:
			w.Header().Set("Content-Type", "text/plain")
			w.WriteHeader(http.StatusCreated)
		default:
			w.WriteHeader(http.StatusForbidden)
		}
	})
	ctx := context.Background()
	if job, err := c.RequestJob(ctx); job != nil || err != nil {
		t.Fatalf("204: %v %v", job, err)
	}
	job, err := c.RequestJob(ctx)
	if err != nil || job.ID != 42 || job.Steps[0].Script[0] != "true" {
		t.Fatalf("201: %+v %v", job, err)
	}
	if _, err := c.RequestJob(ctx); err == nil {
		t.Fatal("non-JSON 201 accepted")
	}
	if _, err := c.RequestJob(ctx); !IsStatus(err, 403) {
		t.Fatalf("403: %v", err)
	}
}

// The server encodes JobResponse; gitlab-runner must be able to decode it,
// so a zero job must not contain the "run" key that newer runners reject.
func TestJobResponseEncoding(t *testing.T) {
	b, err := json.Marshal(JobResponse{ID: 1})
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for _, key := range []string{`"id":1`, `"token":`, `"git_info":{`, `"refspecs":null`, `"runner_info":{"timeout":0}`, `"image":null`, `"features":{`} {
		if !strings.Contains(s, key) {
			t.Errorf("encoded job lacks %s: %s", key, s)
		}
	}
	if strings.Contains(s, `"run"`) || strings.Contains(s, `"inputs"`) {
		t.Errorf("encoded job has run/inputs: %s", s)
	}
}

func TestUploadArtifactsFollows307(t *testing.T) {
	var got []string
	var c *Client
	c = newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		f, hdr, err := r.FormFile("file")
		if err != nil {
			t.Errorf("multipart: %v", err)
			return
		}
		b, _ := io.ReadAll(f)
		got = append(got, r.URL.Path+"?"+r.URL.RawQuery+" "+hdr.Filename+" "+string(b))
		if r.URL.Path == "/api/v4/jobs/5/artifacts" {
			w.Header().Set("Location", "/elsewhere")
			w.WriteHeader(http.StatusTemporaryRedirect)
			return
		}
		w.WriteHeader(http.StatusCreated)
	})
	err := c.UploadArtifacts(context.Background(), 5, "jt", strings.NewReader("ZIPDATA"), UploadOptions{ExpireIn: "2 days", ArtifactFormat: "zip"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"/api/v4/jobs/5/artifacts?artifact_format=zip&expire_in=2+days artifacts.zip ZIPDATA",
		"/elsewhere? artifacts.zip ZIPDATA",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got\n%s", strings.Join(got, "\n"))
	}
}

func TestVerify(t *testing.T) {
	for _, tt := range []struct {
		body   string
		status int
		ok     bool
	}{
		{`{"id":3,"token":"glrt-x","token_expires_at":null}`, 200, true},
		{`{"id":0,"token":"glrt-x"}`, 200, false},
		{``, 403, false},
	} {
		c := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/api/v4/runners/verify" {
				t.Errorf("path %s", r.URL.Path)
			}
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Content-Length", strconv.Itoa(len(tt.body)))
			w.WriteHeader(tt.status)
			io.WriteString(w, tt.body)
		})
		resp, err := c.Verify(context.Background())
		if (err == nil) != tt.ok || (tt.ok && resp.ID != 3) {
			t.Errorf("%s: %+v %v", tt.body, resp, err)
		}
	}
}
