package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"time"
)

// WebhookTrigger is a project's webhook trigger: a receiving URL (UID), how
// its requests are verified and what they map to.
type WebhookTrigger struct {
	ID, ProjectID, OwnerID int64
	UID                    string
	Description            string
	Kind                   string
	SecretEnc              string // sealed with the secrets key
	SignatureHeader        string
	SignatureAlgorithm     string
	AllowedCIDRs           []string
	Filter, Ref, SHA       string
	Variables, Inputs      map[string]string
	CreatedAt, UpdatedAt   time.Time
}

const webhookCols = `id, project_id, owner_id, uid, description, kind, secret_enc, signature_header, signature_algorithm,
	allowed_cidrs, filter, ref_expr, sha_expr, variables, inputs, created_at, updated_at`

func scanWebhook(row interface{ Scan(...any) error }) (*WebhookTrigger, error) {
	var w WebhookTrigger
	var cidrs, vars, inputs string
	var created, updated int64
	if err := row.Scan(&w.ID, &w.ProjectID, &w.OwnerID, &w.UID, &w.Description, &w.Kind, &w.SecretEnc, &w.SignatureHeader,
		&w.SignatureAlgorithm, &cidrs, &w.Filter, &w.Ref, &w.SHA, &vars, &inputs, &created, &updated); err != nil {
		return nil, mapErr(err)
	}
	json.Unmarshal([]byte(cidrs), &w.AllowedCIDRs)
	json.Unmarshal([]byte(vars), &w.Variables)
	json.Unmarshal([]byte(inputs), &w.Inputs)
	if w.AllowedCIDRs == nil {
		w.AllowedCIDRs = []string{}
	}
	if w.Variables == nil {
		w.Variables = map[string]string{}
	}
	if w.Inputs == nil {
		w.Inputs = map[string]string{}
	}
	w.CreatedAt, w.UpdatedAt = Time(created), Time(updated)
	return &w, nil
}

