package server

import "testing"

// TestBuiltinRunnerSuffix: a restart (same data dir, same listen address)
// recognizes its previous run's built-in runners; a second replica on the
// same host and data dir (another address) does not take them for its own.
func TestBuiltinRunnerSuffix(t *testing.T) {
	a := builtinRunnerSuffix("/srv/kiln", "0.0.0.0:8080")
	if a != builtinRunnerSuffix("/srv/kiln", "0.0.0.0:8080") {
		t.Error("suffix changes across restarts")
	}
	for _, other := range []string{builtinRunnerSuffix("/srv/kiln", "0.0.0.0:8081"), builtinRunnerSuffix("/srv/kiln2", "0.0.0.0:8080")} {
		if other == a {
			t.Errorf("two servers share the suffix %q", a)
		}
	}
}
