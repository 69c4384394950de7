package api

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/kilnci/kiln/internal/access"
	"github.com/kilnci/kiln/internal/pipeline"
	"github.com/kilnci/kiln/internal/store"
)

// The trace (GET /jobs/:id/trace) and artifacts endpoints belong to the
// runner area (internal/api/runners.go), which owns trace and artifact
// storage.
func (a *API) jobRoutes() {
	a.handle("GET /api/v4/projects/{id}/jobs", a.listProjectJobs)
	a.handle("GET /api/v4/projects/{id}/jobs/{job_id}", a.getJob)
	a.handle("POST /api/v4/projects/{id}/jobs/{job_id}/play", a.playJob)
	a.handle("POST /api/v4/projects/{id}/jobs/{job_id}/retry", a.retryJob)
	a.handle("POST /api/v4/projects/{id}/jobs/{job_id}/cancel", a.cancelJob)
	a.handle("POST /api/v4/projects/{id}/jobs/{job_id}/erase", a.eraseJob)
}

// JobJSON renders GitLab's Job entity (kind "build"), plus Kiln's
// "triggered" extra: whether the job's pipeline came from a trigger token.
func (a *API) JobJSON(ctx context.Context, p *store.Project, j *store.Job) map[string]any {
	return a.newRender(ctx).jobJSON(p, j)
}

// BridgeJSON renders GitLab's Bridge entity (a trigger: job) with its
// downstream pipeline.
func (a *API) BridgeJSON(ctx context.Context, p *store.Project, j *store.Job) map[string]any {
	return a.newRender(ctx).bridgeJSON(p, j)
}

func (a *API) jobPath(p *store.Project, id int64) string {
	return "/" + p.FullPath + "/-/jobs/" + strconv.FormatInt(id, 10)
}

// jobDurations computes duration and queued_duration in seconds as GitLab
// does: a running job's duration grows until it finishes, a pending job's
// queued time until it starts.
func jobDurations(j *store.Job, now time.Time) (duration, queued any) {
	if j.StartedAt != nil {
		end := now
		if j.FinishedAt != nil {
			end = *j.FinishedAt
		}
		duration = end.Sub(*j.StartedAt).Seconds()
	}
	if j.QueuedAt != nil {
		end := now
		if j.StartedAt != nil {
			end = *j.StartedAt
		} else if j.FinishedAt != nil {
			end = *j.FinishedAt
		}
		if d := end.Sub(*j.QueuedAt).Seconds(); d >= 0 {
			queued = d
		}
	}
	return duration, queued
}

// jobBasic holds the fields Job and Bridge entities share.
func (rc *render) jobBasic(p *store.Project, j *store.Job) map[string]any {
	a := rc.a
	pl := rc.pipeline(j.PipelineID)
	dur, qdur := jobDurations(j, time.Now())
	var coverage any
	if f, err := strconv.ParseFloat(j.Coverage, 64); err == nil {
		coverage = f
	}
	m := map[string]any{
		"id": j.ID, "status": j.Status, "stage": j.Stage, "name": j.Name,
		"coverage": coverage, "allow_failure": j.AllowFailure,
		"created_at": isoTime(j.CreatedAt), "started_at": isoTimePtr(j.StartedAt), "finished_at": isoTimePtr(j.FinishedAt),
		"erased_at": isoTimePtr(j.ErasedAt), "duration": dur, "queued_duration": qdur,
		"user": rc.user(j.UserID), "web_url": a.ExternalURL + a.jobPath(p, j.ID),
		"project":        map[string]any{"ci_job_token_scope_enabled": p.JobTokenAllowlist},
		"failure_reason": nil, "archived": false,
	}
	if j.Status == "failed" && j.FailureReason != "" {
		m["failure_reason"] = j.FailureReason
	}
	// GitLab's "stuck": a pending job that no online runner can take.
	m["stuck"] = j.Status == "pending" && j.Kind != "bridge" && a.IsJobStuck(rc.ctx, j)
	if pl != nil {
		m["ref"], m["tag"] = pl.Ref, pl.Tag
		m["commit"] = rc.commit(p, pl.SHA)
		m["triggered"] = pl.TriggerID != 0
	} else {
		m["ref"], m["tag"], m["commit"], m["triggered"] = "", false, nil, false
	}
	return m
}

