package runner

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	gitconfig "github.com/go-git/go-git/v5/plumbing/format/config"
)

// scriptExit is a non-zero exit of a job process.
type scriptExit struct{ code int }

func (e *scriptExit) Error() string { return fmt.Sprintf("exit code %d", e.code) }

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// buildScript turns script lines into one bash program that echoes each
// command in green before running it and stops at the first failure. The
// commands are user shell code; variables never appear in the text, they
// come from the environment.
func buildScript(cmds []string) string {
	var b strings.Builder
	b.WriteString("set -eo pipefail\nset +o noclobber\n")
	for _, c := range cmds {
		c = strings.ReplaceAll(c, "\x00", "")
		if strings.TrimSpace(c) == "" {
			continue
		}
		display := c
		if i := strings.IndexByte(c, '\n'); i >= 0 {
			display = c[:i] + " # collapsed multi-line command"
		}
		fmt.Fprintf(&b, "printf '\\033[32;1m$ %%s\\033[0;m\\n' %s\n", shellQuote(display))
		b.WriteString(c)
		b.WriteString("\n")
	}
	return b.String()
}

// runCmd runs cmd in its own process group, streaming output to out (and
// errOut, nil meaning out). When ctx ends the whole group gets SIGTERM,
// then SIGKILL after grace, so background children of the script die too.
// It returns nil, a *scriptExit, ctx's cause, or a start error.
func runCmd(ctx context.Context, grace time.Duration, cmd *exec.Cmd, out, errOut io.Writer) error {
	if err := ctx.Err(); err != nil {
		return context.Cause(ctx)
	}
	if errOut == nil {
		errOut = out
	}
	cmd.Stdout = out
	cmd.Stderr = errOut
	cmd.SysProcAttr = jobProcAttr()
	// A daemon that escaped the process group may hold the output pipe
	// open forever; don't wait for it once the script itself has exited.
	cmd.WaitDelay = 2 * time.Second
	if err := cmd.Start(); err != nil {
		return err
	}
	pgid := cmd.Process.Pid
	done := make(chan struct{})
	killed := make(chan struct{})
	go func() {
		defer close(killed)
		select {
		case <-done:
			return
		case <-ctx.Done():
		}
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		t := time.NewTimer(grace)
		defer t.Stop()
		select {
		case <-done:
		case <-t.C:
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
		}
	}()
	err := cmd.Wait()
	close(done)
	<-killed
	// Leftover background processes of a finished script would otherwise
	// outlive the job and keep its build directory busy.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	if err == nil {
		return nil
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return &scriptExit{code: 128 + int(ws.Signal())}
		}
		return &scriptExit{code: ee.ExitCode()}
	}
	if errors.Is(err, exec.ErrWaitDelay) {
		return nil
	}
	return err
}

// runScript runs script lines in one shell process.
func (j *jobRun) runScript(ctx context.Context, stage string, cmds []string, extraEnv ...string) error {
	path := filepath.Join(j.tmpDir, "script-"+stage+".sh")
	if err := os.WriteFile(path, []byte(buildScript(cmds)), 0o700); err != nil {
		return err
	}
	if err := j.sess.Adopt(path); err != nil {
		return err
	}
	args := []string{path}
	if strings.Contains(filepath.Base(j.r.cfg.Shell), "bash") {
		args = []string{"--noprofile", "--norc", path}
	}
	env := append(slices.Clip(j.env), extraEnv...)
	return j.sess.Run(ctx, Cmd{Args: append([]string{j.r.cfg.Shell}, args...), Dir: j.projectDir, Env: env, Out: j.trace, Script: path})
}

// gitAuth returns the repository URL without credentials and the
// Authorization header git should send. Credentials go through the
// environment (GIT_CONFIG_*), never the command line or the trace.
func (j *jobRun) gitAuth() (string, string, error) {
	u, err := url.Parse(j.job.GitInfo.RepoURL)
	if err != nil {
		return "", "", fmt.Errorf("invalid repo_url: %w", err)
	}
	var user, pass string
	if u.User != nil {
		user = u.User.Username()
		pass, _ = u.User.Password()
	} else if su, err := url.Parse(j.r.cfg.URL); err == nil && su.Host == u.Host {
		user, pass = "gitlab-ci-token", j.job.Token
	}
	u.User = nil
	if user == "" && pass == "" {
		return u.String(), "", nil
	}
	return u.String(), "Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass)), nil
}

