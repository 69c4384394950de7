package gitrepo

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cgi"
	"net/url"
	"os"
	"sort"
	"strings"
)

type remoteUserKey struct{}

// WithRemoteUser returns a context carrying the authenticated user name that
// ServeGit passes to git as REMOTE_USER (it appears in git's reflogs and hook
// environment). Without it, "kiln" is used.
func WithRemoteUser(ctx context.Context, user string) context.Context {
	return context.WithValue(ctx, remoteUserKey{}, user)
}

func remoteUser(ctx context.Context) string {
	u, _ := ctx.Value(remoteUserKey{}).(string)
	// The value lands in an environment variable; keep it boring.
	u = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, u)
	if u == "" {
		return "kiln"
	}
	return u
}

const (
	svcUpload  = "git-upload-pack"
	svcReceive = "git-receive-pack"
)

// ServeGit serves git's smart HTTP protocol for an already-authorized request
// on repository repo. rest is the URL part after "<repo>.git": "/info/refs"
// (service in r's query, or appended as "?service=..."), "/git-upload-pack" or
// "/git-receive-pack". With write=false receive-pack is refused with 403.
//
// After a push that changed refs, onPush (if non-nil) is called with the
// updates, sorted by ref name, once the full response has been written and
// flushed to the client, still on the request goroutine: keep it short or
// hand the work off. If the repository had no branches before the push, HEAD
// is moved to a pushed branch when it pointed to a branch that still does not
// exist; DefaultBranch reports the result.
func (s *Store) ServeGit(w http.ResponseWriter, r *http.Request, repo, rest string, write bool, onPush func([]RefUpdate)) {
	path, query := rest, r.URL.RawQuery
	if i := strings.IndexByte(rest, '?'); i >= 0 {
		path, query = rest[:i], rest[i+1:]
	}
	dir, err := s.openRepoDir(repo)
	if err != nil {
		if !errors.Is(err, ErrRepoNotFound) && !errors.Is(err, ErrInvalidPath) {
			s.log.Error("gitrepo: opening repository", "repo", repo, "err", err)
		}
		httpError(w, http.StatusNotFound, "repository not found")
		return
	}
	var service string
	rpc := false
	switch path {
	case "/info/refs":
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			httpError(w, http.StatusMethodNotAllowed, "method not allowed")
			return
		}
		q, err := url.ParseQuery(query)
		if err != nil {
			httpError(w, http.StatusBadRequest, "bad query")
			return
		}
		service = q.Get("service")
		if service != svcUpload && service != svcReceive {
			// Dumb HTTP would expose raw repository files; smart only.
			httpError(w, http.StatusForbidden, "only the smart HTTP protocol is supported")
			return
		}
		query = "service=" + service
		if gp := r.Header.Get("Git-Protocol"); service == svcUpload && validGitProtocol(gp) && protocolV2(gp) {
			if s.serveV2Caps(w, r, dir, gp) {
				return
			}
		}
	case "/" + svcUpload, "/" + svcReceive:
		if r.Method != http.MethodPost {
			httpError(w, http.StatusMethodNotAllowed, "method not allowed")
			return
		}
		service, rpc, query = path[1:], true, ""
	default:
		httpError(w, http.StatusNotFound, "not found")
		return
	}
	if service == svcReceive && !write {
		httpError(w, http.StatusForbidden, "You are not allowed to push code to this project.")
		return
	}

	var body io.Reader = http.NoBody
	var bodyLen int64
	if rpc {
		dec, err := decodeBody(r)
		if err != nil {
			httpError(w, http.StatusUnsupportedMediaType, err.Error())
			return
		}
		defer dec.Close()
		if service == svcUpload {
			body, bodyLen = &limitedReader{r: dec, n: s.cfg.maxFetchBody}, -1
		} else {
			f, n, err := s.spool(dec, s.cfg.maxPushSize)
			if f != nil {
				defer func() { f.Close(); os.Remove(f.Name()) }()
			}
			switch {
			case errors.Is(err, errTooLarge):
				httpError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("push exceeds the %d byte limit", s.cfg.maxPushSize))
				return
			case err != nil:
				s.log.Warn("gitrepo: reading push body", "repo", repo, "err", err)
				httpError(w, http.StatusBadRequest, "could not read request body")
				return
			}
			body, bodyLen = f, n
		}
	}

	if service == svcReceive && rpc {
		s.servePush(w, r, repo, query, body, bodyLen, onPush)
		return
	}
	if service == svcUpload && rpc {
		s.serveUploadPack(w, r, repo, dir, body)
		return
	}
	s.runBackend(w, r, repo, path, query, body, bodyLen)
}

