package runnerapi

import (
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/kilnci/kiln/internal/access"
	"github.com/kilnci/kiln/internal/artifacts"
	"github.com/kilnci/kiln/internal/blob"
	"github.com/kilnci/kiln/internal/dotenv"
	"github.com/kilnci/kiln/internal/pipeline"
	"github.com/kilnci/kiln/internal/runner/client"
	"github.com/kilnci/kiln/internal/store"
	"github.com/kilnci/kiln/internal/traces"
)

// jobToken finds a job token where the runner versions put it: JOB-TOKEN,
// PRIVATE-TOKEN (PUT from runners ≤ 17.10), then the body or query.
func jobToken(r *http.Request, body string) string {
	if t := r.Header.Get("JOB-TOKEN"); t != "" {
		return t
	}
	if t := r.Header.Get("PRIVATE-TOKEN"); t != "" {
		return t
	}
	if body != "" {
		return body
	}
	return r.URL.Query().Get("token")
}

// authJob resolves the token to the running job named in the path; any
// mismatch (unknown token, finished job, another job's token) is 403, which
// tells the runner to stop working on the job.
func (s *Service) authJob(w http.ResponseWriter, r *http.Request, token string) *store.Job {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		writeMessage(w, http.StatusNotFound, "404 Not Found")
		return nil
	}
	j := s.jobByToken(r.Context(), token)
	if j == nil || j.ID != id {
		forbidden(w)
		return nil
	}
	return j
}

// touchEvery is how often a running job's last_seen_at is written: often
// enough that the liveness loop never sees a reporting job as stale.
func (s *Service) touchEvery() time.Duration {
	return max(min(s.cfg.StaleTimeout/4, 15*time.Second), 200*time.Millisecond)
}

// touchJob records liveness at most every touchEvery (force: always).
//
// A job's first report to this server (the runner's PUT state=running or
// first trace) acknowledges it: last_seen_at moves off started_at, so
// RequeueUnacknowledged leaves it alone. That write runs off the request
// path, since the runner waits for the answer before it starts the job,
// and is conditional (only an unacknowledged running job), so landing after
// a later report changes nothing.
func (s *Service) touchJob(ctx context.Context, id int64, force bool) {
	now := time.Now()
	s.mu.Lock()
	last, seen := s.touched[id]
	due := force || now.Sub(last) >= s.touchEvery()
	if due || !seen {
		s.touched[id] = now
	}
	if len(s.touched) > 100000 {
		s.touched = map[int64]time.Time{}
	}
	s.mu.Unlock()
	if !seen && !force {
		s.bg.Add(1)
		go func() {
			defer s.bg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := s.cfg.Store.Write(ctx, func(tx *store.Tx) error { return tx.AckJob(ctx, id) }); err != nil {
				s.log.Warn("recording a job's acknowledgement failed", "job", id, "err", err)
			}
		}()
		return
	}
	if !due {
		return
	}
	size := s.cfg.Traces.Size(ctx, id)
	if err := s.cfg.Store.Write(ctx, func(tx *store.Tx) error { return tx.TouchJob(ctx, id, size) }); err != nil && ctx.Err() == nil {
		s.log.Warn("recording job liveness failed", "job", id, "err", err)
	}
}

func (s *Service) forget(id int64) {
	s.mu.Lock()
	delete(s.touched, id)
	delete(s.bad412, id)
	s.mu.Unlock()
}

// updateRequest is the body of PUT /jobs/:id.
type updateRequest struct {
	Token         string `json:"token"`
	State         string `json:"state"`
	FailureReason string `json:"failure_reason"`
	Checksum      string `json:"checksum"`
	Output        struct {
		Checksum string `json:"checksum"`
		Bytesize *int64 `json:"bytesize"`
	} `json:"output"`
	ExitCode *int `json:"exit_code"`
}

