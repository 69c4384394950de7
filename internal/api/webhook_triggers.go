package api

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/kilnci/kiln/internal/access"
	"github.com/kilnci/kiln/internal/pipeline"
	"github.com/kilnci/kiln/internal/store"
	"github.com/kilnci/kiln/internal/trigger"
	"github.com/kilnci/kiln/internal/webhook"
)

// WebhookOptions configure webhook triggers.
type WebhookOptions struct {
	// Shared, if set, keeps the webhook triggers' limits in the database,
	// shared by all replicas (see TriggerOptions.Shared).
	Shared trigger.Shared
	// MaxBody bounds a received body (default 1 MiB); MaxDepth its JSON
	// nesting (default 64).
	MaxBody  int64
	MaxDepth int
	// StoredBody is how much of a body a delivery keeps (default 64 KiB);
	// a delivery whose body was cut cannot be replayed.
	StoredBody int
	// PipelinesPerMinute bounds pipelines per project (0: none).
	PipelinesPerMinute int
}

// WebhookStoredBody is the default size of a delivery's stored body.
const WebhookStoredBody = 64 << 10

// webhooks serves /projects/:id/webhook_triggers and the receiving
// endpoint /api/v4/webhooks/:uid.
type webhooks struct {
	*API
	o WebhookOptions
	// refusals counts refused requests per client address (unknown ids,
	// bad signatures, refused CIDRs): past the budget every request from
	// the address is a 429 and nothing is looked up or written.
	refusals *trigger.Limiter
	// unauthRecords bounds how many unauthenticated requests (bad
	// signature, address not allowed) are recorded per trigger, so that
	// deliveries are no write channel for an anonymous flood.
	unauthRecords *trigger.Limiter
	creates       *trigger.Limiter
}

// RegisterWebhookTriggers adds the webhook trigger endpoints.
func (a *API) RegisterWebhookTriggers(o WebhookOptions) {
	if o.MaxBody == 0 {
		o.MaxBody = trigger.DefaultLimits.MaxBody
	}
	if o.MaxDepth == 0 {
		o.MaxDepth = trigger.DefaultLimits.MaxDepth
	}
	if o.StoredBody == 0 {
		o.StoredBody = WebhookStoredBody
	}
	onErr := func(err error) {
		a.Log.Warn("shared webhook rate limit unavailable; counting in this process", "err", err)
	}
	h := &webhooks{API: a, o: o,
		refusals:      trigger.NewLimiter(60, 60).Share(o.Shared, "webhook-refusals", onErr),
		unauthRecords: trigger.NewLimiter(10, 10).Share(o.Shared, "webhook-unauthenticated-records", onErr)}
	if o.PipelinesPerMinute > 0 {
		h.creates = trigger.NewLimiter(o.PipelinesPerMinute, float64(o.PipelinesPerMinute)).Share(o.Shared, "webhook-creates", onErr)
	}
	base := "/api/v4/projects/{id}/webhook_triggers"
	a.handle("GET "+base, h.list)
	a.handle("POST "+base, h.create)
	a.handle("GET "+base+"/{wid}", h.get)
	a.handle("PUT "+base+"/{wid}", h.update)
	a.handle("DELETE "+base+"/{wid}", h.remove)
	a.handle("POST "+base+"/{wid}/test", h.test)
	a.handle("GET "+base+"/{wid}/deliveries", h.deliveries)
	a.handle("GET "+base+"/{wid}/deliveries/{did}", h.delivery)
	a.handle("POST "+base+"/{wid}/deliveries/{did}/replay", h.replay)
	// The receiving endpoint authenticates by the trigger's signature and
	// reads the raw body itself, so it bypasses a.handle.
	a.mux.HandleFunc("POST /api/v4/webhooks/{uid}", h.receive)
	a.Webhooks = &WebhookService{h: h}
}

// WebhookService lets the UI save, test and replay webhook triggers with
// the API's rules (validation, expression checks, recording).
type WebhookService struct{ h *webhooks }

// URL is the trigger's receiving URL.
func (s *WebhookService) URL(x *store.WebhookTrigger) string { return s.h.url(x) }

