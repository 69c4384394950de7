package trigger

import (
	"testing"
	"time"
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