// updateJob is PUT /api/v4/jobs/:id: running (keep-alive or the 18.5+
// two-phase start), success or failed.
func (s *Service) updateJob(w http.ResponseWriter, r *http.Request) {
	var req updateRequest
	if !readJSON(w, r, &req) {
		return
	}
	j := s.authJob(w, r, jobToken(r, req.Token))
	if j == nil {
		return
	}
	ctx := r.Context()
	switch req.State {
	case "running", "":
		// A keep-alive, or Kiln's runner asking every StatusInterval
		// whether its silent job was canceled: one indexed read (above)
		// and a liveness write at most every touchEvery.
		s.touchJob(ctx, j.ID, false)
		w.Header().Set("Job-Status", j.Status)
		w.Header().Set("X-GitLab-Trace-Update-Interval", "3")
		s.setStatusInterval(w)
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, "200")
		return
	case "success", "failed":
	default:
		badRequest(w, "state does not have a valid value")
		return
	}
	// The runner has sent its whole trace by now; if what we hold differs
	// (a lost PATCH), 412 makes it send everything again. Bounded, so a
	// runner whose checksum we can never match still gets its result in.
	if sum := firstNonEmpty(req.Output.Checksum, req.Checksum); !s.cfg.Traces.Cut(ctx, j.ID) && s.retrace(j.ID) {
		mismatch := req.Output.Bytesize != nil && *req.Output.Bytesize != s.cfg.Traces.Size(ctx, j.ID)
		if !mismatch && sum != "" {
			if have, err := s.cfg.Traces.Checksum(ctx, j.ID); err == nil && have != sum {
				mismatch = true
			}
		}
		if mismatch {
			s.mu.Lock()
			s.bad412[j.ID]++
			s.mu.Unlock()
			w.Header().Set("Job-Status", j.Status)
			writeMessage(w, http.StatusPreconditionFailed, "412 Precondition Failed")
			return
		}
	}
	reason := req.FailureReason
	if req.State == "success" {
		reason = ""
	} else if !slices.Contains(failureReasons, reason) {
		reason = "unknown_failure"
	}
	exit := req.ExitCode
	if req.State == "success" {
		exit = nil
	}
	s.touchJob(ctx, j.ID, true)
	final, err := s.cfg.Engine.FinishJob(context.WithoutCancel(ctx), j.ID, req.State, reason, exit)
	if errors.Is(err, pipeline.ErrNotRunning) || errors.Is(err, store.ErrNotFound) {
		forbidden(w)
		return
	}
	if err != nil {
		s.log.Error("finishing job failed", "job", j.ID, "err", err)
		internalError(w)
		return
	}
	s.forget(j.ID)
	w.Header().Set("Job-Status", final)
	w.Header().Set("Content-Type", "text/plain")
	w.WriteHeader(http.StatusOK)
	io.WriteString(w, "200")
}

func (s *Service) retrace(id int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bad412[id] < 3
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

var contentRangeRE = regexp.MustCompile(`^(?:bytes )?(\d{1,15})-(\d{1,15})(?:/\d+|/\*)?$`)

// patchTrace is PATCH /api/v4/jobs/:id/trace: truncate the stored trace to
// the range start and append the body.
func (s *Service) patchTrace(w http.ResponseWriter, r *http.Request) {
	j := s.authJob(w, r, jobToken(r, ""))
	if j == nil {
		return
	}
	cr := r.Header.Get("Content-Range")
	if cr == "" {
		badRequest(w, "Content-Range is missing")
		return
	}
	m := contentRangeRE.FindStringSubmatch(cr)
	if m == nil {
		badRequest(w, "Content-Range is invalid")
		return
	}
	start, _ := strconv.ParseInt(m[1], 10, 64)
	end, _ := strconv.ParseInt(m[2], 10, 64)
	if end+1 < start {
		badRequest(w, "Content-Range is invalid")
		return
	}
	if r.ContentLength > maxTracePatch {
		writeMessage(w, http.StatusRequestEntityTooLarge, "413 Request Entity Too Large")
		return
	}
	buf := patchBuf(r.ContentLength)
	defer patchBufs.Put(buf)
	body, err := readBody(*buf, http.MaxBytesReader(w, r.Body, maxTracePatch))
	*buf = body[:0]
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeMessage(w, http.StatusRequestEntityTooLarge, "413 Request Entity Too Large")
		} else {
			badRequest(w, "could not read body")
		}
		return
	}
	size, err := s.cfg.Traces.Append(r.Context(), j.ID, start, body)
	var re *traces.ErrRange
	if errors.As(err, &re) {
		w.Header().Set("Range", fmt.Sprintf("0-%d", re.Size))
		w.Header().Set("Job-Status", j.Status)
		writeMessage(w, http.StatusRequestedRangeNotSatisfiable, "416 Range Not Satisfiable")
		return
	}
	if errors.Is(err, traces.ErrArchived) {
		forbidden(w) // the job finished meanwhile
		return
	}
	if err != nil {
		s.log.Error("storing trace failed", "job", j.ID, "err", err)
		internalError(w)
		return
	}
	s.touchJob(r.Context(), j.ID, false)
	w.Header().Set("Range", fmt.Sprintf("0-%d", size))
	w.Header().Set("Job-Status", j.Status)
	w.Header().Set("X-GitLab-Trace-Update-Interval", "3")
	s.setStatusInterval(w)
	w.WriteHeader(http.StatusAccepted)
}

