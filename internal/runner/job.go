package runner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kilnci/kiln/internal/containers"
	"github.com/kilnci/kiln/internal/runner/client"
)

// Reasons a job's context is cancelled, read back with context.Cause.
var (
	errTimeout   = errors.New("execution took longer than the job timeout")
	errCanceled  = errors.New("canceled")
	errCanceling = errors.New("canceled gracefully")
	errAborted   = errors.New("aborted: runner shutting down")
)

// jobRun is the state of one job being executed.
type jobRun struct {
	r     *Runner
	c     *client.Client
	job   *client.JobResponse
	log   *slog.Logger
	trace *traceBuffer
	sess  ExecSession // set by execute once the environment is prepared

	// statusEvery is the status-check interval the server asked for in
	// its answer to the job's first update (0: none).
	statusEvery time.Duration

	vars       map[string]string // expanded values, file variables as paths
	env        []string
	jobEnv     []string // the part of env the job defines
	buildsDir  string
	projectDir string
	tmpDir     string
}

// outcome is how a job ended.
type outcome struct {
	state    string
	reason   string
	exitCode int
	message  string
}

func (r *Runner) runJob(c *client.Client, slot int, job *client.JobResponse, log *slog.Logger) {
	log = log.With("job", job.ID)
	log.Info("received job", "name", job.JobInfo.Name, "project", job.JobInfo.ProjectName)
	// Two-phase commit: the server moves the job to running only now.
	ctx, cancel := context.WithTimeout(r.abortCtx, time.Minute)
	res, err := c.UpdateJob(ctx, job.ID, job.Token, client.UpdateJobRequest{State: client.StateRunning})
	cancel()
	if res.State == client.UpdateAbort {
		log.Info("server withdrew the job before it started", "status", res.StatusCode)
		return
	}
	if err != nil {
		// Older servers answer 400 here; the job can run anyway.
		log.Warn("initial running update failed", "err", err)
	}
	j := &jobRun{r: r, c: c, job: job, log: log, statusEvery: res.StatusInterval}
	j.buildsDir = filepath.Join(r.cfg.BuildsDir, r.tokenHash, slotDir(slot, job.GitInfo))
	j.projectDir = filepath.Join(j.buildsDir, filepath.FromSlash(projectPath(job)))
	j.tmpDir = j.projectDir + ".tmp"
	j.run()
}

// slotDir is a worker's directory under the builds dir. Jobs on protected
// refs (git_info.protected) get their own: a checkout is reused from job to
// job, .git included, and a job on an unprotected branch must not leave a
// hook, git configuration or file there that a later job runs with the
// protected ref's secrets (caches are keyed apart for the same reason).
func slotDir(slot int, gi client.GitInfo) string {
	if gi.Protected != nil && *gi.Protected {
		return strconv.Itoa(slot) + "-protected"
	}
	return strconv.Itoa(slot)
}

// projectPath derives the checkout directory from the repository URL
// (group/project), with fallbacks, never leaving the builds dir.
func projectPath(job *client.JobResponse) string {
	var p string
	if u, err := url.Parse(job.GitInfo.RepoURL); err == nil && u.Path != "" {
		p = strings.TrimSuffix(u.Path, ".git")
	}
	if p == "" {
		for _, v := range job.Variables {
			if v.Key == "CI_PROJECT_PATH" {
				p = v.Value
			}
		}
	}
	var segs []string
	for s := range strings.SplitSeq(p, "/") {
		if s != "" && s != "." && s != ".." {
			segs = append(segs, s)
		}
	}
	if len(segs) == 0 {
		return fmt.Sprintf("project-%d", job.JobInfo.ProjectID)
	}
	return path.Join(segs...)
}

// expandVars resolves $NAME and ${NAME} references to known variables only;
// anything else (e.g. "$$" in a password) is kept verbatim.
func expandVars(s string, lookup func(string) (string, bool)) string {
	if !strings.Contains(s, "$") {
		return s
	}
	isName := func(c byte) bool {
		return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		if s[i] != '$' || i+1 >= len(s) {
			b.WriteByte(s[i])
			i++
			continue
		}
		name, end := "", i+1
		if s[i+1] == '{' {
			if k := strings.IndexByte(s[i+2:], '}'); k >= 0 {
				name, end = s[i+2:i+2+k], i+3+k
			}
		} else {
			for end < len(s) && isName(s[end]) {
				end++
			}
			name = s[i+1 : end]
		}
		if v, ok := lookup(name); ok && name != "" {
			b.WriteString(v)
			i = end
			continue
		}
		b.WriteByte(s[i])
		i++
	}
	return b.String()
}

