package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/kilnci/kiln/internal/access"
	"github.com/kilnci/kiln/internal/pipeline"
	"github.com/kilnci/kiln/internal/schedule/cronspec"
	"github.com/kilnci/kiln/internal/store"
)

// ScheduleHooks connect the schedules API to the scheduler loop; the
// schedule wiring (internal/server/wire_schedules.go) fills Deps.Schedules.
type ScheduleHooks interface {
	// Changed wakes the scheduler after a schedule was created, edited or
	// deleted, so that a new earliest due time is honoured at once.
	Changed()
	// Play creates a pipeline for sc now, as u, and records it as the
	// schedule's last pipeline. Refusals are *pipeline.CreateError.
	Play(ctx context.Context, sc *store.Schedule, u *store.User) (*store.Pipeline, error)
}

// Limits on schedule input; GitLab has none this tight, but nothing real
// comes near them and a description is shown in lists.
const (
	maxScheduleDescription = 1000
	maxScheduleVariables   = 200
	maxScheduleVarValue    = 10000
)

var scheduleVarKeyRE = regexp.MustCompile(`^[A-Za-z0-9_]{1,255}$`)

func (a *API) scheduleRoutes() {
	base := "/api/v4/projects/{id}/pipeline_schedules"
	one := base + "/{schedule_id}"
	a.handle("GET "+base, a.listSchedules)
	a.handle("POST "+base, a.createSchedule)
	a.handle("GET "+one, a.getSchedule)
	a.handle("PUT "+one, a.updateSchedule)
	a.handle("DELETE "+one, a.deleteSchedule)
	a.handle("POST "+one+"/take_ownership", a.takeScheduleOwnership)
	a.handle("POST "+one+"/play", a.playSchedule)
	a.handle("GET "+one+"/pipelines", a.schedulePipelines)
	a.handle("GET "+one+"/runs", a.scheduleRuns)
	a.handle("POST "+one+"/variables", a.createScheduleVariable)
	a.handle("PUT "+one+"/variables/{key}", a.updateScheduleVariable)
	a.handle("DELETE "+one+"/variables/{key}", a.deleteScheduleVariable)
}

func (a *API) schedulesChanged() {
	if a.Schedules != nil {
		a.Schedules.Changed()
	}
}

// ScheduleJSON renders GitLab's PipelineSchedule entity; detail adds
// last_pipeline, and variables when showVars (GitLab shows them to the
// owner and to maintainers). Kiln adds last_error (why the latest run made
// no pipeline) and cron_description.
func (a *API) ScheduleJSON(ctx context.Context, p *store.Project, sc *store.Schedule, detail, showVars bool) map[string]any {
	m := map[string]any{
		"id": sc.ID, "description": sc.Description, "ref": sc.Ref, "cron": sc.Cron, "cron_timezone": sc.CronTimezone,
		"next_run_at": isoTime(sc.NextRunAt), "active": sc.Active,
		"created_at": isoTime(sc.CreatedAt), "updated_at": isoTime(sc.UpdatedAt),
		"owner": nil, "last_error": nilIfEmpty(sc.LastError), "inputs": scheduleInputsJSON(sc.Inputs),
	}
	if d, err := cronspec.Describe(sc.Cron); err == nil {
		m["cron_description"] = d
	}
	if u, err := a.Store.UserByID(ctx, sc.OwnerID); err == nil {
		m["owner"] = a.userBasic(u)
	}
	if !detail {
		return m
	}
	m["last_pipeline"] = nil
	if sc.LastPipelineID != 0 {
		if pl, err := a.Store.PipelineByID(ctx, sc.LastPipelineID); err == nil {
			m["last_pipeline"] = a.PipelineBasicJSON(p, pl)
		}
	}
	if showVars {
		vars := []map[string]any{}
		if stored, err := a.Store.ScheduleVariables(ctx, sc.ID); err == nil {
			for _, v := range stored {
				vars = append(vars, a.scheduleVarJSON(v))
			}
		}
		m["variables"] = vars
	}
	return m
}

