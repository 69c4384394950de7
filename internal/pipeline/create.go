package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/kilnci/kiln/internal/access"
	"github.com/kilnci/kiln/internal/ciconfig"
	"github.com/kilnci/kiln/internal/gitrepo"
	"github.com/kilnci/kiln/internal/secrets"
	"github.com/kilnci/kiln/internal/store"
)

// Repos is what the engine reads from repositories.
type Repos interface {
	ResolveRef(ctx context.Context, repo, name string) (gitrepo.Ref, error)
	ReadFile(ctx context.Context, repo, sha, path string) ([]byte, string, error)
	Commit(ctx context.Context, repo, sha string) (gitrepo.Commit, error)
	ChangedFiles(ctx context.Context, repo, beforeSHA, afterSHA string) ([]string, error)
	Exists(ctx context.Context, repo, sha string, globs []string) (bool, error)
	UpdateRef(ctx context.Context, repo, fullRef, sha string) error
	IsAncestor(ctx context.Context, repo, ancestor, descendant string) (bool, error)
}

// Engine creates and advances pipelines.
type Engine struct {
	Store       *store.Store
	Repos       Repos
	Secrets     *secrets.Box
	ExternalURL string
	Log         *slog.Logger
	// Access decides who may create and act on pipelines (nil: a policy
	// over Store).
	Access *access.Policy
	// JobsPending is called after a commit that made build jobs pending, to
	// wake waiting runners.
	JobsPending func()
	// BridgePending is called (after commit) for each bridge job that became
	// pending; it creates the downstream pipeline.
	BridgePending func(ctx context.Context, jobID int64)
	// PipelineFinished is called (after commit) when a pipeline reaches a
	// completed status, so that an upstream bridge can follow it.
	PipelineFinished func(ctx context.Context, pipelineID int64)
	// Now is the clock (tests replace it).
	Now func() time.Time
	// Observer receives events for metrics (observe.go).
	Observer Observer

	cache   configCache
	commits commitCache
	timerMu sync.Mutex
	timers  map[int64]*time.Timer
}

// Request asks for a pipeline. Every source builds one of these.
type Request struct {
	Project *store.Project
	Ref     string
	Source  string // push, web, api, trigger, schedule, pipeline, parent_pipeline
	// User is the acting identity, whatever the source: the pusher, the
	// API or web user, the trigger token's owner, the job token's or the
	// upstream job's user, the schedule's owner. Create refuses the
	// pipeline unless User may create pipelines in Project and, on a
	// protected ref, may update that ref.
	User      *store.User
	Variables []Var // pipeline-level variables (highest precedence)
	// SHA and BeforeSHA are known for pushes; otherwise the ref is resolved.
	SHA, BeforeSHA string
	// CommitSHA is an exact commit an API caller asked for (trigger API,
	// POST /pipeline): the pipeline builds it instead of the ref's tip, and
	// Create refuses it unless it is reachable from Ref, so that a ref's
	// protection is no way to run an arbitrary commit. Unlike SHA, it is
	// checked.
	CommitSHA string
	// Inputs are values for the configuration's `spec: inputs:` (trigger
	// API, POST /pipeline). A value that breaks the spec refuses the
	// pipeline with a *CreateError naming the input and the rule.
	Inputs map[string]any
	// PushOptions are git push options (ci.skip).
	PushOptions []string
	// IgnoreSkipCI ignores [ci skip] in the commit message (triggers do).
	IgnoreSkipCI       bool
	TriggerID          int64
	TriggerShortToken  string
	ScheduleID         int64
	UpstreamJobID      int64
	UpstreamPipelineID int64
	// ChildIncludes replaces the project's CI file with these local files
	// (child pipelines from `trigger: include:`).
	ChildIncludes []string
	// ChildInputs are include:inputs for ChildIncludes' files, by file.
	ChildInputs map[string]map[string]any
	// configVars are the variables expand_vars sees (set by create).
	configVars ciconfig.VarLookup
	// InTx, when set, runs inside the transaction that inserts the pipeline,
	// after its jobs: the trigger API records its delivery and the trigger's
	// last use there, so that they share the pipeline's commit.
	InTx func(ctx context.Context, tx *store.Tx, pl *store.Pipeline) error
}

