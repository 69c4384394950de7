package testenv

import (
	"syscall"
	"testing"
)

// Pause freezes the SeaweedFS this test started (SIGSTOP to its process
// group): connections are still accepted by the kernel, nothing answers,
// the outage that hangs clients without timeouts. Resume ends it; the
// cleanup resumes a paused server before stopping it.
func (s *S3Server) Pause(t testing.TB) {
	t.Helper()
	if s.weed == "" || s.cmd == nil {
		t.Fatal("Pause: the S3 server is not a running one this test started")
	}
	if err := syscall.Kill(-s.cmd.Process.Pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.resume() })
}

// Resume continues a server frozen by Pause.
func (s *S3Server) Resume(t testing.TB) {
	t.Helper()
	if err := s.resume(); err != nil {
		t.Fatal(err)
	}
}

func (s *S3Server) resume() error {
	if s.cmd == nil {
		return nil
	}
	return syscall.Kill(-s.cmd.Process.Pid, syscall.SIGCONT)
}