func (a *API) scheduleVarJSON(v store.ScheduleVariable) map[string]any {
	val, err := a.Secrets.Open(v.ValueEnc)
	if err != nil {
		val = ""
	}
	return map[string]any{"key": v.Key, "value": val, "variable_type": v.VariableType, "raw": false}
}

// scheduleAccess is what a caller may do with one schedule, by GitLab's
// PipelineSchedulePolicy: read with Reporter; play with Developer; edit
// (and manage its variables) as its owner with Developer, or as an
// administrator; delete and take ownership as its owner or a Maintainer.
type scheduleAccess struct {
	p      *store.Project
	sc     *store.Schedule
	level  int
	owner  bool
	admin  bool
	isUser bool
}

func (s *scheduleAccess) canUpdate() bool {
	return s.admin || (s.owner && access.At(s.level, access.Developer))
}
func (s *scheduleAccess) canAdmin() bool {
	return s.admin || access.At(s.level, access.Maintainer) || (s.owner && access.At(s.level, access.Developer))
}
func (s *scheduleAccess) canSeeVars() bool { return s.canAdmin() }
func (s *scheduleAccess) require(ok bool) error {
	if ok {
		return nil
	}
	if !s.isUser {
		return errUnauthorized
	}
	return errForbidden
}

// scheduleAs resolves the schedule for a signed-in caller and checks that
// need holds for the caller's access.
func (a *API) scheduleAs(r *http.Request, c *reqCtx, need func(*scheduleAccess) bool) (*scheduleAccess, error) {
	if err := c.requireUser(); err != nil {
		return nil, err
	}
	acc, err := a.schedule(r, c)
	if err != nil {
		return nil, err
	}
	return acc, acc.require(need(acc))
}

// schedule resolves {id} and {schedule_id} with the caller's access.
func (a *API) schedule(r *http.Request, c *reqCtx) (*scheduleAccess, error) {
	p, level, err := a.project(r, c, access.Reporter)
	if err != nil {
		return nil, err
	}
	id, err := strconv.ParseInt(r.PathValue("schedule_id"), 10, 64)
	if err != nil {
		return nil, errParam("pipeline_schedule_id is invalid")
	}
	sc, err := a.Store.ProjectSchedule(c.ctx, p.ID, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errNotFound("Pipeline Schedule")
	} else if err != nil {
		return nil, err
	}
	acc := &scheduleAccess{p: p, sc: sc, level: level, isUser: c.user != nil}
	if c.user != nil {
		acc.owner = c.user.ID == sc.OwnerID
		acc.admin = c.user.IsAdmin
	}
	return acc, nil
}

func (a *API) listSchedules(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	p, _, err := a.project(r, c, access.Reporter)
	if err != nil {
		return err
	}
	scope := c.params.String("scope")
	if scope != "" && scope != "active" && scope != "inactive" {
		return errParam("scope does not have a valid value")
	}
	page, err := paging(r)
	if err != nil {
		return err
	}
	list, total, err := a.Store.ListSchedules(c.ctx, store.ScheduleFilter{ProjectID: p.ID, Scope: scope}, page)
	if err != nil {
		return err
	}
	out := make([]map[string]any, 0, len(list))
	for _, sc := range list {
		out = append(out, a.ScheduleJSON(c.ctx, p, sc, false, false))
	}
	setPagination(w, r, page, total)
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) getSchedule(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	acc, err := a.schedule(r, c)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, a.ScheduleJSON(c.ctx, acc.p, acc.sc, true, acc.canSeeVars()))
	return nil
}

