package runner

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kilnci/kiln/internal/containers"
	"github.com/kilnci/kiln/internal/runner/client"
)

// DockerExecutor runs each job script in a container of the job's image:
// GitLab Runner's docker executor, through the Docker Engine API (Docker,
// or Podman's compatible service). The job's services run next to it on a
// network of the job's own, reachable by their aliases and GitLab's
// derived host names. The agent keeps the rest: sources are fetched (git
// runs through Host), caches and artifacts handled on the runner's side,
// and the checkout is bind-mounted into the job container at the same
// path, so CI_PROJECT_DIR means the same inside and out.
type DockerExecutor struct {
	Engine *containers.Engine
	// Host runs the agent's own processes for a job (git), and the whole
	// job when it names no image and there is no DefaultImage. Default
	// ShellExecutor.
	Host Executor
	// DefaultImage is the image of jobs that name none (GitLab Runner's
	// [runners.docker] image).
	DefaultImage string
	// ServiceWait bounds the wait for services' exposed ports (GitLab
	// Runner's wait_for_services_timeout); default 30 s.
	ServiceWait time.Duration
	// Owner is put as a label on every container and network, so that
	// Sweep finds what a runner that died left behind.
	Owner string
}

// dockerShellDetect picks the image's shell as GitLab Runner does: bash if
// present, else sh. It runs under sh -c with the script path as $1.
const dockerShellDetect = `if [ -x /usr/local/bin/bash ]; then exec /usr/local/bin/bash --noprofile --norc "$@"
elif [ -x /usr/bin/bash ]; then exec /usr/bin/bash --noprofile --norc "$@"
elif [ -x /bin/bash ]; then exec /bin/bash --noprofile --norc "$@"
elif [ -x /usr/local/bin/sh ]; then exec /usr/local/bin/sh "$@"
elif [ -x /usr/bin/sh ]; then exec /usr/bin/sh "$@"
elif [ -x /bin/sh ]; then exec /bin/sh "$@"
elif [ -x /busybox/sh ]; then exec /busybox/sh "$@"
else echo shell not found; exit 1; fi`

// Name implements Executor.
func (d DockerExecutor) Name() string { return "docker" }

func (d DockerExecutor) host() Executor {
	if d.Host == nil {
		return ShellExecutor{}
	}
	return d.Host
}

// forJob is the executor of one job: d itself, or, for a job that names
// neither image: nor services: when there is no default image, the host
// executor.
func (d DockerExecutor) forJob(job *client.JobResponse) Executor {
	if d.DefaultImage == "" && (job.Image == nil || job.Image.Name == "") && len(job.Services) == 0 {
		return d.host()
	}
	return d
}

// Sweep removes the containers and networks an earlier run of this runner
// left (it was killed before it could clean up).
func (d DockerExecutor) Sweep(ctx context.Context) (int, error) {
	if d.Owner == "" {
		return 0, nil
	}
	return d.Engine.Sweep(ctx, d.Owner)
}

// Prepare implements Executor: it pulls the images as their pull policy
// says, creates the job's network and starts its services.
func (d DockerExecutor) Prepare(ctx context.Context, job ExecJob) (ExecSession, error) {
	log := job.Log
	if log == nil {
		log = io.Discard
	}
	img := client.Image{Name: d.DefaultImage}
	if job.Image != nil && job.Image.Name != "" {
		img = *job.Image
	}
	if img.Name == "" {
		return nil, errors.New("the job has services: but no image:, and this runner has no default image")
	}
	hostSess, err := d.host().Prepare(ctx, job)
	if err != nil {
		return nil, err
	}
	s := &dockerSession{d: d, job: job, image: img, host: hostSess, hostEnv: map[string]string{}}
	for _, kv := range os.Environ() {
		if k, v, ok := strings.Cut(kv, "="); ok {
			s.hostEnv[k] = v
		}
	}
	s.jobKeys = map[string]bool{}
	for _, kv := range job.Env {
		k, _, _ := strings.Cut(kv, "=")
		s.jobKeys[k] = true
	}
	var rb [4]byte
	rand.Read(rb[:])
	s.prefix = containers.ContainerName("kiln", "job", strconv.FormatInt(job.ID, 10), hex.EncodeToString(rb[:]))
	s.labels = map[string]string{containers.LabelJob: strconv.FormatInt(job.ID, 10)}
	if d.Owner != "" {
		s.labels[containers.LabelOwner] = d.Owner
	}
	if err := s.prepare(ctx, log); err != nil {
		_ = s.Cleanup()
		return nil, err
	}
	return s, nil
}

