package api

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/kilnci/kiln/internal/access"
	"github.com/kilnci/kiln/internal/auth"
	"github.com/kilnci/kiln/internal/httplimit"
	"github.com/kilnci/kiln/internal/pipeline"
	"github.com/kilnci/kiln/internal/pipewatch"
	"github.com/kilnci/kiln/internal/store"
	"github.com/kilnci/kiln/internal/trigger"
)

// Messages of refusals that GitLab words this way.
const (
	msgRateLimited   = "Too many pipelines created in the last minute. Try again later."
	msgInsufficient  = "Insufficient permissions to create a new pipeline"
	msgNotFound      = "404 Not Found"
	msgJobNotRunning = "401 Unauthorized"
)

// refusal is a trigger call that ends without a pipeline: the answer, and
// the reason the deliveries log gives (which may say more than the answer,
// since only maintainers read it).
type refusal struct {
	status     int
	body       map[string]any
	reason     string
	retryAfter time.Duration
	// authFailure counts against the client's failed-attempt budget.
	authFailure bool
}

func refuse(status int, msg any, reason string) *refusal {
	return &refusal{status: status, body: map[string]any{"message": msg}, reason: reason}
}

func baseRefusal(reason string, msgs ...string) *refusal {
	return refuse(http.StatusBadRequest, map[string]any{"base": msgs}, reason)
}

// runCall is the state of one trigger call.
type runCall struct {
	version string // v3 or v4
	webhook bool
	project *store.Project
	d       store.Delivery
	// token is the token the call carried, once parsed; owned is set once
	// it is known to be a trigger token of project or a real job's token.
	// Only owned calls are written to the project's deliveries log, so
	// that the log is no write channel for anyone who knows a project id.
	token string
	owned bool
	// replayed: the pipeline is the one an earlier call with the same
	// Idempotency-Key created.
	replayed bool
	// wait is how long the answer may wait for the pipeline to finish.
	wait time.Duration
	// preview is the answer of a dry_run call.
	preview *pipeline.Preview
}

// clientIP is the peer address. X-Forwarded-For is not trusted: anyone can
// send it, and the failed-attempt limit is keyed on this address.
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func (t *triggers) runHandler(version string, webhook bool) http.HandlerFunc {
	endpoint := "POST /api/" + version + "/projects/:id/trigger/pipeline"
	if version == "v3" {
		endpoint = "POST /api/v3/projects/:id/trigger/builds"
	}
	if webhook {
		endpoint = strings.Replace(endpoint, "/trigger/", "/ref/:ref/trigger/", 1)
	}
	return func(w http.ResponseWriter, r *http.Request) {
		rc := &runCall{version: version, webhook: webhook}
		rc.d.Endpoint, rc.d.SourceIP, rc.d.Ref = endpoint, clientIP(r), r.PathValue("ref")
		pl, vars, ref := t.run(w, r, rc)
		if rc.preview != nil {
			writeJSON(w, http.StatusOK, PreviewJSON(rc.preview))
			return
		}
		if pl == nil {
			return
		}
		if rc.replayed {
			w.Header().Set(hdrReplayed, "true")
		}
		if version == "v3" {
			// v3 answered with the trigger request: {id, variables}. Kiln has
			// no trigger requests, so id is the pipeline's.
			writeJSON(w, http.StatusCreated, map[string]any{"id": pl.ID, "variables": vars, "ref": ref, "sha": pl.SHA,
				"status": pl.Status, "pipeline_id": pl.ID, "web_url": t.ExternalURL + "/" + rc.project.FullPath + "/-/pipelines/" + strconv.FormatInt(pl.ID, 10)})
			return
		}
		if rc.wait > 0 {
			t.answerWhenFinished(w, r, rc, pl)
			return
		}
		writeJSON(w, http.StatusCreated, t.PipelineJSON(r.Context(), rc.project, pl))
	}
}

