package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/kilnci/kiln/internal/access"
	"github.com/kilnci/kiln/internal/gitrepo"
	"github.com/kilnci/kiln/internal/pipeline"
	"github.com/kilnci/kiln/internal/store"
)

func (a *API) pipelineRoutes() {
	a.handle("POST /api/v4/projects/{id}/pipeline", a.createPipeline)
	a.handle("GET /api/v4/projects/{id}/pipelines", a.listPipelines)
	a.handle("GET /api/v4/projects/{id}/pipelines/latest", a.latestPipeline)
	a.handle("GET /api/v4/projects/{id}/pipelines/{pipeline_id}", a.getPipeline)
	a.handle("DELETE /api/v4/projects/{id}/pipelines/{pipeline_id}", a.deletePipeline)
	a.handle("POST /api/v4/projects/{id}/pipelines/{pipeline_id}/retry", a.retryPipeline)
	a.handle("POST /api/v4/projects/{id}/pipelines/{pipeline_id}/cancel", a.cancelPipeline)
	a.handle("GET /api/v4/projects/{id}/pipelines/{pipeline_id}/jobs", a.listPipelineJobs)
	a.handle("GET /api/v4/projects/{id}/pipelines/{pipeline_id}/bridges", a.listPipelineBridges)
	a.handle("GET /api/v4/projects/{id}/pipelines/{pipeline_id}/variables", a.getPipelineVariables)
}

// Valid values of the pipeline list filters, as GitLab's API declares them.
var (
	pipelineScopes   = map[string]bool{"running": true, "pending": true, "finished": true, "branches": true, "tags": true}
	pipelineStatuses = map[string]bool{"created": true, "waiting_for_resource": true, "preparing": true, "pending": true, "running": true,
		"success": true, "failed": true, "canceled": true, "skipped": true, "manual": true, "scheduled": true, "canceling": true}
	pipelineSources = map[string]bool{"push": true, "web": true, "trigger": true, "schedule": true, "api": true, "external": true,
		"pipeline": true, "chat": true, "webide": true, "merge_request_event": true, "external_pull_request_event": true,
		"parent_pipeline": true, "ondemand_dast_scan": true, "ondemand_dast_validation": true, "security_orchestration_policy": true}
	pipelineOrders = map[string]bool{"id": true, "status": true, "ref": true, "updated_at": true, "user_id": true}
)

// maxPipelineVariables bounds the variables one request may pass, so that a
// hostile body cannot make a pipeline with millions of rows.
const maxPipelineVariables = 200

// render memoises lookups shared by the entries of one response (users,
// commits, pipelines, runners), so that a page of 100 jobs does not read
// the same commit 100 times.
type render struct {
	a         *API
	ctx       context.Context
	users     map[int64]*store.User
	commits   map[string]map[string]any
	pipelines map[int64]*store.Pipeline
	runners   map[int64]map[string]any
	projects  map[int64]*store.Project
	jobs      map[int64][]*store.Job // by pipeline (pipelines_links.go)
}

func (a *API) newRender(ctx context.Context) *render {
	return &render{a: a, ctx: ctx, users: map[int64]*store.User{}, commits: map[string]map[string]any{},
		pipelines: map[int64]*store.Pipeline{}, runners: map[int64]map[string]any{}, projects: map[int64]*store.Project{}}
}

func (rc *render) user(id int64) any {
	if id == 0 {
		return nil
	}
	u, ok := rc.users[id]
	if !ok {
		u, _ = rc.a.Store.UserByID(rc.ctx, id)
		rc.users[id] = u
	}
	if u == nil {
		return nil
	}
	return rc.a.userBasic(u)
}

func (rc *render) commit(p *store.Project, sha string) any {
	if m, ok := rc.commits[sha]; ok {
		return m
	}
	var m map[string]any
	if c, err := rc.a.Repos.Commit(rc.ctx, p.FullPath, sha); err == nil {
		m = rc.a.commitJSON(p, c)
	}
	rc.commits[sha] = m
	if m == nil {
		return nil
	}
	return m
}

