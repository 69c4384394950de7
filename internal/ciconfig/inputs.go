package ciconfig

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// MaxInputs is GitLab's limit on the inputs a configuration may declare
// and a request may give.
const MaxInputs = 20

// InputError is a request whose inputs do not satisfy the configuration's
// `spec: inputs:` (a caller's mistake, not the configuration's). Each
// message names the input and the rule, worded as GitLab words them.
type InputError struct{ Messages []string }

func (e *InputError) Error() string { return strings.Join(e.Messages, ", ") }

// inputSpec is one entry of `spec: inputs:`.
type inputSpec struct {
	name     string
	typ      string
	def      any
	hasDef   bool
	options  []any
	regex    *regexp.Regexp
	describe string
	// rules choose options and default from other inputs' values (GitLab's
	// spec:inputs:<name>:rules); exclusive with options and default.
	rules []inputRule
}

// inputRule is one entry of an input's rules:. A rule without `if` is the
// fallback and always matches.
type inputRule struct {
	src     string // the `if:` as written
	expr    string // src with $[[ inputs.x ]] rewritten to a variable
	refs    []string
	options []any
	def     any
	hasDef  bool
}

var inputTypes = map[string]bool{"string": true, "number": true, "boolean": true, "array": true}

// headerInputs reads `spec: inputs:` from the header document of src, if
// there is one. ok is false when the file has no header.
func headerInputs(src []byte, limits Limits) (specs []inputSpec, ok bool, err error) {
	dec := yaml.NewDecoder(bytes.NewReader(src))
	var first yaml.Node
	if dec.Decode(&first) != nil || !isSpecHeader(&first) {
		return nil, false, nil
	}
	var second yaml.Node
	if dec.Decode(&second) != nil {
		return nil, false, nil // a lone spec document is the configuration itself
	}
	l := &loader{limits: limits}
	v := l.convert(&first, 0)
	if l.err != nil {
		return nil, true, l.err
	}
	hdr, _ := v.(*mapping)
	spec, _ := hdr.get("spec")
	sm, isMap := spec.(*mapping)
	if spec != nil && !isMap {
		return nil, true, newErrors("header:spec config should be a hash")
	}
	if sm != nil {
		if u := unknownKeys(sm, []string{"inputs", "description"}); u != "" {
			return nil, true, newErrors("header:spec config contains unknown keys: " + u)
		}
	}
	in, _ := sm.get("inputs")
	im, isMap := in.(*mapping)
	if in != nil && !isMap {
		return nil, true, newErrors("header:spec:inputs config should be a hash")
	}
	if im.len() > MaxInputs {
		return nil, true, newErrors(fmt.Sprintf("header:spec:inputs config has too many inputs: %d given, at most %d allowed", im.len(), MaxInputs))
	}
	var errs []string
	for _, name := range im.keys {
		s, msgs := parseInputSpec(name, im.vals[name])
		errs = append(errs, msgs...)
		specs = append(specs, s)
	}
	if len(errs) == 0 {
		errs = checkInputRefs(specs)
	}
	if len(errs) > 0 {
		return nil, true, newErrors(errs...)
	}
	return specs, true, nil
}

