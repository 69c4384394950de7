package auth

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestThrottleLockout(t *testing.T) {
	now := time.Unix(1000, 0)
	th := NewThrottle(ThrottleConfig{MaxAttempts: 3, LockFor: 10 * time.Minute, AddressBurst: 100, AddressPerMinute: 1})
	th.now = func() time.Time { return now }
	steps := []struct {
		name       string
		advance    time.Duration
		fail       string
		succeed    string
		wantLocked bool
	}{
		{"one failure", 0, "Alice", "", false},
		{"two", 0, "alice", "", false},
		{"third locks (names are case-insensitive)", 0, " ALICE ", "", true},
		{"still locked after 9 minutes", 9 * time.Minute, "", "", true},
		{"unlocked after 10", 61 * time.Second, "", "", false},
		{"counting starts afresh", 0, "alice", "", false},
		{"success resets", 0, "", "alice", false},
		{"two more do not lock", 0, "alice", "", false},
	}
	for _, s := range steps {
		now = now.Add(s.advance)
		if s.fail != "" {
			th.Fail("1.2.3.4", s.fail)
		}
		if s.succeed != "" {
			th.Succeed(s.succeed)
		}
		if locked, _ := th.AccountLocked("alice"); locked != s.wantLocked {
			t.Fatalf("%s: locked=%v", s.name, locked)
		}
	}
}

func TestThrottleAddress(t *testing.T) {
	now := time.Unix(1000, 0)
	th := NewThrottle(ThrottleConfig{AddressBurst: 3, AddressPerMinute: 60})
	th.now = func() time.Time { return now }
	for i := 0; i < 3; i++ {
		if b, _ := th.AddressBlocked("a"); b {
			t.Fatalf("blocked after %d", i)
		}
		th.Fail("a", "")
	}
	if b, retry := th.AddressBlocked("a"); !b || retry < time.Second {
		t.Fatalf("not blocked: %v %v", b, retry)
	}
	if b, _ := th.AddressBlocked("b"); b {
		t.Fatal("other address blocked")
	}
	now = now.Add(2 * time.Second)
	if b, _ := th.AddressBlocked("a"); b {
		t.Fatal("no refill")
	}
}

func TestThrottleBoundsParallelHashing(t *testing.T) {
	th := NewThrottle(ThrottleConfig{Parallel: 1, Wait: 50 * time.Millisecond})
	th.sem <- struct{}{} // one check in progress
	if _, err := th.CheckPassword(context.Background(), "x", "y"); !errors.Is(err, ErrBusy) {
		t.Fatalf("err %v", err)
	}
	<-th.sem
	h, _ := HashPassword("secret")
	// Many at once all complete, never more than Parallel at a time.
	var wg sync.WaitGroup
	slow := NewThrottle(ThrottleConfig{Parallel: 2, Wait: time.Minute})
	for i := 0; i < 6; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if len(slow.sem) > 2 {
				t.Error("more than 2 in flight")
			}
			slow.CheckPassword(context.Background(), h, "wrong")
		}()
	}
	wg.Wait()
	if ok, err := th.CheckPassword(context.Background(), h, "secret"); !ok || err != nil {
		t.Fatalf("%v %v", ok, err)
	}
}

func TestThrottleForgetsFloodOfNames(t *testing.T) {
	th := NewThrottle(ThrottleConfig{MaxEntries: 100})
	for i := 0; i < 10000; i++ {
		th.Fail("a", string(rune('a'+i%26))+string(rune(i)))
	}
	th.mu.Lock()
	n := len(th.accounts) + len(th.addrs)
	th.mu.Unlock()
	if n > 200 {
		t.Fatalf("%d entries kept", n)
	}
}

func TestThrottleKeys(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"192.0.2.7", "192.0.2.7"},
		{"::ffff:192.0.2.7", "192.0.2.7"},
		{"2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"},
		{"2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"},
		{"fe80::1%eth0", "fe80::/64"},
		{"not-an-address", "not-an-address"},
	} {
		if got := addrKey(c.in); got != c.want {
			t.Errorf("addrKey(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	if got := accountKey(" Alice "); got != "alice" {
		t.Errorf("accountKey: %q", got)
	}
	long := strings.Repeat("x", 5000)
	if got := accountKey(long); len(got) > maxAccountKey || got != accountKey(strings.ToUpper(long)) {
		t.Errorf("accountKey of a 5000-character name: %d characters", len(got))
	}
	if got := accountKey(strings.Repeat("y", maxAccountKey)); got != strings.Repeat("y", maxAccountKey) {
		t.Errorf("a 255-character name is hashed")
	}
}

// TestThrottleAddressIPv6Prefix: failures from addresses rotating through
// one IPv6 /64 share one budget, as one host's would.
func TestThrottleAddressIPv6Prefix(t *testing.T) {
	now := time.Unix(1000, 0)
	th := NewThrottle(ThrottleConfig{AddressBurst: 3, AddressPerMinute: 60})
	th.now = func() time.Time { return now }
	for i := range 3 {
		ip := fmt.Sprintf("2001:db8:0:1::%x", i+1)
		if b, _ := th.AddressBlocked(ip); b {
			t.Fatalf("blocked after %d", i)
		}
		th.Fail(ip, "")
	}
	if b, _ := th.AddressBlocked("2001:db8:0:1::ffff"); !b {
		t.Fatal("another address of the /64 has a fresh budget")
	}
	if b, _ := th.AddressBlocked("2001:db8:0:2::1"); b {
		t.Fatal("another /64 blocked")
	}
}
