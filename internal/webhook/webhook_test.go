package webhook

import (
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"
)

func TestVerify(t *testing.T) {
	body := []byte(`{"ref":"refs/heads/main"}`)
	for _, tc := range []struct {
		name   string
		s      Signer
		hdr    map[string]string
		errHas string
	}{
		// HMAC-SHA256("secret", body) computed independently with
		// openssl dgst -sha256 -hmac secret.
		{"github good", Signer{Kind: GitHub, Secret: "secret"}, map[string]string{"X-Hub-Signature-256": "sha256=d8f89f0618acd61fe621aa4e64078c0e2bca15d0b578b7f3eb734f55883c5320"}, ""},
		{"github missing", Signer{Kind: GitHub, Secret: "secret"}, nil, "missing"},
		{"github wrong secret", Signer{Kind: GitHub, Secret: "other"}, map[string]string{"X-Hub-Signature-256": "sha256=" + hmacHex("secret", body)}, "does not match"},
		{"github not hex", Signer{Kind: GitHub, Secret: "secret"}, map[string]string{"X-Hub-Signature-256": "sha256=zz"}, "not hexadecimal"},
		{"github sha1 header only", Signer{Kind: GitHub, Secret: "secret"}, map[string]string{"X-Hub-Signature": "sha1=00"}, "missing"},
		{"gitea good", Signer{Kind: Gitea, Secret: "secret"}, map[string]string{"X-Gitea-Signature": hmacHex("secret", body)}, ""},
		{"gitea wrong", Signer{Kind: Gitea, Secret: "secret"}, map[string]string{"X-Gitea-Signature": hmacHex("x", body)}, "does not match"},
		{"gitlab good", Signer{Kind: GitLab, Secret: "tok"}, map[string]string{"X-Gitlab-Token": "tok"}, ""},
		{"gitlab prefix", Signer{Kind: GitLab, Secret: "tok"}, map[string]string{"X-Gitlab-Token": "to"}, "does not match"},
		{"gitlab missing", Signer{Kind: GitLab, Secret: "tok"}, nil, "missing"},
		{"generic default", Signer{Kind: Generic, Secret: "secret"}, map[string]string{"X-Signature": "sha256=" + hmacHex("secret", body)}, ""},
		{"generic no prefix", Signer{Kind: Generic, Secret: "secret"}, map[string]string{"X-Signature": hmacHex("secret", body)}, ""},
		{"generic custom header", Signer{Kind: Generic, Secret: "secret", Header: "X-Sig", Algorithm: "sha256"}, map[string]string{"X-Signature": "sha256=" + hmacHex("secret", body)}, "X-Sig missing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			for k, v := range tc.hdr {
				h.Set(k, v)
			}
			err := tc.s.Verify(h, body)
			if tc.errHas == "" && err != nil || tc.errHas != "" && (err == nil || !strings.Contains(err.Error(), tc.errHas)) {
				t.Fatalf("Verify: %v, want %q", err, tc.errHas)
			}
		})
	}
}

func hmacHex(secret string, body []byte) string {
	_, v := Signer{Kind: Gitea, Secret: secret}.Sign(body)
	return v
}

func TestCompileErrors(t *testing.T) {
	for _, tc := range []struct {
		spec      Spec
		field     string
		line, col int
	}{
		{Spec{Ref: ""}, "ref", 1, 1},
		{Spec{Ref: "payload.ref", Filter: "payload.x =="}, "filter", 1, 13},
		{Spec{Ref: "1 + 1"}, "ref", 1, 1},
		{Spec{Ref: "'x'", Filter: "'yes'"}, "filter", 1, 1},
		{Spec{Ref: "'x'", SHA: "payload.\n  )"}, "sha", 2, 3},
		{Spec{Ref: "'x'", Variables: map[string]string{"A": "nope"}}, "variables.A", 1, 1},
		{Spec{Ref: "'x'", Inputs: map[string]string{"bad name": "'x'"}}, "inputs.bad name", 1, 1},
		// Inputs are strings, numbers, booleans or lists; not maps.
		{Spec{Ref: "'x'", Inputs: map[string]string{"m": "{'a': 1}"}}, "inputs.m", 1, 1},
		{Spec{Ref: "'x'", Variables: map[string]string{"N": "1"}}, "variables.N", 1, 1},
		{Spec{Ref: "'x'", Inputs: manyInputs(21)}, "inputs", 1, 1},
	} {
		_, err := Compile(tc.spec)
		ee, ok := err.(*ExprError)
		if !ok || ee.Field != tc.field || ee.Line != tc.line || ee.Column != tc.col {
			t.Errorf("Compile(%+v) = %v, want %s at %d:%d", tc.spec, err, tc.field, tc.line, tc.col)
		}
	}
}

func manyInputs(n int) map[string]string {
	m := map[string]string{}
	for i := 0; i < n; i++ {
		m[fmt.Sprintf("i%d", i)] = "'x'"
	}
	return m
}

