package web

import (
	"errors"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/kilnci/kiln/internal/access"
	"github.com/kilnci/kiln/internal/ciconfig"
	"github.com/kilnci/kiln/internal/gitrepo"
	"github.com/kilnci/kiln/internal/pipeline"
	"github.com/kilnci/kiln/internal/store"
)

// pipelineRow is one line of a pipeline list.
type pipelineRow struct {
	P *store.Pipeline
	// URL is the pipeline page.
	URL string
	// User started the pipeline (the trigger's owner for trigger pipelines).
	User *store.User
	// TriggerDescription is set for trigger pipelines whose trigger still exists.
	TriggerDescription string
	// VariableNames are a triggered pipeline's variables' names (never values).
	VariableNames []string
	// Stages is the mini graph: one status per stage, in order.
	Stages []miniStage
	// Upstream links the parent (or upstream) pipeline; Downstream the
	// pipelines this one's trigger jobs created. Child marks a row shown
	// under its parent.
	Upstream   *pipelineLink
	Downstream []pipelineLink
	Child      bool
}

// miniStage is one dot of a pipeline's mini graph.
type miniStage struct {
	Name, Status string
	Jobs         int
}

func (w *Web) pipelineRows(q *req, pls []*store.Pipeline) ([]pipelineRow, error) {
	users := newUserCache(w.Store)
	descs := map[int64]string{}
	rows := make([]pipelineRow, 0, len(pls))
	for _, p := range pls {
		row := pipelineRow{P: p, URL: projectURL(q.project) + "/-/pipelines/" + strconv.FormatInt(p.ID, 10), User: users.get(q.ctx, p.UserID)}
		if p.Source == "trigger" && p.TriggerID != 0 {
			d, ok := descs[p.TriggerID]
			if !ok {
				d, _ = w.Store.TriggerDescriptionByID(q.ctx, p.TriggerID)
				descs[p.TriggerID] = d
			}
			row.TriggerDescription = d
		}
		if p.Source == "trigger" {
			// Names only: the values are never decrypted for the list.
			vars, err := w.Store.PipelineVariables(q.ctx, p.ID)
			if err != nil {
				return nil, err
			}
			for _, v := range vars {
				row.VariableNames = append(row.VariableNames, v.Key)
			}
		}
		jobs, err := w.Store.JobsOfPipeline(q.ctx, p.ID)
		if err != nil {
			return nil, err
		}
		byStage := map[int][]jobCard{}
		names := map[int]string{}
		var order []int
		for _, j := range jobs {
			if j.Retried {
				continue
			}
			if _, ok := byStage[j.StageIdx]; !ok {
				order = append(order, j.StageIdx)
				names[j.StageIdx] = j.Stage
			}
			byStage[j.StageIdx] = append(byStage[j.StageIdx], jobCard{J: j})
			if j.DownstreamPipelineID != 0 {
				if link := w.pipelineLinkFor(q, j.DownstreamPipelineID); link != nil {
					row.Downstream = append(row.Downstream, *link)
				}
			}
		}
		sort.Ints(order)
		for _, i := range order {
			row.Stages = append(row.Stages, miniStage{Name: names[i], Status: stageStatus(byStage[i]), Jobs: len(byStage[i])})
		}
		if p.UpstreamPipelineID != 0 {
			row.Upstream = w.pipelineLinkFor(q, p.UpstreamPipelineID)
		}
		rows = append(rows, row)
	}
	// Children follow their parent when both are on the page.
	onPage := map[int64]bool{}
	for _, r := range rows {
		onPage[r.P.ID] = true
	}
	children := map[int64][]pipelineRow{}
	out := make([]pipelineRow, 0, len(rows))
	for i := range rows {
		if up := rows[i].P.UpstreamPipelineID; up != 0 && onPage[up] {
			rows[i].Child = true
			children[up] = append(children[up], rows[i])
		}
	}
	var add func(r pipelineRow, depth int)
	add = func(r pipelineRow, depth int) {
		out = append(out, r)
		if depth < 10 {
			for _, c := range children[r.P.ID] {
				add(c, depth+1)
			}
		}
	}
	for _, r := range rows {
		if !r.Child {
			add(r, 0)
		}
	}
	return out, nil
}

