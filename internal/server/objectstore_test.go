package server

import "testing"

func TestMigratedKey(t *testing.T) {
	for key, want := range map[string]bool{
		"artifacts/12/artifacts.zip":     true,
		"artifacts/12/my archive.zip":    true,
		"artifacts/12/.upload-123":       false, // an interrupted upload of an older version
		"artifacts/x/a.zip":              false,
		"artifacts/0/a.zip":              false,
		"artifacts/12/sub/a.zip":         false,
		"traces/12.log":                  true,
		"traces/12.cut":                  false, // a live log's marker
		"traces/abc.log":                 false,
		"traces/12.log.tmp":              false,
		"repositories/root/app.git/HEAD": false,
		"kiln.db":                        false,
	} {
		if got := migratedKey(key); got != want {
			t.Errorf("migratedKey(%q) = %v, want %v", key, got, want)
		}
	}
}
