package web

import (
	"errors"
	"maps"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/kilnci/kiln/internal/access"
	"github.com/kilnci/kiln/internal/api"
	"github.com/kilnci/kiln/internal/auth"
	"github.com/kilnci/kiln/internal/store"
)

// triggerRow is one line of the trigger tokens table.
type triggerRow struct {
	T     *store.Trigger
	Owner *store.User
	// Invalid marks a trigger whose owner can no longer run pipelines here.
	Invalid bool
}

type variableRow struct {
	V     *store.Variable
	Value string
}

type runnerRow struct {
	R      *store.Runner
	Online bool
}

type deliveryRow struct {
	D    *store.Delivery
	PURL string
}

// settingsData is the CI/CD settings page.
type settingsData struct {
	Triggers []triggerRow
	// NewToken is the full secret of a trigger just created: shown once,
	// never stored.
	NewToken     string
	NewTrigger   *store.Trigger
	TriggerError string
	// Policy holds the create form's policy fields when it is shown again.
	Policy        map[string]string
	Description   string
	ExpiresAt     string
	Examples      []example
	Deliveries    []deliveryRow
	DeliveryPager pager
	Variables     []variableRow
	Reveal        bool
	EditVar       *variableRow
	VarForm       map[string]string
	VarError      string
	Runners       []runnerRow
	ProjectID     int64
	TriggerURL    string
	RegisterURL   string
}

// example is one ready-to-copy usage example.
type example struct {
	ID, Title, Code string
}

func triggerExamples(base string, projectID int64, branch, token string) []example {
	if branch == "" {
		branch = "main"
	}
	if token == "" {
		token = "TOKEN"
	}
	id := strconv.FormatInt(projectID, 10)
	url := base + "/api/v4/projects/" + id + "/trigger/pipeline"
	return []example{
		{"ex-curl", "Use cURL", "curl -X POST \\\n     --fail \\\n     --form-string token=" + token + " \\\n     --form-string ref=" + branch + " \\\n     " + url},
		{"ex-query", "Use cURL with a query string", "curl -X POST \"" + url + "?token=" + token + "&ref=" + branch + "\""},
		{"ex-vars", "Pass job variables", "curl -X POST \\\n     --fail \\\n     --form-string token=" + token + " \\\n     --form-string ref=" + branch + " \\\n     --form-string \"variables[RUN_NIGHTLY_BUILD]=true\" \\\n     " + url},
		{"ex-yaml", "Use .gitlab-ci.yml", "trigger_pipeline:\n  stage: deploy\n  script:\n    - 'curl --fail --request POST --form-string token=$MY_TRIGGER_TOKEN --form-string ref=" + branch + " \"" + url + "\"'\n  rules:\n    - if: $CI_COMMIT_TAG"},
		{"ex-webhook", "Use a webhook", base + "/api/v4/projects/" + id + "/ref/" + branch + "/trigger/pipeline?token=" + token},
		{"ex-cron", "Run nightly with cron", "30 0 * * * curl --fail --request POST --form-string token=" + token + " --form-string ref=" + branch + " " + url},
	}
}

func (w *Web) settingsCICD(q *req, d *settingsData) {
	if !w.requireLevel(q, access.Maintainer) {
		return
	}
	status := http.StatusOK
	if d == nil {
		d = &settingsData{}
		d.NewTrigger, d.NewToken = w.takeNewTrigger(q)
	} else if d.TriggerError != "" || d.VarError != "" {
		status = http.StatusUnprocessableEntity
	}
	if err := w.fillSettings(q, d); err != nil {
		w.internal(q, err)
		return
	}
	w.render(q, status, "settings_ci_cd", w.newPage(q, "CI/CD Settings · "+q.project.Name, "settings", d))
}

// runnerOnline is GitLab's rule: a runner that called in within two hours.
func runnerOnline(r *store.Runner) bool {
	return r.ContactedAt != nil && time.Since(*r.ContactedAt) < 2*time.Hour
}

