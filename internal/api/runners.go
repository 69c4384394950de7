package api

import (
	"context"
	"errors"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kilnci/kiln/internal/access"
	"github.com/kilnci/kiln/internal/artifacts"
	"github.com/kilnci/kiln/internal/blob"
	"github.com/kilnci/kiln/internal/store"
	"github.com/kilnci/kiln/internal/traces"
)

// RunnerHooks connect the REST API to the runner protocol's state without
// the api package importing runnerapi (adapters do not import each other).
// The runner wiring (server/wire_runners.go) fills them in; every field may
// be nil in tests that do not wire runners.
type RunnerHooks struct {
	// JobToken authenticates a CI job token: it returns the running job and
	// the user it runs as. Tokens are revoked when their job finishes.
	JobToken func(ctx context.Context, token string) (*store.Job, *store.User, bool)
	// IsStuck reports a pending job no online runner can take (job JSON "stuck").
	IsStuck func(ctx context.Context, j *store.Job) bool
	// Traces and Artifacts are the job log and archive stores.
	Traces    *traces.Store
	Artifacts *artifacts.Store
	// CreateRunner stores a runner and returns its new glrt- token.
	CreateRunner func(ctx context.Context, r *store.Runner) (string, error)
	// ResetRunnerToken replaces a runner's token.
	ResetRunnerToken func(ctx context.Context, id int64) (string, error)
	// ResetRegistrationToken makes a new legacy registration token.
	ResetRegistrationToken func(ctx context.Context) (string, error)
	// Changed tells the runner protocol that runners were edited or deleted.
	Changed func()
	// ServeArtifacts writes a job's archive (or a 404).
	ServeArtifacts func(w http.ResponseWriter, r *http.Request, j *store.Job)
}

// JobTokenUser authenticates a CI job token from the JOB-TOKEN header or the
// job_token parameter, for endpoints GitLab opens to CI_JOB_TOKEN. ok is
// false when there is no job token in the request or it is not valid.
func (a *API) JobTokenUser(r *http.Request) (u *store.User, j *store.Job, ok bool) {
	tok := r.Header.Get("JOB-TOKEN")
	if tok == "" {
		tok = r.URL.Query().Get("job_token")
	}
	if tok == "" || a.Runners.JobToken == nil {
		return nil, nil, false
	}
	j, u, ok = a.Runners.JobToken(r.Context(), tok)
	return u, j, ok
}

// IsJobStuck is the "stuck" field of job JSON.
func (a *API) IsJobStuck(ctx context.Context, j *store.Job) bool {
	if a.Runners.IsStuck == nil {
		return false
	}
	return a.Runners.IsStuck(ctx, j)
}

func (a *API) runnerRoutes() {
	a.handle("POST /api/v4/user/runners", a.createRunner)
	a.handle("GET /api/v4/runners", a.listMyRunners)
	a.handle("GET /api/v4/runners/all", a.listAllRunners)
	a.handle("POST /api/v4/runners/reset_registration_token", a.resetRegistrationToken)
	a.handle("GET /api/v4/runners/{id}", a.getRunner)
	a.handle("PUT /api/v4/runners/{id}", a.updateRunner)
	a.handle("DELETE /api/v4/runners/{id}", a.deleteRunner)
	a.handle("POST /api/v4/runners/{id}/reset_authentication_token", a.resetRunnerToken)
	a.handle("GET /api/v4/projects/{id}/runners", a.listProjectRunners)

	a.handle("GET /api/v4/projects/{id}/jobs/{job_id}/trace", a.jobTrace)
	a.handle("GET /api/v4/projects/{id}/jobs/{job_id}/artifacts", a.jobArtifacts)
	a.handle("GET /api/v4/projects/{id}/jobs/artifacts/{ref_name}/download", a.jobArtifactsByRef)
}

// runnerStatus is GitLab's runner status: online when contacted within two
// hours, stale after a week without contact, never_contacted before the
// first poll.
func runnerStatus(r *store.Runner, now time.Time) string {
	switch {
	case r.ContactedAt == nil && now.Sub(r.CreatedAt) > 7*24*time.Hour:
		return "stale"
	case r.ContactedAt == nil:
		return "never_contacted"
	case now.Sub(*r.ContactedAt) <= 2*time.Hour:
		return "online"
	case now.Sub(*r.ContactedAt) > 7*24*time.Hour:
		return "stale"
	}
	return "offline"
}

