// Package containers talks to a container engine (Docker, or Podman's
// Docker-compatible service) through the Docker Engine API: it finds the
// engine, makes sure images are present under GitLab's pull policies, and
// creates, runs and removes the containers and networks of one job. It
// knows nothing about jobs or runners; internal/runner's DockerExecutor
// puts it to work.
package containers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"
)

// Labels put on everything Kiln creates, so that leftovers of a runner
// that died can be found and removed (Sweep).
const (
	// LabelOwner names the runner (a stable identity across restarts).
	LabelOwner = "org.kilnci.owner"
	// LabelJob is the job ID.
	LabelJob = "org.kilnci.job"
)

// DefaultHosts are tried, in order, when neither the caller nor
// DOCKER_HOST names an engine: Docker's socket, then rootful Podman's.
var DefaultHosts = []string{"unix:///var/run/docker.sock", "unix:///run/podman/podman.sock"}

// Engine is a connection to one container engine.
type Engine struct {
	c    *client.Client
	host string
}

// Host is the engine's address (unix:///…).
func (e *Engine) Host() string { return e.host }

// Client is the underlying Docker API client.
func (e *Engine) Client() *client.Client { return e.c }

// Close releases idle connections.
func (e *Engine) Close() error { return e.c.Close() }

// Connect opens the engine at host and checks that it answers. An empty
// host means DOCKER_HOST, else the first of DefaultHosts that answers.
func Connect(ctx context.Context, host string) (*Engine, error) {
	if host != "" {
		return dial(ctx, host)
	}
	if h := os.Getenv("DOCKER_HOST"); h != "" {
		return dial(ctx, h)
	}
	var errs []error
	for _, h := range DefaultHosts {
		if p, ok := strings.CutPrefix(h, "unix://"); ok {
			if _, err := os.Stat(p); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", h, err))
				continue
			}
		}
		e, err := dial(ctx, h)
		if err == nil {
			return e, nil
		}
		errs = append(errs, err)
	}
	return nil, fmt.Errorf("no container engine reachable: %w", errors.Join(errs...))
}

func dial(ctx context.Context, host string) (*Engine, error) {
	c, err := client.New(client.WithHost(host), client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", host, err)
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := c.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
		c.Close()
		return nil, fmt.Errorf("%s: %w", host, err)
	}
	return &Engine{c: c, host: host}, nil
}

// Pull policies of GitLab's image:pull_policy.
const (
	PullAlways       = "always"
	PullIfNotPresent = "if-not-present"
	PullNever        = "never"
)

// PullError is an image that could not be made present; GitLab Runner
// fails such a job with image_pull_failure.
type PullError struct {
	Image    string
	Policies []string
	Err      error
}

func (e *PullError) Error() string {
	return fmt.Sprintf("failed to pull image %q with specified policies %v: %v", e.Image, e.Policies, e.Err)
}

func (e *PullError) Unwrap() error { return e.Err }

// EnsureImage makes image present under policies (default
// if-not-present), trying each policy in turn as GitLab Runner does and
// logging to log what it does.
func (e *Engine) EnsureImage(ctx context.Context, image string, policies []string, log io.Writer) error {
	if len(policies) == 0 {
		policies = []string{PullIfNotPresent}
	}
	var last error
	for _, p := range policies {
		err := e.ensureWith(ctx, image, p, log)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		last = err
		fmt.Fprintf(log, "\x1b[0;33mWARNING: Failed to pull image with policy %q: %v\x1b[0;m\n", p, err)
	}
	return &PullError{Image: image, Policies: policies, Err: last}
}

func (e *Engine) ensureWith(ctx context.Context, image, policy string, log io.Writer) error {
	switch policy {
	case PullIfNotPresent, PullNever:
		if _, err := e.c.ImageInspect(ctx, image); err == nil {
			fmt.Fprintf(log, "Using locally found image version due to %q pull policy\n", policy)
			return nil
		} else if !cerrdefs.IsNotFound(err) {
			return err
		}
		if policy == PullNever {
			return fmt.Errorf("image %q not found locally and pull policy is %q", image, PullNever)
		}
	case PullAlways:
	default:
		return fmt.Errorf("unsupported pull policy %q", policy)
	}
	fmt.Fprintf(log, "Pulling docker image %s ...\n", image)
	ref := image
	if !strings.ContainsAny(ref[strings.LastIndexByte(ref, '/')+1:], ":@") {
		ref += ":latest"
	}
	resp, err := e.c.ImagePull(ctx, ref, client.ImagePullOptions{})
	if err != nil {
		return err
	}
	defer resp.Close()
	for msg, err := range resp.JSONMessages(ctx) {
		if err != nil {
			return err
		}
		if msg.Error != nil {
			return errors.New(msg.Error.Message)
		}
	}
	_, err = e.c.ImageInspect(ctx, image)
	return err
}
