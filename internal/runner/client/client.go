package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kilnci/kiln/internal/stall"
)

// MaxPatchSize is the largest trace chunk sent in one PATCH, matching
// gitlab-runner's DefaultTracePatchLimit; servers may reject larger bodies.
const MaxPatchSize = 1 << 20

// Version is reported in the info object and the User-Agent.
const Version = "0.1.0"

// Options configures a Client.
type Options struct {
	// URL is the server's base URL; a trailing "/" or "/ci" is ignored and
	// "/api/v4/" is appended, as gitlab-runner does.
	URL string
	// Token is the runner authentication token (glrt-…).
	Token string
	// SystemID identifies this runner manager (s_…).
	SystemID string
	// Info is sent as the "info" object; zero fields are filled with the
	// defaults of DefaultInfo.
	Info VersionInfo
	// HTTPClient is used for all requests. It must not have a short
	// Timeout: job requests are long-polled for about 50 s.
	HTTPClient *http.Client
	// StallTimeout bounds requests to hosts other than the server (an
	// artifacts download redirected to a presigned object store URL):
	// a connection that makes no progress for this long (no connection,
	// no response headers, no body bytes) fails the request with an error
	// naming the host. 0 means stall.DefaultTimeout (30 s), < 0 no bound.
	StallTimeout time.Duration
}

// Client talks to one server as one runner. It is safe for concurrent use.
type Client struct {
	base     *url.URL
	token    string
	systemID string
	info     VersionInfo
	hc       *http.Client
	ua       string

	mu         sync.Mutex
	lastUpdate string
}

// StatusError reports an unexpected HTTP status.
type StatusError struct {
	Op         string
	StatusCode int
	Body       string
}

func (e *StatusError) Error() string {
	s := fmt.Sprintf("%s: unexpected status %d %s", e.Op, e.StatusCode, http.StatusText(e.StatusCode))
	if e.Body != "" {
		s += ": " + e.Body
	}
	return s
}

// IsStatus reports whether err is a StatusError with the given code.
func IsStatus(err error, code int) bool {
	var se *StatusError
	return errors.As(err, &se) && se.StatusCode == code
}

// Retryable reports whether a failed call is worth repeating later: network
// errors and the statuses gitlab-runner retries (408, 429, 5xx).
func Retryable(err error) bool {
	if err == nil {
		return false
	}
	var se *StatusError
	if !errors.As(err, &se) {
		return true
	}
	switch c := se.StatusCode; {
	case c == http.StatusRequestTimeout, c == http.StatusTooManyRequests:
		return true
	case c >= 500 && c != http.StatusNotImplemented:
		return true
	}
	return false
}

// DefaultInfo returns the info object describing Kiln's shell executor.
func DefaultInfo() VersionInfo {
	return VersionInfo{
		Name:         "kiln-runner",
		Version:      Version,
		Platform:     runtime.GOOS,
		Architecture: runtime.GOARCH,
		Executor:     "shell",
		Shell:        "bash",
		Features: FeaturesInfo{
			Variables:               true,
			Artifacts:               true,
			Cache:                   true,
			FallbackCacheKeys:       true,
			Shared:                  true,
			UploadMultipleArtifacts: true,
			UploadRawArtifacts:      true,
			Refspecs:                true,
			Masking:                 true,
			RawVariables:            true,
			ArtifactsExclude:        true,
			MultiBuildSteps:         true,
			TraceReset:              true,
			TraceChecksum:           true,
			TraceSize:               true,
			Cancelable:              true,
			ReturnExitCode:          true,
			CancelGracefully:        true,
			TwoPhaseJobCommit:       true,
		},
	}
}

// BaseURL normalises a configured server URL to its API root, e.g.
// "http://h/ci/" → "http://h/api/v4/".
func BaseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return nil, fmt.Errorf("parse server URL: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("server URL %q: scheme must be http or https", raw)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("server URL %q: missing host", raw)
	}
	p := strings.TrimRight(u.Path, "/")
	p = strings.TrimSuffix(p, "/ci")
	p = strings.TrimRight(p, "/")
	u.Path = p + "/api/v4/"
	u.RawPath = ""
	u.RawQuery = ""
	u.Fragment = ""
	u.User = nil
	return u, nil
}

