package gitrepo

import (
	"strings"
	"unicode/utf8"
)

// maxBraceExpansions bounds "{a,b}{c,d}..." so a hostile pattern cannot
// explode into millions of alternatives.
const maxBraceExpansions = 256

// globPattern is one brace-free pattern split into path segments. A "**"
// segment that is not the last one matches zero or more directories.
type globPattern struct {
	segs []string
}

// hasGlobMeta reports whether p uses any wildcard syntax.
func hasGlobMeta(p string) bool {
	return strings.ContainsAny(p, "*?[{\\")
}

// unescapeGlob removes backslash escapes from a pattern without wildcards.
func unescapeGlob(p string) string {
	if !strings.Contains(p, "\\") {
		return p
	}
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		if p[i] == '\\' && i+1 < len(p) {
			i++
		}
		b.WriteByte(p[i])
	}
	return b.String()
}

// compileGlob expands braces (FNM_EXTGLOB) and splits each alternative into
// segments.
func compileGlob(p string) []globPattern {
	alts := expandBraces(p, maxBraceExpansions)
	out := make([]globPattern, 0, len(alts))
	for _, a := range alts {
		out = append(out, globPattern{segs: strings.Split(a, "/")})
	}
	return out
}

// expandBraces returns the brace alternatives of p, at most limit of them.
// An unbalanced '{' is kept literally.
func expandBraces(p string, limit int) []string {
	if limit <= 0 {
		return nil
	}
	open := -1
	for i := 0; i < len(p); i++ {
		switch p[i] {
		case '\\':
			i++
		case '{':
			open = i
		}
		if open >= 0 {
			break
		}
	}
	if open < 0 {
		return []string{p}
	}
	depth, closeIdx := 0, -1
	var commas []int
	for i := open; i < len(p) && closeIdx < 0; i++ {
		switch p[i] {
		case '\\':
			i++
		case '{':
			depth++
		case '}':
			depth--
			if depth == 0 {
				closeIdx = i
			}
		case ',':
			if depth == 1 {
				commas = append(commas, i)
			}
		}
	}
	if closeIdx < 0 {
		// Unbalanced: treat this '{' as a literal and expand the rest.
		var out []string
		for _, rest := range expandBraces(p[open+1:], limit) {
			out = append(out, p[:open]+`\{`+rest)
		}
		return out
	}
	prefix, suffix := p[:open], p[closeIdx+1:]
	var out []string
	start := open + 1
	for _, end := range append(commas, closeIdx) {
		for _, e := range expandBraces(prefix+p[start:end]+suffix, limit-len(out)) {
			if len(out) >= limit {
				return out
			}
			out = append(out, e)
		}
		start = end + 1
	}
	return out
}

// step advances the set of pattern positions over one path segment. Set
// positions make "**" linear rather than exponential in the pattern.
func (g globPattern) step(cur []bool, seg string, isDir bool) []bool {
	m := len(g.segs)
	next := make([]bool, m+1)
	for i := 0; i < m; i++ {
		if !cur[i] {
			continue
		}
		if g.segs[i] == "**" && i < m-1 {
			// "**/" consumes directories only, never the file name itself.
			if isDir {
				next[i] = true
			}
			continue
		}
		if matchSegment(g.segs[i], seg) {
			next[i+1] = true
		}
	}
	g.closure(next)
	return next
}

// closure lets "**/" match zero directories.
func (g globPattern) closure(set []bool) {
	m := len(g.segs)
	for i := 0; i < m; i++ {
		if set[i] && g.segs[i] == "**" && i < m-1 {
			set[i+1] = true
		}
	}
}

func (g globPattern) start() []bool {
	set := make([]bool, len(g.segs)+1)
	set[0] = true
	g.closure(set)
	return set
}

// match reports whether the file path (split in segments) matches.
func (g globPattern) match(path []string) bool {
	cur := g.start()
	for i, seg := range path {
		cur = g.step(cur, seg, i < len(path)-1)
	}
	return cur[len(g.segs)]
}

// couldMatchUnder reports whether some file below directory dir could match,
// letting the tree walk skip whole subtrees.
func (g globPattern) couldMatchUnder(dir []string) bool {
	cur := g.start()
	for _, seg := range dir {
		cur = g.step(cur, seg, true)
	}
	for i := 0; i < len(g.segs); i++ {
		if cur[i] {
			return true
		}
	}
	return false
}

// matchSegment matches one path segment against one pattern segment with
// "*", "?", "[...]" and backslash escapes. Stars backtrack to the most
// recent star only, which keeps matching linear-ish (O(len(p)*len(s))).
func matchSegment(p, s string) bool {
	px, sx := 0, 0
	starP, starS := -1, -1
	for px < len(p) || sx < len(s) {
		if px < len(p) {
			switch c := p[px]; c {
			case '*':
				for px < len(p) && p[px] == '*' {
					px++
				}
				starP, starS = px, sx
				continue
			case '?':
				if sx < len(s) {
					_, n := utf8.DecodeRuneInString(s[sx:])
					px++
					sx += n
					continue
				}
			case '[':
				if sx < len(s) {
					r, n := utf8.DecodeRuneInString(s[sx:])
					if ok, width, valid := matchClass(p[px:], r); valid {
						if ok {
							px += width
							sx += n
							continue
						}
						break
					}
					// No closing bracket: '[' is literal.
					if s[sx] == '[' {
						px++
						sx++
						continue
					}
				}
			case '\\':
				lit := byte('\\')
				w := 1
				if px+1 < len(p) {
					lit, w = p[px+1], 2
				}
				if sx < len(s) && s[sx] == lit {
					px += w
					sx++
					continue
				}
			default:
				if sx < len(s) && s[sx] == c {
					px++
					sx++
					continue
				}
			}
		}
		if starP >= 0 && starS < len(s) {
			_, n := utf8.DecodeRuneInString(s[starS:])
			starS += n
			px, sx = starP, starS
			continue
		}
		return false
	}
	return true
}

// matchClass matches r against the bracket expression at the start of p.
// valid is false when the expression has no closing ']'.
func matchClass(p string, r rune) (ok bool, width int, valid bool) {
	i := 1
	negate := false
	if i < len(p) && (p[i] == '!' || p[i] == '^') {
		negate = true
		i++
	}
	first := true
	for i < len(p) {
		if p[i] == ']' && !first {
			return ok != negate, i + 1, true
		}
		first = false
		lo, n := classChar(p, i)
		if n == 0 {
			return false, 0, false
		}
		i += n
		hi := lo
		if i+1 < len(p) && p[i] == '-' && p[i+1] != ']' {
			var m int
			hi, m = classChar(p, i+1)
			if m == 0 {
				return false, 0, false
			}
			i += 1 + m
		}
		if lo <= r && r <= hi {
			ok = true
		}
	}
	return false, 0, false
}

func classChar(p string, i int) (rune, int) {
	if p[i] == '\\' {
		if i+1 >= len(p) {
			return 0, 0
		}
		r, n := utf8.DecodeRuneInString(p[i+1:])
		return r, n + 1
	}
	r, n := utf8.DecodeRuneInString(p[i:])
	return r, n
}