func TestEvaluate(t *testing.T) {
	p, err := Compile(Spec{Filter: "headers['x-event'] == 'push'", Ref: "payload.ref", SHA: "payload.after",
		Variables: map[string]string{"N": "payload.n"}, Inputs: map[string]string{"Q": "query.q"}})
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{"X-Event": {"push"}}
	vd := p.Evaluate(Input{Headers: h, Query: map[string][]string{"q": {"1"}}, Body: []byte(`{"ref":"refs/tags/v1","after":"abc","n":3}`)})
	if !vd.Run || vd.Ref != "v1" || vd.SHA != "abc" || vd.Variables["N"] != "3" || vd.Inputs["Q"] != "1" {
		t.Fatalf("verdict: %+v", vd)
	}
	vd = p.Evaluate(Input{Headers: http.Header{"X-Event": {"ping"}}, Body: []byte(`{}`)})
	if vd.Run || !vd.Filtered {
		t.Fatalf("filtered verdict: %+v", vd)
	}
	vd = p.Evaluate(Input{Headers: h, Body: []byte(`{}`)})
	if vd.Run || vd.Filtered || !strings.Contains(vd.Reason, "ref") {
		t.Fatalf("missing field: %+v", vd)
	}
	// The cost limit stops an expensive expression.
	heavy, err := Compile(Spec{Ref: "[1,2,3,4,5,6,7,8,9,10].map(a, [1,2,3,4,5,6,7,8,9,10].map(b, [1,2,3,4,5,6,7,8,9,10].map(c, [1,2,3,4,5,6,7,8,9,10].map(d, [1,2,3,4,5,6,7,8,9,10].map(e, a+b+c+d+e))))).size() > 0 ? 'x' : 'y'"})
	if err != nil {
		t.Fatal(err)
	}
	vd = heavy.Evaluate(Input{Body: []byte(`{}`)})
	if vd.Run || !strings.Contains(vd.Reason, "cost") {
		t.Fatalf("cost limit: %+v", vd)
	}
}

// TestEvaluateTypedInputs: an input keeps its expression's type (string,
// number, bool, list); a null leaves the input to its default; a map is
// refused at evaluation.
func TestEvaluateTypedInputs(t *testing.T) {
	body := []byte(`{"n":3,"f":1.5,"ok":true,"tags":["a","b"],"objs":[{"k":1}],"s":"x","nothing":null,"obj":{"a":1}}`)
	for _, tc := range []struct {
		expr    string
		want    any
		errHas  string
		compile string
	}{
		{expr: "payload.s", want: "x"},
		{expr: "payload.n", want: float64(3)},
		{expr: "int(payload.n) + 1", want: int64(4)},
		{expr: "2u", want: int64(2)},
		{expr: "payload.f", want: 1.5},
		{expr: "payload.ok", want: true},
		{expr: "!payload.ok", want: false},
		{expr: "payload.tags", want: []any{"a", "b"}},
		{expr: "[1, 'two', true]", want: []any{int64(1), "two", true}},
		{expr: "payload.objs", want: []any{map[string]any{"k": float64(1)}}},
		{expr: "payload.nothing", want: nil},
		{expr: "payload.obj", errHas: "not a string, number, boolean or list"},
		{expr: "payload.missing", errHas: "inputs.I"},
		{expr: "{'a': 1}", compile: "must be a"},
	} {
		t.Run(tc.expr, func(t *testing.T) {
			p, err := Compile(Spec{Ref: "'main'", Inputs: map[string]string{"I": tc.expr}})
			if tc.compile != "" {
				if err == nil || !strings.Contains(err.Error(), tc.compile) {
					t.Fatalf("Compile: %v, want %q", err, tc.compile)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			vd := p.Evaluate(Input{Body: body})
			if tc.errHas != "" {
				if vd.Run || !strings.Contains(vd.Reason, tc.errHas) {
					t.Fatalf("verdict %+v, want a refusal with %q", vd, tc.errHas)
				}
				return
			}
			if !vd.Run || !reflect.DeepEqual(vd.Inputs["I"], tc.want) {
				t.Fatalf("inputs = %#v (%T), want %#v", vd.Inputs["I"], vd.Inputs["I"], tc.want)
			}
		})
	}
}

func TestRedactAndCIDRs(t *testing.T) {
	h := http.Header{"X-Gitlab-Token": {"tok"}, "X-My-Sig": {"abc"}, "User-Agent": {"ua"}, "Authorization": {"Bearer x"}}
	got := RedactHeaders(h, "x-my-sig")
	if got["X-Gitlab-Token"] != Redacted || got["X-My-Sig"] != Redacted || got["Authorization"] != Redacted || got["User-Agent"] != "ua" {
		t.Fatalf("redacted: %v", got)
	}
	nets, err := ParseCIDRs([]string{"10.0.0.0/8", "192.168.1.7", "::1/128"})
	if err != nil {
		t.Fatal(err)
	}
	for ip, want := range map[string]bool{"10.2.3.4": true, "192.168.1.7": true, "192.168.1.8": false, "::1": true, "::ffff:10.0.0.1": true, "x": false} {
		if Allowed(nets, ip) != want {
			t.Errorf("Allowed(%s) != %v", ip, want)
		}
	}
	if _, err := ParseCIDRs([]string{"10.0.0.0/33"}); err == nil {
		t.Error("bad CIDR accepted")
	}
}