// RunnerJSON is GitLab's runner entity (the detailed form when detail is set).
func (a *API) RunnerJSON(r *store.Runner, detail bool) map[string]any {
	now := time.Now()
	status := runnerStatus(r, now)
	m := map[string]any{
		"id": r.ID, "description": r.Description, "name": nil, "ip_address": nilIfEmpty(r.IPAddress),
		"active": !r.Paused, "paused": r.Paused, "is_shared": r.RunnerType == "instance_type", "runner_type": r.RunnerType,
		"online": status == "online", "status": status, "created_at": isoTime(r.CreatedAt), "builtin": r.Builtin,
	}
	if detail {
		tags := r.Tags
		if tags == nil {
			tags = []string{}
		}
		var maxTimeout any
		if r.MaximumTimeout > 0 {
			maxTimeout = r.MaximumTimeout
		}
		m["tag_list"] = tags
		m["run_untagged"] = r.RunUntagged
		m["locked"] = r.Locked
		m["access_level"] = r.AccessLevel
		m["maximum_timeout"] = maxTimeout
		m["version"] = nilIfEmpty(r.Version)
		m["revision"] = nil
		m["platform"] = nilIfEmpty(r.Platform)
		m["architecture"] = nilIfEmpty(r.Architecture)
		m["contacted_at"] = isoTimePtr(r.ContactedAt)
		m["maintenance_note"] = nil
		projects := []any{}
		if r.ProjectID != 0 {
			if p, err := a.Store.ProjectByID(context.Background(), r.ProjectID); err == nil {
				projects = append(projects, map[string]any{"id": p.ID, "name": p.Name, "path": p.Path, "path_with_namespace": p.FullPath})
			}
		}
		m["projects"] = projects
		groups := []any{}
		if r.GroupID != 0 {
			if g, err := a.Store.NamespaceByID(context.Background(), r.GroupID); err == nil {
				groups = append(groups, map[string]any{"id": g.ID, "name": g.Name, "web_url": a.ExternalURL + "/groups/" + g.FullPath})
			}
		}
		m["groups"] = groups
	}
	return m
}

// runnerSettings reads the editable settings shared by create and update.
func runnerSettings(c *reqCtx, r *store.Runner) error {
	p := c.params
	if p.Has("description") {
		r.Description = p.String("description")
		if len(r.Description) > 1024 {
			return errValidation("description", "is too long (maximum is 1024 characters)")
		}
	}
	if p.Has("tag_list") {
		tags, _, err := p.List("tag_list")
		if err != nil {
			return err
		}
		r.Tags = cleanTags(tags)
	}
	for key, dst := range map[string]*bool{"run_untagged": &r.RunUntagged, "locked": &r.Locked, "paused": &r.Paused} {
		v, ok, err := p.Bool(key)
		if err != nil {
			return err
		}
		if ok {
			*dst = v
		}
	}
	if v, ok, err := p.Bool("active"); err != nil {
		return err
	} else if ok && !p.Has("paused") {
		r.Paused = !v
	}
	if p.Has("access_level") {
		al := p.String("access_level")
		if al != "not_protected" && al != "ref_protected" {
			return errParam("access_level does not have a valid value")
		}
		r.AccessLevel = al
	}
	if n, ok, err := p.Int("maximum_timeout"); err != nil {
		return err
	} else if ok {
		if n != 0 && n < 600 {
			return errValidation("maximum_timeout", "needs to be at least 10 minutes")
		}
		if n < 0 {
			return errParam("maximum_timeout is invalid")
		}
		r.MaximumTimeout = n
	}
	return nil
}

func cleanTags(in []string) []string {
	var out []string
	for _, t := range in {
		for _, p := range strings.Split(t, ",") {
			p = strings.TrimSpace(p)
			if p != "" && len(p) <= 255 && !slices.Contains(out, p) {
				out = append(out, p)
			}
		}
	}
	return out
}

