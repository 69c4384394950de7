package ciconfig

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// The configuration is first turned into a small dynamic value tree, the
// equivalent of the Ruby hashes GitLab works on, because includes, extends
// and !reference all operate on untyped data before any keyword is
// interpreted. A value is one of: nil, bool, int64, float64, string,
// []any, *mapping or *refTag.

// mapping is an insertion-ordered string-keyed hash. Ruby hashes keep
// insertion order and job order matters (it is the order of jobs in a
// stage), so a Go map alone will not do.
type mapping struct {
	keys []string
	vals map[string]any
	// nonString marks keys that were not strings in the YAML (for example
	// integers), which GitLab rejects as job names but accepts as variable
	// names.
	nonString map[string]bool
}

func newMapping() *mapping {
	return &mapping{vals: map[string]any{}}
}

func (m *mapping) get(k string) (any, bool) {
	if m == nil {
		return nil, false
	}
	v, ok := m.vals[k]
	return v, ok
}

func (m *mapping) has(k string) bool {
	_, ok := m.get(k)
	return ok
}

// set keeps the position of an existing key, as Ruby's Hash#[]= does.
func (m *mapping) set(k string, v any) {
	if _, ok := m.vals[k]; !ok {
		m.keys = append(m.keys, k)
	}
	m.vals[k] = v
}

func (m *mapping) del(k string) {
	if _, ok := m.vals[k]; !ok {
		return
	}
	delete(m.vals, k)
	for i, key := range m.keys {
		if key == k {
			m.keys = append(m.keys[:i:i], m.keys[i+1:]...)
			break
		}
	}
}

func (m *mapping) len() int {
	if m == nil {
		return 0
	}
	return len(m.keys)
}

// refTag is an unresolved `!reference [a, b, ...]` tag.
type refTag struct {
	path []string
}

func (r *refTag) String() string {
	quoted := make([]string, len(r.path))
	for i, p := range r.path {
		quoted[i] = strconv.Quote(p)
	}
	return "!reference [" + strings.Join(quoted, ", ") + "]"
}

// deepCopy copies v so later in-place merges cannot alias shared subtrees
// (for example two jobs extending the same template).
func deepCopy(v any) any {
	switch t := v.(type) {
	case *mapping:
		c := &mapping{keys: append([]string(nil), t.keys...), vals: make(map[string]any, len(t.vals))}
		for k, x := range t.vals {
			c.vals[k] = deepCopy(x)
		}
		if t.nonString != nil {
			c.nonString = map[string]bool{}
			for k, x := range t.nonString {
				c.nonString[k] = x
			}
		}
		return c
	case []any:
		c := make([]any, len(t))
		for i, x := range t {
			c[i] = deepCopy(x)
		}
		return c
	case *refTag:
		return &refTag{path: append([]string(nil), t.path...)}
	default:
		return v
	}
}

// sizeWithin counts the nodes of v, stopping once the count exceeds
// limit, so callers can charge copies against a budget cheaply.
func sizeWithin(v any, limit int) int {
	n := 0
	var walk func(x any)
	walk = func(x any) {
		if n > limit {
			return
		}
		n++
		switch t := x.(type) {
		case *mapping:
			for _, k := range t.keys {
				walk(t.vals[k])
			}
		case []any:
			for _, y := range t {
				walk(y)
			}
		}
	}
	walk(v)
	return n
}

// budget is a shared allowance of value nodes for the steps that copy
// subtrees (extends, !reference), which could otherwise amplify a small
// file the way aliases do.
type budget struct{ left, bytes int }

func (b *budget) charge(v any) bool {
	b.left -= sizeWithin(v, b.left)
	if b.left < 0 {
		return false
	}
	b.bytes -= valueBytes(v, b.bytes)
	return b.bytes >= 0
}