// Save creates (x nil) or changes a trigger of p from fields (the API's
// parameter names; maps for variables and inputs) as user, a maintainer.
// A refusal is returned as its message text with a nil error.
func (s *WebhookService) Save(ctx context.Context, user *store.User, p *store.Project, x *store.WebhookTrigger, fields map[string]any) (*store.WebhookTrigger, string, error) {
	c := &reqCtx{ctx: ctx, user: user, params: &Params{v: fields}}
	create := x == nil
	if create {
		x = s.h.newTrigger(p, user)
	}
	if err := s.h.save(c, x, create); err != nil {
		var ae *apiError
		if errors.As(err, &ae) {
			b, _ := json.Marshal(ae.Body["message"])
			if ae.Body["message"] == nil {
				b, _ = json.Marshal(ae.Body["error"])
			}
			return nil, string(b), nil
		}
		return nil, "", err
	}
	return x, "", nil
}

// Test evaluates a sample against x of p and, when it would run, previews
// the pipeline (nothing created or recorded).
func (s *WebhookService) Test(ctx context.Context, p *store.Project, x *store.WebhookTrigger, headers map[string]string, body string) map[string]any {
	in := webhook.Input{Headers: http.Header{}, Query: url.Values{}, Body: []byte(body)}
	for k, v := range headers {
		in.Headers.Set(k, v)
	}
	return s.h.testVerdict(ctx, p, x, in)
}

// URL is where a trigger receives requests.
func (h *webhooks) url(w *store.WebhookTrigger) string {
	return h.ExternalURL + "/api/v4/webhooks/" + w.UID
}

func (h *webhooks) json(c *reqCtx, w *store.WebhookTrigger) map[string]any {
	var owner *store.User
	if u, err := h.Store.UserByID(c.ctx, w.OwnerID); err == nil {
		owner = u
	}
	return map[string]any{
		"id": w.ID, "description": w.Description, "kind": w.Kind, "url": h.url(w),
		"signature_header": w.SignatureHeader, "signature_algorithm": w.SignatureAlgorithm,
		"allowed_cidrs": w.AllowedCIDRs, "filter": w.Filter, "ref": w.Ref, "sha": w.SHA,
		"variables": w.Variables, "inputs": w.Inputs, "owner": h.userBasic(owner),
		"created_at": isoTime(w.CreatedAt), "updated_at": isoTime(w.UpdatedAt),
	}
}

// trigger loads the {wid} trigger of a project the caller maintains.
func (h *webhooks) trigger(r *http.Request, c *reqCtx) (*store.Project, *store.WebhookTrigger, error) {
	p, _, err := h.project(r, c, access.Maintainer)
	if err != nil {
		return nil, nil, err
	}
	id, err := strconv.ParseInt(r.PathValue("wid"), 10, 64)
	if err != nil {
		return nil, nil, errNotFound("Webhook Trigger")
	}
	w, err := h.Store.WebhookTriggerOf(c.ctx, p.ID, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, errNotFound("Webhook Trigger")
	}
	return p, w, err
}

func (h *webhooks) list(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	p, _, err := h.project(r, c, access.Maintainer)
	if err != nil {
		return err
	}
	page, err := paging(r)
	if err != nil {
		return err
	}
	ws, total, err := h.Store.WebhookTriggersOfProject(c.ctx, p.ID, page)
	if err != nil {
		return err
	}
	out := []map[string]any{}
	for _, x := range ws {
		out = append(out, h.json(c, x))
	}
	setPagination(w, r, page, total)
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (h *webhooks) get(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	_, x, err := h.trigger(r, c)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, h.json(c, x))
	return nil
}

func (h *webhooks) create(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	p, _, err := h.project(r, c, access.Maintainer)
	if err != nil {
		return err
	}
	x := h.newTrigger(p, c.user)
	if err := h.save(c, x, true); err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, h.json(c, x))
	return nil
}

func (h *webhooks) newTrigger(p *store.Project, u *store.User) *store.WebhookTrigger {
	var b [20]byte
	rand.Read(b[:])
	return &store.WebhookTrigger{ProjectID: p.ID, OwnerID: u.ID, Kind: webhook.GitHub, AllowedCIDRs: []string{},
		Variables: map[string]string{}, Inputs: map[string]string{}, UID: hex.EncodeToString(b[:])}
}