// secrets lists what must never appear in the trace.
func (j *jobRun) secrets() []string {
	s := []string{j.job.Token, j.r.cfg.Token}
	for _, v := range j.job.Variables {
		if v.Masked && v.Value != "" {
			s = append(s, v.Value)
		}
	}
	if u, err := url.Parse(j.job.GitInfo.RepoURL); err == nil && u.User != nil {
		if p, ok := u.User.Password(); ok && p != "" {
			s = append(s, p)
		}
	}
	return s
}

// prepareEnv builds the job environment; file variables are written below
// tmpDir and replaced by their paths.
func (j *jobRun) prepareEnv() error {
	// Always a new directory: whatever is at this path was left by someone
	// else (a "<project>.tmp" path is also the checkout of a project of that
	// name, where its jobs may plant symlinks), and the agent writes secrets
	// here, as root for a root server's built-in runners.
	if err := os.RemoveAll(j.tmpDir); err != nil {
		return err
	}
	if err := os.MkdirAll(j.tmpDir, 0o700); err != nil {
		return err
	}
	raw := map[string]string{}
	for _, v := range j.job.Variables {
		raw[v.Key] = v.Value
	}
	raw["CI_PROJECT_DIR"] = j.projectDir
	raw["CI_BUILDS_DIR"] = j.buildsDir
	lookup := func(k string) (string, bool) { v, ok := raw[k]; return v, ok }
	j.vars = map[string]string{}
	var env []string
	base := j.r.cfg.Environ
	if base == nil {
		base = os.Environ()
	}
	for _, kv := range base {
		// Kiln's own settings are not the job's business: a runner's token,
		// and for built-in runners the server's database DSN, secrets key
		// and initial root credentials, all of which live in KILN_*.
		if strings.HasPrefix(kv, "KILN_") {
			continue
		}
		env = append(env, kv)
	}
	hostEnv := len(env)
	env = append(env, "CI=true", "CI_SERVER=yes", "GITLAB_CI=true")
	for _, v := range j.job.Variables {
		if v.Key == "" || strings.ContainsAny(v.Key, "=\x00") {
			continue
		}
		val := v.Value
		if !v.Raw {
			val = expandVars(val, lookup)
		}
		if v.File {
			if strings.ContainsRune(v.Key, '/') || v.Key == "." || v.Key == ".." {
				return fmt.Errorf("file variable %q: a key must not name a path", v.Key)
			}
			p := filepath.Join(j.tmpDir, v.Key)
			if err := os.WriteFile(p, []byte(val), 0o600); err != nil {
				return err
			}
			val = p
		}
		j.vars[v.Key] = val
		env = append(env, v.Key+"="+strings.ReplaceAll(val, "\x00", ""))
	}
	j.vars["CI_PROJECT_DIR"] = j.projectDir
	j.vars["CI_BUILDS_DIR"] = j.buildsDir
	env = append(env, "CI_PROJECT_DIR="+j.projectDir, "CI_BUILDS_DIR="+j.buildsDir)
	j.env = env
	j.jobEnv = env[hostEnv:]
	return nil
}

func (j *jobRun) section(name, header string, fn func() error) error {
	fmt.Fprintf(j.trace, "section_start:%d:%s\r\x1b[0K\x1b[36;1m%s\x1b[0;m\n", time.Now().Unix(), name, header)
	err := fn()
	fmt.Fprintf(j.trace, "section_end:%d:%s\r\x1b[0K", time.Now().Unix(), name)
	return err
}

func (j *jobRun) scriptLines(after bool) []string {
	var lines []string
	for _, s := range j.job.Steps {
		if (s.Name == client.StepNameAfterScript) != after {
			continue
		}
		if !after && s.When == client.WhenOnFailure {
			continue
		}
		lines = append(lines, s.Script...)
	}
	return lines
}

func whenMatches(when string, success bool) bool {
	switch when {
	case client.WhenAlways:
		return true
	case client.WhenOnFailure:
		return !success
	default:
		return success
	}
}

func (j *jobRun) timeout() time.Duration {
	if t := j.job.RunnerInfo.Timeout; t > 0 {
		return time.Duration(t) * time.Second
	}
	return DefaultJobTimeout
}