func (w *Web) fillSettings(q *req, d *settingsData) error {
	p := q.project
	users := newUserCache(w.Store)
	d.ProjectID = p.ID
	d.TriggerURL = w.ExternalURL + "/api/v4/projects/" + strconv.FormatInt(p.ID, 10) + "/trigger/pipeline"
	d.RegisterURL = w.ExternalURL
	trs, _, err := w.Store.TriggersOfProject(q.ctx, p.ID, store.Page{Number: 1, PerPage: 100})
	if err != nil {
		return err
	}
	for _, t := range trs {
		row := triggerRow{T: t, Owner: users.get(q.ctx, t.OwnerID)}
		if row.Owner == nil {
			row.Invalid = true
		} else if lvl, err := access.New(w.Store).Level(q.ctx, p, row.Owner); err == nil && !access.At(lvl, access.Developer) {
			row.Invalid = true
		}
		d.Triggers = append(d.Triggers, row)
	}
	d.Examples = triggerExamples(w.ExternalURL, p.ID, p.DefaultBranch, d.NewToken)
	n := pageParam(q.r)
	dels, total, err := w.Store.DeliveriesOfProject(q.ctx, p.ID, store.Page{Number: n, PerPage: perPage})
	if err != nil {
		return err
	}
	for _, dl := range dels {
		row := deliveryRow{D: dl}
		if dl.PipelineID != 0 {
			row.PURL = projectURL(p) + "/-/pipelines/" + strconv.FormatInt(dl.PipelineID, 10)
		}
		d.Deliveries = append(d.Deliveries, row)
	}
	d.DeliveryPager = newPager(q.r, n, perPage, total)
	vs, err := w.Store.ProjectVariables(q.ctx, p.ID)
	if err != nil {
		return err
	}
	d.Reveal = q.r.URL.Query().Get("reveal") == "1"
	editID, _ := strconv.ParseInt(q.r.URL.Query().Get("edit_var"), 10, 64)
	for _, v := range vs {
		val, err := w.Secrets.Open(v.ValueEnc)
		if err != nil {
			return err
		}
		row := variableRow{V: v, Value: val}
		d.Variables = append(d.Variables, row)
		if v.ID == editID && d.EditVar == nil {
			d.EditVar = &row
		}
	}
	if d.VarForm == nil {
		d.VarForm = map[string]string{"variable_type": "env_var", "environment_scope": "*"}
		if d.EditVar != nil {
			v := d.EditVar.V
			d.VarForm = map[string]string{"id": strconv.FormatInt(v.ID, 10), "key": v.Key, "value": d.EditVar.Value, "variable_type": v.VariableType,
				"environment_scope": v.EnvironmentScope, "description": v.Description, "protected": boolStr(v.Protected), "masked": boolStr(v.Masked), "raw": boolStr(v.Raw)}
		}
	}
	runners, _, err := w.Store.ListRunners(q.ctx, store.RunnerFilter{ProjectIDs: []int64{p.ID}, InstanceToo: true}, store.Page{Number: 1, PerPage: 100})
	if err != nil {
		return err
	}
	for _, r := range runners {
		d.Runners = append(d.Runners, runnerRow{R: r, Online: runnerOnline(r)})
	}
	return nil
}

func boolStr(b bool) string {
	if b {
		return "1"
	}
	return ""
}

func (w *Web) settingsAction(q *req, seg []string) {
	if !w.requireLevel(q, access.Maintainer) {
		return
	}
	id := int64(0)
	if len(seg) > 1 {
		id, _ = strconv.ParseInt(seg[1], 10, 64)
	}
	switch {
	case seg[0] == "general" && len(seg) == 1:
		w.saveGeneralPipelines(q)
	case seg[0] == "triggers" && len(seg) == 1:
		w.createTrigger(q)
	case seg[0] == "triggers" && len(seg) == 2 && id > 0:
		w.updateTrigger(q, id)
	case seg[0] == "triggers" && len(seg) == 3 && seg[2] == "revoke" && id > 0:
		w.revokeTrigger(q, id)
	case seg[0] == "triggers" && len(seg) == 3 && seg[2] == "rotate" && id > 0:
		w.rotateTrigger(q, id)
	case seg[0] == "variables" && len(seg) == 1:
		w.saveVariable(q, 0)
	case seg[0] == "variables" && len(seg) == 2 && id > 0:
		w.saveVariable(q, id)
	case seg[0] == "variables" && len(seg) == 3 && seg[2] == "delete" && id > 0:
		w.deleteVariable(q, id)
	default:
		w.notFound(q)
	}
}