func jsonText(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// CreateWebhookTrigger inserts w (UID, SecretEnc set by the caller).
func (t *Tx) CreateWebhookTrigger(ctx context.Context, w *WebhookTrigger) error {
	now := Now()
	id, err := t.InsertID(ctx, `INSERT INTO webhook_triggers (project_id, owner_id, uid, description, kind, secret_enc, signature_header,
		signature_algorithm, allowed_cidrs, filter, ref_expr, sha_expr, variables, inputs, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, w.ProjectID, w.OwnerID, w.UID, w.Description, w.Kind, w.SecretEnc,
		w.SignatureHeader, w.SignatureAlgorithm, jsonText(w.AllowedCIDRs), w.Filter, w.Ref, w.SHA, jsonText(w.Variables), jsonText(w.Inputs), now, now)
	if err != nil {
		return err
	}
	w.ID, w.CreatedAt, w.UpdatedAt = id, Time(now), Time(now)
	return nil
}

// UpdateWebhookTrigger saves every field of w but its ids and UID.
func (t *Tx) UpdateWebhookTrigger(ctx context.Context, w *WebhookTrigger) error {
	now := Now()
	res, err := t.Exec(ctx, `UPDATE webhook_triggers SET description = ?, kind = ?, secret_enc = ?, signature_header = ?, signature_algorithm = ?,
		allowed_cidrs = ?, filter = ?, ref_expr = ?, sha_expr = ?, variables = ?, inputs = ?, updated_at = ? WHERE id = ?`,
		w.Description, w.Kind, w.SecretEnc, w.SignatureHeader, w.SignatureAlgorithm, jsonText(w.AllowedCIDRs), w.Filter, w.Ref, w.SHA,
		jsonText(w.Variables), jsonText(w.Inputs), now, w.ID)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	w.UpdatedAt = Time(now)
	return nil
}

// DeleteWebhookTrigger removes a webhook trigger and its deliveries.
func (t *Tx) DeleteWebhookTrigger(ctx context.Context, id int64) error {
	res, err := t.Exec(ctx, `DELETE FROM webhook_triggers WHERE id = ?`, id)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	_, err = t.Exec(ctx, `DELETE FROM webhook_deliveries WHERE trigger_id = ?`, id)
	return err
}

func (t *Tx) deleteWebhookTriggersOf(ctx context.Context, projectID int64) error {
	if _, err := t.Exec(ctx, `DELETE FROM webhook_deliveries WHERE project_id = ?`, projectID); err != nil {
		return err
	}
	_, err := t.Exec(ctx, `DELETE FROM webhook_triggers WHERE project_id = ?`, projectID)
	return err
}

// WebhookTriggerByUID finds a trigger by its receiving id.
func (s *Store) WebhookTriggerByUID(ctx context.Context, uid string) (*WebhookTrigger, error) {
	return scanWebhook(s.queryRow(ctx, `SELECT `+webhookCols+` FROM webhook_triggers WHERE uid = ?`, uid))
}

// WebhookTriggerOf loads a project's trigger by id.
func (s *Store) WebhookTriggerOf(ctx context.Context, projectID, id int64) (*WebhookTrigger, error) {
	return scanWebhook(s.queryRow(ctx, `SELECT `+webhookCols+` FROM webhook_triggers WHERE id = ? AND project_id = ?`, id, projectID))
}

// WebhookTriggersOfProject lists a project's webhook triggers by id.
func (s *Store) WebhookTriggersOfProject(ctx context.Context, projectID int64, page Page) ([]*WebhookTrigger, int, error) {
	var total int
	if err := s.queryRow(ctx, `SELECT COUNT(*) FROM webhook_triggers WHERE project_id = ?`, projectID).Scan(&total); err != nil {
		return nil, 0, err
	}
	rows, err := s.query(ctx, `SELECT `+webhookCols+` FROM webhook_triggers WHERE project_id = ? ORDER BY id LIMIT ? OFFSET ?`, projectID, page.Limit(), page.Offset())
	if err != nil {
		return nil, 0, err
	}
	defer rows.Close()
	var out []*WebhookTrigger
	for rows.Next() {
		w, err := scanWebhook(rows)
		if err != nil {
			return nil, 0, err
		}
		out = append(out, w)
	}
	return out, total, rows.Err()
}

// WebhookDelivery is one request to a webhook trigger (or a replay).
type WebhookDelivery struct {
	ID, TriggerID, ProjectID int64
	CreatedAt                time.Time
	DeliveryKey              string // the sender's delivery id
	SourceIP                 string
	Headers                  map[string]string // secrets redacted
	Query                    map[string]string
	Body                     []byte
	BodyTruncated            bool
	StatusCode               int
	Result                   string // created, duplicate, filtered, refused, unauthorized, error, tested
	Reason                   string
	Verdict                  json.RawMessage
	PipelineID               int64
	ReplayOf                 int64
}

const webhookDeliveryCols = `id, trigger_id, project_id, created_at, delivery_key, source_ip, headers, query, body, body_truncated,
	status_code, result, reason, verdict, pipeline_id, replay_of`

func scanWebhookDelivery(row interface{ Scan(...any) error }) (*WebhookDelivery, error) {
	var d WebhookDelivery
	var created int64
	var headers, query, verdict string
	var pl, replay sql.NullInt64
	if err := row.Scan(&d.ID, &d.TriggerID, &d.ProjectID, &created, &d.DeliveryKey, &d.SourceIP, &headers, &query, &d.Body,
		&d.BodyTruncated, &d.StatusCode, &d.Result, &d.Reason, &verdict, &pl, &replay); err != nil {
		return nil, mapErr(err)
	}
	d.CreatedAt, d.PipelineID, d.ReplayOf = Time(created), pl.Int64, replay.Int64
	json.Unmarshal([]byte(headers), &d.Headers)
	json.Unmarshal([]byte(query), &d.Query)
	if verdict != "" {
		d.Verdict = json.RawMessage(verdict)
	}
	return &d, nil
}

// InsertWebhookDelivery records d.
func (t *Tx) InsertWebhookDelivery(ctx context.Context, d *WebhookDelivery) error {
	now := Now()
	verdict := string(d.Verdict)
	if verdict == "" {
		verdict = "null"
	}
	body := d.Body
	if body == nil {
		body = []byte{}
	}
	id, err := t.InsertID(ctx, `INSERT INTO webhook_deliveries (trigger_id, project_id, created_at, delivery_key, source_ip, headers, query, body,
		body_truncated, status_code, result, reason, verdict, pipeline_id, replay_of) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		d.TriggerID, d.ProjectID, now, d.DeliveryKey, d.SourceIP, jsonText(d.Headers), jsonText(d.Query), body, d.BodyTruncated,
		d.StatusCode, d.Result, d.Reason, verdict, nullID(d.PipelineID), nullID(d.ReplayOf))
	if err != nil {
		return err
	}
	d.ID, d.CreatedAt = id, Time(now)
	return nil
}

// WebhookDeliveryOf loads a delivery of a trigger.
func (s *Store) WebhookDeliveryOf(ctx context.Context, triggerID, id int64) (*WebhookDelivery, error) {
	return scanWebhookDelivery(s.queryRow(ctx, `SELECT `+webhookDeliveryCols+` FROM webhook_deliveries WHERE id = ? AND trigger_id = ?`, id, triggerID))
}

// WebhookDeliveriesOf lists a trigger's deliveries, newest first.
func (s *Store) WebhookDeliveriesOf(ctx context.Context, triggerID int64, page Page) ([]*WebhookDelivery, int, error) {
	var total int
	if err := s.queryRow(ctx, `SELECT COUNT(*) FROM webhook_deliveries WHERE trigger_id = ?`, triggerID).Scan(&total); err != nil {
		return nil, 0, err
	}
	rows, err := s.query(ctx, `SELECT `+webhookDeliveryCols+` FROM webhook_deliveries WHERE trigger_id = ? ORDER BY id DESC LIMIT ? OFFSET ?`,
		triggerID, page.Limit(), page.Offset())
	if err != nil {
		return nil, 0, err
	}
	defer rows.Close()
	var out []*WebhookDelivery
	for rows.Next() {
		d, err := scanWebhookDelivery(rows)
		if err != nil {
			return nil, 0, err
		}
		out = append(out, d)
	}
	return out, total, rows.Err()
}

// PruneWebhookDeliveries removes deliveries older than before.
func (t *Tx) PruneWebhookDeliveries(ctx context.Context, before time.Time) (int64, error) {
	res, err := t.Exec(ctx, `DELETE FROM webhook_deliveries WHERE created_at < ?`, before.UnixMicro())
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}
