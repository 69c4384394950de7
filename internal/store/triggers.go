package store

import (
	"context"
	"database/sql"
	"strings"
	"time"
)

// Trigger is a pipeline trigger token. Only the SHA-256 hash of the secret
// and its short form (first four characters after the prefix) are stored.
type Trigger struct {
	ID          int64
	ProjectID   int64
	OwnerID     int64
	TokenHash   string
	ShortToken  string
	Description string
	CreatedAt   time.Time
	UpdatedAt   time.Time
	LastUsed    *time.Time
	ExpiresAt   *time.Time
	// AllowedRefs are the branch and tag name patterns the token may run
	// (access.MatchRef); AllowedCIDRs the networks it is accepted from.
	// Empty: no restriction.
	AllowedRefs  []string
	AllowedCIDRs []string
	// NoVariables: the token may set no pipeline variables (TRIGGER_PAYLOAD
	// aside). AllowedVariables, when not empty, are the only names it may
	// set. RateLimit bounds its calls per minute (0: no own limit).
	NoVariables      bool
	AllowedVariables []string
	RateLimit        int
}

// Expired reports whether the trigger may no longer be used at t.
func (tr *Trigger) Expired(t time.Time) bool {
	return tr.ExpiresAt != nil && !t.Before(*tr.ExpiresAt)
}

const triggerCols = `id, project_id, owner_id, token_hash, short_token, description, created_at, updated_at, last_used, expires_at, allowed_refs, allowed_cidrs, variables_allowed, allowed_variables, rate_limit`

