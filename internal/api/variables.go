package api

import (
	"errors"
	"net/http"
	"regexp"

	"github.com/kilnci/kiln/internal/access"
	"github.com/kilnci/kiln/internal/store"
)

func (a *API) variableRoutes() {
	a.handle("GET /api/v4/projects/{id}/variables", a.listVariables)
	a.handle("POST /api/v4/projects/{id}/variables", a.createVariable)
	a.handle("GET /api/v4/projects/{id}/variables/{key}", a.getVariable)
	a.handle("PUT /api/v4/projects/{id}/variables/{key}", a.updateVariable)
	a.handle("DELETE /api/v4/projects/{id}/variables/{key}", a.deleteVariable)
	// Protected branches and tags decide which pipelines see protected
	// variables, so they are registered with them.
	a.protectedRoutes()
}

// GitLab's validation rules for CI/CD variables (Ci::HasVariable, Ci::Maskable).
var (
	keyRE = regexp.MustCompile(`^[a-zA-Z0-9_]+$`)
	// maskRE is GitLab's Ci::Maskable::REGEX: at least 8 characters of the
	// Base64 alphabet (RFC 4648) plus @ : . ~ - = / + _ , so that the runner
	// can find the value verbatim in a log.
	maskRE = regexp.MustCompile(`^[a-zA-Z0-9_+=/@:.~-]{8,}$`)
	// maskRawRE is GitLab's MASK_AND_RAW_REGEX: raw (unexpanded) values may
	// hold any non-whitespace characters, since no $ expansion can change
	// them before they reach the log.
	maskRawRE = regexp.MustCompile(`^\S{8,}$`)
	// envScopeRE is Gitlab::Regex.environment_scope_regex.
	envScopeRE = regexp.MustCompile(`^[a-zA-Z0-9_\\/${}. *-]+$`)
)

const (
	maxVariableValue = 10000
	keyRuleMsg       = "can contain only letters, digits and '_'."
	envScopeRuleMsg  = "can contain only letters, digits, '-', '_', '/', '$', '{', '}', '.', '*' and spaces"
)

// VariableJSON renders a project CI/CD variable with its value in clear.
func (a *API) VariableJSON(v *store.Variable) (map[string]any, error) {
	val, err := a.Secrets.Open(v.ValueEnc)
	if err != nil {
		return nil, err
	}
	return map[string]any{
		"key": v.Key, "value": val, "variable_type": v.VariableType, "protected": v.Protected, "masked": v.Masked,
		"hidden": false, "raw": v.Raw, "environment_scope": v.EnvironmentScope, "description": nilIfEmpty(v.Description),
	}, nil
}

func (a *API) listVariables(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	if err := c.requireUser(); err != nil {
		return err
	}
	p, _, err := a.project(r, c, access.Maintainer)
	if err != nil {
		return err
	}
	page, err := paging(r)
	if err != nil {
		return err
	}
	vs, err := a.Store.ProjectVariables(c.ctx, p.ID)
	if err != nil {
		return err
	}
	out := []map[string]any{}
	for i := page.Offset(); i < len(vs) && i < page.Offset()+page.Limit(); i++ {
		m, err := a.VariableJSON(vs[i])
		if err != nil {
			return err
		}
		out = append(out, m)
	}
	setPagination(w, r, page, len(vs))
	writeJSON(w, http.StatusOK, out)
	return nil
}

// scopeFilter reads filter[environment_scope] (form) or
// {"filter": {"environment_scope": ...}} (JSON).
func scopeFilter(ps *Params) (string, bool, error) {
	switch f := ps.Value("filter").(type) {
	case nil:
		return "", false, nil
	case map[string]any:
		if v, ok := f["environment_scope"]; ok {
			s, ok := v.(string)
			if !ok {
				return "", false, errParam("filter[environment_scope] is invalid")
			}
			return s, true, nil
		}
		return "", false, nil
	}
	return "", false, errParam("filter is invalid")
}

// findVariable finds :key, narrowed by filter[environment_scope]; a key
// defined for several scopes needs the filter (GitLab answers 409).
func (a *API) findVariable(r *http.Request, c *reqCtx, p *store.Project) (*store.Variable, error) {
	key := r.PathValue("key")
	scope, filtered, err := scopeFilter(c.params)
	if err != nil {
		return nil, err
	}
	vs, err := a.Store.ProjectVariables(c.ctx, p.ID)
	if err != nil {
		return nil, err
	}
	var found []*store.Variable
	for _, v := range vs {
		if v.Key == key && (!filtered || v.EnvironmentScope == scope) {
			found = append(found, v)
		}
	}
	switch len(found) {
	case 0:
		return nil, errNotFound("Variable")
	case 1:
		return found[0], nil
	}
	return nil, errMessage(http.StatusConflict, "There are multiple variables with provided parameters. Please use 'filter[environment_scope]'")
}

func (a *API) getVariable(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	if err := c.requireUser(); err != nil {
		return err
	}
	p, _, err := a.project(r, c, access.Maintainer)
	if err != nil {
		return err
	}
	v, err := a.findVariable(r, c, p)
	if err != nil {
		return err
	}
	m, err := a.VariableJSON(v)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, m)
	return nil
}