// answerWhenFinished holds a wait= call until its pipeline finishes (201
// with the final state) or the wait is over (202, Location: the pipeline
// in the API); both carry the pipeline's outputs.
func (t *triggers) answerWhenFinished(w http.ResponseWriter, r *http.Request, rc *runCall, pl *store.Pipeline) {
	ctx, cancel := context.WithTimeout(r.Context(), rc.wait)
	defer cancel()
	final := pipewatch.Finished(pl.Status)
	if !final {
		f := t.hub.Follow(pl.ID)
		for {
			snap, err := f.Next(ctx)
			if err != nil {
				break // time is up, the client left, or the server stops
			}
			if snap.Gone {
				break
			}
			pl = snap.Pipeline
			if snap.Final {
				final = true
				break
			}
		}
		f.Close()
	}
	if r.Context().Err() != nil {
		return
	}
	// The latest state, not the poll's (which may be a beat behind).
	if cur, err := t.Store.PipelineByID(r.Context(), pl.ID); err == nil {
		pl = cur
		final = pipewatch.Finished(cur.Status)
	}
	body := t.PipelineJSON(r.Context(), rc.project, pl)
	body["outputs"] = t.outputs(r.Context(), pl.ID)
	if !final {
		w.Header().Set("Location", t.ExternalURL+"/api/v4/projects/"+strconv.FormatInt(rc.project.ID, 10)+"/pipelines/"+strconv.FormatInt(pl.ID, 10))
		writeJSON(w, http.StatusAccepted, body)
		return
	}
	writeJSON(w, http.StatusCreated, body)
}

// outputs are the variables the pipeline's current jobs exported through
// artifacts:reports:dotenv; a later job's value wins (stage order).
func (t *triggers) outputs(ctx context.Context, pipelineID int64) map[string]string {
	out := map[string]string{}
	vars, err := t.Store.PipelineDotenv(ctx, pipelineID)
	if err != nil {
		t.Log.Error("reading pipeline outputs", "pipeline", pipelineID, "err", err)
	}
	for _, v := range vars {
		out[v.Key] = v.Value
	}
	return out
}

// run does one trigger call in GitLab's order of checks and records it. It
// returns the pipeline, or nil after writing the refusal.
func (t *triggers) run(w http.ResponseWriter, r *http.Request, rc *runCall) (*store.Pipeline, map[string]string, string) {
	ctx := r.Context()
	// The project is looked up first only so that refusals can be filed
	// under it; answers still follow GitLab's order below.
	if p, err := t.projectByID(ctx, r.PathValue("id")); err == nil {
		rc.project = p
		rc.d.ProjectID = p.ID
	}
	pl, vars, ref, rf := t.attempt(ctx, r, rc)
	if rf == nil && rc.preview != nil {
		t.observe(http.StatusOK)
		return nil, nil, ""
	}
	if rf == nil {
		t.observe(http.StatusCreated)
		return pl, vars, ref
	}
	t.observe(rf.status)
	if rf.authFailure {
		t.authFail.Take(rc.d.SourceIP)
	}
	// Every refusal, not only bad tokens, spends the address's budget.
	t.refusals.Take(rc.d.SourceIP)
	if rf.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int((rf.retryAfter+time.Second-1)/time.Second)))
	}
	writeJSON(w, rf.status, rf.body)
	if rc.project != nil && !rc.owned && rc.token != "" && rf.reason != "" {
		rc.owned = t.tokenOwned(ctx, rc.token, rc.project)
	}
	if rc.project == nil || rf.reason == "" || !rc.owned {
		// Unknown project, or a caller who showed no token of it: nothing
		// is written (metrics count the call by status).
		t.Log.Debug("trigger refused", "endpoint", rc.d.Endpoint, "ip", rc.d.SourceIP, "status", rf.status, "reason", rf.reason)
		return nil, nil, ""
	}
	rc.d.StatusCode, rc.d.Result, rc.d.Reason = rf.status, "refused", rf.reason
	if rf.status >= 500 {
		rc.d.Result = "error"
	}
	t.recordDelivery(ctx, &rc.d)
	t.Log.Info("trigger refused", "project", rc.project.FullPath, "endpoint", rc.d.Endpoint, "short_token", rc.d.ShortToken,
		"ref", rc.d.Ref, "ip", rc.d.SourceIP, "status", rf.status, "reason", rf.reason)
	return nil, nil, ""
}

func (t *triggers) observe(status int) {
	if t.opts.Observe != nil {
		t.opts.Observe(status)
	}
}

func (t *triggers) recordDelivery(ctx context.Context, d *store.Delivery) {
	err := t.Store.Write(context.WithoutCancel(ctx), func(tx *store.Tx) error { return tx.InsertDelivery(ctx, d) })
	if err != nil {
		t.Log.Error("recording trigger delivery", "err", err)
	}
}

