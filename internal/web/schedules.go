package web

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/kilnci/kiln/internal/access"
	"github.com/kilnci/kiln/internal/pipeline"
	"github.com/kilnci/kiln/internal/schedule"
	"github.com/kilnci/kiln/internal/schedule/cronspec"
	"github.com/kilnci/kiln/internal/store"
)

type scheduleRow struct {
	S           *store.Schedule
	Owner       *store.User
	Ref         string
	Tag         bool
	Description string // human-readable cron
	Last        *store.Pipeline
	LastURL     string
	IsOwner     bool
	CanEdit     bool
}

type schedulesData struct {
	Rows []scheduleRow
	// CanCreate: Developer+; CanTakeOwnership: Maintainer+.
	CanCreate, CanTakeOwnership bool
}

type scheduleFormData struct {
	ID        int64
	Form      map[string]string
	Variables []formVar
	Branches  []string
	Errors    []string
	Described string
	Presets   [][2]string
}

func (w *Web) schedulesRoute(q *req, seg []string) {
	get := q.r.Method == http.MethodGet || q.r.Method == http.MethodHead
	post := q.r.Method == http.MethodPost
	if len(seg) == 1 && seg[0] == "" {
		seg = nil
	}
	id := int64(0)
	if len(seg) > 0 {
		id, _ = strconv.ParseInt(seg[0], 10, 64)
	}
	switch {
	case len(seg) == 0 && get:
		w.scheduleList(q)
	case len(seg) == 0 && post:
		w.saveSchedule(q, nil)
	case len(seg) == 1 && seg[0] == "new" && get:
		w.scheduleForm(q, http.StatusOK, nil, nil, nil)
	case len(seg) == 1 && seg[0] == "describe" && get:
		w.describeCron(q)
	case len(seg) == 2 && id > 0 && seg[1] == "edit" && get:
		if sc := w.loadSchedule(q, id); sc != nil {
			w.scheduleForm(q, http.StatusOK, sc, nil, nil)
		}
	case len(seg) == 1 && id > 0 && post:
		if sc := w.loadSchedule(q, id); sc != nil {
			w.saveSchedule(q, sc)
		}
	case len(seg) == 2 && id > 0 && post:
		if sc := w.loadSchedule(q, id); sc != nil {
			w.scheduleAction(q, sc, seg[1])
		}
	default:
		w.notFound(q)
	}
}

func (w *Web) loadSchedule(q *req, id int64) *store.Schedule {
	if !w.requireLevel(q, access.Reporter) {
		return nil
	}
	sc, err := w.Store.ProjectSchedule(q.ctx, q.project.ID, id)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			w.internal(q, err)
			return nil
		}
		w.notFound(q)
		return nil
	}
	return sc
}

// canEditSchedule: the owner (a Developer+) or any Maintainer.
// canEditSchedule is the API's rule: the owner (with developer access) or an
// admin edits; a maintainer takes ownership first, so that a schedule never
// runs someone else's changes under its owner's name.
func canEditSchedule(q *req, sc *store.Schedule) bool {
	return q.user != nil && (q.user.IsAdmin || (access.At(q.level, access.Developer) && sc.OwnerID == q.user.ID))
}

// canDeleteSchedule: the owner or a maintainer, as the API.
func canDeleteSchedule(q *req, sc *store.Schedule) bool {
	return canEditSchedule(q, sc) || access.At(q.level, access.Maintainer)
}

func (w *Web) scheduleList(q *req) {
	if !w.requireLevel(q, access.Reporter) {
		return
	}
	list, _, err := w.Store.ListSchedules(q.ctx, store.ScheduleFilter{ProjectID: q.project.ID}, store.Page{Number: 1, PerPage: 100})
	if err != nil {
		w.internal(q, err)
		return
	}
	users := newUserCache(w.Store)
	d := schedulesData{CanCreate: access.At(q.level, access.Developer), CanTakeOwnership: access.At(q.level, access.Maintainer)}
	for _, sc := range list {
		name, tag := schedule.SplitRef(sc.Ref)
		row := scheduleRow{S: sc, Owner: users.get(q.ctx, sc.OwnerID), Ref: name, Tag: tag, CanEdit: canEditSchedule(q, sc)}
		row.IsOwner = q.user != nil && sc.OwnerID == q.user.ID
		row.Description, _ = cronspec.Describe(sc.Cron)
		if sc.LastPipelineID != 0 {
			if pl, err := w.Store.PipelineByID(q.ctx, sc.LastPipelineID); err == nil {
				row.Last = pl
				row.LastURL = projectURL(q.project) + "/-/pipelines/" + strconv.FormatInt(pl.ID, 10)
			}
		}
		d.Rows = append(d.Rows, row)
	}
	w.render(q, http.StatusOK, "schedules", w.newPage(q, "Pipeline schedules · "+q.project.Name, "schedules", d))
}