func (rc *render) pipeline(id int64) *store.Pipeline {
	pl, ok := rc.pipelines[id]
	if !ok {
		pl, _ = rc.a.Store.PipelineByID(rc.ctx, id)
		rc.pipelines[id] = pl
	}
	return pl
}

// project loads a project that a response links to (an upstream or
// downstream pipeline's), or nil when the caller may not see it: a link
// must not reveal a private project's pipelines.
func (rc *render) project(id int64) *store.Project {
	p, ok := rc.projects[id]
	if !ok {
		p, _, _ = rc.a.FindProject(rc.ctx, viewerOf(rc.ctx), strconv.FormatInt(id, 10))
		rc.projects[id] = p
	}
	return p
}

// runnerOnlineWindow is GitLab's ONLINE_CONTACT_TIMEOUT: a runner that
// contacted the server within it counts as online.
const runnerOnlineWindow = 2 * time.Hour

func (rc *render) runner(id int64) any {
	if id == 0 {
		return nil
	}
	if m, ok := rc.runners[id]; ok {
		if m == nil {
			return nil
		}
		return m
	}
	r, err := rc.a.Store.RunnerBriefByID(rc.ctx, id)
	if err != nil {
		rc.runners[id] = nil
		return nil
	}
	online := r.ContactedAt != nil && time.Since(*r.ContactedAt) < runnerOnlineWindow
	status := "offline"
	switch {
	case r.ContactedAt == nil:
		status = "never_contacted"
	case online:
		status = "online"
	}
	m := map[string]any{
		"id": r.ID, "description": r.Description, "ip_address": nil, "active": !r.Paused, "paused": r.Paused,
		"is_shared": r.RunnerType == "instance_type", "runner_type": r.RunnerType, "name": "gitlab-runner",
		"online": online, "status": status,
	}
	rc.runners[id] = m
	return m
}

// statusInfo is one row of GitLab's Gitlab::Ci::Status presentation.
type statusInfo struct{ icon, text, label string }

var statusInfos = map[string]statusInfo{
	"created":              {"status_created", "created", "created"},
	"waiting_for_resource": {"status_pending", "waiting", "waiting for resource"},
	"preparing":            {"status_preparing", "preparing", "preparing"},
	"pending":              {"status_pending", "pending", "pending"},
	"running":              {"status_running", "running", "running"},
	"success":              {"status_success", "passed", "passed"},
	"failed":               {"status_failed", "failed", "failed"},
	"canceled":             {"status_canceled", "canceled", "canceled"},
	"canceling":            {"status_canceled", "canceling", "canceling"},
	"skipped":              {"status_skipped", "skipped", "skipped"},
	"manual":               {"status_manual", "manual", "manual action"},
	"scheduled":            {"status_scheduled", "scheduled", "delayed"},
}

// DetailedStatus renders GitLab's detailed_status object for a pipeline or
// job status; warnings marks a success with allowed failures.
func DetailedStatus(status string, warnings bool, detailsPath string) map[string]any {
	si, ok := statusInfos[status]
	if !ok {
		si = statusInfo{"status_notfound", status, status}
	}
	group := status
	if status == "success" && warnings {
		si = statusInfo{"status_warning", "warning", "passed with warnings"}
		group = "success-with-warnings"
	}
	tooltip := si.label
	return map[string]any{
		"icon": si.icon, "text": si.text, "label": si.label, "group": group, "tooltip": tooltip,
		"has_details": detailsPath != "", "details_path": detailsPath, "illustration": nil,
		"favicon": "/assets/ci_favicons/favicon_" + si.icon + ".png",
	}
}

func (a *API) pipelinePath(p *store.Project, id int64) string {
	return "/" + p.FullPath + "/-/pipelines/" + strconv.FormatInt(id, 10)
}

// PipelineBasicJSON renders GitLab's PipelineBasic entity (list entries,
// a job's pipeline, a bridge's downstream pipeline).
func (a *API) PipelineBasicJSON(p *store.Project, pl *store.Pipeline) map[string]any {
	return map[string]any{
		"id": pl.ID, "iid": pl.IID, "project_id": pl.ProjectID, "sha": pl.SHA, "ref": pl.Ref,
		"status": pl.Status, "source": pl.Source, "name": nilIfEmpty(pl.Name),
		"created_at": isoTime(pl.CreatedAt), "updated_at": isoTime(pl.UpdatedAt),
		"web_url": a.ExternalURL + a.pipelinePath(p, pl.ID),
	}
}