// run executes the job and reports its result.
func (j *jobRun) run() {
	r := j.r
	j.trace = newTraceBuffer(r.cfg.TraceLimit, j.secrets())
	defer j.trace.Close()

	// hardCtx ends everything (abort, Job-Status canceled); jobCtx also
	// ends on timeout or graceful cancel, after which after_script and
	// artifact upload still run under hardCtx.
	hardCtx, hardCancel := context.WithCancelCause(context.Background())
	defer hardCancel(nil)
	stopAbort := context.AfterFunc(r.abortCtx, func() { hardCancel(errAborted) })
	defer stopAbort()
	jobCtx, jobCancel := context.WithCancelCause(hardCtx)
	defer jobCancel(nil)
	timer := time.AfterFunc(j.timeout(), func() { jobCancel(errTimeout) })
	defer timer.Stop()

	st := &traceStreamer{
		c: j.c, id: j.job.ID, token: j.job.Token, buf: j.trace, log: j.log,
		keepAlive: r.cfg.KeepAliveInterval,
		onStatus: func(s string) {
			if s == "canceling" {
				jobCancel(errCanceling)
			} else {
				hardCancel(errCanceled)
			}
		},
	}
	st.noteStatusInterval(j.statusEvery)
	streamCtx, stopStream := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { st.run(streamCtx, r.cfg.TraceInterval) })

	out := j.execute(jobCtx, hardCtx)
	timer.Stop()
	_ = os.RemoveAll(j.tmpDir) // file variables hold secrets
	if out.state == client.StateSuccess {
		j.trace.Final("\n\x1b[32;1m" + out.message + "\x1b[0;m\n")
	} else {
		j.trace.Final("\n\x1b[31;1m" + out.message + "\x1b[0;m\n")
	}
	stopStream()
	wg.Wait()

	// Retry until the server takes the result; after Abort only briefly,
	// so a forced shutdown does terminate.
	fctx, fcancel := context.WithCancel(context.Background())
	defer fcancel()
	stopFinal := context.AfterFunc(r.abortCtx, func() { time.AfterFunc(r.cfg.AbortReportTimeout, fcancel) })
	defer stopFinal()
	st.finish(fctx, client.UpdateJobRequest{
		State:         out.state,
		FailureReason: j.failureReason(out.reason),
		ExitCode:      out.exitCode,
	})
}

// failureReason maps reasons the server did not announce to
// unknown_failure, as gitlab-runner does; three are always understood.
func (j *jobRun) failureReason(reason string) string {
	switch reason {
	case "", client.FailureScript, client.FailureRunnerSystem, client.FailureTimeout:
		return reason
	}
	if slices.Contains(j.job.Features.FailureReasons, reason) {
		return reason
	}
	return client.FailureUnknown
}

// classify turns the script phase's error into an outcome.
func (j *jobRun) classify(err error, jobCtx, hardCtx context.Context) outcome {
	if err == nil {
		return outcome{state: client.StateSuccess, message: "Job succeeded"}
	}
	cause := context.Cause(hardCtx)
	if cause == nil {
		cause = context.Cause(jobCtx)
	}
	switch cause {
	case errAborted:
		return outcome{state: client.StateFailed, reason: client.FailureRunnerSystem, message: "ERROR: Job failed: " + errAborted.Error()}
	case errCanceled, errCanceling:
		return outcome{state: client.StateFailed, reason: client.FailureJobCanceled, message: "ERROR: Job failed: canceled"}
	case errTimeout:
		return outcome{state: client.StateFailed, reason: client.FailureTimeout,
			message: fmt.Sprintf("ERROR: Job failed: execution took longer than %v seconds", j.timeout().Seconds())}
	}
	var pe *containers.PullError
	if errors.As(err, &pe) {
		return outcome{state: client.StateFailed, reason: client.FailureImagePull, message: "ERROR: Job failed: " + pe.Error()}
	}
	var se *scriptExit
	if errors.As(err, &se) {
		return outcome{state: client.StateFailed, reason: client.FailureScript, exitCode: se.code,
			message: fmt.Sprintf("ERROR: Job failed: exit code %d", se.code)}
	}
	return outcome{state: client.StateFailed, reason: client.FailureRunnerSystem, message: "ERROR: Job failed (system failure): " + err.Error()}
}

