package auth

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/kilnci/kiln/internal/store"
	"github.com/kilnci/kiln/internal/testenv"
)

// replicaThrottles returns, per database, two throttles sharing one store
// (two replicas) on a common fake clock.
func replicaThrottles(t *testing.T, cfg ThrottleConfig, now *time.Time) map[string][2]*Throttle {
	t.Helper()
	ctx := context.Background()
	sq, err := store.Open(ctx, filepath.Join(t.TempDir(), "kiln.db"), nil, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sq.Close() })
	pg, err := store.Open(ctx, testenv.PostgresDSN(t), nil, store.Options{Schema: testenv.UniqueName("kiln_auth")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pg.DropSchema(ctx); pg.Close() })
	out := map[string][2]*Throttle{}
	for kind, st := range map[string]*store.Store{"sqlite": sq, "postgres": pg} {
		var pair [2]*Throttle
		for i := range pair {
			c := cfg
			c.Shared = st
			c.OnError = func(err error) { t.Errorf("%s: shared throttle: %v", kind, err) }
			pair[i] = NewThrottle(c)
			pair[i].now = func() time.Time { return *now }
		}
		out[kind] = pair
	}
	return out
}

// TestSharedThrottleLockout: failures recorded by either of two replicas
// count toward one lock, which both see; a success on one clears it for
// both. Without the shared store each replica would count alone.
func TestSharedThrottleLockout(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	for kind, th := range replicaThrottles(t, ThrottleConfig{MaxAttempts: 4, LockFor: 10 * time.Minute, AddressBurst: 100, AddressPerMinute: 1}, &now) {
		t.Run(kind, func(t *testing.T) {
			now = time.Unix(1_800_000_000, 0)
			steps := []struct {
				name       string
				advance    time.Duration
				fail       string
				succeed    string
				wantLocked bool
			}{
				{"one failure", 0, "Alice", "", false},
				{"two", 0, "alice", "", false},
				{"three", 0, "alice", "", false},
				{"fourth locks (names are case-insensitive)", 0, " ALICE ", "", true},
				{"still locked after 9 minutes", 9 * time.Minute, "", "", true},
				{"failures while locked do not prolong it", 0, "alice", "", true},
				{"unlocked after 10", 61 * time.Second, "", "", false},
				{"counting starts afresh", 0, "alice", "", false},
				{"success resets", 0, "", "alice", false},
				{"three more do not lock", 0, "alice", "", false},
				{"", 0, "alice", "", false},
				{"", 0, "alice", "", false},
			}
			for i, s := range steps {
				now = now.Add(s.advance)
				if s.fail != "" {
					th[i%2].Fail("1.2.3.4", s.fail)
				}
				if s.succeed != "" {
					th[i%2].Succeed(s.succeed)
				}
				for r := range th {
					if locked, _ := th[r].AccountLocked("alice"); locked != s.wantLocked {
						t.Fatalf("step %d %s: replica %d locked=%v", i, s.name, r, locked)
					}
				}
			}
			if locked, _ := th[0].AccountLocked("bob"); locked {
				t.Fatal("another name locked")
			}
		})
	}
}

// TestSharedThrottleAddress: an address's failures on two replicas use
// one budget.
func TestSharedThrottleAddress(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	for kind, th := range replicaThrottles(t, ThrottleConfig{AddressBurst: 4, AddressPerMinute: 60}, &now) {
		t.Run(kind, func(t *testing.T) {
			now = time.Unix(1_800_000_000, 0)
			for i := range 4 {
				if b, _ := th[i%2].AddressBlocked("a"); b {
					t.Fatalf("blocked after %d", i)
				}
				th[i%2].Fail("a", "")
			}
			for r := range th {
				if b, retry := th[r].AddressBlocked("a"); !b || retry < time.Second {
					t.Fatalf("replica %d: not blocked: %v %v", r, b, retry)
				}
			}
			if b, _ := th[0].AddressBlocked("b"); b {
				t.Fatal("other address blocked")
			}
			now = now.Add(2 * time.Second)
			if b, _ := th[1].AddressBlocked("a"); b {
				t.Fatal("no refill")
			}
		})
	}
}
