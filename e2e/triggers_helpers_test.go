package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// trigResp is an answer of a trigger endpoint.
type trigResp struct {
	code int
	hdr  http.Header
	raw  string
	obj  map[string]any
}

// trigDo sends a request without a personal access token: trigger calls
// authenticate with the trigger token alone.
func trigDo(t *testing.T, method, u, ct string, body io.Reader, hdr map[string]string) trigResp {
	t.Helper()
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := trigResp{code: resp.StatusCode, hdr: resp.Header, raw: string(raw)}
	json.Unmarshal(raw, &r.obj)
	return r
}

// trigForm posts multipart form fields, as curl -F does.
func trigForm(t *testing.T, u string, fields ...string) trigResp {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for i := 0; i+1 < len(fields); i += 2 {
		mw.WriteField(fields[i], fields[i+1])
	}
	mw.Close()
	return trigDo(t, "POST", u, mw.FormDataContentType(), &buf, nil)
}

// curl runs the real curl, as the GitLab docs' examples do, and returns the
// HTTP status and body.
func trigCurl(t *testing.T, args ...string) trigResp {
	t.Helper()
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl is not installed")
	}
	args = append([]string{"-sS", "-w", "\n%{http_code}"}, args...)
	out, err := exec.Command("curl", args...).Output()
	if err != nil {
		t.Fatalf("curl %v: %v", args, err)
	}
	s := strings.TrimRight(string(out), "\n")
	i := strings.LastIndex(s, "\n")
	r := trigResp{raw: s[:max(i, 0)]}
	if i >= 0 {
		code := s[i+1:]
		for _, c := range code {
			r.code = r.code*10 + int(c-'0')
		}
	}
	json.Unmarshal([]byte(r.raw), &r.obj)
	return r
}

// wantStatus fails unless r has status code.
func (r trigResp) want(t *testing.T, code int, what string) trigResp {
	t.Helper()
	if r.code != code {
		t.Fatalf("%s: status %d, want %d: %s", what, r.code, code, r.raw)
	}
	return r
}

// jobsOf lists a pipeline's job names and statuses.
func (s *server) trigJobsOf(project string, pipelineID any) map[string]string {
	var jobs []map[string]any
	s.call("GET", "/api/v4/projects/"+project+"/pipelines/"+jsonID(pipelineID)+"/jobs?per_page=100", nil, &jobs)
	out := map[string]string{}
	for _, j := range jobs {
		out[j["name"].(string)] = j["status"].(string)
	}
	return out
}

// pipelineVars returns a pipeline's variables by key (value, variable_type).
func (s *server) trigPipelineVars(project string, pipelineID any) map[string][2]string {
	var vars []map[string]any
	s.call("GET", "/api/v4/projects/"+project+"/pipelines/"+jsonID(pipelineID)+"/variables", nil, &vars)
	out := map[string][2]string{}
	for _, v := range vars {
		out[v["key"].(string)] = [2]string{v["value"].(string), v["variable_type"].(string)}
	}
	return out
}

// waitPipeline polls a pipeline until it completes or d elapses; it returns
// the last status seen.
func (s *server) trigWaitPipeline(project string, pipelineID any, d time.Duration) string {
	deadline := time.Now().Add(d)
	status := ""
	for {
		var pl map[string]any
		s.call("GET", "/api/v4/projects/"+project+"/pipelines/"+jsonID(pipelineID), nil, &pl)
		status, _ = pl["status"].(string)
		switch status {
		case "success", "failed", "canceled", "skipped":
			return status
		}
		if time.Now().After(deadline) {
			return status
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// pipelinesOf lists a project's pipelines, newest first.
func (s *server) trigPipelinesOf(project string, query string) []map[string]any {
	var pls []map[string]any
	s.call("GET", "/api/v4/projects/"+project+"/pipelines?"+query, nil, &pls)
	return pls
}

// waitFor polls cond until it holds or d elapses.
func trigWaitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(100 * time.Millisecond)
	}
	return cond()
}
