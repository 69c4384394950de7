package ciexpr

import (
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"
)

// Limits that keep hostile input cheap. MaxTokens matches GitLab, which
// rejects an expression once its lexer has produced 100 tokens.
const (
	MaxLength = 64 << 10 // bytes in an expression
	MaxTokens = 99       // tokens in an expression
	maxDepth  = 64       // nesting of parentheses; MaxTokens already bounds it
)

type tokenKind int

const (
	tokLParen tokenKind = iota
	tokRParen
	tokVariable
	tokString
	tokRegexp
	tokNull
	tokEq
	tokNe
	tokMatch
	tokNotMatch
	tokAnd
	tokOr
)

func (k tokenKind) String() string {
	switch k {
	case tokLParen:
		return "'('"
	case tokRParen:
		return "')'"
	case tokVariable:
		return "variable"
	case tokString:
		return "string"
	case tokRegexp:
		return "regular expression"
	case tokNull:
		return "null"
	case tokEq:
		return "'=='"
	case tokNe:
		return "'!='"
	case tokMatch:
		return "'=~'"
	case tokNotMatch:
		return "'!~'"
	case tokAnd:
		return "'&&'"
	case tokOr:
		return "'||'"
	}
	return "token"
}

type token struct {
	kind tokenKind
	pos  int    // byte offset in the source, for messages
	text string // variable name, string contents, or regexp source
	re   *regexp.Regexp
}

// SyntaxError describes an expression that cannot be parsed.
type SyntaxError struct {
	Expr   string // the expression, possibly truncated
	Offset int    // byte offset of the problem
	Msg    string
}

// Error implements error.
func (e *SyntaxError) Error() string {
	return fmt.Sprintf("ciexpr: invalid expression %q at offset %d: %s", e.Expr, e.Offset, e.Msg)
}

func syntaxErr(src string, pos int, format string, args ...any) *SyntaxError {
	// Hostile input can be 64 KiB and RE2 errors quote the pattern: keep
	// messages readable in logs and UIs.
	return &SyntaxError{Expr: clip(src, 200), Offset: pos, Msg: clip(fmt.Sprintf(format, args...), 300)}
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "..."
}

// isSpace is Ruby's \s, which GitLab's lexer skips between tokens.
func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'
}

// isWord is Ruby's \w in a regexp without the Unicode flag.
func isWord(c byte) bool {
	return c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

func lex(src string) ([]token, error) {
	if len(src) > MaxLength {
		return nil, syntaxErr(src, MaxLength, "expression longer than %d bytes", MaxLength)
	}
	var toks []token
	i := 0
	for {
		for i < len(src) && isSpace(src[i]) {
			i++
		}
		if i >= len(src) {
			return toks, nil
		}
		if len(toks) == MaxTokens {
			return nil, syntaxErr(src, i, "too many tokens (GitLab allows at most %d)", MaxTokens)
		}
		tok, next, err := lexOne(src, i)
		if err != nil {
			return nil, err
		}
		toks = append(toks, tok)
		i = next
	}
}

// lexOne scans the token starting at src[i] and returns it with the offset
// just past it.
func lexOne(src string, i int) (token, int, error) {
	switch c := src[i]; c {
	case '(':
		return token{kind: tokLParen, pos: i}, i + 1, nil
	case ')':
		return token{kind: tokRParen, pos: i}, i + 1, nil
	case '$':
		j := i + 1
		for j < len(src) && isWord(src[j]) {
			j++
		}
		if j == i+1 {
			if j < len(src) && src[j] == '{' {
				return token{}, 0, syntaxErr(src, i, "${NAME} is not allowed in expressions, write $NAME")
			}
			return token{}, 0, syntaxErr(src, i, "'$' must be followed by a variable name")
		}
		return token{kind: tokVariable, pos: i, text: src[i+1 : j]}, j, nil
	case '"', '\'':
		// No escapes, and no line breaks: GitLab's string pattern is a lazy
		// "(.*?)" whose dot stops at a newline.
		for j := i + 1; j < len(src); j++ {
			switch src[j] {
			case c:
				return token{kind: tokString, pos: i, text: src[i+1 : j]}, j + 1, nil
			case '\n':
				return token{}, 0, syntaxErr(src, i, "string literal not terminated before end of line")
			}
		}
		return token{}, 0, syntaxErr(src, i, "unterminated string literal")
	case '/':
		return lexRegexp(src, i)
	}
	if strings.HasPrefix(src[i:], "null") {
		return token{kind: tokNull, pos: i}, i + 4, nil
	}
	if i+1 < len(src) {
		if kind, ok := operatorKind(src[i : i+2]); ok {
			return token{kind: kind, pos: i}, i + 2, nil
		}
	}
	if src[i] == '=' {
		return token{}, 0, syntaxErr(src, i, "unexpected '=': use '==' to compare")
	}
	r, _ := utf8.DecodeRuneInString(src[i:])
	return token{}, 0, syntaxErr(src, i, "unexpected character %q", r)
}

func operatorKind(s string) (tokenKind, bool) {
	switch s {
	case "==":
		return tokEq, true
	case "!=":
		return tokNe, true
	case "=~":
		return tokMatch, true
	case "!~":
		return tokNotMatch, true
	case "&&":
		return tokAnd, true
	case "||":
		return tokOr, true
	}
	return 0, false
}

// lexRegexp scans a /pattern/flags literal. A backslash escapes the next
// character, so \/ does not end the pattern; it stands for a plain slash.
// Like GitLab, the pattern needs at least two characters and may not span
// lines, and it must compile as RE2: that is checked here so a bad pattern
// is a syntax error, as GitLab reports it, not a silent mismatch later.
func lexRegexp(src string, start int) (token, int, error) {
	var b strings.Builder
	chars := 0
	j := start + 1
	for ; j < len(src) && src[j] != '/'; j++ {
		switch src[j] {
		case '\n', '\r':
			return token{}, 0, syntaxErr(src, start, "regular expression literal not terminated before end of line")
		case '\\':
			if j+1 < len(src) && src[j+1] == '/' {
				b.WriteByte('/')
				j++
				chars += 2
				continue
			}
			if j+1 < len(src) && src[j+1] != '\n' && src[j+1] != '\r' {
				// Copy the escape pair whole so an escaped backslash cannot
				// escape the closing slash.
				b.WriteByte('\\')
				chars++
				j++
			}
		}
		if utf8.RuneStart(src[j]) {
			chars++
		}
		b.WriteByte(src[j])
	}
	if j >= len(src) {
		return token{}, 0, syntaxErr(src, start, "unterminated regular expression literal")
	}
	if chars < 2 {
		return token{}, 0, syntaxErr(src, start, "regular expression literal %s is too short: GitLab needs at least two characters between the slashes", clip(src[start:j+1], 40))
	}
	flagStart := j + 1
	end := flagStart
	for end < len(src) && strings.IndexByte("ismU", src[end]) >= 0 {
		end++
	}
	pattern, flags := b.String(), src[flagStart:end]
	re, err := compileRE2(pattern, flags)
	if err != nil {
		return token{}, 0, syntaxErr(src, start, "%s is not a valid RE2 regular expression: %v", clip(src[start:end], 40), unwrapRE2(err))
	}
	return token{kind: tokRegexp, pos: start, text: src[start:end], re: re}, end, nil
}

func unwrapRE2(err error) error {
	if u, ok := err.(interface{ Unwrap() error }); ok && u.Unwrap() != nil {
		return u.Unwrap()
	}
	return err
}