// saveGeneralPipelines saves the "General pipelines" settings: "Use
// separate caches for protected branches" (ci_separated_caches). An
// unchecked box is not sent, so its absence means off.
func (w *Web) saveGeneralPipelines(q *req) {
	p := *q.project
	p.SeparatedCaches = q.r.PostForm.Get("ci_separated_caches") == "1"
	if v, ok := q.r.PostForm["ci_pipeline_variables_minimum_override_role"]; ok {
		if len(v) != 1 || !access.ValidPipelineVariablesRole(v[0]) {
			w.redirect(q, projectURL(q.project)+"/-/settings/ci_cd#general", "Minimum role to use pipeline variables is invalid; nothing was saved.")
			return
		}
		p.VariablesMinRole = v[0]
	}
	if err := w.Store.Write(q.ctx, func(tx *store.Tx) error { return tx.UpdateProject(q.ctx, &p) }); err != nil {
		w.internal(q, err)
		return
	}
	w.Log.Info("project settings changed", "project", p.FullPath, "ci_separated_caches", p.SeparatedCaches, "ci_pipeline_variables_minimum_override_role", p.VariablesMinRole, "user", q.user.Username, "via", "web")
	w.redirect(q, projectURL(q.project)+"/-/settings/ci_cd#general", "General pipelines settings were saved.")
}

// newTriggerCookie carries a just-created trigger token across the
// redirect that answers its form (post/redirect/get: reloading the landing
// page must not create a second token). The value is sealed with the
// server's secrets key and bound to the session, the project and the
// trigger; it lives two minutes and the landing page clears it, so the token
// is shown once.
const newTriggerCookie = "_kiln_new_trigger"

func (w *Web) sealNewTrigger(q *req, tr *store.Trigger, secret string) string {
	return w.Secrets.Seal(strings.Join([]string{q.sess.idHash, strconv.FormatInt(q.project.ID, 10), strconv.FormatInt(tr.ID, 10), strconv.FormatInt(time.Now().Unix(), 10), secret}, "\n"))
}

// takeNewTrigger returns the trigger created by this session's last form
// and its token, once; nil when there is none (or it is not valid here).
func (w *Web) takeNewTrigger(q *req) (*store.Trigger, string) {
	c, err := q.r.Cookie(newTriggerCookie)
	if err != nil || c.Value == "" {
		return nil, ""
	}
	http.SetCookie(q.w, w.cookie(newTriggerCookie, "", -1))
	if w.Secrets == nil || q.sess == nil || len(c.Value) > 1024 {
		return nil, ""
	}
	plain, err := w.Secrets.Open(c.Value)
	if err != nil {
		return nil, ""
	}
	f := strings.Split(plain, "\n")
	if len(f) != 5 || f[0] != q.sess.idHash || f[1] != strconv.FormatInt(q.project.ID, 10) {
		return nil, ""
	}
	at, _ := strconv.ParseInt(f[3], 10, 64)
	if time.Since(time.Unix(at, 0)) > 2*time.Minute {
		return nil, ""
	}
	id, _ := strconv.ParseInt(f[2], 10, 64)
	tr, err := w.Store.TriggerByID(q.ctx, id)
	if err != nil || tr.ProjectID != q.project.ID || tr.TokenHash != auth.Hash(f[4]) {
		return nil, ""
	}
	return tr, f[4]
}

