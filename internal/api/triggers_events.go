package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/kilnci/kiln/internal/access"
	"github.com/kilnci/kiln/internal/auth"
	"github.com/kilnci/kiln/internal/pipewatch"
	"github.com/kilnci/kiln/internal/store"
	"github.com/kilnci/kiln/internal/stuck"
)

// eventPoll is how often a followed pipeline is read (once per pipeline,
// however many follow it). Polling the read pool by primary key costs
// little and needs no coupling to the engine's commit path.
const eventPoll = EventPoll

// EventPoll is the interval servers give their pipewatch hub.
const EventPoll = 250 * time.Millisecond

// defaultEventStreamMax bounds one event stream; clients reconnect.
const defaultEventStreamMax = 30 * time.Minute

func (t *triggers) watch() *pipewatch.Hub { return t.hub }

func (t *triggers) eventStreamMax() time.Duration {
	if t.opts.EventStreamMax > 0 {
		return t.opts.EventStreamMax
	}
	return defaultEventStreamMax
}

// eventHeartbeat keeps idle connections (and proxies) from timing out.
const eventHeartbeat = 15 * time.Second

// events streams a pipeline's progress as newline-delimited JSON: a
// "pipeline" line on every pipeline status change, a "job" line on every
// job status change, a "stuck" line when a pending job cannot start (and
// why: package stuck, the job page's explanation) and whenever that
// explanation changes, and a final "end" line once the pipeline is
// complete.
// It authenticates with a personal access token (reporter access) or with
// ?token= a trigger token of the project, which may follow the pipelines it
// started (or a running job's CI_JOB_TOKEN, which may follow the pipelines
// its job triggered). `kiln trigger --wait` reads it.
func (t *triggers) events(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	id, err := strconv.ParseInt(r.PathValue("pipeline_id"), 10, 64)
	if err != nil {
		return errParam("pipeline_id is invalid")
	}
	var p *store.Project
	var pl *store.Pipeline
	if tok := r.URL.Query().Get("token"); tok != "" && c.user == nil {
		// Token guesses here count against the same budget as on the
		// trigger endpoints.
		ip := clientIP(r)
		if blocked, retry, _ := t.authFail.Blocked(ip); blocked {
			w.Header().Set("Retry-After", strconv.Itoa(int((retry+time.Second-1)/time.Second)))
			return errMessage(http.StatusTooManyRequests, "429 Too Many Requests - too many failed trigger attempts from this address, retry later")
		}
		p, err = t.projectByID(c.ctx, r.PathValue("id"))
		if err == nil {
			pl, err = t.Store.PipelineByID(c.ctx, id)
		}
		if err != nil || pl.ProjectID != p.ID || !t.tokenFollows(r, tok, p, pl) {
			t.authFail.Take(ip)
			return errNotFound("")
		}
	} else {
		if p, _, err = t.project(r, c, access.Reporter); err != nil {
			return err
		}
		pl, err = t.Store.PipelineByID(c.ctx, id)
		if errors.Is(err, store.ErrNotFound) || (err == nil && pl.ProjectID != p.ID) {
			return errNotFound("")
		} else if err != nil {
			return err
		}
	}

	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	send := func(v any) bool {
		if err := enc.Encode(v); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	// Every follower of this pipeline shares one poll of it; the stream
	// ends when the pipeline is finished or deleted, or after the bound
	// (a client wanting more reconnects).
	f := t.watch().Follow(pl.ID)
	defer f.Close()
	ctx, cancel := context.WithTimeout(c.ctx, t.eventStreamMax())
	defer cancel()
	web := t.ExternalURL + "/" + p.FullPath
	jobSeen := map[int64]string{}
	lastStatus := ""
	lastSend := time.Now()
	sendNow := func(v any) bool { lastSend = time.Now(); return send(v) }
	// Pending jobs are explained ("stuck" lines) when they start waiting
	// and again whenever the explanation changes; the runners' state is not
	// in the snapshot, so it is looked at again every stuckRecheck.
	var jobs []*store.Job
	stuckSent := map[int64]string{}
	explain := func() bool {
		now := time.Now()
		var runners []*store.Runner
		read := false
		for _, j := range jobs {
			if j.Retried || j.Kind == "bridge" {
				continue
			}
			if j.Status != "pending" {
				delete(stuckSent, j.ID)
				continue
			}
			if !read {
				// One read of the runners for all the pending jobs.
				var err error
				if runners, err = stuck.Available(ctx, t.Store, p); err != nil {
					return true
				}
				read = true
			}
			ex := stuck.ExplainWith(runners, j, now)
			if ex == nil {
				continue
			}
			since := j.CreatedAt
			if j.QueuedAt != nil {
				since = *j.QueuedAt
			}
			if ex.Kind == stuck.Busy && now.Sub(since) < stuckBusyAfter {
				// Runners that can take it are online: give them a moment.
				continue
			}
			if stuckSent[j.ID] == ex.Message {
				continue
			}
			stuckSent[j.ID] = ex.Message
			if !sendNow(map[string]any{"event": "stuck", "id": j.ID, "name": j.Name, "stage": j.Stage, "kind": ex.Kind,
				"message": ex.Message, "runners": ex.Runners, "web_url": web + "/-/jobs/" + strconv.FormatInt(j.ID, 10)}) {
				return false
			}
		}
		return true
	}
	hasPending := func() bool {
		for _, j := range jobs {
			if j.Status == "pending" && j.Kind != "bridge" && !j.Retried {
				return true
			}
		}
		return false
	}
	for {
		wait := eventHeartbeat - time.Since(lastSend)
		if hasPending() && wait > stuckRecheck {
			wait = stuckRecheck
		}
		beat, stopBeat := context.WithTimeout(ctx, max(wait, time.Millisecond))
		snap, err := f.Next(beat)
		stopBeat()
		if err != nil {
			if ctx.Err() == context.DeadlineExceeded && c.ctx.Err() == nil {
				send(map[string]any{"event": "timeout", "id": pl.ID})
				return nil
			}
			if ctx.Err() != nil || !errors.Is(err, context.DeadlineExceeded) {
				return nil
			}
			if !explain() {
				return nil
			}
			if time.Since(lastSend) >= eventHeartbeat && !sendNow(map[string]any{"event": "heartbeat"}) {
				return nil
			}
			continue
		}
		if snap.Gone {
			send(map[string]any{"event": "end", "id": id, "status": "deleted"})
			return nil
		}
		cur := snap.Pipeline
		if cur.Status != lastStatus {
			lastStatus = cur.Status
			if !sendNow(map[string]any{"event": "pipeline", "id": cur.ID, "iid": cur.IID, "project_id": p.ID, "status": cur.Status,
				"ref": cur.Ref, "sha": cur.SHA, "source": cur.Source, "web_url": web + "/-/pipelines/" + strconv.FormatInt(cur.ID, 10)}) {
				return nil
			}
		}
		for _, j := range snap.Jobs {
			if j.Retried && jobSeen[j.ID] == "" {
				continue
			}
			if jobSeen[j.ID] == j.Status {
				continue
			}
			jobSeen[j.ID] = j.Status
			ev := map[string]any{"event": "job", "id": j.ID, "name": j.Name, "stage": j.Stage, "status": j.Status,
				"kind": j.Kind, "allow_failure": j.AllowFailure, "failure_reason": j.FailureReason,
				"finished": isFinished(j.Status), "web_url": web + "/-/jobs/" + strconv.FormatInt(j.ID, 10)}
			if j.DownstreamPipelineID != 0 {
				ev["downstream_pipeline_id"] = j.DownstreamPipelineID
			}
			if !sendNow(ev) {
				return nil
			}
		}
		if snap.Final {
			send(map[string]any{"event": "end", "id": cur.ID, "status": cur.Status})
			return nil
		}
		jobs = snap.Jobs
		if !explain() {
			return nil
		}
	}
}

// stuckRecheck is how often a stream with pending jobs looks at the
// runners again; stuckBusyAfter is how long a job may wait for a busy but
// able runner before it is reported.
const (
	stuckRecheck   = 2 * time.Second
	stuckBusyAfter = 5 * time.Second
)

func isFinished(status string) bool {
	switch status {
	case "success", "failed", "canceled", "skipped":
		return true
	}
	return false
}

// tokenFollows reports whether a trigger token (or job token) may follow
// pl: the trigger started it, or the job triggered it.
func (t *triggers) tokenFollows(r *http.Request, tok string, p *store.Project, pl *store.Pipeline) bool {
	if len(tok) > 256 {
		return false
	}
	h := auth.Hash(tok)
	if tr, err := t.Store.TriggerByHash(r.Context(), h); err == nil {
		return auth.Equal(tr.TokenHash, h) && tr.ProjectID == p.ID && !tr.Expired(time.Now()) && pl.TriggerID == tr.ID
	}
	if j, err := t.Store.JobByTokenHash(r.Context(), h); err == nil {
		return j.Status == "running" && pl.UpstreamJobID == j.ID
	}
	return false
}