// New returns a client for the server at opts.URL.
func New(opts Options) (*Client, error) {
	base, err := BaseURL(opts.URL)
	if err != nil {
		return nil, err
	}
	info := opts.Info
	def := DefaultInfo()
	if info.Name == "" {
		info.Name = def.Name
	}
	if info.Version == "" {
		info.Version = def.Version
	}
	if info.Platform == "" {
		info.Platform = def.Platform
	}
	if info.Architecture == "" {
		info.Architecture = def.Architecture
	}
	if info.Executor == "" {
		info.Executor = def.Executor
	}
	if info.Shell == "" {
		info.Shell = def.Shell
	}
	if info.Features == (FeaturesInfo{}) {
		info.Features = def.Features
	}
	hc := opts.HTTPClient
	if hc == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.ResponseHeaderTimeout = 10 * time.Minute
		tr.MaxIdleConnsPerHost = 32
		hc = &http.Client{Transport: tr}
	}
	// Copy so the redirect policy does not leak into the caller's client.
	c := *hc
	if c.CheckRedirect == nil {
		c.CheckRedirect = stripTokensOnRedirect
	}
	if d := opts.StallTimeout; d >= 0 {
		if d == 0 {
			d = stall.DefaultTimeout
		}
		c.Transport = newSplitTransport(base.Host, c.Transport, d)
	}
	return &Client{
		base:     base,
		token:    opts.Token,
		systemID: opts.SystemID,
		info:     info,
		hc:       &c,
		ua:       fmt.Sprintf("kiln-runner %s (%s; %s/%s)", info.Version, runtime.Version(), runtime.GOOS, runtime.GOARCH),
	}, nil
}

// stripTokensOnRedirect drops token headers when an artifact download is
// redirected to another host (object storage), which must not see them.
func stripTokensOnRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= 10 {
		return errors.New("stopped after 10 redirects")
	}
	if req.URL.Host != via[0].URL.Host {
		for _, h := range []string{"JOB-TOKEN", "RUNNER-TOKEN", "PRIVATE-TOKEN"} {
			req.Header.Del(h)
		}
	}
	return nil
}

// Info returns the info object sent with requests.
func (c *Client) Info() VersionInfo { return c.info }

// URL returns the API root this client talks to.
func (c *Client) URL() string { return c.base.String() }

func (c *Client) endpoint(p string, q url.Values) string {
	u := c.base.JoinPath(p)
	if len(q) > 0 {
		u.RawQuery = q.Encode()
	}
	return u.String()
}

func requestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (c *Client) newRequest(ctx context.Context, method, u string, body io.Reader) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("User-Agent", c.ua)
	req.Header.Set("X-Request-Id", requestID())
	return req, nil
}