// scheduleInput validates the writable fields present in the request into
// sc, collecting GitLab's model errors ({"message": {"field": [...]}}).
func (a *API) scheduleInput(ctx context.Context, c *reqCtx, p *store.Project, sc *store.Schedule, creating bool) error {
	prm := c.params
	if creating {
		for _, k := range []string{"description", "ref", "cron"} {
			if _, err := prm.Required(k); err != nil {
				return err
			}
		}
	}
	invalid := map[string][]string{}
	if prm.Has("description") {
		d, ok := prm.Str("description")
		d = strings.TrimSpace(d)
		switch {
		case !ok:
			return errParam("description is invalid")
		case d == "":
			invalid["description"] = []string{"can't be blank"}
		case utf8.RuneCountInString(d) > maxScheduleDescription || !validText(d, 4*maxScheduleDescription):
			invalid["description"] = []string{fmt.Sprintf("is too long (maximum is %d characters) or contains control characters", maxScheduleDescription)}
		default:
			sc.Description = d
		}
	}
	if prm.Has("ref") {
		ref, ok := prm.Str("ref")
		ref = strings.TrimSpace(ref)
		switch {
		case !ok:
			return errParam("ref is invalid")
		case ref == "":
			invalid["ref"] = []string{"can't be blank"}
		case !validRefName(strings.TrimPrefix(strings.TrimPrefix(ref, "refs/heads/"), "refs/tags/")):
			invalid["ref"] = []string{"is invalid"}
		default:
			sc.Ref = a.expandScheduleRef(ctx, p, ref)
		}
	}
	if prm.Has("cron") {
		s, ok := prm.Str("cron")
		if !ok {
			return errParam("cron is invalid")
		}
		sc.Cron = strings.TrimSpace(s)
	}
	if prm.Has("cron_timezone") {
		s, ok := prm.Str("cron_timezone")
		if !ok {
			return errParam("cron_timezone is invalid")
		}
		sc.CronTimezone = strings.TrimSpace(s)
	}
	if sc.CronTimezone == "" && creating {
		sc.CronTimezone = "UTC"
	}
	// GitLab's validators say " is invalid syntax", leading space included.
	if _, err := cronspec.LoadZone(sc.CronTimezone); err != nil {
		invalid["cron_timezone"] = []string{" is invalid syntax"}
	}
	if _, err := cronspec.Parse(sc.Cron, "UTC"); err != nil {
		invalid["cron"] = []string{" is invalid syntax"}
	}
	if prm.Has("active") {
		v, _, err := prm.Bool("active")
		if err != nil {
			return err
		}
		sc.Active = v
	}
	if prm.Has("inputs") {
		in, err := scheduleInputs(prm.Value("inputs"))
		if err != nil {
			return err
		}
		sc.Inputs = in
	}
	if len(invalid) > 0 {
		return errMessage(http.StatusBadRequest, invalid)
	}
	// GitLab recomputes the next run on every save.
	next, err := cronspec.Next(sc.Cron, sc.CronTimezone, time.Now())
	if err != nil {
		return errValidation("cron", " is invalid syntax")
	}
	sc.NextRunAt = next
	return nil
}

// expandScheduleRef stores refs as GitLab does: a short name becomes
// refs/heads/x or refs/tags/x when exactly one of them exists; an ambiguous
// or unknown name is kept as given (its runs then report why they fail).
func (a *API) expandScheduleRef(ctx context.Context, p *store.Project, ref string) string {
	if strings.HasPrefix(ref, "refs/heads/") || strings.HasPrefix(ref, "refs/tags/") {
		return ref
	}
	_, berr := a.Repos.ResolveRef(ctx, p.FullPath, "refs/heads/"+ref)
	_, terr := a.Repos.ResolveRef(ctx, p.FullPath, "refs/tags/"+ref)
	switch {
	case berr == nil && terr != nil:
		return "refs/heads/" + ref
	case terr == nil && berr != nil:
		return "refs/tags/" + ref
	}
	return ref
}

// protectedRefDenied reports whether level may not run pipelines on the
// schedule's ref (access.PipelineDenial). A short name that is neither a
// branch nor a tag yet counts as protected if either kind of that name
// would be, so that a tag created later cannot turn a developer's schedule
// into a protected one (the engine refuses such runs too).
func (a *API) protectedRefDenied(ctx context.Context, p *store.Project, ref string, level int) bool {
	pol := access.New(a.Store)
	candidates := []string{ref}
	if !strings.HasPrefix(ref, "refs/heads/") && !strings.HasPrefix(ref, "refs/tags/") {
		candidates = []string{"refs/heads/" + ref, "refs/tags/" + ref}
	}
	for _, full := range candidates {
		protected, err := pol.Protected(ctx, p, full)
		if err != nil || access.PipelineDenial(level, protected, ref) != "" {
			return true
		}
	}
	return false
}

