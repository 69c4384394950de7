package api

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/kilnci/kiln/internal/access"
	"github.com/kilnci/kiln/internal/auth"
	"github.com/kilnci/kiln/internal/pipewatch"
	"github.com/kilnci/kiln/internal/store"
	"github.com/kilnci/kiln/internal/trigger"
)

// triggerRoutes registers nothing: the trigger endpoints need options the
// server only knows later, so the server calls RegisterTriggers instead.
func (a *API) triggerRoutes() {}

// TriggerOptions configure the trigger endpoints.
type TriggerOptions struct {
	// Shared, if set, keeps every limit below in the database, shared by
	// all replicas (the server sets it on PostgreSQL); nil keeps them in
	// this process's memory.
	Shared trigger.Shared
	// PipelinesPerMinute bounds pipelines created through the trigger API
	// per project (0: no limit).
	PipelinesPerMinute int
	// FailedAuthBurst failed token attempts are allowed from one client
	// address at once, then FailedAuthPerMinute; 0 disables the limit.
	FailedAuthBurst     int
	FailedAuthPerMinute float64
	// RefusalBurst refused calls of any kind are allowed from one client
	// address at once, then RefusalPerMinute; 0 disables the limit.
	RefusalBurst     int
	RefusalPerMinute float64
	// Limits bound request bodies, variables and JSON nesting.
	Limits trigger.Limits
	// Observe, if set, is told the HTTP status of every trigger call
	// (metrics).
	Observe func(status int)
	// EventStreamMax bounds one pipeline event stream (0: 30 minutes).
	EventStreamMax time.Duration
	// Watch shares pipeline polls among event streams (nil: one is made;
	// the server passes its own so it can stop it at shutdown).
	Watch *pipewatch.Hub
}

// triggers serves the trigger token, trigger and delivery endpoints.
type triggers struct {
	*API
	opts     TriggerOptions
	authFail *trigger.Limiter // failed token attempts per client address
	creates  *trigger.Limiter // pipeline creations per project
	perToken trigger.Limiters // calls per trigger token with a rate_limit
	refusals *trigger.Limiter // refused calls of any kind per client address
	hub      *pipewatch.Hub   // shared polls of followed pipelines
}

// RegisterTriggers adds GitLab's trigger endpoints (v4 and v3 token CRUD,
// the four trigger forms, the deliveries log and the pipeline event stream).
func (a *API) RegisterTriggers(o TriggerOptions) {
	if o.Limits.MaxBody == 0 {
		o.Limits = trigger.DefaultLimits
	}
	t := &triggers{API: a, opts: o, hub: o.Watch}
	if t.hub == nil {
		t.hub = pipewatch.New(a.Store, eventPoll)
	}
	onErr := func(err error) {
		a.Log.Warn("shared trigger rate limit unavailable; counting in this process", "err", err)
	}
	if o.FailedAuthBurst > 0 {
		t.authFail = trigger.NewLimiter(o.FailedAuthBurst, o.FailedAuthPerMinute).Share(o.Shared, "trigger-auth-failures", onErr)
	}
	if o.RefusalBurst > 0 {
		t.refusals = trigger.NewLimiter(o.RefusalBurst, o.RefusalPerMinute).Share(o.Shared, "trigger-refusals", onErr)
	}
	if o.PipelinesPerMinute > 0 {
		t.creates = trigger.NewLimiter(o.PipelinesPerMinute, float64(o.PipelinesPerMinute)).Share(o.Shared, "trigger-creates", onErr)
	}
	t.perToken = trigger.Limiters{Shared: o.Shared, Scope: "trigger-token", OnErr: onErr}
	a.handle("GET /api/v4/projects/{id}/triggers", t.list)
	a.handle("POST /api/v4/projects/{id}/triggers", t.create)
	a.handle("GET /api/v4/projects/{id}/triggers/deliveries", t.deliveries)
	a.handle("GET /api/v4/projects/{id}/triggers/{trigger_id}", t.get)
	a.handle("PUT /api/v4/projects/{id}/triggers/{trigger_id}", t.update)
	a.handle("DELETE /api/v4/projects/{id}/triggers/{trigger_id}", t.remove)
	a.handle("POST /api/v4/projects/{id}/triggers/{trigger_id}/rotate", t.rotate)

	a.handle("GET /api/v3/projects/{id}/triggers", t.listV3)
	a.handle("POST /api/v3/projects/{id}/triggers", t.createV3)
	a.handle("GET /api/v3/projects/{id}/triggers/{token}", t.getV3)
	a.handle("DELETE /api/v3/projects/{id}/triggers/{token}", t.removeV3)

	// The trigger endpoints authenticate by the trigger token alone and
	// parse their own parameters (payloads, limits, deliveries for every
	// refusal), so they bypass a.handle.
	a.mux.HandleFunc("POST /api/v4/projects/{id}/trigger/pipeline", t.runHandler("v4", false))
	a.mux.HandleFunc("POST /api/v4/projects/{id}/ref/{ref}/trigger/pipeline", t.runHandler("v4", true))
	a.mux.HandleFunc("POST /api/v3/projects/{id}/trigger/builds", t.runHandler("v3", false))
	a.mux.HandleFunc("POST /api/v3/projects/{id}/ref/{ref}/trigger/builds", t.runHandler("v3", true))

	a.handle("GET /api/v4/projects/{id}/pipelines/{pipeline_id}/events", t.events)
}