// createTrigger answers with a redirect to the settings page, which shows
// the full token once (see newTriggerCookie); the token is never stored.
func (w *Web) createTrigger(q *req) {
	desc := strings.TrimSpace(q.r.PostForm.Get("description"))
	d := &settingsData{Description: desc, Policy: map[string]string{}}
	switch {
	case desc == "":
		d.TriggerError = "Description can't be blank."
	case len(desc) > 255:
		d.TriggerError = "Description is too long (maximum is 255 characters)."
	}
	var expires *time.Time
	if e := strings.TrimSpace(q.r.PostForm.Get("expires_at")); e != "" && d.TriggerError == "" {
		d.ExpiresAt = e
		if t, err := time.Parse("2006-01-02", e); err != nil {
			d.TriggerError = "Expires at is not a date (YYYY-MM-DD)."
		} else if msg := api.TriggerExpiryProblem(t, time.Now()); msg != "" {
			d.TriggerError = msg
		} else {
			expires = &t
		}
	}
	// The token's policy, by the API's rules.
	pol := &store.Trigger{}
	fields := map[string]string{"variables_allowed": "false"}
	if q.r.PostForm.Get("variables_allowed") == "1" {
		fields["variables_allowed"] = "true"
	}
	for _, k := range []string{"allowed_refs", "allowed_cidrs", "allowed_variables", "rate_limit"} {
		if v := strings.TrimSpace(q.r.PostForm.Get(k)); v != "" {
			fields[k] = v
			d.Policy[k] = v
		}
	}
	d.Policy["variables_allowed"] = fields["variables_allowed"]
	if d.TriggerError == "" {
		if msg := api.TriggerPolicyProblem(fields, pol); msg != "" {
			d.TriggerError = strings.ToUpper(msg[:1]) + msg[1:]
		}
	}
	if d.TriggerError != "" {
		w.settingsCICD(q, d)
		return
	}
	secret := auth.NewToken(auth.TriggerPrefix)
	tr := pol
	tr.ProjectID, tr.OwnerID, tr.TokenHash, tr.ShortToken, tr.Description, tr.ExpiresAt = q.project.ID, q.user.ID, auth.Hash(secret), auth.ShortToken(secret), desc, expires
	if err := w.Store.Write(q.ctx, func(tx *store.Tx) error { return tx.CreateTrigger(q.ctx, tr) }); err != nil {
		w.internal(q, err)
		return
	}
	w.Log.Info("trigger created", "project", q.project.FullPath, "trigger", tr.ID, "short_token", tr.ShortToken, "user", q.user.Username, "via", "web")
	http.SetCookie(q.w, w.cookie(newTriggerCookie, w.sealNewTrigger(q, tr, secret), 120))
	w.redirect(q, projectURL(q.project)+"/-/settings/ci_cd#triggers", "")
}

// rotateTrigger issues a new token with the old one's description, expiry
// and policy (as POST /triggers/:id/rotate does); the old one keeps
// working for the overlap (default 24h). The new token is shown once after
// the redirect, like a created one.
func (w *Web) rotateTrigger(q *req, id int64) {
	old, err := w.Store.TriggerByID(q.ctx, id)
	if err != nil || old.ProjectID != q.project.ID {
		w.notFound(q)
		return
	}
	settings := projectURL(q.project) + "/-/settings/ci_cd"
	if !access.ManagesTrigger(q.user.ID, old.OwnerID) {
		w.redirect(q, settings+"#triggers", "Only the owner of trigger token "+old.ShortToken+" can rotate it.")
		return
	}
	now := time.Now()
	if old.Expired(now) {
		w.redirect(q, settings+"#triggers", "Trigger token "+old.ShortToken+" has expired and cannot be rotated.")
		return
	}
	overlap := 24 * time.Hour
	if v := strings.TrimSpace(q.r.PostForm.Get("overlap")); v != "" {
		d, perr := time.ParseDuration(v)
		if perr != nil || d < 0 || d > 720*time.Hour {
			w.redirect(q, settings+"#triggers", "Overlap is invalid (a duration such as 24h, at most 720h).")
			return
		}
		overlap = d
	}
	secret := auth.NewToken(auth.TriggerPrefix)
	next := *old
	next.ID, next.LastUsed = 0, nil
	next.OwnerID, next.TokenHash, next.ShortToken = q.user.ID, auth.Hash(secret), auth.ShortToken(secret)
	if err := w.Store.Write(q.ctx, func(tx *store.Tx) error { return tx.RotateTrigger(q.ctx, old.ID, now.Add(overlap), &next) }); err != nil {
		w.internal(q, err)
		return
	}
	w.Log.Info("trigger rotated", "project", q.project.FullPath, "old", old.ID, "new", next.ID, "overlap", overlap.String(), "user", q.user.Username, "via", "web")
	http.SetCookie(q.w, w.cookie(newTriggerCookie, w.sealNewTrigger(q, &next, secret), 120))
	w.redirect(q, settings+"#triggers", "")
}