func (a *API) createSchedule(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	if err := c.requireUser(); err != nil {
		return err
	}
	p, level, err := a.project(r, c, access.Developer)
	if err != nil {
		return err
	}
	sc := &store.Schedule{ProjectID: p.ID, OwnerID: c.user.ID, Active: true}
	if err := a.scheduleInput(c.ctx, c, p, sc, true); err != nil {
		return err
	}
	if a.protectedRefDenied(c.ctx, p, sc.Ref, level) {
		return errForbidden
	}
	if err := a.Store.Write(c.ctx, func(tx *store.Tx) error { return tx.CreateSchedule(c.ctx, sc) }); err != nil {
		var le *store.LimitError
		if errors.As(err, &le) {
			return errMessage(http.StatusBadRequest, map[string][]string{"base": {le.Message}})
		}
		return err
	}
	a.schedulesChanged()
	writeJSON(w, http.StatusCreated, a.ScheduleJSON(c.ctx, p, sc, true, true))
	return nil
}

func (a *API) updateSchedule(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	acc, err := a.scheduleAs(r, c, (*scheduleAccess).canUpdate)
	if err != nil {
		return err
	}
	sc := *acc.sc
	if err := a.scheduleInput(c.ctx, c, acc.p, &sc, false); err != nil {
		return err
	}
	if sc.Ref != acc.sc.Ref && a.protectedRefDenied(c.ctx, acc.p, sc.Ref, acc.level) {
		return errForbidden
	}
	if err := a.Store.Write(c.ctx, func(tx *store.Tx) error { return tx.UpdateSchedule(c.ctx, &sc) }); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return errNotFound("Pipeline Schedule")
		}
		return err
	}
	a.schedulesChanged()
	writeJSON(w, http.StatusOK, a.ScheduleJSON(c.ctx, acc.p, &sc, true, acc.canSeeVars()))
	return nil
}

func (a *API) deleteSchedule(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	acc, err := a.scheduleAs(r, c, (*scheduleAccess).canAdmin)
	if err != nil {
		return err
	}
	err = a.Store.Write(c.ctx, func(tx *store.Tx) error { return tx.DeleteSchedule(c.ctx, acc.p.ID, acc.sc.ID) })
	if errors.Is(err, store.ErrNotFound) {
		return errNotFound("Pipeline Schedule")
	} else if err != nil {
		return err
	}
	a.schedulesChanged()
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) takeScheduleOwnership(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	if err := c.requireUser(); err != nil {
		return err
	}
	acc, err := a.schedule(r, c)
	if err != nil {
		return err
	}
	if acc.owner {
		writeJSON(w, http.StatusOK, a.ScheduleJSON(c.ctx, acc.p, acc.sc, true, acc.canSeeVars()))
		return nil
	}
	if err := acc.require(acc.canAdmin()); err != nil {
		return err
	}
	sc := *acc.sc
	sc.OwnerID = c.user.ID
	if err := a.Store.Write(c.ctx, func(tx *store.Tx) error { return tx.SetScheduleOwner(c.ctx, sc.ID, sc.OwnerID) }); err != nil {
		return err
	}
	a.schedulesChanged()
	writeJSON(w, http.StatusCreated, a.ScheduleJSON(c.ctx, acc.p, &sc, true, true))
	return nil
}

func (a *API) playSchedule(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	acc, err := a.scheduleAs(r, c, func(acc *scheduleAccess) bool { return access.At(acc.level, access.Developer) })
	if err != nil {
		return err
	}
	if a.protectedRefDenied(c.ctx, acc.p, acc.sc.Ref, acc.level) {
		return errForbidden
	}
	if a.Schedules == nil {
		return errMessage(http.StatusInternalServerError, "Unable to schedule pipeline run immediately")
	}
	_, err = a.Schedules.Play(c.ctx, acc.sc, c.user)
	var ce *pipeline.CreateError
	if errors.As(err, &ce) {
		// GitLab queues the run and answers 201 regardless; Kiln runs it
		// now and can say why nothing was created.
		return errMessage(http.StatusBadRequest, map[string][]string{"base": ce.Messages})
	} else if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, map[string]any{"message": "201 Created"})
	return nil
}