// deepMerge merges over into base the way ActiveSupport's Hash#deep_merge
// does: hashes merge recursively, any other value from over replaces the
// one in base. The result is a fresh tree.
func deepMerge(base, over *mapping) *mapping {
	out := deepCopy(base).(*mapping)
	for _, k := range over.keys {
		ov := over.vals[k]
		if bm, ok := out.vals[k].(*mapping); ok {
			if om, ok := ov.(*mapping); ok {
				out.set(k, deepMerge(bm, om))
				continue
			}
		}
		out.set(k, deepCopy(ov))
		if over.nonString[k] {
			if out.nonString == nil {
				out.nonString = map[string]bool{}
			}
			out.nonString[k] = true
		}
	}
	return out
}

// loader converts a yaml.Node tree into values while enforcing the limits
// that protect the server from YAML bombs: aliases are expanded by copying,
// so every copy is counted.
type loader struct {
	limits  Limits
	nodes   int
	aliases int
	err     error
}

func (l *loader) fail(msg string) {
	if l.err == nil {
		l.err = newErrors(msg)
	}
}

func (l *loader) convert(n *yaml.Node, depth int) any {
	if l.err != nil {
		return nil
	}
	if depth > l.limits.MaxDepth {
		l.fail(msgTooBig)
		return nil
	}
	l.nodes++
	if l.nodes > l.limits.MaxNodes {
		l.fail(msgTooBig)
		return nil
	}
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return nil
		}
		return l.convert(n.Content[0], depth)
	case yaml.AliasNode:
		l.aliases++
		if l.aliases > l.limits.MaxAliases {
			l.fail(msgTooBig)
			return nil
		}
		if n.Alias == nil {
			l.fail("unknown alias")
			return nil
		}
		return l.convert(n.Alias, depth+1)
	case yaml.SequenceNode:
		if n.Tag == "!reference" {
			return l.reference(n)
		}
		out := make([]any, 0, len(n.Content))
		for _, c := range n.Content {
			out = append(out, l.convert(c, depth+1))
		}
		return out
	case yaml.MappingNode:
		return l.mapping(n, depth)
	case yaml.ScalarNode:
		if n.Tag == "!reference" {
			l.fail(fmt.Sprintf("!reference %s is not a sequence", n.Value))
			return nil
		}
		return scalarValue(n)
	}
	return nil
}

func (l *loader) reference(n *yaml.Node) any {
	ref := &refTag{}
	for _, c := range n.Content {
		if c.Kind == yaml.AliasNode && c.Alias != nil {
			c = c.Alias
		}
		if c.Kind != yaml.ScalarNode {
			l.fail("!reference tag items must be strings")
			return nil
		}
		ref.path = append(ref.path, c.Value)
	}
	return ref
}

func (l *loader) mapping(n *yaml.Node, depth int) *mapping {
	m := newMapping()
	for i := 0; i+1 < len(n.Content); i += 2 {
		kn, vn := n.Content[i], n.Content[i+1]
		if kn.Kind == yaml.AliasNode && kn.Alias != nil {
			kn = kn.Alias
		}
		if kn.Kind == yaml.ScalarNode && kn.Value == "<<" && kn.Tag != "!!str" && kn.Style == 0 {
			l.merge(m, vn, depth)
			continue
		}
		key, nonStr := l.keyString(kn)
		v := l.convert(vn, depth+1)
		if l.err != nil {
			return m
		}
		m.set(key, v)
		if nonStr {
			if m.nonString == nil {
				m.nonString = map[string]bool{}
			}
			m.nonString[key] = true
		} else if m.nonString != nil {
			delete(m.nonString, key)
		}
	}
	return m
}

// merge applies a `<<` merge key. Psych merges at the position of the key,
// so keys written before `<<` are overwritten by merged ones and keys after
// it win; we follow Psych rather than the YAML 1.1 draft.
func (l *loader) merge(m *mapping, vn *yaml.Node, depth int) {
	v := l.convert(vn, depth+1)
	switch t := v.(type) {
	case *mapping:
		for _, k := range t.keys {
			m.set(k, t.vals[k])
		}
	case []any:
		// Earlier entries win over later ones, as in Psych.
		for i := len(t) - 1; i >= 0; i-- {
			if mm, ok := t[i].(*mapping); ok {
				for _, k := range mm.keys {
					m.set(k, mm.vals[k])
				}
			}
		}
	default:
		m.set("<<", v)
	}
}