// triggerEditData is the trigger token edit page.
type triggerEditData struct {
	T            *store.Trigger
	Form         map[string]string
	Error        string
	Action, Back string
}

// triggerEditable loads trigger id of the project for its owner's edit
// page or form (a maintainer, access.ManagesTrigger); otherwise it answers.
func (w *Web) triggerEditable(q *req, id int64) *store.Trigger {
	if !w.requireLevel(q, access.Maintainer) {
		return nil
	}
	tr, err := w.Store.TriggerByID(q.ctx, id)
	if err != nil || tr.ProjectID != q.project.ID {
		w.notFound(q)
		return nil
	}
	if !access.ManagesTrigger(q.user.ID, tr.OwnerID) {
		w.redirect(q, projectURL(q.project)+"/-/settings/ci_cd#triggers", "Only the owner of trigger token "+tr.ShortToken+" can edit it.")
		return nil
	}
	return tr
}

// triggerForm is a token's current fields as the edit form shows them.
func triggerForm(tr *store.Trigger) map[string]string {
	f := map[string]string{"description": tr.Description, "allowed_refs": strings.Join(tr.AllowedRefs, ", "),
		"allowed_cidrs": strings.Join(tr.AllowedCIDRs, ", "), "allowed_variables": strings.Join(tr.AllowedVariables, ", "),
		"variables_allowed": strconv.FormatBool(!tr.NoVariables)}
	if tr.ExpiresAt != nil {
		f["expires_at"] = tr.ExpiresAt.UTC().Format("2006-01-02")
	}
	if tr.RateLimit > 0 {
		f["rate_limit"] = strconv.Itoa(tr.RateLimit)
	}
	return f
}

func (w *Web) renderTriggerEdit(q *req, tr *store.Trigger, form map[string]string, msg string, status int) {
	d := &triggerEditData{T: tr, Form: form, Error: msg, Back: projectURL(q.project) + "/-/settings/ci_cd#triggers",
		Action: projectURL(q.project) + "/-/settings/ci_cd/triggers/" + strconv.FormatInt(tr.ID, 10)}
	w.render(q, status, "settings_trigger_edit", w.newPage(q, "Edit trigger token · "+q.project.Name, "settings", d))
}

// editTrigger shows the edit page of a trigger token (its owner only).
func (w *Web) editTrigger(q *req, idText string) {
	id, err := strconv.ParseInt(idText, 10, 64)
	if err != nil || id <= 0 {
		w.notFound(q)
		return
	}
	tr := w.triggerEditable(q, id)
	if tr == nil {
		return
	}
	w.renderTriggerEdit(q, tr, triggerForm(tr), "", http.StatusOK)
}