// pipelineSources are the values of the source filter.
func pipelineSources() []string {
	return []string{"push", "web", "trigger", "schedule", "api", "pipeline", "parent_pipeline"}
}

// pipelineStatuses are the values of the status filter.
func pipelineStatuses() []string {
	return []string{"created", "pending", "running", "success", "failed", "canceled", "skipped", "manual", "scheduled"}
}

type pipelineListData struct {
	Rows     []pipelineRow
	Pager    pager
	Status   string
	Source   string
	Ref      string
	Statuses []string
	Sources  []string
}

const perPage = 20

func (w *Web) pipelineList(q *req) {
	if !w.requireLevel(q, access.Reporter) {
		return
	}
	v := q.r.URL.Query()
	f := store.PipelineFilter{ProjectID: q.project.ID, Source: v.Get("source"), Ref: v.Get("ref")}
	if st := v.Get("status"); st != "" {
		f.Status = []string{st}
	}
	n := pageParam(q.r)
	pls, total, err := w.Store.ListPipelines(q.ctx, f, store.Page{Number: n, PerPage: perPage})
	if err != nil {
		w.internal(q, err)
		return
	}
	rows, err := w.pipelineRows(q, pls)
	if err != nil {
		w.internal(q, err)
		return
	}
	d := pipelineListData{Rows: rows, Pager: newPager(q.r, n, perPage, total), Status: v.Get("status"), Source: f.Source, Ref: f.Ref,
		Statuses: pipelineStatuses(), Sources: pipelineSources()}
	w.render(q, http.StatusOK, "pipelines", w.newPage(q, "Pipelines · "+q.project.Name, "pipelines", d))
}

// formVar is one row of a variables form.
type formVar struct{ Key, Value, Type string }

type newPipelineData struct {
	Ref       string
	Branches  []string
	Variables []formVar
	Errors    []string
	// Preview is what the form would run (the Preview button).
	Preview *pipeline.Preview
	// Inputs are the ref's spec:inputs, one control each.
	Inputs []ciconfig.InputField
	// InputsError is why the ref's inputs could not be read.
	InputsError []string
}

// newPipeline is the Run pipeline form. ?ref= chooses the ref whose
// spec:inputs are shown; ?inputs[NAME]= prefill them (and decide rules).
func (w *Web) newPipeline(q *req) {
	v := q.r.URL.Query()
	ref := strings.TrimSpace(v.Get("ref"))
	w.renderNewPipelineInputs(q, http.StatusOK, nil, ref, nil, nil, w.formInputs(q, v, ref))
}

func (w *Web) renderNewPipeline(q *req, status int, vars []formVar, ref string, errs []string) {
	w.renderNewPipelineInputs(q, status, vars, ref, errs, nil, nil)
}

// formInputs reads the inputs[NAME] fields of a form (the last value of
// each: a checkbox follows its hidden "false"), converted for the ref's
// spec: an array's textarea is one item a line or a JSON array; an empty
// field is left out, so the default applies.
func (w *Web) formInputs(q *req, form url.Values, ref string) map[string]any {
	if ref == "" {
		ref = q.project.DefaultBranch
	}
	types := map[string]string{}
	if fields, err := w.Engine.InputFields(q.ctx, q.project, ref, nil); err == nil {
		for _, f := range fields {
			types[f.Name] = f.Type
		}
	}
	var out map[string]any
	for k, vals := range form {
		name, ok := strings.CutPrefix(k, "inputs[")
		if !ok || !strings.HasSuffix(name, "]") || len(vals) == 0 {
			continue
		}
		name = strings.TrimSuffix(name, "]")
		val := vals[len(vals)-1]
		if strings.TrimSpace(val) == "" {
			continue
		}
		if out == nil {
			out = map[string]any{}
		}
		if types[name] == "array" {
			out[name] = ciconfig.FormArray(val)
		} else {
			out[name] = val
		}
	}
	return out
}