// tokenOwned reports whether token is a trigger token of p (expired ones
// included: the project's maintainers want to see those calls) or the
// token of an existing job.
func (t *triggers) tokenOwned(ctx context.Context, token string, p *store.Project) bool {
	if token == "" || len(token) > 256 {
		return false
	}
	h := auth.Hash(token)
	if tr, err := t.Store.TriggerByHash(ctx, h); err == nil {
		return auth.Equal(tr.TokenHash, h) && tr.ProjectID == p.ID
	}
	if strings.HasPrefix(token, auth.JobPrefix) {
		_, err := t.Store.JobByTokenHash(ctx, h)
		return err == nil
	}
	return false
}

// projectByID finds a project by numeric id or full path, regardless of
// visibility: trigger calls carry no user, the token decides.
func (t *triggers) projectByID(ctx context.Context, id string) (*store.Project, error) {
	if n, err := strconv.ParseInt(id, 10, 64); err == nil {
		return t.Store.ProjectByID(ctx, n)
	}
	return t.Store.ProjectByPath(ctx, id)
}

// attempt runs the checks and creates the pipeline, or returns the refusal.
func (t *triggers) attempt(ctx context.Context, r *http.Request, rc *runCall) (*store.Pipeline, map[string]string, string, *refusal) {
	// A client that failed too often waits, whatever it sends now: refusing
	// only its wrong tokens would still tell it which guess was right.
	// Refusals of any kind are budgeted too, so that refused calls are
	// never free.
	if blocked, retry, _ := t.authFail.Blocked(rc.d.SourceIP); blocked {
		rf := refuse(http.StatusTooManyRequests, "429 Too Many Requests - too many failed trigger attempts from this address, retry later", "")
		rf.retryAfter = retry
		return nil, nil, "", rf
	}
	if blocked, retry, _ := t.refusals.Blocked(rc.d.SourceIP); blocked {
		rf := refuse(http.StatusTooManyRequests, "429 Too Many Requests - too many refused trigger calls from this address, retry later", "")
		rf.retryAfter = retry
		return nil, nil, "", rf
	}
	// 1. Parameters.
	req, err := trigger.Parse(r, r.PathValue("ref"), r.PathValue("id"), t.opts.Limits)
	if req != nil {
		rc.token = req.Token
	}
	// 2. Loop guard: a pipeline webhook pointed at a trigger URL would
	// start a pipeline per pipeline event, forever.
	if r.Header.Get("X-Gitlab-Event") == "Pipeline Hook" {
		return nil, nil, "", refuse(http.StatusForbidden, "403 Forbidden", "loop guard: X-Gitlab-Event: Pipeline Hook is refused")
	}
	if err != nil {
		if req != nil {
			rc.d.Ref, rc.d.ShortToken = req.Ref, auth.ShortToken(req.Token)
		}
		var te *trigger.Error
		if errors.As(err, &te) {
			return nil, nil, "", &refusal{status: te.Status, body: te.Body, reason: te.Reason}
		}
		return nil, nil, "", refuse(http.StatusBadRequest, "400 Bad request", err.Error())
	}
	rc.d.Ref, rc.d.VariableNames = req.Ref, req.Keys()
	rc.d.ShortToken = auth.ShortToken(req.Token)
	if req.Wait > 0 && rc.version == "v4" {
		// A waiting call is a long-lived request: it takes a slot under
		// the server's caps before anything is created.
		if _, ok := httplimit.Hold(r); !ok {
			rf := refuse(http.StatusTooManyRequests, httplimit.TooManyStreams, "wait: too many long-lived requests from this address or in total")
			rf.retryAfter = 10 * time.Second
			return nil, nil, "", rf
		}
		rc.wait = req.Wait
	}
	idemKeyText, ie := readIdempotencyKey(r)
	if ie != nil {
		return nil, nil, "", refuse(ie.status, ie.msg, ie.msg)
	}
	// 3. Project.
	if rc.project == nil {
		rf := refuse(http.StatusNotFound, msgNotFound, "project not found")
		rf.authFailure = true
		return nil, nil, "", rf
	}
	p := rc.project
	// 4. Token: a trigger token, or a running job's CI_JOB_TOKEN.
	preq := pipeline.Request{Project: p, Ref: req.Ref, CommitSHA: req.SHA, IgnoreSkipCI: true, Inputs: req.Inputs}
	for _, k := range req.Keys() {
		preq.Variables = append(preq.Variables, pipeline.Var{Key: k, Value: req.Variables[k]})
	}
	var tr *store.Trigger
	if strings.HasPrefix(req.Token, auth.JobPrefix) {
		rf := t.jobTokenRequest(ctx, req.Token, p, &preq, rc)
		if rf != nil {
			return nil, nil, "", rf
		}
	} else {
		var rf *refusal
		tr, rf = t.triggerRequest(ctx, req.Token, p, &preq, rc)
		if rf != nil {
			return nil, nil, "", rf
		}
		// TRIGGER_PAYLOAD: every parameter but the token, as a file variable.
		preq.Variables = append(preq.Variables, pipeline.Var{Key: "TRIGGER_PAYLOAD", Value: string(req.Payload), File: true, Raw: true})
	}
	// dry_run: Create's checks and evaluation, nothing written but the
	// delivery (creation is budgeted: a preview costs what a pipeline does).
	if req.DryRun {
		if ok, retry := t.creates.Allow(strconv.FormatInt(p.ID, 10)); !ok {
			rf := refuse(http.StatusTooManyRequests, map[string]any{"base": []string{msgRateLimited}}, "rate limited: "+msgRateLimited)
			rf.retryAfter = retry
			return nil, nil, "", rf
		}
		pv, err := t.Engine.Preview(ctx, preq)
		if rf := t.createRefusal(err, p); rf != nil {
			return nil, nil, "", rf
		}
		rc.preview = pv
		rc.d.StatusCode, rc.d.Result, rc.d.Reason = http.StatusOK, "preview", "dry_run: nothing created"
		t.recordDelivery(ctx, &rc.d)
		return nil, nil, "", nil
	}
	// Idempotency-Key: a live key of this caller answers with its pipeline
	// (before the creation limit: a replay creates nothing).
	scope := "job:" + strconv.FormatInt(preq.UpstreamJobID, 10)
	if tr != nil {
		scope = "trigger:" + strconv.FormatInt(tr.ID, 10)
	}
	k := newIdemKey(idemKeyText, p.ID, scope, append([]byte(req.SHA+"\x00"), req.Fingerprint...))
	if pl, rf := t.idemAnswer(ctx, k, rc); pl != nil || rf != nil {
		return pl, req.Variables, req.Ref, rf
	}
	// 5. Per-project creation limit.
	if ok, retry := t.creates.Allow(strconv.FormatInt(p.ID, 10)); !ok {
		rf := refuse(http.StatusTooManyRequests, map[string]any{"base": []string{msgRateLimited}}, "rate limited: "+msgRateLimited)
		rf.retryAfter = retry
		return nil, nil, "", rf
	}
	// 6. Create; the delivery row and last_used share the pipeline's commit.
	now := time.Now()
	preq.InTx = func(ctx context.Context, tx *store.Tx, pl *store.Pipeline) error {
		rc.d.StatusCode, rc.d.Result, rc.d.PipelineID = http.StatusCreated, "created", pl.ID
		if err := tx.InsertDelivery(ctx, &rc.d); err != nil {
			return err
		}
		if err := k.record(ctx, tx, pl); err != nil {
			return err
		}
		if tr != nil {
			return tx.TouchTrigger(ctx, tr.ID, now)
		}
		return nil
	}
	pl, err := t.Engine.Create(ctx, preq)
	if err != nil && k != nil && errors.Is(err, store.ErrConflict) {
		// A concurrent call with the same key committed first.
		if pl, rf := t.idemAnswer(ctx, k, rc); pl != nil || rf != nil {
			return pl, req.Variables, req.Ref, rf
		}
	}
	if rf := t.createRefusal(err, p); rf != nil {
		return nil, nil, "", rf
	}
	t.Log.Info("pipeline triggered", "project", p.FullPath, "pipeline", pl.ID, "source", pl.Source, "ref", pl.Ref,
		"short_token", rc.d.ShortToken, "ip", rc.d.SourceIP, "variables", len(req.Variables))
	return pl, req.Variables, req.Ref, nil
}