// triggerJSON renders GitLab's Trigger entity. The token is never readable
// after creation (Kiln keeps only its hash), so token is the short form
// unless secret is the freshly created token.
func (t *triggers) triggerJSON(c *reqCtx, p *store.Project, tr *store.Trigger, secret string) map[string]any {
	tok := tr.ShortToken
	if secret != "" {
		tok = secret
	}
	var owner *store.User
	valid := false
	if u, err := t.Store.UserByID(c.ctx, tr.OwnerID); err == nil {
		owner = u
		valid = t.ownerMayRun(c, p, u)
	}
	return map[string]any{
		"id": tr.ID, "token": tok, "description": tr.Description,
		"created_at": isoTime(tr.CreatedAt), "updated_at": isoTime(tr.UpdatedAt),
		"last_used": isoTimePtr(tr.LastUsed), "expires_at": isoTimePtr(tr.ExpiresAt),
		"owner": t.userBasic(owner),
		// Kiln extra: false when the owner can no longer run pipelines here
		// (GitLab's "invalid" badge); such a trigger is refused.
		"can_access_project": valid,
		// Kiln: the token's policy (empty: no restriction).
		"allowed_refs": orEmptyList(tr.AllowedRefs), "allowed_cidrs": orEmptyList(tr.AllowedCIDRs),
		"variables_allowed": !tr.NoVariables, "allowed_variables": orEmptyList(tr.AllowedVariables), "rate_limit": tr.RateLimit,
	}
}

// ownerMayRun reports whether a trigger owner may still create pipelines
// in p: an active user with developer access.
func (t *triggers) ownerMayRun(c *reqCtx, p *store.Project, u *store.User) bool {
	if u == nil || u.State != "active" {
		return false
	}
	level, err := access.New(t.Store).Level(c.ctx, p, u)
	return err == nil && access.At(level, access.Developer)
}

func (t *triggers) list(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	return t.listAs(w, r, c, func(p *store.Project, tr *store.Trigger) map[string]any { return t.triggerJSON(c, p, tr, "") })
}

// listAs answers a project's triggers, paginated, in the shape render gives
// (v4 or v3).
func (t *triggers) listAs(w http.ResponseWriter, r *http.Request, c *reqCtx, render func(*store.Project, *store.Trigger) map[string]any) error {
	p, _, err := t.project(r, c, access.Maintainer)
	if err != nil {
		return err
	}
	page, err := paging(r)
	if err != nil {
		return err
	}
	trs, total, err := t.Store.TriggersOfProject(c.ctx, p.ID, page)
	if err != nil {
		return err
	}
	out := []map[string]any{}
	for _, tr := range trs {
		out = append(out, render(p, tr))
	}
	setPagination(w, r, page, total)
	writeJSON(w, http.StatusOK, out)
	return nil
}

// maxTriggerLifetime bounds expires_at, as GitLab bounds it by the personal
// access token maximum lifetime.
const maxTriggerLifetime = 365 * 24 * time.Hour

