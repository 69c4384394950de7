package ciconfig

import (
	"github.com/kilnci/kiln/internal/ciexpr"
	"github.com/kilnci/kiln/internal/cirefs"
)

// This file is the only place that talks to the expression and refs
// packages, so their APIs stay out of the rest of the package.

// checkExpr reports whether s is a valid rules:if / only:variables
// expression.
func checkExpr(s string) error {
	_, err := ciexpr.Parse(s)
	return err
}

// evalExpr evaluates an expression for a rule.
func evalExpr(s string, vars ciexpr.Lookup) (bool, error) {
	return ciexpr.Evaluate(s, vars)
}

// expandVars expands $VAR and ${VAR} references.
func expandVars(s string, vars ciexpr.Lookup) string {
	if vars == nil {
		vars = func(string) (string, bool) { return "", false }
	}
	return ciexpr.Expand(s, vars)
}

// isRegexpLiteral reports whether s is written as /pattern/flags and, if
// so, whether RE2 accepts it.
func isRegexpLiteral(s string) (isRE, valid bool) {
	if len(s) < 2 || s[0] != '/' {
		return false, false
	}
	_, err := ciexpr.ParseRegexp(s)
	return true, err == nil
}

// matchRefs decides only:/except: refs for a pipeline (entries are OR'ed).
func matchRefs(patterns []string, ctx EvalContext) bool {
	return cirefs.Match(patterns, cirefs.Pipeline{
		Ref:         ctx.Ref,
		Tag:         ctx.Tag,
		Source:      ctx.Source,
		ProjectPath: ctx.ProjectPath,
	})
}