func (rc *render) jobJSON(p *store.Project, j *store.Job) map[string]any {
	m := rc.jobBasic(p, j)
	if pl := rc.pipeline(j.PipelineID); pl != nil {
		m["pipeline"] = map[string]any{"id": pl.ID, "iid": pl.IID, "project_id": pl.ProjectID, "ref": pl.Ref, "sha": pl.SHA,
			"status": pl.Status, "source": pl.Source, "created_at": isoTime(pl.CreatedAt), "updated_at": isoTime(pl.UpdatedAt),
			"web_url": rc.a.ExternalURL + rc.a.pipelinePath(p, pl.ID)}
	} else {
		m["pipeline"] = nil
	}
	tags := j.Tags
	if tags == nil {
		tags = []string{}
	}
	m["tag_list"] = tags
	m["runner"] = rc.runner(j.RunnerID)
	m["runner_manager"] = nil
	artifacts := []map[string]any{}
	if j.ArtifactsFile != "" {
		name := path.Base(j.ArtifactsFile)
		m["artifacts_file"] = map[string]any{"filename": name, "size": j.ArtifactsSize}
		artifacts = append(artifacts, map[string]any{"file_type": "archive", "size": j.ArtifactsSize, "filename": name, "file_format": "zip"})
	}
	if j.TraceSize > 0 {
		artifacts = append(artifacts, map[string]any{"file_type": "trace", "size": j.TraceSize, "filename": "job.log", "file_format": nil})
	}
	m["artifacts"] = artifacts
	m["artifacts_expire_at"] = isoTimePtr(j.ArtifactsExpireAt)
	return m
}

func (rc *render) bridgeJSON(p *store.Project, j *store.Job) map[string]any {
	m := rc.jobBasic(p, j)
	if pl := rc.pipeline(j.PipelineID); pl != nil {
		m["pipeline"] = rc.a.PipelineBasicJSON(p, pl)
	} else {
		m["pipeline"] = nil
	}
	m["downstream_pipeline"] = nil
	if j.DownstreamPipelineID != 0 {
		if dpl := rc.pipeline(j.DownstreamPipelineID); dpl != nil {
			if dp := rc.project(dpl.ProjectID); dp != nil {
				m["downstream_pipeline"] = rc.a.PipelineBasicJSON(dp, dpl)
			}
		}
	}
	return m
}

