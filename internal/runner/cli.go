package runner

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/kilnci/kiln/internal/runner/client"
)

// FileConfig is the runner configuration file written by
// "kiln runner register" and read by "kiln runner run". It is JSON, e.g.
//
//	{
//	  "url": "https://kiln.example.com/",
//	  "token": "glrt-…",
//	  "name": "build-host-1",
//	  "system_id": "s_0123456789ab",
//	  "runner_id": 7,
//	  "concurrent": 2,
//	  "builds_dir": "/var/lib/kiln-runner/builds",
//	  "cache_dir": "/var/lib/kiln-runner/cache",
//	  "shell": "bash",
//	  "executor": "shell-sandbox",
//	  "output_limit": 4096
//	}
//
// Only url and token are required. The file holds the runner token, so it
// is written with mode 0600. The default location is $KILN_RUNNER_CONFIG,
// else <user config dir>/kiln/runner.json.
type FileConfig struct {
	URL        string `json:"url"`
	Token      string `json:"token"`
	Name       string `json:"name,omitempty"`
	SystemID   string `json:"system_id,omitempty"`
	RunnerID   int64  `json:"runner_id,omitempty"`
	Concurrent int    `json:"concurrent,omitempty"`
	BuildsDir  string `json:"builds_dir,omitempty"`
	CacheDir   string `json:"cache_dir,omitempty"`
	Shell      string `json:"shell,omitempty"`
	// Executor is "shell" (default: jobs run as the runner's user) or
	// "shell-sandbox" (each job process in a bubblewrap sandbox, see
	// SandboxExecutor).
	Executor string `json:"executor,omitempty"`
	// DockerHost is the container engine of the docker executor
	// (default DOCKER_HOST, else /var/run/docker.sock, else Podman's
	// /run/podman/podman.sock).
	DockerHost string `json:"docker_host,omitempty"`
	// DockerImage is the docker executor's image for jobs that name none.
	DockerImage string `json:"docker_image,omitempty"`
	// OutputLimit is the job log size limit in KiB, as gitlab-runner's
	// output_limit (default 4096: 4 MiB).
	OutputLimit int64 `json:"output_limit,omitempty"`
	// Cache selects where job caches live (default: cache_dir).
	Cache *CacheConfig `json:"cache,omitempty"`
}

// LoadFileConfig reads a runner configuration file; unknown keys are an
// error so typos do not go unnoticed.
func LoadFileConfig(path string) (FileConfig, error) {
	var fc FileConfig
	b, err := os.ReadFile(path)
	if err != nil {
		return fc, err
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&fc); err != nil {
		return fc, fmt.Errorf("%s: %w", path, err)
	}
	return fc, nil
}

