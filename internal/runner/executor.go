package runner

import (
	"bytes"
	"context"
	"io"
	"os/exec"
	"slices"
	"time"

	"github.com/kilnci/kiln/internal/runner/client"
)

// An Executor decides where and how a job's processes run. The agent keeps
// everything else: it talks to the server, fetches and uploads artifacts,
// keeps the cache and streams the log; every process it starts for a job
// (git while getting sources, the scripts) goes through the job's
// ExecSession.
//
// The lifecycle is Prepare (once per job, before any command), Run (any
// number of times), Cleanup (once). Paths are the agent's paths: an
// executor that runs processes elsewhere (a container) maps BuildDir and
// TmpDir to where the processes see them.
type Executor interface {
	// Name is shown in the job log ("shell", "shell-sandbox").
	Name() string
	// Prepare readies the environment for one job.
	Prepare(ctx context.Context, job ExecJob) (ExecSession, error)
}

// ExecJob is what an executor needs to know about a job.
type ExecJob struct {
	// BuildDir is the job's checkout (CI_PROJECT_DIR): the job may write it.
	BuildDir string
	// TmpDir holds the scripts and file variables: the job may read it.
	TmpDir string
	// KillGrace is the delay between SIGTERM and SIGKILL on cancel.
	KillGrace time.Duration

	// ID is the job's ID.
	ID int64
	// Image and Services are the job's image: and services:, names
	// expanded; executors that run on the host ignore them.
	Image    *client.Image
	Services []client.Image
	// Env is what the job itself defines (CI_* and its variables), without
	// what the agent inherited from its own environment.
	Env []string
	// Log is the job log, for what preparing prints.
	Log io.Writer
}

// ExecSession runs the processes of one job.
type ExecSession interface {
	// Run runs one command to completion, streaming its output to c.Out.
	// It returns nil, a *scriptExit, ctx's cause, or another error.
	Run(ctx context.Context, c Cmd) error
	// Adopt hands files the agent itself wrote below the build dir
	// (extracted cache and artifacts, a fresh directory) to the user the
	// job's processes run as, so that the job can change them.
	Adopt(path string) error
	// Settle ends what Keep kept alive: afterwards no process of the job
	// runs until the next Run.
	Settle()
	// Cleanup releases what Prepare set up; the build dir stays.
	Cleanup() error
}

// Cmd is one process of a job.
type Cmd struct {
	Args []string
	Dir  string
	Env  []string
	Out  io.Writer
	// Err receives standard error; nil means Out.
	Err io.Writer
	// Script is set when the command runs a job script (the path of the
	// script file, also in Args): an executor may pick its own shell for
	// it, and run it elsewhere than the agent's own commands (git).
	Script string
	// ReadOnly lists host paths the command must be able to read (the
	// server's copy of the repository, for built-in runners' local fetch).
	ReadOnly []string
	// Keep says more commands follow at once (the git commands getting the
	// sources): an executor may keep what it set up for this one (a
	// sandbox) alive for them, until Settle, Adopt, Cleanup or a Run
	// without Keep. The agent never writes into the build directory while
	// something is kept.
	Keep bool
}

// ShellExecutor runs job processes directly on the host, as the agent's
// own user: the behaviour of gitlab-runner's shell executor.
type ShellExecutor struct{}

// Name implements Executor.
func (ShellExecutor) Name() string { return "shell" }

// Prepare implements Executor.
func (ShellExecutor) Prepare(_ context.Context, job ExecJob) (ExecSession, error) {
	return shellSession{grace: job.KillGrace}, nil
}

type shellSession struct{ grace time.Duration }

func (s shellSession) Run(ctx context.Context, c Cmd) error {
	cmd := exec.Command(c.Args[0], c.Args[1:]...)
	cmd.Dir = c.Dir
	cmd.Env = slices.Clip(c.Env)
	return runCmd(ctx, s.grace, cmd, c.Out, c.Err)
}

func (shellSession) Adopt(string) error { return nil }
func (shellSession) Settle()            {}
func (shellSession) Cleanup() error     { return nil }

// runOutput runs c through s and returns its standard output.
func runOutput(ctx context.Context, s ExecSession, c Cmd) ([]byte, error) {
	var b bytes.Buffer
	c.Out, c.Err = &b, io.Discard
	err := s.Run(ctx, c)
	return b.Bytes(), err
}
