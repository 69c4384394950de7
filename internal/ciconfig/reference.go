package ciconfig

import "fmt"

// referenceResolver replaces !reference tags with copies of what they
// point at, after includes and extends, as GitLab's Tags::Resolver does.
type referenceResolver struct {
	root     *mapping
	active   map[*refTag]bool
	resolved map[*refTag]any
	budget   *budget
}

func resolveReferences(root *mapping, b *budget) (*mapping, error) {
	r := &referenceResolver{
		root:     root,
		active:   map[*refTag]bool{},
		resolved: map[*refTag]any{},
		budget:   b,
	}
	out, err := r.walk(root)
	if err != nil {
		return nil, newErrors(err.Error())
	}
	return out.(*mapping), nil
}

func (r *referenceResolver) walk(v any) (any, error) {
	r.budget.left--
	if r.budget.left < 0 {
		return nil, fmt.Errorf("%s", msgTooBig)
	}
	switch t := v.(type) {
	case *mapping:
		out := &mapping{keys: append([]string(nil), t.keys...), vals: make(map[string]any, len(t.vals)), nonString: t.nonString}
		for _, k := range t.keys {
			x, err := r.walk(t.vals[k])
			if err != nil {
				return nil, err
			}
			out.vals[k] = x
		}
		return out, nil
	case []any:
		out := make([]any, len(t))
		for i, x := range t {
			y, err := r.walk(x)
			if err != nil {
				return nil, err
			}
			out[i] = y
		}
		return out, nil
	case *refTag:
		return r.resolve(t)
	}
	return v, nil
}

func (r *referenceResolver) resolve(t *refTag) (any, error) {
	if v, ok := r.resolved[t]; ok {
		if !r.budget.charge(v) {
			return nil, fmt.Errorf("%s", msgTooBig)
		}
		return deepCopy(v), nil
	}
	if r.active[t] {
		return nil, fmt.Errorf("%s is part of a circular chain", t)
	}
	r.active[t] = true
	defer delete(r.active, t)
	var cur any = r.root
	for _, p := range t.path {
		m, ok := cur.(*mapping)
		if !ok {
			return nil, fmt.Errorf("%s could not be found", t)
		}
		cur, ok = m.get(p)
		if !ok {
			return nil, fmt.Errorf("%s could not be found", t)
		}
	}
	if len(t.path) == 0 || cur == nil {
		return nil, fmt.Errorf("%s could not be found", t)
	}
	out, err := r.walk(cur)
	if err != nil {
		return nil, err
	}
	r.resolved[t] = out
	return deepCopy(out), nil
}
