package web

import (
	"encoding/json"
	"errors"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/kilnci/kiln/internal/access"
	"github.com/kilnci/kiln/internal/store"
)

// webhookCard is one webhook trigger on the settings page.
type webhookCard struct {
	W          *store.WebhookTrigger
	P          *store.Project
	CSRF       string
	URL        string
	Vars       string // NAME = expression lines
	Inputs     string
	CIDRs      string
	Deliveries []*store.WebhookDelivery
	LiveURL    string
	// TestResult is the verdict of a test just run on this trigger.
	TestResult string
	TestHeads  string
	TestBody   string
	// TestPreview is the test's preview of the pipeline (the API's
	// dry_run shape), TestReason why none would be created.
	TestPreview map[string]any
	TestReason  string
}

type webhooksData struct {
	Cards   []*webhookCard
	Error   string
	Form    map[string]string
	Project *store.Project
	Kinds   []string
}

// exprLines renders a name -> expression map as "NAME = expr" lines.
func exprLines(m map[string]string) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(m)) {
		b.WriteString(k + " = " + m[k] + "\n")
	}
	return b.String()
}

// parseExprLines reads "NAME = expr" lines (the first " = " splits).
func parseExprLines(s string) map[string]any {
	out := map[string]any{}
	for _, line := range strings.Split(s, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			out[line] = ""
			continue
		}
		out[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	return out
}

func (w *Web) webhookCards(q *req) ([]*webhookCard, error) {
	ws, _, err := w.Store.WebhookTriggersOfProject(q.ctx, q.project.ID, store.Page{Number: 1, PerPage: 100})
	if err != nil {
		return nil, err
	}
	var out []*webhookCard
	for _, x := range ws {
		c := &webhookCard{W: x, P: q.project, CSRF: sessCSRF(q), URL: w.Webhooks.URL(x), Vars: exprLines(x.Variables), Inputs: exprLines(x.Inputs),
			CIDRs:   strings.Join(x.AllowedCIDRs, ", "),
			LiveURL: projectURL(q.project) + "/-/settings/webhooks/" + strconv.FormatInt(x.ID, 10) + "/deliveries"}
		c.Deliveries, _, err = w.Store.WebhookDeliveriesOf(q.ctx, x.ID, store.Page{Number: 1, PerPage: 20})
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// settingsWebhooks renders the webhook triggers page.
func (w *Web) settingsWebhooks(q *req, d *webhooksData, status int) {
	if !w.requireLevel(q, access.Maintainer) {
		return
	}
	if w.Webhooks == nil {
		w.notFound(q)
		return
	}
	if d == nil {
		d = &webhooksData{}
	}
	if d.Form == nil {
		d.Form = map[string]string{"kind": "github"}
	}
	d.Project, d.Kinds = q.project, []string{"github", "gitlab", "gitea", "generic"}
	if d.Cards == nil {
		cards, err := w.webhookCards(q)
		if err != nil {
			w.internal(q, err)
			return
		}
		d.Cards = cards
	}
	w.render(q, status, "settings_webhooks", w.newPage(q, "Webhook triggers · "+q.project.Name, "webhooks", d))
}

// webhooksRoute serves /-/settings/webhooks/...
func (w *Web) webhooksRoute(q *req, seg []string) {
	if !w.requireLevel(q, access.Maintainer) {
		return
	}
	if w.Webhooks == nil {
		w.notFound(q)
		return
	}
	get, post := q.r.Method == http.MethodGet || q.r.Method == http.MethodHead, q.r.Method == http.MethodPost
	var x *store.WebhookTrigger
	if len(seg) >= 1 {
		id, err := strconv.ParseInt(seg[0], 10, 64)
		if err == nil {
			x, err = w.Store.WebhookTriggerOf(q.ctx, q.project.ID, id)
		}
		if errors.Is(err, store.ErrNotFound) || err != nil || x == nil {
			w.notFound(q)
			return
		}
	}
	switch {
	case len(seg) == 0 && get:
		w.settingsWebhooks(q, nil, http.StatusOK)
	case len(seg) == 0 && post:
		w.saveWebhook(q, nil)
	case len(seg) == 1 && post:
		w.saveWebhook(q, x)
	case len(seg) == 2 && seg[1] == "delete" && post:
		if err := w.Store.Write(q.ctx, func(tx *store.Tx) error { return tx.DeleteWebhookTrigger(q.ctx, x.ID) }); err != nil {
			w.internal(q, err)
			return
		}
		w.redirect(q, projectURL(q.project)+"/-/settings/webhooks", "The webhook trigger was deleted.")
	case len(seg) == 4 && seg[1] == "deliveries" && seg[3] == "replay" && post:
		did, _ := strconv.ParseInt(seg[2], 10, 64)
		d, err := w.Store.WebhookDeliveryOf(q.ctx, x.ID, did)
		if err != nil {
			w.notFound(q)
			return
		}
		nd, msg := w.Webhooks.Replay(q.ctx, q.user, q.project, x, d, "web")
		if msg != "" {
			w.redirect(q, projectURL(q.project)+"/-/settings/webhooks#webhook-"+seg[0], msg)
			return
		}
		w.redirect(q, projectURL(q.project)+"/-/settings/webhooks#webhook-"+seg[0], "Replayed as delivery "+strconv.FormatInt(nd.ID, 10)+": "+nd.Result+".")
	case len(seg) == 2 && seg[1] == "test" && post:
		w.testWebhook(q, x)
	case len(seg) == 2 && seg[1] == "deliveries" && get:
		ds, _, err := w.Store.WebhookDeliveriesOf(q.ctx, x.ID, store.Page{Number: 1, PerPage: 20})
		if err != nil {
			w.internal(q, err)
			return
		}
		c := &webhookCard{W: x, P: q.project, CSRF: sessCSRF(q), Deliveries: ds, LiveURL: projectURL(q.project) + "/-/settings/webhooks/" + seg[0] + "/deliveries"}
		w.renderPartial(q, "settings_webhooks", "webhook_deliveries", c)
	default:
		w.notFound(q)
	}
}

func (w *Web) saveWebhook(q *req, x *store.WebhookTrigger) {
	f := q.r.PostForm
	fields := map[string]any{}
	for _, k := range []string{"description", "kind", "filter", "ref", "sha", "signature_header", "signature_algorithm"} {
		fields[k] = f.Get(k)
	}
	if s := f.Get("secret"); s != "" || x == nil {
		fields["secret"] = s
	}
	fields["allowed_cidrs"] = f.Get("allowed_cidrs")
	fields["variables"] = parseExprLines(f.Get("variables"))
	fields["inputs"] = parseExprLines(f.Get("inputs"))
	saved, msg, err := w.Webhooks.Save(q.ctx, q.user, q.project, x, fields)
	if err != nil {
		w.internal(q, err)
		return
	}
	if msg != "" {
		form := map[string]string{}
		for k := range f {
			form[k] = f.Get(k)
		}
		w.settingsWebhooks(q, &webhooksData{Error: msg, Form: form}, http.StatusBadRequest)
		return
	}
	w.redirect(q, projectURL(q.project)+"/-/settings/webhooks#webhook-"+strconv.FormatInt(saved.ID, 10), "The webhook trigger was saved.")
}

func (w *Web) testWebhook(q *req, x *store.WebhookTrigger) {
	heads := map[string]string{}
	for _, line := range strings.Split(q.r.PostForm.Get("headers"), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) != "" {
			heads[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	body := q.r.PostForm.Get("body")
	res := w.Webhooks.Test(q.ctx, q.project, x, heads, body)
	b, _ := json.MarshalIndent(res, "", "  ")
	cards, err := w.webhookCards(q)
	if err != nil {
		w.internal(q, err)
		return
	}
	for _, c := range cards {
		if c.W.ID == x.ID {
			c.TestResult, c.TestHeads, c.TestBody = string(b), q.r.PostForm.Get("headers"), body
			c.TestPreview, _ = res["preview"].(map[string]any)
			c.TestReason, _ = res["reason"].(string)
		}
	}
	w.settingsWebhooks(q, &webhooksData{Cards: cards}, http.StatusOK)
}

func sessCSRF(q *req) string {
	if q.sess == nil {
		return ""
	}
	return q.sess.csrf
}