// newTrigger creates a trigger owned by the caller and returns it with the
// full token, which exists in the clear only in this response.
// pol, when not nil, carries the token's policy.
func (t *triggers) newTrigger(c *reqCtx, p *store.Project, description string, expires *time.Time, pol *store.Trigger) (*store.Trigger, string, error) {
	secret := auth.NewToken(auth.TriggerPrefix)
	tr := &store.Trigger{}
	if pol != nil {
		tr = pol
	}
	tr.ProjectID, tr.OwnerID, tr.TokenHash, tr.ShortToken = p.ID, c.user.ID, auth.Hash(secret), auth.ShortToken(secret)
	tr.Description, tr.ExpiresAt = description, expires
	err := t.Store.Write(c.ctx, func(tx *store.Tx) error { return tx.CreateTrigger(c.ctx, tr) })
	return tr, secret, err
}

func (t *triggers) create(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	p, _, err := t.project(r, c, access.Maintainer)
	if err != nil {
		return err
	}
	desc, err := c.params.Required("description")
	if err != nil {
		return err
	}
	if !validText(desc, 255) {
		return errValidation("description", "is too long (maximum is 255 characters)")
	}
	exp, err := c.params.Date("expires_at")
	if err != nil {
		return err
	}
	if err := checkTriggerExpiry(exp, time.Now()); err != nil {
		return err
	}
	pol := &store.Trigger{}
	if _, err := triggerPolicyParams(c.params, pol); err != nil {
		return err
	}
	tr, secret, err := t.newTrigger(c, p, desc, exp, pol)
	if err != nil {
		return err
	}
	t.Log.Info("trigger created", "project", p.FullPath, "trigger", tr.ID, "short_token", tr.ShortToken, "user", c.user.Username)
	writeJSON(w, http.StatusCreated, t.triggerJSON(c, p, tr, secret))
	return nil
}

// projectTrigger resolves {trigger_id} within p; other projects' triggers
// are 404.
func (t *triggers) projectTrigger(r *http.Request, c *reqCtx, p *store.Project) (*store.Trigger, error) {
	id, err := strconv.ParseInt(r.PathValue("trigger_id"), 10, 64)
	if err != nil {
		return nil, errParam("trigger_id is invalid")
	}
	tr, err := t.Store.TriggerByID(c.ctx, id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && tr.ProjectID != p.ID) {
		return nil, errNotFound("Trigger")
	}
	return tr, err
}

func (t *triggers) get(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	p, _, err := t.project(r, c, access.Maintainer)
	if err != nil {
		return err
	}
	tr, err := t.projectTrigger(r, c, p)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, t.triggerJSON(c, p, tr, ""))
	return nil
}

func (t *triggers) update(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	p, _, err := t.project(r, c, access.Maintainer)
	if err != nil {
		return err
	}
	tr, err := t.projectTrigger(r, c, p)
	if err != nil {
		return err
	}
	if !access.ManagesTrigger(c.user.ID, tr.OwnerID) {
		return errMessage(http.StatusForbidden, "403 Forbidden - The current user is not authorized to update the pipeline trigger token")
	}
	next, changed, err := triggerChange(c.params, tr, time.Now())
	if err != nil {
		return err
	}
	if changed {
		if err := t.Store.Write(c.ctx, func(tx *store.Tx) error { return tx.UpdateTrigger(c.ctx, next) }); err != nil {
			return err
		}
		if tr, err = t.Store.TriggerByID(c.ctx, tr.ID); err != nil {
			return err
		}
	}
	writeJSON(w, http.StatusOK, t.triggerJSON(c, p, tr, ""))
	return nil
}

// checkTriggerExpiry is the rule for a token's expires_at (nil: never):
// in the future, at most maxTriggerLifetime ahead.
func checkTriggerExpiry(exp *time.Time, now time.Time) error {
	if exp == nil {
		return nil
	}
	if !exp.After(now) {
		return errValidation("expires_at", "must be in the future")
	}
	if max := now.Add(maxTriggerLifetime); exp.After(max) {
		return errValidation("expires_at", "must be before "+max.UTC().Format("2006-01-02"))
	}
	return nil
}