// CreateError is a refusal with GitLab's message, for {"message":{"base":[...]}}.
type CreateError struct {
	Messages []string
	// Denied marks a refusal of the acting identity (access), as opposed to
	// one of the ref or the configuration.
	Denied bool
	// inputs marks a refusal of the request's `spec: inputs:` values.
	inputs bool
}

// pushInputs reads `git push -o ci.input=NAME=VALUE` options (GitLab's
// spelling); values are text, converted to each input's type by ciconfig.
// A later option for the same name wins.
func pushInputs(opts []string) map[string]any {
	var out map[string]any
	for _, o := range opts {
		kv, ok := strings.CutPrefix(o, "ci.input=")
		if !ok {
			continue
		}
		k, v, _ := strings.Cut(kv, "=")
		if k == "" {
			continue
		}
		if out == nil {
			out = map[string]any{}
		}
		out[k] = v
	}
	return out
}

func (e *CreateError) Error() string { return strings.Join(e.Messages, "; ") }

// Inputs reports whether the refusal is of the request's `spec: inputs:`
// values.
func (e *CreateError) Inputs() bool { return e.inputs }

func refusal(msg ...string) error { return &CreateError{Messages: msg} }

// ErrSkipped reports that a push asked not to run CI ([ci skip]).
var ErrSkipped = errors.New("pipeline skipped by [ci skip]")

func (e *Engine) now() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now()
}

// fileReader reads other files of the commit for include: local.
type fileReader struct {
	ctx      context.Context
	e        *Engine
	repo     string
	sha      string
	included bool
}

func (f *fileReader) ReadFile(p string) ([]byte, error) {
	f.included = true
	data, _, err := f.e.Repos.ReadFile(f.ctx, f.repo, f.sha, strings.TrimPrefix(path.Clean("/"+p), "/"))
	return data, err
}

func (f *fileReader) Exists(globs []string) (bool, error) {
	f.included = true
	return f.e.Repos.Exists(f.ctx, f.repo, f.sha, globs)
}

// configCache holds parsed configurations. A config that read no other file
// is keyed by its blob id, so an unchanged file is parsed once across
// commits; one with includes is keyed by commit too.
type configCache struct {
	mu      sync.Mutex
	entries map[string]*ciconfig.Config
}

const maxCachedConfigs = 512

func (c *configCache) get(k string) *ciconfig.Config {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.entries[k]
}

func (c *configCache) put(k string, cfg *ciconfig.Config) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil || len(c.entries) >= maxCachedConfigs {
		c.entries = map[string]*ciconfig.Config{}
	}
	c.entries[k] = cfg
}

// commitCache keeps commit metadata, which never changes for a SHA.
type commitCache struct {
	mu sync.Mutex
	m  map[string]gitrepo.Commit
}

// commit reads a commit's metadata through the cache.
func (e *Engine) commit(ctx context.Context, repo, sha string) (gitrepo.Commit, error) {
	k := repo + "@" + sha
	e.commits.mu.Lock()
	c, ok := e.commits.m[k]
	e.commits.mu.Unlock()
	if ok {
		return c, nil
	}
	c, err := e.Repos.Commit(ctx, repo, sha)
	if err != nil {
		return c, err
	}
	e.commits.mu.Lock()
	if e.commits.m == nil || len(e.commits.m) >= maxCachedConfigs {
		e.commits.m = map[string]gitrepo.Commit{}
	}
	e.commits.m[k] = c
	e.commits.mu.Unlock()
	return c, nil
}