func parseInputSpec(name string, v any) (inputSpec, []string) {
	s := inputSpec{name: name, typ: "string"}
	pre := "`" + name + "` input: "
	if v == nil {
		return s, nil
	}
	m, ok := v.(*mapping)
	if !ok {
		return s, []string{pre + "specification should be a hash"}
	}
	if u := unknownKeys(m, []string{"type", "default", "options", "regex", "description", "rules"}); u != "" {
		return s, []string{pre + "unknown keys: " + u}
	}
	if m.has("rules") {
		for _, k := range []string{"options", "default"} {
			if m.has(k) {
				return s, []string{pre + "these keys cannot be used together: rules, " + k}
			}
		}
	}
	if t, ok := m.get("type"); ok {
		ts, _ := t.(string)
		if !inputTypes[ts] {
			return s, []string{pre + "unknown input type `" + fmt.Sprint(t) + "` (valid types: array, boolean, number, string)"}
		}
		s.typ = ts
	}
	if d, ok := m.get("description"); ok {
		s.describe = fmt.Sprint(d)
	}
	if o, ok := m.get("options"); ok {
		list, ok := o.([]any)
		if !ok {
			return s, []string{pre + "options should be an array"}
		}
		if len(list) > 50 {
			return s, []string{pre + "options cannot exceed 50 entries"}
		}
		if s.typ != "string" && s.typ != "number" {
			return s, []string{pre + "Options can only be used with string and number inputs"}
		}
		s.options = list
	}
	if r, ok := m.get("regex"); ok {
		if s.typ != "string" {
			return s, []string{pre + "RegEx validation can only be used with string inputs"}
		}
		rs, _ := r.(string)
		re, err := regexp.Compile(rs)
		if err != nil || rs == "" {
			return s, []string{pre + "invalid regular expression"}
		}
		s.regex = re
	}
	if d, ok := m.get("default"); ok {
		s.def, s.hasDef = d, true
		if msg := s.check(d, "default value"); msg != "" {
			return s, []string{pre + msg}
		}
	}
	if r, ok := m.get("rules"); ok {
		rules, msgs := parseInputRules(&s, r)
		if len(msgs) > 0 {
			for i := range msgs {
				msgs[i] = pre + msgs[i]
			}
			return s, msgs
		}
		s.rules = rules
	}
	return s, nil
}

// inputRef is the `$[[ inputs.name ]]` of an input rule's `if:` (GitLab's
// Input lexeme: a name of word characters).
var inputRef = regexp.MustCompile(`\$\[\[\s*inputs\.(\w+)\s*\]\]`)

// inputVarPrefix names the variable an input reference becomes so the
// rules expression evaluator (the one rules:if uses) can compare it.
const inputVarPrefix = "__kiln_input__"

func parseInputRules(s *inputSpec, v any) ([]inputRule, []string) {
	list, ok := v.([]any)
	if !ok {
		return nil, []string{"rules should be an array"}
	}
	var out []inputRule
	for i, it := range list {
		at := fmt.Sprintf("rule[%d] ", i)
		m, ok := it.(*mapping)
		if !ok || m.len() == 0 {
			return nil, []string{at + "config should be a hash"}
		}
		if u := unknownKeys(m, []string{"if", "options", "default"}); u != "" {
			return nil, []string{at + "config contains unknown keys: " + u}
		}
		var r inputRule
		if c, ok := m.get("if"); ok && c != nil {
			cs, isStr := c.(string)
			if !isStr {
				return nil, []string{at + "if should be a string"}
			}
			r.src = cs
			r.expr = inputRef.ReplaceAllStringFunc(cs, func(ref string) string {
				name := inputRef.FindStringSubmatch(ref)[1]
				r.refs = append(r.refs, name)
				return "$" + inputVarPrefix + name
			})
			if err := checkExpr(r.expr); err != nil {
				return nil, []string{at + "if invalid expression syntax"}
			}
		}
		o, hasOptions := m.get("options")
		if hasOptions {
			ol, isList := o.([]any)
			if !isList {
				return nil, []string{at + "options should be an array"}
			}
			if len(ol) > 50 {
				return nil, []string{at + "cannot define more than 50 options"}
			}
			if s.typ != "string" && s.typ != "number" {
				return nil, []string{at + "Options can only be used with string and number inputs"}
			}
			r.options = ol
		}
		r.def, r.hasDef = m.get("default")
		if r.src != "" && !hasOptions && !r.hasDef {
			return nil, []string{at + "rule with 'if' must define 'options' or 'default'"}
		}
		if r.src == "" && !hasOptions {
			return nil, []string{at + "fallback rule must define 'options'"}
		}
		if r.hasDef {
			rs := *s
			rs.options = r.options
			if msg := rs.check(r.def, "default value"); msg != "" {
				return nil, []string{at + msg}
			}
		}
		out = append(out, r)
	}
	return out, nil
}

