package web

import (
	"bytes"
	"encoding/json"
	"errors"
	"html/template"
	"io"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/kilnci/kiln/internal/access"
	"github.com/kilnci/kiln/internal/blob"
	"github.com/kilnci/kiln/internal/pipeline"
	"github.com/kilnci/kiln/internal/store"
)

// jobRow is one line of the jobs list.
type jobRow struct {
	J        *store.Job
	URL      string
	P        *store.Pipeline
	PURL     string
	Runner   string
	Duration *time.Duration
}

type jobListData struct {
	Rows     []jobRow
	Pager    pager
	Status   string
	Statuses []string
}

func (w *Web) runnerName(q *req, cache map[int64]string, id int64) string {
	if id == 0 {
		return ""
	}
	if n, ok := cache[id]; ok {
		return n
	}
	n := "#" + strconv.FormatInt(id, 10)
	if r, err := w.Store.RunnerBriefByID(q.ctx, id); err == nil && r.Description != "" {
		n += " (" + r.Description + ")"
	}
	cache[id] = n
	return n
}

func (w *Web) jobList(q *req) {
	if !w.requireLevel(q, access.Reporter) {
		return
	}
	// Builds only, as on GitLab's jobs page (bridges show in their
	// pipeline), which also lets the list read the jobs_project_kind index.
	f := store.JobFilter{ProjectID: q.project.ID, Kind: "build"}
	st := q.r.URL.Query().Get("status")
	if st != "" {
		f.Status = []string{st}
	}
	n := pageParam(q.r)
	jobs, total, err := w.Store.ListJobs(q.ctx, f, store.Page{Number: n, PerPage: perPage})
	if err != nil {
		w.internal(q, err)
		return
	}
	pls := map[int64]*store.Pipeline{}
	runners := map[int64]string{}
	d := jobListData{Pager: newPager(q.r, n, perPage, total), Status: st,
		Statuses: []string{"created", "pending", "running", "success", "failed", "canceled", "skipped", "manual"}}
	base := projectURL(q.project)
	for _, j := range jobs {
		pl, ok := pls[j.PipelineID]
		if !ok {
			pl, _ = w.Store.PipelineByID(q.ctx, j.PipelineID)
			pls[j.PipelineID] = pl
		}
		if pl == nil {
			continue
		}
		d.Rows = append(d.Rows, jobRow{J: j, URL: base + "/-/jobs/" + strconv.FormatInt(j.ID, 10), P: pl,
			PURL: base + "/-/pipelines/" + strconv.FormatInt(pl.ID, 10), Runner: w.runnerName(q, runners, j.RunnerID), Duration: jobDuration(j)})
	}
	w.render(q, http.StatusOK, "jobs", w.newPage(q, "Jobs · "+q.project.Name, "jobs", d))
}

func (w *Web) loadJob(q *req, id int64) (*store.Job, bool) {
	j, err := w.Store.JobByID(q.ctx, id)
	if err != nil || j.ProjectID != q.project.ID {
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			w.internal(q, err)
			return nil, false
		}
		w.notFound(q)
		return nil, false
	}
	return j, true
}

// triggerBlock is the job page's "Trigger token" box for triggered jobs.
type triggerBlock struct {
	ShortToken string
	// Variables are filled only for maintainers and owners, as on GitLab:
	// other roles never receive the values at all.
	Variables []pipeline.RunnerVar
	CanSee    bool
}

type jobShowData struct {
	J        *store.Job
	P        *store.Pipeline
	PURL     string
	User     *store.User
	Runner   string
	Duration *time.Duration
	Queued   *int64
	Trigger  *triggerBlock
	LogHTML  template.HTML
	// LogUnavailable says why the log is not shown (the object store
	// holding the archived log cannot be read).
	LogUnavailable string
	Offset         int64
	Truncated      bool
	TraceURL       string
	RawURL         string
	Active         bool
	CanRetry       bool
	CanCancel      bool
	CanPlay        bool
	Downstream     *pipelineLink
	Stuck          *stuckInfo
}

// pageLogLimit bounds the log rendered into the page; longer logs show
// their tail (the raw log has everything). GitLab shows the last 500 KiB;
// 4 MiB took ~100 ms and tens of MB of garbage to render on every load.
const pageLogLimit = 512 << 10