// triggerRequest checks a trigger token against p and fills in who the
// pipeline runs as. Unknown, revoked, expired and other projects' tokens
// all get the same 404, so that nothing about them leaks.
func (t *triggers) triggerRequest(ctx context.Context, token string, p *store.Project, preq *pipeline.Request, rc *runCall) (*store.Trigger, *refusal) {
	notFound := func(reason string) *refusal {
		rf := refuse(http.StatusNotFound, msgNotFound, reason)
		rf.authFailure = true
		return rf
	}
	if len(token) > 256 {
		return nil, notFound("unknown token")
	}
	// The lookup is by SHA-256 of the token through a unique index: timing
	// reveals nothing about a stored token's value, and the final
	// comparison is constant-time anyway.
	h := auth.Hash(token)
	tr, err := t.Store.TriggerByHash(ctx, h)
	if errors.Is(err, store.ErrNotFound) || (err == nil && !auth.Equal(tr.TokenHash, h)) {
		return nil, notFound("unknown or revoked token")
	} else if err != nil {
		t.Log.Error("trigger lookup failed", "err", err)
		return nil, refuse(http.StatusInternalServerError, "500 Internal Server Error", "internal error looking up the token")
	}
	rc.d.TriggerID, rc.d.ShortToken = tr.ID, tr.ShortToken
	if tr.ProjectID != p.ID {
		rc.d.TriggerID = 0 // it belongs to another project's log, not this one's
		return nil, notFound("token of another project")
	}
	rc.owned = true
	if tr.Expired(time.Now()) {
		return nil, notFound("token expired at " + isoTime(*tr.ExpiresAt))
	}
	if rf := tokenPolicy(tr, rc.d.SourceIP, preq.Ref); rf != nil {
		return nil, rf
	}
	// The token's own rate limit counts every call that got this far.
	if ok, retry := t.perToken.Allow(strconv.FormatInt(tr.ID, 10), tr.RateLimit); !ok {
		rf := refuse(http.StatusTooManyRequests, fmt.Sprintf("429 Too Many Requests - this trigger token is limited to %d requests per minute, retry later", tr.RateLimit),
			fmt.Sprintf("token rate limit: more than %d requests per minute", tr.RateLimit))
		rf.retryAfter = retry
		return nil, rf
	}
	names := make([]string, 0, len(preq.Variables))
	for _, v := range preq.Variables {
		names = append(names, v.Key)
	}
	if msg, reason := access.TriggerVariablesDenial(!tr.NoVariables, tr.AllowedVariables, names); msg != "" {
		return nil, baseRefusal(reason, msg)
	}
	owner, err := t.Store.UserByID(ctx, tr.OwnerID)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, refuse(http.StatusInternalServerError, "500 Internal Server Error", "internal error loading the trigger owner")
	}
	if owner == nil || owner.State != "active" {
		return nil, baseRefusal("trigger owner is no longer active (trigger invalid)", msgInsufficient)
	}
	level, err := access.New(t.Store).Level(ctx, p, owner)
	if err != nil {
		return nil, refuse(http.StatusInternalServerError, "500 Internal Server Error", "internal error checking access")
	}
	if !access.At(level, access.Developer) {
		return nil, baseRefusal("trigger owner "+owner.Username+" no longer has developer access (trigger invalid)", msgInsufficient)
	}
	// The project's minimum role to use pipeline variables, for the
	// token's owner as they are now.
	if msg, reason := access.PipelineVariablesDenial(level, p.VariablesMinRole, names); msg != "" {
		return nil, baseRefusal(reason+" and the trigger owner "+owner.Username+" is "+access.RoleName(level), msg)
	}
	preq.Source, preq.User, preq.TriggerID, preq.TriggerShortToken = "trigger", owner, tr.ID, tr.ShortToken
	return tr, nil
}