// loadConfig reads and parses the CI configuration at sha.
func (e *Engine) loadConfig(ctx context.Context, req *Request, sha string) (*ciconfig.Config, error) {
	p := req.Project
	fr := &fileReader{ctx: ctx, e: e, repo: p.FullPath, sha: sha}
	var src []byte
	var key string
	if len(req.ChildIncludes) > 0 {
		var b strings.Builder
		b.WriteString("include:\n")
		for _, f := range req.ChildIncludes {
			fmt.Fprintf(&b, "  - local: %q\n", f)
			if in, ok := req.ChildInputs[f]; ok {
				// JSON is YAML: the inputs keep their types.
				js, err := json.Marshal(in)
				if err != nil {
					return nil, err
				}
				fmt.Fprintf(&b, "    inputs: %s\n", js)
			}
		}
		src = []byte(b.String())
		key = "child:" + sha + ":" + b.String()
	} else if len(req.Inputs) > 0 {
		// A config interpolated with a request's inputs is that request's
		// alone: it is neither looked up in nor put into the cache.
		data, _, err := e.Repos.ReadFile(ctx, p.FullPath, sha, e.configPath(p))
		if err != nil {
			if errors.Is(err, gitrepo.ErrFileNotFound) {
				return nil, refusal("Missing CI config file")
			}
			if errors.Is(err, gitrepo.ErrFileTooLarge) {
				return nil, refusal("The CI configuration file is too large")
			}
			return nil, err
		}
		cfg, err := ciconfig.Parse(data, ciconfig.Options{Files: fr, Inputs: req.Inputs, Variables: req.configVars})
		if err != nil {
			return nil, configError(err)
		}
		return cfg, nil
	} else {
		// A commit's files never change: a config parsed for this commit
		// (and path) is reused without reading the blob again.
		shaKey := "sha:" + p.FullPath + ":" + sha + ":" + e.configPath(p)
		if cfg := e.cache.get(shaKey); cfg != nil {
			return cfg, nil
		}
		defer func() {
			if cfg := e.cache.get(key); cfg != nil {
				e.cache.put(shaKey, cfg)
			} else if cfg := e.cache.get(key + "@" + sha); cfg != nil {
				e.cache.put(shaKey, cfg)
			}
		}()
		data, blob, err := e.Repos.ReadFile(ctx, p.FullPath, sha, e.configPath(p))
		if err != nil {
			if errors.Is(err, gitrepo.ErrFileNotFound) {
				return nil, refusal("Missing CI config file")
			}
			if errors.Is(err, gitrepo.ErrFileTooLarge) {
				return nil, refusal("The CI configuration file is too large")
			}
			return nil, err
		}
		src = data
		key = "blob:" + blob
		if cfg := e.cache.get(key); cfg != nil {
			return cfg, nil
		}
	}
	if cfg := e.cache.get(key + "@" + sha); cfg != nil {
		return cfg, nil
	}
	cfg, err := ciconfig.Parse(src, ciconfig.Options{Files: fr, Variables: req.configVars})
	if err != nil {
		return nil, configError(err)
	}
	if cfg.UsesVariables {
		// expand_vars put variable values into it: this pipeline's alone.
		return cfg, nil
	}
	if fr.included {
		key += "@" + sha
	}
	e.cache.put(key, cfg)
	return cfg, nil
}

// configError sorts Parse's failures: inputs that break the spec are the
// caller's (a refusal, nothing created), anything else is the file's.
func configError(err error) error {
	var ie *ciconfig.InputError
	if errors.As(err, &ie) {
		return &CreateError{Messages: ie.Messages, inputs: true}
	}
	var ce *ciconfig.Errors
	if errors.As(err, &ce) {
		return &YAMLError{Messages: ce.Messages}
	}
	return err
}

// YAMLError is an invalid configuration.
type YAMLError struct{ Messages []string }

func (e *YAMLError) Error() string { return strings.Join(e.Messages, ", ") }

func (e *Engine) policy() *access.Policy {
	if e.Access != nil {
		return e.Access
	}
	return access.New(e.Store)
}

// IsProtected reports whether a branch (or, with tag, a tag) name is
// protected in p (access.RefProtected: the default branch, and protected
// branches and tags, wildcards included). It fails closed.
func (e *Engine) IsProtected(ctx context.Context, p *store.Project, ref string, tag bool) bool {
	full := "refs/heads/" + ref
	if tag {
		full = "refs/tags/" + ref
	}
	prot, _ := e.policy().Protected(ctx, p, full)
	return prot
}

