package server

import (
	"context"
	"net"
	"net/http"
	"strconv"
	"strings"

	"github.com/kilnci/kiln/internal/access"
	"github.com/kilnci/kiln/internal/gitrepo"
	"github.com/kilnci/kiln/internal/store"
)

// gitPrincipal is who a git request acts as.
type gitPrincipal struct {
	user  *store.User
	token *store.Token // nil for password or job-token access
	// jobProjectID is set when a CI job token authenticated the request: the
	// job may read its own project (and others its user can read).
	jobProjectID int64
}

// splitGitPath splits "/group/app.git/info/refs" into ("group/app", "/info/refs").
func splitGitPath(p string) (repo, rest string, ok bool) {
	i := strings.Index(p, ".git/")
	if i < 0 {
		if strings.HasSuffix(p, ".git") {
			return strings.Trim(strings.TrimSuffix(p, ".git"), "/"), "", true
		}
		return "", "", false
	}
	return strings.Trim(p[:i], "/"), p[i+4:], true
}

func (s *Server) serveGit(w http.ResponseWriter, r *http.Request) {
	repo, rest, _ := splitGitPath(r.URL.Path)
	ctx := r.Context()
	write := rest == "/git-receive-pack" || (rest == "/info/refs" && r.URL.Query().Get("service") == "git-receive-pack")
	switch rest {
	case "/info/refs", "/git-upload-pack", "/git-receive-pack", "/HEAD":
	default:
		http.Error(w, "Not Found", http.StatusNotFound)
		return
	}
	challenge := func() {
		w.Header().Set("WWW-Authenticate", `Basic realm="Kiln"`)
		http.Error(w, "HTTP Basic: Access denied", http.StatusUnauthorized)
	}
	var who *gitPrincipal
	if _, _, ok := r.BasicAuth(); ok {
		ip, _, _ := net.SplitHostPort(r.RemoteAddr)
		if blocked, retry := s.throttle.AddressBlocked(ip); blocked {
			// Guessing passwords or tokens costs the guesser time.
			w.Header().Set("Retry-After", strconv.Itoa(int(retry.Seconds())+1))
			http.Error(w, "Too many failed authentication attempts; retry later.", http.StatusTooManyRequests)
			return
		}
		var err error
		who, err = s.gitAuthenticate(ctx, r)
		if err != nil || who == nil {
			user, _, _ := r.BasicAuth()
			s.throttle.Fail(ip, user)
			challenge()
			return
		}
	}
	p, err := s.store.ProjectByPath(ctx, repo)
	if err != nil {
		if who == nil {
			challenge()
			return
		}
		http.Error(w, "The project you were looking for could not be found or you don't have permission to view it.", http.StatusNotFound)
		return
	}
	var u *store.User
	if who != nil {
		u = who.user
	}
	level, err := s.access.Level(ctx, p, u)
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	g := access.Git{User: u, Level: level}
	if who != nil {
		g.Token, g.JobProjectID = who.token, who.jobProjectID
	}
	canRead, canWrite := access.GitAccess(p, g)
	if !canRead {
		if who == nil {
			challenge()
			return
		}
		http.Error(w, "The project you were looking for could not be found or you don't have permission to view it.", http.StatusNotFound)
		return
	}
	if write && !canWrite {
		if who == nil {
			challenge()
			return
		}
		http.Error(w, "You are not allowed to push code to this project.", http.StatusForbidden)
		return
	}
	if write && !access.CanUpdateProtectedRef(level) {
		// Developers push, but not to protected refs (the default branch
		// and protected branches/tags): pipelines there get protected
		// variables. The pre-receive hook refuses such pushes whole.
		pats, err := s.access.ProtectedPatterns(ctx, p)
		if err != nil {
			http.Error(w, "internal error", http.StatusInternalServerError)
			return
		}
		r = r.WithContext(gitrepo.WithProtectedRefs(r.Context(), pats))
	}
	s.repos.ServeGitPush(w, r, p.FullPath, rest, write, func(push gitrepo.Push) {
		s.onPush(withPushOptions(context.WithoutCancel(ctx), push.Options), p, u, push.Updates)
	})
}

// gitAuthenticate accepts, as the password, a personal access token, a CI
// job token (user gitlab-ci-token), or the user's password.
func (s *Server) gitAuthenticate(ctx context.Context, r *http.Request) (*gitPrincipal, error) {
	user, pass, _ := r.BasicAuth()
	if len(pass) > 1024 {
		return nil, nil
	}
	if user == "gitlab-ci-token" && s.jobTokens != nil {
		if u, projectID, ok := s.jobTokens(ctx, pass); ok {
			return &gitPrincipal{user: u, jobProjectID: projectID}, nil
		}
		return nil, nil
	}
	if u, k, err := s.api.CheckToken(ctx, pass); err == nil {
		return &gitPrincipal{user: u, token: k}, nil
	}
	// Passwords go through the shared throttle: a locked account fails
	// whatever the password, and every failure costs one hash.
	locked, _ := s.throttle.AccountLocked(user)
	u, err := s.store.UserByUsername(ctx, user)
	stored, real := dummyPasswordHash, false
	if err == nil && u.PasswordHash != "" && !locked {
		stored, real = u.PasswordHash, true
	}
	ok, err := s.throttle.CheckPassword(ctx, stored, pass)
	if err != nil {
		return nil, err
	}
	if ok && real && u.State == "active" {
		s.throttle.Succeed(user)
		return &gitPrincipal{user: u}, nil
	}
	return nil, nil
}

// onPush records a first default branch and hands the updates to whoever
// subscribed (pipelines on push). gitrepo calls it while it still holds the
// repository's push lock, so the work runs on its own goroutine.
func (s *Server) onPush(ctx context.Context, p *store.Project, u *store.User, updates []gitrepo.RefUpdate) {
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		if p.DefaultBranch == "" {
			// gitrepo points HEAD at the first pushed branch; adopt its choice.
			if name, err := s.repos.DefaultBranch(ctx, p.FullPath); err == nil && name != "" {
				var set bool
				s.store.Write(ctx, func(tx *store.Tx) error {
					var err error
					set, err = tx.SetDefaultBranchIfEmpty(ctx, p.ID, name)
					return err
				})
				if set {
					p.DefaultBranch = name
				}
			}
		}
		for _, fn := range s.pushHooks {
			fn(ctx, p, u, updates)
		}
	}()
}

// dummyPasswordHash is a valid PBKDF2 hash of a random password, checked
// against for unknown users.
const dummyPasswordHash = "pbkdf2-sha256$100000$c2FsdHNhbHRzYWx0c2FsdA$5vGxqvI1m8U5u0kq6ZbqgH9bTzK3y2Wc4oJm1rN7uQk"
