package e2e

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	gitlab "gitlab.com/gitlab-org/api/client-go"
)

// TestClientGo drives the pipelines, jobs, variables and lint APIs with
// GitLab's official Go client: every answer must decode into its structs
// with the values Kiln meant.
func TestClientGo(t *testing.T) {
	for _, kind := range dbKinds() {
		t.Run(kind, func(t *testing.T) {
			s := newServer(t, kind, "--builtin-runners", "0")
			s.start()
			gl, err := gitlab.NewClient(rootToken, gitlab.WithBaseURL(s.URL+"/api/v4"))
			if err != nil {
				t.Fatal(err)
			}
			proj, _, err := gl.Projects.CreateProject(&gitlab.CreateProjectOptions{Name: gitlab.Ptr("cg"), Path: gitlab.Ptr("cg")})
			if err != nil {
				t.Fatal(err)
			}
			work := newWorkRepo(t, "main", map[string]string{".gitlab-ci.yml": multiStageCI, "child.yml": "c:\n  script: echo child\n"})
			git(t, work, "push", "-q", s.authURL("root/cg"), "main")
			// Push pipelines are created after the push is answered (as on
			// GitLab); wait for it so that ids and "latest" are deterministic.
			for deadline := time.Now().Add(15 * time.Second); ; {
				list, _, err := gl.Pipelines.ListProjectPipelines(proj.ID, nil)
				if err == nil && len(list) == 1 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the push pipeline did not appear: %v %v", list, err)
				}
				time.Sleep(20 * time.Millisecond)
			}

			v, _, err := gl.ProjectVariables.CreateVariable(proj.ID, &gitlab.CreateProjectVariableOptions{
				Key: gitlab.Ptr("DEPLOY_TOKEN"), Value: gitlab.Ptr("abcdefgh12345678"), Masked: gitlab.Ptr(true), Protected: gitlab.Ptr(true),
				VariableType: gitlab.Ptr(gitlab.EnvVariableType), EnvironmentScope: gitlab.Ptr("*"), Description: gitlab.Ptr("for deploys"),
			})
			if err != nil || v.Key != "DEPLOY_TOKEN" || !v.Masked || !v.Protected || v.Value != "abcdefgh12345678" || v.Description != "for deploys" {
				t.Fatalf("CreateVariable: %+v %v", v, err)
			}
			_, resp, err := gl.ProjectVariables.CreateVariable(proj.ID, &gitlab.CreateProjectVariableOptions{Key: gitlab.Ptr("DEPLOY_TOKEN"), Value: gitlab.Ptr("x")})
			if err == nil || resp == nil || resp.StatusCode != http.StatusBadRequest {
				t.Fatalf("duplicate CreateVariable: %v", err)
			}
			vars, _, err := gl.ProjectVariables.ListVariables(proj.ID, nil)
			if err != nil || len(vars) != 1 || vars[0].EnvironmentScope != "*" || vars[0].VariableType != gitlab.EnvVariableType {
				t.Fatalf("ListVariables: %+v %v", vars, err)
			}

			pl, _, err := gl.Pipelines.CreatePipeline(proj.ID, &gitlab.CreatePipelineOptions{Ref: gitlab.Ptr("main"), Variables: &[]*gitlab.PipelineVariableOptions{
				{Key: gitlab.Ptr("API_VAR"), Value: gitlab.Ptr("from-api"), VariableType: gitlab.Ptr(gitlab.EnvVariableType)},
				{Key: gitlab.Ptr("CFG"), Value: gitlab.Ptr("a=b"), VariableType: gitlab.Ptr(gitlab.FileVariableType)},
			}})
			if err != nil {
				t.Fatal(err)
			}
			if pl.Status != "pending" || pl.Source != "api" || pl.Ref != "main" || len(pl.SHA) != 40 || pl.User == nil || pl.User.Username != "root" ||
				pl.CreatedAt == nil || pl.DetailedStatus == nil || pl.DetailedStatus.Group != "pending" || pl.WebURL == "" || pl.IID < 1 || pl.ProjectID != proj.ID {
				t.Fatalf("CreatePipeline: %+v", pl)
			}
			_, resp, err = gl.Pipelines.CreatePipeline(proj.ID, &gitlab.CreatePipelineOptions{Ref: gitlab.Ptr("nope")})
			var er *gitlab.ErrorResponse
			if !errors.As(err, &er) || resp.StatusCode != 400 || !strings.Contains(er.Message, "base: [Reference not found]") {
				t.Fatalf("CreatePipeline on a missing ref: %v", err)
			}

			list, _, err := gl.Pipelines.ListProjectPipelines(proj.ID, &gitlab.ListProjectPipelinesOptions{Source: gitlab.Ptr("api"), OrderBy: gitlab.Ptr("id"), Sort: gitlab.Ptr("asc")})
			if err != nil || len(list) != 1 || list[0].ID != pl.ID || list[0].SHA != pl.SHA || list[0].Status != "pending" || list[0].UpdatedAt == nil {
				t.Fatalf("ListProjectPipelines: %+v %v", list, err)
			}
			all, _, err := gl.Pipelines.ListProjectPipelines(proj.ID, nil)
			if err != nil || len(all) != 2 {
				t.Fatalf("ListProjectPipelines (push and api): %d %v", len(all), err)
			}
			got, _, err := gl.Pipelines.GetPipeline(proj.ID, pl.ID)
			if err != nil || got.ID != pl.ID || got.BeforeSHA == "" || got.CommittedAt == nil || got.YamlErrors != "" {
				t.Fatalf("GetPipeline: %+v %v", got, err)
			}
			latest, _, err := gl.Pipelines.GetLatestPipeline(proj.ID, &gitlab.GetLatestPipelineOptions{Ref: gitlab.Ptr("main")})
			if err != nil || latest.ID != pl.ID {
				t.Fatalf("GetLatestPipeline: %+v %v", latest, err)
			}
			pvars, _, err := gl.Pipelines.GetPipelineVariables(proj.ID, pl.ID)
			if err != nil || len(pvars) != 2 || pvars[0].Key != "API_VAR" || pvars[0].Value != "from-api" || pvars[1].VariableType != gitlab.FileVariableType {
				t.Fatalf("GetPipelineVariables: %+v %v", pvars, err)
			}

			jobs, _, err := gl.Jobs.ListPipelineJobs(proj.ID, pl.ID, &gitlab.ListJobsOptions{ListOptions: gitlab.ListOptions{PerPage: 100}})
			if err != nil || len(jobs) != 6 {
				t.Fatalf("ListPipelineJobs: %d %v", len(jobs), err)
			}
			var unit *gitlab.Job
			for _, j := range jobs {
				if j.Name == "unit" {
					unit = j
				}
			}
			if unit == nil || unit.Status != "pending" || unit.Stage != "test" || unit.Pipeline.ID != pl.ID || unit.Pipeline.Sha != pl.SHA ||
				unit.Commit == nil || unit.Commit.ID != pl.SHA || unit.User == nil || unit.WebURL == "" || unit.Ref != "main" || unit.Project == nil {
				t.Fatalf("unit job: %+v", unit)
			}
			pending, _, err := gl.Jobs.ListPipelineJobs(proj.ID, pl.ID, &gitlab.ListJobsOptions{Scope: &[]gitlab.BuildStateValue{gitlab.Pending}})
			if err != nil || len(pending) != 2 {
				t.Fatalf("ListPipelineJobs scope pending: %d %v", len(pending), err)
			}
			job, _, err := gl.Jobs.GetJob(proj.ID, unit.ID)
			if err != nil || job.ID != unit.ID || job.Name != "unit" || job.CreatedAt == nil {
				t.Fatalf("GetJob: %+v %v", job, err)
			}
			pjobs, _, err := gl.Jobs.ListProjectJobs(proj.ID, &gitlab.ListJobsOptions{})
			if err != nil || len(pjobs) != 12 {
				t.Fatalf("ListProjectJobs: %d %v", len(pjobs), err)
			}
			bridges, _, err := gl.Jobs.ListPipelineBridges(proj.ID, pl.ID, nil)
			if err != nil || len(bridges) != 0 {
				t.Fatalf("ListPipelineBridges: %+v %v", bridges, err)
			}

			canceled, _, err := gl.Pipelines.CancelPipelineBuild(proj.ID, pl.ID)
			if err != nil || canceled.Status != "canceled" {
				t.Fatalf("CancelPipelineBuild: %+v %v", canceled, err)
			}
			retried, _, err := gl.Pipelines.RetryPipelineBuild(proj.ID, pl.ID)
			if err != nil || retried.Status != "pending" {
				t.Fatalf("RetryPipelineBuild: %+v %v", retried, err)
			}

			lint, _, err := gl.Validate.ProjectNamespaceLint(proj.ID, &gitlab.ProjectNamespaceLintOptions{Content: gitlab.Ptr("include: child.yml\nx:\n  script: echo\n"), IncludeJobs: gitlab.Ptr(true)})
			if err != nil || !lint.Valid || len(lint.Errors) != 0 || lint.MergedYaml == "" || len(lint.Includes) != 1 || lint.Includes[0].Location != "child.yml" || lint.Includes[0].Type != "local" {
				t.Fatalf("ProjectNamespaceLint: %+v %v", lint, err)
			}
			lint, _, err = gl.Validate.ProjectNamespaceLint(proj.ID, &gitlab.ProjectNamespaceLintOptions{Content: gitlab.Ptr("x:\n  stage: nope\n  script: echo\n")})
			if err != nil || lint.Valid || len(lint.Errors) != 1 {
				t.Fatalf("ProjectNamespaceLint (invalid): %+v %v", lint, err)
			}
			lint, _, err = gl.Validate.ProjectLint(proj.ID, &gitlab.ProjectLintOptions{ContentRef: gitlab.Ptr("main"), DryRun: gitlab.Ptr(true)})
			if err != nil || !lint.Valid {
				t.Fatalf("ProjectLint: %+v %v", lint, err)
			}

			if _, err := gl.Pipelines.DeletePipeline(proj.ID, pl.ID); err != nil {
				t.Fatalf("DeletePipeline: %v", err)
			}
			if _, resp, err := gl.Pipelines.GetPipeline(proj.ID, pl.ID); err == nil || resp.StatusCode != 404 {
				t.Fatalf("GetPipeline after delete: %v", err)
			}
		})
	}
}