func (w *Web) jobShow(q *req, id int64) {
	if !w.requireLevel(q, access.Reporter) {
		return
	}
	j, ok := w.loadJob(q, id)
	if !ok {
		return
	}
	pl, err := w.Store.PipelineByID(q.ctx, j.PipelineID)
	if err != nil {
		w.internal(q, err)
		return
	}
	base := projectURL(q.project) + "/-/jobs/" + strconv.FormatInt(j.ID, 10)
	d := jobShowData{J: j, P: pl, PURL: projectURL(q.project) + "/-/pipelines/" + strconv.FormatInt(pl.ID, 10),
		User: newUserCache(w.Store).get(q.ctx, j.UserID), Runner: w.runnerName(q, map[int64]string{}, j.RunnerID),
		Duration: jobDuration(j), Queued: jobQueued(j), TraceURL: base + "/trace.json", RawURL: base + "/raw", Active: activeStatus(j.Status)}
	if d.User == nil {
		d.User = newUserCache(w.Store).get(q.ctx, pl.UserID)
	}
	if pl.Source == "trigger" {
		tb := &triggerBlock{ShortToken: pl.TriggerShortToken, CanSee: access.At(q.level, access.Maintainer)}
		if tb.CanSee {
			if tb.Variables, err = w.Engine.PipelineVariables(q.ctx, pl.ID); err != nil {
				w.internal(q, err)
				return
			}
		}
		d.Trigger = tb
	}
	if j.DownstreamPipelineID != 0 {
		d.Downstream = w.pipelineLinkFor(q, j.DownstreamPipelineID)
	}
	if d.Stuck, err = w.explainPending(q, j); err != nil {
		w.internal(q, err)
		return
	}
	if w.ReadTrace != nil {
		// read notes on the page a log the object store cannot give.
		read := func(offset int64, max int) ([]byte, int64, error) {
			data, size, err := w.ReadTrace(q.ctx, j.ID, offset, max)
			if errors.Is(err, blob.ErrUnavailable) {
				w.Log.Error("reading a job log failed: object store unavailable", "job", j.ID, "err", err)
				d.LogUnavailable = logUnavailableNote
			}
			return data, size, err
		}
		_, size, err := read(0, 0)
		if err == nil {
			start := int64(0)
			if size > pageLogLimit {
				start, d.Truncated = size-pageLogLimit, true
			}
			data, _, err := read(start, pageLogLimit)
			if err == nil {
				if d.Truncated {
					// Start at a line boundary so no escape sequence is cut.
					if i := bytes.IndexByte(data, '\n'); i >= 0 {
						data, start = data[i+1:], start+int64(i+1)
					}
				}
				data = completeLines(data, d.Active)
				d.Offset = start + int64(len(data))
				// logHTML escapes all log text itself; see joblog.go.
				d.LogHTML = template.HTML(logHTML(newLogRenderer().render(data)))
			}
		}
	}
	if access.At(q.level, access.Developer) && !j.Retried {
		d.CanRetry = slices.Contains([]string{"success", "failed", "canceled"}, j.Status) && j.Kind == "build"
		d.CanCancel = d.Active
		d.CanPlay = j.Status == "manual" || j.Status == "scheduled"
	}
	w.render(q, http.StatusOK, "job", w.newPage(q, j.Name+" (#"+strconv.FormatInt(j.ID, 10)+") · "+q.project.Name, "jobs", d))
}

// completeLines drops a trailing partial line while the job still runs: it
// will be sent whole on the next poll, so a line (and its escapes) is never
// split between two renders.
func completeLines(data []byte, active bool) []byte {
	if !active || len(data) == 0 || data[len(data)-1] == '\n' {
		return data
	}
	if i := bytes.LastIndexByte(data, '\n'); i >= 0 {
		return data[:i+1]
	}
	if len(data) >= traceChunk {
		return data // one enormous line: show it rather than stall
	}
	return nil
}

// traceChunk is the most one poll returns.
const traceChunk = 512 << 10

type traceResponse struct {
	Offset   int64      `json:"offset"`
	Size     int64      `json:"size"`
	Events   []logEvent `json:"events"`
	Status   string     `json:"status"`
	Label    string     `json:"label"`
	Active   bool       `json:"active"`
	Duration string     `json:"duration"`
}

