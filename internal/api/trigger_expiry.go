package api

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/kilnci/kiln/internal/store"
)

// TriggerExpiryProblem applies POST /triggers' rule for expires_at to a
// form's date (the web UI's create form): in the future, at most
// maxTriggerLifetime ahead. "" when fine.
func TriggerExpiryProblem(exp, now time.Time) string {
	if !exp.After(now) {
		return "Expires at must be in the future."
	}
	if max := now.Add(maxTriggerLifetime); exp.After(max) {
		return "Expires at must be before " + max.UTC().Format("2006-01-02") + "."
	}
	return ""
}

// TriggerPolicyProblem applies the API's rules for a token's policy
// (allowed_refs, allowed_cidrs, allowed_variables as comma-separated
// lists, variables_allowed, rate_limit) to the web form's fields, filling
// pol. It returns "" when fine, else the problem in words.
func TriggerPolicyProblem(fields map[string]string, pol *store.Trigger) string {
	v := map[string]any{}
	for k, s := range fields {
		v[k] = s
	}
	if _, err := triggerPolicyParams(&Params{v: v}, pol); err != nil {
		var ae *apiError
		if errors.As(err, &ae) {
			if m, ok := ae.Body["message"].(map[string][]string); ok {
				for field, msgs := range m {
					return strings.ReplaceAll(field, "_", " ") + " " + strings.Join(msgs, ", ")
				}
			}
			return fmt.Sprint(ae.Body["message"])
		}
		return err.Error()
	}
	return ""
}
