package access

import (
	"fmt"
	"net/netip"
	"strings"
)

// TriggerTokenDenial applies a trigger token's own policy: the networks
// it is accepted from (allowedCIDRs, against the TCP peer's address) and
// the branch or tag names it may run (allowedRefs, MatchRef patterns).
// Empty lists restrict nothing. It returns "" when the call is allowed,
// else the 403 message and the precise reason for the deliveries log.
func TriggerTokenDenial(allowedRefs, allowedCIDRs []string, sourceIP, ref string) (msg, reason string) {
	if len(allowedCIDRs) > 0 {
		addr, err := netip.ParseAddr(sourceIP)
		ok := false
		for _, c := range allowedCIDRs {
			if pfx, perr := netip.ParsePrefix(c); err == nil && perr == nil && pfx.Contains(addr.Unmap()) {
				ok = true
				break
			}
		}
		if !ok {
			return "403 Forbidden - this trigger token is not accepted from " + sourceIP,
				fmt.Sprintf("token policy: source address %s is not in the allowed networks %s", sourceIP, strings.Join(allowedCIDRs, ", "))
		}
	}
	if len(allowedRefs) > 0 {
		name := strings.TrimPrefix(strings.TrimPrefix(ref, "refs/heads/"), "refs/tags/")
		for _, pat := range allowedRefs {
			if MatchRef(pat, name) {
				return "", ""
			}
		}
		return fmt.Sprintf("403 Forbidden - this trigger token may not run pipelines for ref '%s'", ref),
			fmt.Sprintf("token policy: ref '%s' matches none of the allowed refs %s", ref, strings.Join(allowedRefs, ", "))
	}
	return "", ""
}

// MsgVariablesForbidden is GitLab's refusal of pipeline variables the
// caller may not set.
const MsgVariablesForbidden = "Insufficient permissions to set pipeline variables"

// TriggerVariablesDenial applies a trigger token's variables policy to the
// variable names a call sets (TRIGGER_PAYLOAD, which Kiln adds itself, is
// never among them): none at all when variablesAllowed is false, else only
// allowedNames when that list is not empty. It returns "" when the call is
// allowed, else GitLab's message and the precise reason for the
// deliveries log.
func TriggerVariablesDenial(variablesAllowed bool, allowedNames, names []string) (msg, reason string) {
	if len(names) == 0 {
		return "", ""
	}
	if !variablesAllowed {
		return MsgVariablesForbidden, "token policy: this token may not set variables (sent " + strings.Join(names, ", ") + ")"
	}
	if len(allowedNames) == 0 {
		return "", ""
	}
	var refused []string
	for _, n := range names {
		ok := false
		for _, a := range allowedNames {
			if n == a {
				ok = true
				break
			}
		}
		if !ok {
			refused = append(refused, n)
		}
	}
	if len(refused) == 0 {
		return "", ""
	}
	return MsgVariablesForbidden, fmt.Sprintf("token policy: variables %s are not among the allowed variables %s",
		strings.Join(refused, ", "), strings.Join(allowedNames, ", "))
}

// pipelineVariablesRole maps a value of
// ci_pipeline_variables_minimum_override_role (the project's "minimum role
// to use pipeline variables") to its level; no_one_allowed is -1.
func pipelineVariablesRole(role string) (int, bool) {
	switch role {
	case "no_one_allowed":
		return -1, true
	case "developer":
		return Developer, true
	case "maintainer":
		return Maintainer, true
	case "owner":
		return Owner, true
	}
	return 0, false
}

// ValidPipelineVariablesRole reports whether role is one of
// no_one_allowed, developer, maintainer, owner.
func ValidPipelineVariablesRole(role string) bool { _, ok := pipelineVariablesRole(role); return ok }

// PipelineVariablesDenial applies the project's minimum role to use
// pipeline variables (minRole; "" is GitLab's self-managed default,
// developer) to a caller at level setting the variables names. It returns
// "" when allowed, else GitLab's message and the reason for logs.
func PipelineVariablesDenial(level int, minRole string, names []string) (msg, reason string) {
	if len(names) == 0 {
		return "", ""
	}
	if minRole == "" {
		minRole = "developer"
	}
	min, ok := pipelineVariablesRole(minRole)
	if ok && min >= 0 && level >= min {
		return "", ""
	}
	return MsgVariablesForbidden, fmt.Sprintf("project policy: the minimum role to use pipeline variables is %s (sent %s)", minRole, strings.Join(names, ", "))
}

// ManagesTrigger reports whether user may change (rotate, edit) a trigger
// token owned by ownerID: only its owner, as in GitLab.
func ManagesTrigger(userID, ownerID int64) bool { return userID != 0 && userID == ownerID }