func (a *API) schedulePipelines(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	acc, err := a.schedule(r, c)
	if err != nil {
		return err
	}
	page, err := paging(r)
	if err != nil {
		return err
	}
	f := store.PipelineFilter{ProjectID: acc.p.ID, ScheduleID: acc.sc.ID, Sort: c.params.String("sort")}
	if f.Sort == "" {
		f.Sort = "asc" // GitLab lists a schedule's pipelines oldest first
	}
	pls, total, err := a.Store.ListPipelines(c.ctx, f, page)
	if err != nil {
		return err
	}
	out := make([]map[string]any, 0, len(pls))
	for _, pl := range pls {
		out = append(out, a.PipelineBasicJSON(acc.p, pl))
	}
	setPagination(w, r, page, total)
	writeJSON(w, http.StatusOK, out)
	return nil
}

// scheduleRuns is a Kiln extension: the schedule's recent runs (cron and
// play) with their outcome, newest first, like a webhook's delivery log.
func (a *API) scheduleRuns(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	acc, err := a.schedule(r, c)
	if err != nil {
		return err
	}
	runs, err := a.Store.ScheduleRuns(c.ctx, acc.sc.ID, 100)
	if err != nil {
		return err
	}
	out := make([]map[string]any, 0, len(runs))
	for _, run := range runs {
		m := map[string]any{"id": run.ID, "kind": run.Kind, "result": run.Result, "reason": nilIfEmpty(run.Reason),
			"scheduled_for": isoTimePtr(run.ScheduledFor), "created_at": isoTime(run.CreatedAt), "finished_at": isoTimePtr(run.FinishedAt),
			"pipeline_id": nil, "user": nil}
		if run.PipelineID != 0 {
			m["pipeline_id"] = run.PipelineID
		}
		if u, err := a.Store.UserByID(c.ctx, run.UserID); err == nil {
			m["user"] = a.userBasic(u)
		}
		out = append(out, m)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// scheduleVarInput reads value and variable_type.
func scheduleVarInput(c *reqCtx, v *store.ScheduleVariable, requireValue bool) (string, error) {
	value, ok := c.params.Str("value")
	if !c.params.Has("value") || c.params.Value("value") == nil {
		if requireValue {
			return "", errParam("value is missing")
		}
	} else if !ok {
		return "", errParam("value is invalid")
	} else if len(value) > maxScheduleVarValue {
		return "", errValidation("value", fmt.Sprintf("is too long (maximum is %d characters)", maxScheduleVarValue))
	}
	if c.params.Has("variable_type") {
		t := c.params.String("variable_type")
		if t != "env_var" && t != "file" {
			return "", errParam("variable_type does not have a valid value")
		}
		v.VariableType = t
	}
	if v.VariableType == "" {
		v.VariableType = "env_var"
	}
	return value, nil
}

func (a *API) createScheduleVariable(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	acc, err := a.scheduleAs(r, c, (*scheduleAccess).canUpdate)
	if err != nil {
		return err
	}
	key, err := c.params.Required("key")
	if err != nil {
		return err
	}
	if !scheduleVarKeyRE.MatchString(key) {
		return errValidation("key", "can contain only letters, digits and '_'.")
	}
	v := store.ScheduleVariable{Key: key}
	value, err := scheduleVarInput(c, &v, true)
	if err != nil {
		return err
	}
	existing, err := a.Store.ScheduleVariables(c.ctx, acc.sc.ID)
	if err != nil {
		return err
	}
	if len(existing) >= maxScheduleVariables {
		return errValidation("variables", fmt.Sprintf("are limited to %d per schedule", maxScheduleVariables))
	}
	v.ValueEnc = a.Secrets.Seal(value)
	err = a.Store.Write(c.ctx, func(tx *store.Tx) error { return tx.CreateScheduleVariable(c.ctx, acc.sc.ID, v) })
	if errors.Is(err, store.ErrConflict) {
		return errValidation("key", "("+key+") has already been taken")
	} else if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, map[string]any{"key": key, "value": value, "variable_type": v.VariableType, "raw": false})
	return nil
}

func (a *API) findScheduleVariable(c *reqCtx, acc *scheduleAccess, key string) (*store.ScheduleVariable, error) {
	vars, err := a.Store.ScheduleVariables(c.ctx, acc.sc.ID)
	if err != nil {
		return nil, err
	}
	for i := range vars {
		if vars[i].Key == key {
			return &vars[i], nil
		}
	}
	return nil, errNotFound("Variable")
}

func (a *API) updateScheduleVariable(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	acc, err := a.scheduleAs(r, c, (*scheduleAccess).canUpdate)
	if err != nil {
		return err
	}
	v, err := a.findScheduleVariable(c, acc, r.PathValue("key"))
	if err != nil {
		return err
	}
	value, err := scheduleVarInput(c, v, false)
	if err != nil {
		return err
	}
	if c.params.Has("value") {
		v.ValueEnc = a.Secrets.Seal(value)
	} else if value, err = a.Secrets.Open(v.ValueEnc); err != nil {
		return err
	}
	err = a.Store.Write(c.ctx, func(tx *store.Tx) error { return tx.UpdateScheduleVariable(c.ctx, acc.sc.ID, *v) })
	if errors.Is(err, store.ErrNotFound) {
		return errNotFound("Variable")
	} else if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"key": v.Key, "value": value, "variable_type": v.VariableType, "raw": false})
	return nil
}

