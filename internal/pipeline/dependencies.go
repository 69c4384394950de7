package pipeline

import (
	"context"
	"slices"
	"strconv"

	"github.com/kilnci/kiln/internal/store"
)

// DependencyJobs lists the jobs whose artifacts, and whose
// artifacts:reports:dotenv variables, job j receives, as GitLab's
// Ci::BuildDependencies decides: with needs, the needed jobs whose
// artifacts are wanted (needs:artifacts, true by default); otherwise every
// job of an earlier stage; dependencies: [names] then keeps only those
// named, and dependencies: [] keeps none. Only the latest (not retried)
// build job of each name counts. rows are the pipeline's jobs in stage
// order; the result keeps that order.
func DependencyJobs(rows []*store.Job, j *store.Job, sp *JobSpec) []*store.Job {
	if sp.DependenciesSet && len(sp.Dependencies) == 0 {
		return nil
	}
	latest := map[string]*store.Job{}
	for _, r := range rows {
		if r.Retried || r.Kind != "build" || r.ID == j.ID {
			continue
		}
		if cur, ok := latest[r.Name]; !ok || r.ID > cur.ID {
			latest[r.Name] = r
		}
	}
	want := map[string]bool{}
	if sp.NeedsSet {
		for _, n := range sp.Needs {
			if n.Artifacts {
				want[n.Job] = true
			}
		}
	}
	var out []*store.Job
	for _, r := range rows {
		if latest[r.Name] != r {
			continue
		}
		if sp.NeedsSet && !want[r.Name] {
			continue
		}
		if !sp.NeedsSet && r.StageIdx >= j.StageIdx {
			continue
		}
		if sp.DependenciesSet && !slices.Contains(sp.Dependencies, r.Name) {
			continue
		}
		out = append(out, r)
	}
	return out
}

// DependencyDotenv returns the variables job j inherits from the dotenv
// reports of its dependencies (DependencyJobs), in the order GitLab layers
// them: by stage, then job, then line; a later definition of a key wins.
// A child pipeline's job also inherits from the parent pipeline's jobs it
// names with needs:pipeline: $PARENT_PIPELINE_ID (artifacts: true, the
// default), after its own pipeline's.
func (e *Engine) DependencyDotenv(ctx context.Context, j *store.Job, sp *JobSpec) ([]RunnerVar, error) {
	rows, err := e.Store.JobsOfPipeline(ctx, j.PipelineID)
	if err != nil {
		return nil, err
	}
	out, err := e.dotenvOf(ctx, j.PipelineID, DependencyJobs(rows, j, sp))
	if err != nil || len(sp.PipelineNeeds) == 0 {
		return out, err
	}
	pl, err := e.Store.PipelineByID(ctx, j.PipelineID)
	if err != nil {
		return nil, err
	}
	up := pl.UpstreamPipelineID
	if up == 0 || pl.Source != "parent_pipeline" {
		return out, nil
	}
	upRows, err := e.Store.JobsOfPipeline(ctx, up)
	if err != nil {
		return nil, err
	}
	var deps []*store.Job
	for _, n := range sp.PipelineNeeds {
		if !n.Artifacts || !parentPipelineRef(n.Pipeline, up) {
			continue
		}
		var latest *store.Job
		for _, r := range upRows {
			if r.Name == n.Job && r.Kind == "build" && !r.Retried && (latest == nil || r.ID > latest.ID) {
				latest = r
			}
		}
		if latest != nil && !slices.Contains(deps, latest) {
			deps = append(deps, latest)
		}
	}
	more, err := e.dotenvOf(ctx, up, deps)
	return append(out, more...), err
}

// parentPipelineRef reports whether a needs:pipeline value names the
// parent pipeline: $PARENT_PIPELINE_ID (the form GitLab documents) or its
// id written out.
func parentPipelineRef(v string, parentID int64) bool {
	switch v {
	case "$PARENT_PIPELINE_ID", "${PARENT_PIPELINE_ID}", strconv.FormatInt(parentID, 10):
		return true
	}
	return false
}

// dotenvOf lists the dotenv variables of deps, jobs of pipeline
// pipelineID, in the pipeline's order.
func (e *Engine) dotenvOf(ctx context.Context, pipelineID int64, deps []*store.Job) ([]RunnerVar, error) {
	if len(deps) == 0 {
		return nil, nil
	}
	ids := map[int64]bool{}
	for _, d := range deps {
		ids[d.ID] = true
	}
	all, err := e.Store.PipelineDotenv(ctx, pipelineID)
	if err != nil {
		return nil, err
	}
	var out []RunnerVar
	for _, v := range all {
		if ids[v.JobID] {
			out = append(out, RunnerVar{Key: v.Key, Value: v.Value})
		}
	}
	return out, nil
}