// save validates the request's fields into x and stores it.
func (h *webhooks) save(c *reqCtx, x *store.WebhookTrigger, create bool) error {
	if err := h.apply(c, x, create); err != nil {
		return err
	}
	if create {
		return h.Store.Write(c.ctx, func(tx *store.Tx) error { return tx.CreateWebhookTrigger(c.ctx, x) })
	}
	// The trigger acts as the maintainer who last saved it: whoever
	// decides what it runs answers for it.
	x.OwnerID = c.user.ID
	return h.Store.Write(c.ctx, func(tx *store.Tx) error { return tx.UpdateWebhookTrigger(c.ctx, x) })
}

func (h *webhooks) update(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	_, x, err := h.trigger(r, c)
	if err != nil {
		return err
	}
	if err := h.save(c, x, false); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, h.json(c, x))
	return nil
}

func (h *webhooks) remove(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	_, x, err := h.trigger(r, c)
	if err != nil {
		return err
	}
	if err := h.Store.Write(c.ctx, func(tx *store.Tx) error { return tx.DeleteWebhookTrigger(c.ctx, x.ID) }); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// exprMap reads an object of name -> CEL expression.
func exprMap(c *reqCtx, key string) (map[string]string, bool, error) {
	if !c.params.Has(key) {
		return nil, false, nil
	}
	m, ok := c.params.Value(key).(map[string]any)
	if !ok {
		if c.params.Value(key) == nil {
			return map[string]string{}, true, nil
		}
		return nil, false, errParam(key + " is invalid")
	}
	out := map[string]string{}
	for k, v := range m {
		s, ok := v.(string)
		if !ok {
			return nil, false, errParam(key + " needs to be a map of names to CEL expressions (strings)")
		}
		out[k] = s
	}
	return out, true, nil
}

// apply reads the trigger's fields from the request (all of them on
// create, the given ones on update), validates them and type-checks the
// expressions; nothing is saved on error.
func (h *webhooks) apply(c *reqCtx, x *store.WebhookTrigger, create bool) error {
	if err := c.params.Scalars("description", "kind", "secret", "filter", "ref", "sha", "signature_header", "signature_algorithm"); err != nil {
		return err
	}
	if create {
		if _, err := c.params.Required("ref"); err != nil {
			return err
		}
		if _, err := c.params.Required("secret"); err != nil {
			return err
		}
	}
	if v, ok := c.params.Str("description"); ok {
		if !validText(v, 255) {
			return errValidation("description", "is too long (maximum is 255 characters)")
		}
		x.Description = v
	}
	if v, ok := c.params.Str("kind"); ok {
		if !webhook.ValidKind(v) {
			return errValidation("kind", "must be one of github, gitlab, gitea, generic")
		}
		x.Kind = v
	}
	if v, ok := c.params.Str("secret"); ok {
		if strings.TrimSpace(v) == "" || len(v) > 256 {
			return errValidation("secret", "must be 1 to 256 characters")
		}
		x.SecretEnc = h.Secrets.Seal(v)
	}
	if v, ok := c.params.Str("signature_header"); ok {
		if v != "" && (len(v) > 100 || strings.ContainsAny(v, " :\r\n")) {
			return errValidation("signature_header", "is not a header name")
		}
		x.SignatureHeader = v
	}
	if v, ok := c.params.Str("signature_algorithm"); ok {
		if v != "" && !webhook.ValidAlgorithm(v) {
			return errValidation("signature_algorithm", "must be one of sha1, sha256, sha512")
		}
		x.SignatureAlgorithm = v
	}
	if x.Kind == webhook.Generic && x.SignatureAlgorithm == "" {
		x.SignatureAlgorithm = "sha256"
	}
	if x.Kind == webhook.Generic && x.SignatureHeader == "" {
		x.SignatureHeader = "X-Signature"
	}
	if list, ok, err := c.params.List("allowed_cidrs"); err != nil {
		return err
	} else if ok {
		if len(list) > 100 {
			return errValidation("allowed_cidrs", "at most 100 entries")
		}
		if _, err := webhook.ParseCIDRs(list); err != nil {
			return errValidation("allowed_cidrs", err.Error())
		}
		x.AllowedCIDRs = list
	}
	for _, f := range []struct {
		key string
		dst *string
	}{{"filter", &x.Filter}, {"ref", &x.Ref}, {"sha", &x.SHA}} {
		if v, ok := c.params.Str(f.key); ok {
			*f.dst = v
		}
	}
	for _, f := range []struct {
		key string
		dst *map[string]string
	}{{"variables", &x.Variables}, {"inputs", &x.Inputs}} {
		m, ok, err := exprMap(c, f.key)
		if err != nil {
			return err
		}
		if ok {
			*f.dst = m
		}
	}
	if _, err := webhook.Compile(spec(x)); err != nil {
		var ee *webhook.ExprError
		if errors.As(err, &ee) {
			field, _, _ := strings.Cut(ee.Field, ".")
			return errMessage(http.StatusBadRequest, map[string]any{field: []string{ee.Error()},
				"position": map[string]any{"field": ee.Field, "line": ee.Line, "column": ee.Column}})
		}
		return err
	}
	return nil
}

func spec(x *store.WebhookTrigger) webhook.Spec {
	return webhook.Spec{Filter: x.Filter, Ref: x.Ref, SHA: x.SHA, Variables: x.Variables, Inputs: x.Inputs}
}

// deliveryJSON renders a delivery; full adds the request (headers, query,
// body).
func (h *webhooks) deliveryJSON(c *reqCtx, p *store.Project, d *store.WebhookDelivery, full bool) map[string]any {
	out := map[string]any{
		"id": d.ID, "trigger_id": d.TriggerID, "created_at": isoTime(d.CreatedAt), "delivery_id": d.DeliveryKey,
		"source_ip": d.SourceIP, "status_code": d.StatusCode, "result": d.Result, "reason": d.Reason,
		"verdict": d.Verdict, "pipeline_id": nil, "pipeline_web_url": nil, "replay_of": nil, "body_truncated": d.BodyTruncated,
	}
	if d.Verdict == nil {
		out["verdict"] = nil
	}
	if d.PipelineID != 0 {
		out["pipeline_id"] = d.PipelineID
		out["pipeline_web_url"] = h.ExternalURL + "/" + p.FullPath + "/-/pipelines/" + strconv.FormatInt(d.PipelineID, 10)
	}
	if d.ReplayOf != 0 {
		out["replay_of"] = d.ReplayOf
	}
	if full {
		out["headers"], out["query"] = d.Headers, d.Query
		if utf8.Valid(d.Body) {
			out["body"] = string(d.Body)
		} else {
			out["body"] = nil
		}
	}
	return out
}

func (h *webhooks) deliveries(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	p, x, err := h.trigger(r, c)
	if err != nil {
		return err
	}
	page, err := paging(r)
	if err != nil {
		return err
	}
	ds, total, err := h.Store.WebhookDeliveriesOf(c.ctx, x.ID, page)
	if err != nil {
		return err
	}
	out := []map[string]any{}
	for _, d := range ds {
		out = append(out, h.deliveryJSON(c, p, d, false))
	}
	setPagination(w, r, page, total)
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (h *webhooks) loadDelivery(r *http.Request, c *reqCtx) (*store.Project, *store.WebhookTrigger, *store.WebhookDelivery, error) {
	p, x, err := h.trigger(r, c)
	if err != nil {
		return nil, nil, nil, err
	}
	id, err := strconv.ParseInt(r.PathValue("did"), 10, 64)
	if err != nil {
		return nil, nil, nil, errNotFound("Delivery")
	}
	d, err := h.Store.WebhookDeliveryOf(c.ctx, x.ID, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, nil, errNotFound("Delivery")
	}
	return p, x, d, err
}

func (h *webhooks) delivery(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	p, _, d, err := h.loadDelivery(r, c)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, h.deliveryJSON(c, p, d, true))
	return nil
}

// replay runs a stored delivery again with the trigger's current
// expressions, as the maintainer who asks (no signature: the request is
// authenticated by the caller's token; no deduplication): a new delivery
// linked to the first.
func (h *webhooks) replay(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	p, x, d, err := h.loadDelivery(r, c)
	if err != nil {
		return err
	}
	if d.BodyTruncated {
		return errBadRequest(fmt.Sprintf("the delivery's body was longer than %d bytes and was not stored whole; it cannot be replayed", h.o.StoredBody))
	}
	nd := &store.WebhookDelivery{TriggerID: x.ID, ProjectID: p.ID, DeliveryKey: d.DeliveryKey, SourceIP: clientIP(r),
		Headers: d.Headers, Query: d.Query, Body: d.Body, ReplayOf: d.ID}
	h.replayDelivery(c.ctx, c.user, p, x, d, nd)
	writeJSON(w, http.StatusCreated, h.deliveryJSON(c, p, nd, false))
	return nil
}

func (h *webhooks) replayDelivery(ctx context.Context, user *store.User, p *store.Project, x *store.WebhookTrigger, d, nd *store.WebhookDelivery) {
	hdr := http.Header{}
	for k, v := range d.Headers {
		hdr.Set(k, v)
	}
	q := url.Values{}
	for k, v := range d.Query {
		q.Set(k, v)
	}
	h.run(ctx, p, x, user, webhook.Input{Headers: hdr, Query: q, Body: d.Body}, nd, nil)
}

// webhookRequest is the pipeline a verdict asks for: the mapped ref and
// sha, the mapped inputs for the ref's `spec:inputs` (typed, checked by
// the engine), the mapped variables and TRIGGER_PAYLOAD.
func webhookRequest(p *store.Project, user *store.User, vd webhook.Verdict, in webhook.Input) pipeline.Request {
	preq := pipeline.Request{Project: p, Ref: vd.Ref, CommitSHA: vd.SHA, Source: "trigger", User: user, IgnoreSkipCI: true}
	if len(vd.Inputs) > 0 {
		preq.Inputs = vd.Inputs
	}
	for _, name := range slices.Sorted(maps.Keys(vd.Variables)) {
		preq.Variables = append(preq.Variables, pipeline.Var{Key: name, Value: vd.Variables[name]})
	}
	preq.Variables = append(preq.Variables, pipeline.Var{Key: "TRIGGER_PAYLOAD", Value: string(in.Body), File: true, Raw: true})
	return preq
}

// createReason is a creation refusal in the deliveries log: GitLab's
// messages (for inputs, each names the input and the rule).
func createReason(ce *pipeline.CreateError) string {
	if ce.Inputs() {
		return "inputs: " + ce.Error()
	}
	return ce.Error()
}

// Replay runs delivery d of x again as user (see the replay endpoint);
// a delivery whose body was cut is refused with a message.
func (s *WebhookService) Replay(ctx context.Context, user *store.User, p *store.Project, x *store.WebhookTrigger, d *store.WebhookDelivery, ip string) (*store.WebhookDelivery, string) {
	if d.BodyTruncated {
		return nil, "the delivery's body was not stored whole; it cannot be replayed"
	}
	nd := &store.WebhookDelivery{TriggerID: x.ID, ProjectID: p.ID, DeliveryKey: d.DeliveryKey, SourceIP: ip,
		Headers: d.Headers, Query: d.Query, Body: d.Body, ReplayOf: d.ID}
	s.h.replayDelivery(ctx, user, p, x, d, nd)
	return nd, ""
}

// test evaluates a sample request against the trigger and answers the
// verdict; nothing is created or recorded.
func (h *webhooks) test(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	p, x, err := h.trigger(r, c)
	if err != nil {
		return err
	}
	in := webhook.Input{Headers: http.Header{}, Query: url.Values{}}
	if v := c.params.Value("headers"); v != nil {
		m, ok := v.(map[string]any)
		if !ok {
			return errParam("headers is invalid")
		}
		for k, v := range m {
			s, ok := v.(string)
			if !ok {
				return errParam("headers is invalid")
			}
			in.Headers.Set(k, s)
		}
	}
	if v := c.params.Value("query"); v != nil {
		m, ok := v.(map[string]any)
		if !ok {
			return errParam("query is invalid")
		}
		for k, v := range m {
			s, ok := v.(string)
			if !ok {
				return errParam("query is invalid")
			}
			in.Query.Set(k, s)
		}
	}
	switch v := c.params.Value("body").(type) {
	case string:
		in.Body = []byte(v)
	case nil:
		if pl := c.params.Value("payload"); pl != nil {
			in.Body, _ = json.Marshal(pl)
		}
	default:
		return errParam("body is invalid")
	}
	writeJSON(w, http.StatusOK, h.testVerdict(c.ctx, p, x, in))
	return nil
}

// testVerdict is the test endpoint's answer for in: the signature, the
// verdict and, when the filter passes and the mapping succeeds, the
// engine's preview of the pipeline (the trigger API's dry_run shape), as
// the trigger's owner, with Create's checks (inputs against the ref's
// spec:inputs, access, the configuration). Nothing is created or recorded.
func (h *webhooks) testVerdict(ctx context.Context, p *store.Project, x *store.WebhookTrigger, in webhook.Input) map[string]any {
	out := map[string]any{"signature": "not checked (no signature header in the sample)"}
	sg := h.signer(x)
	if name, _ := sg.Sign(nil); in.Headers.Get(name) != "" {
		if err := sg.Verify(in.Headers, in.Body); err != nil {
			out["signature"] = "invalid: " + err.Error()
		} else {
			out["signature"] = "valid"
		}
	}
	prg, err := webhook.Compile(spec(x))
	if err != nil {
		out["verdict"], out["would_create"] = map[string]any{"run": false, "reason": err.Error()}, false
		return out
	}
	vd := prg.Evaluate(in)
	out["verdict"] = vd
	out["would_create"] = vd.Run
	out["delivery_id"] = webhook.DeliveryID(in.Headers)
	if !vd.Run {
		return out
	}
	refuse := func(reason string) map[string]any {
		out["would_create"], out["reason"] = false, reason
		return out
	}
	if vd.SHA != "" && !pipeline.ValidSHA(vd.SHA) {
		return refuse("sha: " + strconv.Quote(vd.SHA) + " is not a full commit SHA")
	}
	owner, err := h.Store.UserByID(ctx, x.OwnerID)
	if err != nil || owner.State != "active" {
		return refuse("trigger owner is no longer active: " + msgInsufficient)
	}
	pv, err := h.Engine.Preview(ctx, webhookRequest(p, owner, vd, in))
	if err != nil {
		var ce *pipeline.CreateError
		if errors.As(err, &ce) {
			return refuse(createReason(ce))
		}
		if errors.Is(err, pipeline.ErrSkipped) {
			return refuse("Pipeline skipped")
		}
		h.Log.Error("webhook test preview failed", "project", p.FullPath, "err", err)
		return refuse("internal error previewing the pipeline")
	}
	out["preview"] = PreviewJSON(pv)
	return out
}

func (h *webhooks) signer(x *store.WebhookTrigger) webhook.Signer {
	secret, _ := h.Secrets.Open(x.SecretEnc)
	return webhook.Signer{Kind: x.Kind, Secret: secret, Header: x.SignatureHeader, Algorithm: x.SignatureAlgorithm}
}

func (h *webhooks) refuse(w http.ResponseWriter, ip string, status int, msg string) {
	h.refusals.Take(ip)
	writeJSON(w, status, map[string]any{"message": msg})
}

// receive is the trigger's URL: verify, filter, map, create.
func (h *webhooks) receive(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	ip := clientIP(r)
	if blocked, retry, _ := h.refusals.Blocked(ip); blocked {
		w.Header().Set("Retry-After", strconv.Itoa(int((retry+time.Second-1)/time.Second)))
		writeJSON(w, http.StatusTooManyRequests, map[string]any{"message": "429 Too Many Requests - too many refused webhook calls from this address, retry later"})
		return
	}
	uid := r.PathValue("uid")
	if len(uid) != 40 {
		h.refuse(w, ip, http.StatusNotFound, msgNotFound)
		return
	}
	x, err := h.Store.WebhookTriggerByUID(ctx, uid)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			h.Log.Error("webhook trigger lookup failed", "err", err)
			writeJSON(w, http.StatusInternalServerError, map[string]any{"message": "500 Internal Server Error"})
			return
		}
		h.refuse(w, ip, http.StatusNotFound, msgNotFound)
		return
	}
	p, err := h.Store.ProjectByID(ctx, x.ProjectID)
	if err != nil {
		h.refuse(w, ip, http.StatusNotFound, msgNotFound)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.o.MaxBody))
	if err != nil {
		h.refuse(w, ip, http.StatusRequestEntityTooLarge, fmt.Sprintf("413 Request Entity Too Large - the body is larger than %d bytes", h.o.MaxBody))
		return
	}
	d := &store.WebhookDelivery{TriggerID: x.ID, ProjectID: p.ID, DeliveryKey: webhook.DeliveryID(r.Header), SourceIP: ip,
		Headers: webhook.RedactHeaders(r.Header, x.SignatureHeader), Query: map[string]string{}}
	for k, vs := range r.URL.Query() {
		if len(vs) > 0 && len(d.Query) < 50 {
			d.Query[k] = vs[0]
		}
	}
	d.Body, d.BodyTruncated = body, false
	if len(body) > h.o.StoredBody {
		d.Body, d.BodyTruncated = body[:h.o.StoredBody], true
	}
	// Unauthenticated refusals are recorded, but boundedly per trigger.
	unauth := func(status int, msg, reason string) {
		h.refuse(w, ip, status, msg)
		if ok, _ := h.unauthRecords.Allow(strconv.FormatInt(x.ID, 10)); !ok {
			h.Log.Debug("webhook refusal not recorded (per-trigger record budget spent)", "trigger", x.ID, "ip", ip, "reason", reason)
			return
		}
		d.Body, d.BodyTruncated = nil, len(body) > 0 // an unauthenticated body is not kept
		d.StatusCode, d.Result, d.Reason = status, "unauthorized", reason
		h.record(ctx, d)
	}
	nets, _ := webhook.ParseCIDRs(x.AllowedCIDRs)
	if !webhook.Allowed(nets, ip) {
		unauth(http.StatusForbidden, "403 Forbidden", "source address "+ip+" is not in allowed_cidrs")
		return
	}
	if err := h.signer(x).Verify(r.Header, body); err != nil {
		unauth(http.StatusUnauthorized, "401 Unauthorized", err.Error())
		return
	}
	if trimmed := bytes.TrimSpace(body); len(trimmed) > 0 && (trimmed[0] == '{' || trimmed[0] == '[') && trigger.JSONDepth(trimmed) > h.o.MaxDepth {
		d.StatusCode, d.Result, d.Reason = http.StatusBadRequest, "refused", fmt.Sprintf("JSON nested deeper than %d levels", h.o.MaxDepth)
		h.record(ctx, d)
		writeJSON(w, http.StatusBadRequest, map[string]any{"message": "400 Bad request - " + d.Reason})
		return
	}
	owner, _ := h.Store.UserByID(ctx, x.OwnerID)
	var k *idemKey
	if d.DeliveryKey != "" {
		// A redelivery (same sender delivery id within the Idempotency-Key
		// window) answers with the first pipeline.
		k = newIdemKey(d.DeliveryKey, p.ID, "webhook:"+strconv.FormatInt(x.ID, 10), nil)
		if pl, _, err := h.idemReplay(ctx, k); err == nil && pl != nil {
			h.duplicate(w, ctx, p, d, pl)
			return
		}
	}
	pl := h.run(ctx, p, x, owner, webhook.Input{Headers: r.Header, Query: r.URL.Query(), Body: body}, d, k)
	if pl == nil && k != nil && d.Result == "error" {
		// A concurrent redelivery committed first.
		if pl, _, err := h.idemReplay(ctx, k); err == nil && pl != nil {
			d.ID = 0
			h.duplicate(w, ctx, p, d, pl)
			return
		}
	}
	switch {
	case pl != nil:
		writeJSON(w, http.StatusCreated, h.PipelineJSON(ctx, p, pl))
	case d.Result == "filtered":
		writeJSON(w, http.StatusOK, map[string]any{"message": "filtered: no pipeline", "reason": d.Reason, "delivery_id": d.ID})
	default:
		writeJSON(w, d.StatusCode, map[string]any{"message": d.Reason, "delivery_id": d.ID})
	}
}

