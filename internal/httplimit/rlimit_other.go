//go:build !unix

package httplimit

// RaiseFileLimit is a no-op where descriptor limits are not rlimits.
func RaiseFileLimit() int { return 0 }
