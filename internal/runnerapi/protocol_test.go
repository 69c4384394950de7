package runnerapi

import (
	"context"
	"encoding/json"
	"fmt"
	"mime"
	"path/filepath"
	"testing"

	"github.com/kilnci/kiln/internal/queue"
	"github.com/kilnci/kiln/internal/store"
)

// TestProtocolByRunnerVersion replays the requests GitLab Runner 17.x,
// 18.x and 19.x make for one job, with the headers and token placements
// runner_protocol.md lists for each, and checks the answers they depend on.
func TestProtocolByRunnerVersion(t *testing.T) {
	versions := []struct {
		name string
		// runnerHeader: RUNNER-TOKEN sent (≥ 17.11); pat: job token in
		// PRIVATE-TOKEN on PUT (≤ 17.10); twoPhase: PUT running first (≥ 18.5).
		runnerHeader, pat, twoPhase bool
	}{
		{"17.5", false, true, false},
		{"18.5", true, false, true},
		{"19.3", true, false, true},
	}
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "kiln.db"), nil, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	e := newEnv(t, st, queue.NewMemory())
	e.svc.cfg.PollTimeout = 100e6
	for _, v := range versions {
		t.Run(v.name, func(t *testing.T) {
			tok := e.addRunner(store.Runner{RunUntagged: true, Description: "gl-" + v.name})
			ua := "gitlab-runner " + v.name + ".0 (main; go1.24; linux/amd64)"
			runnerHdr := map[string]string{"Content-Type": "application/json", "Accept": "application/json", "User-Agent": ua, "X-Request-Id": "0123456789abcdef0123456789abcdef"}
			if v.runnerHeader {
				runnerHdr["RUNNER-TOKEN"] = tok
			}
			info := map[string]any{"name": "gitlab-runner", "version": v.name + ".0", "platform": "linux", "architecture": "amd64", "executor": "shell", "shell": "bash",
				"features": map[string]any{"variables": true, "refspecs": true, "masking": true, "trace_reset": true, "trace_checksum": true, "trace_size": true,
					"cancelable": true, "return_exit_code": true, "two_phase_job_commit": v.twoPhase}}

			// verify (register --token): 200 JSON with id != 0 and token_expires_at null.
			r := e.do("POST", "/api/v4/runners/verify", runnerHdr, map[string]any{"info": info, "token": tok, "system_id": "s_0123456789ab"})
			var ver map[string]any
			if r.code != 200 || json.Unmarshal(r.body, &ver) != nil || ver["id"].(float64) == 0 || ver["token_expires_at"] != nil {
				t.Fatalf("verify: %d %s", r.code, r.body)
			}
			if _, has := ver["token_expires_at"]; !has {
				t.Fatal("verify: token_expires_at must be present (null)")
			}
			// Idle poll: 204.
			r = e.do("POST", "/api/v4/jobs/request", runnerHdr, map[string]any{"info": info, "token": tok, "system_id": "s_0123456789ab"})
			if r.code != 204 {
				t.Fatalf("idle poll: %d", r.code)
			}
			e.addJobs(1, `{"script":["echo hi"],"before_script":["echo before"],"after_script":["echo after"],"artifacts":{"Paths":["out/"],"ExpireIn":"1 day"},"image":{"Name":"alpine"},"timeout":600}`)
			r = e.do("POST", "/api/v4/jobs/request", runnerHdr, map[string]any{"info": info, "token": tok, "system_id": "s_0123456789ab"})
			if r.code != 201 {
				t.Fatalf("poll: %d %s", r.code, r.body)
			}
			if mt, _, _ := mime.ParseMediaType(r.hdr.Get("Content-Type")); mt != "application/json" {
				t.Fatalf("201 Content-Type %q", r.hdr.Get("Content-Type"))
			}
			var job map[string]json.RawMessage
			if err := json.Unmarshal(r.body, &job); err != nil {
				t.Fatal(err)
			}
			// Decoding traps of ≥ 18.11: no "run" key, no "inputs"; image an
			// object or null; numbers where numbers go; the count a string.
			for _, k := range []string{"run", "inputs"} {
				if _, has := job[k]; has {
					t.Errorf("payload has %q", k)
				}
			}
			var payload struct {
				ID      int64  `json:"id"`
				Token   string `json:"token"`
				JobInfo struct {
					Count string `json:"project_jobs_running_on_instance_runners_count"`
				} `json:"job_info"`
				GitInfo struct {
					RepoURL  string   `json:"repo_url"`
					Sha      string   `json:"sha"`
					Refspecs []string `json:"refspecs"`
					Depth    int      `json:"depth"`
				} `json:"git_info"`
				RunnerInfo struct {
					Timeout int `json:"timeout"`
				} `json:"runner_info"`
				Image *struct {
					Name string `json:"name"`
				} `json:"image"`
				Steps []struct {
					Name   string   `json:"name"`
					Script []string `json:"script"`
					When   string   `json:"when"`
				} `json:"steps"`
				Variables []struct {
					Key    string `json:"key"`
					Value  string `json:"value"`
					Masked bool   `json:"masked"`
					Public bool   `json:"public"`
				} `json:"variables"`
				Artifacts []struct {
					Paths    []string `json:"paths"`
					ExpireIn string   `json:"expire_in"`
				} `json:"artifacts"`
				Features struct {
					FailureReasons []string `json:"failure_reasons"`
				} `json:"features"`
			}
			if err := json.Unmarshal(r.body, &payload); err != nil {
				t.Fatalf("payload does not decode with the runner's types: %v", err)
			}
			jt := payload.Token
			if payload.GitInfo.RepoURL != "http://gitlab-ci-token:"+jt+"@kiln.test/alice/app.git" || payload.GitInfo.Sha != testSHA || len(payload.GitInfo.Refspecs) == 0 {
				t.Errorf("git_info: %+v", payload.GitInfo)
			}
			if payload.RunnerInfo.Timeout != 600 || payload.Image == nil || payload.Image.Name != "alpine" {
				t.Errorf("timeout/image: %d %+v", payload.RunnerInfo.Timeout, payload.Image)
			}
			if len(payload.Steps) != 2 || payload.Steps[0].Name != "script" || len(payload.Steps[0].Script) != 2 || payload.Steps[1].Name != "after_script" || payload.Steps[1].When != "always" {
				t.Errorf("steps: %+v", payload.Steps)
			}
			if len(payload.Artifacts) != 1 || payload.Artifacts[0].ExpireIn != "1 day" {
				t.Errorf("artifacts: %+v", payload.Artifacts)
			}
			found := false
			for _, vv := range payload.Variables {
				if vv.Key == "CI_JOB_TOKEN" {
					found = vv.Value == jt && vv.Masked && !vv.Public
				}
			}
			if !found {
				t.Error("CI_JOB_TOKEN missing or not masked")
			}
			if !contains(payload.Features.FailureReasons, "job_canceled") || !contains(payload.Features.FailureReasons, "job_execution_timeout") {
				t.Errorf("failure_reasons: %v", payload.Features.FailureReasons)
			}

			jobHdr := func() map[string]string {
				h := map[string]string{"Content-Type": "application/json", "User-Agent": ua}
				if v.pat {
					h["PRIVATE-TOKEN"] = jt
				} else {
					h["JOB-TOKEN"] = jt
				}
				return h
			}
			path := fmt.Sprintf("/api/v4/jobs/%d", payload.ID)
			if v.twoPhase {
				r = e.do("PUT", path, jobHdr(), map[string]any{"info": info, "token": jt, "state": "running", "output": map[string]any{}})
				if r.code != 200 {
					t.Fatalf("two-phase running PUT: %d", r.code)
				}
			}
			trace := "Running with gitlab-runner " + v.name + "\n$ echo hi\nhi\n"
			r = e.do("PATCH", path+"/trace?debug_trace=false", map[string]string{"JOB-TOKEN": jt, "Content-Type": "text/plain", "Content-Range": fmt.Sprintf("0-%d", len(trace)-1), "User-Agent": ua}, trace)
			if r.code != 202 || r.hdr.Get("Range") != fmt.Sprintf("0-%d", len(trace)) || r.hdr.Get("Job-Status") != "running" {
				t.Fatalf("PATCH: %d %v", r.code, r.hdr)
			}
			sum, _ := e.svc.cfg.Traces.Checksum(context.Background(), payload.ID)
			r = e.do("PUT", path, jobHdr(), map[string]any{"info": info, "token": jt, "state": "failed", "failure_reason": "script_failure", "exit_code": 1,
				"checksum": sum, "output": map[string]any{"checksum": sum, "bytesize": len(trace)}})
			if r.code != 200 {
				t.Fatalf("final PUT: %d %s", r.code, r.body)
			}
			j, _ := e.st.JobByID(context.Background(), payload.ID)
			if j.Status != "failed" || j.FailureReason != "script_failure" || j.ExitCode == nil || *j.ExitCode != 1 {
				t.Errorf("job: %s %s %v", j.Status, j.FailureReason, j.ExitCode)
			}
		})
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