func cronPresets() [][2]string {
	return [][2]string{{"0 * * * *", "Every hour"}, {"0 4 * * *", "Every day (at 4:00am)"}, {"0 4 * * 0", "Every week (Sunday at 4:00am)"}, {"0 4 1 * *", "Every month (Day 1 at 4:00am)"}}
}

func (w *Web) scheduleForm(q *req, status int, sc *store.Schedule, form map[string]string, errs []string) {
	if !w.requireLevel(q, access.Developer) {
		return
	}
	if sc != nil && !canEditSchedule(q, sc) {
		w.notFound(q)
		return
	}
	d := scheduleFormData{Form: form, Errors: errs, Presets: cronPresets()}
	if form == nil {
		d.Form = map[string]string{"cron": "0 4 * * *", "cron_timezone": "UTC", "ref": q.project.DefaultBranch, "active": "1"}
		if sc != nil {
			name, _ := schedule.SplitRef(sc.Ref)
			d.Form = map[string]string{"description": sc.Description, "cron": sc.Cron, "cron_timezone": sc.CronTimezone, "ref": name, "active": boolStr(sc.Active)}
			vars, err := w.Store.ScheduleVariables(q.ctx, sc.ID)
			if err != nil {
				w.internal(q, err)
				return
			}
			for _, v := range vars {
				val, err := w.Secrets.Open(v.ValueEnc)
				if err != nil {
					w.internal(q, err)
					return
				}
				d.Variables = append(d.Variables, formVar{Key: v.Key, Value: val, Type: v.VariableType})
			}
		}
	} else {
		d.Variables = formVariables(q)
	}
	if sc != nil {
		d.ID = sc.ID
	}
	for len(d.Variables) < 2 {
		d.Variables = append(d.Variables, formVar{Type: "env_var"})
	}
	d.Described, _ = cronspec.Describe(d.Form["cron"])
	if bs, err := w.Repos.Branches(q.ctx, q.project.FullPath); err == nil {
		for _, b := range bs {
			d.Branches = append(d.Branches, b.Name)
		}
	}
	title := "New schedule"
	if sc != nil {
		title = "Edit schedule"
	}
	w.render(q, status, "schedule_form", w.newPage(q, title+" · "+q.project.Name, "schedules", d))
}

// describeCron answers the form's script with the English text and next
// run of a cron expression as it is typed.
func (w *Web) describeCron(q *req) {
	if !w.requireLevel(q, access.Reporter) {
		return
	}
	expr, zone := q.r.URL.Query().Get("cron"), q.r.URL.Query().Get("cron_timezone")
	out := map[string]string{}
	if spec, err := cronspec.Parse(expr, zone); err != nil {
		out["error"] = err.Error()
	} else {
		out["text"] = spec.Describe()
		if next := spec.Next(time.Now()); !next.IsZero() {
			out["next"] = next.In(spec.Location()).Format("Mon 2 Jan 2006 15:04 MST")
		}
	}
	q.w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(q.w).Encode(out)
}