// updateTrigger saves the edit form by PUT /triggers/:id's rules
// (api.TriggerChange): a refusal shows the form again with the problem
// and writes nothing; success redirects to the settings page.
func (w *Web) updateTrigger(q *req, id int64) {
	tr := w.triggerEditable(q, id)
	if tr == nil {
		return
	}
	f := q.r.PostForm
	form := map[string]string{"variables_allowed": "false"}
	if f.Get("variables_allowed") == "1" {
		form["variables_allowed"] = "true"
	}
	for _, k := range []string{"description", "expires_at", "allowed_refs", "allowed_cidrs", "allowed_variables", "rate_limit"} {
		form[k] = strings.TrimSpace(f.Get(k))
	}
	fields := maps.Clone(form)
	if fields["rate_limit"] == "" {
		fields["rate_limit"] = "0"
	}
	if fields["expires_at"] == triggerForm(tr)["expires_at"] {
		// Unchanged (the form shows the date only): the exact expiry stays,
		// and an expired token's other fields can still be edited.
		delete(fields, "expires_at")
	}
	msg := ""
	if form["description"] == "" {
		msg = "Description can't be blank."
	}
	var next *store.Trigger
	if msg == "" {
		if next, msg = api.TriggerChange(fields, tr, time.Now()); msg != "" {
			msg = strings.ToUpper(msg[:1]) + msg[1:] + "."
		}
	}
	if msg != "" {
		w.renderTriggerEdit(q, tr, form, msg, http.StatusUnprocessableEntity)
		return
	}
	if err := w.Store.Write(q.ctx, func(tx *store.Tx) error { return tx.UpdateTrigger(q.ctx, next) }); err != nil {
		w.internal(q, err)
		return
	}
	w.Log.Info("trigger changed", "project", q.project.FullPath, "trigger", tr.ID, "short_token", tr.ShortToken, "user", q.user.Username, "via", "web")
	w.redirect(q, projectURL(q.project)+"/-/settings/ci_cd#triggers", "Trigger token "+tr.ShortToken+" was updated.")
}

// revokeConfirm is GitLab's confirmation text for revoking a trigger.
const revokeConfirm = "By revoking a trigger you will break any processes making use of it. Are you sure?"

type confirmData struct {
	Message, Action, Button, Back string
}

func (w *Web) revokeTrigger(q *req, id int64) {
	tr, err := w.Store.TriggerByID(q.ctx, id)
	if err != nil || tr.ProjectID != q.project.ID {
		w.notFound(q)
		return
	}
	settings := projectURL(q.project) + "/-/settings/ci_cd"
	// Without JavaScript the confirmation is a page of its own; the script
	// asks with a dialog and sends confirmed=1 directly.
	if q.r.PostForm.Get("confirmed") != "1" {
		d := confirmData{Message: revokeConfirm, Action: q.r.URL.Path, Button: "Revoke trigger", Back: settings + "#triggers"}
		w.render(q, http.StatusOK, "confirm", w.newPage(q, "Revoke trigger", "settings", d))
		return
	}
	err = w.Store.Write(q.ctx, func(tx *store.Tx) error { return tx.DeleteTrigger(q.ctx, tr.ID) })
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		w.internal(q, err)
		return
	}
	w.Log.Info("trigger revoked", "project", q.project.FullPath, "trigger", tr.ID, "short_token", tr.ShortToken, "user", q.user.Username, "via", "web")
	w.redirect(q, settings+"#triggers", "Trigger token "+tr.ShortToken+" was revoked.")
}

// The API's validation rules for variables (GitLab's Ci::HasVariable and
// Ci::Maskable).
func variableKeyRE() *regexp.Regexp { return regexp.MustCompile(`^[a-zA-Z0-9_]+$`) }
func maskableRE() *regexp.Regexp    { return regexp.MustCompile(`^[a-zA-Z0-9_+=/@:.~-]{8,}$`) }
func maskableRawRE() *regexp.Regexp { return regexp.MustCompile(`^\S{8,}$`) }
func envScopeRE() *regexp.Regexp    { return regexp.MustCompile(`^[a-zA-Z0-9_\\/${}. *-]+$`) }

