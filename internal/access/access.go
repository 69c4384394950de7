// Package access is Kiln's one home for authorization policy: who may see a
// project, what each role may do, whether a ref is protected, and what a CI
// job token may reach. HTTP adapters (api, web, git over HTTP, runnerapi),
// the schedule and trigger packages and the pipeline engine ask it; none
// re-implements a rule (internal/archtest keeps it so).
//
// The rules are plain functions of their inputs (levels, projects, refs), so
// they are table-tested here; Policy adds the store lookups they need.
package access

import (
	"context"
	"strings"

	"github.com/kilnci/kiln/internal/store"
)

// Roles, as GitLab numbers them.
const (
	NoAccess   = store.NoAccess
	Guest      = store.Guest
	Reporter   = store.Reporter
	Developer  = store.Developer
	Maintainer = store.Maintainer
	Owner      = store.Owner
)

// Messages GitLab uses for refusals decided here.
const (
	MsgCreatePipeline = "Insufficient permissions to create a new pipeline"
)

// MsgProtectedRef is GitLab's refusal of a pipeline on a protected ref the
// identity may not update.
func MsgProtectedRef(ref string) string {
	return "Insufficient permissions for protected ref '" + ref + "'"
}

// Policy answers access questions that need the store.
type Policy struct {
	Store *store.Store
}

// New returns the policy over st.
func New(st *store.Store) *Policy { return &Policy{Store: st} }

// Level is u's effective access level to p (highest of direct, group and
// personal-namespace membership; admins are owners). Nobody, blocked and
// deactivated users have no access.
func (a *Policy) Level(ctx context.Context, p *store.Project, u *store.User) (int, error) {
	if u == nil || (u.State != "" && u.State != "active") {
		return NoAccess, nil
	}
	return a.Store.AccessLevel(ctx, p, u)
}

// GroupLevel is u's access level in a group.
func (a *Policy) GroupLevel(ctx context.Context, nsID int64, u *store.User) (int, error) {
	if u == nil || (u.State != "" && u.State != "active") {
		return NoAccess, nil
	}
	return a.Store.GroupAccessLevel(ctx, nsID, u)
}

// VisibleTo reports whether a project or group of the given visibility is
// visible to u without membership: public to everyone, internal to every
// signed-in user.
func VisibleTo(visibility string, u *store.User) bool {
	return visibility == "public" || (visibility == "internal" && u != nil)
}

// CanRead reports whether u, with level on p, may read p (its code,
// pipelines, jobs): members from Reporter up, and anyone p's visibility
// admits. Guests of a visible project read like outsiders.
func CanRead(p *store.Project, u *store.User, level int) bool {
	return level >= Reporter || VisibleTo(p.Visibility, u)
}

// Hidden reports whether p must look absent to u (404 rather than 403):
// u is no member and p's visibility does not admit u.
func Hidden(p *store.Project, u *store.User, level int) bool {
	return level == NoAccess && !VisibleTo(p.Visibility, u)
}

// At reports whether level reaches role (e.g. At(level, Developer)).
func At(level, role int) bool { return level >= role }

// CanCreatePipeline reports whether level may start pipelines on p at all.
func CanCreatePipeline(level int) bool { return level >= Developer }

// CanUpdateProtectedRef reports whether level may push to, run pipelines on
// and act on pipelines of a protected ref. Kiln's protected branches and tags
// admit Maintainers (GitLab's default "Allowed to push and merge:
// Maintainers"); the default branch is always protected.
func CanUpdateProtectedRef(level int) bool { return level >= Maintainer }

// CanActOnPipeline reports whether level may retry, cancel or play jobs of
// a pipeline, given whether its ref is protected.
func CanActOnPipeline(level int, protected bool) bool {
	return level >= Developer && (!protected || CanUpdateProtectedRef(level))
}

