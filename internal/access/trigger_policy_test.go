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

func TestTriggerVariablesDenial(t *testing.T) {
	for _, c := range []struct {
		allowed bool
		names   []string
		sent    []string
		denied  bool
	}{
		{true, nil, nil, false},
		{true, nil, []string{"A", "B"}, false},
		{false, nil, nil, false},
		{false, nil, []string{"A"}, true},
		{false, []string{"A"}, []string{"A"}, true},
		{true, []string{"A", "B"}, []string{"B"}, false},
		{true, []string{"A"}, []string{"A", "B"}, true},
		{true, []string{"A"}, []string{"a"}, true},
		{true, []string{"A"}, nil, false},
	} {
		msg, reason := TriggerVariablesDenial(c.allowed, c.names, c.sent)
		if (msg != "") != c.denied || (msg == "") != (reason == "") {
			t.Errorf("%v %v %v: msg %q reason %q, want denied=%v", c.allowed, c.names, c.sent, msg, reason, c.denied)
		}
	}
}

func TestPipelineVariablesDenial(t *testing.T) {
	for _, c := range []struct {
		level  int
		role   string
		sent   []string
		denied bool
	}{
		{Developer, "", []string{"A"}, false},
		{Developer, "developer", []string{"A"}, false},
		{Reporter, "developer", []string{"A"}, true},
		{Developer, "maintainer", []string{"A"}, true},
		{Maintainer, "maintainer", []string{"A"}, false},
		{Maintainer, "owner", []string{"A"}, true},
		{Owner, "owner", []string{"A"}, false},
		{Owner, "no_one_allowed", []string{"A"}, true},
		{Owner, "no_one_allowed", nil, false},
		{Owner, "bogus", []string{"A"}, true},
	} {
		msg, reason := PipelineVariablesDenial(c.level, c.role, c.sent)
		if (msg != "") != c.denied || (msg == "") != (reason == "") {
			t.Errorf("%d %q %v: msg %q reason %q, want denied=%v", c.level, c.role, c.sent, msg, reason, c.denied)
		}
	}
	for r, ok := range map[string]bool{"no_one_allowed": true, "developer": true, "maintainer": true, "owner": true, "guest": false, "": false} {
		if ValidPipelineVariablesRole(r) != ok {
			t.Errorf("ValidPipelineVariablesRole(%q) != %v", r, ok)
		}
	}
}