func (h *webhooks) duplicate(w http.ResponseWriter, ctx context.Context, p *store.Project, d *store.WebhookDelivery, pl *store.Pipeline) {
	d.StatusCode, d.Result, d.PipelineID = http.StatusOK, "duplicate", pl.ID
	d.Reason = "redelivery of " + d.DeliveryKey + ": pipeline " + strconv.FormatInt(pl.ID, 10)
	h.record(ctx, d)
	w.Header().Set(hdrReplayed, "true")
	writeJSON(w, http.StatusOK, h.PipelineJSON(ctx, p, pl))
}

func (h *webhooks) record(ctx context.Context, d *store.WebhookDelivery) {
	err := h.Store.Write(context.WithoutCancel(ctx), func(tx *store.Tx) error { return tx.InsertWebhookDelivery(ctx, d) })
	if err != nil {
		h.Log.Error("recording webhook delivery", "err", err)
	}
}

// run evaluates the trigger for in and creates the pipeline as user; the
// outcome is recorded in d (in the pipeline's transaction when one is
// created). It returns the pipeline or nil.
func (h *webhooks) run(ctx context.Context, p *store.Project, x *store.WebhookTrigger, user *store.User, in webhook.Input,
	d *store.WebhookDelivery, k *idemKey) *store.Pipeline {
	fail := func(status int, result, reason string) *store.Pipeline {
		d.StatusCode, d.Result, d.Reason = status, result, reason
		h.record(ctx, d)
		return nil
	}
	prg, err := webhook.Compile(spec(x))
	if err != nil {
		return fail(http.StatusInternalServerError, "error", "expressions no longer compile: "+err.Error())
	}
	vd := prg.Evaluate(in)
	d.Verdict, _ = json.Marshal(vd)
	if !vd.Run {
		if vd.Filtered {
			return fail(http.StatusOK, "filtered", vd.Reason)
		}
		return fail(http.StatusUnprocessableEntity, "refused", vd.Reason)
	}
	if vd.SHA != "" && !pipeline.ValidSHA(vd.SHA) {
		return fail(http.StatusUnprocessableEntity, "refused", "sha: "+strconv.Quote(vd.SHA)+" is not a full commit SHA")
	}
	if user == nil || user.State != "active" {
		return fail(http.StatusBadRequest, "refused", "trigger owner is no longer active: "+msgInsufficient)
	}
	if h.creates != nil {
		if ok, _ := h.creates.Allow(strconv.FormatInt(p.ID, 10)); !ok {
			return fail(http.StatusTooManyRequests, "refused", msgRateLimited)
		}
	}
	preq := webhookRequest(p, user, vd, in)
	preq.InTx = func(ctx context.Context, tx *store.Tx, pl *store.Pipeline) error {
		d.StatusCode, d.Result, d.PipelineID, d.Reason = http.StatusCreated, "created", pl.ID, ""
		if err := tx.InsertWebhookDelivery(ctx, d); err != nil {
			return err
		}
		return k.record(ctx, tx, pl)
	}
	pl, err := h.Engine.Create(ctx, preq)
	if err != nil {
		d.ID, d.PipelineID = 0, 0
		var ce *pipeline.CreateError
		if errors.As(err, &ce) {
			return fail(http.StatusBadRequest, "refused", createReason(ce))
		}
		if errors.Is(err, store.ErrConflict) {
			d.StatusCode, d.Result, d.Reason = http.StatusConflict, "error", "concurrent redelivery"
			return nil
		}
		h.Log.Error("webhook pipeline creation failed", "project", p.FullPath, "err", err)
		return fail(http.StatusInternalServerError, "error", "internal error creating the pipeline")
	}
	return pl
}