// createRunner is POST /user/runners (GitLab 15.10+ runner creation).
func (a *API) createRunner(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	if err := c.requireUser(); err != nil {
		return err
	}
	if a.Runners.CreateRunner == nil {
		return errMessage(http.StatusServiceUnavailable, "503 Runners are not available")
	}
	typ, err := c.params.Required("runner_type")
	if err != nil {
		return err
	}
	run := &store.Runner{RunnerType: typ, RunUntagged: true, AccessLevel: "not_protected", CreatorID: c.user.ID}
	switch typ {
	case "instance_type":
		if !c.user.IsAdmin {
			return errForbidden
		}
	case "group_type":
		gid, ok, err := c.params.Int("group_id")
		if err != nil {
			return err
		}
		if !ok {
			return errParam("group_id is missing")
		}
		g, err := a.Store.NamespaceByID(c.ctx, gid)
		if err != nil || g.Kind != "group" {
			return errNotFound("Group")
		}
		level, err := access.New(a.Store).GroupLevel(c.ctx, g.ID, c.user)
		if err != nil {
			return err
		}
		if !access.At(level, access.Owner) {
			return errForbidden
		}
		run.GroupID = g.ID
	case "project_type":
		pid, ok, err := c.params.Int("project_id")
		if err != nil {
			return err
		}
		if !ok {
			return errParam("project_id is missing")
		}
		p, level, err := a.FindProject(c.ctx, c.user, strconv.FormatInt(pid, 10))
		if err != nil {
			return err
		}
		if !access.At(level, access.Maintainer) {
			return errForbidden
		}
		run.ProjectID = p.ID
	default:
		return errParam("runner_type does not have a valid value")
	}
	if err := runnerSettings(c, run); err != nil {
		return err
	}
	token, err := a.Runners.CreateRunner(c.ctx, run)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, map[string]any{"id": run.ID, "token": token, "token_expires_at": nil})
	return nil
}

func runnerFilter(c *reqCtx, r *http.Request) (store.RunnerFilter, error) {
	q := r.URL.Query()
	var f store.RunnerFilter
	if t := firstNonEmptyStr(q.Get("type"), q.Get("runner_type")); t != "" {
		if t != "instance_type" && t != "group_type" && t != "project_type" {
			return f, errParam("type does not have a valid value")
		}
		f.Type = t
	}
	switch q.Get("paused") {
	case "true":
		t := true
		f.Paused = &t
	case "false":
		t := false
		f.Paused = &t
	}
	switch q.Get("scope") {
	case "", "online", "offline", "stale", "never_contacted", "active", "paused":
	default:
		return f, errParam("scope does not have a valid value")
	}
	if tl := q.Get("tag_list"); tl != "" {
		f.Tags = cleanTags([]string{tl})
	}
	return f, nil
}

func firstNonEmptyStr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// listRunners lists with paging, applying the status scope in memory.
func (a *API) listRunners(w http.ResponseWriter, r *http.Request, f store.RunnerFilter) error {
	page, err := paging(r)
	if err != nil {
		return err
	}
	scope := firstNonEmptyStr(r.URL.Query().Get("scope"), r.URL.Query().Get("status"))
	var runners []*store.Runner
	var total int
	if scope == "" {
		if runners, total, err = a.Store.ListRunners(r.Context(), f, page); err != nil {
			return err
		}
	} else {
		all, _, err := a.Store.ListRunners(r.Context(), f, store.Page{Number: 1, PerPage: 100000})
		if err != nil {
			return err
		}
		now := time.Now()
		var keep []*store.Runner
		for _, run := range all {
			st := runnerStatus(run, now)
			if scope == st || (scope == "active" && !run.Paused) || (scope == "paused" && run.Paused) {
				keep = append(keep, run)
			}
		}
		total = len(keep)
		lo := min(page.Offset(), total)
		hi := min(lo+page.Limit(), total)
		runners = keep[lo:hi]
	}
	out := make([]any, 0, len(runners))
	for _, run := range runners {
		out = append(out, a.RunnerJSON(run, false))
	}
	setPagination(w, r, page, total)
	writeJSON(w, http.StatusOK, out)
	return nil
}

// listMyRunners is GET /runners: the runners the caller manages now (see
// runnerAccess), not the ones they once created.
func (a *API) listMyRunners(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	if err := c.requireUser(); err != nil {
		return err
	}
	f, err := runnerFilter(c, r)
	if err != nil {
		return err
	}
	f.ManagerID = c.user.ID
	return a.listRunners(w, r, f)
}

