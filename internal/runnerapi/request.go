package runnerapi

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/kilnci/kiln/internal/access"
	"github.com/kilnci/kiln/internal/auth"
	"github.com/kilnci/kiln/internal/pipeline"
	"github.com/kilnci/kiln/internal/runner/client"
	"github.com/kilnci/kiln/internal/store"
)

// failureReasons are the reasons Kiln accepts from runners.
var failureReasons = []string{
	"unknown_failure", "script_failure", "api_failure", "stuck_or_timeout_failure", "runner_system_failure",
	"missing_dependency_failure", "runner_unsupported", "stale_schedule", "job_execution_timeout", "archived_failure",
	"unmet_prerequisites", "scheduler_failure", "data_integrity_failure", "forward_deployment_failure",
	"user_blocked", "project_deleted", "insufficient_bridge_permissions", "downstream_bridge_project_not_found",
	"invalid_bridge_trigger", "bridge_pipeline_is_child_pipeline", "downstream_pipeline_creation_failed",
	"secrets_provider_not_found", "reached_max_descendant_pipelines_depth", "ip_restriction_failure",
	"reached_max_pipeline_hierarchy_size", "image_pull_failure", "job_canceled",
}

// matcher decides whether a runner may take a job, caching the project and
// pipeline lookups that group runners and protected runners need.
type matcher struct {
	st        *store.Store
	projects  map[int64]*store.Project
	pipelines map[int64]*store.Pipeline
}

func newMatcher(st *store.Store) *matcher {
	return &matcher{st: st, projects: map[int64]*store.Project{}, pipelines: map[int64]*store.Pipeline{}}
}

func (m *matcher) matches(ctx context.Context, r *store.Runner, j *store.Job) bool {
	if r.Paused || j.Kind == "bridge" || !access.RunnerTakesTags(r, j.Tags) {
		return false
	}
	switch r.RunnerType {
	case "project_type":
		if r.ProjectID != j.ProjectID {
			return false
		}
	case "group_type":
		p := m.projects[j.ProjectID]
		if p == nil {
			var err error
			if p, err = m.st.ProjectByID(ctx, j.ProjectID); err != nil {
				return false
			}
			m.projects[j.ProjectID] = p
		}
		if p.NamespaceID != r.GroupID {
			// Subgroups: the runner's group must be an ancestor.
			g, err := m.st.NamespaceByID(ctx, r.GroupID)
			if err != nil || !strings.HasPrefix(p.FullPath, g.FullPath+"/") {
				return false
			}
		}
	}
	if r.AccessLevel == "ref_protected" {
		pl := m.pipelines[j.PipelineID]
		if pl == nil {
			var err error
			if pl, err = m.st.PipelineByID(ctx, j.PipelineID); err != nil {
				return false
			}
			m.pipelines[j.PipelineID] = pl
		}
		if !pl.Protected {
			return false
		}
	}
	return true
}

// jobRequest is the body of POST /jobs/request.
type jobRequest struct {
	Token    string      `json:"token"`
	Info     versionInfo `json:"info"`
	SystemID string      `json:"system_id"`
}