func (s *Store) servePush(w http.ResponseWriter, r *http.Request, repo, query string, body io.Reader, bodyLen int64, onPush func([]RefUpdate)) {
	// Serialize writers per repository so the before/after ref snapshots
	// attribute every change to exactly one push.
	unlock := s.lockWrite(repo)
	defer unlock()
	ctx := context.WithoutCancel(r.Context())
	before, err := s.refSnapshot(ctx, repo)
	if err != nil {
		s.log.Error("gitrepo: ref snapshot before push", "repo", repo, "err", err)
		httpError(w, http.StatusInternalServerError, "internal error")
		return
	}
	// Buffer the (small: report-status plus progress) response so it can be
	// sent with a Content-Length and be complete before onPush runs.
	buf := &bufferedResponse{header: make(http.Header)}
	s.runBackend(buf, r, repo, "/"+svcReceive, query, body, bodyLen)

	// The push may have added packs; drop go-git's pack index cache.
	s.forget(repo)
	after, err := s.refSnapshot(ctx, repo)
	var updates []RefUpdate
	if err != nil {
		s.log.Error("gitrepo: ref snapshot after push", "repo", repo, "err", err)
	} else {
		updates = s.reconcilePush(ctx, repo, before, after)
	}
	buf.flushTo(w)
	if len(updates) > 0 {
		s.log.Info("gitrepo: push", "repo", repo, "updates", len(updates))
		if onPush != nil {
			onPush(updates)
		}
	}
}

// reconcilePush diffs the snapshots, undoes refs that the hook should have
// refused (defense in depth if hooks were bypassed), and points HEAD at a
// pushed branch when the repository was empty.
func (s *Store) reconcilePush(ctx context.Context, repo string, before, after map[string]string) []RefUpdate {
	var updates []RefUpdate
	for name, sha := range after {
		if old, ok := before[name]; !ok || old != sha {
			if !ok {
				old = ZeroSHA
			}
			if err := checkPushedRef(name); err != nil {
				s.log.Error("gitrepo: removing invalid ref created by push", "repo", repo, "ref", name)
				if derr := s.deleteRefLocked(ctx, repo, name); derr != nil {
					s.log.Error("gitrepo: removing invalid ref", "repo", repo, "ref", name, "err", derr)
				}
				continue
			}
			updates = append(updates, RefUpdate{Ref: name, Before: old, After: sha})
		}
	}
	for name, sha := range before {
		if _, ok := after[name]; !ok {
			updates = append(updates, RefUpdate{Ref: name, Before: sha, After: ZeroSHA})
		}
	}
	sort.Slice(updates, func(i, j int) bool { return updates[i].Ref < updates[j].Ref })

	hadBranch := false
	for name := range before {
		if strings.HasPrefix(name, branchPrefix) {
			hadBranch = true
			break
		}
	}
	if !hadBranch {
		s.adoptFirstBranch(ctx, repo, after, updates)
	}
	return updates
}

func (s *Store) adoptFirstBranch(ctx context.Context, repo string, after map[string]string, updates []RefUpdate) {
	head, err := s.DefaultBranch(ctx, repo)
	if err == nil {
		if _, ok := after[branchPrefix+head]; ok {
			return
		}
	}
	// The push order of refs is not observable from snapshots; prefer the
	// conventional names, then the alphabetically first branch.
	var pick string
	for _, u := range updates {
		if !strings.HasPrefix(u.Ref, branchPrefix) || u.After == ZeroSHA {
			continue
		}
		switch {
		case pick == "", u.Ref == branchPrefix+"main", u.Ref == branchPrefix+"master" && pick != branchPrefix+"main":
			pick = u.Ref
		}
	}
	if pick == "" {
		return
	}
	if err := s.writeHEAD(repo, pick); err != nil {
		s.log.Error("gitrepo: setting HEAD after first push", "repo", repo, "err", err)
		return
	}
	s.log.Info("gitrepo: default branch set by first push", "repo", repo, "branch", strings.TrimPrefix(pick, branchPrefix))
}

