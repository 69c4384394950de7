package ciexpr

import (
	"fmt"
	"strings"
)

// Lookup returns a variable's value; ok is false when the variable is not
// defined. A nil Lookup defines no variables.
type Lookup func(name string) (value string, ok bool)

// Expr is a parsed expression. It is immutable and safe for concurrent use.
type Expr struct {
	src  string
	root node
}

// node is one operand or operator of the tree.
type node struct {
	kind  tokenKind
	value Value  // literal value, for strings, regexps and null
	name  string // variable name
	left  *node
	right *node
}

// Parse parses a rules:if or only:variables expression. Errors are
// *SyntaxError values that name the offending offset.
func Parse(src string) (*Expr, error) {
	toks, err := lex(src)
	if err != nil {
		return nil, err
	}
	if len(toks) == 0 {
		return nil, syntaxErr(src, 0, "empty expression")
	}
	p := parser{src: src, toks: toks}
	root, err := p.or(0)
	if err != nil {
		return nil, err
	}
	if p.i < len(p.toks) {
		t := p.toks[p.i]
		if t.kind == tokRParen {
			return nil, syntaxErr(src, t.pos, "unmatched ')'")
		}
		return nil, syntaxErr(src, t.pos, "unexpected %s after a complete expression (missing operator?)", t.kind)
	}
	return &Expr{src: src, root: *root}, nil
}

// String returns the source the expression was parsed from.
func (e *Expr) String() string { return e.src }

// parser is a precedence-climbing parser. GitLab binds =~ !~ == != tighter
// than &&, and && tighter than ||, all left-associative.
type parser struct {
	src  string
	toks []token
	i    int
}

func (p *parser) peek() (token, bool) {
	if p.i < len(p.toks) {
		return p.toks[p.i], true
	}
	return token{}, false
}

func (p *parser) or(depth int) (*node, error) {
	return p.binary(depth, tokOr, p.and)
}

func (p *parser) and(depth int) (*node, error) {
	return p.binary(depth, tokAnd, p.comparison)
}

func (p *parser) binary(depth int, op tokenKind, operand func(int) (*node, error)) (*node, error) {
	left, err := operand(depth)
	if err != nil {
		return nil, err
	}
	for {
		t, ok := p.peek()
		if !ok || t.kind != op {
			return left, nil
		}
		p.i++
		right, err := operand(depth)
		if err != nil {
			return nil, err
		}
		left = &node{kind: op, left: left, right: right}
	}
}

func (p *parser) comparison(depth int) (*node, error) {
	left, err := p.primary(depth)
	if err != nil {
		return nil, err
	}
	for {
		t, ok := p.peek()
		if !ok {
			return left, nil
		}
		switch t.kind {
		case tokEq, tokNe, tokMatch, tokNotMatch:
		default:
			return left, nil
		}
		p.i++
		right, err := p.primary(depth)
		if err != nil {
			return nil, err
		}
		left = &node{kind: t.kind, left: left, right: right}
	}
}

func (p *parser) primary(depth int) (*node, error) {
	t, ok := p.peek()
	if !ok {
		return nil, syntaxErr(p.src, len(p.src), "expression ends where an operand is expected")
	}
	p.i++
	switch t.kind {
	case tokVariable:
		return &node{kind: tokVariable, name: t.text}, nil
	case tokString:
		return &node{kind: tokString, value: String(t.text)}, nil
	case tokNull:
		return &node{kind: tokNull}, nil
	case tokRegexp:
		return &node{kind: tokRegexp, value: Value{kind: KindRegexp, str: t.text, re: t.re}}, nil
	case tokLParen:
		if depth >= maxDepth {
			return nil, syntaxErr(p.src, t.pos, "parentheses nested deeper than %d", maxDepth)
		}
		inner, err := p.or(depth + 1)
		if err != nil {
			return nil, err
		}
		c, ok := p.peek()
		if !ok {
			return nil, syntaxErr(p.src, t.pos, "unclosed '('")
		}
		if c.kind != tokRParen {
			return nil, syntaxErr(p.src, c.pos, "expected ')' or an operator, found %s", c.kind)
		}
		p.i++
		return inner, nil
	}
	return nil, syntaxErr(p.src, t.pos, "expected a value, variable or '(', found %s", t.kind)
}

// Eval evaluates the expression and returns its raw value, as GitLab's
// Statement#evaluate does: a comparison yields a bool, && and || yield one of
// their operands, a lone variable yields its value or null.
func (e *Expr) Eval(vars Lookup) (Value, error) {
	if vars == nil {
		vars = func(string) (string, bool) { return "", false }
	}
	return e.root.eval(vars)
}

// Truthy evaluates the expression and reports whether rules:if would match.
// On error it returns false, which is also what GitLab decides.
func (e *Expr) Truthy(vars Lookup) (bool, error) {
	v, err := e.Eval(vars)
	if err != nil {
		return false, err
	}
	return v.Truthy(), nil
}

// Evaluate parses src and reports whether it is truthy, for one-off use;
// parse errors yield false and the error.
func Evaluate(src string, vars Lookup) (bool, error) {
	e, err := Parse(src)
	if err != nil {
		return false, err
	}
	return e.Truthy(vars)
}

func (n *node) eval(vars Lookup) (Value, error) {
	switch n.kind {
	case tokVariable:
		if v, ok := vars(n.name); ok {
			return String(v), nil
		}
		return Null(), nil
	case tokString, tokNull, tokRegexp:
		return n.value, nil
	}
	left, err := n.left.eval(vars)
	if err != nil {
		return Value{}, err
	}
	// && and || short-circuit like Ruby's, so the right side's errors only
	// matter when it is evaluated.
	switch n.kind {
	case tokAnd:
		if !left.rubyTruthy() {
			return left, nil
		}
		return n.right.eval(vars)
	case tokOr:
		if left.rubyTruthy() {
			return left, nil
		}
		return n.right.eval(vars)
	}
	right, err := n.right.eval(vars)
	if err != nil {
		return Value{}, err
	}
	switch n.kind {
	case tokEq:
		return Bool(left.Equal(right)), nil
	case tokNe:
		return Bool(!left.Equal(right)), nil
	case tokMatch:
		// GitLab's =~ is false when the right side is null or false.
		if !right.rubyTruthy() {
			return Bool(false), nil
		}
		m, err := matches(left, right)
		return Bool(m), err
	case tokNotMatch:
		// GitLab's !~ is true when the right side is null or false.
		if !right.rubyTruthy() {
			return Bool(true), nil
		}
		m, err := matches(left, right)
		return Bool(!m), err
	}
	return Value{}, fmt.Errorf("ciexpr: internal error: unknown operator %s", n.kind)
}

// matches implements =~. The right side is a regexp, or a string that is
// used as a regexp when it reads "/pattern/flags" (that is how variables
// carry patterns). Any other string matches when it contains the left side:
// GitLab scans the right string for the left one, so "$A =~ 'abc'" is a
// substring test with the operands reversed.
func matches(left, right Value) (bool, error) {
	text := left.String()
	switch right.kind {
	case KindRegexp:
		return right.re.MatchString(text), nil
	case KindString:
		// GitLab unescapes \/ before reading the pattern, as in a literal.
		if re, err := ParseRegexp(strings.ReplaceAll(right.str, `\/`, "/")); err == nil {
			return re.MatchString(text), nil
		}
		return strings.Contains(right.str, text), nil
	}
	return false, fmt.Errorf("ciexpr: the right side of =~ or !~ is a %s; it must be a regular expression or a string", right.kind)
}
