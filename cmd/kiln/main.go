// Command kiln is a self-hosted CI server that speaks GitLab CI's language.
//
//	kiln server                 run the server (SQLite, built-in runners, UI)
//	kiln runner register|run    run an external runner
//	kiln trigger ...            trigger a pipeline and follow it
//	kiln lint [FILE]            check a .gitlab-ci.yml offline
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/kilnci/kiln/internal/server"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `Usage: kiln <command> [flags]

Commands:
  server     run the Kiln server
  runner     register or run a runner (kiln runner register|run --help)
  trigger    trigger a pipeline and optionally wait for it
  triggers   create trigger tokens with a policy, rotate them
  lint       validate a .gitlab-ci.yml file offline
  admin      reset-root: new token and password for root (on the server machine)
  version    print the version
`

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmd, rest := args[0], args[1:]
	if c, ok := commands[cmd]; ok {
		return c(rest, stdout, stderr)
	}
	switch cmd {
	case "version", "--version":
		fmt.Fprintln(stdout, "kiln", version)
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "kiln: unknown command %q\n\n%s", cmd, usage)
	return 2
}

const version = "0.1.0"

// commands are the subcommands other files register (runner, trigger, lint).
var commands = map[string]func(args []string, stdout, stderr io.Writer) int{
	"server":   serverCmd,
	"runner":   runnerCmd,
	"trigger":  triggerCmd,
	"triggers": triggersCmd,
	"lint":     lintCmd,
}

// envOr returns the environment variable or def.
func envOr(key, def string) string {
	if v, ok := os.LookupEnv(key); ok {
		return v
	}
	return def
}

// envBool is true when key is set to 1, true, yes or on.
func envBool(key string) bool {
	switch strings.ToLower(os.Getenv(key)) {
	case "1", "true", "yes", "on":
		return true
	}
	return false
}

func envInt(key string, def int) int {
	if v, ok := os.LookupEnv(key); ok {
		if n, err := strconv.Atoi(v); err == nil {
			return n
		}
	}
	return def
}

func envDuration(key string, def time.Duration) time.Duration {
	if v, ok := os.LookupEnv(key); ok {
		if d, err := time.ParseDuration(v); err == nil {
			return d
		}
	}
	return def
}

func serverCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("kiln server", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg server.Config
	fs.StringVar(&cfg.Listen, "listen", envOr("KILN_LISTEN", "127.0.0.1:8080"), "address to listen on (KILN_LISTEN)")
	fs.StringVar(&cfg.DataDir, "data-dir", envOr("KILN_DATA_DIR", "./kiln-data"), "directory for repositories, the SQLite file, traces and artifacts (KILN_DATA_DIR)")
	fs.StringVar(&cfg.RepositoriesDir, "repositories-dir", envOr("KILN_REPOSITORIES_DIR", ""), "directory for git repositories; replicas on one database share it (KILN_REPOSITORIES_DIR; default <data-dir>/repositories)")
	fs.StringVar(&cfg.SecretsKeyFile, "secrets-key-file", envOr("KILN_SECRETS_KEY_FILE", ""), "file with the 64-hex-character key that seals CI/CD variables; replicas on one database use the same key (KILN_SECRETS_KEY_FILE; default <data-dir>/secrets.key, created on first start; KILN_SECRETS_KEY overrides)")
	fs.StringVar(&cfg.Database, "database", envOr("KILN_DATABASE", ""), "database: empty for SQLite in the data dir, or a postgres:// URL (KILN_DATABASE)")
	fs.StringVar(&cfg.ExternalURL, "external-url", envOr("KILN_EXTERNAL_URL", ""), "URL users and runners reach this server at (KILN_EXTERNAL_URL; default from --listen)")
	fs.IntVar(&cfg.BuiltinRunners, "builtin-runners", envInt("KILN_BUILTIN_RUNNERS", runtime.NumCPU()), "runners started in-process, 0 to disable (KILN_BUILTIN_RUNNERS)")
	fs.StringVar(&cfg.BuiltinDocker, "builtin-docker", envOr("KILN_BUILTIN_DOCKER", "auto"), "built-in runners run jobs with image:/services: in containers: auto (when a container engine answers), on, off (KILN_BUILTIN_DOCKER)")
	fs.StringVar(&cfg.DockerHost, "docker-host", envOr("KILN_DOCKER_HOST", ""), "container engine of built-in runners (KILN_DOCKER_HOST; default DOCKER_HOST, /var/run/docker.sock, /run/podman/podman.sock)")
	fs.StringVar(&cfg.DockerImage, "docker-image", envOr("KILN_DOCKER_IMAGE", ""), "image for jobs without image: on built-in runners; empty runs them on the host executor (KILN_DOCKER_IMAGE)")
	fs.BoolVar(&cfg.BuiltinRunnersUnsafe, "builtin-runners-unsafe", envBool("KILN_BUILTIN_RUNNERS_UNSAFE"), "run built-in runners' jobs without the sandbox, as the server's user: any job can read the data dir (KILN_BUILTIN_RUNNERS_UNSAFE=1)")
	fs.IntVar(&cfg.TriggerRateLimit, "trigger-rate-limit", envInt("KILN_TRIGGER_RATE_LIMIT", 0), "pipelines the trigger API may create per project and minute, 0 for no limit (KILN_TRIGGER_RATE_LIMIT)")
	fs.DurationVar(&cfg.RunnerStaleTimeout, "runner-stale-timeout", envDuration("KILN_RUNNER_STALE_TIMEOUT", 5*time.Minute), "fail a running job whose runner has not reported for this long (KILN_RUNNER_STALE_TIMEOUT)")
	fs.DurationVar(&cfg.RunnerAckTimeout, "runner-ack-timeout", envDuration("KILN_RUNNER_ACK_TIMEOUT", time.Minute), "put a job back in the queue when the runner it was handed to has not acknowledged it (first update or trace) for this long (KILN_RUNNER_ACK_TIMEOUT)")
	fs.Int64Var(&cfg.MaxTraceSize, "max-trace-size", int64(envInt("KILN_MAX_TRACE_SIZE", 100<<20)), "bytes of job log kept; the rest is cut with a note (KILN_MAX_TRACE_SIZE)")
	fs.Int64Var(&cfg.MaxArtifactsSize, "max-artifacts-size", int64(envInt("KILN_MAX_ARTIFACTS_SIZE", 100<<20)), "largest artifacts archive accepted, in bytes (KILN_MAX_ARTIFACTS_SIZE)")
	fs.StringVar(&cfg.MetricsAllow, "metrics-allow", envOr("KILN_METRICS_ALLOW", server.DefaultMetricsAllow), "comma-separated CIDRs allowed to read /metrics; 0.0.0.0/0,::/0 for everyone (KILN_METRICS_ALLOW)")
	fs.DurationVar(&cfg.HTTP.ReadHeaderTimeout, "read-header-timeout", envDuration("KILN_READ_HEADER_TIMEOUT", 10*time.Second), "time a client has to send a request's headers (KILN_READ_HEADER_TIMEOUT)")
	fs.DurationVar(&cfg.HTTP.BodyTimeout, "body-timeout", envDuration("KILN_BODY_TIMEOUT", 60*time.Second), "time a client has to send an ordinary request's body (KILN_BODY_TIMEOUT)")
	fs.DurationVar(&cfg.HTTP.WriteTimeout, "write-timeout", envDuration("KILN_WRITE_TIMEOUT", 60*time.Second), "time an ordinary response may take to write (KILN_WRITE_TIMEOUT)")
	fs.DurationVar(&cfg.HTTP.IdleTimeout, "idle-timeout", envDuration("KILN_IDLE_TIMEOUT", 60*time.Second), "close keep-alive connections idle this long (KILN_IDLE_TIMEOUT)")
	fs.DurationVar(&cfg.HTTP.StreamTimeout, "stream-timeout", envDuration("KILN_STREAM_TIMEOUT", time.Hour), "longest git transfer, artifacts transfer, event stream or job long poll (KILN_STREAM_TIMEOUT)")
	fs.DurationVar(&cfg.EventStreamMax, "event-stream-timeout", envDuration("KILN_EVENT_STREAM_TIMEOUT", 30*time.Minute), "a pipeline event stream ends after this long even if the pipeline has not finished; clients reconnect (KILN_EVENT_STREAM_TIMEOUT)")
	fs.IntVar(&cfg.HTTP.MaxConns, "max-connections", envInt("KILN_MAX_CONNECTIONS", 0), "open client connections; 0: three quarters of the descriptor limit (KILN_MAX_CONNECTIONS)")
	fs.IntVar(&cfg.HTTP.MaxLongLived, "max-streams", envInt("KILN_MAX_STREAMS", 0), "concurrent event streams and job long polls; 0: half of --max-connections (KILN_MAX_STREAMS)")
	fs.IntVar(&cfg.HTTP.MaxLongLivedPerClient, "max-streams-per-client", envInt("KILN_MAX_STREAMS_PER_CLIENT", 64), "concurrent event streams and job long polls per client address (KILN_MAX_STREAMS_PER_CLIENT)")
	debugListen := fs.String("debug-listen", envOr("KILN_DEBUG_LISTEN", ""), "serve Go's pprof profiles on this address, e.g. 127.0.0.1:6060 (KILN_DEBUG_LISTEN; off by default)")
	logLevel := fs.String("log-level", envOr("KILN_LOG_LEVEL", "info"), "debug, info, warn or error (KILN_LOG_LEVEL)")
	logFormat := fs.String("log-format", envOr("KILN_LOG_FORMAT", "text"), "text or json (KILN_LOG_FORMAT)")
	objectStore := objectStoreFlags(fs)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var err error
	if cfg.ObjectStore, cfg.S3, err = objectStore(); err != nil {
		fmt.Fprintln(stderr, "kiln server:", err)
		return 2
	}
	cfg.InitialRootToken = os.Getenv("KILN_INITIAL_ROOT_TOKEN")
	cfg.InitialRootPassword = os.Getenv("KILN_INITIAL_ROOT_PASSWORD")
	log, err := newLogger(stderr, *logLevel, *logFormat)
	if err != nil {
		fmt.Fprintln(stderr, "kiln server:", err)
		return 2
	}
	cfg.Credentials = func(c server.Credentials) {
		if *logFormat == "json" {
			// Structured, so that a log collector can pick them out; shown
			// once like the text banner.
			log.Warn("root credentials (shown once)", "username", c.Username, "root_token", c.Token, "root_password", c.Password, "url", c.URL, "reset_with", c.ResetCommand())
			return
		}
		server.PrintCredentials(stderr, c)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *debugListen != "" {
		// A separate listener, so that profiles are never reachable through
		// the public address.
		dbg := http.NewServeMux()
		dbg.HandleFunc("/debug/pprof/", pprof.Index)
		dbg.HandleFunc("/debug/pprof/profile", pprof.Profile)
		dbg.HandleFunc("/debug/pprof/trace", pprof.Trace)
		dbg.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		go func() {
			if err := http.ListenAndServe(*debugListen, dbg); err != nil {
				log.Error("debug listener failed", "addr", *debugListen, "err", err)
			}
		}()
	}
	srv, err := server.New(ctx, cfg, log)
	if err != nil {
		log.Error("start failed", "err", err)
		return 1
	}
	defer srv.Close()
	if err := srv.Run(ctx); err != nil {
		log.Error("server failed", "err", err)
		return 1
	}
	return 0
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("bad log level %q", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("bad log format %q (text or json)", format)
}