// checkInputRefs reports rules that name inputs the spec does not declare
// and dependency cycles between inputs, worded as GitLab words them.
func checkInputRefs(specs []inputSpec) []string {
	known := map[string]int{}
	for i, s := range specs {
		known[s.name] = i
	}
	var errs []string
	for _, s := range specs {
		for i, r := range s.rules {
			var undefined []string
			for _, ref := range r.refs {
				if _, ok := known[ref]; !ok && !slicesContains(undefined, ref) {
					undefined = append(undefined, ref)
				}
			}
			if len(undefined) > 0 {
				errs = append(errs, fmt.Sprintf("`%s` input: rule[%d] references undefined inputs: %s", s.name, i, strings.Join(undefined, ", ")))
			}
		}
	}
	if len(errs) > 0 {
		return errs
	}
	if _, ok := inputOrder(specs); !ok && len(specs) > 0 {
		return []string{"`" + specs[0].name + "` input: circular dependency detected"}
	}
	return nil
}

func slicesContains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// inputOrder returns spec indexes so that every input comes after the
// inputs its rules read; ok is false on a cycle.
func inputOrder(specs []inputSpec) ([]int, bool) {
	index := map[string]int{}
	for i, s := range specs {
		index[s.name] = i
	}
	state := make([]int, len(specs)) // 0 new, 1 visiting, 2 done
	var order []int
	var visit func(i int) bool
	visit = func(i int) bool {
		switch state[i] {
		case 1:
			return false
		case 2:
			return true
		}
		state[i] = 1
		for _, r := range specs[i].rules {
			for _, ref := range r.refs {
				if j, ok := index[ref]; ok && !visit(j) {
					return false
				}
			}
		}
		state[i] = 2
		order = append(order, i)
		return true
	}
	for i := range specs {
		if !visit(i) {
			return nil, false
		}
	}
	return order, true
}

// zeroInput is the value of a rules input no rule matched and nobody
// gave: the empty value of its type.
func zeroInput(typ string) any {
	switch typ {
	case "number":
		return int64(0)
	case "boolean":
		return false
	case "array":
		return []any{}
	}
	return ""
}

// effective returns the spec an input has once its rules are decided
// against the values resolved so far: the first matching rule's options
// and default. When no rule matches, the input takes any value of its
// type and defaults to that type's empty value.
func (s *inputSpec) effective(values map[string]any) (inputSpec, error) {
	if s.rules == nil {
		return *s, nil
	}
	e := *s
	lookup := func(name string) (string, bool) {
		n, ok := strings.CutPrefix(name, inputVarPrefix)
		if !ok {
			return "", false
		}
		v, ok := values[n]
		if !ok {
			return "", false
		}
		return inputText(v), true
	}
	for _, r := range s.rules {
		ok := true
		if r.src != "" {
			var err error
			if ok, err = evalExpr(r.expr, lookup); err != nil {
				return e, err
			}
		}
		if ok {
			e.options, e.def, e.hasDef = r.options, r.def, r.hasDef
			return e, nil
		}
	}
	e.def, e.hasDef = zeroInput(s.typ), true
	return e, nil
}

// check validates a value (already coerced) against the spec; what names
// the value in the message ("provided value" or "default value").
func (s *inputSpec) check(v any, what string) string {
	switch s.typ {
	case "string":
		if _, ok := v.(string); !ok {
			return what + " is not a string"
		}
	case "number":
		switch v.(type) {
		case int64, float64:
		default:
			return what + " is not a number"
		}
	case "boolean":
		if _, ok := v.(bool); !ok {
			return what + " is not a boolean"
		}
	case "array":
		if _, ok := v.([]any); !ok {
			return what + " is not an array"
		}
	}
	if s.options != nil {
		found := false
		for _, o := range s.options {
			if inputText(o) == inputText(v) {
				found = true
				break
			}
		}
		if !found {
			return "`" + inputText(v) + "` cannot be used because it is not in the list of allowed options"
		}
	}
	if s.regex != nil && !s.regex.MatchString(v.(string)) {
		return what + " does not match required RegEx pattern"
	}
	return ""
}

