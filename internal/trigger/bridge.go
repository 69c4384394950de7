package trigger

import (
	"context"
	"errors"
	"log/slog"
	"regexp"
	"strings"
	"sync"

	"github.com/kilnci/kiln/internal/access"
	"github.com/kilnci/kiln/internal/pipeline"
	"github.com/kilnci/kiln/internal/store"
)

// MaxDepth is how many upstream hops a pipeline may have. A project whose
// pipeline triggers itself (by `trigger:` or by curl with CI_JOB_TOKEN)
// would otherwise run forever; GitLab bounds hierarchies too.
const MaxDepth = 10

// Depth counts pl's upstream pipelines (0 for a pipeline nobody triggered).
func Depth(ctx context.Context, st *store.Store, pl *store.Pipeline) int {
	d := 0
	for id := pl.UpstreamPipelineID; id != 0 && d <= MaxDepth; d++ {
		up, err := st.PipelineByID(ctx, id)
		if err != nil {
			break
		}
		id = up.UpstreamPipelineID
	}
	return d
}

// Bridges runs `trigger:` jobs: it creates the downstream pipeline when a
// bridge becomes pending, and with strategy: depend mirrors the
// downstream's final status onto the bridge.
type Bridges struct {
	Store  *store.Store
	Engine *pipeline.Engine
	Log    *slog.Logger

	// inflight holds the bridges whose downstream this process is creating
	// right now, so that the recovery sweep and the after-commit hook never
	// create two for one bridge.
	inflight sync.Map
}

// bridgeFailure is a bridge that could not create its downstream, with
// GitLab's failure_reason and a message for the log.
type bridgeFailure struct{ reason, msg string }

func (f *bridgeFailure) Error() string { return f.msg }

// Pending creates the downstream pipeline of a bridge that became pending
// (Engine.BridgePending). Failures fail the bridge with a reason.
func (b *Bridges) Pending(ctx context.Context, jobID int64) {
	if _, busy := b.inflight.LoadOrStore(jobID, true); busy {
		return
	}
	defer b.inflight.Delete(jobID)
	j, err := b.Store.JobByID(ctx, jobID)
	if err != nil || j.Kind != "bridge" || j.Status != "pending" {
		return
	}
	var downstream *store.Pipeline
	var depend bool
	if pl, perr := b.Store.PipelineByUpstreamJob(ctx, jobID); perr == nil {
		// Created before a crash, never linked: link it rather than make
		// a second one (the recovery sweep calls Pending again).
		sp, _ := pipeline.ParseSpec(j.Spec)
		downstream, depend = pl, sp != nil && sp.Trigger != nil && waits(sp.Trigger.Strategy)
	} else {
		downstream, depend, err = b.create(ctx, j)
	}
	if err != nil {
		var f *bridgeFailure
		if !errors.As(err, &f) {
			b.Log.Error("bridge failed", "job", jobID, "err", err)
			f = &bridgeFailure{reason: "downstream_pipeline_creation_failed"}
		} else {
			b.Log.Info("bridge could not create its downstream pipeline", "job", jobID, "reason", f.reason, "detail", f.msg)
		}
		if err := b.Engine.FinishBridge(ctx, jobID, "failed", f.reason); err != nil {
			b.Log.Error("failing bridge", "job", jobID, "err", err)
		}
		return
	}
	if err := b.Engine.BridgeCreated(ctx, jobID, downstream.ID, depend); err != nil {
		b.Log.Error("linking bridge", "job", jobID, "err", err)
		return
	}
	b.Log.Info("downstream pipeline created", "job", jobID, "pipeline", downstream.ID, "project", downstream.ProjectID, "source", downstream.Source)
	if depend && downstreamDone(downstream.Status) {
		// It finished while we were linking; PipelineFinished may have
		// found the bridge still pending, so look again.
		b.Finished(ctx, downstream.ID)
	}
}

func downstreamDone(s string) bool {
	return s == "success" || s == "failed" || s == "canceled" || s == "skipped"
}