// PipelineJSON renders GitLab's Pipeline entity (GET /pipelines/:id and
// the answers of create, retry and cancel). Triggered pipelines carry a
// Kiln extra, "trigger": {id, short_token, description}; every pipeline
// carries "upstream" and "downstream" links (pipelines_links.go).
func (a *API) PipelineJSON(ctx context.Context, p *store.Project, pl *store.Pipeline) map[string]any {
	return a.newRender(ctx).pipelineJSON(p, pl)
}

func (rc *render) pipelineJSON(p *store.Project, pl *store.Pipeline) map[string]any {
	a := rc.a
	m := a.PipelineBasicJSON(p, pl)
	m["before_sha"] = pl.BeforeSHA
	m["tag"] = pl.Tag
	m["yaml_errors"] = nilIfEmpty(pl.YAMLErrors)
	m["user"] = rc.user(pl.UserID)
	m["started_at"] = isoTimePtr(pl.StartedAt)
	m["finished_at"] = isoTimePtr(pl.FinishedAt)
	m["committed_at"] = isoTimePtr(pl.CommittedAt)
	m["duration"] = intPtr(pl.Duration)
	m["queued_duration"] = intPtr(pl.QueuedDuration)
	m["coverage"] = rc.pipelineCoverage(pl.ID)
	m["detailed_status"] = DetailedStatus(pl.Status, pl.Warnings, a.pipelinePath(p, pl.ID))
	m["archived"] = false
	if pl.TriggerID != 0 {
		desc, _ := a.Store.TriggerDescriptionByID(rc.ctx, pl.TriggerID)
		m["trigger"] = map[string]any{"id": pl.TriggerID, "short_token": pl.TriggerShortToken, "description": desc}
	}
	m["upstream"] = rc.upstreamJSON(pl)
	m["downstream"] = rc.downstreamJSON(pl)
	return m
}

func intPtr(v *int64) any {
	if v == nil {
		return nil
	}
	return *v
}

// pipelineCoverage is GitLab's pipeline coverage: the mean of the latest
// jobs' coverage values, as a string with two decimals, or null.
func (rc *render) pipelineCoverage(pipelineID int64) any {
	jobs, err := rc.pipelineJobs(pipelineID)
	if err != nil {
		return nil
	}
	var sum float64
	n := 0
	for _, j := range jobs {
		if j.Retried || j.Coverage == "" {
			continue
		}
		if f, err := strconv.ParseFloat(j.Coverage, 64); err == nil {
			sum += f
			n++
		}
	}
	if n == 0 {
		return nil
	}
	return fmt.Sprintf("%.2f", sum/float64(n))
}

// RunPipeline creates a pipeline for a user who asked for one (source
// "api" from the REST API). Developer access is checked here for GitLab's
// 403; the engine refuses protected refs the user may not update (a
// *pipeline.CreateError with GitLab's message, 400).
func (a *API) RunPipeline(ctx context.Context, u *store.User, p *store.Project, ref, source string, vars []pipeline.Var) (*store.Pipeline, error) {
	return a.runPipeline(ctx, pipeline.Request{Project: p, Ref: ref, Source: source, User: u, Variables: vars})
}

// runPipeline is RunPipeline for a whole request (an exact commit, ...).
func (a *API) runPipeline(ctx context.Context, req pipeline.Request) (*store.Pipeline, error) {
	if err := a.mayRun(ctx, req.User, req.Project); err != nil {
		return nil, err
	}
	return a.Engine.Create(ctx, req)
}

// mayRun is the API's answer (401/403) for a user who may not create
// pipelines in p at all; the engine decides the rest.
func (a *API) mayRun(ctx context.Context, u *store.User, p *store.Project) error {
	if u == nil {
		return errUnauthorized
	}
	level, err := access.New(a.Store).Level(ctx, p, u)
	if err != nil {
		return err
	}
	if !access.CanCreatePipeline(level) {
		return errForbidden
	}
	return nil
}

