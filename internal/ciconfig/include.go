package ciconfig

import (
	"encoding/json"
	"fmt"
	"path"
	"strings"
)

// maxIncludeDepth is GitLab's limit on include nesting.
const maxIncludeDepth = 100

// includer merges include: files into the configuration like GitLab's
// External::Processor: every included file is merged (deep merge) in
// order, then the including file is merged on top, so it wins.
type includer struct {
	opts  Options
	count int
	seen  map[string]bool
}

// includeSpec is one normalized include: entry.
type includeSpec struct {
	kind     string // local, remote, template, project, component
	location string
	raw      any
	rules    []Rule
	// inputs are include:inputs, for the included file's spec:inputs.
	inputs    map[string]any
	hasInputs bool
}

func (in *includer) expand(m *mapping, depth int) (*mapping, error) {
	v, ok := m.get("include")
	if !ok {
		return m, nil
	}
	specs, err := in.specs(v)
	if err != nil {
		return nil, err
	}
	merged := newMapping()
	for _, s := range specs {
		ok, err := in.rulesMatch(s.rules)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		content, err := in.load(s, depth)
		if err != nil {
			return nil, err
		}
		if content != nil {
			merged = deepMerge(merged, content)
		}
	}
	own := deepCopy(m).(*mapping)
	own.del("include")
	return deepMerge(merged, own), nil
}

