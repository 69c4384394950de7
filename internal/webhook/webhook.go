// Package webhook is the core of Kiln's webhook triggers: signature
// verification per sender kind, the CEL filter and mapping (compiled and
// type-checked when saved, evaluated under a cost limit), delivery ids for
// deduplication and header redaction. It knows no SQL and serves no HTTP.
package webhook

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"maps"
	"math"
	"net/http"
	"net/netip"
	"net/url"
	"reflect"
	"regexp"
	"slices"
	"strings"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/common/types/traits"

	"github.com/kilnci/kiln/internal/ciconfig"
)

// Kinds of senders.
const (
	GitHub  = "github"
	GitLab  = "gitlab"
	Gitea   = "gitea"
	Generic = "generic"
)

// ValidKind reports whether k is a known sender kind.
func ValidKind(k string) bool { return k == GitHub || k == GitLab || k == Gitea || k == Generic }

// Algorithms a generic sender may sign with.
var algorithms = map[string]func() hash.Hash{"sha1": sha1.New, "sha256": sha256.New, "sha512": sha512.New}

// ValidAlgorithm reports whether a is a supported generic HMAC algorithm.
func ValidAlgorithm(a string) bool { _, ok := algorithms[a]; return ok }

// Signer says how a trigger's requests are verified.
type Signer struct {
	Kind   string
	Secret string
	// Header and Algorithm are the generic kind's signature header (default
	// X-Signature) and HMAC algorithm (default sha256).
	Header, Algorithm string
}

// ErrSignature is a missing or wrong signature.
var ErrSignature = errors.New("signature")

// Verify checks the request's signature over the raw body. The error says
// what was wrong (missing header, malformed, mismatch) without any secret.
func (s Signer) Verify(h http.Header, body []byte) error {
	switch s.Kind {
	case GitHub:
		return verifyHMAC(h, "X-Hub-Signature-256", "sha256=", sha256.New, s.Secret, body)
	case Gitea:
		return verifyHMAC(h, "X-Gitea-Signature", "", sha256.New, s.Secret, body)
	case GitLab:
		got := h.Get("X-Gitlab-Token")
		if got == "" {
			return fmt.Errorf("%w: X-Gitlab-Token missing", ErrSignature)
		}
		if subtle.ConstantTimeCompare([]byte(got), []byte(s.Secret)) != 1 {
			return fmt.Errorf("%w: X-Gitlab-Token does not match", ErrSignature)
		}
		return nil
	case Generic:
		alg := s.Algorithm
		if alg == "" {
			alg = "sha256"
		}
		nh, ok := algorithms[alg]
		if !ok {
			return fmt.Errorf("%w: unknown algorithm %q", ErrSignature, alg)
		}
		hdr := s.Header
		if hdr == "" {
			hdr = "X-Signature"
		}
		return verifyHMAC(h, hdr, alg+"=", nh, s.Secret, body)
	}
	return fmt.Errorf("%w: unknown kind %q", ErrSignature, s.Kind)
}

// verifyHMAC checks header = [prefix]hex(HMAC(secret, body)); the prefix
// is optional for the generic kind's senders.
func verifyHMAC(h http.Header, header, prefix string, nh func() hash.Hash, secret string, body []byte) error {
	got := h.Get(header)
	if got == "" {
		return fmt.Errorf("%w: %s missing", ErrSignature, header)
	}
	got = strings.TrimPrefix(got, prefix)
	sig, err := hex.DecodeString(got)
	if err != nil {
		return fmt.Errorf("%w: %s is not hexadecimal", ErrSignature, header)
	}
	m := hmac.New(nh, []byte(secret))
	m.Write(body)
	if !hmac.Equal(sig, m.Sum(nil)) {
		return fmt.Errorf("%w: %s does not match the body", ErrSignature, header)
	}
	return nil
}

// Sign returns the header and value a sender of this kind would send for
// body (the test endpoint and tests use it).
func (s Signer) Sign(body []byte) (string, string) {
	mac := func(nh func() hash.Hash) string {
		m := hmac.New(nh, []byte(s.Secret))
		m.Write(body)
		return hex.EncodeToString(m.Sum(nil))
	}
	switch s.Kind {
	case GitHub:
		return "X-Hub-Signature-256", "sha256=" + mac(sha256.New)
	case Gitea:
		return "X-Gitea-Signature", mac(sha256.New)
	case GitLab:
		return "X-Gitlab-Token", s.Secret
	}
	alg, hdr := s.Algorithm, s.Header
	if alg == "" {
		alg = "sha256"
	}
	if hdr == "" {
		hdr = "X-Signature"
	}
	return hdr, alg + "=" + mac(algorithms[alg])
}

