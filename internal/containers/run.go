package containers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
)

// Spec describes one container.
type Spec struct {
	Name  string
	Image string
	// Entrypoint nil keeps the image's; [""] (GitLab's way to say "none")
	// clears it.
	Entrypoint []string
	Cmd        []string
	Env        []string
	WorkingDir string
	// Binds are host:container[:ro] bind mounts.
	Binds []string
	// Network and Aliases attach the container to a user-defined network
	// under those DNS names.
	Network string
	Aliases []string
	Labels  map[string]string
	// Attach prepares the container for Run (stdout and stderr attached).
	Attach bool
}

// Create creates the container and returns its ID.
func (e *Engine) Create(ctx context.Context, s Spec) (string, error) {
	cfg := &container.Config{
		Image:        s.Image,
		Cmd:          s.Cmd,
		Env:          s.Env,
		WorkingDir:   s.WorkingDir,
		Labels:       s.Labels,
		AttachStdout: s.Attach,
		AttachStderr: s.Attach,
	}
	if s.Entrypoint != nil {
		cfg.Entrypoint = s.Entrypoint
		if len(s.Entrypoint) == 1 && s.Entrypoint[0] == "" {
			cfg.Entrypoint = []string{""}
		}
	}
	hc := &container.HostConfig{Binds: s.Binds}
	var nc *network.NetworkingConfig
	if s.Network != "" {
		hc.NetworkMode = container.NetworkMode(s.Network)
		nc = &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{
			s.Network: {Aliases: s.Aliases},
		}}
	}
	res, err := e.c.ContainerCreate(ctx, client.ContainerCreateOptions{
		Name: s.Name, Config: cfg, HostConfig: hc, NetworkingConfig: nc,
	})
	if err != nil {
		return "", err
	}
	return res.ID, nil
}

// Start starts a created container (a service) without attaching.
func (e *Engine) Start(ctx context.Context, id string) error {
	_, err := e.c.ContainerStart(ctx, id, client.ContainerStartOptions{})
	return err
}

// Running reports whether the container is running, and its exit code and
// last log lines when it is not.
func (e *Engine) Running(ctx context.Context, id string) (bool, int, error) {
	res, err := e.c.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil {
		return false, 0, err
	}
	st := res.Container.State
	if st == nil {
		return false, 0, errors.New("container has no state")
	}
	return st.Running, st.ExitCode, nil
}

// Logs copies a container's output so far.
func (e *Engine) Logs(ctx context.Context, id string, out io.Writer) error {
	rc, err := e.c.ContainerLogs(ctx, id, client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true, Tail: "50"})
	if err != nil {
		return err
	}
	defer rc.Close()
	_, err = stdcopy.StdCopy(out, out, rc)
	return err
}

// Run attaches to a created container, starts it and waits for it to
// exit, streaming its output. When ctx ends first the container is
// killed and ctx's cause returned.
func (e *Engine) Run(ctx context.Context, id string, stdout, stderr io.Writer) (int, error) {
	att, err := e.c.ContainerAttach(ctx, id, client.ContainerAttachOptions{Stream: true, Stdout: true, Stderr: true})
	if err != nil {
		return -1, err
	}
	defer att.Close()
	copied := make(chan error, 1)
	go func() {
		_, err := stdcopy.StdCopy(stdout, stderr, att.Reader)
		copied <- err
	}()
	// Wait is registered before the start so that a quick exit is seen.
	wctx, wcancel := context.WithCancel(context.WithoutCancel(ctx))
	defer wcancel()
	wait := e.c.ContainerWait(wctx, id, client.ContainerWaitOptions{Condition: container.WaitConditionNextExit})
	if _, err := e.c.ContainerStart(ctx, id, client.ContainerStartOptions{}); err != nil {
		return -1, err
	}
	select {
	case res := <-wait.Result:
		// The output may still be in flight; it ends when the stream does.
		select {
		case <-copied:
		case <-time.After(5 * time.Second):
		}
		if res.Error != nil && res.Error.Message != "" {
			return int(res.StatusCode), errors.New(res.Error.Message)
		}
		return int(res.StatusCode), nil
	case err := <-wait.Error:
		return -1, err
	case <-ctx.Done():
		kctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, _ = e.c.ContainerKill(kctx, id, client.ContainerKillOptions{Signal: "KILL"})
		return -1, context.Cause(ctx)
	}
}