// jobTrace is the live log endpoint: new events since offset, plus the
// job's status so that the page knows when to stop polling.
func (w *Web) jobTrace(q *req, id int64) {
	if !w.requireLevel(q, access.Reporter) {
		return
	}
	j, ok := w.loadJob(q, id)
	if !ok {
		return
	}
	offset, _ := strconv.ParseInt(q.r.URL.Query().Get("offset"), 10, 64)
	if offset < 0 {
		offset = 0
	}
	resp := traceResponse{Offset: offset, Status: j.Status, Label: statusLabel(j.Status), Active: activeStatus(j.Status), Duration: formatDuration(jobDuration(j)), Events: []logEvent{}}
	if w.ReadTrace != nil {
		data, size, err := w.ReadTrace(q.ctx, j.ID, offset, traceChunk)
		if errors.Is(err, blob.ErrUnavailable) {
			w.logUnavailable(q, j.ID, err)
			return
		}
		if err != nil {
			w.Log.Warn("read trace", "job", j.ID, "err", err)
		}
		resp.Size = size
		// More may follow in the next chunk even for a finished job.
		data = completeLines(data, resp.Active || offset+int64(len(data)) < size)
		resp.Offset = offset + int64(len(data))
		if ev := newLogRenderer().render(data); ev != nil {
			resp.Events = ev
		}
	}
	q.w.Header().Set("Content-Type", "application/json")
	q.w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(q.w).Encode(resp)
}

// logUnavailableNote is what the job page shows instead of a log the
// object store cannot give.
const logUnavailableNote = "The log cannot be shown: object store unavailable. Try again later."

// logUnavailable answers a read of a job log that the object store could
// not serve (an archived log while the store is down) as the API does:
// 503 {"message": "... object store unavailable ..."} with Retry-After, so
// that the raw view says why and the live view's poll tries again.
func (w *Web) logUnavailable(q *req, id int64, err error) {
	w.Log.Error("reading a job log failed: object store unavailable", "job", id, "err", err)
	h := q.w.Header()
	h.Set("Retry-After", blob.UnavailableRetryAfter)
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	q.w.WriteHeader(http.StatusServiceUnavailable)
	json.NewEncoder(q.w).Encode(map[string]string{"message": blob.UnavailableMessage("the job log cannot be read")})
}

// jobRaw serves the log as plain text (nosniff is set for every response,
// so a browser never renders it as HTML).
func (w *Web) jobRaw(q *req, id int64) {
	if !w.requireLevel(q, access.Reporter) {
		return
	}
	j, ok := w.loadJob(q, id)
	if !ok {
		return
	}
	q.w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if w.OpenTrace != nil {
		// One stream: an archived log in an object store cannot seek.
		rc, _, err := w.OpenTrace(q.ctx, j.ID)
		if errors.Is(err, blob.ErrUnavailable) {
			w.logUnavailable(q, j.ID, err)
			return
		}
		if err != nil {
			w.Log.Warn("read trace", "job", j.ID, "err", err)
			return
		}
		defer rc.Close()
		io.Copy(q.w, rc)
		return
	}
	if w.ReadTrace == nil {
		return
	}
	var off int64
	for {
		data, size, err := w.ReadTrace(q.ctx, j.ID, off, traceChunk)
		if off == 0 && errors.Is(err, blob.ErrUnavailable) {
			w.logUnavailable(q, j.ID, err)
			return
		}
		if err != nil || len(data) == 0 {
			return
		}
		q.w.Write(data)
		off += int64(len(data))
		if off >= size {
			return
		}
	}
}

func (w *Web) jobAction(q *req, id int64, action string) {
	if !w.requireLevel(q, access.Developer) {
		return
	}
	j, ok := w.loadJob(q, id)
	if !ok {
		return
	}
	if pl, err := w.Store.PipelineByID(q.ctx, j.PipelineID); err != nil || w.Engine.MayAct(q.ctx, q.user, pl) != nil {
		w.notFound(q) // protected pipelines are maintainers' to act on
		return
	}
	to := projectURL(q.project) + "/-/jobs/" + strconv.FormatInt(j.ID, 10)
	var err error
	msg := ""
	switch action {
	case "retry":
		var nj *store.Job
		nj, err = w.Engine.RetryJob(q.ctx, q.user, j.ID)
		if err == nil {
			to = projectURL(q.project) + "/-/jobs/" + strconv.FormatInt(nj.ID, 10)
		}
	case "cancel":
		err = w.Engine.CancelJob(q.ctx, q.user, j.ID)
	case "play":
		err = w.Engine.PlayJob(q.ctx, q.user, j.ID, nil)
	default:
		w.notFound(q)
		return
	}
	switch {
	case errors.Is(err, pipeline.ErrNotRetryable):
		msg = "This job cannot be retried."
	case errors.Is(err, pipeline.ErrNotCancelable):
		msg = "This job cannot be canceled."
	case errors.Is(err, pipeline.ErrNotPlayable):
		msg = "This job cannot be played."
	case err != nil:
		w.internal(q, err)
		return
	}
	w.redirect(q, to, msg)
}