// SaveFileConfig writes fc atomically with mode 0600.
func SaveFileConfig(path string, fc FileConfig) error {
	b, err := json.MarshalIndent(fc, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// Config converts the file configuration into a runner Config.
func (fc FileConfig) Config() Config {
	return Config{
		URL: fc.URL, Token: fc.Token, Name: fc.Name, SystemID: fc.SystemID,
		Concurrent: fc.Concurrent, BuildsDir: fc.BuildsDir, CacheDir: fc.CacheDir, Shell: fc.Shell,
		TraceLimit: fc.OutputLimit << 10,
	}
}

func defaultConfigPath() string {
	if p := os.Getenv("KILN_RUNNER_CONFIG"); p != "" {
		return p
	}
	if d, err := os.UserConfigDir(); err == nil {
		return filepath.Join(d, "kiln", "runner.json")
	}
	return "kiln-runner.json"
}

const usage = `usage:
  kiln runner register --url URL --token glrt-... [--name NAME] [--config FILE]
  kiln runner register --url URL --registration-token TOKEN [--name NAME] [--config FILE]
  kiln runner run [--config FILE] [--url URL --token TOKEN] [--concurrent N]
                  [--builds-dir DIR] [--cache-dir DIR] [--name NAME] [--shell SHELL]
                  [--output-limit KIB] [--executor shell|shell-sandbox|docker]
                  [--docker-host unix:///PATH] [--docker-image IMAGE]
                  [--cache-type s3 --cache-s3-server-address HOST[:PORT]
                   --cache-s3-bucket-name BUCKET [--cache-s3-bucket-location REGION]
                   [--cache-path PREFIX] [--cache-s3-insecure]]
                  [--artifact-stall-timeout DURATION]

--cache-type s3 keeps job caches in an S3 bucket that runners on other
machines share (as GitLab Runner's [runners.cache] Type = "s3"); the keys
come from KILN_RUNNER_CACHE_S3_ACCESS_KEY / KILN_RUNNER_CACHE_S3_SECRET_KEY
(or --cache-s3-access-key / --cache-s3-secret-key). register saves them in
the config file.

--artifact-stall-timeout (default 30s; env KILN_RUNNER_ARTIFACT_STALL_TIMEOUT)
fails an artifacts download the server redirected to the object store when
it makes no progress for that long (a frozen or unreachable store): the
job log names the store's host and the download is retried (3 tries, then
ARTIFACT_DOWNLOAD_ATTEMPTS).

--executor shell-sandbox runs every job process in a bubblewrap sandbox:
own namespaces, uid 65534, read-only root file system, only the job's build
directory writable, the builds, cache and config directories hidden.

--executor docker runs each job script in a container of the job's image:
(--docker-image for jobs without one), with its services: on a network of
its own, through the Docker Engine API (Docker, or podman system service).
git, caches and artifacts stay on the runner's side (git in the sandbox
when bubblewrap works here).

The URL and token may also come from KILN_RUNNER_URL and KILN_RUNNER_TOKEN;
flags win over the environment, which wins over the config file.
In "run", SIGINT/SIGTERM stops taking jobs and waits for running ones; a
second signal kills running jobs and reports them failed.
`

// Command implements "kiln runner register|run". args are the words after
// "runner" (a leading "runner" is tolerated). It returns the exit status.
func Command(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "runner" {
		args = args[1:]
	}
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "register":
		return cmdRegister(ctx, args[1:], stdout, stderr)
	case "run":
		return cmdRun(ctx, args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "kiln runner: unknown command %q\n%s", args[0], usage)
		return 2
	}
}

// runFlags are the settings shared by register and run.
type runFlags struct {
	fs                                   *flag.FlagSet
	config, url, token, name, shell      string
	buildsDir, cacheDir, registrationTok string
	executor, dockerHost, dockerImage    string
	concurrent                           int
	outputLimit                          int64
	cache                                cacheFlags
}

func newFlags(name string, stderr io.Writer) *runFlags {
	f := &runFlags{fs: flag.NewFlagSet("kiln runner "+name, flag.ContinueOnError)}
	f.fs.SetOutput(stderr)
	f.fs.StringVar(&f.config, "config", "", "config file (default $KILN_RUNNER_CONFIG or <user config dir>/kiln/runner.json)")
	f.fs.StringVar(&f.url, "url", "", "server URL (env KILN_RUNNER_URL)")
	f.fs.StringVar(&f.token, "token", "", "runner authentication token (env KILN_RUNNER_TOKEN)")
	f.fs.StringVar(&f.name, "name", "", "runner name shown in job logs")
	f.fs.StringVar(&f.buildsDir, "builds-dir", "", "directory for job checkouts")
	f.fs.StringVar(&f.cacheDir, "cache-dir", "", "directory for job caches")
	f.fs.StringVar(&f.shell, "shell", "", "bash-compatible shell (default bash)")
	f.fs.StringVar(&f.executor, "executor", "", "shell (default), shell-sandbox (each job in a bubblewrap sandbox) or docker (each job in a container of its image)")
	f.fs.StringVar(&f.dockerHost, "docker-host", "", "container engine for --executor docker (default DOCKER_HOST, /var/run/docker.sock, /run/podman/podman.sock)")
	f.fs.StringVar(&f.dockerImage, "docker-image", "", "image for jobs without image: under --executor docker")
	f.fs.IntVar(&f.concurrent, "concurrent", 0, "number of jobs run at once (default 1)")
	f.fs.Int64Var(&f.outputLimit, "output-limit", 0, "job log size limit in KiB (default 4096); raise the server's --max-trace-size too")
	f.cache.add(f.fs)
	return f
}

// resolve merges flags, environment and the config file (in that order of
// precedence). A missing file is fine for register (it creates it) and when
// it was not named explicitly.
func (f *runFlags) resolve(creating bool) (FileConfig, string, error) {
	path := f.config
	explicit := path != ""
	if !explicit {
		path = defaultConfigPath()
	}
	fc, err := LoadFileConfig(path)
	if err != nil && ((explicit && !creating) || !errors.Is(err, os.ErrNotExist)) {
		return fc, path, err
	}
	if v := os.Getenv("KILN_RUNNER_URL"); v != "" {
		fc.URL = v
	}
	if v := os.Getenv("KILN_RUNNER_TOKEN"); v != "" {
		fc.Token = v
	}
	set := map[string]bool{}
	f.fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	if set["url"] {
		fc.URL = f.url
	}
	if set["token"] {
		fc.Token = f.token
	}
	if set["name"] {
		fc.Name = f.name
	}
	if set["builds-dir"] {
		fc.BuildsDir = f.buildsDir
	}
	if set["cache-dir"] {
		fc.CacheDir = f.cacheDir
	}
	if set["shell"] {
		fc.Shell = f.shell
	}
	if set["concurrent"] {
		fc.Concurrent = f.concurrent
	}
	if set["executor"] {
		fc.Executor = f.executor
	}
	if set["output-limit"] {
		fc.OutputLimit = f.outputLimit
	}
	if set["docker-host"] {
		fc.DockerHost = f.dockerHost
	}
	if set["docker-image"] {
		fc.DockerImage = f.dockerImage
	}
	f.cache.apply(&fc, set)
	return fc, path, nil
}

func cmdRegister(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	f := newFlags("register", stderr)
	f.fs.StringVar(&f.registrationTok, "registration-token", "", "legacy registration token (creates a new runner)")
	if err := f.fs.Parse(args); err != nil {
		return 2
	}
	fc, path, err := f.resolve(true)
	if err != nil {
		fmt.Fprintf(stderr, "kiln runner register: %v\n", err)
		return 1
	}
	if fc.URL == "" || (fc.Token == "" && f.registrationTok == "") {
		fmt.Fprintf(stderr, "kiln runner register: --url and --token (or --registration-token) are required\n%s", usage)
		return 2
	}
	if fc.SystemID == "" {
		fc.SystemID = NewSystemID()
	}
	if fc.Name == "" {
		fc.Name, _ = os.Hostname()
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if f.registrationTok != "" {
		c, err := client.New(client.Options{URL: fc.URL, SystemID: fc.SystemID})
		if err != nil {
			fmt.Fprintf(stderr, "kiln runner register: %v\n", err)
			return 1
		}
		resp, err := c.Register(ctx, client.RegisterRunnerRequest{Token: f.registrationTok, Description: fc.Name, RunUntagged: true})
		if err != nil {
			fmt.Fprintf(stderr, "kiln runner register: %v\n", err)
			return 1
		}
		fc.Token, fc.RunnerID = resp.Token, resp.ID
	} else {
		c, err := client.New(client.Options{URL: fc.URL, Token: fc.Token, SystemID: fc.SystemID})
		if err != nil {
			fmt.Fprintf(stderr, "kiln runner register: %v\n", err)
			return 1
		}
		resp, err := c.Verify(ctx)
		if err != nil {
			fmt.Fprintf(stderr, "kiln runner register: failed to verify the runner: %v\n", err)
			return 1
		}
		fc.RunnerID = resp.ID
	}
	if err := SaveFileConfig(path, fc); err != nil {
		fmt.Fprintf(stderr, "kiln runner register: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "Runner %d registered; configuration saved to %s\n", fc.RunnerID, path)
	return 0
}

func cmdRun(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	f := newFlags("run", stderr)
	var artifactStall time.Duration
	f.fs.DurationVar(&artifactStall, "artifact-stall-timeout", DefaultArtifactStallTimeout,
		"fail an artifacts download from the object store (a presigned URL) that makes no progress (connect, response headers, body bytes) for this long; 0: no bound (env KILN_RUNNER_ARTIFACT_STALL_TIMEOUT)")
	if err := f.fs.Parse(args); err != nil {
		return 2
	}
	set := map[string]bool{}
	f.fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	if v := os.Getenv("KILN_RUNNER_ARTIFACT_STALL_TIMEOUT"); v != "" && !set["artifact-stall-timeout"] {
		d, err := time.ParseDuration(v)
		if err != nil {
			fmt.Fprintf(stderr, "kiln runner run: KILN_RUNNER_ARTIFACT_STALL_TIMEOUT: %v\n", err)
			return 2
		}
		artifactStall = d
	}
	if artifactStall < 0 {
		fmt.Fprintf(stderr, "kiln runner run: --artifact-stall-timeout must not be negative\n")
		return 2
	}
	fc, path, err := f.resolve(false)
	if err != nil {
		fmt.Fprintf(stderr, "kiln runner run: %v\n", err)
		return 1
	}
	if fc.URL == "" || fc.Token == "" {
		fmt.Fprintf(stderr, "kiln runner run: a server URL and token are required (flags, KILN_RUNNER_URL/KILN_RUNNER_TOKEN or a config file)\n%s", usage)
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	cfg := fc.Config()
	cfg.ArtifactStallTimeout = artifactStall
	if artifactStall == 0 {
		cfg.ArtifactStallTimeout = -1 // no bound
	}
	cfg = cfg.withDefaults()
	if cfg.Cache, err = OpenCacheStore(fc.Cache); err != nil {
		fmt.Fprintf(stderr, "kiln runner run: %v\n", err)
		return 2
	}
	if cfg.Cache != nil {
		log.Info("job caches in a shared bucket", "store", fmt.Sprint(cfg.Cache))
	}
	switch fc.Executor {
	case "", "shell":
	case "shell-sandbox":
		// Jobs see neither other jobs' checkouts, nor the caches, nor the
		// configuration file with the runner token.
		hide := []string{cfg.BuildsDir, cfg.CacheDir}
		if _, err := os.Stat(path); err == nil {
			if abs, err := filepath.Abs(path); err == nil {
				hide = append(hide, filepath.Dir(abs))
			}
		}
		ex := SandboxExecutor{Hide: hide}
		if err := ex.Check(ctx); err != nil {
			fmt.Fprintf(stderr, "kiln runner run: --executor shell-sandbox: %v\n", err)
			return 1
		}
		cfg.Executor = ex
	case "docker":
		ex, err := dockerExecutor(ctx, fc, cfg, path, log)
		if err != nil {
			fmt.Fprintf(stderr, "kiln runner run: --executor docker: %v\n", err)
			return 1
		}
		defer ex.Engine.Close()
		cfg.Executor = ex
	default:
		fmt.Fprintf(stderr, "kiln runner run: unknown executor %q (shell, shell-sandbox or docker)\n", fc.Executor)
		return 2
	}
	r := New(cfg, log)

	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	done := make(chan struct{})
	defer close(done)
	go func() {
		n := 0
		for {
			select {
			case <-done:
				return
			case s := <-sigs:
				n++
				if n == 1 {
					log.Info("signal received: finishing running jobs; send again to abort them", "signal", s)
					stop()
				} else {
					log.Warn("second signal: aborting running jobs", "signal", s)
					r.Abort()
				}
			}
		}
	}()
	if err := r.Run(runCtx); err != nil {
		fmt.Fprintf(stderr, "kiln runner run: %v\n", err)
		return 1
	}
	return 0
}
