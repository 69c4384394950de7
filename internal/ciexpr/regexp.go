package ciexpr

import (
	"fmt"
	"regexp"
	"strings"
)

// ParseRegexp compiles s written in GitLab's "/pattern/flags" syntax, the
// form of regex-holding variables and of only/except refs patterns. Flags
// may be any of i, m, s and U with their RE2 meaning. It fails when s is not
// of that form or when RE2 cannot compile the pattern (lookaround,
// backreferences...); GitLab ignores such patterns rather than falling back
// to a backtracking engine, so callers should too.
func ParseRegexp(s string) (*regexp.Regexp, error) {
	// Only the last slash can close the pattern: flags never contain one.
	end := strings.LastIndexByte(s, '/')
	if len(s) < 2 || s[0] != '/' || end < 1 {
		return nil, fmt.Errorf("ciexpr: %q is not a /pattern/flags regular expression", s)
	}
	flags := s[end+1:]
	if strings.Trim(flags, "ismU") != "" {
		return nil, fmt.Errorf("ciexpr: %q has flags other than i, m, s, U", s)
	}
	pattern := s[1:end]
	// GitLab's matcher cannot span lines there, so a multi-line value is a
	// plain string, not a pattern.
	if strings.ContainsAny(pattern, "\r\n") {
		return nil, fmt.Errorf("ciexpr: %q spans several lines", s)
	}
	return compileRE2(pattern, flags)
}

func compileRE2(pattern, flags string) (*regexp.Regexp, error) {
	if flags != "" {
		pattern = "(?" + flags + ")" + pattern
	}
	re, err := regexp.Compile(pattern)
	if err != nil {
		return nil, fmt.Errorf("ciexpr: invalid RE2 regular expression: %w", err)
	}
	return re, nil
}
