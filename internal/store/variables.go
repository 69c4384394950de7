package store

import (
	"context"
	"time"
)

// Variable is a project CI/CD variable; ValueEnc is encrypted by the caller.
type Variable struct {
	ID               int64
	ProjectID        int64
	Key              string
	ValueEnc         string
	VariableType     string
	Protected        bool
	Masked           bool
	Raw              bool
	EnvironmentScope string
	Description      string
}

const varCols = `id, project_id, key, value_enc, variable_type, protected, masked, raw, environment_scope, description`

func scanVariable(row interface{ Scan(...any) error }) (*Variable, error) {
	var v Variable
	if err := row.Scan(&v.ID, &v.ProjectID, &v.Key, &v.ValueEnc, &v.VariableType, &v.Protected, &v.Masked, &v.Raw, &v.EnvironmentScope, &v.Description); err != nil {
		return nil, mapErr(err)
	}
	return &v, nil
}

// ProjectVariables lists a project's variables by key.
func (s *Store) ProjectVariables(ctx context.Context, projectID int64) ([]*Variable, error) {
	rows, err := s.query(ctx, `SELECT `+varCols+` FROM ci_variables WHERE project_id = ? ORDER BY key, environment_scope`, projectID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*Variable
	for rows.Next() {
		v, err := scanVariable(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// ProjectVariable loads one variable by key and environment scope.
func (s *Store) ProjectVariable(ctx context.Context, projectID int64, key, scope string) (*Variable, error) {
	return scanVariable(s.queryRow(ctx, `SELECT `+varCols+` FROM ci_variables WHERE project_id = ? AND key = ? AND environment_scope = ?`, projectID, key, scope))
}

// CreateVariable inserts a variable (ErrConflict when key+scope exists).
func (t *Tx) CreateVariable(ctx context.Context, v *Variable) error {
	id, err := t.InsertID(ctx, `INSERT INTO ci_variables (project_id, key, value_enc, variable_type, protected, masked, raw, environment_scope, description) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		v.ProjectID, v.Key, v.ValueEnc, v.VariableType, v.Protected, v.Masked, v.Raw, v.EnvironmentScope, v.Description)
	v.ID = id
	return err
}

// UpdateVariable saves all fields of v by id.
func (t *Tx) UpdateVariable(ctx context.Context, v *Variable) error {
	_, err := t.Exec(ctx, `UPDATE ci_variables SET value_enc = ?, variable_type = ?, protected = ?, masked = ?, raw = ?, environment_scope = ?, description = ? WHERE id = ?`,
		v.ValueEnc, v.VariableType, v.Protected, v.Masked, v.Raw, v.EnvironmentScope, v.Description, v.ID)
	return err
}

// DeleteVariable removes a variable by id.
func (t *Tx) DeleteVariable(ctx context.Context, id int64) error {
	_, err := t.Exec(ctx, `DELETE FROM ci_variables WHERE id = ?`, id)
	return err
}

// ProtectedRef is a protected branch or tag name (exact or wildcard).
type ProtectedRef struct {
	ID        int64
	ProjectID int64
	Kind      string // "branch" or "tag"
	Name      string
	CreatedAt time.Time
}

// ProtectedRefs lists a project's protected branches or tags.
func (s *Store) ProtectedRefs(ctx context.Context, projectID int64, kind string) ([]*ProtectedRef, error) {
	rows, err := s.query(ctx, `SELECT id, project_id, kind, name, created_at FROM protected_refs WHERE project_id = ? AND kind = ? ORDER BY name`, projectID, kind)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*ProtectedRef
	for rows.Next() {
		var r ProtectedRef
		var created int64
		if err := rows.Scan(&r.ID, &r.ProjectID, &r.Kind, &r.Name, &created); err != nil {
			return nil, err
		}
		r.CreatedAt = Time(created)
		out = append(out, &r)
	}
	return out, rows.Err()
}

// CreateProtectedRef protects a branch or tag name.
func (t *Tx) CreateProtectedRef(ctx context.Context, r *ProtectedRef) error {
	now := Now()
	id, err := t.InsertID(ctx, `INSERT INTO protected_refs (project_id, kind, name, created_at) VALUES (?, ?, ?, ?)`, r.ProjectID, r.Kind, r.Name, now)
	r.ID, r.CreatedAt = id, Time(now)
	return err
}

// DeleteProtectedRef unprotects a name.
func (t *Tx) DeleteProtectedRef(ctx context.Context, projectID int64, kind, name string) error {
	res, err := t.Exec(ctx, `DELETE FROM protected_refs WHERE project_id = ? AND kind = ? AND name = ?`, projectID, kind, name)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}