// PipelineDenial returns GitLab's refusal message when level may not create
// a pipeline on ref (as the caller named it), or "" when it may.
func PipelineDenial(level int, protected bool, ref string) string {
	switch {
	case !CanCreatePipeline(level):
		return MsgCreatePipeline
	case protected && !CanUpdateProtectedRef(level):
		return MsgProtectedRef(ref)
	}
	return ""
}

const (
	branchPrefix = "refs/heads/"
	tagPrefix    = "refs/tags/"
)

// MatchRef reports whether a protected branch or tag name matches name, as
// GitLab's RefMatcher does: an exact match, or a wildcard match where each
// '*' stands for any run of characters, '/' included (`release/*` matches
// `release/a/b`; `*-stable` matches `1-0-stable`). Every other character,
// '?' and '[' included, is literal.
func MatchRef(pattern, name string) bool {
	if pattern == "" {
		return false
	}
	if pattern == name {
		return true
	}
	if !strings.Contains(pattern, "*") {
		return false
	}
	parts := strings.Split(pattern, "*")
	if !strings.HasPrefix(name, parts[0]) {
		return false
	}
	rest := name[len(parts[0]):]
	last := parts[len(parts)-1]
	for _, mid := range parts[1 : len(parts)-1] {
		i := strings.Index(rest, mid)
		if i < 0 {
			return false
		}
		rest = rest[i+len(mid):]
	}
	return len(rest) >= len(last) && strings.HasSuffix(rest, last)
}

// SplitRef splits a full branch or tag ref into its short name and whether
// it is a tag. Any other name (a short one) is returned as a branch name.
func SplitRef(full string) (name string, tag bool) {
	if n, ok := strings.CutPrefix(full, tagPrefix); ok {
		return n, true
	}
	return strings.TrimPrefix(full, branchPrefix), false
}

// RefProtected reports whether a protected branch or tag of p covers name
// (tag tells which kind): the default branch always is, as GitLab protects
// it on creation, plus every protected_refs entry that matches.
func RefProtected(p *store.Project, refs []*store.ProtectedRef, name string, tag bool) bool {
	kind := "branch"
	if tag {
		kind = "tag"
	} else if name == p.DefaultBranch && name != "" {
		return true
	}
	for _, r := range refs {
		if r.Kind == kind && MatchRef(r.Name, name) {
			return true
		}
	}
	return false
}

// protectedRefs loads both kinds of p's protected refs.
func (a *Policy) protectedRefs(ctx context.Context, p *store.Project) ([]*store.ProtectedRef, error) {
	var out []*store.ProtectedRef
	for _, kind := range []string{"branch", "tag"} {
		refs, err := a.Store.ProtectedRefs(ctx, p.ID, kind)
		if err != nil {
			return nil, err
		}
		out = append(out, refs...)
	}
	return out, nil
}

// Protected reports whether the full ref (refs/heads/x or refs/tags/x) is
// protected in p. A short name counts as a branch. On a store error it
// answers true: failing closed keeps protected variables where they belong.
func (a *Policy) Protected(ctx context.Context, p *store.Project, fullRef string) (bool, error) {
	refs, err := a.protectedRefs(ctx, p)
	if err != nil {
		return true, err
	}
	name, tag := SplitRef(fullRef)
	return RefProtected(p, refs, name, tag), nil
}

// ProtectedPatterns lists p's protected refs as full-ref patterns for the
// git pre-receive hook ("refs/heads/main", "refs/tags/v*"). The hook
// matches them with the shell's case, where '*' also matches '/'; protected
// names are validated as ref names with '*' (ValidProtectedName), so '*' is
// the only special character they can hold and the hook agrees with
// MatchRef.
func (a *Policy) ProtectedPatterns(ctx context.Context, p *store.Project) ([]string, error) {
	refs, err := a.protectedRefs(ctx, p)
	if err != nil {
		return nil, err
	}
	var pats []string
	if p.DefaultBranch != "" {
		pats = append(pats, branchPrefix+p.DefaultBranch)
	}
	for _, r := range refs {
		prefix := branchPrefix
		if r.Kind == "tag" {
			prefix = tagPrefix
		}
		pats = append(pats, prefix+r.Name)
	}
	return pats, nil
}

