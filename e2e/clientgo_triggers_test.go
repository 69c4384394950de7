package e2e

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	retryablehttp "github.com/hashicorp/go-retryablehttp"
	gitlab "gitlab.com/gitlab-org/api/client-go"
)

// withQuery is a client-go request option that adds query parameters, for
// Kiln's trigger parameters the client has no field for (sha, dry_run,
// wait): the trigger API reads them from the query string too.
func withQuery(kv ...string) gitlab.RequestOptionFunc {
	return func(r *retryablehttp.Request) error {
		q := r.URL.Query()
		for i := 0; i+1 < len(kv); i += 2 {
			q.Set(kv[i], kv[i+1])
		}
		r.URL.RawQuery = q.Encode()
		return nil
	}
}

// TestClientGoTriggerContracts: GitLab's Go client drives the trigger
// contract end to end: trigger token CRUD (description; expiry through
// the client's generic NewRequest/Do, which it has no field for),
// RunPipelineTrigger with Variables and Inputs, Idempotency-Key through
// gitlab.WithHeader (a replay answers the same pipeline, other parameters
// a 422 the client parses), CreatePipeline with inputs and a key, sha,
// dry_run and wait through a query option, and refusals as
// *gitlab.ErrorResponse naming the input, with nothing created.
func TestClientGoTriggerContracts(t *testing.T) {
	for _, kind := range dbKinds() {
		t.Run(kind, func(t *testing.T) {
			s := newServer(t, kind, "--builtin-runners", "0")
			s.start()
			gl, err := gitlab.NewClient(rootToken, gitlab.WithBaseURL(s.URL+"/api/v4"))
			if err != nil {
				t.Fatal(err)
			}
			proj, _, err := gl.Projects.CreateProject(&gitlab.CreateProjectOptions{Name: gitlab.Ptr("contracts"), Path: gitlab.Ptr("contracts")})
			if err != nil {
				t.Fatal(err)
			}
			w := newWorkRepo(t, "main", map[string]string{".gitlab-ci.yml": inputsCI})
			git(t, w, "push", "-q", s.authURL("root/contracts"), "main")
			sha := strings.TrimSpace(git(t, w, "rev-parse", "HEAD"))
			// The push pipeline fails (env is required); wait for it so that
			// counts below are the calls' own.
			count := func() int {
				list, _, _ := gl.Pipelines.ListProjectPipelines(proj.ID, &gitlab.ListProjectPipelinesOptions{ListOptions: gitlab.ListOptions{PerPage: 100}})
				return len(list)
			}
			if !trigWaitFor(20*time.Second, func() bool { return count() == 1 }) {
				t.Fatalf("push pipeline: %d pipelines", count())
			}

			// Trigger token CRUD.
			tr, _, err := gl.PipelineTriggers.AddPipelineTrigger(proj.ID, &gitlab.AddPipelineTriggerOptions{Description: gitlab.Ptr("from go")})
			if err != nil || !strings.HasPrefix(tr.Token, "glptt-") || tr.Description != "from go" || tr.Owner == nil || tr.Owner.Username != "root" || tr.CreatedAt == nil {
				t.Fatalf("AddPipelineTrigger: %+v %v", tr, err)
			}
			token := tr.Token
			got, _, err := gl.PipelineTriggers.GetPipelineTrigger(proj.ID, tr.ID)
			if err != nil || got.ID != tr.ID || got.Description != "from go" || got.Token == token {
				t.Fatalf("GetPipelineTrigger (short token only): %+v %v", got, err)
			}
			ed, _, err := gl.PipelineTriggers.EditPipelineTrigger(proj.ID, tr.ID, &gitlab.EditPipelineTriggerOptions{Description: gitlab.Ptr("renamed")})
			if err != nil || ed.Description != "renamed" {
				t.Fatalf("EditPipelineTrigger: %+v %v", ed, err)
			}
			_, _, err = gl.PipelineTriggers.AddPipelineTrigger(proj.ID, &gitlab.AddPipelineTriggerOptions{})
			var er *gitlab.ErrorResponse
			if !errors.As(err, &er) || er.Response.StatusCode != 400 || !strings.Contains(er.Error(), "description") {
				t.Fatalf("AddPipelineTrigger without description: %v", err)
			}
			// expires_at: no client field; the client's NewRequest/Do send it.
			expiry := time.Now().AddDate(0, 1, 0).Format("2006-01-02")
			req, err := gl.NewRequest(http.MethodPost, "projects/"+jsonID(float64(proj.ID))+"/triggers", map[string]string{"description": "expiring", "expires_at": expiry}, nil)
			if err != nil {
				t.Fatal(err)
			}
			var exp struct {
				gitlab.PipelineTrigger
				ExpiresAt string `json:"expires_at"`
			}
			if _, err := gl.Do(req, &exp); err != nil || !strings.HasPrefix(exp.ExpiresAt, expiry) || exp.Description != "expiring" {
				t.Fatalf("create with expires_at: %+v %v", exp, err)
			}
			req, _ = gl.NewRequest(http.MethodPost, "projects/"+jsonID(float64(proj.ID))+"/triggers", map[string]string{"description": "far", "expires_at": time.Now().AddDate(3, 0, 0).Format("2006-01-02")}, nil)
			if _, err := gl.Do(req, nil); !errors.As(err, &er) || er.Response.StatusCode != 400 {
				t.Fatalf("expires_at three years ahead: %v", err)
			}
			list, _, err := gl.PipelineTriggers.ListPipelineTriggers(proj.ID, nil)
			if err != nil || len(list) != 2 {
				t.Fatalf("ListPipelineTriggers: %+v %v", list, err)
			}

			// Refusals: a bad input is a 400 the client parses, naming the input.
			n := count()
			_, resp, err := gl.PipelineTriggers.RunPipelineTrigger(proj.ID, &gitlab.RunPipelineTriggerOptions{Ref: gitlab.Ptr("main"), Token: gitlab.Ptr(token),
				Inputs: gitlab.PipelineInputsOption{"env": gitlab.NewPipelineInputValue("staging"), "version": gitlab.NewPipelineInputValue("latest")}})
			if !errors.As(err, &er) || resp.StatusCode != 400 || !strings.Contains(er.Message, "`version` input: provided value does not match required RegEx pattern") {
				t.Fatalf("regex miss: %v", err)
			}
			_, _, err = gl.PipelineTriggers.RunPipelineTrigger(proj.ID, &gitlab.RunPipelineTriggerOptions{Ref: gitlab.Ptr("main"), Token: gitlab.Ptr(token),
				Inputs: gitlab.PipelineInputsOption{"env": gitlab.NewPipelineInputValue("qa")}})
			if !errors.As(err, &er) || !strings.Contains(er.Message, "`env` input") {
				t.Fatalf("option miss: %v", err)
			}
			// sha from nowhere, through a query option.
			_, _, err = gl.PipelineTriggers.RunPipelineTrigger(proj.ID, &gitlab.RunPipelineTriggerOptions{Ref: gitlab.Ptr("main"), Token: gitlab.Ptr(token),
				Inputs: gitlab.PipelineInputsOption{"env": gitlab.NewPipelineInputValue("staging")}}, withQuery("sha", "HEAD~1"))
			if !errors.As(err, &er) || !strings.Contains(er.Message, "sha must be a full commit SHA") {
				t.Fatalf("short sha: %v", err)
			}
			// dry_run: 200, nothing created.
			prev, resp, err := gl.PipelineTriggers.RunPipelineTrigger(proj.ID, &gitlab.RunPipelineTriggerOptions{Ref: gitlab.Ptr("main"), Token: gitlab.Ptr(token),
				Inputs: gitlab.PipelineInputsOption{"env": gitlab.NewPipelineInputValue("staging")}}, withQuery("dry_run", "true"))
			if err != nil || resp.StatusCode != 200 || prev.ID != 0 {
				t.Fatalf("dry_run: %+v %v", prev, err)
			}
			if got := count(); got != n {
				t.Fatalf("refusals and dry_run created %d pipelines", got-n)
			}

			// Variables and Inputs, under an Idempotency-Key.
			opt := &gitlab.RunPipelineTriggerOptions{Ref: gitlab.Ptr("main"), Token: gitlab.Ptr(token), Variables: map[string]string{"DEPLOY_NOTE": "from-go"},
				Inputs: gitlab.PipelineInputsOption{"env": gitlab.NewPipelineInputValue("production"), "replicas": gitlab.NewPipelineInputValue(3)}}
			pl, resp, err := gl.PipelineTriggers.RunPipelineTrigger(proj.ID, opt, gitlab.WithHeader("Idempotency-Key", "go-deploy-1"), withQuery("sha", sha))
			if err != nil || resp.StatusCode != 201 || pl.Source != "trigger" || pl.SHA != sha || pl.Ref != "main" {
				t.Fatalf("RunPipelineTrigger: %+v %v", pl, err)
			}
			again, resp, err := gl.PipelineTriggers.RunPipelineTrigger(proj.ID, opt, gitlab.WithHeader("Idempotency-Key", "go-deploy-1"), withQuery("sha", sha))
			if err != nil || again.ID != pl.ID || resp.Header.Get("Idempotent-Replayed") != "true" {
				t.Fatalf("replay: %+v %v %v", again, err, resp.Header)
			}
			other := *opt
			other.Variables = map[string]string{"DEPLOY_NOTE": "changed"}
			_, resp, err = gl.PipelineTriggers.RunPipelineTrigger(proj.ID, &other, gitlab.WithHeader("Idempotency-Key", "go-deploy-1"), withQuery("sha", sha))
			if !errors.As(err, &er) || resp.StatusCode != 422 || !strings.Contains(er.Message, "Idempotency-Key was already used with other parameters") {
				t.Fatalf("same key, other variables: %v", err)
			}
			pvars, _, err := gl.Pipelines.GetPipelineVariables(proj.ID, pl.ID)
			pv := map[string]string{}
			for _, v := range pvars {
				pv[v.Key] = v.Value
			}
			// TRIGGER_PAYLOAD: the JSON body GitLab's client sent, without the token.
			if err != nil || len(pv) != 2 || pv["DEPLOY_NOTE"] != "from-go" || !strings.Contains(pv["TRIGGER_PAYLOAD"], `"inputs":{"env":"production","replicas":3}`) ||
				strings.Contains(pv["TRIGGER_PAYLOAD"], token) {
				t.Fatalf("GetPipelineVariables: %v %v", pv, err)
			}
			if got := count(); got != n+1 {
				t.Fatalf("%d pipelines created, want 1", got-n)
			}

			// CreatePipeline with inputs and a key.
			copt := &gitlab.CreatePipelineOptions{Ref: gitlab.Ptr("main"), Inputs: gitlab.PipelineInputsOption{"env": gitlab.NewPipelineInputValue("staging"), "version": gitlab.NewPipelineInputValue("v2.0")}}
			cp, _, err := gl.Pipelines.CreatePipeline(proj.ID, copt, gitlab.WithHeader("Idempotency-Key", "go-create-1"))
			if err != nil || cp.Source != "api" {
				t.Fatalf("CreatePipeline with inputs: %+v %v", cp, err)
			}
			cp2, resp, err := gl.Pipelines.CreatePipeline(proj.ID, copt, gitlab.WithHeader("Idempotency-Key", "go-create-1"))
			if err != nil || cp2.ID != cp.ID || resp.Header.Get("Idempotent-Replayed") != "true" {
				t.Fatalf("CreatePipeline replay: %+v %v", cp2, err)
			}

			// wait: nothing runs here (no runners), so time is up: 202.
			wp, resp, err := gl.PipelineTriggers.RunPipelineTrigger(proj.ID, &gitlab.RunPipelineTriggerOptions{Ref: gitlab.Ptr("main"), Token: gitlab.Ptr(token),
				Inputs: gitlab.PipelineInputsOption{"env": gitlab.NewPipelineInputValue("staging")}}, withQuery("wait", "1"))
			if err != nil || resp.StatusCode != 202 || wp.ID == 0 || !strings.HasSuffix(resp.Header.Get("Location"), "/pipelines/"+jsonID(float64(wp.ID))) {
				t.Fatalf("wait: %+v %v %v", wp, err, resp.Header)
			}

			// A revoked token is refused.
			if _, err := gl.PipelineTriggers.DeletePipelineTrigger(proj.ID, tr.ID); err != nil {
				t.Fatalf("DeletePipelineTrigger: %v", err)
			}
			_, resp, err = gl.PipelineTriggers.RunPipelineTrigger(proj.ID, &gitlab.RunPipelineTriggerOptions{Ref: gitlab.Ptr("main"), Token: gitlab.Ptr(token)})
			if !errors.Is(err, gitlab.ErrNotFound) || resp.StatusCode != 404 {
				t.Fatalf("revoked token: %v", err)
			}
		})
	}
}
