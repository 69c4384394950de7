package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"github.com/kilnci/kiln/internal/containers"
	"github.com/kilnci/kiln/internal/runner"
)

// builtinContainers puts the docker executor in front of host, the
// built-in runners' host executor, when a container engine answers (or
// --builtin-docker=on demands one). Jobs that name an image: then run in
// containers; others keep running with host (unless --docker-image gives
// them an image). What an earlier run of this server left in the engine
// (it was killed mid-job) is removed first.
func (s *Server) builtinContainers(ctx context.Context, host runner.Executor) (runner.Executor, error) {
	mode := s.cfg.BuiltinDocker
	switch mode {
	case "", "auto", "on", "off":
	default:
		return nil, fmt.Errorf("--builtin-docker: %q is not auto, on or off", mode)
	}
	if mode == "off" {
		return host, nil
	}
	e, err := containers.Connect(ctx, s.cfg.DockerHost)
	if err != nil {
		if mode == "on" {
			return nil, fmt.Errorf("--builtin-docker=on: %w", err)
		}
		s.log.Info("built-in runners: no container engine, jobs' image: and services: are ignored", "err", err)
		return host, nil
	}
	d := runner.DockerExecutor{Engine: e, Host: host, DefaultImage: s.cfg.DockerImage, Owner: BuiltinContainerOwner(s.cfg.DataDir)}
	if n, err := d.Sweep(ctx); err != nil {
		s.log.Warn("removing containers of an earlier run", "err", err)
	} else if n > 0 {
		s.log.Info("removed containers and networks of an earlier run", "count", n)
	}
	s.log.Info("built-in runners run jobs with image: in containers", "engine", e.Host(), "default_image", d.DefaultImage, "host_executor", host.Name())
	return d, nil
}

// BuiltinContainerOwner is the owner label of the containers of the
// built-in runners of the server with this data dir (on this host): the
// same across restarts, so a restart removes what a crash left.
func BuiltinContainerOwner(dataDir string) string {
	sum := sha256.Sum256([]byte(builtinSuffix(dataDir)))
	return "builtin-" + hex.EncodeToString(sum[:8])
}
