package api

import (
	"context"
	"errors"
	"net/http"
	"path"
	"strconv"
	"strings"

	"github.com/kilnci/kiln/internal/access"
	"github.com/kilnci/kiln/internal/ciconfig"
	"github.com/kilnci/kiln/internal/gitrepo"
	"github.com/kilnci/kiln/internal/store"
)

func (a *API) lintRoutes() {
	a.handle("POST /api/v4/projects/{id}/ci/lint", a.lintContent)
	a.handle("GET /api/v4/projects/{id}/ci/lint", a.lintProject)
}

// maxLintContent bounds the content the lint API parses; ciconfig has its
// own limits on what the YAML expands to.
const maxLintContent = 1 << 20

// repoFiles reads a project's files at one commit for include:local and
// rules:exists, and remembers which files were included (the lint API's
// "includes").
type repoFiles struct {
	ctx      context.Context
	a        *API
	p        *store.Project
	sha      string
	included []string
}

func (f *repoFiles) ReadFile(p string) ([]byte, error) {
	clean := strings.TrimPrefix(path.Clean("/"+p), "/")
	data, _, err := f.a.Repos.ReadFile(f.ctx, f.p.FullPath, f.sha, clean)
	if err == nil {
		f.included = append(f.included, clean)
	}
	return data, err
}

// existsReader is the optional part of the repository layer that answers
// rules:exists; the gitrepo store has it, test doubles may not.
type existsReader interface {
	Exists(ctx context.Context, repo, sha string, globs []string) (bool, error)
}

func (f *repoFiles) Exists(globs []string) (bool, error) {
	if e, ok := f.a.Repos.(existsReader); ok {
		return e.Exists(f.ctx, f.p.FullPath, f.sha, globs)
	}
	return false, nil
}

func (f *repoFiles) includesJSON(a *API) []map[string]any {
	out := []map[string]any{}
	for _, loc := range f.included {
		base := a.ExternalURL + "/" + f.p.FullPath + "/-/"
		out = append(out, map[string]any{
			"type": "local", "location": loc, "blob": base + "blob/" + f.sha + "/" + loc, "raw": base + "raw/" + f.sha + "/" + loc,
			"extra": map[string]any{}, "context_project": f.p.FullPath, "context_sha": f.sha,
		})
	}
	return out
}

// lintRun is one lint request after its parameters are read.
type lintRun struct {
	content     []byte
	sha         string // commit include:local reads from
	dryRun      bool
	dryRunRef   gitrepo.Ref
	includeJobs bool
}

// lint validates content, simulating a push pipeline on dryRunRef when
// dryRun is set, and renders GitLab's lint result.
func (a *API) lint(ctx context.Context, p *store.Project, run lintRun) map[string]any {
	files := &repoFiles{ctx: ctx, a: a, p: p, sha: run.sha}
	var res ciconfig.LintResult
	if strings.TrimSpace(string(run.content)) == "" {
		res = ciconfig.LintResult{Errors: []string{"Please provide content of .gitlab-ci.yml"}, Warnings: []string{}, Jobs: []ciconfig.LintJob{}}
	} else {
		var ec *ciconfig.EvalContext
		if run.dryRun {
			ec = a.lintEvalContext(p, run.dryRunRef, files)
		}
		if run.sha == "" {
			res = ciconfig.Lint(run.content, ciconfig.Options{}, ec)
		} else {
			res = ciconfig.Lint(run.content, ciconfig.Options{Files: files}, ec)
		}
	}
	m := map[string]any{
		"valid": res.Valid, "errors": nonNilStrings(res.Errors), "warnings": nonNilStrings(res.Warnings),
		"merged_yaml": nilIfEmpty(res.MergedYAML), "includes": files.includesJSON(a),
	}
	if run.includeJobs {
		jobs := res.Jobs
		if jobs == nil {
			jobs = []ciconfig.LintJob{}
		}
		m["jobs"] = jobs
	}
	return m
}