func (j *jobRun) getSources(ctx context.Context) error {
	// The agent writes into the build directory below: nothing of the job
	// may run meanwhile (an earlier attempt's git), nor after we return.
	j.sess.Settle()
	defer j.sess.Settle()
	strategy := j.vars["GIT_STRATEGY"]
	if strategy == "" {
		strategy = "clone"
		if j.job.AllowGitFetch {
			strategy = "fetch"
		}
	}
	switch strategy {
	case "none":
		fmt.Fprintf(j.trace, "Skipping Git repository setup\n")
		if err := os.MkdirAll(j.projectDir, 0o755); err != nil {
			return err
		}
		return j.sess.Adopt(j.projectDir)
	case "empty":
		fmt.Fprintf(j.trace, "Skipping Git repository setup and creating an empty build directory\n")
		if err := os.RemoveAll(j.projectDir); err != nil {
			return err
		}
		if err := os.MkdirAll(j.projectDir, 0o755); err != nil {
			return err
		}
		return j.sess.Adopt(j.projectDir)
	case "clone":
		if err := os.RemoveAll(j.projectDir); err != nil {
			return err
		}
	case "fetch":
	default:
		return fmt.Errorf("unknown GIT_STRATEGY %q", strategy)
	}
	gi := j.job.GitInfo
	remote, auth, err := j.gitAuth()
	if err != nil {
		return err
	}
	baseEnv := append(slices.Clip(j.env), "GIT_TERMINAL_PROMPT=0")
	env := baseEnv
	if auth != "" {
		base, _ := url.Parse(remote)
		base.Path, base.RawQuery, base.Fragment = "/", "", ""
		env = withGitConfig(baseEnv, "http."+base.String()+".extraHeader", auth)
	}
	local := j.localRepo()
	var ro []string
	if local != "" {
		ro = []string{local}
	}
	// The git commands follow one another: an executor may run them in one
	// sandbox (Keep), which then also shows the server's copy of the
	// repository, read-only, for the local fetch.
	git := func(dir string, args ...string) error {
		return j.sess.Run(ctx, Cmd{Args: append([]string{"git"}, args...), Dir: dir, Env: env, Out: j.trace, Keep: true, ReadOnly: ro})
	}
	depth := gi.Depth
	if v := j.vars["GIT_DEPTH"]; v != "" {
		if n, err := strconv.Atoi(v); err == nil {
			depth = n
		}
	}
	if depth > 0 {
		fmt.Fprintf(j.trace, "Fetching changes with git depth set to %d...\n", depth)
	} else {
		fmt.Fprintf(j.trace, "Fetching changes...\n")
	}
	gitDir := filepath.Join(j.projectDir, ".git")
	fresh, wasEmpty := false, false
	if _, err := os.Stat(gitDir); err != nil {
		fresh = true
		if ents, err := os.ReadDir(j.projectDir); err != nil || len(ents) == 0 {
			wasEmpty = true
		}
		tmpl := filepath.Join(j.tmpDir, "git-template")
		if err := os.MkdirAll(tmpl, 0o755); err != nil {
			return err
		}
		if err := os.MkdirAll(j.projectDir, 0o755); err != nil {
			return err
		}
		if err := j.sess.Adopt(j.projectDir); err != nil {
			return err
		}
		args := []string{"-c", "init.defaultBranch=main", "init", "-q", "--template", tmpl}
		if gi.RepoObjectFormat == "sha256" {
			args = append(args, "--object-format=sha256")
		}
		if err := git(j.projectDir, append(args, j.projectDir)...); err != nil {
			return err
		}
		fmt.Fprintf(j.trace, "Created fresh repository.\n")
	} else {
		// A .git symlink, left by a job, must not steer these removals.
		if fi, err := os.Lstat(gitDir); err == nil && fi.IsDir() {
			for _, lock := range []string{"index.lock", "shallow.lock", "HEAD.lock", "config.lock"} {
				_ = os.Remove(filepath.Join(gitDir, lock))
			}
		}
		// gitlab-runner runs "git init" here too; on an existing repository
		// that only re-copies template files, so it is skipped.
		fmt.Fprintf(j.trace, "Reusing existing Git repository\n")
	}
	switch cur, ok := originURL(gitDir); {
	case fresh || !ok:
		err = git(j.projectDir, "remote", "add", "origin", remote)
		if err != nil && !fresh {
			err = git(j.projectDir, "remote", "set-url", "origin", remote)
		}
	case cur != remote:
		err = git(j.projectDir, "remote", "set-url", "origin", remote)
		if err != nil {
			err = git(j.projectDir, "remote", "add", "origin", remote)
		}
	}
	if err != nil {
		return err
	}
	refspecs := gi.Refspecs
	if len(refspecs) == 0 {
		switch {
		case gi.Ref != "" && gi.RefType == "tag":
			refspecs = []string{"+refs/tags/" + gi.Ref + ":refs/tags/" + gi.Ref}
		case gi.Ref != "":
			refspecs = []string{"+refs/heads/" + gi.Ref + ":refs/remotes/origin/" + gi.Ref}
		default:
			refspecs = []string{"+refs/heads/*:refs/remotes/origin/*", "+refs/tags/*:refs/tags/*"}
		}
	}
	// Automatic maintenance is checked here rather than by fetch itself,
	// which would spawn "git maintenance run --auto" after every fetch only
	// for it to find nothing to do (see maintenanceDue).
	args := []string{"-c", "http.userAgent=kiln-runner", "-c", "maintenance.auto=false", "fetch", "origin", "--no-recurse-submodules"}
	args = append(args, refspecs...)
	if depth > 0 {
		args = append(args, "--depth", strconv.Itoa(depth))
	}
	args = append(args, "--prune", "--quiet")
	fetched := false
	if local != "" {
		// Same command, with origin's URL rewritten to the repository's
		// directory for this one fetch (remote.origin.url is unchanged).
		var out strings.Builder
		lenv := withGitConfig(baseEnv, "url."+local+".insteadOf", remote)
		if isSandboxed(j.sess) {
			// The sandbox user does not own the repository, and git (2.39)
			// takes safe.directory only from system or global configuration.
			gc := filepath.Join(j.tmpDir, "git-safe.config")
			q := strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(local)
			if err := os.WriteFile(gc, []byte("[safe]\n\tdirectory = \""+q+"\"\n"), 0o644); err != nil {
				return err
			}
			lenv = append(lenv, "GIT_CONFIG_GLOBAL="+gc)
		}
		err := j.sess.Run(ctx, Cmd{Args: append([]string{"git"}, args...), Dir: j.projectDir, Env: lenv, Out: &out, Keep: true, ReadOnly: ro})
		io.WriteString(j.trace, out.String())
		switch {
		case err == nil:
			fetched = true
		case ctx.Err() != nil:
			return context.Cause(ctx)
		default:
			fmt.Fprintf(j.trace, "Fetching from the server's repository directory failed (%v); fetching over HTTP\n", err)
		}
	}
	if !fetched {
		if err := git(j.projectDir, args...); err != nil {
			return err
		}
	}
	if maintenanceDue(gitDir) {
		// Same as what fetch would have run; failures are not the job's.
		_ = git(j.projectDir, "maintenance", "run", "--auto", "--quiet")
	}
	if j.vars["GIT_CHECKOUT"] == "false" {
		fmt.Fprintf(j.trace, "Skipping Git checkout\n")
		return nil
	}
	rev := gi.Sha
	if rev == "" {
		rev = "FETCH_HEAD"
	}
	short := rev
	if len(short) > 8 {
		short = short[:8]
	}
	fmt.Fprintf(j.trace, "Checking out %s as detached HEAD (ref is %s)...\n", short, gi.Ref)
	if err := git(j.projectDir, "-c", "advice.detachedHead=false", "checkout", "-f", "-q", rev); err != nil {
		return err
	}
	// When the directory was empty before the checkout (a clone, a first
	// fetch) there is nothing to clean, and each git process costs (more in
	// a sandbox).
	if flags := j.vars["GIT_CLEAN_FLAGS"]; flags != "none" && !wasEmpty {
		cleanArgs := []string{"clean", "-ffdx"}
		if flags != "" {
			cleanArgs = append([]string{"clean"}, strings.Fields(flags)...)
		}
		if err := git(j.projectDir, cleanArgs...); err != nil {
			return err
		}
	}
	fmt.Fprintf(j.trace, "Skipping Git submodules setup\n")
	return nil
}