// triggerChange reads PUT /triggers/:id's parameters onto a copy of tr:
// description, expires_at (a date in the future, at most
// maxTriggerLifetime ahead; empty or null: never; not on an expired token)
// and the policy (triggerPolicyParams). Nothing is written; changed
// reports whether any was given.
func triggerChange(ps *Params, tr *store.Trigger, now time.Time) (*store.Trigger, bool, error) {
	next := *tr
	changed := false
	if ps.Has("description") {
		if err := ps.Scalars("description"); err != nil {
			return nil, false, err
		}
		desc := ps.String("description")
		if !validText(desc, 255) {
			return nil, false, errValidation("description", "is too long (maximum is 255 characters)")
		}
		next.Description, changed = desc, true
	}
	if ps.Has("expires_at") {
		exp, err := ps.Date("expires_at")
		if err != nil {
			return nil, false, err
		}
		if tr.Expired(now) {
			return nil, false, errValidation("expires_at", "cannot be changed: the token has expired")
		}
		if err := checkTriggerExpiry(exp, now); err != nil {
			return nil, false, err
		}
		next.ExpiresAt, changed = exp, true
	}
	given, err := triggerPolicyParams(ps, &next)
	if err != nil {
		return nil, false, err
	}
	return &next, changed || given, nil
}

// Bounds of a trigger's policy lists.
const (
	maxTriggerPatterns = 50
	maxPatternLen      = 255
)

// maxTriggerRate bounds a token's own rate_limit (calls per minute).
const maxTriggerRate = 10000

// triggerPolicyParams reads a token's policy onto pol (which holds the
// current one): allowed_refs (branch/tag name patterns with '*',
// access.MatchRef) and allowed_cidrs (networks such as 10.0.0.0/8 or a
// single address) as lists or comma-separated strings, variables_allowed
// (bool), allowed_variables (names) and rate_limit (calls per minute, 0:
// none). Parameters not sent keep pol's values; an empty list lifts its
// restriction. given reports whether any was sent.
func triggerPolicyParams(ps *Params, pol *store.Trigger) (given bool, err error) {
	refs, okRefs, err := ps.List("allowed_refs")
	if err != nil {
		return false, err
	}
	cidrs, okCIDRs, err := ps.List("allowed_cidrs")
	if err != nil {
		return false, err
	}
	vars, okVars, err := ps.List("allowed_variables")
	if err != nil {
		return false, err
	}
	if len(refs) > maxTriggerPatterns || len(cidrs) > maxTriggerPatterns || len(vars) > maxTriggerPatterns {
		return false, errParam(fmt.Sprintf("allowed_refs, allowed_cidrs and allowed_variables take at most %d entries", maxTriggerPatterns))
	}
	for _, r := range refs {
		if r == "" || len(r) > maxPatternLen || strings.ContainsAny(r, "\n\x00") {
			return false, errValidation("allowed_refs", "contains an invalid pattern")
		}
	}
	for _, v := range vars {
		if !validVariableKey(v) {
			return false, errValidation("allowed_variables", fmt.Sprintf("'%s' is not a variable name (letters, digits and _ only, at most 255)", v))
		}
	}
	for i, c := range cidrs {
		if !strings.Contains(c, "/") {
			if a, err := netip.ParseAddr(c); err == nil {
				c = netip.PrefixFrom(a, a.BitLen()).String()
			}
		}
		pfx, err := netip.ParsePrefix(c)
		if err != nil {
			return false, errValidation("allowed_cidrs", fmt.Sprintf("'%s' is not a network (use 10.0.0.0/8 or an address)", cidrs[i]))
		}
		cidrs[i] = pfx.Masked().String()
	}
	varsAllowed, okAllowed, err := ps.Bool("variables_allowed")
	if err != nil {
		return false, err
	}
	rate, okRate, err := ps.Int("rate_limit")
	if err != nil {
		return false, err
	}
	if okRate && (rate < 0 || rate > maxTriggerRate) {
		return false, errValidation("rate_limit", fmt.Sprintf("must be between 0 and %d requests per minute", maxTriggerRate))
	}
	if okRefs {
		pol.AllowedRefs = refs
	}
	if okCIDRs {
		pol.AllowedCIDRs = cidrs
	}
	if okVars {
		pol.AllowedVariables = vars
	}
	if okAllowed {
		pol.NoVariables = !varsAllowed
	}
	if okRate {
		pol.RateLimit = int(rate)
	}
	return okRefs || okCIDRs || okVars || okAllowed || okRate, nil
}

