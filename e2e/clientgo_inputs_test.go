package e2e

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	gitlab "gitlab.com/gitlab-org/api/client-go"
)

// TestClientGoInputs: GitLab's Go client sends typed inputs
// (RunPipelineTriggerOptions.Inputs, CreatePipelineOptions.Inputs) and gets
// the pipeline, or a 400 naming the input, with nothing created.
func TestClientGoInputs(t *testing.T) {
	for _, kind := range dbKinds() {
		t.Run(kind, func(t *testing.T) {
			s := newServer(t, kind)
			s.start()
			gl, err := gitlab.NewClient(rootToken, gitlab.WithBaseURL(s.URL+"/api/v4"))
			if err != nil {
				t.Fatal(err)
			}
			var group, p, tr map[string]any
			s.call("POST", "/api/v4/groups", map[string]any{"name": "In", "path": "in"}, &group)
			s.call("POST", "/api/v4/projects", url.Values{"name": {"Typed"}, "path": {"typed"}, "namespace_id": {jsonID(group["id"])}}, &p)
			id := jsonID(p["id"])
			w := newWorkRepo(t, "main", map[string]string{".gitlab-ci.yml": inputsCI})
			git(t, w, "push", "-q", s.authURL("in/typed"), "main")
			s.call("POST", "/api/v4/projects/"+id+"/triggers", url.Values{"description": {"go"}}, &tr)
			count := func() int {
				return len(s.trigPipelinesOf(id, "source=trigger&per_page=100")) + len(s.trigPipelinesOf(id, "source=api&per_page=100"))
			}

			_, resp, err := gl.PipelineTriggers.RunPipelineTrigger(id, &gitlab.RunPipelineTriggerOptions{Ref: gitlab.Ptr("main"), Token: gitlab.Ptr(tr["token"].(string)),
				Inputs: gitlab.PipelineInputsOption{"env": gitlab.NewPipelineInputValue("staging"), "replicas": gitlab.NewPipelineInputValue("three")}})
			if err == nil || resp == nil || resp.StatusCode != http.StatusBadRequest || !strings.Contains(err.Error(), "`replicas` input: provided value is not a number") {
				t.Fatalf("wrong type: %v", err)
			}
			_, resp, err = gl.Pipelines.CreatePipeline(id, &gitlab.CreatePipelineOptions{Ref: gitlab.Ptr("main"),
				Inputs: gitlab.PipelineInputsOption{"env": gitlab.NewPipelineInputValue("staging"), "debug": gitlab.NewPipelineInputValue(true)}})
			if err == nil || resp == nil || resp.StatusCode != http.StatusBadRequest || !strings.Contains(err.Error(), "unknown input arguments: debug") {
				t.Fatalf("unknown input: %v", err)
			}
			if n := count(); n != 0 {
				t.Fatalf("refusals created %d pipelines", n)
			}
			pl, _, err := gl.PipelineTriggers.RunPipelineTrigger(id, &gitlab.RunPipelineTriggerOptions{Ref: gitlab.Ptr("main"), Token: gitlab.Ptr(tr["token"].(string)),
				Inputs: gitlab.PipelineInputsOption{"env": gitlab.NewPipelineInputValue("production"), "replicas": gitlab.NewPipelineInputValue(6)}})
			if err != nil {
				t.Fatalf("trigger with inputs: %v", err)
			}
			if _, _, err := gl.Pipelines.CreatePipeline(id, &gitlab.CreatePipelineOptions{Ref: gitlab.Ptr("main"),
				Inputs: gitlab.PipelineInputsOption{"env": gitlab.NewPipelineInputValue("staging"), "version": gitlab.NewPipelineInputValue("v3.1")}}); err != nil {
				t.Fatalf("create pipeline with inputs: %v", err)
			}
			if st := s.trigWaitPipeline(id, pl.ID, 120*time.Second); st != "success" {
				t.Skipf("pipeline did not finish within 120s (%s)", st)
			}
			jobs, _, err := gl.Jobs.ListPipelineJobs(id, pl.ID, nil)
			if err != nil || len(jobs) != 1 {
				t.Fatalf("jobs: %v %v", jobs, err)
			}
			if log := s.trace("/api/v4/projects/"+id, jobs[0].ID); !strings.Contains(log, "deploying v0.1 to production x6") {
				t.Fatalf("job log does not show the inputs:\n%s", log)
			}
		})
	}
}