// authorize refuses a pipeline the acting identity may not create: GitLab
// requires Developer access to the project and, for a protected ref, the
// right to update that ref. Every source passes here, so no path (trigger
// token, job token, bridge, child, schedule) skips it.
func (e *Engine) authorize(ctx context.Context, req *Request, protected bool) error {
	level, err := e.policy().Level(ctx, req.Project, req.User)
	if err != nil {
		return err
	}
	if msg := access.PipelineDenial(level, protected, req.Ref); msg != "" {
		return &CreateError{Messages: []string{msg}, Denied: true}
	}
	return nil
}

// Create makes a pipeline for req, or returns a *CreateError with GitLab's
// message and creates nothing.
func (e *Engine) Create(ctx context.Context, req Request) (*store.Pipeline, error) {
	return e.create(ctx, req, nil)
}

// Preview is what a pipeline request would create (dry_run): Create's
// checks and evaluation, nothing written.
type Preview struct {
	Ref       string
	Tag       bool
	SHA       string
	Source    string
	Protected bool
	Name      string
	Stages    []string
	Jobs      []PreviewJob
	// PipelineVariables and YAMLVariables are names only: values may be
	// secret.
	PipelineVariables []string
	YAMLVariables     []string
	// Inputs are the resolved `spec: inputs:` values (given or default).
	Inputs map[string]any
}

// PreviewJob is one job a preview would create.
type PreviewJob struct {
	Name, Stage, When, Kind string
	AllowFailure            bool
	// Decision is the rule that put the job in (ciconfig.PlannedJob).
	Decision string
	Needs    []string
}

// Preview runs every check and evaluation Create would for req and
// returns what it would create, creating nothing; refusals are Create's.
func (e *Engine) Preview(ctx context.Context, req Request) (*Preview, error) {
	pv := &Preview{}
	if _, err := e.create(ctx, req, pv); err != nil {
		return nil, err
	}
	return pv, nil
}

