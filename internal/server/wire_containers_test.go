package server

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/kilnci/kiln/internal/runner"
	"github.com/kilnci/kiln/internal/testenv"
)

func TestBuiltinContainers(t *testing.T) {
	host := runner.ShellExecutor{}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	absent := "unix://" + t.TempDir() + "/no.sock"
	for _, tc := range []struct {
		mode, host string
		docker     bool
		err        string
	}{
		{"off", "", false, ""},
		{"auto", absent, false, ""},
		{"", absent, false, ""},
		{"on", absent, false, "--builtin-docker=on: "},
		{"sometimes", "", false, `--builtin-docker: "sometimes" is not auto, on or off`},
	} {
		s := &Server{cfg: Config{BuiltinDocker: tc.mode, DockerHost: tc.host, DataDir: t.TempDir()}, log: log}
		ex, err := s.builtinContainers(context.Background(), host)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q %q: err %v, want %q", tc.mode, tc.host, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q %q: %v", tc.mode, tc.host, err)
			continue
		}
		if _, isDocker := ex.(runner.DockerExecutor); isDocker != tc.docker {
			t.Errorf("%q %q: executor %T", tc.mode, tc.host, ex)
		}
	}
	// With the engine the tests use, auto and on put the docker executor
	// in front of the host executor.
	e := testenv.ContainerEngine(t)
	for _, mode := range []string{"auto", "on"} {
		s := &Server{cfg: Config{BuiltinDocker: mode, DockerHost: e.Host(), DataDir: t.TempDir()}, log: log}
		ex, err := s.builtinContainers(context.Background(), host)
		d, ok := ex.(runner.DockerExecutor)
		if err != nil || !ok || d.Host != host || d.Owner != BuiltinContainerOwner(s.cfg.DataDir) {
			t.Errorf("%s with an engine: %T %v", mode, ex, err)
		}
	}
}
