package httplimit

import (
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestGuardLongLivedCaps(t *testing.T) {
	cases := []struct {
		name             string
		class            Class
		total, perClient int
		clients          []string
		wantOK           []bool
	}{
		{"per client", LongLived, 10, 2, []string{"a", "a", "a", "b"}, []bool{true, true, false, true}},
		{"total", LongLived, 3, 5, []string{"a", "b", "c", "d"}, []bool{true, true, true, false}},
		{"polls: total only", Poll, 3, 1, []string{"a", "a", "a", "a"}, []bool{true, true, true, false}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g := NewGuard(Config{MaxLongLived: c.total, MaxLongLivedPerClient: c.perClient}.WithDefaults(1024), func(*http.Request) Class { return c.class })
			release := make(chan struct{})
			started := make(chan struct{}, len(c.clients))
			h := g.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				started <- struct{}{}
				<-release
			}))
			codes := make(chan int, len(c.clients))
			for i, cl := range c.clients {
				req := httptest.NewRequest("GET", "/x", nil)
				req.RemoteAddr = cl + ":1"
				rec := httptest.NewRecorder()
				done := make(chan struct{})
				go func() { h.ServeHTTP(rec, req); codes <- rec.Code; close(done) }()
				select {
				case <-started:
					if !c.wantOK[i] {
						t.Fatalf("request %d admitted", i)
					}
				case <-done:
					if c.wantOK[i] || rec.Code != http.StatusTooManyRequests {
						t.Fatalf("request %d: %d", i, rec.Code)
					}
				case <-time.After(5 * time.Second):
					t.Fatal("stuck")
				}
			}
			close(release)
			for range c.clients {
				<-codes
			}
			if g.LongLived() != 0 {
				t.Fatalf("slots leaked: %d", g.LongLived())
			}
		})
	}
}

func TestListenerEvictsIdleFirst(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := NewListener(raw, 2)
	l.staleNew = time.Hour
	accepted := make(chan net.Conn, 10)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	defer l.Close()
	dial := func() net.Conn {
		c, err := net.Dial("tcp", raw.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	dial()
	a := <-accepted
	dial()
	b := <-accepted
	l.ConnState(a, http.StateActive)
	l.ConnState(b, http.StateIdle)
	// Both busy or idle: the third evicts b (idle), not a (active).
	dial()
	<-accepted
	if open, _, evicted := l.Stats(); open != 2 || evicted != 1 {
		t.Fatalf("open %d evicted %d", open, evicted)
	}
	if _, err := b.Write([]byte("x")); err == nil {
		if _, err := b.Read(make([]byte, 1)); err == nil {
			t.Fatal("idle connection was not closed")
		}
	}
	// All busy: a fourth is refused.
	for c := range l.conns {
		l.ConnState(c, http.StateActive)
	}
	c4 := dial()
	c4.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c4.Read(make([]byte, 1)); err == nil {
		t.Fatal("read from refused connection")
	}
	if _, refused, _ := l.Stats(); refused != 1 {
		t.Fatalf("refused %d", refused)
	}
}

func TestListenerEvictsFromTheHoarder(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := NewListener(raw, 4)
	accepted := make(chan net.Conn, 10)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	defer l.Close()
	dialFrom := func(ip string) net.Conn {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
		c, err := d.Dial("tcp", raw.Addr().String())
		if err != nil {
			t.Skipf("cannot dial from %s: %v", ip, err)
		}
		t.Cleanup(func() { c.Close() })
		s := <-accepted
		l.ConnState(s, http.StateIdle)
		return s
	}
	victim := dialFrom("127.0.0.1") // idle longest, but its client holds one
	for i := 0; i < 3; i++ {
		dialFrom("127.0.0.2")
	}
	dialFrom("127.0.0.3")
	l.mu.Lock()
	_, kept := l.conns[victim.(*conn)]
	n2 := l.byAddr["127.0.0.2"]
	l.mu.Unlock()
	if !kept || n2 != 2 {
		t.Fatalf("evicted the lone client's connection (kept=%v, hoarder has %d)", kept, n2)
	}
}