// jobTokenRequest checks a CI_JOB_TOKEN: the job must be running, its
// pipeline's user needs developer access to p, and p's job token allowlist,
// when enabled, admits only p's own jobs (Kiln keeps no allowlist entries).
func (t *triggers) jobTokenRequest(ctx context.Context, token string, p *store.Project, preq *pipeline.Request, rc *runCall) *refusal {
	rc.d.ShortToken = "CI_JOB_TOKEN"
	notRunning := func(reason string) *refusal {
		rf := refuse(http.StatusUnauthorized, msgJobNotRunning, reason)
		rf.authFailure = true
		return rf
	}
	if len(token) > 256 {
		return notRunning("unknown job token")
	}
	j, err := t.Store.JobByTokenHash(ctx, auth.Hash(token))
	if errors.Is(err, store.ErrNotFound) {
		// Job tokens are erased when their job finishes, so a finished
		// job's token and a made-up one look the same.
		return notRunning("job token of no running job (the job finished, or the token is wrong)")
	} else if err != nil {
		return refuse(http.StatusInternalServerError, "500 Internal Server Error", "internal error looking up the job token")
	}
	rc.d.Reason = fmt.Sprintf("CI_JOB_TOKEN of job %d", j.ID)
	rc.owned = true // a real job's token: an authenticated caller
	if j.Status != "running" {
		return notRunning(fmt.Sprintf("job %d is %s, not running", j.ID, j.Status))
	}
	up, err := t.Store.PipelineByID(ctx, j.PipelineID)
	if err != nil {
		return refuse(http.StatusInternalServerError, "500 Internal Server Error", "internal error loading the job's pipeline")
	}
	if trigger.Depth(ctx, t.Store, up) >= trigger.MaxDepth {
		return baseRefusal(fmt.Sprintf("job %d: pipeline hierarchy deeper than %d", j.ID, trigger.MaxDepth),
			fmt.Sprintf("Downstream pipeline cannot be created: the pipeline hierarchy is limited to %d levels", trigger.MaxDepth))
	}
	// A job token acts as the job's user (who ran, retried or played it).
	uid := j.UserID
	if uid == 0 {
		uid = up.UserID
	}
	var user *store.User
	if uid != 0 {
		user, _ = t.Store.UserByID(ctx, uid)
	}
	if !access.JobTokenAllowed(p, j.ProjectID) {
		src, _ := t.Store.ProjectByID(ctx, j.ProjectID)
		srcPath := strconv.FormatInt(j.ProjectID, 10)
		if src != nil {
			srcPath = src.FullPath
		}
		return refuse(http.StatusForbidden, fmt.Sprintf("403 Forbidden - Authentication by CI/CD job token not allowed from %s to %s.", srcPath, p.FullPath),
			fmt.Sprintf("job %d of %s: the job token allowlist of %s admits only its own jobs", j.ID, srcPath, p.FullPath))
	}
	level, err := access.New(t.Store).Level(ctx, p, user)
	if err != nil {
		return refuse(http.StatusInternalServerError, "500 Internal Server Error", "internal error checking access")
	}
	if !access.CanCreatePipeline(level) {
		who := "nobody"
		if user != nil {
			who = user.Username
		}
		if access.Hidden(p, user, level) {
			rf := refuse(http.StatusNotFound, msgNotFound, fmt.Sprintf("job %d runs as %s, who cannot see this project", j.ID, who))
			return rf
		}
		return baseRefusal(fmt.Sprintf("job %d runs as %s, who lacks developer access", j.ID, who), msgInsufficient)
	}
	preq.Source, preq.User, preq.UpstreamJobID, preq.UpstreamPipelineID = "pipeline", user, j.ID, up.ID
	return nil
}