func (w *Web) renderNewPipelineInputs(q *req, status int, vars []formVar, ref string, errs []string, pv *pipeline.Preview, given map[string]any) {
	if !w.requireLevel(q, access.Developer) {
		return
	}
	if ref == "" {
		ref = q.project.DefaultBranch
	}
	fields, err := w.Engine.InputFields(q.ctx, q.project, ref, given)
	var inputsErr []string
	var ye *pipeline.YAMLError
	if errors.As(err, &ye) {
		inputsErr = ye.Messages
	}
	var names []string
	if bs, err := w.Repos.Branches(q.ctx, q.project.FullPath); err == nil {
		for _, b := range bs {
			names = append(names, b.Name)
		}
	}
	// A few empty rows so that variables can be given without JavaScript;
	// the script adds more on demand.
	for len(vars) < 3 {
		vars = append(vars, formVar{Type: "env_var"})
	}
	d := newPipelineData{Ref: ref, Branches: names, Variables: vars, Errors: errs, Preview: pv, Inputs: fields, InputsError: inputsErr}
	w.render(q, status, "pipeline_new", w.newPage(q, "Run pipeline · "+q.project.Name, "pipelines", d))
}

// formVariables reads the var_key/var_value/var_type columns of a form.
func formVariables(q *req) []formVar {
	f := q.r.PostForm
	keys, vals, types := f["var_key"], f["var_value"], f["var_type"]
	var out []formVar
	for i, k := range keys {
		v := formVar{Key: strings.TrimSpace(k), Type: "env_var"}
		if i < len(vals) {
			v.Value = vals[i]
		}
		if i < len(types) && types[i] == "file" {
			v.Type = "file"
		}
		if v.Key == "" && v.Value == "" {
			continue
		}
		out = append(out, v)
	}
	return out
}