func (j *jobRun) execute(jobCtx, hardCtx context.Context) outcome {
	r := j.r
	host, _ := os.Hostname()
	fmt.Fprintf(j.trace, "\x1b[0KRunning with kiln-runner %s\x1b[0;m\n\x1b[0K  on %s, system ID: %s\x1b[0;m\n", client.Version, r.cfg.Name, r.cfg.SystemID)
	ex := r.cfg.Executor
	if d, ok := ex.(DockerExecutor); ok {
		ex = d.forJob(j.job)
	}
	if _, ok := ex.(DockerExecutor); !ok {
		j.warnIgnoredContainers(ex.Name())
	}
	_ = j.section("prepare_executor", "Preparing the \""+ex.Name()+"\" executor", func() error {
		if _, ok := ex.(DockerExecutor); ok {
			return nil // Prepare says which image
		}
		if _, ok := ex.(ShellExecutor); ok {
			fmt.Fprintf(j.trace, "Using Shell (%s) executor...\n", filepath.Base(r.cfg.Shell))
		} else {
			fmt.Fprintf(j.trace, "Using %s executor with shell %s...\n", ex.Name(), filepath.Base(r.cfg.Shell))
		}
		return nil
	})
	err := j.section("prepare_script", "Preparing environment", func() error {
		fmt.Fprintf(j.trace, "Running on %s...\n", host)
		if err := j.prepareEnv(); err != nil {
			return err
		}
		image, services := j.containerImages()
		sess, err := ex.Prepare(jobCtx, ExecJob{BuildDir: j.projectDir, TmpDir: j.tmpDir, KillGrace: r.cfg.KillGrace,
			ID: j.job.ID, Image: image, Services: services, Env: j.jobEnv, Log: j.trace})
		if err != nil {
			return err
		}
		j.sess = sess
		return nil
	})
	defer func() {
		if j.sess != nil {
			_ = j.sess.Cleanup()
		}
	}()
	var attempts attemptSettings
	if err == nil {
		var warnings []string
		attempts, warnings = j.attemptSettings()
		for _, w := range warnings {
			fmt.Fprintf(j.trace, "\x1b[0;33mWARNING: %s\x1b[0;m\n", w)
		}
		err = j.attemptStage(jobCtx, "get_sources", "Getting source from Git repository", attempts.getSources,
			func() error { return j.getSources(jobCtx) })
	}
	if err == nil {
		// The range is checked whether or not there is a cache, as GitLab
		// Runner does.
		err = checkAttempts("restore_cache", attempts.restoreCache)
	}
	if err == nil && j.hasCache(true) {
		err = j.attemptStage(jobCtx, "restore_cache", "Restoring cache", attempts.restoreCache,
			func() error { j.restoreCache(jobCtx); return j.sess.Adopt(j.projectDir) })
	}
	if err == nil {
		err = checkAttempts("download_artifacts", attempts.artifactDownload)
	}
	if err == nil && j.hasDependencies() {
		err = j.attemptStage(jobCtx, "download_artifacts", "Downloading artifacts", attempts.artifactDownload,
			func() error {
				if err := j.downloadArtifacts(jobCtx); err != nil {
					return err
				}
				return j.sess.Adopt(j.projectDir)
			})
	}
	if err == nil {
		err = j.section("step_script", "Executing \"step_script\" stage of the job script", func() error {
			return j.runScript(jobCtx, "step_script", j.scriptLines(false))
		})
	}
	out := j.classify(err, jobCtx, hardCtx)
	success := out.state == client.StateSuccess
	if hardCtx.Err() != nil || j.sess == nil {
		return out
	}
	if lines := j.scriptLines(true); len(lines) > 0 {
		actx, cancel := context.WithTimeout(hardCtx, r.cfg.AfterScriptTimeout)
		aerr := j.section("after_script", "Running after_script", func() error {
			fmt.Fprintf(j.trace, "Running after script...\n")
			status := "success"
			switch {
			case errors.Is(context.Cause(jobCtx), errCanceling):
				status = "canceled"
			case !success:
				status = "failed"
			}
			return j.runScript(actx, "after_script", lines, "CI_JOB_STATUS="+status)
		})
		cancel()
		if aerr != nil {
			fmt.Fprintf(j.trace, "\x1b[0;33mWARNING: after_script failed, but job will continue unaffected: %v\x1b[0;m\n", aerr)
		}
	}
	if hardCtx.Err() != nil {
		return j.classify(context.Cause(hardCtx), jobCtx, hardCtx)
	}
	if j.hasCache(false) {
		name := "archive_cache"
		if !success {
			name = "archive_cache_on_failure"
		}
		_ = j.section(name, "Saving cache", func() error { j.saveCache(hardCtx, success); return nil })
	}
	if j.hasArtifacts(success) {
		name := "upload_artifacts_on_success"
		if !success {
			name = "upload_artifacts_on_failure"
		}
		uerr := j.section(name, "Uploading artifacts for "+map[bool]string{true: "successful", false: "failed"}[success]+" job",
			func() error { return j.uploadArtifacts(hardCtx, success) })
		if hardCtx.Err() != nil {
			return j.classify(context.Cause(hardCtx), jobCtx, hardCtx)
		}
		if uerr != nil && success {
			return outcome{state: client.StateFailed, reason: client.FailureRunnerSystem, message: "ERROR: Job failed: uploading artifacts: " + uerr.Error()}
		}
	}
	return out
}
