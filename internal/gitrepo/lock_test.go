package gitrepo

import (
	"log/slog"
	"path/filepath"
	"testing"
	"time"
)

// TestWriteLockAcrossStores: two Stores on one root (two replicas sharing
// the repositories volume) serialize their writes to a repository; writes
// to another repository do not wait.
func TestWriteLockAcrossStores(t *testing.T) {
	root := filepath.Join(t.TempDir(), "repos")
	a, err := New(root, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(root, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		held    []string
		want    []string
		blocked bool
	}{
		{"same repository", []string{"g/app"}, []string{"g/app"}, true},
		{"rename target held", []string{"g/new"}, []string{"g/app", "g/new"}, true},
		{"other repository", []string{"g/app"}, []string{"g/other"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			unlockA := a.lockWrite(tc.held...)
			got := make(chan func(), 1)
			go func() { got <- b.lockWrite(tc.want...) }()
			select {
			case unlockB := <-got:
				if tc.blocked {
					unlockB()
					unlockA()
					t.Fatal("the other store took the lock while it was held")
				}
				unlockB()
				unlockA()
				return
			case <-time.After(300 * time.Millisecond):
				if !tc.blocked {
					unlockA()
					<-got
					t.Fatal("a write to another repository waited")
				}
			}
			unlockA()
			select {
			case unlockB := <-got:
				unlockB()
			case <-time.After(5 * time.Second):
				t.Fatal("the lock was not handed over after release")
			}
		})
	}
}