// coerce turns what a form field carries (always a string) into the
// spec's type; anything else is left for check to judge.
func (s *inputSpec) coerce(v any) any {
	if n, ok := v.(json.Number); ok {
		return jsonValue(n)
	}
	switch t := v.(type) {
	case string:
		switch s.typ {
		case "number":
			if i, err := strconv.ParseInt(t, 10, 64); err == nil {
				return i
			}
			if f, err := strconv.ParseFloat(t, 64); err == nil && !math.IsInf(f, 0) && !math.IsNaN(f) {
				return f
			}
		case "boolean":
			if t == "true" {
				return true
			}
			if t == "false" {
				return false
			}
		case "array":
			var a []any
			if json.Unmarshal([]byte(t), &a) == nil && a != nil {
				return jsonValue(a)
			}
		}
	case float64:
		if t == math.Trunc(t) && math.Abs(t) < 1<<53 {
			return int64(t)
		}
	case int:
		return int64(t)
	case []any:
		return jsonValue(t)
	case []string:
		out := make([]any, len(t))
		for i, x := range t {
			out[i] = x
		}
		return out
	}
	return v
}

// jsonValue converts what encoding/json decodes into the value tree's types.
func jsonValue(v any) any {
	switch t := v.(type) {
	case json.Number:
		if i, err := t.Int64(); err == nil {
			return i
		}
		if f, err := t.Float64(); err == nil {
			return f
		}
		return t.String()
	case float64:
		if t == math.Trunc(t) && math.Abs(t) < 1<<53 {
			return int64(t)
		}
		return t
	case []any:
		out := make([]any, len(t))
		for i, x := range t {
			out[i] = jsonValue(x)
		}
		return out
	case map[string]any:
		m := newMapping()
		keys := make([]string, 0, len(t))
		for k := range t {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			m.set(k, jsonValue(t[k]))
		}
		return m
	}
	return v
}

