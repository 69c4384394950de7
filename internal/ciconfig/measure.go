package ciconfig

import "go.yaml.in/yaml/v3"

// expansion is what a YAML subtree becomes once every alias is replaced by
// a copy of its anchor: scalar bytes, value nodes and nesting depth.
type expansion struct {
	bytes, nodes, depth int
}

// measurer computes a node's expansion without building it. Each anchored
// node is measured once (memo) and an alias costs its anchor's size, so a
// file whose aliases would expand to gigabytes is measured in time linear
// in the file, before a single copy is made. Sums saturate at cap so a
// hostile document cannot overflow them.
type measurer struct {
	memo   map[*yaml.Node]expansion
	active map[*yaml.Node]bool
	cap    int
}

func (m *measurer) add(a, b int) int {
	if s := a + b; s >= 0 && s <= m.cap {
		return s
	}
	return m.cap + 1
}

func (m *measurer) mul(a, b int) int {
	if a == 0 || b == 0 {
		return 0
	}
	if a > (m.cap+1)/b {
		return m.cap + 1
	}
	return m.add(a*b, 0)
}

func (m *measurer) measure(n *yaml.Node) expansion {
	if n == nil {
		return expansion{}
	}
	if e, ok := m.memo[n]; ok {
		return e
	}
	if m.active[n] {
		// A node containing itself (the parser refuses these; be safe).
		return expansion{bytes: m.cap + 1, nodes: m.cap + 1, depth: m.cap + 1}
	}
	m.active[n] = true
	var e expansion
	switch n.Kind {
	case yaml.AliasNode:
		e = m.measure(n.Alias)
		e.depth = m.add(e.depth, 1) // convert descends one level through an alias
	case yaml.ScalarNode:
		e = expansion{bytes: len(n.Value), nodes: 1}
	default:
		e.nodes = 1
		for _, c := range n.Content {
			ce := m.measure(c)
			e.bytes = m.add(e.bytes, ce.bytes)
			e.nodes = m.add(e.nodes, ce.nodes)
			if d := m.add(ce.depth, 1); d > e.depth {
				e.depth = d
			}
		}
		if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
			e.depth--
		}
	}
	delete(m.active, n)
	m.memo[n] = e
	return e
}

// checkExpansion refuses a document whose alias expansion would exceed the
// limits. It runs on the parsed node tree, before anything is copied.
func checkExpansion(doc *yaml.Node, limits Limits) (expansion, error) {
	capacity := limits.MaxExpandedBytes
	if limits.MaxNodes > capacity {
		capacity = limits.MaxNodes
	}
	m := &measurer{memo: map[*yaml.Node]expansion{}, active: map[*yaml.Node]bool{}, cap: capacity}
	e := m.measure(doc)
	if e.bytes > limits.MaxExpandedBytes || e.nodes > limits.MaxNodes || e.depth > limits.MaxDepth {
		return e, newErrors(msgTooBig)
	}
	return e, nil
}

// valueBytes returns the scalar bytes of a value tree (keys included), the
// measure the total-size budget is kept in; it stops counting above limit.
func valueBytes(v any, limit int) int {
	n := 0
	var walk func(x any)
	walk = func(x any) {
		if n > limit {
			return
		}
		switch t := x.(type) {
		case *mapping:
			for _, k := range t.keys {
				n += len(k)
				walk(t.vals[k])
			}
		case []any:
			for _, y := range t {
				walk(y)
			}
		case string:
			n += len(t)
		case *refTag:
			for _, p := range t.path {
				n += len(p)
			}
		default:
			n += 8
		}
	}
	walk(v)
	return n
}