func (a *API) listProjectJobs(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	p, _, err := a.project(r, c, readLevel)
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
	f := store.JobFilter{ProjectID: p.ID, Status: scopes, IncludeRetried: retried, Kind: "build"}
	keyset := c.params.String("pagination") == "keyset"
	if keyset {
		// GitLab's keyset pagination for project jobs: newest first, the
		// next page's URL in the Link header, no totals.
		if ob := c.params.String("order_by"); ob != "" && ob != "id" {
			return errParam("order_by does not have a valid value for keyset pagination")
		}
		if so := c.params.String("sort"); so != "" && so != "desc" {
			return errParam("sort does not have a valid value for keyset pagination")
		}
		f.Keyset = true
		if cur := c.params.String("cursor"); cur != "" {
			raw, derr := base64.RawURLEncoding.DecodeString(cur)
			id, perr := strconv.ParseInt(strings.TrimPrefix(string(raw), "id_before:"), 10, 64)
			if derr != nil || perr != nil || id <= 0 {
				return errParam("cursor is invalid")
			}
			f.BeforeID = id
		}
	}
	jobs, total, err := a.Store.ListJobs(c.ctx, f, page)
	if err != nil {
		return err
	}
	more := false
	if keyset && len(jobs) > page.Limit() {
		jobs, more = jobs[:page.Limit()], true
	}
	rc := a.newRender(c.ctx)
	out := make([]map[string]any, 0, len(jobs))
	for _, j := range jobs {
		out = append(out, rc.jobJSON(p, j))
	}
	if keyset {
		if more {
			u := *r.URL
			q := u.Query()
			q.Del("private_token")
			q.Set("per_page", strconv.Itoa(page.PerPage))
			q.Set("cursor", base64.RawURLEncoding.EncodeToString([]byte("id_before:"+strconv.FormatInt(jobs[len(jobs)-1].ID, 10))))
			u.RawQuery = q.Encode()
			w.Header().Set("Link", `<`+requestBase(r)+u.EscapedPath()+"?"+u.RawQuery+`>; rel="next"`)
		}
	} else {
		setPagination(w, r, page, total)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// jobOf loads :job_id of the project (404 for other projects' jobs).
func (a *API) jobOf(r *http.Request, c *reqCtx, p *store.Project) (*store.Job, error) {
	id, err := strconv.ParseInt(r.PathValue("job_id"), 10, 64)
	if err != nil {
		return nil, errParam("job_id is invalid")
	}
	j, err := a.Store.JobByID(c.ctx, id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && j.ProjectID != p.ID) {
		return nil, errNotFound("")
	}
	return j, err
}

func (a *API) getJob(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	p, _, err := a.project(r, c, readLevel)
	if err != nil {
		return err
	}
	j, err := a.jobOf(r, c, p)
	if err != nil {
		return err
	}
	a.writeJob(w, c, p, j, http.StatusOK)
	return nil
}

func (a *API) writeJob(w http.ResponseWriter, c *reqCtx, p *store.Project, j *store.Job, status int) {
	if j.Kind == "bridge" {
		writeJSON(w, status, a.BridgeJSON(c.ctx, p, j))
		return
	}
	writeJSON(w, status, a.JobJSON(c.ctx, p, j))
}

// jobForAction resolves a job for a state change: developer access, or
// maintainer on protected refs (see actionLevel).
func (a *API) jobForAction(r *http.Request, c *reqCtx) (*store.Project, *store.Job, error) {
	if err := c.requireUser(); err != nil {
		return nil, nil, err
	}
	p, _, err := a.project(r, c, access.Developer)
	if err != nil {
		return nil, nil, err
	}
	j, err := a.jobOf(r, c, p)
	if err != nil {
		return nil, nil, err
	}
	pl, err := a.Store.PipelineByID(c.ctx, j.PipelineID)
	if err != nil {
		return nil, nil, err
	}
	// The engine decides (protected refs need more than Developer).
	if err := a.Engine.MayAct(c.ctx, c.user, pl); err != nil {
		return nil, nil, actionErr(err)
	}
	return p, j, nil
}

// reloadJob answers a state change with the job as it is now.
func (a *API) reloadJob(w http.ResponseWriter, c *reqCtx, p *store.Project, id int64) error {
	j, err := a.Store.JobByID(c.ctx, id)
	if err != nil {
		return err
	}
	a.writeJob(w, c, p, j, http.StatusCreated)
	return nil
}

func (a *API) playJob(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	p, j, err := a.jobForAction(r, c)
	if err != nil {
		return err
	}
	vars, err := variablesParam(c.params, "job_variables_attributes")
	if err != nil {
		return err
	}
	if err := a.Engine.PlayJob(c.ctx, c.user, j.ID, vars); err != nil {
		if errors.Is(err, pipeline.ErrNotPlayable) {
			return errBadRequest("Unplayable Job")
		}
		return actionErr(err)
	}
	return a.reloadJob(w, c, p, j.ID)
}

func (a *API) retryJob(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	p, j, err := a.jobForAction(r, c)
	if err != nil {
		return err
	}
	nj, err := a.Engine.RetryJob(c.ctx, c.user, j.ID)
	if err != nil {
		if errors.Is(err, pipeline.ErrNotRetryable) {
			return errMessage(http.StatusForbidden, "403 Forbidden - Job is not retryable")
		}
		return actionErr(err)
	}
	a.writeJob(w, c, p, nj, http.StatusCreated)
	return nil
}

func (a *API) cancelJob(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	p, j, err := a.jobForAction(r, c)
	if err != nil {
		return err
	}
	// Like GitLab, canceling a job that can no longer be canceled answers
	// with the job unchanged rather than an error.
	if err := a.Engine.CancelJob(c.ctx, c.user, j.ID); err != nil && !errors.Is(err, pipeline.ErrNotCancelable) {
		return actionErr(err)
	}
	return a.reloadJob(w, c, p, j.ID)
}

func (a *API) eraseJob(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	p, j, err := a.jobForAction(r, c)
	if err != nil {
		return err
	}
	switch j.Status {
	case "success", "failed", "canceled":
	default:
		return errMessage(http.StatusForbidden, "403 Forbidden - Job is not erasable!")
	}
	if j.Kind != "build" {
		return errMessage(http.StatusForbidden, "403 Forbidden - Job is not erasable!")
	}
	// As GitLab: a developer erases only their own jobs; maintainers any.
	if j.UserID != c.user.ID && !c.user.IsAdmin {
		if level, err := access.New(a.Store).Level(c.ctx, p, c.user); err != nil || !access.At(level, access.Maintainer) {
			return errForbidden
		}
	}
	if err := a.Store.Write(c.ctx, func(tx *store.Tx) error { return tx.EraseJob(c.ctx, j.ID) }); err != nil {
		return err
	}
	a.filesDeleted(c.ctx)
	return a.reloadJob(w, c, p, j.ID)
}