// Remove kills and removes a container with its anonymous volumes; a
// container already gone is not an error.
func (e *Engine) Remove(ctx context.Context, id string) error {
	// Killed first: Podman's forced removal would otherwise give a
	// process that ignores SIGTERM (a server as PID 1) its 10 s stop
	// timeout. A container that is not running answers an error here.
	_, _ = e.c.ContainerKill(ctx, id, client.ContainerKillOptions{Signal: "KILL"})
	_, err := e.c.ContainerRemove(ctx, id, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
	if err != nil && !cerrdefs.IsNotFound(err) {
		return err
	}
	return nil
}

// CreateNetwork creates a bridge network for one job.
func (e *Engine) CreateNetwork(ctx context.Context, name string, labels map[string]string) (string, error) {
	res, err := e.c.NetworkCreate(ctx, name, client.NetworkCreateOptions{Driver: "bridge", Labels: labels})
	if err != nil {
		return "", err
	}
	return res.ID, nil
}

// RemoveNetwork removes a network; one already gone is not an error.
func (e *Engine) RemoveNetwork(ctx context.Context, id string) error {
	_, err := e.c.NetworkRemove(ctx, id, client.NetworkRemoveOptions{})
	if err != nil && !cerrdefs.IsNotFound(err) {
		return err
	}
	return nil
}

// List returns the IDs of containers (running or not) carrying label=value.
func (e *Engine) List(ctx context.Context, label, value string) ([]string, error) {
	res, err := e.c.ContainerList(ctx, client.ContainerListOptions{All: true,
		Filters: make(client.Filters).Add("label", label+"="+value)})
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, c := range res.Items {
		ids = append(ids, c.ID)
	}
	return ids, nil
}

// Sweep removes every container and network labelled as owned by owner:
// what a runner that died left behind. It returns how many it removed.
func (e *Engine) Sweep(ctx context.Context, owner string) (int, error) {
	ids, err := e.List(ctx, LabelOwner, owner)
	if err != nil {
		return 0, err
	}
	var errs []error
	n := 0
	for _, id := range ids {
		if err := e.Remove(ctx, id); err != nil {
			errs = append(errs, err)
		} else {
			n++
		}
	}
	nets, err := e.c.NetworkList(ctx, client.NetworkListOptions{
		Filters: make(client.Filters).Add("label", LabelOwner+"="+owner)})
	if err != nil {
		return n, errors.Join(append(errs, err)...)
	}
	for _, nw := range nets.Items {
		if err := e.RemoveNetwork(ctx, nw.ID); err != nil {
			errs = append(errs, err)
		} else {
			n++
		}
	}
	return n, errors.Join(errs...)
}

// ServiceHostnames are the names a service is reachable by, as GitLab
// derives them from the image: everything after the tag's colon (or
// digest's @) dropped, then "/" replaced by "__" (the primary name) and by
// "-" (the secondary). Explicit aliases (alias: may list several,
// separated by commas or spaces) come first. Names that are not valid
// host names are dropped.
func ServiceHostnames(image, alias string) []string {
	var out []string
	add := func(n string) {
		if n == "" || !validHostname(n) {
			return
		}
		for _, o := range out {
			if o == n {
				return
			}
		}
		out = append(out, n)
	}
	for a := range strings.FieldsFuncSeq(alias, func(r rune) bool { return r == ',' || r == ' ' }) {
		add(a)
	}
	name := image
	if i := strings.IndexByte(name, '@'); i >= 0 {
		name = name[:i]
	}
	if i := strings.LastIndexByte(name, ':'); i > strings.LastIndexByte(name, '/') {
		name = name[:i]
	}
	add(strings.ReplaceAll(name, "/", "__"))
	add(strings.ReplaceAll(name, "/", "-"))
	return out
}

func validHostname(s string) bool {
	if len(s) > 253 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// ContainerName builds a name the engine accepts from parts.
func ContainerName(parts ...string) string {
	s := strings.Join(parts, "-")
	var b strings.Builder
	for _, c := range s {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' {
			b.WriteRune(c)
		} else {
			b.WriteByte('_')
		}
	}
	return fmt.Sprint(b.String())
}

// Networks returns the IDs of networks carrying label=value.
func (e *Engine) Networks(ctx context.Context, label, value string) ([]string, error) {
	res, err := e.c.NetworkList(ctx, client.NetworkListOptions{Filters: make(client.Filters).Add("label", label+"="+value)})
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, n := range res.Items {
		ids = append(ids, n.ID)
	}
	return ids, nil
}