func (w *Web) saveSchedule(q *req, sc *store.Schedule) {
	if !w.requireLevel(q, access.Developer) {
		return
	}
	if sc != nil && !canEditSchedule(q, sc) {
		w.notFound(q)
		return
	}
	f := q.r.PostForm
	form := map[string]string{}
	for _, k := range []string{"description", "cron", "cron_timezone", "ref", "active"} {
		form[k] = strings.TrimSpace(f.Get(k))
	}
	if form["cron_timezone"] == "" {
		form["cron_timezone"] = "UTC"
	}
	vars := formVariables(q)
	var errs []string
	if form["description"] == "" || len(form["description"]) > 255 {
		errs = append(errs, "Description can't be blank.")
	}
	spec, err := cronspec.Parse(form["cron"], form["cron_timezone"])
	if err != nil {
		errs = append(errs, "Interval pattern is invalid: "+err.Error())
	}
	fullRef := ""
	if ref, err := w.Engine.Repos.ResolveRef(q.ctx, q.project.FullPath, form["ref"]); err != nil {
		errs = append(errs, "Target branch or tag '"+form["ref"]+"' was not found.")
	} else {
		fullRef = ref.Full
		// The schedule runs as its owner: one who may not run pipelines on
		// a protected ref may not schedule them there either.
		if msg := access.PipelineDenial(q.level, w.Engine.IsProtected(q.ctx, q.project, ref.Name, ref.Tag), form["ref"]); msg != "" {
			errs = append(errs, msg)
		}
	}
	seen := map[string]bool{}
	for _, v := range vars {
		if !validVarKey(v.Key) {
			errs = append(errs, "Variable key '"+v.Key+"' can contain only letters, digits and '_'.")
		} else if seen[v.Key] {
			errs = append(errs, "Variable key '"+v.Key+"' is given twice.")
		}
		seen[v.Key] = true
	}
	if len(errs) > 0 {
		w.scheduleForm(q, http.StatusUnprocessableEntity, sc, form, errs)
		return
	}
	isNew := sc == nil
	if isNew {
		sc = &store.Schedule{ProjectID: q.project.ID, OwnerID: q.user.ID}
	}
	sc.Description, sc.Cron, sc.CronTimezone, sc.Ref, sc.Active = form["description"], form["cron"], form["cron_timezone"], fullRef, form["active"] != ""
	sc.NextRunAt = spec.Next(time.Now())
	err = w.Store.Write(q.ctx, func(tx *store.Tx) error {
		if isNew {
			if err := tx.CreateSchedule(q.ctx, sc); err != nil {
				return err
			}
		} else if err := tx.UpdateSchedule(q.ctx, sc); err != nil {
			return err
		}
		old, err := tx.Store().ScheduleVariables(q.ctx, sc.ID)
		if err != nil {
			return err
		}
		for _, o := range old {
			if !seen[o.Key] {
				if err := tx.DeleteScheduleVariable(q.ctx, sc.ID, o.Key); err != nil {
					return err
				}
			}
		}
		had := map[string]bool{}
		for _, o := range old {
			had[o.Key] = true
		}
		for _, v := range vars {
			sv := store.ScheduleVariable{Key: v.Key, ValueEnc: w.Secrets.Seal(v.Value), VariableType: v.Type}
			if had[v.Key] {
				err = tx.UpdateScheduleVariable(q.ctx, sc.ID, sv)
			} else {
				err = tx.CreateScheduleVariable(q.ctx, sc.ID, sv)
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
	var le *store.LimitError
	if errors.As(err, &le) {
		w.scheduleForm(q, http.StatusUnprocessableEntity, nil, form, []string{le.Message})
		return
	}
	if err != nil {
		w.internal(q, err)
		return
	}
	if w.ScheduleChanged != nil {
		w.ScheduleChanged()
	}
	w.redirect(q, projectURL(q.project)+"/-/pipeline_schedules", "Schedule '"+sc.Description+"' was saved.")
}

func (w *Web) scheduleAction(q *req, sc *store.Schedule, action string) {
	if !w.requireLevel(q, access.Developer) {
		return
	}
	list := projectURL(q.project) + "/-/pipeline_schedules"
	switch action {
	case "play":
		if w.PlaySchedule == nil {
			w.notFound(q)
			return
		}
		pl, err := w.PlaySchedule(q.ctx, sc, q.user)
		var ce *pipeline.CreateError
		if errors.As(err, &ce) {
			w.redirect(q, list, "The schedule could not run: "+ce.Error())
			return
		} else if err != nil {
			w.internal(q, err)
			return
		}
		w.redirect(q, list, "Successfully scheduled a pipeline to run: pipeline #"+strconv.FormatInt(pl.ID, 10)+".")
	case "take_ownership":
		if !access.At(q.level, access.Maintainer) {
			w.notFound(q)
			return
		}
		sc.OwnerID = q.user.ID
		if err := w.Store.Write(q.ctx, func(tx *store.Tx) error { return tx.SetScheduleOwner(q.ctx, sc.ID, sc.OwnerID) }); err != nil {
			w.internal(q, err)
			return
		}
		w.redirect(q, list, "You are now the owner of schedule '"+sc.Description+"'.")
	case "delete":
		if !canDeleteSchedule(q, sc) {
			w.notFound(q)
			return
		}
		if q.r.PostForm.Get("confirmed") != "1" {
			d := confirmData{Message: "Delete the schedule '" + sc.Description + "'?", Action: q.r.URL.Path, Button: "Delete schedule", Back: list}
			w.render(q, http.StatusOK, "confirm", w.newPage(q, "Delete schedule", "schedules", d))
			return
		}
		if err := w.Store.Write(q.ctx, func(tx *store.Tx) error { return tx.DeleteSchedule(q.ctx, q.project.ID, sc.ID) }); err != nil {
			w.internal(q, err)
			return
		}
		if w.ScheduleChanged != nil {
			w.ScheduleChanged()
		}
		w.redirect(q, list, "Schedule deleted.")
	default:
		w.notFound(q)
	}
}