// idemAnswer answers a call whose Idempotency-Key is live: the pipeline
// it created (a replay, recorded in the deliveries log), or the refusal of
// a key reused with other parameters. Both nil: a new key.
func (t *triggers) idemAnswer(ctx context.Context, k *idemKey, rc *runCall) (*store.Pipeline, *refusal) {
	pl, ie, err := t.idemReplay(ctx, k)
	if err != nil {
		t.Log.Error("idempotency key lookup failed", "err", err)
		return nil, refuse(http.StatusInternalServerError, "500 Internal Server Error", "internal error looking up the Idempotency-Key")
	}
	if ie != nil {
		return nil, refuse(ie.status, ie.msg, ie.msg)
	}
	if pl == nil {
		return nil, nil
	}
	rc.replayed = true
	rc.d.StatusCode, rc.d.Result, rc.d.PipelineID, rc.d.Reason = http.StatusCreated, "replayed", pl.ID, "Idempotency-Key replay of pipeline "+strconv.FormatInt(pl.ID, 10)
	t.recordDelivery(ctx, &rc.d)
	return pl, nil
}

// createRefusal turns an error of Engine.Create or Preview into the
// refusal (nil for no error).
func (t *triggers) createRefusal(err error, p *store.Project) *refusal {
	if err == nil {
		return nil
	}
	var ce *pipeline.CreateError
	if errors.As(err, &ce) {
		return baseRefusal(ce.Error(), ce.Messages...)
	}
	if errors.Is(err, pipeline.ErrSkipped) {
		return baseRefusal("skipped", "Pipeline skipped")
	}
	t.Log.Error("trigger pipeline creation failed", "project", p.FullPath, "err", err)
	return refuse(http.StatusInternalServerError, "500 Internal Server Error", "internal error creating the pipeline")
}

// tokenPolicy applies a trigger token's own policy (access decides):
// refusals are 403s; the deliveries log gets the precise reason.
func tokenPolicy(tr *store.Trigger, sourceIP, ref string) *refusal {
	if msg, reason := access.TriggerTokenDenial(tr.AllowedRefs, tr.AllowedCIDRs, sourceIP, ref); msg != "" {
		return refuse(http.StatusForbidden, msg, reason)
	}
	return nil
}
