package runner

import "syscall"

// jobProcAttr puts a job process in its own process group and has the
// kernel kill it if the runner dies (kill -9, OOM): a crashed runner must
// not leave scripts running that nobody reports on.
func jobProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