func (c *Client) doJSON(ctx context.Context, method, u string, in any, hdr http.Header) (*http.Response, error) {
	b, err := json.Marshal(in)
	if err != nil {
		return nil, err
	}
	req, err := c.newRequest(ctx, method, u, bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	if lu := resp.Header.Get("X-GitLab-Last-Update"); lu != "" {
		c.mu.Lock()
		c.lastUpdate = lu
		c.mu.Unlock()
	}
	return resp, nil
}

// drain reads a little of the body so the connection can be reused, and
// returns a short prefix for error messages.
func drain(resp *http.Response) string {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	return strings.TrimSpace(string(b))
}

func isJSON(resp *http.Response) bool {
	mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	return err == nil && mt == "application/json"
}

func decodeJSON(op string, resp *http.Response, out any) error {
	defer drain(resp)
	if !isJSON(resp) {
		return fmt.Errorf("%s: response is %q, not application/json", op, resp.Header.Get("Content-Type"))
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("%s: decode response: %w", op, err)
	}
	return nil
}

func (c *Client) runnerHeader() http.Header {
	return http.Header{"Runner-Token": {c.token}}
}

func jobHeader(jobToken string) http.Header {
	return http.Header{"Job-Token": {jobToken}}
}

// RequestJob asks the server for a job. It returns (nil, nil) on 204 (no
// job). The server may hold the request for tens of seconds; ctx bounds it.
// A 403 is reported as a StatusError: the runner token is not accepted.
func (c *Client) RequestJob(ctx context.Context) (*JobResponse, error) {
	c.mu.Lock()
	lu := c.lastUpdate
	c.mu.Unlock()
	body := JobRequest{Info: c.info, Token: c.token, SystemID: c.systemID, LastUpdate: lu}
	resp, err := c.doJSON(ctx, http.MethodPost, c.endpoint("jobs/request", nil), body, c.runnerHeader())
	if err != nil {
		return nil, fmt.Errorf("request job: %w", err)
	}
	switch resp.StatusCode {
	case http.StatusCreated:
		var job JobResponse
		if err := decodeJSON("request job", resp, &job); err != nil {
			return nil, err
		}
		if job.ID == 0 {
			return nil, errors.New("request job: response has no job id")
		}
		return &job, nil
	case http.StatusNoContent:
		drain(resp)
		return nil, nil
	default:
		return nil, &StatusError{Op: "request job", StatusCode: resp.StatusCode, Body: drain(resp)}
	}
}

// UpdateState classifies the server's answer to a job update.
type UpdateState int

// Outcomes of UpdateJob.
const (
	// UpdateSucceeded: 200, the state was recorded.
	UpdateSucceeded UpdateState = iota
	// UpdateAcceptedNotCompleted: 202, wait, re-flush the trace, update again.
	UpdateAcceptedNotCompleted
	// UpdateTraceValidationFailed: 412, re-send the whole trace from offset 0.
	UpdateTraceValidationFailed
	// UpdateAbort: 403, 404 or Job-Status failed/canceled; stop the job.
	UpdateAbort
	// UpdateFailed: anything else; try again later.
	UpdateFailed
)

// UpdateResult is the outcome of UpdateJob.
type UpdateResult struct {
	State UpdateState
	// JobStatus is the Job-Status response header (running, canceling,
	// canceled, failed, …), empty if absent.
	JobStatus string
	// Interval is X-GitLab-Trace-Update-Interval, 0 if absent.
	Interval time.Duration
	// StatusInterval is X-Kiln-Job-Status-Interval, 0 if absent.
	StatusInterval time.Duration
	StatusCode     int
}

func traceInterval(h http.Header) time.Duration {
	n, err := strconv.Atoi(strings.TrimSpace(h.Get("X-GitLab-Trace-Update-Interval")))
	if err != nil || n <= 0 {
		return 0
	}
	return min(time.Duration(n)*time.Second, 15*time.Minute)
}

// StatusIntervalHeader is Kiln's extension of the runner protocol: a
// server that answers job updates and trace patches cheaply says how often
// a running job may ask for its status (a state=running update when it has
// no log to send), in milliseconds, so that a cancel reaches a silent job
// at once. GitLab does not send it; without it a runner keeps GitLab
// Runner's 30 s keep-alive.
const StatusIntervalHeader = "X-Kiln-Job-Status-Interval"

func statusInterval(h http.Header) time.Duration {
	n, err := strconv.Atoi(strings.TrimSpace(h.Get(StatusIntervalHeader)))
	if err != nil || n <= 0 {
		return 0
	}
	return min(time.Duration(n)*time.Millisecond, 15*time.Minute)
}

func jobStatusAborts(s string) bool { return s == "failed" || s == "canceled" }

// UpdateJob sends PUT /api/v4/jobs/:id. Token and Info of req are filled
// in when empty. The error is non-nil only with UpdateFailed.
func (c *Client) UpdateJob(ctx context.Context, id int64, jobToken string, req UpdateJobRequest) (UpdateResult, error) {
	if req.Token == "" {
		req.Token = jobToken
	}
	if req.Info.Name == "" {
		req.Info = c.info
	}
	resp, err := c.doJSON(ctx, http.MethodPut, c.endpoint("jobs/"+strconv.FormatInt(id, 10), nil), req, jobHeader(jobToken))
	if err != nil {
		return UpdateResult{State: UpdateFailed}, fmt.Errorf("update job %d: %w", id, err)
	}
	body := drain(resp)
	res := UpdateResult{
		JobStatus:      resp.Header.Get("Job-Status"),
		Interval:       traceInterval(resp.Header),
		StatusInterval: statusInterval(resp.Header),
		StatusCode:     resp.StatusCode,
	}
	switch {
	case resp.StatusCode == http.StatusForbidden || resp.StatusCode == http.StatusNotFound:
		res.State = UpdateAbort
	case jobStatusAborts(res.JobStatus) && req.State == StateRunning:
		// A final update answered with "failed" merely echoes what we sent.
		res.State = UpdateAbort
	case resp.StatusCode == http.StatusOK:
		res.State = UpdateSucceeded
	case resp.StatusCode == http.StatusAccepted:
		res.State = UpdateAcceptedNotCompleted
	case resp.StatusCode == http.StatusPreconditionFailed:
		res.State = UpdateTraceValidationFailed
	default:
		res.State = UpdateFailed
		return res, &StatusError{Op: fmt.Sprintf("update job %d", id), StatusCode: resp.StatusCode, Body: body}
	}
	return res, nil
}

// PatchState classifies the server's answer to a trace patch.
type PatchState int

// Outcomes of PatchTrace.
const (
	// PatchSucceeded: 202, NewOffset is where the next chunk starts.
	PatchSucceeded PatchState = iota
	// PatchRangeMismatch: 416, resume at NewOffset (the server's length).
	PatchRangeMismatch
	// PatchAbort: 403 or Job-Status failed/canceled.
	PatchAbort
	// PatchNotFound: 404, stop sending the trace.
	PatchNotFound
	// PatchFailed: anything else, including 200; retry later.
	PatchFailed
)

// PatchResult is the outcome of PatchTrace.
type PatchResult struct {
	State PatchState
	// NewOffset is the server's trace length after the call, as told by
	// its Range header (or derived from what was sent).
	NewOffset      int64
	JobStatus      string
	Interval       time.Duration
	StatusInterval time.Duration
	StatusCode     int
	// Sent is the number of bytes of content actually sent (≤ MaxPatchSize).
	Sent int
}

// rangeEnd parses "0-1234" into 1234.
func rangeEnd(h string) (int64, bool) {
	h = strings.TrimSpace(h)
	h = strings.TrimPrefix(h, "bytes ")
	h = strings.TrimPrefix(h, "bytes=")
	_, end, ok := strings.Cut(h, "-")
	if !ok {
		return 0, false
	}
	if i := strings.IndexByte(end, '/'); i >= 0 {
		end = end[:i]
	}
	n, err := strconv.ParseInt(end, 10, 64)
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}

// PatchTrace appends content (at most MaxPatchSize bytes of it) to the
// job's trace at byte offset start, with Content-Range "start-end".
func (c *Client) PatchTrace(ctx context.Context, id int64, jobToken string, content []byte, start int64) (PatchResult, error) {
	if len(content) > MaxPatchSize {
		content = content[:MaxPatchSize]
	}
	res := PatchResult{Sent: len(content)}
	if len(content) == 0 {
		res.NewOffset = start
		return res, nil
	}
	u := c.endpoint("jobs/"+strconv.FormatInt(id, 10)+"/trace", url.Values{"debug_trace": {"false"}})
	req, err := c.newRequest(ctx, http.MethodPatch, u, bytes.NewReader(content))
	if err != nil {
		return PatchResult{State: PatchFailed}, err
	}
	req.Header.Set("Job-Token", jobToken)
	req.Header.Set("Content-Type", "text/plain")
	req.Header.Set("Content-Range", fmt.Sprintf("%d-%d", start, start+int64(len(content))-1))
	resp, err := c.hc.Do(req)
	if err != nil {
		return PatchResult{State: PatchFailed}, fmt.Errorf("patch trace of job %d: %w", id, err)
	}
	body := drain(resp)
	res.JobStatus = resp.Header.Get("Job-Status")
	res.Interval = traceInterval(resp.Header)
	res.StatusInterval = statusInterval(resp.Header)
	res.StatusCode = resp.StatusCode
	switch {
	case resp.StatusCode == http.StatusForbidden || jobStatusAborts(res.JobStatus):
		res.State = PatchAbort
	case resp.StatusCode == http.StatusAccepted:
		res.State = PatchSucceeded
		res.NewOffset = start + int64(len(content))
		if n, ok := rangeEnd(resp.Header.Get("Range")); ok {
			res.NewOffset = n
		}
	case resp.StatusCode == http.StatusRequestedRangeNotSatisfiable:
		n, ok := rangeEnd(resp.Header.Get("Range"))
		if !ok {
			res.State = PatchFailed
			return res, fmt.Errorf("patch trace of job %d: 416 without usable Range header", id)
		}
		res.State = PatchRangeMismatch
		res.NewOffset = n
	case resp.StatusCode == http.StatusNotFound:
		res.State = PatchNotFound
	default:
		res.State = PatchFailed
		return res, &StatusError{Op: fmt.Sprintf("patch trace of job %d", id), StatusCode: resp.StatusCode, Body: body}
	}
	return res, nil
}

// UploadOptions are the query parameters of an artifacts upload; empty
// values are not sent.
type UploadOptions struct {
	// Filename of the form part; defaults to "artifacts.zip".
	Filename       string
	ExpireIn       string
	ArtifactFormat string
	ArtifactType   string
}

// UploadArtifacts POSTs an archive as multipart field "file". The body is
// streamed (chunked); r is rewound when the server redirects with 307.
func (c *Client) UploadArtifacts(ctx context.Context, id int64, jobToken string, r io.ReadSeeker, opts UploadOptions) error {
	q := url.Values{}
	if opts.ArtifactFormat != "" {
		q.Set("artifact_format", opts.ArtifactFormat)
	}
	if opts.ArtifactType != "" {
		q.Set("artifact_type", opts.ArtifactType)
	}
	if opts.ExpireIn != "" {
		q.Set("expire_in", opts.ExpireIn)
	}
	filename := opts.Filename
	if filename == "" {
		filename = "artifacts.zip"
	}
	u := c.endpoint("jobs/"+strconv.FormatInt(id, 10)+"/artifacts", q)
	op := fmt.Sprintf("upload artifacts of job %d", id)
	for attempt := 0; attempt < 5; attempt++ {
		if _, err := r.Seek(0, io.SeekStart); err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
		pr, pw := io.Pipe()
		mw := multipart.NewWriter(pw)
		done := make(chan struct{})
		go func() {
			defer close(done)
			part, err := mw.CreateFormFile("file", filename)
			if err == nil {
				_, err = io.Copy(part, r)
			}
			if err == nil {
				err = mw.Close()
			}
			pw.CloseWithError(err)
		}()
		req, err := c.newRequest(ctx, http.MethodPost, u, pr)
		if err != nil {
			pr.Close()
			return err
		}
		req.Header.Set("Job-Token", jobToken)
		req.Header.Set("Content-Type", mw.FormDataContentType())
		req.Header.Set("Accept", "application/json")
		resp, err := c.hc.Do(req)
		pr.CloseWithError(errors.New("request finished"))
		<-done // the writer must stop reading r before it is rewound
		if err != nil {
			return fmt.Errorf("%s: %w", op, c.objectStoreError(ctx, err, ""))
		}
		body := drain(resp)
		switch resp.StatusCode {
		case http.StatusCreated:
			return nil
		case http.StatusTemporaryRedirect:
			loc, err := resp.Location()
			if err != nil {
				return fmt.Errorf("%s: redirect without Location", op)
			}
			u = loc.String()
			continue
		default:
			return &StatusError{Op: op, StatusCode: resp.StatusCode, Body: body}
		}
	}
	return fmt.Errorf("%s: too many redirects", op)
}

// DownloadArtifacts writes the artifacts archive of job id to w, using the
// dependency's own job token. Redirects are followed; one to another host
// (a presigned object store URL) is bounded by Options.StallTimeout, and
// its failures name that host, never the URL's signed query.
func (c *Client) DownloadArtifacts(ctx context.Context, id int64, jobToken string, w io.Writer) error {
	u := c.endpoint("jobs/"+strconv.FormatInt(id, 10)+"/artifacts", url.Values{"direct_download": {"true"}})
	req, err := c.newRequest(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Job-Token", jobToken)
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("download artifacts of job %d: %w", id, c.objectStoreError(ctx, err, ""))
	}
	host := resp.Request.URL.Host
	if resp.StatusCode != http.StatusOK {
		op := fmt.Sprintf("download artifacts of job %d", id)
		if host != c.base.Host {
			op += " from object store " + host
		}
		return &StatusError{Op: op, StatusCode: resp.StatusCode, Body: drain(resp)}
	}
	defer resp.Body.Close()
	if _, err := io.Copy(w, resp.Body); err != nil {
		return fmt.Errorf("download artifacts of job %d: %w", id, c.objectStoreError(ctx, err, host))
	}
	return nil
}

// Verify checks the runner token with POST /api/v4/runners/verify. A
// successful answer has a non-zero ID.
func (c *Client) Verify(ctx context.Context) (*RunnerResponse, error) {
	body := VerifyRunnerRequest{Info: c.info, Token: c.token, SystemID: c.systemID}
	resp, err := c.doJSON(ctx, http.MethodPost, c.endpoint("runners/verify", nil), body, c.runnerHeader())
	if err != nil {
		return nil, fmt.Errorf("verify runner: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, &StatusError{Op: "verify runner", StatusCode: resp.StatusCode, Body: drain(resp)}
	}
	var out RunnerResponse
	if err := decodeJSON("verify runner", resp, &out); err != nil {
		return nil, err
	}
	if out.ID == 0 {
		return nil, errors.New("verify runner: server returned no runner id")
	}
	return &out, nil
}

// Register creates a runner with a legacy registration token
// (POST /api/v4/runners) and returns its new authentication token.
func (c *Client) Register(ctx context.Context, req RegisterRunnerRequest) (*RunnerResponse, error) {
	if req.Info.Name == "" {
		req.Info = c.info
	}
	resp, err := c.doJSON(ctx, http.MethodPost, c.endpoint("runners", nil), req, nil)
	if err != nil {
		return nil, fmt.Errorf("register runner: %w", err)
	}
	if resp.StatusCode != http.StatusCreated {
		return nil, &StatusError{Op: "register runner", StatusCode: resp.StatusCode, Body: drain(resp)}
	}
	var out RunnerResponse
	if err := decodeJSON("register runner", resp, &out); err != nil {
		return nil, err
	}
	if out.Token == "" {
		return nil, errors.New("register runner: server returned no token")
	}
	return &out, nil
}
