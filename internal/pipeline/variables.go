package pipeline

import (
	"context"
	"net/url"
	"path"
	"regexp"
	"strconv"
	"strings"

	"github.com/kilnci/kiln/internal/ciconfig"
	"github.com/kilnci/kiln/internal/gitrepo"
	"github.com/kilnci/kiln/internal/store"
)

// RunnerVar is a variable in the runner protocol's shape.
type RunnerVar struct {
	Key    string `json:"key"`
	Value  string `json:"value"`
	Public bool   `json:"public"`
	Masked bool   `json:"masked"`
	File   bool   `json:"file"`
	Raw    bool   `json:"raw"`
}

var slugRE = regexp.MustCompile(`[^a-z0-9]+`)

// Slug is GitLab's CI_*_SLUG: lower-cased, non-alphanumerics to "-", at most
// 63 characters, no leading or trailing "-".
func Slug(s string) string {
	s = slugRE.ReplaceAllString(strings.ToLower(s), "-")
	if len(s) > 63 {
		s = s[:63]
	}
	return strings.Trim(s, "-")
}

// varList keeps variables with later entries overriding earlier ones of the
// same key, while remembering first-seen order.
type varList struct {
	order []string
	vals  map[string]RunnerVar
}

func newVarList() *varList { return &varList{vals: map[string]RunnerVar{}} }

func (l *varList) set(v RunnerVar) {
	if _, ok := l.vals[v.Key]; !ok {
		l.order = append(l.order, v.Key)
	}
	l.vals[v.Key] = v
}

func (l *varList) pub(k, v string) { l.set(RunnerVar{Key: k, Value: v, Public: true}) }

func (l *varList) list() []RunnerVar {
	out := make([]RunnerVar, 0, len(l.order))
	for _, k := range l.order {
		out = append(out, l.vals[k])
	}
	return out
}

func (l *varList) lookup(name string) (string, bool) {
	v, ok := l.vals[name]
	return v.Value, ok
}

// pipelinePredefined adds the variables that exist before any job does.
func (e *Engine) pipelinePredefined(l *varList, p *store.Project, pl *store.Pipeline, c *gitrepo.Commit, u *store.User) {
	server, _ := url.Parse(e.ExternalURL)
	ns := path.Dir(p.FullPath)
	l.pub("CI", "true")
	l.pub("GITLAB_CI", "true")
	l.pub("CI_SERVER", "yes")
	l.pub("CI_SERVER_NAME", "Kiln")
	l.pub("CI_SERVER_URL", e.ExternalURL)
	if server != nil {
		l.pub("CI_SERVER_HOST", server.Hostname())
		l.pub("CI_SERVER_PROTOCOL", server.Scheme)
		port := server.Port()
		if port == "" {
			port = map[string]string{"http": "80", "https": "443"}[server.Scheme]
		}
		l.pub("CI_SERVER_PORT", port)
	}
	l.pub("CI_API_V4_URL", e.ExternalURL+"/api/v4")
	l.pub("CI_PROJECT_ID", strconv.FormatInt(p.ID, 10))
	l.pub("CI_PROJECT_NAME", p.Path)
	l.pub("CI_PROJECT_TITLE", p.Name)
	l.pub("CI_PROJECT_PATH", p.FullPath)
	l.pub("CI_PROJECT_PATH_SLUG", Slug(p.FullPath))
	l.pub("CI_PROJECT_NAMESPACE", ns)
	l.pub("CI_PROJECT_ROOT_NAMESPACE", strings.Split(ns, "/")[0])
	l.pub("CI_PROJECT_URL", e.ExternalURL+"/"+p.FullPath)
	l.pub("CI_PROJECT_VISIBILITY", p.Visibility)
	l.pub("CI_DEFAULT_BRANCH", p.DefaultBranch)
	l.pub("CI_CONFIG_PATH", e.configPath(p))
	l.pub("CI_PIPELINE_SOURCE", pl.Source)
	if pl.ID != 0 {
		l.pub("CI_PIPELINE_ID", strconv.FormatInt(pl.ID, 10))
		l.pub("CI_PIPELINE_IID", strconv.FormatInt(pl.IID, 10))
		l.pub("CI_PIPELINE_URL", e.ExternalURL+"/"+p.FullPath+"/-/pipelines/"+strconv.FormatInt(pl.ID, 10))
		l.pub("CI_PIPELINE_CREATED_AT", pl.CreatedAt.UTC().Format("2006-01-02T15:04:05Z"))
	}
	if pl.Name != "" {
		l.pub("CI_PIPELINE_NAME", pl.Name)
	}
	if pl.TriggerID != 0 {
		l.pub("CI_PIPELINE_TRIGGERED", "true")
		l.pub("CI_BUILD_TRIGGERED", "true")
		l.pub("CI_TRIGGER_SHORT_TOKEN", pl.TriggerShortToken)
	}
	l.pub("CI_COMMIT_SHA", pl.SHA)
	l.pub("CI_COMMIT_SHORT_SHA", short(pl.SHA))
	l.pub("CI_COMMIT_BEFORE_SHA", pl.BeforeSHA)
	l.pub("CI_COMMIT_REF_NAME", pl.Ref)
	l.pub("CI_COMMIT_REF_SLUG", Slug(pl.Ref))
	l.pub("CI_COMMIT_REF_PROTECTED", strconv.FormatBool(pl.Protected))
	if pl.Tag {
		l.pub("CI_COMMIT_TAG", pl.Ref)
	} else {
		l.pub("CI_COMMIT_BRANCH", pl.Ref)
	}
	if c != nil {
		l.pub("CI_COMMIT_MESSAGE", c.Message)
		l.pub("CI_COMMIT_TITLE", c.Title)
		l.pub("CI_COMMIT_DESCRIPTION", c.Description)
		l.pub("CI_COMMIT_TIMESTAMP", c.CommittedAt.Format("2006-01-02T15:04:05-07:00"))
		l.pub("CI_COMMIT_AUTHOR", c.AuthorName+" <"+c.AuthorEmail+">")
	}
	if u != nil {
		l.pub("GITLAB_USER_ID", strconv.FormatInt(u.ID, 10))
		l.pub("GITLAB_USER_LOGIN", u.Username)
		l.pub("GITLAB_USER_NAME", u.Name)
		l.pub("GITLAB_USER_EMAIL", u.Email)
	}
}

