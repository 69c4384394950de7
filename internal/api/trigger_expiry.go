package api

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/kilnci/kiln/internal/store"
)

// TriggerExpiryProblem applies POST /triggers' rule for expires_at to a
// form's date (the web UI's create form): in the future, at most
// maxTriggerLifetime ahead. "" when fine.
func TriggerExpiryProblem(exp, now time.Time) string {
	if err := checkTriggerExpiry(&exp, now); err != nil {
		return "Expires at " + strings.TrimPrefix(problemText(err), "expires at ") + "."
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
		return problemText(err)
	}
	return ""
}

// TriggerChange applies PUT /triggers/:id's rules (description,
// expires_at, the policy) to the web edit form's fields: tr as changed (a
// copy; nothing is written), or the problem in words.
func TriggerChange(fields map[string]string, tr *store.Trigger, now time.Time) (*store.Trigger, string) {
	v := map[string]any{}
	for k, s := range fields {
		v[k] = s
	}
	next, _, err := triggerChange(&Params{v: v}, tr, now)
	if err != nil {
		return nil, problemText(err)
	}
	return next, ""
}

// problemText is an API refusal in words for a form: "field message".
func problemText(err error) string {
	var ae *apiError
	if errors.As(err, &ae) {
		if m, ok := ae.Body["message"].(map[string][]string); ok {
			for _, field := range slices.Sorted(maps.Keys(m)) {
				return strings.ReplaceAll(field, "_", " ") + " " + strings.Join(m[field], ", ")
			}
		}
		if e, ok := ae.Body["error"]; ok {
			// "expires_at is invalid": the parameter's name in words.
			field, rest, _ := strings.Cut(fmt.Sprint(e), " ")
			return strings.ReplaceAll(field, "_", " ") + " " + rest
		}
		return fmt.Sprint(ae.Body["message"])
	}
	return err.Error()
}