// variableFields applies the optional fields of a create or update to v
// and returns the clear value; value is nil when not given.
func variableFields(ps *Params, v *store.Variable) (value *string, err error) {
	if ps.Has("value") && ps.Value("value") != nil {
		s, ok := ps.Str("value")
		if !ok {
			return nil, errParam("value is invalid")
		}
		value = &s
	}
	if s, ok := ps.Str("variable_type"); ok {
		if s != "env_var" && s != "file" {
			return nil, errParam("variable_type does not have a valid value")
		}
		v.VariableType = s
	} else if ps.Has("variable_type") && ps.Value("variable_type") != nil {
		return nil, errParam("variable_type is invalid")
	}
	for _, b := range []struct {
		name string
		dst  *bool
	}{{"protected", &v.Protected}, {"masked", &v.Masked}, {"raw", &v.Raw}} {
		val, ok, err := ps.Bool(b.name)
		if err != nil {
			return nil, err
		}
		if ok {
			*b.dst = val
		}
	}
	if val, _, err := ps.Bool("masked_and_hidden"); err != nil {
		return nil, err
	} else if val {
		// Kiln does not hide values from maintainers; hidden variables are
		// stored as masked ones.
		v.Masked = true
	}
	if s, ok := ps.Str("environment_scope"); ok {
		v.EnvironmentScope = s
	} else if ps.Has("environment_scope") && ps.Value("environment_scope") != nil {
		return nil, errParam("environment_scope is invalid")
	}
	if s, ok := ps.Str("description"); ok {
		v.Description = s
	} else if ps.Has("description") && ps.Value("description") != nil {
		return nil, errParam("description is invalid")
	}
	return value, nil
}

// validateVariable applies GitLab's model validations, answering with the
// first failing field in GitLab's {"message": {field: [msg]}} shape.
func validateVariable(v *store.Variable, value string) error {
	switch {
	case len(v.Key) > 255:
		return errValidation("key", "is too long (maximum is 255 characters)")
	case !keyRE.MatchString(v.Key):
		return errValidation("key", keyRuleMsg)
	case len(value) > maxVariableValue:
		return errValidation("value", "is too long (maximum is 10000 characters)")
	case v.EnvironmentScope == "":
		return errValidation("environment_scope", "can't be blank")
	case len(v.EnvironmentScope) > 255:
		return errValidation("environment_scope", "is too long (maximum is 255 characters)")
	case !envScopeRE.MatchString(v.EnvironmentScope):
		return errValidation("environment_scope", envScopeRuleMsg)
	case len(v.Description) > 255 || !validText(v.Description, 255):
		return errValidation("description", "is too long (maximum is 255 characters)")
	}
	if v.Masked {
		re := maskRE
		if v.Raw {
			re = maskRawRE
		}
		if !re.MatchString(value) {
			return errValidation("value", "is invalid")
		}
	}
	return nil
}

func duplicateKey(key string) error {
	return errValidation("key", "("+key+") has already been taken")
}

func (a *API) createVariable(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	if err := c.requireUser(); err != nil {
		return err
	}
	p, _, err := a.project(r, c, access.Maintainer)
	if err != nil {
		return err
	}
	key, err := c.params.Required("key")
	if err != nil {
		return err
	}
	if !c.params.Has("value") || c.params.Value("value") == nil {
		return errParam("value is missing")
	}
	v := &store.Variable{ProjectID: p.ID, Key: key, VariableType: "env_var", EnvironmentScope: "*"}
	value, err := variableFields(c.params, v)
	if err != nil {
		return err
	}
	if err := validateVariable(v, *value); err != nil {
		return err
	}
	if _, err := a.Store.ProjectVariable(c.ctx, p.ID, v.Key, v.EnvironmentScope); err == nil {
		return duplicateKey(v.Key)
	}
	return a.saveVariable(w, c, v, *value, http.StatusCreated, func(tx *store.Tx) error { return tx.CreateVariable(c.ctx, v) })
}

// saveVariable encrypts value into v, stores it with write, and answers
// with the variable (a key+scope clash is GitLab's "has already been taken").
func (a *API) saveVariable(w http.ResponseWriter, c *reqCtx, v *store.Variable, value string, status int, write func(*store.Tx) error) error {
	v.ValueEnc = a.Secrets.Seal(value)
	err := a.Store.Write(c.ctx, write)
	if errors.Is(err, store.ErrConflict) {
		return duplicateKey(v.Key)
	} else if err != nil {
		return err
	}
	m, err := a.VariableJSON(v)
	if err != nil {
		return err
	}
	writeJSON(w, status, m)
	return nil
}

func (a *API) updateVariable(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	if err := c.requireUser(); err != nil {
		return err
	}
	p, _, err := a.project(r, c, access.Maintainer)
	if err != nil {
		return err
	}
	v, err := a.findVariable(r, c, p)
	if err != nil {
		return err
	}
	oldScope := v.EnvironmentScope
	value, err := variableFields(c.params, v)
	if err != nil {
		return err
	}
	if value == nil {
		cur, err := a.Secrets.Open(v.ValueEnc)
		if err != nil {
			return err
		}
		value = &cur
	}
	if err := validateVariable(v, *value); err != nil {
		return err
	}
	if v.EnvironmentScope != oldScope {
		if _, err := a.Store.ProjectVariable(c.ctx, p.ID, v.Key, v.EnvironmentScope); err == nil {
			return duplicateKey(v.Key)
		}
	}
	return a.saveVariable(w, c, v, *value, http.StatusOK, func(tx *store.Tx) error { return tx.UpdateVariable(c.ctx, v) })
}

func (a *API) deleteVariable(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	if err := c.requireUser(); err != nil {
		return err
	}
	p, _, err := a.project(r, c, access.Maintainer)
	if err != nil {
		return err
	}
	v, err := a.findVariable(r, c, p)
	if err != nil {
		return err
	}
	if err := a.Store.Write(c.ctx, func(tx *store.Tx) error { return tx.DeleteVariable(c.ctx, v.ID) }); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