func nonNilStrings(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// lintEvalContext is the context a dry run evaluates rules in: a push
// pipeline on the ref with the predefined variables rules usually test.
// Project variables are left out on purpose: lint output is readable by
// developers, who may not read protected values.
func (a *API) lintEvalContext(p *store.Project, ref gitrepo.Ref, files *repoFiles) *ciconfig.EvalContext {
	vars := map[string]string{
		"CI": "true", "GITLAB_CI": "true", "CI_PIPELINE_SOURCE": "push", "CI_PROJECT_PATH": p.FullPath,
		"CI_PROJECT_NAME": p.Path, "CI_PROJECT_ID": strconv.FormatInt(p.ID, 10), "CI_DEFAULT_BRANCH": p.DefaultBranch,
		"CI_COMMIT_REF_NAME": ref.Name, "CI_COMMIT_SHA": ref.SHA, "CI_SERVER_URL": a.ExternalURL,
		"CI_PROJECT_NAMESPACE": path.Dir(p.FullPath),
	}
	if ref.Tag {
		vars["CI_COMMIT_TAG"] = ref.Name
	} else {
		vars["CI_COMMIT_BRANCH"] = ref.Name
	}
	return &ciconfig.EvalContext{
		Source: "push", Ref: ref.Name, Tag: ref.Tag, ProjectPath: p.FullPath,
		Variables: func(k string) (string, bool) { v, ok := vars[k]; return v, ok },
		Exists:    files.Exists,
	}
}

// resolveLintRef resolves a branch or tag for dry runs, defaulting to the
// default branch.
func (a *API) resolveLintRef(ctx context.Context, p *store.Project, ref string) (gitrepo.Ref, error) {
	if ref == "" {
		ref = p.DefaultBranch
	}
	res, err := a.Repos.ResolveRef(ctx, p.FullPath, ref)
	if err != nil {
		return res, err
	}
	return res, nil
}

func (a *API) lintContent(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	if err := c.requireUser(); err != nil {
		return err
	}
	p, _, err := a.project(r, c, access.Developer)
	if err != nil {
		return err
	}
	if !c.params.Has("content") || c.params.Value("content") == nil {
		return errParam("content is missing")
	}
	content, ok := c.params.Str("content")
	if !ok {
		return errParam("content is invalid")
	}
	if len(content) > maxLintContent {
		return errParam("content is too long")
	}
	run := lintRun{content: []byte(content)}
	if run.dryRun, _, err = c.params.Bool("dry_run"); err != nil {
		return err
	}
	if run.includeJobs, _, err = c.params.Bool("include_jobs"); err != nil {
		return err
	}
	ref, err := a.resolveLintRef(c.ctx, p, c.params.String("ref"))
	switch {
	case err == nil:
		run.sha, run.dryRunRef = ref.SHA, ref
	case run.dryRun:
		writeJSON(w, http.StatusOK, lintFailure("Reference not found"))
		return nil
	}
	writeJSON(w, http.StatusOK, a.lint(c.ctx, p, run))
	return nil
}

func lintFailure(msg string) map[string]any {
	return map[string]any{"valid": false, "errors": []string{msg}, "warnings": []string{}, "merged_yaml": nil, "includes": []any{}}
}

func (a *API) lintProject(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	if err := c.requireUser(); err != nil {
		return err
	}
	p, _, err := a.project(r, c, access.Developer)
	if err != nil {
		return err
	}
	run := lintRun{}
	if run.dryRun, _, err = c.params.Bool("dry_run"); err != nil {
		return err
	}
	if run.includeJobs, _, err = c.params.Bool("include_jobs"); err != nil {
		return err
	}
	// content_ref (or the older sha) picks the file; dry_run_ref (or the
	// older ref) the branch the simulated pipeline runs for.
	contentRef := c.params.String("content_ref")
	if contentRef == "" {
		contentRef = c.params.String("sha")
	}
	dryRef := c.params.String("dry_run_ref")
	if dryRef == "" {
		dryRef = c.params.String("ref")
	}
	if len(contentRef) > 1024 || len(dryRef) > 1024 {
		return errParam("content_ref is invalid")
	}
	sha, err := a.resolveCommitish(c.ctx, p, contentRef)
	if err != nil {
		return err
	}
	if run.dryRun {
		if dryRef == "" && contentRef != "" {
			dryRef = contentRef
		}
		ref, err := a.resolveLintRef(c.ctx, p, dryRef)
		if err != nil {
			writeJSON(w, http.StatusOK, lintFailure("Reference not found"))
			return nil
		}
		run.dryRunRef = ref
	}
	cfgPath := p.CIConfigPath
	if cfgPath == "" {
		cfgPath = ".gitlab-ci.yml"
	}
	data, _, err := a.Repos.ReadFile(c.ctx, p.FullPath, sha, cfgPath)
	if err != nil && !errors.Is(err, gitrepo.ErrFileNotFound) {
		if errors.Is(err, gitrepo.ErrFileTooLarge) {
			writeJSON(w, http.StatusOK, lintFailure("The CI configuration file is too large"))
			return nil
		}
		return err
	}
	run.content, run.sha = data, sha
	writeJSON(w, http.StatusOK, a.lint(c.ctx, p, run))
	return nil
}
