package ciconfig

import (
	"fmt"
	"strings"
)

// maxExtendsNesting is GitLab's MAX_NESTING_LEVELS for extends chains.
const maxExtendsNesting = 10

// extender applies `extends:` to every top-level hash, as GitLab's
// Config::Extendable does before !reference tags are resolved. The first
// problem aborts, as GitLab raises on it.
type extender struct {
	root   *mapping
	done   map[string]bool
	budget *budget
}

func applyExtends(root *mapping, b *budget) error {
	e := &extender{root: root, done: map[string]bool{}, budget: b}
	for _, k := range append([]string(nil), root.keys...) {
		if err := e.extend(k, nil); err != nil {
			return newErrors(err.Error())
		}
	}
	return nil
}

func (e *extender) extend(key string, ancestors []string) error {
	m, ok := e.root.vals[key].(*mapping)
	if !ok {
		return nil
	}
	ev, ok := m.get("extends")
	if !ok {
		return nil
	}
	if e.done[key] {
		return nil
	}
	bases := extendsKeys(ev)
	var unknown, invalid []string
	for _, b := range bases {
		v, ok := e.root.get(b)
		if !ok {
			unknown = append(unknown, b)
			continue
		}
		if _, ok := v.(*mapping); !ok {
			invalid = append(invalid, b)
		}
	}
	if len(unknown) > 0 {
		return fmt.Errorf("%s: unknown keys in `extends` (%s)", key, strings.Join(unknown, ", "))
	}
	if len(invalid) > 0 {
		return fmt.Errorf("%s: invalid base hashes in `extends` (%s)", key, strings.Join(invalid, ", "))
	}
	if len(ancestors) > maxExtendsNesting {
		return fmt.Errorf("%s: nesting too deep in `extends`", key)
	}
	for _, a := range ancestors {
		if a == key {
			return fmt.Errorf("%s: circular dependency detected in `extends`", key)
		}
	}
	chain := append(append([]string(nil), ancestors...), key)
	merged := newMapping()
	for _, b := range bases {
		if err := e.extend(b, chain); err != nil {
			return err
		}
		merged = deepMerge(merged, e.root.vals[b].(*mapping))
	}
	result := deepMerge(merged, m)
	if !e.budget.charge(result) {
		return fmt.Errorf("%s", msgTooBig)
	}
	e.root.set(key, result)
	e.done[key] = true
	return nil
}

// extendsKeys reads `extends:` as GitLab does: Array(value).map(&:to_s).
func extendsKeys(v any) []string {
	var items []any
	switch t := v.(type) {
	case []any:
		items = t
	case nil:
		return nil
	default:
		items = []any{t}
	}
	out := make([]string, 0, len(items))
	for _, it := range items {
		s, ok := scalarString(it)
		if !ok {
			s = toJSON(it)
		}
		out = append(out, s)
	}
	return out
}