func (l *loader) keyString(kn *yaml.Node) (string, bool) {
	if kn.Kind != yaml.ScalarNode {
		// Complex keys are rare in CI files; render them so they at least
		// produce a readable "unknown keys" error.
		out, _ := yaml.Marshal(kn)
		return strings.TrimSpace(string(out)), true
	}
	switch scalarValue(kn).(type) {
	case string:
		return kn.Value, false
	case nil:
		return "", true
	default:
		return kn.Value, true
	}
}

// scalarValue resolves a scalar like Psych (YAML 1.1) does for the cases
// that matter in CI files: yes/no/on/off are booleans there.
func scalarValue(n *yaml.Node) any {
	tag := n.ShortTag()
	if n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle|yaml.LiteralStyle|yaml.FoldedStyle) != 0 {
		return n.Value
	}
	switch tag {
	case "!!null":
		return nil
	case "!!bool":
		b, _ := strconv.ParseBool(strings.ToLower(n.Value))
		return b
	case "!!int":
		if i, err := strconv.ParseInt(strings.ReplaceAll(n.Value, "_", ""), 0, 64); err == nil {
			return i
		}
		return n.Value
	case "!!float":
		if f, err := strconv.ParseFloat(strings.ReplaceAll(n.Value, "_", ""), 64); err == nil {
			return f
		}
		switch strings.ToLower(n.Value) {
		case ".inf", "+.inf":
			return math.Inf(1)
		case "-.inf":
			return math.Inf(-1)
		case ".nan":
			return math.NaN()
		}
		return n.Value
	case "!!str":
		if n.Style&yaml.TaggedStyle == 0 {
			switch strings.ToLower(n.Value) {
			case "yes", "on":
				return true
			case "no", "off":
				return false
			}
		}
		return n.Value
	default:
		return n.Value
	}
}

// scalarString renders a scalar value as Ruby's to_s would, which is what
// GitLab does when a number is used where a string is expected.
func scalarString(v any) (string, bool) {
	switch t := v.(type) {
	case string:
		return t, true
	case int64:
		return strconv.FormatInt(t, 10), true
	case float64:
		s := strconv.FormatFloat(t, 'f', -1, 64)
		if !strings.ContainsAny(s, ".eEn") {
			s += ".0"
		}
		return s, true
	case bool:
		return strconv.FormatBool(t), true
	case nil:
		return "", true
	}
	return "", false
}

// toNode renders a value as a yaml.Node for merged_yaml output.
func toNode(v any) *yaml.Node {
	switch t := v.(type) {
	case nil:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Value: "null"}
	case bool:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: strconv.FormatBool(t)}
	case int64:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.FormatInt(t, 10)}
	case float64:
		s, _ := scalarString(t)
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!float", Value: s}
	case string:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: t}
	case []any:
		n := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
		for _, x := range t {
			n.Content = append(n.Content, toNode(x))
		}
		return n
	case *mapping:
		n := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		for _, k := range t.keys {
			n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: k}, toNode(t.vals[k]))
		}
		return n
	case *refTag:
		n := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!reference", Style: yaml.FlowStyle}
		for _, p := range t.path {
			n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: p})
		}
		return n
	}
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: fmt.Sprint(v)}
}

// dumpYAML renders a value as a YAML document, the way GitLab's lint API
// shows merged_yaml.
func dumpYAML(v any) string {
	out, err := yaml.Marshal(toNode(v))
	if err != nil {
		return ""
	}
	return "---\n" + string(out)
}

// typeName names a value's type for error messages.
func typeName(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case int64, float64:
		return "number"
	case string:
		return "string"
	case []any:
		return "array"
	case *mapping:
		return "hash"
	case *refTag:
		return "reference"
	}
	return "value"
}