func (a *API) createPipeline(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	if err := c.requireUser(); err != nil {
		return err
	}
	p, level, err := a.project(r, c, access.Developer)
	if err != nil {
		return err
	}
	ref, err := c.params.Required("ref")
	if err != nil {
		return err
	}
	if len(ref) > 1024 || strings.ContainsRune(ref, 0) {
		return errParam("ref is invalid")
	}
	vars, err := variablesParam(c.params, "variables")
	if err != nil {
		return err
	}
	if msg, _ := access.PipelineVariablesDenial(level, p.VariablesMinRole, varNames(vars)); msg != "" {
		return errValidation("base", msg)
	}
	if err := c.params.Scalars("sha"); err != nil {
		return err
	}
	sha := c.params.String("sha")
	inputs, err := inputsParam(c.params)
	if err != nil {
		return err
	}
	dryRun, _, err := c.params.Bool("dry_run")
	if err != nil {
		return err
	}
	if dryRun {
		// Create's checks and evaluation; nothing is written.
		if err := a.mayRun(c.ctx, c.user, p); err != nil {
			return err
		}
		pv, err := a.Engine.Preview(c.ctx, pipeline.Request{Project: p, Ref: ref, Source: "api", User: c.user, Variables: vars, CommitSHA: sha, Inputs: inputs})
		if err != nil {
			return createErr(err)
		}
		writeJSON(w, http.StatusOK, PreviewJSON(pv))
		return nil
	}
	key, ie := readIdempotencyKey(r)
	if ie != nil {
		return errMessage(ie.status, ie.msg)
	}
	fp, _ := json.Marshal(map[string]any{"ref": ref, "sha": strings.ToLower(sha), "variables": vars, "inputs": inputs})
	k := newIdemKey(key, p.ID, "user:"+strconv.FormatInt(c.user.ID, 10), fp)
	replay := func() error {
		pl, ie, err := a.idemReplay(c.ctx, k)
		if err != nil {
			return err
		}
		if ie != nil {
			return errMessage(ie.status, ie.msg)
		}
		if pl == nil {
			return nil
		}
		w.Header().Set(hdrReplayed, "true")
		writeJSON(w, http.StatusCreated, a.PipelineJSON(c.ctx, p, pl))
		return errReplayed
	}
	if err := replay(); err != nil {
		return ignoreReplayed(err)
	}
	preq := pipeline.Request{Project: p, Ref: ref, Source: "api", User: c.user, Variables: vars, CommitSHA: sha, Inputs: inputs}
	if k != nil {
		preq.InTx = k.record
	}
	pl, err := a.runPipeline(c.ctx, preq)
	if err != nil {
		if k != nil && errors.Is(err, store.ErrConflict) {
			// A concurrent call with the same key won: answer with its pipeline.
			if err := replay(); err != nil {
				return ignoreReplayed(err)
			}
		}
		return createErr(err)
	}
	writeJSON(w, http.StatusCreated, a.PipelineJSON(c.ctx, p, pl))
	return nil
}

// errReplayed means the answer (a replay) is written.
var errReplayed = errors.New("replayed")

func ignoreReplayed(err error) error {
	if errors.Is(err, errReplayed) {
		return nil
	}
	return err
}

// createErr turns the engine's refusals into GitLab's 400 shape.
func createErr(err error) error {
	var ce *pipeline.CreateError
	if errors.As(err, &ce) {
		return errMessage(http.StatusBadRequest, map[string][]string{"base": ce.Messages})
	}
	if errors.Is(err, pipeline.ErrSkipped) {
		return errMessage(http.StatusBadRequest, map[string][]string{"base": {"Pipeline skipped"}})
	}
	return err
}

var variableKeyRE = keyRE