// validVariableKey: GitLab's variable key rule.
func validVariableKey(k string) bool {
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

func (t *triggers) remove(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	p, _, err := t.project(r, c, access.Maintainer)
	if err != nil {
		return err
	}
	tr, err := t.projectTrigger(r, c, p)
	if err != nil {
		return err
	}
	return t.revoke(w, c, p, tr)
}

// revoke deletes a trigger; the next request with its token is a 404
// because every trigger request looks the token up afresh.
func (t *triggers) revoke(w http.ResponseWriter, c *reqCtx, p *store.Project, tr *store.Trigger) error {
	err := t.Store.Write(c.ctx, func(tx *store.Tx) error { return tx.DeleteTrigger(c.ctx, tr.ID) })
	if errors.Is(err, store.ErrNotFound) {
		return errNotFound("Trigger")
	} else if err != nil {
		return err
	}
	t.Log.Info("trigger revoked", "project", p.FullPath, "trigger", tr.ID, "short_token", tr.ShortToken, "user", c.user.Username)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// triggerV3JSON is the v3 Trigger entity.
func triggerV3JSON(tr *store.Trigger, secret string) map[string]any {
	tok := tr.ShortToken
	if secret != "" {
		tok = secret
	}
	return map[string]any{"token": tok, "created_at": isoTime(tr.CreatedAt), "updated_at": isoTime(tr.UpdatedAt),
		"deleted_at": nil, "last_used": isoTimePtr(tr.LastUsed)}
}

func (t *triggers) listV3(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	return t.listAs(w, r, c, func(_ *store.Project, tr *store.Trigger) map[string]any { return triggerV3JSON(tr, "") })
}

func (t *triggers) createV3(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	p, _, err := t.project(r, c, access.Maintainer)
	if err != nil {
		return err
	}
	tr, secret, err := t.newTrigger(c, p, c.params.String("description"), nil, nil)
	if err != nil {
		return err
	}
	t.Log.Info("trigger created", "project", p.FullPath, "trigger", tr.ID, "short_token", tr.ShortToken, "user", c.user.Username, "api", "v3")
	writeJSON(w, http.StatusCreated, triggerV3JSON(tr, secret))
	return nil
}

// triggerByToken resolves v3's {token}: the full token, since only its hash
// is stored (GitLab's v3 accepted it because GitLab stores tokens readably).
func (t *triggers) triggerByToken(r *http.Request, c *reqCtx, p *store.Project) (*store.Trigger, error) {
	secret := r.PathValue("token")
	if len(secret) > 256 {
		return nil, errNotFound("Trigger")
	}
	h := auth.Hash(secret)
	tr, err := t.Store.TriggerByHash(c.ctx, h)
	if errors.Is(err, store.ErrNotFound) || (err == nil && (tr.ProjectID != p.ID || !auth.Equal(tr.TokenHash, h))) {
		return nil, errNotFound("Trigger")
	}
	return tr, err
}

// quiet turns unexpected errors into a logged 500 before the generic
// handler logs them with the request path, which for the v3 endpoints
// holds a full token.
func (t *triggers) quiet(err error) error {
	var ae *apiError
	if err == nil || errors.As(err, &ae) {
		return err
	}
	t.Log.Error("trigger request failed", "err", err)
	return errMessage(http.StatusInternalServerError, "500 Internal Server Error")
}

func (t *triggers) getV3(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	return t.quiet(t.getV3Inner(w, r, c))
}

func (t *triggers) removeV3(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	return t.quiet(t.removeV3Inner(w, r, c))
}

func (t *triggers) getV3Inner(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	p, _, err := t.project(r, c, access.Maintainer)
	if err != nil {
		return err
	}
	tr, err := t.triggerByToken(r, c, p)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, triggerV3JSON(tr, ""))
	return nil
}

func (t *triggers) removeV3Inner(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	p, _, err := t.project(r, c, access.Maintainer)
	if err != nil {
		return err
	}
	tr, err := t.triggerByToken(r, c, p)
	if err != nil {
		return err
	}
	// v3 answered 200 with the deleted trigger; v4 answers 204.
	err = t.Store.Write(c.ctx, func(tx *store.Tx) error { return tx.DeleteTrigger(c.ctx, tr.ID) })
	if errors.Is(err, store.ErrNotFound) {
		return errNotFound("Trigger")
	} else if err != nil {
		return err
	}
	t.Log.Info("trigger revoked", "project", p.FullPath, "trigger", tr.ID, "short_token", tr.ShortToken, "user", c.user.Username, "api", "v3")
	j := triggerV3JSON(tr, "")
	j["deleted_at"] = isoTime(time.Now())
	writeJSON(w, http.StatusOK, j)
	return nil
}

// deliveryJSON renders one deliveries-log entry. It holds variable names,
// never values, and the short token, never the token.
func (t *triggers) deliveryJSON(p *store.Project, d *store.Delivery) map[string]any {
	names := d.VariableNames
	if names == nil {
		names = []string{}
	}
	m := map[string]any{
		"id": d.ID, "created_at": isoTime(d.CreatedAt), "trigger_id": nilIfZero(d.TriggerID), "short_token": d.ShortToken,
		"ref": d.Ref, "variables": names, "source_ip": d.SourceIP, "endpoint": d.Endpoint,
		"status_code": d.StatusCode, "result": d.Result, "reason": d.Reason, "pipeline_id": nilIfZero(d.PipelineID), "pipeline_web_url": nil,
	}
	if d.PipelineID != 0 {
		m["pipeline_web_url"] = t.ExternalURL + "/" + p.FullPath + "/-/pipelines/" + strconv.FormatInt(d.PipelineID, 10)
	}
	return m
}

func nilIfZero(id int64) any {
	if id == 0 {
		return nil
	}
	return id
}

func (t *triggers) deliveries(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	p, _, err := t.project(r, c, access.Maintainer)
	if err != nil {
		return err
	}
	page, err := paging(r)
	if err != nil {
		return err
	}
	ds, total, err := t.Store.DeliveriesOfProject(c.ctx, p.ID, page)
	if err != nil {
		return err
	}
	out := []map[string]any{}
	for _, d := range ds {
		out = append(out, t.deliveryJSON(p, d))
	}
	setPagination(w, r, page, total)
	writeJSON(w, http.StatusOK, out)
	return nil
}

func orEmptyList(v []string) []string {
	if v == nil {
		return []string{}
	}
	return v
}

// maxRotationOverlap bounds how long a rotated token keeps working.
const maxRotationOverlap = 30 * 24 * time.Hour

// rotate is Kiln's POST /projects/:id/triggers/:trigger_id/rotate: a new
// token with the same description, expiry and policy, owned by the caller
// (the old token's owner), answered once; the old token keeps working for
// overlap (seconds or a duration like 24h; default 24h, at most 30 days,
// 0 ends it now) so callers can switch without downtime.
func (t *triggers) rotate(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	p, _, err := t.project(r, c, access.Maintainer)
	if err != nil {
		return err
	}
	old, err := t.projectTrigger(r, c, p)
	if err != nil {
		return err
	}
	if old.OwnerID != c.user.ID {
		return errMessage(http.StatusForbidden, "403 Forbidden - The current user is not authorized to rotate the pipeline trigger token")
	}
	now := time.Now()
	if old.Expired(now) {
		return errMessage(http.StatusBadRequest, "400 Bad request - the trigger token has expired")
	}
	overlap := 24 * time.Hour
	if c.params.Has("overlap") {
		raw := strings.TrimSpace(c.params.String("overlap"))
		d, perr := time.ParseDuration(raw)
		if n, nerr := strconv.ParseInt(raw, 10, 64); nerr == nil {
			d, perr = time.Duration(n)*time.Second, nil
		}
		if perr != nil || d < 0 || d > maxRotationOverlap {
			return errParam("overlap is invalid (seconds or a duration, at most 720h)")
		}
		overlap = d
	}
	secret := auth.NewToken(auth.TriggerPrefix)
	next := &store.Trigger{ProjectID: p.ID, OwnerID: c.user.ID, TokenHash: auth.Hash(secret), ShortToken: auth.ShortToken(secret),
		Description: old.Description, ExpiresAt: old.ExpiresAt, AllowedRefs: old.AllowedRefs, AllowedCIDRs: old.AllowedCIDRs,
		NoVariables: old.NoVariables, AllowedVariables: old.AllowedVariables, RateLimit: old.RateLimit}
	if err := t.Store.Write(c.ctx, func(tx *store.Tx) error { return tx.RotateTrigger(c.ctx, old.ID, now.Add(overlap), next) }); err != nil {
		return err
	}
	t.Log.Info("trigger rotated", "project", p.FullPath, "old", old.ID, "new", next.ID, "overlap", overlap.String(), "user", c.user.Username)
	writeJSON(w, http.StatusCreated, t.triggerJSON(c, p, next, secret))
	return nil
}