func (b *Bridges) create(ctx context.Context, j *store.Job) (*store.Pipeline, bool, error) {
	sp, err := pipeline.ParseSpec(j.Spec)
	if err != nil || sp.Trigger == nil {
		return nil, false, &bridgeFailure{"invalid_bridge_trigger", "bridge without a trigger"}
	}
	tr := sp.Trigger
	up, err := b.Store.PipelineByID(ctx, j.PipelineID)
	if err != nil {
		return nil, false, err
	}
	if Depth(ctx, b.Store, up) >= MaxDepth {
		return nil, false, &bridgeFailure{"reached_max_pipeline_hierarchy_size", "too many upstream pipelines"}
	}
	// The downstream runs as the bridge's user: whoever ran (or last
	// retried or played) it, as on GitLab.
	uid := j.UserID
	if uid == 0 {
		uid = up.UserID
	}
	var user *store.User
	if uid != 0 {
		if user, err = b.Store.UserByID(ctx, uid); err != nil && !errors.Is(err, store.ErrNotFound) {
			return nil, false, err
		}
	}
	if user == nil || user.State != "active" {
		return nil, false, &bridgeFailure{"insufficient_bridge_permissions", "the upstream pipeline has no active user"}
	}
	var vars []pipeline.Var
	if tr.Forward.YAMLVariables {
		vars = append(vars, sp.GlobalVariables...)
		vars = append(vars, sp.Variables...)
		if vars, err = b.expandDotenv(ctx, up, j, sp, vars); err != nil {
			return nil, false, err
		}
	}
	if tr.Forward.PipelineVariables {
		pvs, err := b.Engine.PipelineVariables(ctx, up.ID)
		if err != nil {
			return nil, false, err
		}
		for _, v := range pvs {
			vars = append(vars, pipeline.Var{Key: v.Key, Value: v.Value, File: v.File, Raw: v.Raw})
		}
	}
	vars = dedupe(vars)
	req := pipeline.Request{User: user, Variables: vars, IgnoreSkipCI: true, UpstreamJobID: j.ID, UpstreamPipelineID: up.ID}
	switch {
	case len(tr.IncludeArtifacts) > 0 || len(tr.IncludeProjects) > 0:
		return nil, false, &bridgeFailure{"downstream_pipeline_creation_failed", "trigger:include:artifact and trigger:include:project are not supported by Kiln"}
	case len(tr.Include) > 0:
		p, err := b.Store.ProjectByID(ctx, up.ProjectID)
		if err != nil {
			return nil, false, err
		}
		// The parent's exact ref and commit: a short name could resolve to
		// another ref than the parent's (a tag and a branch of one name).
		req.Project, req.Ref, req.SHA, req.Source, req.ChildIncludes = p, pipeline.FullRef(up), up.SHA, "parent_pipeline", tr.Include
		req.ChildInputs = tr.IncludeInputs
	case tr.Project != "":
		p, err := b.Store.ProjectByPath(ctx, tr.Project)
		if errors.Is(err, store.ErrNotFound) {
			return nil, false, &bridgeFailure{"downstream_bridge_project_not_found", "project " + tr.Project + " not found"}
		} else if err != nil {
			return nil, false, err
		}
		level, err := access.New(b.Store).Level(ctx, p, user)
		if err != nil {
			return nil, false, err
		}
		if !access.At(level, access.Developer) {
			if access.Hidden(p, user, level) {
				return nil, false, &bridgeFailure{"downstream_bridge_project_not_found", "project " + tr.Project + " not found"}
			}
			return nil, false, &bridgeFailure{"insufficient_bridge_permissions", "user " + user.Username + " cannot create pipelines in " + p.FullPath}
		}
		ref := tr.Branch
		if ref == "" {
			ref = p.DefaultBranch
		}
		req.Project, req.Ref, req.Source, req.Inputs = p, ref, "pipeline", tr.Inputs
	default:
		return nil, false, &bridgeFailure{"invalid_bridge_trigger", "trigger names neither a project nor files to include"}
	}
	pl, err := b.Engine.Create(ctx, req)
	if err != nil {
		var ce *pipeline.CreateError
		if errors.As(err, &ce) && ce.Denied {
			return nil, false, &bridgeFailure{"insufficient_bridge_permissions", ce.Error()}
		}
		if errors.As(err, &ce) {
			return nil, false, &bridgeFailure{"downstream_pipeline_creation_failed", ce.Error()}
		}
		return nil, false, err
	}
	return pl, waits(tr.Strategy), nil
}

