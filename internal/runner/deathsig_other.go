//go:build !linux

package runner

import "syscall"

// jobProcAttr puts a job process in its own process group.
func jobProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