func splitLines(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

func scanTrigger(row interface{ Scan(...any) error }) (*Trigger, error) {
	var tr Trigger
	var created, updated int64
	var used, exp sql.NullInt64
	var refs, cidrs, vars string
	var varsAllowed, rate int64
	if err := row.Scan(&tr.ID, &tr.ProjectID, &tr.OwnerID, &tr.TokenHash, &tr.ShortToken, &tr.Description, &created, &updated, &used, &exp, &refs, &cidrs,
		&varsAllowed, &vars, &rate); err != nil {
		return nil, mapErr(err)
	}
	tr.AllowedRefs, tr.AllowedCIDRs = splitLines(refs), splitLines(cidrs)
	tr.NoVariables, tr.AllowedVariables, tr.RateLimit = varsAllowed == 0, splitLines(vars), int(rate)
	tr.CreatedAt, tr.UpdatedAt = Time(created), Time(updated)
	tr.LastUsed, tr.ExpiresAt = TimePtr(used), TimePtr(exp)
	return &tr, nil
}

// CreateTrigger inserts a trigger; TokenHash and ShortToken must be set.
func (t *Tx) CreateTrigger(ctx context.Context, tr *Trigger) error {
	now := Now()
	id, err := t.InsertID(ctx, `INSERT INTO triggers (project_id, owner_id, token_hash, short_token, description, created_at, updated_at, expires_at, allowed_refs, allowed_cidrs,
		variables_allowed, allowed_variables, rate_limit)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, tr.ProjectID, tr.OwnerID, tr.TokenHash, tr.ShortToken, tr.Description, now, now, nullTime(tr.ExpiresAt),
		strings.Join(tr.AllowedRefs, "\n"), strings.Join(tr.AllowedCIDRs, "\n"), boolInt(!tr.NoVariables), strings.Join(tr.AllowedVariables, "\n"), tr.RateLimit)
	if err != nil {
		return err
	}
	tr.ID, tr.CreatedAt, tr.UpdatedAt = id, Time(now), Time(now)
	return nil
}

// RotateTrigger inserts next (a new token of the same project) and makes
// trigger oldID expire at oldExpires (never later than it already would).
func (t *Tx) RotateTrigger(ctx context.Context, oldID int64, oldExpires time.Time, next *Trigger) error {
	us := oldExpires.UnixMicro()
	if _, err := t.Exec(ctx, `UPDATE triggers SET expires_at = CASE WHEN expires_at IS NOT NULL AND expires_at < ? THEN expires_at ELSE ? END, updated_at = ? WHERE id = ?`,
		us, us, Now(), oldID); err != nil {
		return err
	}
	return t.CreateTrigger(ctx, next)
}

// UpdateTrigger writes tr's description, expiry and policy (allowed refs
// and networks, variables, rate limit) in one statement.
func (t *Tx) UpdateTrigger(ctx context.Context, tr *Trigger) error {
	res, err := t.Exec(ctx, `UPDATE triggers SET description = ?, expires_at = ?, allowed_refs = ?, allowed_cidrs = ?, variables_allowed = ?, allowed_variables = ?, rate_limit = ?, updated_at = ? WHERE id = ?`,
		tr.Description, nullTime(tr.ExpiresAt), strings.Join(tr.AllowedRefs, "\n"), strings.Join(tr.AllowedCIDRs, "\n"), boolInt(!tr.NoVariables),
		strings.Join(tr.AllowedVariables, "\n"), tr.RateLimit, Now(), tr.ID)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

// DeleteTrigger removes a trigger for good (GitLab's revocation is a hard
// delete too: a revoked token cannot be brought back).
func (t *Tx) DeleteTrigger(ctx context.Context, id int64) error {
	res, err := t.Exec(ctx, `DELETE FROM triggers WHERE id = ?`, id)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

// TouchTrigger records a trigger's last use. It is meant to run inside the
// transaction that creates the triggered pipeline, so it costs no commit.
func (t *Tx) TouchTrigger(ctx context.Context, id int64, at time.Time) error {
	// Only when it moved by a second or more: a busy trigger must not make
	// every concurrent pipeline wait for this one row's lock (PostgreSQL
	// locks only rows an UPDATE actually changes).
	_, err := t.Exec(ctx, `UPDATE triggers SET last_used = ? WHERE id = ? AND (last_used IS NULL OR last_used < ?)`, at.UnixMicro(), id, at.Add(-time.Second).UnixMicro())
	return err
}

// TriggerByHash finds a trigger by the hash of its token.
func (s *Store) TriggerByHash(ctx context.Context, hash string) (*Trigger, error) {
	return scanTrigger(s.queryRow(ctx, `SELECT `+triggerCols+` FROM triggers WHERE token_hash = ?`, hash))
}

// TriggerByID loads one trigger.
func (s *Store) TriggerByID(ctx context.Context, id int64) (*Trigger, error) {
	return scanTrigger(s.queryRow(ctx, `SELECT `+triggerCols+` FROM triggers WHERE id = ?`, id))
}

// TriggersOfProject lists a project's triggers by id, with the total count.
func (s *Store) TriggersOfProject(ctx context.Context, projectID int64, page Page) ([]*Trigger, int, error) {
	var total int
	if err := s.queryRow(ctx, `SELECT COUNT(*) FROM triggers WHERE project_id = ?`, projectID).Scan(&total); err != nil {
		return nil, 0, err
	}
	rows, err := s.query(ctx, `SELECT `+triggerCols+` FROM triggers WHERE project_id = ? ORDER BY id LIMIT ? OFFSET ?`, projectID, page.Limit(), page.Offset())
	if err != nil {
		return nil, 0, err
	}
	defer rows.Close()
	var out []*Trigger
	for rows.Next() {
		tr, err := scanTrigger(rows)
		if err != nil {
			return nil, 0, err
		}
		out = append(out, tr)
	}
	return out, total, rows.Err()
}

// Delivery is one call to a trigger endpoint, accepted or refused. It never
// holds a token or a variable value: only the short token and the names.
type Delivery struct {
	ID            int64
	ProjectID     int64
	TriggerID     int64
	ShortToken    string
	Ref           string
	VariableNames []string
	SourceIP      string
	Endpoint      string
	StatusCode    int
	Result        string // created, refused, error
	Reason        string
	PipelineID    int64
	CreatedAt     time.Time
}

// InsertDelivery records a delivery.
func (t *Tx) InsertDelivery(ctx context.Context, d *Delivery) error {
	now := Now()
	if !d.CreatedAt.IsZero() {
		now = d.CreatedAt.UnixMicro()
	}
	id, err := t.InsertID(ctx, `INSERT INTO trigger_deliveries (project_id, trigger_id, short_token, ref, variable_names, source_ip, endpoint, status_code, result, reason, pipeline_id, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		d.ProjectID, nullID(d.TriggerID), d.ShortToken, d.Ref, strings.Join(d.VariableNames, ","), d.SourceIP, d.Endpoint, d.StatusCode, d.Result, d.Reason, nullID(d.PipelineID), now)
	if err != nil {
		return err
	}
	d.ID, d.CreatedAt = id, Time(now)
	return nil
}

// DeliveriesOfProject lists a project's deliveries newest first.
func (s *Store) DeliveriesOfProject(ctx context.Context, projectID int64, page Page) ([]*Delivery, int, error) {
	var total int
	if err := s.queryRow(ctx, `SELECT COUNT(*) FROM trigger_deliveries WHERE project_id = ?`, projectID).Scan(&total); err != nil {
		return nil, 0, err
	}
	rows, err := s.query(ctx, `SELECT id, project_id, COALESCE(trigger_id, 0), short_token, ref, variable_names, source_ip, endpoint, status_code, result, reason, COALESCE(pipeline_id, 0), created_at
		FROM trigger_deliveries WHERE project_id = ? ORDER BY id DESC LIMIT ? OFFSET ?`, projectID, page.Limit(), page.Offset())
	if err != nil {
		return nil, 0, err
	}
	defer rows.Close()
	var out []*Delivery
	for rows.Next() {
		var d Delivery
		var names string
		var created int64
		if err := rows.Scan(&d.ID, &d.ProjectID, &d.TriggerID, &d.ShortToken, &d.Ref, &names, &d.SourceIP, &d.Endpoint, &d.StatusCode, &d.Result, &d.Reason, &d.PipelineID, &created); err != nil {
			return nil, 0, err
		}
		if names != "" {
			d.VariableNames = strings.Split(names, ",")
		}
		d.CreatedAt = Time(created)
		out = append(out, &d)
	}
	return out, total, rows.Err()
}

// PruneDeliveries deletes deliveries recorded before t and those of
// projects that no longer exist; it returns how many rows went.
func (t *Tx) PruneDeliveries(ctx context.Context, before time.Time) (int64, error) {
	res, err := t.Exec(ctx, `DELETE FROM trigger_deliveries WHERE created_at < ? OR project_id NOT IN (SELECT id FROM projects)`, before.UnixMicro())
	if err != nil {
		return 0, err
	}
	n, _ := res.RowsAffected()
	return n, nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