// variablesParam reads a list of {key, value, variable_type} objects (JSON
// or variables[][key] form fields), as pipeline creation and job play take.
func variablesParam(ps *Params, name string) ([]pipeline.Var, error) {
	raw := ps.Value(name)
	if raw == nil {
		return nil, nil
	}
	list, ok := raw.([]any)
	if !ok {
		return nil, errParam(name + " is invalid")
	}
	if len(list) > maxPipelineVariables {
		return nil, errParam(fmt.Sprintf("%s is invalid (at most %d variables)", name, maxPipelineVariables))
	}
	out := make([]pipeline.Var, 0, len(list))
	seen := map[string]bool{}
	for _, e := range list {
		m, ok := e.(map[string]any)
		if !ok {
			return nil, errParam(name + " is invalid")
		}
		key, ok := m["key"].(string)
		if !ok || key == "" {
			return nil, errParam(name + "[key] is missing")
		}
		if !variableKeyRE.MatchString(key) || len(key) > 255 {
			return nil, errValidation("variables", "key can contain only letters, digits and '_'.")
		}
		var value string
		switch v := m["value"].(type) {
		case nil:
		case string:
			value = v
		default:
			if s, ok := (&Params{v: map[string]any{"v": v}}).Str("v"); ok {
				value = s
			} else {
				return nil, errParam(name + "[value] is invalid")
			}
		}
		if len(value) > maxVariableValue {
			return nil, errParam(name + "[value] is too long")
		}
		vt, _ := m["variable_type"].(string)
		switch vt {
		case "", "env_var":
		case "file":
		default:
			return nil, errParam(name + "[variable_type] does not have a valid value")
		}
		if seen[key] {
			// GitLab keeps the last of repeated keys; so does Kiln, in place.
			for i := range out {
				if out[i].Key == key {
					out[i] = pipeline.Var{Key: key, Value: value, File: vt == "file"}
				}
			}
			continue
		}
		seen[key] = true
		out = append(out, pipeline.Var{Key: key, Value: value, File: vt == "file"})
	}
	return out, nil
}

// pipelineOf loads :pipeline_id of the project, 404 when it belongs to
// another project (so ids of other projects' pipelines do not leak).
func (a *API) pipelineOf(r *http.Request, c *reqCtx, p *store.Project) (*store.Pipeline, error) {
	id, err := strconv.ParseInt(r.PathValue("pipeline_id"), 10, 64)
	if err != nil || id <= 0 {
		if err != nil {
			return nil, errParam("pipeline_id is invalid")
		}
		return nil, errNotFound("")
	}
	pl, err := a.Store.PipelineByID(c.ctx, id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && pl.ProjectID != p.ID) {
		return nil, errNotFound("")
	}
	return pl, err
}

// readLevel is what reading pipelines and jobs needs: reporter on private
// projects; anyone who can see a public or internal one (project() maps
// that to reporter).
const readLevel = access.Reporter

func (a *API) listPipelines(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	p, _, err := a.project(r, c, readLevel)
	if err != nil {
		return err
	}
	page, err := paging(r)
	if err != nil {
		return err
	}
	f := store.PipelineFilter{ProjectID: p.ID}
	ps := c.params
	if s := ps.String("scope"); s != "" {
		if !pipelineScopes[s] {
			return errParam("scope does not have a valid value")
		}
		f.Scope = s
	}
	if s := ps.String("status"); s != "" {
		if !pipelineStatuses[s] {
			return errParam("status does not have a valid value")
		}
		f.Status = []string{s}
	}
	if s := ps.String("source"); s != "" {
		if !pipelineSources[s] {
			return errParam("source does not have a valid value")
		}
		f.Source = s
	}
	if s := ps.String("order_by"); s != "" {
		if !pipelineOrders[s] {
			return errParam("order_by does not have a valid value")
		}
		f.OrderBy = s
	}
	if s := ps.String("sort"); s != "" {
		if s != "asc" && s != "desc" {
			return errParam("sort does not have a valid value")
		}
		f.Sort = s
	}
	f.Ref, f.SHA = ps.String("ref"), ps.String("sha")
	if len(f.Ref) > 1024 || len(f.SHA) > 64 {
		return errParam("ref is invalid")
	}
	if f.UpdatedAfter, err = ps.Date("updated_after"); err != nil {
		return err
	}
	if f.UpdatedBefore, err = ps.Date("updated_before"); err != nil {
		return err
	}
	if name := ps.String("username"); name != "" {
		u, err := a.Store.UserByUsername(c.ctx, name)
		if errors.Is(err, store.ErrNotFound) {
			// GitLab filters by a user that does not exist to nothing.
			setPagination(w, r, page, 0)
			writeJSON(w, http.StatusOK, []any{})
			return nil
		} else if err != nil {
			return err
		}
		f.UserID = u.ID
	}
	pls, total, err := a.Store.ListPipelines(c.ctx, f, page)
	if err != nil {
		return err
	}
	out := make([]map[string]any, 0, len(pls))
	for _, pl := range pls {
		out = append(out, a.PipelineBasicJSON(p, pl))
	}
	setPagination(w, r, page, total)
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) getPipeline(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	p, _, err := a.project(r, c, readLevel)
	if err != nil {
		return err
	}
	pl, err := a.pipelineOf(r, c, p)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, a.PipelineJSON(c.ctx, p, pl))
	return nil
}

