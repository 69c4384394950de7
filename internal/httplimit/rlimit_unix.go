//go:build unix

package httplimit

import "golang.org/x/sys/unix"

// RaiseFileLimit lifts the soft limit on open descriptors to the hard
// limit and returns the soft limit now in force (0 if unknown).
func RaiseFileLimit() int {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return 0
	}
	if lim.Cur < lim.Max {
		want := lim
		want.Cur = lim.Max
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &want); err == nil {
			lim = want
		}
	}
	if lim.Cur > 1<<20 {
		return 1 << 20
	}
	return int(lim.Cur)
}