func (e *Engine) create(ctx context.Context, req Request, preview *Preview) (*store.Pipeline, error) {
	p := req.Project
	pl := &store.Pipeline{ProjectID: p.ID, Source: req.Source, Status: "created", BeforeSHA: gitrepo.ZeroSHA,
		TriggerID: req.TriggerID, TriggerShortToken: req.TriggerShortToken, ScheduleID: req.ScheduleID,
		UpstreamJobID: req.UpstreamJobID, UpstreamPipelineID: req.UpstreamPipelineID}
	if req.User != nil {
		pl.UserID = req.User.ID
	}
	ref, err := e.Repos.ResolveRef(ctx, p.FullPath, req.Ref)
	if err != nil {
		if errors.Is(err, gitrepo.ErrInvalidRef) || errors.Is(err, gitrepo.ErrRefNotFound) || errors.Is(err, gitrepo.ErrRepoNotFound) || errors.Is(err, gitrepo.ErrInvalidPath) {
			return nil, refusal("Reference not found")
		}
		return nil, err
	}
	pl.Ref, pl.Tag, pl.SHA = ref.Name, ref.Tag, ref.SHA
	if pl.Protected, err = e.policy().Protected(ctx, p, ref.Full); err != nil {
		return nil, err
	}
	if err := e.authorize(ctx, &req, pl.Protected); err != nil {
		return nil, err
	}
	if req.SHA != "" {
		pl.SHA = req.SHA
	}
	if req.CommitSHA != "" {
		sha, err := e.reachable(ctx, p, ref, req.CommitSHA)
		if err != nil {
			return nil, err
		}
		pl.SHA = sha
	}
	if req.BeforeSHA != "" {
		pl.BeforeSHA = req.BeforeSHA
	}
	commit, err := e.commit(ctx, p.FullPath, pl.SHA)
	if err != nil {
		return nil, refusal("Commit not found")
	}
	if commit.SHA != "" {
		pl.SHA = commit.SHA // an annotated tag's object SHA peeled to its commit
	}
	pl.CommitTitle = commit.Title
	pl.CommittedAt = &commit.CommittedAt
	if req.Source == "push" && !req.IgnoreSkipCI {
		msg := strings.ToLower(commit.Message)
		if strings.Contains(msg, "[ci skip]") || strings.Contains(msg, "[skip ci]") {
			return nil, ErrSkipped
		}
		for _, o := range req.PushOptions {
			if o == "ci.skip" {
				return nil, ErrSkipped
			}
		}
	}
	if req.Source == "push" && req.Inputs == nil {
		req.Inputs = pushInputs(req.PushOptions)
	}
	pvs, err := e.projectVariables(ctx, p.ID, pl.Protected)
	if err != nil {
		return nil, err
	}
	req.configVars = configVariables(e.configTimeVars(p, pl, &commit, req.User, pvs, req.Variables))
	cfg, err := e.loadConfig(ctx, &req, pl.SHA)
	if err != nil {
		var ye *YAMLError
		var ce *CreateError
		if errors.As(err, &ce) && ce.inputs && req.Source == "push" {
			// A push's inputs are the pusher's, but the push cannot be
			// answered with a 400 either: it fails like a bad file.
			ye = &YAMLError{Messages: ce.Messages}
			err = ye
		}
		if errors.As(err, &ye) && req.Source == "push" && preview == nil {
			// A push cannot be answered with an error, so the mistake is
			// recorded as a failed pipeline the user will see.
			pl.Status = "failed"
			pl.YAMLErrors = ye.Error()
			err := e.Store.Write(ctx, func(tx *store.Tx) error { return tx.InsertPipeline(ctx, pl) })
			if err == nil {
				e.observeCreated(pl)
			}
			return pl, err
		}
		if errors.As(err, &ye) {
			return nil, refusal(ye.Messages...)
		}
		return nil, err
	}

	// Variables visible to rules: predefined, YAML globals, project, pipeline.
	vars := newVarList()
	e.pipelinePredefined(vars, p, pl, &commit, req.User)
	for _, v := range cfg.Variables {
		vars.set(RunnerVar{Key: v.Key, Value: v.Value})
	}
	for _, v := range pvs {
		vars.set(v)
	}
	for _, v := range req.Variables {
		vars.set(RunnerVar{Key: v.Key, Value: v.Value})
	}
	evalCtx := ciconfig.EvalContext{
		Source: req.Source, Ref: pl.Ref, Tag: pl.Tag, ProjectPath: p.FullPath,
		Variables: vars.lookup,
		Exists: func(globs []string) (bool, error) {
			return e.Repos.Exists(ctx, p.FullPath, pl.SHA, globs)
		},
	}
	if req.Source == "push" && pl.BeforeSHA != gitrepo.ZeroSHA {
		evalCtx.ChangedFiles = func() ([]string, error) {
			return e.Repos.ChangedFiles(ctx, p.FullPath, pl.BeforeSHA, pl.SHA)
		}
	}
	plan, err := cfg.Evaluate(evalCtx)
	if err != nil {
		var pe *ciconfig.PipelineError
		if errors.As(err, &pe) {
			return nil, refusal(pe.Message)
		}
		return nil, err
	}
	pl.Name = plan.Name
	stageIdx := map[string]int{}
	for i, s := range cfg.Stages {
		stageIdx[s] = i
	}
	jobs := make([]*store.Job, 0, len(plan.Jobs))
	for _, pj := range plan.Jobs {
		sp := specFor(pj, plan.WorkflowVariables)
		kind := "build"
		if pj.Job.IsBridge() {
			kind = "bridge"
		}
		jobs = append(jobs, &store.Job{ProjectID: p.ID, Name: pj.Name, Stage: pj.Stage, StageIdx: stageIdx[pj.Stage],
			Status: "created", When: pj.When, AllowFailure: pj.AllowFailure, Kind: kind, Spec: sp.encode(), Tags: pj.Tags, UserID: pl.UserID})
	}
	var pvars []store.PipelineVariable
	for _, v := range req.Variables {
		vt := "env_var"
		if v.File {
			vt = "file"
		}
		pvars = append(pvars, store.PipelineVariable{Key: v.Key, ValueEnc: e.Secrets.Seal(v.Value), VariableType: vt})
	}
	if preview != nil {
		fillPreview(preview, pl, req, cfg, plan)
		return nil, nil
	}
	if pl.ID, pl.IID, err = e.Store.ReserveIID(ctx, p.ID); err != nil {
		return nil, err
	}
	err = e.Store.Write(ctx, func(tx *store.Tx) error {
		if err := tx.InsertPipeline(ctx, pl); err != nil {
			return err
		}
		if err := tx.InsertPipelineVariables(ctx, pl.ID, pvars); err != nil {
			return err
		}
		for _, j := range jobs {
			j.PipelineID = pl.ID
			if err := tx.InsertJob(ctx, j); err != nil {
				return err
			}
		}
		if req.InTx != nil {
			if err := req.InTx(ctx, tx, pl); err != nil {
				return err
			}
		}
		return e.process(ctx, tx, pl.ID)
	})
	if err != nil {
		return nil, err
	}
	e.observeCreated(pl)
	return e.Store.PipelineByID(ctx, pl.ID)
}