func (w *Web) saveVariable(q *req, id int64) {
	f := q.r.PostForm
	form := map[string]string{}
	for _, k := range []string{"key", "value", "variable_type", "environment_scope", "description", "protected", "masked", "raw"} {
		form[k] = f.Get(k)
	}
	if id != 0 {
		form["id"] = strconv.FormatInt(id, 10)
	}
	form["key"] = strings.TrimSpace(form["key"])
	scope := strings.TrimSpace(form["environment_scope"])
	if scope == "" {
		scope = "*"
	}
	v := &store.Variable{ID: id, ProjectID: q.project.ID, Key: form["key"], VariableType: "env_var", EnvironmentScope: scope,
		Description: form["description"], Protected: form["protected"] != "", Masked: form["masked"] != "", Raw: form["raw"] != ""}
	if form["variable_type"] == "file" {
		v.VariableType = "file"
	}
	value := strings.ReplaceAll(form["value"], "\r\n", "\n")
	var msg string
	switch {
	case !variableKeyRE().MatchString(v.Key) || len(v.Key) > 255:
		msg = "Key can contain only letters, digits and '_'."
	case len(value) > 10000:
		msg = "Value is too long (maximum is 10000 characters)."
	case v.Masked && !v.Raw && !maskableRE().MatchString(value):
		msg = "Value cannot be masked: it must be at least 8 characters of the Base64 alphabet (RFC 4648) or @ : . ~ - = / + _ on a single line."
	case v.Masked && v.Raw && !maskableRawRE().MatchString(value):
		msg = "Value cannot be masked: it must be at least 8 characters without whitespace."
	case !envScopeRE().MatchString(scope):
		msg = "Environment scope can contain only letters, digits, '-', '_', '/', '$', '{', '}', '.', '*' and spaces."
	}
	if msg == "" && id != 0 {
		old, err := w.variableByID(q, id)
		if err != nil {
			w.notFound(q)
			return
		}
		if old.Key != v.Key {
			msg = "The key of an existing variable cannot be changed; delete it and add a new one."
		}
	}
	if msg != "" {
		w.settingsCICD(q, &settingsData{VarForm: form, VarError: msg})
		return
	}
	v.ValueEnc = w.Secrets.Seal(value)
	err := w.Store.Write(q.ctx, func(tx *store.Tx) error {
		if id != 0 {
			return tx.UpdateVariable(q.ctx, v)
		}
		return tx.CreateVariable(q.ctx, v)
	})
	if errors.Is(err, store.ErrConflict) {
		w.settingsCICD(q, &settingsData{VarForm: form, VarError: "(" + v.Key + ") has already been taken for environment scope " + scope + "."})
		return
	}
	if err != nil {
		w.internal(q, err)
		return
	}
	verb := "added"
	if id != 0 {
		verb = "updated"
	}
	w.redirect(q, projectURL(q.project)+"/-/settings/ci_cd#variables", "Variable "+v.Key+" was "+verb+".")
}

func (w *Web) variableByID(q *req, id int64) (*store.Variable, error) {
	vs, err := w.Store.ProjectVariables(q.ctx, q.project.ID)
	if err != nil {
		return nil, err
	}
	for _, v := range vs {
		if v.ID == id {
			return v, nil
		}
	}
	return nil, store.ErrNotFound
}

func (w *Web) deleteVariable(q *req, id int64) {
	v, err := w.variableByID(q, id)
	if err != nil {
		w.notFound(q)
		return
	}
	settings := projectURL(q.project) + "/-/settings/ci_cd"
	if q.r.PostForm.Get("confirmed") != "1" {
		d := confirmData{Message: "Delete the variable " + v.Key + "? Pipelines that use it will no longer get it.", Action: q.r.URL.Path, Button: "Delete variable", Back: settings + "#variables"}
		w.render(q, http.StatusOK, "confirm", w.newPage(q, "Delete variable", "settings", d))
		return
	}
	if err := w.Store.Write(q.ctx, func(tx *store.Tx) error { return tx.DeleteVariable(q.ctx, v.ID) }); err != nil {
		w.internal(q, err)
		return
	}
	w.redirect(q, settings+"#variables", "Variable "+v.Key+" was deleted.")
}