// runBackend executes git-http-backend as CGI for one request.
func (s *Store) runBackend(w http.ResponseWriter, r *http.Request, repo, path, query string, body io.Reader, bodyLen int64) {
	req := r.Clone(r.Context())
	req.URL = &url.URL{Path: "/" + repo + ".git" + path, RawQuery: query}
	req.RequestURI = req.URL.RequestURI()
	req.Body = io.NopCloser(body)
	req.ContentLength = bodyLen
	if body == http.NoBody {
		req.ContentLength = 0
	}
	req.TransferEncoding = nil
	// Forward only what git needs: the CGI handler exports every header as
	// an HTTP_* variable, and credentials have no business in git's (and
	// its hooks') environment.
	req.Header = make(http.Header)
	for _, k := range []string{"Content-Type", "Accept", "User-Agent"} {
		if v := r.Header.Get(k); v != "" {
			req.Header.Set(k, v)
		}
	}
	env := s.gitEnv(
		"http.uploadpack", "true",
		"http.receivepack", fmt.Sprint(path == "/"+svcReceive || strings.Contains(query, svcReceive)),
	)
	env = append(env,
		"GIT_PROJECT_ROOT="+s.root,
		"GIT_HTTP_EXPORT_ALL=1",
		"REMOTE_USER="+remoteUser(r.Context()),
		fmt.Sprintf("GIT_HTTP_MAX_REQUEST_BUFFER=%d", s.cfg.maxFetchBody),
	)
	env = append(env, pushOptionsEnv(r.Context())...)   // pushoptions.go
	env = append(env, protectedRefsEnv(r.Context())...) // protected.go
	if gp := r.Header.Get("Git-Protocol"); gp != "" && validGitProtocol(gp) {
		req.Header.Set("Git-Protocol", gp)
		env = append(env, "GIT_PROTOCOL="+gp)
	}
	h := &cgi.Handler{
		Path:   s.cfg.httpBackend,
		Root:   "/",
		Dir:    s.root,
		Env:    env,
		Logger: slog.NewLogLogger(s.log.Handler(), slog.LevelError),
		Stderr: &logWriter{log: s.log, repo: repo},
	}
	h.ServeHTTP(w, req)
}

// validGitProtocol accepts the "version=2" style values git sends, and
// nothing that could smuggle other settings into the environment.
func validGitProtocol(v string) bool {
	if len(v) > 256 {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("=:._-", c) >= 0) {
			return false
		}
	}
	return true
}

// decodeBody undoes Content-Encoding: gzip ourselves, as git-http-backend
// would, so that size limits apply to the decompressed stream (a small gzip
// body can inflate enormously).
func decodeBody(r *http.Request) (io.ReadCloser, error) {
	switch enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); enc {
	case "", "identity":
		return r.Body, nil
	case "gzip", "x-gzip":
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			return nil, fmt.Errorf("bad gzip body: %v", err)
		}
		return zr, nil
	default:
		return nil, fmt.Errorf("unsupported content encoding %q", enc)
	}
}

var errTooLarge = errors.New("request body too large")

// spool copies the push body to a temporary file, enforcing limit, so an
// oversized push is refused with a clean 413 before git sees any of it.
func (s *Store) spool(r io.Reader, limit int64) (*os.File, int64, error) {
	f, err := os.CreateTemp(s.tmpDir, "push-*")
	if err != nil {
		return nil, 0, err
	}
	n, err := io.Copy(f, io.LimitReader(r, limit+1))
	if err == nil && n > limit {
		err = errTooLarge
	}
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	return f, n, err
}

// limitedReader fails (rather than silently truncating) past n bytes, so an
// oversized negotiation aborts instead of being misparsed.
type limitedReader struct {
	r io.Reader
	n int64
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, errTooLarge
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	return n, err
}

type bufferedResponse struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (b *bufferedResponse) Header() http.Header { return b.header }

func (b *bufferedResponse) WriteHeader(code int) {
	if b.status == 0 {
		b.status = code
	}
}

func (b *bufferedResponse) Write(p []byte) (int, error) {
	if b.status == 0 {
		b.status = http.StatusOK
	}
	return b.body.Write(p)
}

func (b *bufferedResponse) flushTo(w http.ResponseWriter) {
	for k, v := range b.header {
		w.Header()[k] = v
	}
	w.Header().Set("Content-Length", fmt.Sprint(b.body.Len()))
	if b.status == 0 {
		b.status = http.StatusOK
	}
	w.WriteHeader(b.status)
	_, _ = w.Write(b.body.Bytes())
	_ = http.NewResponseController(w).Flush()
}

type logWriter struct {
	log  *slog.Logger
	repo string
	what string // the process; git-http-backend if empty
}

func (l *logWriter) Write(p []byte) (int, error) {
	if msg := strings.TrimSpace(string(p)); msg != "" {
		what := l.what
		if what == "" {
			what = "git-http-backend"
		}
		l.log.Warn("gitrepo: "+what, "repo", l.repo, "stderr", msg)
	}
	return len(p), nil
}

func httpError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = io.WriteString(w, msg+"\n")
}