// expandDotenv expands, in the bridge's forwarded YAML variables, the
// references to variables the bridge inherits from its dependencies'
// artifacts:reports:dotenv (GitLab passes dotenv variables to bridge jobs:
// `variables: {VERSION: $BUILD_VERSION}` sends the value downstream). A
// name whose value in the bridge's precedence is not the dotenv value (a
// project or pipeline variable of the same name wins) is not expanded,
// nor are other references: they are left for the downstream jobs to
// expand, as before.
func (b *Bridges) expandDotenv(ctx context.Context, up *store.Pipeline, j *store.Job, sp *pipeline.JobSpec, vars []pipeline.Var) ([]pipeline.Var, error) {
	dv, err := b.Engine.DependencyDotenv(ctx, j, sp)
	if err != nil || len(dv) == 0 {
		return vars, err
	}
	p, err := b.Store.ProjectByID(ctx, up.ProjectID)
	if err != nil {
		return nil, err
	}
	all, err := b.Engine.JobVariables(ctx, p, up, j, sp, "")
	if err != nil {
		return nil, err
	}
	// Only the dotenv values themselves are expanded: a name a project,
	// group or pipeline variable shadows is left as written, so that a
	// job cannot export a dotenv name to pull a (masked, protected)
	// variable's value into another project's pipeline variables.
	final := map[string]string{}
	for _, v := range all {
		final[v.Key] = v.Value
	}
	dotenv := map[string]string{}
	for _, v := range dv {
		dotenv[v.Key] = v.Value
	}
	vals := map[string]string{}
	for k, v := range dotenv {
		if final[k] == v {
			vals[k] = v
		}
	}
	out := make([]pipeline.Var, len(vars))
	for i, v := range vars {
		if !v.Raw {
			v.Value = expandKnown(v.Value, vals)
		}
		out[i] = v
	}
	return out, nil
}

var refRE = regexp.MustCompile(`\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)`)

// expandKnown replaces $NAME and ${NAME} for the names in vals and leaves
// everything else (other names, $$) as written.
func expandKnown(s string, vals map[string]string) string {
	return refRE.ReplaceAllStringFunc(s, func(m string) string {
		name := strings.Trim(m[1:], "{}")
		if v, ok := vals[name]; ok && m != "$$" {
			return v
		}
		return m
	})
}

// waits reports whether a bridge follows its downstream's status (depend,
// and mirror, which GitLab proposes as depend plus manual states).
func waits(strategy string) bool { return strategy == "depend" || strategy == "mirror" }

// dedupe keeps the last definition of each variable, in first-seen order.
func dedupe(vs []pipeline.Var) []pipeline.Var {
	idx := map[string]int{}
	var out []pipeline.Var
	for _, v := range vs {
		if i, ok := idx[v.Key]; ok {
			out[i] = v
			continue
		}
		idx[v.Key] = len(out)
		out = append(out, v)
	}
	return out
}

// Finished mirrors a finished downstream pipeline onto the bridge that
// created it when the bridge uses strategy: depend (Engine.PipelineFinished).
func (b *Bridges) Finished(ctx context.Context, pipelineID int64) {
	pl, err := b.Store.PipelineByID(ctx, pipelineID)
	if err != nil || pl.UpstreamJobID == 0 {
		return
	}
	j, err := b.Store.JobByID(ctx, pl.UpstreamJobID)
	if err != nil || j.Kind != "bridge" {
		return
	}
	sp, err := pipeline.ParseSpec(j.Spec)
	if err != nil || sp.Trigger == nil || !waits(sp.Trigger.Strategy) {
		return
	}
	if j.DownstreamPipelineID != 0 && j.DownstreamPipelineID != pl.ID {
		return
	}
	status, reason := pl.Status, ""
	switch pl.Status {
	case "failed":
		reason = "downstream_pipeline_failed"
	case "skipped":
		// Nothing ran downstream and nothing failed; a running bridge has
		// no way to "skipped" in the state machine.
		status = "success"
	case "success", "canceled":
	default:
		return
	}
	if err := b.Engine.FinishBridge(ctx, j.ID, status, reason); err != nil {
		b.Log.Error("mirroring downstream status", "job", j.ID, "pipeline", pl.ID, "err", err)
	}
}