// resolveInputs validates the given inputs against specs and returns every
// input's value (given or default), or GitLab's messages.
func resolveInputs(specs []inputSpec, given map[string]any) (map[string]any, []string) {
	if len(given) > MaxInputs {
		return nil, []string{fmt.Sprintf("too many inputs: %d given, at most %d allowed", len(given), MaxInputs)}
	}
	known := map[string]bool{}
	for _, s := range specs {
		known[s.name] = true
	}
	var unknown []string
	for k := range given {
		if !known[k] {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return nil, []string{"unknown input arguments: " + strings.Join(unknown, ", ")}
	}
	out := map[string]any{}
	msgs := make([]string, len(specs))
	order, _ := inputOrder(specs)
	for _, i := range order {
		s, err := specs[i].effective(out)
		if err != nil {
			msgs[i] = "`" + s.name + "` input: " + err.Error()
			continue
		}
		v, ok := given[s.name]
		if !ok || v == nil {
			if !s.hasDef {
				msgs[i] = "`" + s.name + "` input: required value has not been provided"
				continue
			}
			out[s.name] = s.def
			continue
		}
		v = s.coerce(v)
		if msg := s.check(v, "provided value"); msg != "" {
			msgs[i] = "`" + s.name + "` input: " + msg
			continue
		}
		out[s.name] = v
	}
	var errs []string
	for _, m := range msgs {
		if m != "" {
			errs = append(errs, m)
		}
	}
	return out, errs
}

// inputText is how an input's value reads when interpolated into text.
func inputText(v any) string {
	switch t := v.(type) {
	case nil:
		return ""
	case string:
		return t
	case bool:
		return strconv.FormatBool(t)
	case int64:
		return strconv.FormatInt(t, 10)
	case float64:
		return strconv.FormatFloat(t, 'f', -1, 64)
	default:
		return toJSON(v)
	}
}

var interpolationBlock = regexp.MustCompile(`\$\[\[\s*(.*?)\s*\]\]`)

// interpolator replaces `$[[ inputs.name | fn ... ]]` blocks.
type interpolator struct {
	inputs map[string]any
	vars   VarLookup
	// usedVars is set once expand_vars has read a variable.
	usedVars bool
	errs     []string
	seen     map[string]bool
}

func (ip *interpolator) fail(msg string) {
	if !ip.seen[msg] {
		ip.seen[msg] = true
		ip.errs = append(ip.errs, msg)
	}
}

func (ip *interpolator) value(v any) any {
	switch t := v.(type) {
	case string:
		return ip.str(t)
	case []any:
		for i, x := range t {
			t[i] = ip.value(x)
		}
		return t
	case *mapping:
		out := &mapping{vals: make(map[string]any, len(t.keys)), nonString: t.nonString}
		for _, k := range t.keys {
			nk, _ := ip.str(k).(string)
			if nk == "" {
				nk = k
			}
			out.set(nk, ip.value(t.vals[k]))
		}
		return out
	}
	return v
}

// str interpolates one string. A string that is exactly one block with no
// function keeps the input's type (GitLab does the same).
func (ip *interpolator) str(s string) any {
	if !strings.Contains(s, "$[[") {
		return s
	}
	if m := interpolationBlock.FindStringSubmatchIndex(s); m != nil && m[0] == 0 && m[1] == len(s) && !strings.Contains(s[m[2]:m[3]], "|") {
		if v, ok := ip.lookup(s[m[2]:m[3]]); ok {
			return v
		}
		return s
	}
	return interpolationBlock.ReplaceAllStringFunc(s, func(block string) string {
		expr := interpolationBlock.FindStringSubmatch(block)[1]
		parts := strings.Split(expr, "|")
		v, ok := ip.lookup(strings.TrimSpace(parts[0]))
		if !ok {
			return block
		}
		out := inputText(v)
		_, isString := v.(string)
		for _, f := range parts[1:] {
			out, ok = ip.apply(strings.TrimSpace(f), out, isString)
			if !ok {
				return block
			}
			isString = true
		}
		return out
	})
}

func (ip *interpolator) lookup(key string) (any, bool) {
	name, ok := strings.CutPrefix(key, "inputs.")
	if !ok {
		ip.fail("unknown interpolation key: `" + key + "`")
		return nil, false
	}
	v, ok := ip.inputs[name]
	if !ok {
		ip.fail("unknown interpolation key: `" + name + "`")
		return nil, false
	}
	return v, true
}

var truncateCall = regexp.MustCompile(`^truncate\(\s*(\d+)\s*,\s*(\d+)\s*\)$`)

func (ip *interpolator) apply(f, s string, isString bool) (string, bool) {
	switch {
	case f == "expand_vars":
		if !isString {
			ip.fail("error in `expand_vars` function: invalid input type: expand_vars can only be used with string inputs")
			return "", false
		}
		out, err := ip.expandVars(s)
		if err != "" {
			ip.fail("error in `expand_vars` function: variable expansion error: " + err)
			return "", false
		}
		return out, true
	case f == "posix_escape":
		return posixEscape(s), true
	case truncateCall.MatchString(f):
		m := truncateCall.FindStringSubmatch(f)
		off, err1 := strconv.Atoi(m[1])
		n, err2 := strconv.Atoi(m[2])
		if err1 != nil || err2 != nil {
			ip.fail("invalid input function: `" + f + "`")
			return "", false
		}
		r := []rune(s)
		if off > len(r) {
			return "", true
		}
		r = r[off:]
		if n < len(r) {
			r = r[:n]
		}
		return string(r), true
	}
	name, _, _ := strings.Cut(f, "(")
	ip.fail("no function matching `" + name + "`: check that the function name, arguments, and types are correct")
	return "", false
}

// varReference is GitLab's ExpandVariables::VARIABLES_REGEXP: $NAME,
// ${NAME} and %NAME%.
var varReference = regexp.MustCompile(`\$([a-zA-Z_][a-zA-Z0-9_]*)|\$\{([a-zA-Z_][a-zA-Z0-9_]*)\}|%([a-zA-Z_][a-zA-Z0-9_]*)%`)

// expandVars is GitLab's expand_existing with fail_on_masked: known
// variables are replaced by their values (one level: a value's own
// references are kept as they are), unknown references stay as written,
// and a masked variable is an error rather than a secret written into the
// configuration.
func (ip *interpolator) expandVars(s string) (string, string) {
	if ip.vars == nil {
		return s, ""
	}
	masked := false
	out := varReference.ReplaceAllStringFunc(s, func(ref string) string {
		m := varReference.FindStringSubmatch(ref)
		name := m[1] + m[2] + m[3]
		v, isMasked, ok := ip.vars(name)
		ip.usedVars = true
		if !ok {
			return ref
		}
		if isMasked {
			masked = true
			return ref
		}
		return v
	})
	if masked {
		return "", "masked variables cannot be expanded"
	}
	return out, ""
}

// posixEscape quotes s for a POSIX shell the way Ruby's Shellwords.escape
// does: every character outside a safe set gets a backslash; a newline is
// quoted as '\n'; the empty string is two single quotes.
func posixEscape(s string) string {
	if s == "" {
		return "''"
	}
	var b strings.Builder
	for len(s) > 0 {
		r, n := utf8.DecodeRuneInString(s)
		s = s[n:]
		switch {
		case r == '\n':
			b.WriteString("'\n'")
		case r < utf8.RuneSelf && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("_-.,:+/@", r)):
			b.WriteRune(r)
		default:
			b.WriteByte('\\')
			b.WriteRune(r)
		}
	}
	return b.String()
}

