// Package ciexpr implements GitLab CI's expression language, as used by
// rules:if and only/except:variables, together with GitLab-style variable
// expansion ($VAR, ${VAR}).
//
// The semantics follow GitLab's own implementation rather than a tidier
// design, because pipelines written for GitLab must behave identically here:
//
//   - && and || return one of their operands (like Ruby), not a boolean, and
//     use Ruby truthiness (only null and false are false; "" is true).
//   - The final rules:if decision (Truthy) uses Ruby's present?: null, false,
//     and blank strings (empty or whitespace-only) are false.
//   - The right side of =~ and !~ may be a regex literal, or a string or
//     variable holding "/pattern/flags"; any other string is used as a plain
//     string, and matches when it contains the left side as a substring.
//   - Regular expressions are RE2; a regex literal that RE2 cannot compile
//     (lookaround, backreferences) is a syntax error.
//   - ${VAR} is not valid inside an expression, only $VAR (GitLab rejects it
//     too); Expand accepts both.
//
// Parsing is bounded: expressions are limited to MaxLength bytes and
// MaxTokens tokens, and evaluation is linear in the size of the tree.
package ciexpr