// DeliveryID is the sender's id of a delivery (the same on a redelivery),
// or "".
func DeliveryID(h http.Header) string {
	for _, k := range []string{"X-GitHub-Delivery", "X-Gitlab-Event-UUID", "X-Gitea-Delivery"} {
		if v := h.Get(k); v != "" {
			if len(v) > 200 {
				v = v[:200]
			}
			return v
		}
	}
	return ""
}

// secretHeaders are never stored (their values are replaced).
var secretHeaders = map[string]bool{
	"Authorization": true, "Cookie": true, "Private-Token": true, "Job-Token": true,
	"X-Gitlab-Token": true, "X-Hub-Signature": true, "X-Hub-Signature-256": true,
	"X-Gitea-Signature": true, "X-Gogs-Signature": true, "X-Signature": true, "Proxy-Authorization": true,
}

// Redacted is the value stored in place of a secret header's.
const Redacted = "[REDACTED]"

// RedactHeaders returns the headers to store: one value per name (the
// first), secret ones (and the generic kind's signature header) redacted.
func RedactHeaders(h http.Header, extra string) map[string]string {
	out := map[string]string{}
	for k, vs := range h {
		if len(vs) == 0 {
			continue
		}
		ck := http.CanonicalHeaderKey(k)
		v := vs[0]
		if secretHeaders[ck] || (extra != "" && ck == http.CanonicalHeaderKey(extra)) {
			v = Redacted
		}
		if len(v) > 1024 {
			v = v[:1024]
		}
		out[ck] = v
	}
	return out
}