// listAllRunners is GET /runners/all (administrators).
func (a *API) listAllRunners(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	if err := c.requireAdmin(); err != nil {
		return err
	}
	f, err := runnerFilter(c, r)
	if err != nil {
		return err
	}
	return a.listRunners(w, r, f)
}

// listProjectRunners is GET /projects/:id/runners: the runners the project
// can use (its own, its group's and instance runners); maintainers only.
func (a *API) listProjectRunners(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	if err := c.requireUser(); err != nil {
		return err
	}
	p, level, err := a.project(r, c, access.Guest)
	if err != nil {
		return err
	}
	if !access.At(level, access.Maintainer) {
		return errForbidden
	}
	f, err := runnerFilter(c, r)
	if err != nil {
		return err
	}
	f.ProjectIDs = []int64{p.ID}
	f.GroupIDs = []int64{p.NamespaceID}
	f.InstanceToo = true
	return a.listRunners(w, r, f)
}

// runnerFor loads {id} for a caller who may see it (or, with manage,
// change it), as runnerAccess decides. A runner the caller may not see is
// "404 Runner Not Found" for every method, so that PUT and DELETE do not
// reveal that it exists; one they see but may not change is 403.
func (a *API) runnerFor(r *http.Request, c *reqCtx, manage bool) (*store.Runner, error) {
	if err := c.requireUser(); err != nil {
		return nil, err
	}
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		return nil, errNotFound("Runner")
	}
	run, err := a.Store.RunnerByID(c.ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errNotFound("Runner")
	} else if err != nil {
		return nil, err
	}
	see, change, err := a.runnerAccess(c.ctx, c.user, run)
	switch {
	case err != nil:
		return nil, err
	case !see:
		return nil, errNotFound("Runner")
	case manage && !change:
		return nil, errForbidden
	}
	return run, nil
}

// runnerAccess asks the access policy what u may do with run (see
// access.RunnerRights: current membership decides, not who created it).
func (a *API) runnerAccess(ctx context.Context, u *store.User, run *store.Runner) (see, manage bool, err error) {
	return access.New(a.Store).Runner(ctx, u, run)
}

func (a *API) getRunner(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	run, err := a.runnerFor(r, c, false)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, a.RunnerJSON(run, true))
	return nil
}

// updateRunner is PUT /runners/:id (pause/resume, tags, ...).
func (a *API) updateRunner(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	run, err := a.runnerFor(r, c, true)
	if err != nil {
		return err
	}
	if err := runnerSettings(c, run); err != nil {
		return err
	}
	if err := a.Store.Write(c.ctx, func(tx *store.Tx) error { return tx.UpdateRunner(c.ctx, run) }); err != nil {
		return err
	}
	if a.Runners.Changed != nil {
		a.Runners.Changed()
	}
	writeJSON(w, http.StatusOK, a.RunnerJSON(run, true))
	return nil
}

func (a *API) deleteRunner(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	run, err := a.runnerFor(r, c, true)
	if err != nil {
		return err
	}
	if err := a.Store.Write(c.ctx, func(tx *store.Tx) error { return tx.DeleteRunner(c.ctx, run.ID) }); err != nil {
		return err
	}
	if a.Runners.Changed != nil {
		a.Runners.Changed()
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) resetRunnerToken(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	run, err := a.runnerFor(r, c, true)
	if err != nil {
		return err
	}
	if a.Runners.ResetRunnerToken == nil {
		return errMessage(http.StatusServiceUnavailable, "503 Runners are not available")
	}
	token, err := a.Runners.ResetRunnerToken(c.ctx, run.ID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, map[string]any{"token": token, "token_expires_at": nil})
	return nil
}

// resetRegistrationToken is POST /runners/reset_registration_token: an
// administrator obtains the (legacy) instance registration token this way;
// only its hash is stored, so each call makes a new one.
func (a *API) resetRegistrationToken(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	if err := c.requireAdmin(); err != nil {
		return err
	}
	if a.Runners.ResetRegistrationToken == nil {
		return errMessage(http.StatusServiceUnavailable, "503 Runners are not available")
	}
	token, err := a.Runners.ResetRegistrationToken(c.ctx)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, map[string]any{"token": token, "token_expires_at": nil})
	return nil
}

