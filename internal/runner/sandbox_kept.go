package runner

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"syscall"
	"time"
)

// keptServer is the bash program a kept sandbox runs: it reads commands
// (directory, environment and arguments, NUL-separated) from stdin, runs
// each in its own process group with a clean environment, kills what the
// command left behind, and prints a marker with the exit status that only
// the agent knows (it arrives on stdin first, never in argv or the
// environment).
const keptServer = `set -m
IFS= read -r NONCE || exit 1
while IFS= read -r -d '' dir && IFS= read -r -d '' ne && IFS= read -r -d '' na; do
  e=(); a=()
  for ((i=0; i<ne; i++)); do IFS= read -r -d '' v; e+=("$v"); done
  for ((i=0; i<na; i++)); do IFS= read -r -d '' v; a+=("$v"); done
  (cd -- "$dir" && exec ` + "\"$ENV\"" + ` -i -- "${e[@]}" "${a[@]}") </dev/null 2>&1 &
  p=$!
  wait "$p"; rc=$?
  kill -KILL -- "-$p" 2>/dev/null
  printf '%s%d\n' "$NONCE" "$rc"
done
`

// keptSandbox is one sandbox kept alive across consecutive Cmd.Keep
// commands (the git commands that get the sources), so that they pay for
// bubblewrap once.
type keptSandbox struct {
	cmd   *exec.Cmd
	in    io.WriteCloser
	out   *os.File
	nonce []byte
	ro    []string
}

// runKept runs c in the kept sandbox, starting one if needed.
func (s *sandboxSession) runKept(ctx context.Context, c Cmd) error {
	if err := ctx.Err(); err != nil {
		return context.Cause(ctx)
	}
	if s.kept != nil && !slices.Equal(s.kept.ro, c.ReadOnly) {
		s.Settle()
	}
	if s.kept == nil {
		if err := s.startKept(c.ReadOnly); err != nil {
			return err
		}
	}
	k := s.kept
	var req bytes.Buffer
	field := func(v string) { req.WriteString(v); req.WriteByte(0) }
	env := make([]string, 0, len(c.Env))
	for _, kv := range c.Env {
		if !bytes.ContainsRune([]byte(kv), 0) {
			env = append(env, kv)
		}
	}
	field(c.Dir)
	field(strconv.Itoa(len(env)))
	field(strconv.Itoa(len(c.Args)))
	for _, v := range env {
		field(v)
	}
	for _, v := range c.Args {
		field(v)
	}
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		select {
		case <-done:
			return
		case <-ctx.Done():
		}
		// The whole sandbox goes: bwrap's PID 1 takes every process in it.
		_ = syscall.Kill(-k.cmd.Process.Pid, syscall.SIGTERM)
		t := time.NewTimer(s.grace)
		defer t.Stop()
		select {
		case <-done:
		case <-t.C:
			_ = syscall.Kill(-k.cmd.Process.Pid, syscall.SIGKILL)
		}
	}()
	var code int
	_, err := k.in.Write(req.Bytes())
	if err == nil {
		code, err = k.readUntilMarker(c.Out)
	}
	close(done)
	<-stopped
	if ctx.Err() != nil {
		s.Settle()
		return context.Cause(ctx)
	}
	if err != nil {
		s.Settle()
		return fmt.Errorf("sandbox ended unexpectedly: %w", err)
	}
	if code != 0 {
		return &scriptExit{code: code}
	}
	return nil
}

func (s *sandboxSession) startKept(ro []string) error {
	bash, err := exec.LookPath("bash")
	if err != nil {
		return err
	}
	envBin, err := exec.LookPath("env")
	if err != nil {
		return err
	}
	a := s.args(Cmd{Args: []string{bash, "--noprofile", "--norc", "-c", keptServer}, Dir: s.build, ReadOnly: ro})
	cmd := exec.Command(a[0], a[1:]...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "ENV=" + envBin}
	cmd.SysProcAttr = jobProcAttr()
	in, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return err
	}
	cmd.Stdout = pw
	if err := cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		return err
	}
	pw.Close()
	var b [16]byte
	_, _ = crand.Read(b[:])
	k := &keptSandbox{cmd: cmd, in: in, out: pr, nonce: []byte("kiln-" + hex.EncodeToString(b[:]) + ":"), ro: slices.Clone(ro)}
	if _, err := in.Write(append(slices.Clone(k.nonce), '\n')); err != nil {
		s.kept = k
		s.Settle()
		return err
	}
	s.kept = k
	return nil
}

// readUntilMarker copies the command's output to w up to the marker and
// returns the exit status that follows it.
func (k *keptSandbox) readUntilMarker(w io.Writer) (int, error) {
	if w == nil {
		w = io.Discard
	}
	buf := make([]byte, 32<<10)
	var pending []byte
	hold := len(k.nonce) - 1
	for {
		n, rerr := k.out.Read(buf)
		pending = append(pending, buf[:n]...)
		if i := bytes.Index(pending, k.nonce); i >= 0 {
			if i > 0 {
				_, _ = w.Write(pending[:i])
				pending = pending[i:]
			}
			rest := pending[len(k.nonce):]
			if j := bytes.IndexByte(rest, '\n'); j >= 0 {
				code, err := strconv.Atoi(string(rest[:j]))
				if err != nil {
					return 0, fmt.Errorf("bad status %q", rest[:j])
				}
				return code, nil
			}
		} else if len(pending) > hold {
			_, _ = w.Write(pending[:len(pending)-hold])
			pending = pending[len(pending)-hold:]
		}
		if rerr != nil {
			_, _ = w.Write(pending)
			if errors.Is(rerr, io.EOF) {
				rerr = io.ErrUnexpectedEOF
			}
			return 0, rerr
		}
	}
}

// Settle ends a kept sandbox: its server sees the end of its input and
// exits, and bubblewrap's PID 1 takes every process left in it before
// bubblewrap returns, so nothing of the job runs afterwards.
func (s *sandboxSession) Settle() {
	k := s.kept
	if k == nil {
		return
	}
	s.kept = nil
	k.in.Close()
	done := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, k.out)
		close(done)
	}()
	exited := make(chan struct{})
	go func() { _ = k.cmd.Wait(); close(exited) }()
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-k.cmd.Process.Pid, syscall.SIGKILL)
		<-exited
	}
	k.out.Close()
	<-done
}