func short(sha string) string {
	if len(sha) > 8 {
		return sha[:8]
	}
	return sha
}

func (e *Engine) configPath(p *store.Project) string {
	if p.CIConfigPath != "" {
		return p.CIConfigPath
	}
	return ".gitlab-ci.yml"
}

// projectVariables returns the project's variables that a pipeline on a ref
// with the given protection may see.
func (e *Engine) projectVariables(ctx context.Context, projectID int64, protected bool) ([]RunnerVar, error) {
	vs, err := e.Store.ProjectVariables(ctx, projectID)
	if err != nil {
		return nil, err
	}
	var out []RunnerVar
	for _, v := range vs {
		if v.Protected && !protected {
			continue
		}
		if v.EnvironmentScope != "*" && v.EnvironmentScope != "" {
			// Environment-scoped variables need the job's environment; they are
			// added per job in JobVariables.
			continue
		}
		val, err := e.Secrets.Open(v.ValueEnc)
		if err != nil {
			return nil, err
		}
		out = append(out, RunnerVar{Key: v.Key, Value: val, Masked: v.Masked, File: v.VariableType == "file", Raw: v.Raw})
	}
	return out, nil
}

// pipelineVariables decrypts a pipeline's own variables.
func (e *Engine) pipelineVariables(ctx context.Context, pipelineID int64) ([]RunnerVar, error) {
	vs, err := e.Store.PipelineVariables(ctx, pipelineID)
	if err != nil {
		return nil, err
	}
	out := make([]RunnerVar, 0, len(vs))
	for _, v := range vs {
		val, err := e.Secrets.Open(v.ValueEnc)
		if err != nil {
			return nil, err
		}
		out = append(out, RunnerVar{Key: v.Key, Value: val, File: v.VariableType == "file"})
	}
	return out, nil
}

// PipelineVariables returns a pipeline's variables in clear, for the API
// (GET /pipelines/:id/variables) and the trigger block of the job page.
func (e *Engine) PipelineVariables(ctx context.Context, pipelineID int64) ([]RunnerVar, error) {
	return e.pipelineVariables(ctx, pipelineID)
}