// applyInputs validates the request's inputs against the header of src
// and interpolates them into root. Without a header, inputs are refused
// and nothing is interpolated, as in GitLab.
func applyInputs(src []byte, root *mapping, opts Options) (*mapping, map[string]any, error) {
	specs, hasHeader, err := headerInputs(src, opts.Limits)
	if err != nil {
		return nil, nil, err
	}
	if !hasHeader {
		if len(opts.Inputs) > 0 {
			if len(opts.Inputs) > MaxInputs {
				return nil, nil, &InputError{Messages: []string{fmt.Sprintf("too many inputs: %d given, at most %d allowed", len(opts.Inputs), MaxInputs)}}
			}
			names := make([]string, 0, len(opts.Inputs))
			for k := range opts.Inputs {
				names = append(names, k)
			}
			sort.Strings(names)
			return nil, nil, &InputError{Messages: []string{"unknown input arguments: " + strings.Join(names, ", ")}}
		}
		return root, nil, nil
	}
	values, msgs := resolveInputs(specs, opts.Inputs)
	if len(msgs) > 0 {
		return nil, nil, &InputError{Messages: msgs}
	}
	out, errs := interpolate(root, values, opts)
	if len(errs) > 0 {
		return nil, nil, newErrors(errs...)
	}
	return out, values, nil
}

// interpolate replaces the `$[[ ]]` blocks of root with values.
func interpolate(root *mapping, values map[string]any, opts Options) (*mapping, []string) {
	vars := opts.Variables
	if vars == nil && opts.Context != nil {
		lookup := opts.Context.lookup()
		vars = func(name string) (string, bool, bool) {
			v, ok := lookup(name)
			return v, false, ok
		}
	}
	ip := &interpolator{inputs: values, seen: map[string]bool{}, vars: vars}
	out, _ := ip.value(root).(*mapping)
	if ip.usedVars && opts.usedVars != nil {
		*opts.usedVars = true
	}
	return out, ip.errs
}

// includeInputs interpolates an included file with the inputs its
// include: entry gives (include:inputs), validated against that file's
// own header. The file's problems are configuration errors prefixed with
// its location, as GitLab reports them (at most three, joined).
func includeInputs(loc string, src []byte, root *mapping, given map[string]any, opts Options) (*mapping, error) {
	fail := func(msgs []string) error {
		if len(msgs) > 3 {
			msgs = msgs[:3]
		}
		return newErrors("`" + loc + "`: " + strings.Join(msgs, ", "))
	}
	specs, hasHeader, err := headerInputs(src, opts.Limits)
	if err != nil {
		var ce *Errors
		if errors.As(err, &ce) {
			return nil, fail(ce.Messages)
		}
		return nil, err
	}
	if !hasHeader {
		if len(given) > 0 {
			return nil, fail([]string{"Given inputs not defined in the `spec` section of the included configuration file"})
		}
		return root, nil
	}
	values, msgs := resolveInputs(specs, given)
	if len(msgs) > 0 {
		return nil, fail(msgs)
	}
	out, errs := interpolate(root, values, opts)
	if len(errs) > 0 {
		return nil, fail(errs)
	}
	return out, nil
}
