package gitrepo

import (
	"context"
	"strings"
)

type protectedRefsKey struct{}

// WithProtectedRefs returns a context under which ServeGit refuses pushes
// that create, update or delete refs matching any of patterns (full ref
// names with shell-glob wildcards, e.g. "refs/heads/main",
// "refs/heads/release/*", "refs/tags/v*"). The caller passes it for pushers
// who may not touch protected refs; the pre-receive hook enforces it, so the
// whole push is refused before any ref moves.
func WithProtectedRefs(ctx context.Context, patterns []string) context.Context {
	var ok []string
	for _, p := range patterns {
		// Ref names cannot contain spaces or control characters; a pattern
		// that does could split into others in the hook, so it is dropped.
		if p != "" && !strings.ContainsAny(p, " \t\r\n") {
			ok = append(ok, p)
		}
	}
	return context.WithValue(ctx, protectedRefsKey{}, ok)
}

func protectedRefsEnv(ctx context.Context) []string {
	if pats, _ := ctx.Value(protectedRefsKey{}).([]string); len(pats) > 0 {
		return []string{"KILN_PROTECTED_REFS=" + strings.Join(pats, " ")}
	}
	return nil
}
