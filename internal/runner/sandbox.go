package runner

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"
)

// SandboxUID and SandboxGID are the ids sandboxed jobs run as when the
// agent runs as root: nobody and nogroup on Debian.
const (
	SandboxUID = 65534
	SandboxGID = 65534
)

// SandboxExecutor runs every process of a job (git while getting sources,
// the scripts) in a bubblewrap sandbox:
//
//   - new mount, PID, IPC and UTS namespaces (and cgroup where possible),
//     dying with the agent;
//   - the host's root file system read-only, a fresh /dev and /proc, a
//     private /tmp;
//   - the directories in Hide replaced by empty tmpfs mounts, with only the
//     job's build directory (writable) and its scripts directory
//     (read-only) bound back in, at the same paths (the server's
//     repositories stay hidden: sources are fetched over HTTP);
//   - the network shared, so jobs reach the server and other hosts;
//   - as the unprivileged user SandboxUID:SandboxGID with no capabilities
//     when the agent is root (the process really is uid 65534 on the host:
//     it cannot read root's files nor signal root's processes), or, when
//     the agent is an ordinary user, in a user namespace mapping uid 65534
//     to that user.
//
// The agent's own work (cache and artifact archives, talking to the
// server) stays outside the sandbox; files it writes into the build
// directory are handed to the sandbox user (Adopt).
type SandboxExecutor struct {
	// Hide lists host directories jobs must not see: the server's data
	// directory, a runner's builds and cache directories and the directory
	// of its configuration file.
	Hide []string
	// Bwrap is the bubblewrap binary; default "bwrap" from PATH.
	Bwrap string
	// Mask lists host paths of sockets that mean control of the host
	// (container engines, per-user service managers): a socket or file is
	// covered by /dev/null, a directory by an empty tmpfs. Nil means
	// defaultSandboxMask plus the agent's DOCKER_HOST socket. A sandbox
	// user with the server user's groups (a non-root server in the docker
	// group) could otherwise still connect to them.
	Mask []string
}

// defaultSandboxMask lists the engine and session sockets jobs never reach.
func defaultSandboxMask() []string {
	return []string{
		"/var/run/docker.sock", "/run/docker.sock",
		"/run/podman", "/var/run/podman",
		"/run/containerd", "/var/run/containerd",
		"/run/user",
		"/run/dbus/system_bus_socket", "/var/run/dbus/system_bus_socket",
	}
}

// DefaultSandboxMask is what a nil Mask means: the engine and session
// sockets, and DOCKER_HOST's socket; add to it to mask more files.
func DefaultSandboxMask() []string { return SandboxExecutor{}.mask() }

// mask is the list of paths e hides besides Hide.
func (e SandboxExecutor) mask() []string {
	if e.Mask != nil {
		return e.Mask
	}
	m := defaultSandboxMask()
	if h, ok := strings.CutPrefix(os.Getenv("DOCKER_HOST"), "unix://"); ok && h != "" {
		m = append(m, h)
	}
	return m
}

// Name implements Executor.
func (SandboxExecutor) Name() string { return "shell-sandbox" }

// tools finds bwrap (and, as root, setpriv, which drops to the sandbox
// user once bwrap has set the namespaces up).
func (e SandboxExecutor) tools() (bwrap, setpriv string, err error) {
	if runtime.GOOS != "linux" {
		return "", "", errors.New("the job sandbox needs Linux namespaces")
	}
	name := e.Bwrap
	if name == "" {
		name = "bwrap"
	}
	if bwrap, err = exec.LookPath(name); err != nil {
		return "", "", fmt.Errorf("bubblewrap not found (%v): install it (Debian: apt-get install bubblewrap)", err)
	}
	if os.Geteuid() == 0 {
		if setpriv, err = exec.LookPath("setpriv"); err != nil {
			return "", "", fmt.Errorf("setpriv not found (%v): install util-linux", err)
		}
	}
	return bwrap, setpriv, nil
}