func validVarKey(k string) bool {
	if k == "" || len(k) > 255 {
		return false
	}
	for _, c := range k {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

func (w *Web) runPipeline(q *req) {
	if !w.requireLevel(q, access.Developer) {
		return
	}
	ref := strings.TrimSpace(q.r.PostForm.Get("ref"))
	fvars := formVariables(q)
	inputs := w.formInputs(q, q.r.PostForm, ref)
	fail := func(status int, msgs []string) {
		w.renderNewPipelineInputs(q, status, fvars, ref, msgs, nil, inputs)
	}
	var vars []pipeline.Var
	for _, v := range fvars {
		if !validVarKey(v.Key) {
			fail(http.StatusUnprocessableEntity, []string{"Variable key '" + v.Key + "' can contain only letters, digits and '_'."})
			return
		}
		vars = append(vars, pipeline.Var{Key: v.Key, Value: v.Value, File: v.Type == "file"})
	}
	names := make([]string, 0, len(vars))
	for _, v := range vars {
		names = append(names, v.Key)
	}
	if msg, _ := access.PipelineVariablesDenial(q.level, q.project.VariablesMinRole, names); msg != "" {
		fail(http.StatusForbidden, []string{msg})
		return
	}
	// The engine refuses refs the user may not run on (protected ones).
	preq := pipeline.Request{Project: q.project, Ref: ref, Source: "web", User: q.user, Variables: vars, Inputs: inputs}
	var pl *store.Pipeline
	var pv *pipeline.Preview
	var err error
	preview := q.r.PostForm.Get("preview") != ""
	if preview {
		// The Preview button: what would run, nothing created.
		pv, err = w.Engine.Preview(q.ctx, preq)
	} else {
		pl, err = w.Engine.Create(q.ctx, preq)
	}
	var ce *pipeline.CreateError
	var ye *pipeline.YAMLError
	switch {
	case errors.As(err, &ce) && ce.Denied:
		fail(http.StatusForbidden, ce.Messages)
		return
	case errors.As(err, &ce):
		fail(http.StatusUnprocessableEntity, ce.Messages)
		return
	case errors.As(err, &ye):
		fail(http.StatusUnprocessableEntity, ye.Messages)
		return
	case errors.Is(err, gitrepo.ErrInvalidRef), errors.Is(err, gitrepo.ErrRefNotFound):
		fail(http.StatusUnprocessableEntity, []string{"Reference not found"})
		return
	case err != nil:
		w.internal(q, err)
		return
	}
	if preview {
		w.renderNewPipelineInputs(q, http.StatusOK, fvars, ref, nil, pv, inputs)
		return
	}
	w.redirect(q, projectURL(q.project)+"/-/pipelines/"+strconv.FormatInt(pl.ID, 10), "")
}

// jobCard is one job in the pipeline graph.
type jobCard struct {
	J        *store.Job
	URL      string
	Needs    []string
	Duration *time.Duration
	// Downstream links a bridge to the pipeline it created.
	Downstream string
}

type stageColumn struct {
	Name   string
	Status string
	Jobs   []jobCard
}

type pipelineLink struct {
	Label, URL, Status string
}

type pipelineShowData struct {
	P                  *store.Pipeline
	User               *store.User
	TriggerDescription string
	Stages             []stageColumn
	Upstream           *pipelineLink
	Downstream         []pipelineLink
	Retried            int
	CanRetry           bool
	CanCancel          bool
	LiveURL            string
	Active             bool
}

func (w *Web) loadPipeline(q *req, id int64) (*store.Pipeline, bool) {
	pl, err := w.Store.PipelineByID(q.ctx, id)
	if err != nil || pl.ProjectID != q.project.ID {
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			w.internal(q, err)
			return nil, false
		}
		w.notFound(q)
		return nil, false
	}
	return pl, true
}

func (w *Web) pipelineShow(q *req, id int64) {
	if !w.requireLevel(q, access.Reporter) {
		return
	}
	pl, ok := w.loadPipeline(q, id)
	if !ok {
		return
	}
	d, err := w.pipelineData(q, pl)
	if err != nil {
		w.internal(q, err)
		return
	}
	// The live fragment: the page's script polls it while the pipeline runs
	// and swaps it in, so the graph updates without a reload.
	if q.r.URL.Query().Get("fragment") == "graph" {
		w.renderPartial(q, "pipeline", "pipeline_live", d)
		return
	}
	w.render(q, http.StatusOK, "pipeline", w.newPage(q, "Pipeline #"+strconv.FormatInt(pl.ID, 10)+" · "+q.project.Name, "pipelines", d))
}

func (w *Web) pipelineData(q *req, pl *store.Pipeline) (*pipelineShowData, error) {
	jobs, err := w.Store.JobsOfPipeline(q.ctx, pl.ID)
	if err != nil {
		return nil, err
	}
	users := newUserCache(w.Store)
	d := &pipelineShowData{P: pl, User: users.get(q.ctx, pl.UserID), Active: activeStatus(pl.Status),
		LiveURL: projectURL(q.project) + "/-/pipelines/" + strconv.FormatInt(pl.ID, 10) + "?fragment=graph"}
	if pl.Source == "trigger" && pl.TriggerID != 0 {
		d.TriggerDescription, _ = w.Store.TriggerDescriptionByID(q.ctx, pl.TriggerID)
	}
	byStage := map[int]*stageColumn{}
	var order []int
	for _, j := range jobs {
		if j.Retried {
			d.Retried++
			continue
		}
		col := byStage[j.StageIdx]
		if col == nil {
			col = &stageColumn{Name: j.Stage}
			byStage[j.StageIdx] = col
			order = append(order, j.StageIdx)
		}
		card := jobCard{J: j, URL: projectURL(q.project) + "/-/jobs/" + strconv.FormatInt(j.ID, 10), Duration: jobDuration(j)}
		if sp, err := pipeline.ParseSpec(j.Spec); err == nil {
			for _, n := range sp.Needs {
				card.Needs = append(card.Needs, n.Job)
			}
		}
		if j.DownstreamPipelineID != 0 {
			if link := w.pipelineLinkFor(q, j.DownstreamPipelineID); link != nil {
				card.Downstream = link.URL
				d.Downstream = append(d.Downstream, *link)
			}
		}
		if activeStatus(j.Status) {
			d.CanCancel = true
		}
		if j.Status == "failed" || j.Status == "canceled" {
			d.CanRetry = true
		}
		col.Jobs = append(col.Jobs, card)
	}
	sort.Ints(order)
	for _, i := range order {
		col := byStage[i]
		col.Status = stageStatus(col.Jobs)
		d.Stages = append(d.Stages, *col)
	}
	if pl.UpstreamPipelineID != 0 {
		d.Upstream = w.pipelineLinkFor(q, pl.UpstreamPipelineID)
	}
	if !access.At(q.level, access.Developer) {
		d.CanRetry, d.CanCancel = false, false
	}
	return d, nil
}

// stageStatus summarises a stage the way GitLab colours its header.
func stageStatus(jobs []jobCard) string {
	rank := map[string]int{"failed": 9, "running": 8, "canceling": 8, "pending": 7, "preparing": 7, "waiting_for_resource": 7, "created": 6, "scheduled": 5, "manual": 4, "canceled": 3, "success": 2, "skipped": 1}
	best := ""
	for _, j := range jobs {
		st := j.J.Status
		if st == "failed" && j.J.AllowFailure {
			st = "success"
		}
		if rank[st] > rank[best] {
			best = st
		}
	}
	return best
}

// pipelineLinkFor links another pipeline (upstream or downstream), only
// when the viewer may see its project: a private project's path must not
// leak through a link.
func (w *Web) pipelineLinkFor(q *req, id int64) *pipelineLink {
	pl, err := w.Store.PipelineByID(q.ctx, id)
	if err != nil {
		return nil
	}
	p := q.project
	if pl.ProjectID != p.ID {
		if p, err = w.Store.ProjectByID(q.ctx, pl.ProjectID); err != nil {
			return nil
		}
		level, err := access.New(w.Store).Level(q.ctx, p, q.user)
		if err != nil || !access.CanRead(p, q.user, level) {
			return nil
		}
	}
	return &pipelineLink{Label: p.FullPath + " #" + strconv.FormatInt(pl.ID, 10), URL: projectURL(p) + "/-/pipelines/" + strconv.FormatInt(pl.ID, 10), Status: pl.Status}
}

func (w *Web) pipelineAction(q *req, id int64, action string) {
	if !w.requireLevel(q, access.Developer) {
		return
	}
	pl, ok := w.loadPipeline(q, id)
	if !ok {
		return
	}
	if err := w.Engine.MayAct(q.ctx, q.user, pl); err != nil {
		w.notFound(q) // protected pipelines are maintainers' to act on
		return
	}
	var err error
	var msg string
	switch action {
	case "retry":
		err, msg = w.Engine.RetryPipeline(q.ctx, q.user, pl.ID), "Pipeline retried."
	case "cancel":
		err, msg = w.Engine.CancelPipeline(q.ctx, q.user, pl.ID), "Pipeline canceled."
	default:
		w.notFound(q)
		return
	}
	if errors.Is(err, pipeline.ErrNotRetryable) {
		msg, err = "Nothing to retry in this pipeline.", nil
	}
	if err != nil {
		w.internal(q, err)
		return
	}
	w.redirect(q, projectURL(q.project)+"/-/pipelines/"+strconv.FormatInt(pl.ID, 10), msg)
}