// specs normalizes the string, hash and list forms of include:.
func (in *includer) specs(v any) ([]includeSpec, error) {
	var items []any
	switch t := v.(type) {
	case nil:
		return nil, nil
	case []any:
		items = t
	default:
		items = []any{t}
	}
	var out []includeSpec
	for _, it := range items {
		s, err := in.spec(it)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

func (in *includer) spec(it any) (includeSpec, error) {
	switch t := it.(type) {
	case string:
		if strings.HasPrefix(t, "http://") || strings.HasPrefix(t, "https://") {
			return includeSpec{kind: "remote", location: t, raw: t}, nil
		}
		return includeSpec{kind: "local", location: t, raw: t}, nil
	case *mapping:
		var kinds []string
		for _, k := range []string{"local", "project", "remote", "template", "component"} {
			if t.has(k) {
				kinds = append(kinds, k)
			}
		}
		if len(kinds) != 1 {
			return includeSpec{}, newErrors(fmt.Sprintf("Include `%s` does not have a valid subkey for include. Valid subkeys are: `local`, `project`, `remote`, `template`, `component`", toJSON(t)))
		}
		loc, _ := scalarString(t.vals[kinds[0]])
		s := includeSpec{kind: kinds[0], location: loc, raw: t}
		if kinds[0] == "project" {
			f, _ := t.get("file")
			fs, _ := scalarString(f)
			s.location = loc + ":" + fs
		}
		if iv, ok := t.get("inputs"); ok {
			im, isMap := iv.(*mapping)
			if !isMap {
				return includeSpec{}, newErrors("include:inputs config should be a hash")
			}
			if im.len() > MaxInputs {
				return includeSpec{}, newErrors(fmt.Sprintf("include:inputs too many inputs: %d given, at most %d allowed", im.len(), MaxInputs))
			}
			s.inputs, s.hasInputs = make(map[string]any, im.len()), true
			for _, k := range im.keys {
				s.inputs[k] = im.vals[k]
			}
		}
		if rv, ok := t.get("rules"); ok && rv != nil {
			rules, msgs := parseRuleList(rv, "include:rules", ruleKindInclude)
			if len(msgs) > 0 {
				return includeSpec{}, newErrors(msgs...)
			}
			s.rules = rules
		}
		return s, nil
	}
	return includeSpec{}, newErrors(fmt.Sprintf("Include `%s` does not have a valid subkey for include. Valid subkeys are: `local`, `project`, `remote`, `template`, `component`", toJSON(it)))
}

// rulesMatch evaluates include:rules: the first matching rule decides, a
// `when: never` rule excludes the file and no match excludes it too.
func (in *includer) rulesMatch(rules []Rule) (bool, error) {
	if len(rules) == 0 {
		return true, nil
	}
	ctx := in.opts.Context
	if ctx == nil {
		ctx = &EvalContext{}
	}
	if ctx.Exists == nil && in.opts.Files != nil {
		c := *ctx
		c.Exists = in.opts.Files.Exists
		ctx = &c
	}
	lookup := ctx.lookup()
	for _, r := range rules {
		ok, err := ruleMatches(r, ctx, lookup)
		if err != nil {
			return false, newErrors(err.Error())
		}
		if ok {
			return r.When != "never", nil
		}
	}
	return false, nil
}

func (in *includer) load(s includeSpec, depth int) (*mapping, error) {
	switch s.kind {
	case "local":
	case "remote":
		return nil, newErrors(fmt.Sprintf("Remote file `%s` cannot be included: include:remote is not supported", s.location))
	case "template":
		return nil, newErrors(fmt.Sprintf("Template file `%s` cannot be included: include:template is not supported", s.location))
	case "project":
		return nil, newErrors(fmt.Sprintf("Project file `%s` cannot be included: include:project is not supported", s.location))
	case "component":
		return nil, newErrors(fmt.Sprintf("Component `%s` cannot be included: include:component is not supported", s.location))
	}
	loc := expandVars(s.location, in.opts.Context.lookup())
	loc = strings.TrimPrefix(loc, "/")
	if in.opts.Files == nil {
		return nil, newErrors(fmt.Sprintf("Local file `%s` does not have project!", loc))
	}
	if depth >= maxIncludeDepth {
		return nil, newErrors(fmt.Sprintf("Maximum of %d nested includes are allowed!", maxIncludeDepth))
	}
	if strings.ContainsAny(loc, "*?[") {
		return nil, newErrors(fmt.Sprintf("Local file `%s` cannot be included: wildcard includes are not supported", loc))
	}
	if !strings.HasSuffix(loc, ".yml") && !strings.HasSuffix(loc, ".yaml") {
		return nil, newErrors(fmt.Sprintf("Included file `%s` does not have YAML extension!", loc))
	}
	// Paths escaping the repository are reported as missing rather than
	// handed to the FileReader.
	if loc == "" || path.IsAbs(loc) || strings.HasPrefix(path.Clean(loc), "..") {
		return nil, newErrors(fmt.Sprintf("Local file `%s` does not exist!", loc))
	}
	if in.seen == nil {
		in.seen = map[string]bool{}
	}
	key := loc
	if s.hasInputs {
		key += "\x00" + toJSON(s.inputs)
	}
	if in.seen[key] {
		// GitLab deduplicates identical includes; including a file twice
		// (or recursively) with the same inputs adds nothing new.
		return nil, nil
	}
	in.seen[key] = true
	in.count++
	if in.count > in.opts.Limits.MaxIncludes {
		return nil, newErrors(fmt.Sprintf("Maximum of %d nested includes are allowed!", in.opts.Limits.MaxIncludes))
	}
	data, err := in.opts.Files.ReadFile(loc)
	if err != nil {
		return nil, newErrors(fmt.Sprintf("Local file `%s` does not exist!", loc))
	}
	if len(strings.TrimSpace(string(data))) == 0 {
		return nil, newErrors(fmt.Sprintf("Local file `%s` is empty!", loc))
	}
	m, err := loadYAML(data, in.opts.Limits)
	if err != nil {
		if e, ok := err.(*Errors); ok && len(e.Messages) == 1 && e.Messages[0] == msgTooBig {
			return nil, err
		}
		return nil, newErrors(fmt.Sprintf("Included file `%s` does not have valid YAML syntax!", loc))
	}
	if m, err = includeInputs(loc, data, m, s.inputs, in.opts); err != nil {
		return nil, err
	}
	return in.expand(m, depth+1)
}

// toJSON renders a value like Ruby's to_json, for error messages.
func toJSON(v any) string {
	b, err := json.Marshal(plain(v))
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// plain converts a value tree to values encoding/json renders with hash
// keys in file order, as Ruby's to_json does.
func plain(v any) any {
	switch t := v.(type) {
	case *mapping:
		out := make(orderedJSON, 0, len(t.keys))
		for _, k := range t.keys {
			out = append(out, jsonField{k, plain(t.vals[k])})
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, x := range t {
			out[i] = plain(x)
		}
		return out
	case *refTag:
		return t.String()
	}
	return v
}

type jsonField struct {
	key string
	val any
}

// orderedJSON marshals as a JSON object keeping key order.
type orderedJSON []jsonField

func (o orderedJSON) MarshalJSON() ([]byte, error) {
	var b strings.Builder
	b.WriteByte('{')
	for i, f := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(f.key)
		b.Write(k)
		b.WriteByte(':')
		v, err := json.Marshal(f.val)
		if err != nil {
			return nil, err
		}
		b.Write(v)
	}
	b.WriteByte('}')
	return []byte(b.String()), nil
}