// requestJob is the long-polled POST /api/v4/jobs/request.
func (s *Service) requestJob(w http.ResponseWriter, r *http.Request) {
	var req jobRequest
	if !readJSON(w, r, &req) {
		return
	}
	ctx := r.Context()
	cr, err := s.runnerByToken(ctx, runnerToken(r, req.Token))
	if err != nil {
		s.log.Error("runner lookup failed", "err", err)
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if cr == nil {
		forbidden(w)
		return
	}
	s.touchRunner(cr, req.Info, r)
	if m := s.cfg.Metrics; m != nil {
		m.polls.Add(1)
		m.waiting.Add(1)
		defer m.waiting.Add(-1)
	}
	timer := time.NewTimer(s.cfg.PollTimeout)
	defer timer.Stop()
	waitCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-timer.C:
		case <-s.done:
		case <-waitCtx.Done():
		}
		cancel()
	}()
	n := s.cfg.Notifier
	for {
		// Read the generation before looking, so that a job made pending
		// while we look bumps it and we look again.
		gen := n.Generation()
		// A runner edited while we wait (unpaused, retagged, deleted)
		// takes effect now rather than on its next poll.
		if err := s.reload(ctx, cr, false); err != nil {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		if cr.runner() == nil {
			forbidden(w)
			return
		}
		if s.needsCheck(cr, gen) {
			job, contended, err := s.assign(ctx, cr)
			if err != nil {
				if ctx.Err() == nil {
					s.log.Error("assigning a job failed", "runner", cr.runner().ID, "err", err)
				}
				w.WriteHeader(http.StatusNoContent)
				return
			}
			if job != nil {
				if m := s.cfg.Metrics; m != nil {
					m.assigned.Add(1)
				}
				writeJSON(w, http.StatusCreated, job)
				return
			}
			if contended && waitCtx.Err() == nil {
				// Others were taking matching jobs; one may be left.
				time.Sleep(time.Millisecond)
				continue
			}
			cr.mu.Lock()
			cr.checked, cr.emptyGen, cr.checkedAt = true, gen, time.Now()
			cr.mu.Unlock()
		}
		if waitCtx.Err() != nil {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		n.Wait(waitCtx, gen)
		if waitCtx.Err() != nil && n.Generation() == gen {
			w.WriteHeader(http.StatusNoContent)
			return
		}
	}
}

// needsCheck reports whether the database may hold a job this runner has
// not yet seen: first poll, a wake-up since the last empty check, a
// changed runner, or the periodic safety net. Paused runners never look.
func (s *Service) needsCheck(cr *cachedRunner, gen uint64) bool {
	cr.mu.Lock()
	defer cr.mu.Unlock()
	if cr.r == nil || cr.r.Paused {
		return false
	}
	return !cr.checked || cr.emptyGen != gen || time.Since(cr.checkedAt) > recheckEvery
}

// assign hands the oldest matching pending job to the runner and returns its
// payload, or nil when there is none. contended reports that matching jobs
// were being assigned by other requesters at that moment, so "nothing" is
// not a reason to sleep until the next wake-up.
func (s *Service) assign(ctx context.Context, cr *cachedRunner) (job *client.JobResponse, contended bool, err error) {
	r := cr.runner()
	s.checks.Add(1)
	for attempt := 0; attempt < 3; attempt++ {
		var picked *store.Job
		var token string
		m := newMatcher(s.cfg.Store)
		err := s.cfg.Store.Write(ctx, func(tx *store.Tx) error {
			picked, contended = nil, false
			cands, err := tx.PendingCandidates(ctx, 500)
			if err != nil {
				return err
			}
			for _, j := range cands {
				if !m.matches(ctx, r, j) {
					continue
				}
				tok := auth.NewToken(auth.JobPrefix)
				ok, busy, err := tx.TryAssignJob(ctx, j.ID, r.ID, auth.Hash(tok))
				if err != nil {
					return err
				}
				contended = contended || busy
				if ok {
					j.Status, j.RunnerID = "running", r.ID
					picked, token = j, tok
					return nil
				}
			}
			return nil
		})
		if err != nil {
			return nil, false, err
		}
		if picked == nil {
			return nil, contended, nil
		}
		// No markTouched here: the runner's first update or trace must
		// write last_seen_at, which is how the job counts as acknowledged
		// (RequeueUnacknowledged).
		// The pipeline follows its job to running; off the hot path.
		pid := picked.PipelineID
		s.bg.Add(1)
		go func() {
			defer s.bg.Done()
			if err := s.cfg.Engine.Process(context.Background(), pid); err != nil {
				s.log.Warn("processing pipeline after assignment failed", "pipeline", pid, "err", err)
			}
		}()
		// The job is assigned now: describe it even if the runner's request
		// was just cancelled, rather than fail a job that never ran.
		resp, err := s.payload(context.WithoutCancel(ctx), r, picked, token)
		if err == nil {
			return resp, false, nil
		}
		// The job cannot be described (its project vanished, say): fail it
		// rather than leave it running with nobody to run it.
		s.log.Error("building job payload failed; failing the job", "job", picked.ID, "err", err)
		if _, ferr := s.cfg.Engine.FinishJob(context.WithoutCancel(ctx), picked.ID, "failed", "runner_system_failure", nil); ferr != nil {
			s.log.Error("failing the job failed", "job", picked.ID, "err", ferr)
		}
	}
	return nil, false, nil
}

// payload builds the 201 body for a job.
func (s *Service) payload(ctx context.Context, r *store.Runner, j *store.Job, token string) (*client.JobResponse, error) {
	st := s.cfg.Store
	p, err := st.ProjectByID(ctx, j.ProjectID)
	if err != nil {
		return nil, err
	}
	pl, err := st.PipelineByID(ctx, j.PipelineID)
	if err != nil {
		return nil, err
	}
	sp, err := pipeline.ParseSpec(j.Spec)
	if err != nil {
		return nil, err
	}
	vars, err := s.cfg.Engine.JobVariables(ctx, p, pl, j, sp, token)
	if err != nil {
		return nil, err
	}
	timeout := sp.TimeoutSeconds
	if timeout <= 0 {
		timeout = 3600
	}
	if r.MaximumTimeout > 0 && r.MaximumTimeout < timeout {
		timeout = r.MaximumTimeout
	}
	out := &client.JobResponse{
		ID:    j.ID,
		Token: token,
		// GitLab's default project git strategy is "git fetch": runners
		// reuse a project's build directory and only fetch what is new
		// (GIT_STRATEGY still overrides it per job).
		AllowGitFetch: true,
		JobInfo: client.JobInfo{Name: j.Name, Stage: j.Stage, ProjectID: p.ID, ProjectName: p.Name,
			ProjectJobsRunningOnInstanceRunnersCount: "0"},
		RunnerInfo:   client.RunnerInfo{Timeout: int(timeout)},
		Services:     []client.Image{},
		Artifacts:    []client.Artifact{},
		Cache:        []client.Cache{},
		Credentials:  []client.Credentials{},
		Dependencies: []client.Dependency{},
		Features:     client.GitlabFeatures{TraceSections: true, FailureReasons: failureReasons},
	}
	// Runner variables are predefined ones: lowest precedence, so first.
	out.Variables = []client.Variable{
		{Key: "CI_RUNNER_ID", Value: strconv.FormatInt(r.ID, 10), Public: true},
		{Key: "CI_RUNNER_DESCRIPTION", Value: r.Description, Public: true},
		{Key: "CI_RUNNER_TAGS", Value: tagsJSON(r.Tags), Public: true},
		{Key: "CI_JOB_TIMEOUT", Value: strconv.FormatInt(timeout, 10), Public: true},
	}
	depth := 0
	for _, v := range vars {
		out.Variables = append(out.Variables, client.Variable{Key: v.Key, Value: v.Value, Public: v.Public, Masked: v.Masked, File: v.File, Raw: v.Raw})
		if v.Key == "GIT_DEPTH" {
			if n, err := strconv.Atoi(strings.TrimSpace(v.Value)); err == nil && n > 0 {
				depth = n
			}
		}
	}
	out.GitInfo = s.gitInfo(ctx, p, pl, token, depth)
	if r.Builtin {
		// Built-in runners live in this process and may read the
		// repository directly; git_info.repo_url stays the HTTP URL.
		if lr, ok := s.cfg.Repos.(interface{ LocalPath(string) (string, error) }); ok {
			if dir, err := lr.LocalPath(p.FullPath); err == nil {
				out.GitInfo.KilnLocalRepo = dir
			}
		}
	}
	script := append(append([]string{}, sp.BeforeScript...), sp.Script...)
	out.Steps = []client.Step{{Name: client.StepNameScript, Script: script, Timeout: int(timeout), When: client.WhenOnSuccess}}
	if len(sp.AfterScript) > 0 {
		out.Steps = append(out.Steps, client.Step{Name: client.StepNameAfterScript, Script: sp.AfterScript, Timeout: int(timeout), When: client.WhenAlways})
	}
	if sp.Image != nil && sp.Image.Name != "" {
		out.Image = &client.Image{Name: sp.Image.Name, Entrypoint: sp.Image.Entrypoint, PullPolicy: sp.Image.PullPolicy}
	}
	for _, sv := range sp.Services {
		img := client.Image{Name: sv.Name, Alias: sv.Alias, Command: sv.Command, Entrypoint: sv.Entrypoint, PullPolicy: sv.PullPolicy}
		for _, v := range sv.Variables {
			img.Variables = append(img.Variables, client.Variable{Key: v.Key, Value: v.Value, Public: true, Raw: !v.Expand})
		}
		out.Services = append(out.Services, img)
	}
	if a := sp.Artifacts; a != nil && (len(a.Paths) > 0 || a.Untracked) {
		when := a.When
		if when == "" {
			when = client.WhenOnSuccess
		}
		out.Artifacts = append(out.Artifacts, client.Artifact{Name: a.Name, Untracked: a.Untracked, Paths: a.Paths, Exclude: orEmpty(a.Exclude),
			When: when, ArtifactType: "archive", ArtifactFormat: "zip", ExpireIn: a.ExpireIn})
	}
	if a := sp.Artifacts; a != nil && len(a.Reports["dotenv"]) > 0 {
		// GitLab uploads reports whatever the job's result.
		out.Artifacts = append(out.Artifacts, client.Artifact{Paths: a.Reports["dotenv"], Exclude: []string{},
			When: client.WhenAlways, ArtifactType: "dotenv", ArtifactFormat: "gzip", ExpireIn: a.ExpireIn})
	}
	for _, c := range sp.Cache {
		key := c.Key
		if key == "" && len(c.KeyFiles) > 0 {
			key = s.filesKey(ctx, p, pl.SHA, c.KeyPrefix, c.KeyFiles)
		}
		if key == "" {
			key = "default"
		}
		policy := c.Policy
		if policy == "" {
			policy = client.CachePolicyPullPush
		}
		when := c.When
		if when == "" {
			when = client.WhenOnSuccess
		}
		key, fallback := cacheKeys(key, c.FallbackKeys, p.SeparatedCaches, pl.Protected && !c.Unprotect)
		out.Cache = append(out.Cache, client.Cache{Key: key, Untracked: c.Untracked, Policy: policy, Paths: orEmpty(c.Paths), When: when, FallbackKeys: orEmpty(fallback)})
	}
	deps, err := s.dependencies(ctx, j, sp, token)
	if err != nil {
		return nil, err
	}
	out.Dependencies = deps
	return out, nil
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func tagsJSON(tags []string) string {
	var b strings.Builder
	b.WriteString("[")
	for i, t := range tags {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.Quote(t))
	}
	b.WriteString("]")
	return b.String()
}

// cacheKeys applies GitLab's "separate caches for protected branches"
// (project setting ci_separated_caches, on by default): a job of a
// protected pipeline uses "<key>-protected", any other job (and one whose
// cache sets unprotect: true) "<key>-non_protected", and so do the fallback
// keys. A developer's branch therefore cannot write a cache that the
// protected default branch restores. The suffix is appended to the key as
// written, before the runner expands variables in it; the expansion stops
// at "-", so no value can remove the suffix.
func cacheKeys(key string, fallback []string, separated, protected bool) (string, []string) {
	if !separated {
		return key, fallback
	}
	suffix := "-non_protected"
	if protected {
		suffix = "-protected"
	}
	out := make([]string, len(fallback))
	for i, k := range fallback {
		out[i] = k + suffix
	}
	return key + suffix, out
}

// filesKey is cache:key:files: a hash of the named files' blob ids, so the
// key changes when any of them does.
func (s *Service) filesKey(ctx context.Context, p *store.Project, sha, prefix string, files []string) string {
	h := sha256.New()
	for _, f := range files {
		_, blob, err := s.cfg.Repos.ReadFile(ctx, p.FullPath, sha, f)
		if err == nil {
			h.Write([]byte(blob))
		}
		h.Write([]byte{0})
	}
	key := hex.EncodeToString(h.Sum(nil))[:40]
	if prefix != "" {
		key = prefix + "-" + key
	}
	return key
}

// gitInfo points the runner at the project with the job's credentials. It
// makes sure refs/pipelines/<id> exists, so the refspecs sent all resolve.
func (s *Service) gitInfo(ctx context.Context, p *store.Project, pl *store.Pipeline, token string, depth int) client.GitInfo {
	base := s.cfg.ExternalURL
	if u, err := url.Parse(base); err == nil {
		u.User = url.UserPassword("gitlab-ci-token", token)
		base = u.String()
	}
	gi := client.GitInfo{
		RepoURL: base + "/" + p.FullPath + ".git", Ref: pl.Ref, Sha: pl.SHA, BeforeSha: pl.BeforeSHA,
		RefType: client.RefTypeBranch, Depth: depth,
		// GitLab's git_info.protected: Kiln's runner keeps the checkouts of
		// protected refs apart from the others' (runner.slotDir).
		Protected: &pl.Protected,
	}
	if pl.Tag {
		gi.RefType = client.RefTypeTag
	}
	pipeRef := "refs/pipelines/" + strconv.FormatInt(pl.ID, 10)
	if err := s.cfg.Repos.UpdateRef(ctx, p.FullPath, pipeRef, pl.SHA); err == nil {
		gi.Refspecs = append(gi.Refspecs, "+"+pipeRef+":"+pipeRef)
	} else {
		s.log.Warn("creating the pipeline ref failed; sending branch refspecs only", "ref", pipeRef, "err", err)
		// Without the persistent ref the commit must come from its branch
		// or tag, which has to be fetched whole.
		depth = 0
		gi.Depth = 0
	}
	if depth == 0 {
		gi.Refspecs = append(gi.Refspecs, "+refs/heads/*:refs/remotes/origin/*", "+refs/tags/*:refs/tags/*")
	}
	return gi
}

// dependencies lists the jobs whose artifacts this job downloads
// (pipeline.DependencyJobs: needs with artifacts, else earlier stages,
// restricted by dependencies) that still have an archive. Each carries the
// current job's token, which may download artifacts of jobs of its own
// pipeline.
func (s *Service) dependencies(ctx context.Context, j *store.Job, sp *pipeline.JobSpec, token string) ([]client.Dependency, error) {
	rows, err := s.cfg.Store.JobsOfPipeline(ctx, j.PipelineID)
	if err != nil {
		return nil, err
	}
	out := []client.Dependency{}
	for _, d := range pipeline.DependencyJobs(rows, j, sp) {
		if d.ArtifactsFile == "" || (d.ArtifactsExpireAt != nil && d.ArtifactsExpireAt.Before(time.Now())) {
			continue
		}
		out = append(out, client.Dependency{ID: d.ID, Token: token, Name: d.Name,
			ArtifactsFile: client.DependencyFile{Filename: d.ArtifactsFile, Size: d.ArtifactsSize}})
	}
	return out, nil
}