// JobTokenAllowed reports whether a CI job token of a job in project
// jobProjectID may reach target at all (before its user's access is
// considered): always its own project; another project only when target
// does not limit job-token access ("Limit access to this project", on for
// new projects as in GitLab 18; Kiln keeps no allowlist entries, so a
// limited project admits only its own jobs).
func JobTokenAllowed(target *store.Project, jobProjectID int64) bool {
	return jobProjectID == target.ID || !target.JobTokenAllowlist
}

// Git is who asks for a repository over HTTP.
type Git struct {
	User  *store.User
	Level int // User's level on the project
	// Token is the personal access token that authenticated, if any: its
	// scopes narrow what the user may do.
	Token *store.Token
	// JobProjectID is set when a CI job token authenticated: the project
	// of that job.
	JobProjectID int64
}

// GitAccess reports whether g may fetch from and push to p: reading is
// CanRead (a job token always reads its own project, and other projects
// only as JobTokenAllowed lets it); pushing needs Developer and never
// happens with a job token. Which refs a push may touch is ProtectedPatterns'
// business (CanUpdateProtectedRef).
func GitAccess(p *store.Project, g Git) (read, write bool) {
	read, write = CanRead(p, g.User, g.Level), g.Level >= Developer
	if g.Token != nil {
		read = read && (g.Token.HasScope("read_repository") || g.Token.HasScope("write_repository") || g.Token.HasScope("api"))
		write = write && (g.Token.HasScope("write_repository") || g.Token.HasScope("api"))
	}
	if g.JobProjectID != 0 {
		write = false
		switch {
		case g.JobProjectID == p.ID:
			read = true
		case !JobTokenAllowed(p, g.JobProjectID):
			read = false
		}
	}
	return read, write
}

// CanReadVia reports whether u (level on p) may read p, possibly through a
// CI job token of a job of project jobProjectID (0: no job token): the
// token's own project always, others only as JobTokenAllowed lets it and
// then as its user may.
func CanReadVia(p *store.Project, u *store.User, level int, jobProjectID int64) bool {
	if jobProjectID != 0 {
		if jobProjectID == p.ID {
			return true
		}
		if !JobTokenAllowed(p, jobProjectID) {
			return false
		}
	}
	return CanRead(p, u, level)
}

// Effective is the level u acts with on p: a project p's visibility shows
// to u is read by everyone who sees it, so outsiders and guest members
// alike act as Reporters there.
func Effective(p *store.Project, u *store.User, level int) int {
	if VisibleTo(p.Visibility, u) && level < Reporter {
		return Reporter
	}
	return level
}

// GroupHidden reports whether a group must look absent to u (404).
func GroupHidden(g *store.Namespace, u *store.User, level int) bool {
	return level == NoAccess && !VisibleTo(g.Visibility, u)
}

// Outranks reports whether level a is above level b (a maintainer may not
// remove or demote an owner).
func Outranks(a, b int) bool { return a > b }

// IsMember reports whether level is any membership at all.
func IsMember(level int) bool { return level > NoAccess }

// RoleName is GitLab's name of the role level reaches.
func RoleName(level int) string {
	switch {
	case level >= Owner:
		return "Owner"
	case level >= Maintainer:
		return "Maintainer"
	case level >= Developer:
		return "Developer"
	case level >= Reporter:
		return "Reporter"
	case level >= Guest:
		return "Guest"
	}
	return "No access"
}

// ManagesToken reports whether u may see and revoke a personal access token
// owned by ownerID: its owner, or an administrator.
func ManagesToken(ownerID int64, u *store.User) bool {
	return u != nil && (u.ID == ownerID || u.IsAdmin)
}