func (a *API) deleteScheduleVariable(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	acc, err := a.scheduleAs(r, c, (*scheduleAccess).canUpdate)
	if err != nil {
		return err
	}
	v, err := a.findScheduleVariable(c, acc, r.PathValue("key"))
	if err != nil {
		return err
	}
	err = a.Store.Write(c.ctx, func(tx *store.Tx) error { return tx.DeleteScheduleVariable(c.ctx, acc.sc.ID, v.Key) })
	if errors.Is(err, store.ErrNotFound) {
		return errNotFound("Variable")
	} else if err != nil {
		return err
	}
	// GitLab answers 202 Accepted with the deleted variable.
	writeJSON(w, http.StatusAccepted, a.scheduleVarJSON(*v))
	return nil
}

// maxScheduleInputs is GitLab's limit of 20 inputs.
const maxScheduleInputs = 20

// scheduleInputs reads a schedule's `inputs` as GitLab takes them: a list
// of {name, value} (JSON, or inputs[][name]/inputs[][value] form fields),
// stored as a JSON object. The values are checked against the CI file's
// spec when a run creates its pipeline (the file can change meanwhile).
func scheduleInputs(v any) (string, error) {
	list, ok := v.([]any)
	if !ok {
		if s, isStr := v.(string); isStr && s == "" {
			return "", nil
		}
		return "", errParam("inputs is invalid")
	}
	if len(list) > maxScheduleInputs {
		return "", errParam(fmt.Sprintf("inputs is invalid (at most %d inputs)", maxScheduleInputs))
	}
	out := map[string]any{}
	for _, e := range list {
		m, ok := e.(map[string]any)
		if !ok {
			return "", errParam("inputs is invalid")
		}
		name, ok := m["name"].(string)
		if !ok || name == "" || len(name) > 255 {
			return "", errParam("inputs[name] is missing")
		}
		if _, dup := out[name]; dup {
			return "", errParam("inputs[name] is duplicated: " + name)
		}
		if _, given := m["value"]; !given {
			return "", errParam("inputs[value] is missing")
		}
		out[name] = m["value"]
	}
	if len(out) == 0 {
		return "", nil
	}
	b, err := json.Marshal(out)
	if err != nil {
		return "", errParam("inputs is invalid")
	}
	return string(b), nil
}

// scheduleInputsJSON answers a schedule's inputs as GitLab lists them:
// [{name, value}], by name.
func scheduleInputsJSON(stored string) []map[string]any {
	out := []map[string]any{}
	var m map[string]any
	if stored == "" || json.Unmarshal([]byte(stored), &m) != nil {
		return out
	}
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		out = append(out, map[string]any{"name": k, "value": m[k]})
	}
	return out
}
