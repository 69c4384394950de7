package api

import "time"

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