// Check runs a trivial command in a sandbox like a job's and reports why
// it cannot be done (no bubblewrap, namespaces disabled by the kernel or a
// container's seccomp profile, ...).
func (e SandboxExecutor) Check(ctx context.Context) error {
	dir, err := os.MkdirTemp("", "kiln-sandbox-check-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	build := filepath.Join(dir, "build")
	if err := os.Mkdir(build, 0o755); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	e.Hide = append(slices.Clip(e.Hide), dir)
	s, err := e.Prepare(ctx, ExecJob{BuildDir: build, TmpDir: filepath.Join(dir, "tmp"), KillGrace: time.Second})
	if err != nil {
		return err
	}
	defer s.Cleanup()
	var out bytes.Buffer
	probe := "test -w . && ! test -e " + shellQuote(filepath.Join(dir, "tmp")) + " && test \"$(id -u)\" = " + fmt.Sprint(SandboxUID)
	if err := s.Run(ctx, Cmd{Args: []string{"sh", "-c", probe}, Dir: build, Env: []string{"PATH=" + os.Getenv("PATH")}, Out: &out}); err != nil {
		msg := strings.TrimSpace(out.String())
		if msg == "" {
			msg = err.Error()
		}
		return fmt.Errorf("bubblewrap cannot create the job sandbox: %s", msg)
	}
	return nil
}

// Prepare implements Executor.
func (e SandboxExecutor) Prepare(_ context.Context, job ExecJob) (ExecSession, error) {
	bwrap, setpriv, err := e.tools()
	if err != nil {
		return nil, err
	}
	s := &sandboxSession{bwrap: bwrap, setpriv: setpriv, grace: job.KillGrace, root: os.Geteuid() == 0}
	for _, p := range []*string{&job.BuildDir, &job.TmpDir} {
		if *p, err = filepath.Abs(*p); err != nil {
			return nil, err
		}
	}
	s.build, s.tmp = job.BuildDir, job.TmpDir
	for _, m := range e.mask() {
		// Resolved, so that /var/run/x and /run/x (a symlink) are masked
		// at the place the mount lands.
		real, err := filepath.EvalSymlinks(m)
		if err != nil || within(job.BuildDir, real) {
			continue
		}
		if !slices.Contains(s.masks, real) {
			s.masks = append(s.masks, real)
		}
	}
	for _, h := range e.Hide {
		if h == "" {
			continue
		}
		abs, err := filepath.Abs(h)
		if err != nil {
			return nil, err
		}
		if abs != "/" && !slices.Contains(s.hide, abs) {
			s.hide = append(s.hide, abs)
		}
	}
	// A directory inside another hidden one is hidden by its parent's
	// empty tmpfs already; a tmpfs of its own would only make its name
	// appear there (the default repositories dir in the data dir).
	all := slices.Clone(s.hide)
	s.hide = slices.DeleteFunc(s.hide, func(h string) bool {
		return slices.ContainsFunc(all, func(p string) bool { return p != h && within(p, h) })
	})
	slices.Sort(s.hide)
	if s.root {
		// A build directory left by an unsandboxed run belongs to root.
		if fi, err := os.Stat(s.build); err == nil {
			if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Uid != SandboxUID {
				if err := s.Adopt(s.build); err != nil {
					return nil, err
				}
			}
		}
		if err := s.Adopt(s.tmp); err != nil {
			return nil, err
		}
	}
	return s, nil
}

type sandboxSession struct {
	bwrap, setpriv string
	root           bool
	grace          time.Duration
	build, tmp     string
	hide           []string
	masks          []string     // sockets and their directories, see SandboxExecutor.Mask
	kept           *keptSandbox // see Cmd.Keep
}

// args builds the bwrap command line for c.
func (s *sandboxSession) args(c Cmd) []string {
	a := []string{s.bwrap,
		"--unshare-ipc", "--unshare-pid", "--unshare-uts", "--unshare-cgroup-try",
		"--die-with-parent",
		// The command is the namespace's PID 1, so bwrap returns only once
		// the kernel has killed and reaped every process in it (with
		// bwrap's own init it may return before), and the agent never works
		// on the build directory while a job process still runs.
		"--as-pid-1",
	}
	if !s.root {
		a = append(a, "--unshare-user", "--uid", fmt.Sprint(SandboxUID), "--gid", fmt.Sprint(SandboxGID))
	}
	a = append(a, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
		"--perms", "1777", "--tmpfs", "/tmp")
	tmpfs := []string{"/tmp"}
	made := map[string]bool{}
	// dirs creates the missing parents of p inside our tmpfs mounts, world
	// searchable so that the sandbox user can reach what is bound there.
	dirs := func(p string) {
		base := ""
		for _, m := range tmpfs {
			if within(m, p) && m != p && len(m) > len(base) {
				base = m
			}
		}
		if base == "" {
			return
		}
		rel, _ := filepath.Rel(base, p)
		cur := base
		parts := strings.Split(rel, string(filepath.Separator))
		for _, part := range parts[:len(parts)-1] {
			cur = filepath.Join(cur, part)
			if !made[cur] {
				made[cur] = true
				a = append(a, "--perms", "0755", "--dir", cur)
			}
		}
	}
	for _, h := range s.hide {
		dirs(h)
		a = append(a, "--perms", "0755", "--tmpfs", h)
		tmpfs = append(tmpfs, h)
	}
	bind := func(flag, p string) {
		if _, err := os.Stat(p); err != nil {
			return
		}
		dirs(p)
		a = append(a, flag, p, p)
	}
	bind("--bind", s.build)
	bind("--ro-bind", s.tmp)
	for _, p := range c.ReadOnly {
		fi, err := os.Stat(p)
		if err != nil {
			continue
		}
		if !fi.IsDir() || fi.Mode().Perm()&0o005 == 0o005 || !s.root {
			bind("--ro-bind", p)
			continue
		}
		// A directory the sandbox user may not enter (a repository is
		// created 0700): a searchable directory at its place, with its
		// entries bound into it.
		ents, err := os.ReadDir(p)
		if err != nil {
			continue
		}
		dirs(filepath.Join(p, "x"))
		for _, e := range ents {
			bind("--ro-bind", filepath.Join(p, e.Name()))
		}
	}
	// Nothing but the binds is writable below a hidden directory (as an
	// ordinary user the sandbox user owns the tmpfs, and could fill it).
	for _, h := range s.hide {
		a = append(a, "--remount-ro", h)
	}
	for _, m := range s.masks {
		fi, err := os.Lstat(m)
		switch {
		case err != nil:
		case fi.IsDir():
			a = append(a, "--perms", "0755", "--tmpfs", m, "--remount-ro", m)
		default:
			a = append(a, "--ro-bind", "/dev/null", m)
		}
	}
	if c.Dir != "" {
		a = append(a, "--chdir", c.Dir)
	}
	if s.root {
		a = append(a, "--cap-add", "CAP_SETUID,CAP_SETGID", "--", s.setpriv,
			"--reuid", fmt.Sprint(SandboxUID), "--regid", fmt.Sprint(SandboxGID), "--clear-groups",
			"--inh-caps=-all", "--bounding-set=-all")
	}
	a = append(a, "--")
	return append(a, c.Args...)
}

func (s *sandboxSession) Run(ctx context.Context, c Cmd) error {
	c.Env = jobEnv(c.Env)
	if c.Keep && (c.Err == nil || c.Err == c.Out) {
		return s.runKept(ctx, c)
	}
	s.Settle()
	a := s.args(c)
	cmd := exec.Command(a[0], a[1:]...)
	cmd.Env = slices.Clip(c.Env)
	return runCmd(ctx, s.grace, cmd, c.Out, c.Err)
}

// Adopt gives path and everything below it to the sandbox user. Symlinks
// are not followed (Lchown, WalkDir), so a link the job planted cannot
// redirect it; no job process runs while the agent does this.
func (s *sandboxSession) Adopt(path string) error {
	s.Settle()
	if !s.root {
		return nil
	}
	err := filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Uid == SandboxUID && st.Gid == SandboxGID {
			return nil
		}
		return os.Lchown(p, SandboxUID, SandboxGID)
	})
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

func (s *sandboxSession) Cleanup() error { s.Settle(); return nil }

// sandboxed marks sessions whose processes cannot see the host's files.
func (*sandboxSession) sandboxed() bool { return true }

// isSandboxed reports whether s runs the agent's commands in a sandbox, in
// which the server's repositories cannot be read.
func isSandboxed(s ExecSession) bool {
	x, ok := s.(interface{ sandboxed() bool })
	return ok && x.sandboxed()
}

// jobEnv replaces the HOME the agent inherited (not one the job set) by
// the sandbox's private /tmp: the agent's home is not the job's, and as
// uid 65534 not even readable.
func jobEnv(env []string) []string {
	home := "HOME=" + os.Getenv("HOME")
	i := slices.Index(env, home)
	if i < 0 {
		return env
	}
	env = slices.Clone(env)
	env[i] = "HOME=/tmp"
	return env
}