type dockerSession struct {
	d       DockerExecutor
	job     ExecJob
	image   client.Image
	host    ExecSession
	hostEnv map[string]string
	jobKeys map[string]bool
	prefix  string
	labels  map[string]string

	network  string
	services []string
	runs     int
}

func (s *dockerSession) prepare(ctx context.Context, log io.Writer) error {
	e := s.d.Engine
	fmt.Fprintf(log, "Using Docker executor with image %s ...\n", s.image.Name)
	nw, err := e.CreateNetwork(ctx, s.prefix+"-network", s.labels)
	if err != nil {
		return fmt.Errorf("creating the job's network: %w", err)
	}
	s.network = nw
	for i, sv := range s.job.Services {
		if sv.Name == "" {
			continue
		}
		fmt.Fprintf(log, "Starting service %s ...\n", sv.Name)
		if err := e.EnsureImage(ctx, sv.Name, sv.PullPolicy, log); err != nil {
			return err
		}
		env := append([]string(nil), s.job.Env...)
		for _, v := range sv.Variables {
			env = append(env, v.Key+"="+v.Value)
		}
		id, err := e.Create(ctx, containers.Spec{
			Name: s.prefix + "-svc-" + strconv.Itoa(i), Image: sv.Name,
			Entrypoint: sv.Entrypoint, Cmd: sv.Command, Env: env,
			Network: s.network, Aliases: containers.ServiceHostnames(sv.Name, sv.Alias), Labels: s.labels,
		})
		if err != nil {
			return fmt.Errorf("creating service %s: %w", sv.Name, err)
		}
		s.services = append(s.services, id)
		if err := e.Start(ctx, id); err != nil {
			return fmt.Errorf("starting service %s: %w", sv.Name, err)
		}
	}
	if err := e.EnsureImage(ctx, s.image.Name, s.image.PullPolicy, log); err != nil {
		return err
	}
	return s.waitForServices(ctx, log)
}