func (a *API) latestPipeline(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	p, _, err := a.project(r, c, readLevel)
	if err != nil {
		return err
	}
	ref := c.params.String("ref")
	if ref == "" {
		ref = p.DefaultBranch
	}
	res, err := a.Repos.ResolveRef(c.ctx, p.FullPath, ref)
	if err != nil {
		if errors.Is(err, gitrepo.ErrRefNotFound) || errors.Is(err, gitrepo.ErrInvalidRef) || errors.Is(err, gitrepo.ErrRepoNotFound) ||
			errors.Is(err, gitrepo.ErrRefIsSHA) || errors.Is(err, gitrepo.ErrRefIsHEAD) || errors.Is(err, gitrepo.ErrInvalidPath) {
			return errNotFound("Pipeline")
		}
		return err
	}
	pl, err := a.Store.LatestPipelineForRef(c.ctx, p.ID, res.Name, res.SHA)
	if errors.Is(err, store.ErrNotFound) {
		return errNotFound("Pipeline")
	} else if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, a.PipelineJSON(c.ctx, p, pl))
	return nil
}

// actionErr answers the engine's refusal of an actor with 403.
func actionErr(err error) error {
	if errors.Is(err, pipeline.ErrForbidden) {
		return errForbidden
	}
	return err
}

// pipelineForAction resolves project and pipeline for a state change and
// checks the caller may change it.
func (a *API) pipelineForAction(r *http.Request, c *reqCtx) (*store.Project, *store.Pipeline, error) {
	if err := c.requireUser(); err != nil {
		return nil, nil, err
	}
	p, _, err := a.project(r, c, access.Developer)
	if err != nil {
		return nil, nil, err
	}
	pl, err := a.pipelineOf(r, c, p)
	if err != nil {
		return nil, nil, err
	}
	if err := a.Engine.MayAct(c.ctx, c.user, pl); err != nil {
		return nil, nil, actionErr(err)
	}
	return p, pl, nil
}

func (a *API) deletePipeline(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	if err := c.requireUser(); err != nil {
		return err
	}
	p, _, err := a.project(r, c, access.Owner)
	if err != nil {
		return err
	}
	pl, err := a.pipelineOf(r, c, p)
	if err != nil {
		return err
	}
	if err := a.Store.Write(c.ctx, func(tx *store.Tx) error { return tx.DeletePipeline(c.ctx, pl.ID) }); err != nil {
		return err
	}
	a.filesDeleted(c.ctx)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) retryPipeline(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	p, pl, err := a.pipelineForAction(r, c)
	if err != nil {
		return err
	}
	if err := a.Engine.RetryPipeline(c.ctx, c.user, pl.ID); err != nil {
		if errors.Is(err, pipeline.ErrNotRetryable) {
			return errMessage(http.StatusForbidden, "403 Forbidden - Pipeline is not retryable")
		}
		return actionErr(err)
	}
	return a.writePipeline(w, c, p, pl.ID)
}

func (a *API) cancelPipeline(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	p, pl, err := a.pipelineForAction(r, c)
	if err != nil {
		return err
	}
	if err := a.Engine.CancelPipeline(c.ctx, c.user, pl.ID); err != nil {
		return actionErr(err)
	}
	return a.writePipeline(w, c, p, pl.ID)
}