// setStatusInterval tells Kiln's runner how often to check the status of a
// job that prints nothing (GitLab Runner ignores the header and keeps its
// 30 s keep-alive).
func (s *Service) setStatusInterval(w http.ResponseWriter) {
	w.Header().Set(client.StatusIntervalHeader, strconv.FormatInt(s.cfg.StatusInterval.Milliseconds(), 10))
}

// patchBufs recycles trace PATCH bodies (usually 1 MiB each): reading
// them with io.ReadAll grew a fresh slice through a dozen copies per
// request, garbage at the rate the log streams in.
var patchBufs = sync.Pool{New: func() any { b := make([]byte, 0, 1<<20); return &b }}

func patchBuf(contentLength int64) *[]byte {
	b := patchBufs.Get().(*[]byte)
	if contentLength > int64(cap(*b)) && contentLength <= maxTracePatch {
		*b = make([]byte, 0, contentLength)
	}
	return b
}

// readBody reads r to its end into buf's storage (growing it if needed).
func readBody(buf []byte, r io.Reader) ([]byte, error) {
	buf = buf[:0]
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// uploadArtifacts is POST /api/v4/jobs/:id/artifacts: one multipart part
// named "file", streamed to disk with a size limit.
func (s *Service) uploadArtifacts(w http.ResponseWriter, r *http.Request) {
	j := s.authJob(w, r, jobToken(r, ""))
	if j == nil {
		return
	}
	q := r.URL.Query()
	if q.Get("artifact_type") == "dotenv" {
		s.uploadDotenv(w, r, j)
		return
	}
	if t := q.Get("artifact_type"); t != "" && t != "archive" {
		// Reports (junit, ...) are not kept yet; accepting them keeps the
		// job green instead of failing an upload the user cannot fix.
		io.Copy(io.Discard, io.LimitReader(r.Body, s.cfg.Artifacts.Limit()+1))
		writeJSON(w, http.StatusCreated, map[string]any{"id": j.ID})
		return
	}
	limit := s.cfg.Artifacts.Limit()
	if r.ContentLength > limit+64<<10 {
		writeMessage(w, http.StatusRequestEntityTooLarge, "413 Request Entity Too Large")
		return
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/form-data" {
		badRequest(w, "file is missing")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, limit+64<<10)
	mr, err := r.MultipartReader()
	if err != nil {
		badRequest(w, "file is missing")
		return
	}
	expireIn := q.Get("expire_in")
	var name string
	var size int64
	saved := false
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			badRequest(w, "malformed multipart body")
			return
		}
		switch part.FormName() {
		case "file":
			if saved {
				part.Close()
				continue
			}
			name = artifacts.CleanName(part.FileName())
			size, err = s.cfg.Artifacts.Save(r.Context(), j.ID, name, part)
			if errors.Is(err, artifacts.ErrTooLarge) || isMaxBytes(err) {
				writeMessage(w, http.StatusRequestEntityTooLarge, "413 Request Entity Too Large")
				return
			}
			if errors.Is(err, blob.ErrUnavailable) {
				s.log.Error("storing artifacts failed: object store unavailable", "job", j.ID, "err", err)
				objectStoreUnavailable(w, "the artifacts archive was not stored")
				return
			}
			if err != nil {
				s.log.Error("storing artifacts failed", "job", j.ID, "err", err)
				internalError(w)
				return
			}
			saved = true
		case "expire_in":
			b, _ := io.ReadAll(io.LimitReader(part, 256))
			expireIn = string(b)
		}
		part.Close()
	}
	if !saved {
		badRequest(w, "file is missing")
		return
	}
	var expire *time.Time
	switch {
	case expireIn == "never":
	case expireIn != "":
		if d := pipeline.ParseHumanDuration(expireIn); d > 0 {
			t := time.Now().Add(d)
			expire = &t
		}
	default:
		t := time.Now().Add(30 * 24 * time.Hour)
		expire = &t
	}
	ctx := r.Context()
	if err := s.cfg.Store.Write(ctx, func(tx *store.Tx) error { return tx.SetJobArtifacts(ctx, j.ID, name, size, expire) }); err != nil {
		s.log.Error("recording artifacts failed", "job", j.ID, "err", err)
		internalError(w)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"id": j.ID, "name": j.Name, "status": j.Status,
		"artifacts_file": map[string]any{"filename": name, "size": size}})
}

