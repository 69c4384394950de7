package ciexpr

import "strings"

// Expand expands $VAR and ${VAR} in s as GitLab does for variables,
// rules:variables and similar keywords. Unknown variables expand to "", $$
// is a literal $, and a $ not followed by a name is kept as is. Windows-style
// %VAR% is deliberately left alone. Expansion is a single pass: values are
// inserted verbatim, never expanded again.
func Expand(s string, vars Lookup) string {
	if strings.IndexByte(s, '$') < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); {
		c := s[i]
		if c != '$' || i+1 == len(s) {
			b.WriteByte(c)
			i++
			continue
		}
		switch next := s[i+1]; {
		case next == '$':
			b.WriteByte('$')
			i += 2
		case next == '{':
			n := nameLen(s[i+2:])
			if n > 0 && i+2+n < len(s) && s[i+2+n] == '}' {
				b.WriteString(lookup(vars, s[i+2:i+2+n]))
				i += n + 3
				continue
			}
			b.WriteByte('$')
			i++
		default:
			n := nameLen(s[i+1:])
			if n == 0 {
				b.WriteByte('$')
				i++
				continue
			}
			b.WriteString(lookup(vars, s[i+1:i+1+n]))
			i += n + 1
		}
	}
	return b.String()
}

// nameLen returns the length of the variable name at the start of s:
// [A-Za-z_][A-Za-z0-9_]*, as GitLab's expansion accepts.
func nameLen(s string) int {
	if s == "" || s[0] >= '0' && s[0] <= '9' || !isWord(s[0]) {
		return 0
	}
	n := 1
	for n < len(s) && isWord(s[n]) {
		n++
	}
	return n
}

func lookup(vars Lookup, name string) string {
	if vars == nil {
		return ""
	}
	v, _ := vars(name)
	return v
}
