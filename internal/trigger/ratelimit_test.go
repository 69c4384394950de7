package trigger

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/kilnci/kiln/internal/store"
	"github.com/kilnci/kiln/internal/testenv"
)

func TestLimitersPerKeyRate(t *testing.T) {
	var ls Limiters
	for i := 0; i < 2; i++ {
		if ok, _ := ls.Allow("a", 2); !ok {
			t.Fatalf("call %d refused", i)
		}
	}
	if ok, retry := ls.Allow("a", 2); ok || retry < time.Second {
		t.Fatalf("third call: ok=%v retry=%v", ok, retry)
	}
	if ok, _ := ls.Allow("b", 2); !ok {
		t.Fatalf("another key shares the bucket")
	}
	for i := 0; i < 100; i++ {
		if ok, _ := ls.Allow("c", 0); !ok {
			t.Fatalf("rate 0 limits")
		}
	}
}

// sharedStores opens a SQLite store and, where PostgreSQL is available,
// a PostgreSQL one, for limiters that share their buckets.
func sharedStores(t *testing.T) map[string]*store.Store {
	t.Helper()
	out := map[string]*store.Store{}
	s, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "kiln.db"), nil, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	out["sqlite"] = s
	p, err := store.Open(context.Background(), testenv.PostgresDSN(t), nil, store.Options{Schema: testenv.UniqueName("kiln_trigger")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.DropSchema(context.Background()); p.Close() })
	out["postgres"] = p
	return out
}

// TestSharedLimiters: two limiters sharing one store (two replicas) grant
// the burst once between them, and Blocked on one sees the failures the
// other took within PeekFor.
func TestSharedLimiters(t *testing.T) {
	for kind, st := range sharedStores(t) {
		t.Run(kind, func(t *testing.T) {
			now := time.Unix(1_800_000_000, 0)
			clock := func() time.Time { return now }
			var errs []error
			onErr := func(err error) { errs = append(errs, err) }
			a := NewLimiter(3, 3).Share(st, "creates", onErr)
			b := NewLimiter(3, 3).Share(st, "creates", onErr)
			a.Now, b.Now = clock, clock
			granted := 0
			for i := range 8 {
				if ok, _ := []*Limiter{a, b}[i%2].Allow("p1"); ok {
					granted++
				}
			}
			if granted != 3 {
				t.Fatalf("%d granted across two limiters, want 3", granted)
			}
			if ok, retry := b.Allow("p1"); ok || retry < 20*time.Second {
				t.Fatalf("after the burst: ok=%v retry=%s", ok, retry)
			}
			// Failures taken on a are seen by b's Blocked once its last
			// read is older than PeekFor.
			fa := NewLimiter(2, 2).Share(st, "failures", onErr)
			fb := NewLimiter(2, 2).Share(st, "failures", onErr)
			fa.Now, fb.Now = clock, clock
			if blocked, _, _ := fb.Blocked("ip"); blocked {
				t.Fatal("blocked before any failure")
			}
			fa.Take("ip")
			fa.Take("ip")
			if blocked, _, _ := fa.Blocked("ip"); !blocked {
				t.Fatal("the limiter that took the failures does not block")
			}
			now = now.Add(PeekFor)
			if blocked, retry, first := fb.Blocked("ip"); !blocked || !first || retry < time.Second {
				t.Fatalf("other limiter: blocked=%v first=%v retry=%s", blocked, first, retry)
			}
			if len(errs) > 0 {
				t.Fatal(errs)
			}
			// A per-key rate (trigger tokens): shared too.
			la := Limiters{Shared: st, Scope: "token"}
			lb := Limiters{Shared: st, Scope: "token"}
			if ok, _ := la.Allow("7", 1); !ok {
				t.Fatal("first call refused")
			}
			if ok, _ := lb.Allow("7", 1); ok {
				t.Fatal("the other replica granted a second call")
			}
		})
	}
}
