package access

import "testing"

func TestTriggerTokenDenial(t *testing.T) {
	for _, c := range []struct {
		refs, cidrs []string
		ip, ref     string
		denied      bool
	}{
		{nil, nil, "203.0.113.9", "main", false},
		{nil, []string{"10.0.0.0/8"}, "10.1.2.3", "main", false},
		{nil, []string{"10.0.0.0/8"}, "11.1.2.3", "main", true},
		{nil, []string{"10.0.0.0/8"}, "::ffff:10.1.2.3", "main", false},
		{nil, []string{"2001:db8::/32"}, "2001:db8::1", "main", false},
		{nil, []string{"10.0.0.0/8"}, "not-an-ip", "main", true},
		{[]string{"release-*"}, nil, "1.2.3.4", "release-1.2", false},
		{[]string{"release-*"}, nil, "1.2.3.4", "refs/heads/release-1.2", false},
		{[]string{"release-*"}, nil, "1.2.3.4", "main", true},
		{[]string{"release-*"}, nil, "1.2.3.4", "xrelease-1", true},
		{[]string{"main", "deploy/*"}, []string{"127.0.0.1/32"}, "127.0.0.1", "deploy/eu/1", false},
	} {
		msg, reason := TriggerTokenDenial(c.refs, c.cidrs, c.ip, c.ref)
		if (msg != "") != c.denied || (msg == "") != (reason == "") {
			t.Errorf("%v %v %s %s: msg %q reason %q, want denied=%v", c.refs, c.cidrs, c.ip, c.ref, msg, reason, c.denied)
		}
	}
}