// waitForServices waits, as GitLab Runner does, until each service
// accepts connections on the TCP ports its image exposes, at most
// ServiceWait in all. A service that does not is reported with its
// output but does not fail the job.
func (s *dockerSession) waitForServices(ctx context.Context, log io.Writer) error {
	e := s.d.Engine
	type target struct {
		name, id string
		addr     netip.Addr
		ports    []int
	}
	var targets []target
	for i, id := range s.services {
		name := s.job.Services[i].Name
		if running, code, err := e.Running(ctx, id); err == nil && !running {
			fmt.Fprintf(log, "\x1b[0;33m*** WARNING: Service %s probably didn't start properly (exit code %d):\x1b[0;m\n", name, code)
			_ = e.Logs(ctx, id, log)
			continue
		}
		ports, err := e.ExposedTCPPorts(ctx, name)
		if err != nil || len(ports) == 0 {
			continue
		}
		addr, err := e.Address(ctx, id)
		if err != nil {
			continue
		}
		targets = append(targets, target{name, id, addr, ports})
	}
	if len(targets) == 0 {
		return nil
	}
	wait := s.d.ServiceWait
	if wait <= 0 {
		wait = 30 * time.Second
	}
	fmt.Fprintf(log, "Waiting for services to be up and running (timeout %d seconds)...\n", int(wait.Seconds()))
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	errs := make([]error, len(targets))
	var wg sync.WaitGroup
	for i, t := range targets {
		wg.Go(func() {
			for _, p := range t.ports {
				if errs[i] = containers.WaitPort(wctx, t.addr, p); errs[i] != nil {
					return
				}
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return context.Cause(ctx)
	}
	for i, err := range errs {
		switch {
		case err == nil:
		case errors.Is(err, containers.ErrUnreachable):
			fmt.Fprintf(log, "Not waiting for service %s: %v\n", targets[i].name, err)
		default:
			fmt.Fprintf(log, "\x1b[0;33m*** WARNING: Service %s probably didn't start properly.\n\nHealth check error:\n%v\n\nService container logs:\x1b[0;m\n", targets[i].name, err)
			_ = e.Logs(ctx, targets[i].id, log)
		}
	}
	return nil
}

// containerEnv keeps what the job defines (CI_* and its variables) and
// drops what the agent inherited from its own environment (PATH, HOME,
// ...): the image's own settings stand.
func (s *dockerSession) containerEnv(env []string) []string {
	var out []string
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		if hv, ok := s.hostEnv[k]; ok && !s.jobKeys[k] && (hv == v || k == "HOME" || k == "PATH") {
			continue
		}
		out = append(out, kv)
	}
	return out
}

// Run implements ExecSession: a job script runs in a new container of
// the job's image; anything else (git) on the host.
func (s *dockerSession) Run(ctx context.Context, c Cmd) error {
	if c.Script == "" {
		return s.host.Run(ctx, c)
	}
	if err := ctx.Err(); err != nil {
		return context.Cause(ctx)
	}
	e := s.d.Engine
	s.runs++
	binds := []string{s.job.BuildDir + ":" + s.job.BuildDir}
	if s.job.TmpDir != "" {
		binds = append(binds, s.job.TmpDir+":"+s.job.TmpDir+":ro")
	}
	id, err := e.Create(ctx, containers.Spec{
		Name: s.prefix + "-build-" + strconv.Itoa(s.runs), Image: s.image.Name,
		Entrypoint: s.image.Entrypoint,
		Cmd:        []string{"sh", "-c", dockerShellDetect, "sh", c.Script},
		Env:        s.containerEnv(c.Env), WorkingDir: c.Dir, Binds: binds,
		Network: s.network, Labels: s.labels, Attach: true,
	})
	if err != nil {
		return fmt.Errorf("creating the job container: %w", err)
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = e.Remove(rctx, id)
	}()
	errOut := c.Err
	if errOut == nil {
		errOut = c.Out
	}
	code, err := e.Run(ctx, id, c.Out, errOut)
	// What the container wrote (as its user, often root) goes back to the
	// user the agent's own commands run as, so the next fetch can change it.
	if aerr := s.host.Adopt(s.job.BuildDir); aerr != nil && err == nil && code == 0 {
		return aerr
	}
	if err != nil {
		return err
	}
	if code != 0 {
		return &scriptExit{code: code}
	}
	return nil
}

// Adopt implements ExecSession.
func (s *dockerSession) Adopt(path string) error { return s.host.Adopt(path) }

// Settle implements ExecSession.
func (s *dockerSession) Settle() { s.host.Settle() }

// sandboxed tells the agent the host commands (git) run in a sandbox.
func (s *dockerSession) sandboxed() bool { return isSandboxed(s.host) }

// Cleanup implements ExecSession: the job's services and network go.
func (s *dockerSession) Cleanup() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	e := s.d.Engine
	var errs []error
	for _, id := range s.services {
		errs = append(errs, e.Remove(ctx, id))
	}
	if s.network != "" {
		errs = append(errs, e.RemoveNetwork(ctx, s.network))
	}
	errs = append(errs, s.host.Cleanup())
	return errors.Join(errs...)
}

// dockerExecutor sets up `kiln runner --executor docker`: the engine must
// answer, and what an earlier run of this runner left is removed first.
// git runs in the sandbox when it works here, else on the host.
func dockerExecutor(ctx context.Context, fc FileConfig, cfg Config, configPath string, log *slog.Logger) (DockerExecutor, error) {
	e, err := containers.Connect(ctx, fc.DockerHost)
	if err != nil {
		return DockerExecutor{}, err
	}
	d := DockerExecutor{Engine: e, DefaultImage: fc.DockerImage, Owner: RunnerOwner(fc.Token), Host: ShellExecutor{}}
	hide := []string{cfg.BuildsDir, cfg.CacheDir}
	if abs, err := filepath.Abs(configPath); err == nil {
		if _, err := os.Stat(abs); err == nil {
			hide = append(hide, filepath.Dir(abs))
		}
	}
	if sb := (SandboxExecutor{Hide: hide}); sb.Check(ctx) == nil {
		d.Host = sb
	} else {
		log.Warn("git and the agent's other commands run unsandboxed (bubblewrap does not work here)")
	}
	n, err := d.Sweep(ctx)
	if err != nil {
		log.Warn("removing containers of an earlier run", "err", err)
	} else if n > 0 {
		log.Info("removed containers and networks of an earlier run", "count", n)
	}
	log.Info("docker executor", "engine", e.Host(), "default_image", d.DefaultImage, "git", d.Host.Name())
	return d, nil
}

// RunnerOwner is the owner label of the containers of `kiln runner` with
// this token: the same across restarts, different for every runner.
func RunnerOwner(token string) string {
	sum := sha256.Sum256([]byte(token))
	return "runner-" + hex.EncodeToString(sum[:8])
}

// executorInfo is the info object the agent sends: with the docker
// executor it says so, and that image, services and services' variables
// are supported (GitLab reads these features).
func executorInfo(ex Executor) client.VersionInfo {
	info := client.DefaultInfo()
	if d, ok := ex.(DockerExecutor); ok {
		info.Executor = d.Name()
		info.Features.Image, info.Features.Services, info.Features.ServiceVariables = true, true, true
	}
	return info
}
