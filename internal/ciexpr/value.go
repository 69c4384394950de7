package ciexpr

import (
	"regexp"
	"strings"
	"unicode"
)

// Kind is the dynamic type of a Value.
type Kind int

// The kinds of Value an expression can produce.
const (
	KindNull   Kind = iota // an undefined variable or the null literal
	KindString             // a string literal or a variable's value
	KindBool               // the result of ==, !=, =~ or !~
	KindRegexp             // a /pattern/flags literal
)

// String returns the kind's name, for messages.
func (k Kind) String() string {
	switch k {
	case KindNull:
		return "null"
	case KindString:
		return "string"
	case KindBool:
		return "bool"
	case KindRegexp:
		return "regexp"
	}
	return "unknown"
}

// Value is the result of evaluating an expression or one of its operands.
// The zero Value is null.
type Value struct {
	kind Kind
	str  string // string value; for a regexp, its /source/flags form
	b    bool
	re   *regexp.Regexp
}

// Null returns the null Value.
func Null() Value { return Value{} }

// String returns a string Value.
func String(s string) Value { return Value{kind: KindString, str: s} }

// Bool returns a boolean Value.
func Bool(b bool) Value { return Value{kind: KindBool, b: b} }

// Kind reports the dynamic type of v.
func (v Value) Kind() Kind { return v.kind }

// IsNull reports whether v is null.
func (v Value) IsNull() bool { return v.kind == KindNull }

// Str returns v's string and true when v is a string.
func (v Value) Str() (string, bool) { return v.str, v.kind == KindString }

// BoolValue returns v's boolean and true when v is a boolean.
func (v Value) BoolValue() (bool, bool) { return v.b, v.kind == KindBool }

// Regexp returns the compiled regular expression when v is a regexp, else nil.
func (v Value) Regexp() *regexp.Regexp { return v.re }

// String converts v to a string the way GitLab's Ruby code does when it
// matches a non-string left operand (to_s): null is "", booleans are
// "true"/"false", and a regexp is its /source/flags form.
func (v Value) String() string {
	switch v.kind {
	case KindBool:
		if v.b {
			return "true"
		}
		return "false"
	case KindNull:
		return ""
	}
	return v.str
}

// Truthy reports whether v counts as true for rules:if. It mirrors Ruby's
// present?, so a string holding only whitespace is false, like an empty one.
func (v Value) Truthy() bool {
	switch v.kind {
	case KindNull:
		return false
	case KindBool:
		return v.b
	case KindString:
		return strings.TrimFunc(v.str, unicode.IsSpace) != ""
	}
	return true
}

// rubyTruthy is the truthiness && and || use: Ruby's, where only nil and
// false are false, so "" && "x" is "x".
func (v Value) rubyTruthy() bool {
	switch v.kind {
	case KindNull:
		return false
	case KindBool:
		return v.b
	}
	return true
}

// Equal reports whether v == o in GitLab's sense. Values of different kinds
// are never equal, so "" != null. Regexps are equal when written the same.
func (v Value) Equal(o Value) bool {
	if v.kind != o.kind {
		return false
	}
	switch v.kind {
	case KindNull:
		return true
	case KindBool:
		return v.b == o.b
	}
	return v.str == o.str
}
