package api

import "github.com/kilnci/kiln/internal/store"

// pipelineJobs memoises a pipeline's jobs for one response (coverage and
// downstream links both read them).
func (rc *render) pipelineJobs(pipelineID int64) ([]*store.Job, error) {
	if jobs, ok := rc.jobs[pipelineID]; ok {
		return jobs, nil
	}
	jobs, err := rc.a.Store.JobsOfPipeline(rc.ctx, pipelineID)
	if err != nil {
		return nil, err
	}
	if rc.jobs == nil {
		rc.jobs = map[int64][]*store.Job{}
	}
	rc.jobs[pipelineID] = jobs
	return jobs, nil
}

// upstreamJSON is Kiln's "upstream" extra of a pipeline created by another
// one (a bridge's child or multi-project pipeline, or a CI_JOB_TOKEN
// trigger): {pipeline_id, job_id, project_id, web_url}; null otherwise.
// project_id and web_url are null when the upstream pipeline is gone.
func (rc *render) upstreamJSON(pl *store.Pipeline) any {
	if pl.UpstreamPipelineID == 0 && pl.UpstreamJobID == 0 {
		return nil
	}
	m := map[string]any{"pipeline_id": nilIfZero(pl.UpstreamPipelineID), "job_id": nilIfZero(pl.UpstreamJobID), "project_id": nil, "web_url": nil}
	if pl.UpstreamPipelineID != 0 {
		if up := rc.pipeline(pl.UpstreamPipelineID); up != nil {
			m["project_id"] = up.ProjectID
			if p := rc.project(up.ProjectID); p != nil {
				m["web_url"] = rc.a.ExternalURL + rc.a.pipelinePath(p, up.ID)
			}
		}
	}
	return m
}

// downstreamJSON is Kiln's "downstream" extra: the pipelines the pipeline's
// bridges created (retried bridges' too), oldest first, each as GitLab's
// PipelineBasic (the shape of a bridge's downstream_pipeline) plus the
// bridge that made it: "bridge": {id, name}.
func (rc *render) downstreamJSON(pl *store.Pipeline) []map[string]any {
	out := []map[string]any{}
	jobs, err := rc.pipelineJobs(pl.ID)
	if err != nil {
		return out
	}
	for _, j := range jobs {
		if j.Kind != "bridge" || j.DownstreamPipelineID == 0 {
			continue
		}
		dpl := rc.pipeline(j.DownstreamPipelineID)
		if dpl == nil {
			continue
		}
		dp := rc.project(dpl.ProjectID)
		if dp == nil {
			continue
		}
		m := rc.a.PipelineBasicJSON(dp, dpl)
		m["bridge"] = map[string]any{"id": j.ID, "name": j.Name}
		out = append(out, m)
	}
	return out
}