func isMaxBytes(err error) bool {
	var mbe *http.MaxBytesError
	return errors.As(err, &mbe)
}

// downloadArtifacts is GET /api/v4/jobs/:id/artifacts: with the token of a
// running job of the same pipeline (dependencies), or a user who can read
// the project.
func (s *Service) downloadArtifacts(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		writeMessage(w, http.StatusNotFound, "404 Not Found")
		return
	}
	target, err := s.cfg.Store.JobByID(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		writeMessage(w, http.StatusNotFound, "404 Not Found")
		return
	} else if err != nil {
		internalError(w)
		return
	}
	allowed := false
	if tok := r.Header.Get("JOB-TOKEN"); tok != "" || r.URL.Query().Get("job_token") != "" {
		if tok == "" {
			tok = r.URL.Query().Get("job_token")
		}
		caller, user, ok := s.JobToken(ctx, tok)
		if !ok {
			writeMessage(w, http.StatusUnauthorized, "401 Unauthorized")
			return
		}
		// A job reads its own pipeline's artifacts; other jobs' as its
		// user may, within the job-token allowlist (access.CanReadVia).
		allowed = caller.PipelineID == target.PipelineID || s.canRead(ctx, user, target.ProjectID, caller.ProjectID)
	} else if tok := r.Header.Get("PRIVATE-TOKEN"); tok != "" && s.cfg.UserByToken != nil {
		u, err := s.cfg.UserByToken(ctx, tok)
		if err != nil || u == nil {
			writeMessage(w, http.StatusUnauthorized, "401 Unauthorized")
			return
		}
		allowed = s.canRead(ctx, u, target.ProjectID, 0)
	} else {
		allowed = s.canRead(ctx, nil, target.ProjectID, 0)
		if !allowed {
			writeMessage(w, http.StatusUnauthorized, "401 Unauthorized")
			return
		}
	}
	if !allowed {
		forbidden(w)
		return
	}
	ServeArtifacts(w, r, s.cfg.Artifacts, target)
}

func (s *Service) canRead(ctx context.Context, u *store.User, projectID, jobProjectID int64) bool {
	p, err := s.cfg.Store.ProjectByID(ctx, projectID)
	if err != nil {
		return false
	}
	level, err := access.New(s.cfg.Store).Level(ctx, p, u)
	return err == nil && access.CanReadVia(p, u, level, jobProjectID)
}

// objectStoreUnavailable answers 503 naming the object store, so that the
// runner's job log (which shows the answer) says what failed, and the
// runner retries (5xx).
func objectStoreUnavailable(w http.ResponseWriter, what string) {
	w.Header().Set("Retry-After", blob.UnavailableRetryAfter)
	writeMessage(w, http.StatusServiceUnavailable, blob.UnavailableMessage(what))
}

// PresignTTL is how long a presigned artifacts download URL stays valid.
const PresignTTL = 15 * time.Minute