// msgSHAFormat is the refusal of a sha parameter that is not a full commit id.
const msgSHAFormat = "sha must be a full commit SHA (40 hexadecimal characters)"

// reachable checks that the caller's exact commit is in the history of
// ref and returns it in lower case. A commit of another branch, or one no
// ref contains any more, is refused: on a protected ref that would run
// code nobody with the right to update the ref ever put there.
func (e *Engine) reachable(ctx context.Context, p *store.Project, ref gitrepo.Ref, sha string) (string, error) {
	sha = strings.ToLower(sha)
	if !ValidSHA(sha) {
		return "", refusal(msgSHAFormat)
	}
	ok, err := e.Repos.IsAncestor(ctx, p.FullPath, sha, ref.SHA)
	if errors.Is(err, gitrepo.ErrCommitNotFound) {
		return "", refusal("Commit not found")
	}
	if err != nil {
		return "", err
	}
	if !ok {
		return "", refusal(fmt.Sprintf("Commit %s is not reachable from ref '%s'", sha, ref.Name))
	}
	return sha, nil
}

// ValidSHA reports whether s is a full 40-hex commit id.
func ValidSHA(s string) bool {
	if len(s) != 40 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

func fillPreview(pv *Preview, pl *store.Pipeline, req Request, cfg *ciconfig.Config, plan *ciconfig.Plan) {
	pv.Ref, pv.Tag, pv.SHA, pv.Source, pv.Protected, pv.Name = pl.Ref, pl.Tag, pl.SHA, req.Source, pl.Protected, plan.Name
	used := map[string]bool{}
	for _, pj := range plan.Jobs {
		used[pj.Stage] = true
		kind := "build"
		if pj.Job.IsBridge() {
			kind = "bridge"
		}
		j := PreviewJob{Name: pj.Name, Stage: pj.Stage, When: pj.When, Kind: kind, AllowFailure: pj.AllowFailure, Decision: pj.Decision, Needs: []string{}}
		for _, n := range pj.Needs {
			j.Needs = append(j.Needs, n.Job)
		}
		pv.Jobs = append(pv.Jobs, j)
	}
	for _, st := range cfg.Stages {
		if used[st] {
			pv.Stages = append(pv.Stages, st)
		}
	}
	pv.PipelineVariables, pv.YAMLVariables = []string{}, []string{}
	for _, v := range req.Variables {
		pv.PipelineVariables = append(pv.PipelineVariables, v.Key)
	}
	for _, v := range cfg.Variables {
		pv.YAMLVariables = append(pv.YAMLVariables, v.Key)
	}
	pv.Inputs = map[string]any{}
	for k, v := range cfg.Inputs {
		pv.Inputs[k] = v
	}
}

// InputFields describes the `spec: inputs:` of the CI file at ref (a
// branch or tag name), for the web form; given values decide rules and
// fill the fields. A ref without a CI file, or a file without a header,
// has no fields; a broken header is a *YAMLError.
func (e *Engine) InputFields(ctx context.Context, p *store.Project, ref string, given map[string]any) ([]ciconfig.InputField, error) {
	r, err := e.Repos.ResolveRef(ctx, p.FullPath, ref)
	if err != nil {
		return nil, nil
	}
	data, _, err := e.Repos.ReadFile(ctx, p.FullPath, r.SHA, e.configPath(p))
	if err != nil {
		return nil, nil
	}
	fields, err := ciconfig.InputFields(data, given)
	if err != nil {
		return nil, configError(err)
	}
	return fields, nil
}