// writePipeline answers a state change with the pipeline as it is now
// (Grape's POST default status, 201, as GitLab answers).
func (a *API) writePipeline(w http.ResponseWriter, c *reqCtx, p *store.Project, id int64) error {
	pl, err := a.Store.PipelineByID(c.ctx, id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, a.PipelineJSON(c.ctx, p, pl))
	return nil
}

// jobScopes are the values of the jobs APIs' scope filter.
var jobScopes = map[string]bool{"created": true, "waiting_for_resource": true, "preparing": true, "pending": true, "running": true,
	"success": true, "failed": true, "canceled": true, "canceling": true, "skipped": true, "manual": true, "scheduled": true}

func scopeParam(ps *Params) ([]string, error) {
	scopes, _, err := ps.List("scope")
	if err != nil {
		return nil, err
	}
	if len(scopes) > len(jobScopes) {
		return nil, errParam("scope does not have a valid value")
	}
	for _, s := range scopes {
		if !jobScopes[s] {
			return nil, errParam("scope does not have a valid value")
		}
	}
	return scopes, nil
}

func (a *API) listPipelineJobs(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	return a.listPipelineKind(w, r, c, "build")
}

func (a *API) listPipelineBridges(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	return a.listPipelineKind(w, r, c, "bridge")
}

func (a *API) listPipelineKind(w http.ResponseWriter, r *http.Request, c *reqCtx, kind string) error {
	p, _, err := a.project(r, c, readLevel)
	if err != nil {
		return err
	}
	pl, err := a.pipelineOf(r, c, p)
	if err != nil {
		return err
	}
	page, err := paging(r)
	if err != nil {
		return err
	}
	scopes, err := scopeParam(c.params)
	if err != nil {
		return err
	}
	retried, _, err := c.params.Bool("include_retried")
	if err != nil {
		return err
	}
	jobs, total, err := a.Store.ListJobs(c.ctx, store.JobFilter{ProjectID: p.ID, PipelineID: pl.ID, Status: scopes, IncludeRetried: retried, Kind: kind}, page)
	if err != nil {
		return err
	}
	rc := a.newRender(c.ctx)
	rc.pipelines[pl.ID] = pl
	out := make([]map[string]any, 0, len(jobs))
	for _, j := range jobs {
		if kind == "bridge" {
			out = append(out, rc.bridgeJSON(p, j))
		} else {
			out = append(out, rc.jobJSON(p, j))
		}
	}
	setPagination(w, r, page, total)
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) getPipelineVariables(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	if err := c.requireUser(); err != nil {
		return err
	}
	// Pipeline variables can hold secrets passed by whoever ran the
	// pipeline; like GitLab, only maintainers may read them back.
	p, _, err := a.project(r, c, access.Maintainer)
	if err != nil {
		return err
	}
	pl, err := a.pipelineOf(r, c, p)
	if err != nil {
		return err
	}
	vars, err := a.Engine.PipelineVariables(c.ctx, pl.ID)
	if err != nil {
		return err
	}
	out := make([]map[string]any, 0, len(vars))
	for _, v := range vars {
		vt := "env_var"
		if v.File {
			vt = "file"
		}
		out = append(out, map[string]any{"key": v.Key, "value": v.Value, "variable_type": vt})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// inputsParam reads `inputs`: a JSON object or inputs[NAME]=value form
// fields, for the configuration's `spec: inputs:` (the engine checks them).
func inputsParam(ps *Params) (map[string]any, error) {
	switch v := ps.Value("inputs").(type) {
	case nil:
		return nil, nil
	case map[string]any:
		if len(v) == 0 {
			return nil, nil
		}
		return v, nil
	case string:
		if v == "" {
			return nil, nil
		}
	}
	return nil, errParam("inputs is invalid")
}

// varNames are the keys of vars.
func varNames(vars []pipeline.Var) []string {
	out := make([]string, 0, len(vars))
	for _, v := range vars {
		out = append(out, v.Key)
	}
	return out
}