// JobVariables builds the variables a runner gets for a job, in GitLab's
// precedence (lowest first): predefined, global YAML, job YAML, dotenv
// variables inherited from its dependencies (artifacts:reports:dotenv),
// project variables, pipeline variables (trigger, schedule, API),
// played-job variables. jobToken is the job's CI_JOB_TOKEN.
func (e *Engine) JobVariables(ctx context.Context, p *store.Project, pl *store.Pipeline, j *store.Job, sp *JobSpec, jobToken string) ([]RunnerVar, error) {
	l := newVarList()
	var commit *gitrepo.Commit
	if c, err := e.commit(ctx, p.FullPath, pl.SHA); err == nil {
		commit = &c
	}
	var user *store.User
	if pl.UserID != 0 {
		user, _ = e.Store.UserByID(ctx, pl.UserID)
	}
	e.pipelinePredefined(l, p, pl, commit, user)
	jobURL := e.ExternalURL + "/" + p.FullPath + "/-/jobs/" + strconv.FormatInt(j.ID, 10)
	l.pub("CI_JOB_ID", strconv.FormatInt(j.ID, 10))
	l.pub("CI_JOB_NAME", j.Name)
	l.pub("CI_JOB_NAME_SLUG", Slug(j.Name))
	l.pub("CI_JOB_STAGE", j.Stage)
	l.pub("CI_JOB_URL", jobURL)
	l.pub("CI_JOB_MANUAL", strconv.FormatBool(j.When == "manual"))
	if j.StartedAt != nil {
		l.pub("CI_JOB_STARTED_AT", j.StartedAt.UTC().Format("2006-01-02T15:04:05Z"))
	}
	l.set(RunnerVar{Key: "CI_JOB_TOKEN", Value: jobToken, Masked: true})
	l.set(RunnerVar{Key: "CI_BUILD_TOKEN", Value: jobToken, Masked: true})
	repoURL := strings.Replace(e.ExternalURL, "://", "://gitlab-ci-token:"+jobToken+"@", 1) + "/" + p.FullPath + ".git"
	l.set(RunnerVar{Key: "CI_REPOSITORY_URL", Value: repoURL, Masked: false})
	if sp.ParallelTotal > 0 {
		l.pub("CI_NODE_INDEX", strconv.Itoa(sp.ParallelIndex))
		l.pub("CI_NODE_TOTAL", strconv.Itoa(sp.ParallelTotal))
	} else {
		l.pub("CI_NODE_TOTAL", "1")
	}
	if sp.Environment != nil && sp.Environment.Name != "" {
		l.pub("CI_ENVIRONMENT_NAME", sp.Environment.Name)
		l.pub("CI_ENVIRONMENT_SLUG", Slug(sp.Environment.Name))
		if sp.Environment.URL != "" {
			l.pub("CI_ENVIRONMENT_URL", sp.Environment.URL)
		}
	}
	for _, v := range sp.GlobalVariables {
		l.set(RunnerVar{Key: v.Key, Value: v.Value, Public: true, Raw: v.Raw})
	}
	for _, v := range sp.Variables {
		l.set(RunnerVar{Key: v.Key, Value: v.Value, Public: true, Raw: v.Raw})
	}
	// GitLab: dotenv variables "take precedence over job variables and
	// default variables defined in .gitlab-ci.yml, but not over project,
	// group, instance, or pipeline variables".
	dv, err := e.DependencyDotenv(ctx, j, sp)
	if err != nil {
		return nil, err
	}
	for _, v := range dv {
		l.set(v)
	}
	pvs, err := e.projectVariables(ctx, p.ID, pl.Protected)
	if err != nil {
		return nil, err
	}
	if sp.Environment != nil && sp.Environment.Name != "" {
		all, err := e.Store.ProjectVariables(ctx, p.ID)
		if err != nil {
			return nil, err
		}
		for _, v := range all {
			if v.EnvironmentScope == "*" || v.EnvironmentScope == "" || (v.Protected && !pl.Protected) {
				continue
			}
			if ok, _ := path.Match(v.EnvironmentScope, sp.Environment.Name); ok {
				val, err := e.Secrets.Open(v.ValueEnc)
				if err != nil {
					return nil, err
				}
				pvs = append(pvs, RunnerVar{Key: v.Key, Value: val, Masked: v.Masked, File: v.VariableType == "file", Raw: v.Raw})
			}
		}
	}
	for _, v := range pvs {
		l.set(v)
	}
	plv, err := e.pipelineVariables(ctx, pl.ID)
	if err != nil {
		return nil, err
	}
	for _, v := range plv {
		l.set(v)
	}
	for _, v := range sp.PlayVariables {
		l.set(RunnerVar{Key: v.Key, Value: v.Value})
	}
	return l.list(), nil
}

// MaskedValues lists the values a job's trace must never show.
func MaskedValues(vars []RunnerVar) []string {
	var out []string
	for _, v := range vars {
		if v.Masked && v.Value != "" {
			out = append(out, v.Value)
		}
	}
	return out
}

// configTimeVars are the variables known before the CI file is read (what
// GitLab lets include: and expand_vars use): predefined, project and the
// request's own variables, not the file's.
func (e *Engine) configTimeVars(p *store.Project, pl *store.Pipeline, c *gitrepo.Commit, u *store.User, pvs []RunnerVar, req []Var) *varList {
	l := newVarList()
	e.pipelinePredefined(l, p, pl, c, u)
	for _, v := range pvs {
		l.set(v)
	}
	for _, v := range req {
		l.set(RunnerVar{Key: v.Key, Value: v.Value, File: v.File, Raw: v.Raw})
	}
	return l
}

// configVariables turns a variable list into expand_vars' lookup; masked
// variables say so, and are refused there.
func configVariables(l *varList) ciconfig.VarLookup {
	return func(name string) (string, bool, bool) {
		v, ok := l.vals[name]
		return v.Value, v.Masked, ok
	}
}