// ServeArtifacts sends a job's archive, or GitLab's 404 when it has none.
func ServeArtifacts(w http.ResponseWriter, r *http.Request, st *artifacts.Store, j *store.Job) {
	if j.ArtifactsFile == "" || (j.ArtifactsExpireAt != nil && j.ArtifactsExpireAt.Before(time.Now())) {
		writeMessage(w, http.StatusNotFound, "404 Not Found")
		return
	}
	ctx := r.Context()
	// direct_download=true (GitLab Runner and kiln runner send it; API
	// users may): a store with URLs of its own (S3) answers with a
	// redirect to a short-lived presigned URL, so the archive does not go
	// through this server.
	if r.URL.Query().Get("direct_download") == "true" {
		if _, err := st.Stat(ctx, j.ID, j.ArtifactsFile); errors.Is(err, blob.ErrNotFound) {
			writeMessage(w, http.StatusNotFound, "404 Not Found")
			return
		} else if err != nil {
			objectStoreUnavailable(w, "the artifacts archive cannot be read")
			return
		}
		u, ok, err := st.PresignGet(ctx, j.ID, j.ArtifactsFile, PresignTTL)
		if err != nil {
			objectStoreUnavailable(w, "the artifacts archive cannot be read")
			return
		}
		if ok {
			http.Redirect(w, r, u, http.StatusFound)
			return
		}
	}
	rc, info, err := st.Open(ctx, j.ID, j.ArtifactsFile)
	if errors.Is(err, blob.ErrNotFound) {
		writeMessage(w, http.StatusNotFound, "404 Not Found")
		return
	} else if err != nil {
		objectStoreUnavailable(w, "the artifacts archive cannot be read")
		return
	}
	defer rc.Close()
	w.Header().Set("Content-Type", "application/zip")
	w.Header().Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": j.ArtifactsFile}))
	if rs, ok := rc.(io.ReadSeeker); ok {
		http.ServeContent(w, r, "", info.ModTime, rs)
		return
	}
	w.Header().Set("Content-Length", strconv.FormatInt(info.Size, 10))
	io.Copy(w, rc)
}

// uploadDotenv takes an artifacts:reports:dotenv report (artifact_format
// gzip, as GitLab Runner sends it): the variables are kept for the
// pipeline's outputs. A file GitLab would refuse gets its 400 and message,
// which fails the upload as in GitLab.
func (s *Service) uploadDotenv(w http.ResponseWriter, r *http.Request, j *store.Job) {
	r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
	mr, err := r.MultipartReader()
	if err != nil {
		badRequest(w, "file is missing")
		return
	}
	var data []byte
	found := false
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			badRequest(w, "malformed multipart body")
			return
		}
		if part.FormName() == "file" && !found {
			found = true
			data, err = readDotenvPart(part, r.URL.Query().Get("artifact_format"))
			if err != nil {
				part.Close()
				writeMessage(w, http.StatusBadRequest, err.Error())
				return
			}
		}
		part.Close()
	}
	if !found {
		badRequest(w, "file is missing")
		return
	}
	vars, err := dotenv.Parse(data)
	if err != nil {
		writeMessage(w, http.StatusBadRequest, err.Error())
		return
	}
	keys, values := make([]string, len(vars)), make([]string, len(vars))
	for i, v := range vars {
		keys[i], values[i] = v.Key, v.Value
	}
	ctx := r.Context()
	if err := s.cfg.Store.Write(ctx, func(tx *store.Tx) error { return tx.SetJobDotenv(ctx, j.ID, j.PipelineID, keys, values) }); err != nil {
		s.log.Error("recording dotenv report failed", "job", j.ID, "err", err)
		internalError(w)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"id": j.ID, "name": j.Name, "status": j.Status})
}

// readDotenvPart reads the report, gunzipping a gzip upload, at most
// dotenv.MaxSize+1 bytes of content.
func readDotenvPart(part io.Reader, format string) ([]byte, error) {
	rd := part
	if format == "gzip" {
		zr, err := gzip.NewReader(part)
		if err != nil {
			return nil, errors.New("Invalid Format")
		}
		defer zr.Close()
		rd = zr
	}
	data, err := io.ReadAll(io.LimitReader(rd, dotenv.MaxSize+1))
	if err != nil {
		return nil, errors.New("Invalid Format")
	}
	return data, nil
}