// withGitConfig returns env plus command-level git configuration passed
// through the environment (GIT_CONFIG_COUNT/KEY/VALUE), which keeps values
// such as credentials out of the command line, and any character in keys.
func withGitConfig(env []string, kv ...string) []string {
	out := slices.Clip(env)
	n := 0
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, fmt.Sprintf("GIT_CONFIG_KEY_%d=%s", n, kv[i]), fmt.Sprintf("GIT_CONFIG_VALUE_%d=%s", n, kv[i+1]))
		n++
	}
	return append(out, fmt.Sprintf("GIT_CONFIG_COUNT=%d", n))
}

// localRepo is the server-side directory of the job's repository when this
// runner may fetch from it directly: Kiln sends git_info.kiln_local_repo
// only to its built-in runners, which run inside the server process. The
// runner also insists on talking to a server on the loopback interface and
// on the directory being readable, and falls back to HTTP if the fetch
// fails. Access needs no token: a job may always read its own project.
func (j *jobRun) localRepo() string {
	dir := j.job.GitInfo.KilnLocalRepo
	if dir == "" || !filepath.IsAbs(dir) || strings.ContainsAny(dir, "\x00\n") {
		return ""
	}
	u, err := url.Parse(j.r.cfg.URL)
	if err != nil {
		return ""
	}
	if h := u.Hostname(); h != "localhost" {
		if ip := net.ParseIP(h); ip == nil || !ip.IsLoopback() {
			return ""
		}
	}
	if fi, err := os.Stat(filepath.Join(dir, "HEAD")); err != nil || !fi.Mode().IsRegular() {
		return ""
	}
	return dir
}