// jobTokenBlocked applies a project's job-token allowlist setting
// (ci_job_token_scope_enabled): only its own jobs' tokens may read it, as
// the trigger API already enforces.
func jobTokenBlocked(p *store.Project, tokJob *store.Job) bool {
	return tokJob != nil && !access.JobTokenAllowed(p, tokJob.ProjectID)
}

func jobProjectOf(j *store.Job) int64 {
	if j == nil {
		return 0
	}
	return j.ProjectID
}

// readerOf resolves the caller for job endpoints GitLab opens to
// CI_JOB_TOKEN: the authenticated user, else the job token's user.
func (a *API) readerOf(r *http.Request, c *reqCtx) (*store.User, *store.Job) {
	if c.user != nil {
		return c.user, nil
	}
	if u, j, ok := a.JobTokenUser(r); ok {
		return u, j
	}
	return nil, nil
}

// projectJob resolves {id} and {job_id} for a caller with read access.
func (a *API) projectJob(r *http.Request, c *reqCtx) (*store.Job, error) {
	u, tokJob := a.readerOf(r, c)
	cc := *c
	cc.user = u
	p, level, err := a.FindProject(c.ctx, u, r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	if jobTokenBlocked(p, tokJob) {
		return nil, errForbidden
	}
	readable := access.CanReadVia(p, u, level, jobProjectOf(tokJob))
	if !readable {
		if u == nil {
			return nil, errUnauthorized
		}
		return nil, errForbidden
	}
	id, err := strconv.ParseInt(r.PathValue("job_id"), 10, 64)
	if err != nil {
		return nil, errNotFound("")
	}
	j, err := a.Store.JobByID(c.ctx, id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && j.ProjectID != p.ID) {
		return nil, errNotFound("")
	} else if err != nil {
		return nil, err
	}
	return j, nil
}

// jobTrace is GET /projects/:id/jobs/:job_id/trace: the raw log, partial
// while the job runs; 503 naming the object store (with Retry-After) when
// an archived log cannot be read from it.
func (a *API) jobTrace(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	j, err := a.projectJob(r, c)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if a.Runners.Traces == nil || j.ErasedAt != nil {
		w.WriteHeader(http.StatusOK)
		return nil
	}
	rc, size, err := a.Runners.Traces.Open(c.ctx, j.ID)
	if errors.Is(err, blob.ErrUnavailable) {
		a.Log.Error("reading a job log failed: object store unavailable", "job", j.ID, "err", err)
		return errUnavailable("the job log cannot be read")
	}
	if err != nil {
		return err
	}
	defer rc.Close()
	w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
	w.WriteHeader(http.StatusOK)
	io.Copy(w, rc)
	return nil
}

// jobArtifacts is GET /projects/:id/jobs/:job_id/artifacts.
func (a *API) jobArtifacts(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	j, err := a.projectJob(r, c)
	if err != nil {
		return err
	}
	if a.Runners.ServeArtifacts == nil {
		return errNotFound("")
	}
	a.Runners.ServeArtifacts(w, r, j)
	return nil
}

// jobArtifactsByRef is GET /projects/:id/jobs/artifacts/:ref_name/download?job=name:
// the latest successful job of that name on the ref.
func (a *API) jobArtifactsByRef(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	u, tokJob := a.readerOf(r, c)
	p, level, err := a.FindProject(c.ctx, u, r.PathValue("id"))
	if err != nil {
		return err
	}
	if jobTokenBlocked(p, tokJob) {
		return errForbidden
	}
	readable := access.CanReadVia(p, u, level, jobProjectOf(tokJob))
	if !readable {
		if u == nil {
			return errUnauthorized
		}
		return errForbidden
	}
	name := r.URL.Query().Get("job")
	if name == "" {
		return errParam("job is missing")
	}
	j, err := a.Store.LatestSuccessfulJob(c.ctx, p.ID, r.PathValue("ref_name"), name)
	if errors.Is(err, store.ErrNotFound) {
		return errNotFound("")
	} else if err != nil {
		return err
	}
	if a.Runners.ServeArtifacts == nil {
		return errNotFound("")
	}
	a.Runners.ServeArtifacts(w, r, j)
	return nil
}