// ParseCIDRs parses allowed source networks (an empty list allows all).
func ParseCIDRs(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range list {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if !strings.Contains(s, "/") {
			a, err := netip.ParseAddr(s)
			if err != nil {
				return nil, fmt.Errorf("%q is not an address or CIDR", s)
			}
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("%q is not an address or CIDR", s)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// Allowed reports whether ip is in one of nets (or nets is empty).
func Allowed(nets []netip.Prefix, ip string) bool {
	if len(nets) == 0 {
		return true
	}
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return false
	}
	a = a.Unmap()
	for _, n := range nets {
		if n.Contains(a) {
			return true
		}
	}
	return false
}

// Spec is a trigger's expressions, as saved.
type Spec struct {
	Filter    string            // bool; empty: always run
	Ref       string            // string, required
	SHA       string            // string; empty: the ref's tip
	Variables map[string]string // name -> string expression
	// Inputs are name -> expression for the ref's `spec:inputs`; an
	// expression keeps its type (string, number, bool or list), which the
	// configuration's spec then checks.
	Inputs map[string]string
}

// ExprError is an expression that does not compile or type-check.
type ExprError struct {
	Field        string // filter, ref, sha, variables.NAME, inputs.NAME
	Line, Column int    // 1-based position in the expression
	Msg          string
}

func (e *ExprError) Error() string {
	return fmt.Sprintf("%s: line %d, column %d: %s", e.Field, e.Line, e.Column, e.Msg)
}

// CostLimit bounds the work of one expression's evaluation (CEL's cost
// units: roughly one per operation, more for string and list work).
const CostLimit = 100000

// MaxExpr bounds an expression's length.
const MaxExpr = 4096

var varName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,254}$`)

// Program is a compiled Spec.
type Program struct {
	filter, ref, sha cel.Program
	filterSrc        string
	vars, inputs     map[string]cel.Program
}

func newEnv() (*cel.Env, error) {
	return cel.NewEnv(
		cel.Variable("headers", cel.MapType(cel.StringType, cel.StringType)),
		cel.Variable("query", cel.MapType(cel.StringType, cel.StringType)),
		cel.Variable("payload", cel.DynType),
	)
}

// Compile parses and type-checks every expression of s; the first error is
// an *ExprError with its position.
func Compile(s Spec) (*Program, error) {
	env, err := newEnv()
	if err != nil {
		return nil, err
	}
	p := &Program{vars: map[string]cel.Program{}, inputs: map[string]cel.Program{}}
	one := func(field, src string, want ...*cel.Type) (cel.Program, error) {
		if len(src) > MaxExpr {
			return nil, &ExprError{Field: field, Line: 1, Column: 1, Msg: fmt.Sprintf("expression longer than %d characters", MaxExpr)}
		}
		ast, iss := env.Compile(src)
		if iss != nil && iss.Err() != nil {
			e := &ExprError{Field: field, Line: 1, Column: 1, Msg: iss.Err().Error()}
			if errs := iss.Errors(); len(errs) > 0 {
				loc := errs[0].Location
				e.Line, e.Column, e.Msg = loc.Line(), loc.Column()+1, errs[0].Message
			}
			return nil, e
		}
		t := ast.OutputType()
		ok := t.IsExactType(cel.DynType)
		var names []string
		for _, w := range want {
			ok = ok || t.IsExactType(w) || w.Kind() == types.ListKind && t.Kind() == types.ListKind
			names = append(names, w.String())
		}
		if !ok {
			return nil, &ExprError{Field: field, Line: 1, Column: 1, Msg: fmt.Sprintf("expression must be a %s, not %s", strings.Join(names, " or "), t)}
		}
		return env.Program(ast, cel.CostLimit(CostLimit), cel.InterruptCheckFrequency(100))
	}
	if strings.TrimSpace(s.Ref) == "" {
		return nil, &ExprError{Field: "ref", Line: 1, Column: 1, Msg: "is required"}
	}
	if p.ref, err = one("ref", s.Ref, cel.StringType); err != nil {
		return nil, err
	}
	if s.Filter != "" {
		if p.filter, err = one("filter", s.Filter, cel.BoolType); err != nil {
			return nil, err
		}
		p.filterSrc = s.Filter
	}
	if s.SHA != "" {
		if p.sha, err = one("sha", s.SHA, cel.StringType); err != nil {
			return nil, err
		}
	}
	for _, m := range []struct {
		field string
		src   map[string]string
		dst   map[string]cel.Program
		types []*cel.Type
	}{{"variables", s.Variables, p.vars, []*cel.Type{cel.StringType}},
		{"inputs", s.Inputs, p.inputs, inputTypes}} {
		if len(m.src) > 100 {
			return nil, &ExprError{Field: m.field, Line: 1, Column: 1, Msg: "at most 100 entries"}
		}
		if m.field == "inputs" && len(m.src) > ciconfig.MaxInputs {
			return nil, &ExprError{Field: m.field, Line: 1, Column: 1, Msg: fmt.Sprintf("at most %d entries (the limit of spec:inputs)", ciconfig.MaxInputs)}
		}
		for _, k := range slices.Sorted(maps.Keys(m.src)) {
			if !varName.MatchString(k) {
				return nil, &ExprError{Field: m.field + "." + k, Line: 1, Column: 1, Msg: "name must be letters, digits and _"}
			}
			if m.dst[k], err = one(m.field+"."+k, m.src[k], m.types...); err != nil {
				return nil, err
			}
		}
	}
	return p, nil
}

// inputTypes are the CEL types an input expression may have: those of
// `spec:inputs` (string, number, boolean, array).
var inputTypes = []*cel.Type{cel.StringType, cel.IntType, cel.UintType, cel.DoubleType, cel.BoolType, cel.ListType(cel.DynType)}

// Input is what the expressions see.
type Input struct {
	Headers http.Header
	Query   url.Values
	Body    []byte
}

// Verdict is what a trigger decided for an input.
type Verdict struct {
	Run bool `json:"run"`
	// Filtered: the filter said false (as opposed to an evaluation error).
	Filtered  bool              `json:"filtered,omitempty"`
	Reason    string            `json:"reason,omitempty"`
	Ref       string            `json:"ref,omitempty"`
	SHA       string            `json:"sha,omitempty"`
	Variables map[string]string `json:"variables,omitempty"`
	// Inputs keep their CEL types as Go values: string, int64, float64,
	// bool, []any (nil for a null: the input's default applies).
	Inputs map[string]any `json:"inputs,omitempty"`
}

// Activation builds the expressions' variables: headers by lower-case name
// (first value), query by name (first value), payload the body's JSON (or
// the body as a string when it is not JSON).
func activation(in Input) map[string]any {
	hs := map[string]string{}
	for k, vs := range in.Headers {
		if len(vs) > 0 {
			hs[strings.ToLower(k)] = vs[0]
		}
	}
	qs := map[string]string{}
	for k, vs := range in.Query {
		if len(vs) > 0 {
			qs[k] = vs[0]
		}
	}
	var payload any
	if err := json.Unmarshal(in.Body, &payload); err != nil {
		payload = string(in.Body)
	}
	return map[string]any{"headers": hs, "query": qs, "payload": payload}
}

// Evaluate runs the filter and, when it passes, the mapping. An evaluation
// error (a missing field, the cost limit) is a verdict that does not run,
// with the reason.
func (p *Program) Evaluate(in Input) Verdict {
	act := activation(in)
	if p.filter != nil {
		v, _, err := p.filter.Eval(act)
		if err != nil {
			return Verdict{Reason: "filter: " + err.Error()}
		}
		b, ok := v.(types.Bool)
		if !ok {
			return Verdict{Reason: fmt.Sprintf("filter: result is %s, not bool", v.Type())}
		}
		if !bool(b) {
			return Verdict{Filtered: true, Reason: "filter: false (" + p.filterSrc + ")"}
		}
	}
	str := func(field string, prg cel.Program) (string, error) {
		v, _, err := prg.Eval(act)
		if err != nil {
			return "", fmt.Errorf("%s: %v", field, err)
		}
		return asString(field, v)
	}
	var vd Verdict
	var err error
	if vd.Ref, err = str("ref", p.ref); err != nil {
		return Verdict{Reason: err.Error()}
	}
	vd.Ref = strings.TrimPrefix(strings.TrimPrefix(vd.Ref, "refs/heads/"), "refs/tags/")
	if vd.Ref == "" {
		return Verdict{Reason: "ref: empty"}
	}
	if p.sha != nil {
		if vd.SHA, err = str("sha", p.sha); err != nil {
			return Verdict{Reason: err.Error()}
		}
	}
	if len(p.vars) > 0 {
		vd.Variables = map[string]string{}
		for k, prg := range p.vars {
			s, err := str("variables."+k, prg)
			if err != nil {
				return Verdict{Reason: err.Error()}
			}
			vd.Variables[k] = s
		}
	}
	if len(p.inputs) > 0 {
		vd.Inputs = map[string]any{}
		for k, prg := range p.inputs {
			v, _, err := prg.Eval(act)
			if err != nil {
				return Verdict{Reason: fmt.Sprintf("inputs.%s: %v", k, err)}
			}
			x, err := native(v)
			if err != nil {
				return Verdict{Reason: fmt.Sprintf("inputs.%s: %v", k, err)}
			}
			vd.Inputs[k] = x
		}
	}
	vd.Run = true
	return vd
}

// maxInputList bounds an input list's length (and a nested list's).
const maxInputList = 1000

// native turns an input expression's value into what `spec:inputs`
// checks: string, int64, float64, bool, []any, nil (a JSON object inside a
// list stays a map[string]any).
func native(v ref.Val) (any, error) {
	switch x := v.(type) {
	case types.String:
		return string(x), nil
	case types.Int:
		return int64(x), nil
	case types.Uint:
		if uint64(x) > math.MaxInt64 {
			return nil, fmt.Errorf("%d is too large", uint64(x))
		}
		return int64(x), nil
	case types.Double:
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return nil, fmt.Errorf("%v is not a number", float64(x))
		}
		return float64(x), nil
	case types.Bool:
		return bool(x), nil
	case traits.Lister:
		n, ok := x.Size().(types.Int)
		if !ok || n > maxInputList {
			return nil, fmt.Errorf("a list of more than %d entries", maxInputList)
		}
		out := make([]any, 0, int(n))
		for i := types.Int(0); i < n; i++ {
			e, err := jsonNative(x.Get(i))
			if err != nil {
				return nil, err
			}
			out = append(out, e)
		}
		return out, nil
	}
	if v == types.NullValue {
		return nil, nil
	}
	return nil, fmt.Errorf("result is %s, not a string, number, boolean or list", v.Type())
}

// jsonNative converts a list element: any JSON value.
func jsonNative(v ref.Val) (any, error) {
	if m, ok := v.(traits.Mapper); ok {
		out, err := m.ConvertToNative(reflect.TypeFor[map[string]any]())
		if err != nil {
			return nil, fmt.Errorf("a list element is not a JSON object: %v", err)
		}
		return out, nil
	}
	return native(v)
}

func asString(field string, v ref.Val) (string, error) {
	switch x := v.(type) {
	case types.String:
		return string(x), nil
	case types.Int, types.Uint, types.Double, types.Bool:
		return fmt.Sprint(x.Value()), nil
	}
	if v == types.NullValue {
		return "", nil
	}
	return "", fmt.Errorf("%s: result is %s, not a string", field, v.Type())
}