// originURL reads remote.origin.url from a repository's config file without
// spawning git, so that an unchanged remote costs no "git remote set-url".
// ok is false when the config cannot be read or has no origin remote; an
// unparsable config is reported as a mismatch (git then fixes it or fails).
func originURL(gitDir string) (url string, ok bool) {
	f, err := os.Open(filepath.Join(gitDir, "config"))
	if err != nil {
		return "", false
	}
	defer f.Close()
	cfg := gitconfig.New()
	if err := gitconfig.NewDecoder(io.LimitReader(f, 1<<20)).Decode(cfg); err != nil {
		return "", true
	}
	if cfg.Section("include").Options.Get("path") != "" || len(cfg.Section("includeIf").Subsections) > 0 {
		return "", true // includes could redefine the remote: let git decide
	}
	sub := cfg.Section("remote")
	if !sub.HasSubsection("origin") {
		return "", false
	}
	urls := sub.Subsection("origin").Options.GetAll("url")
	if len(urls) != 1 {
		return "", true
	}
	return urls[0], true
}

// maintenanceDue mirrors the checks of "git maintenance run --auto" (its gc
// task, the only one enabled by default) with git's default thresholds:
// more than gc.auto=6700 loose objects, estimated from the objects/17
// directory as git does, or more than gc.autoPackLimit=50 packs without a
// .keep file. When it is due, git itself still decides with the
// repository's real configuration.
func maintenanceDue(gitDir string) bool {
	objects := filepath.Join(gitDir, "objects")
	if ents, err := os.ReadDir(filepath.Join(objects, "17")); err == nil {
		n := 0
		for _, e := range ents {
			if name := e.Name(); (len(name) == 38 || len(name) == 62) && isHexString(name) {
				n++
			}
		}
		if n > (6700+255)/256 {
			return true
		}
	}
	ents, err := os.ReadDir(filepath.Join(objects, "pack"))
	if err != nil {
		return false
	}
	keep := map[string]bool{}
	for _, e := range ents {
		if base, ok := strings.CutSuffix(e.Name(), ".keep"); ok {
			keep[base] = true
		}
	}
	packs := 0
	for _, e := range ents {
		if base, ok := strings.CutSuffix(e.Name(), ".pack"); ok && !keep[base] {
			packs++
		}
	}
	return packs > 50
}

func isHexString(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
