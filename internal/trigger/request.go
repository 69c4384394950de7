// Package trigger holds the parts of GitLab's pipeline triggers that know no
// routes: reading a trigger request in every form GitLab accepts, rate
// limiting, and the bridge jobs of the `trigger:` keyword. The REST
// endpoints live in internal/api (triggers*.go) and use this package.
package trigger

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Limits bound what a trigger request may carry.
type Limits struct {
	// MaxBody is the largest body read, in bytes (webhook payloads included).
	MaxBody int64
	// MaxVariables is the most variables one request may set.
	MaxVariables int
	// MaxDepth is the deepest JSON nesting accepted.
	MaxDepth int
	// MaxFields bounds form and query fields.
	MaxFields int
}

// DefaultLimits are the limits the server uses unless configured otherwise.
var DefaultLimits = Limits{MaxBody: 1 << 20, MaxVariables: 1000, MaxDepth: 64, MaxFields: 2000}

// Request is a parsed trigger request.
type Request struct {
	Token string
	Ref   string
	// SHA is the exact commit asked for (optional): it must be reachable
	// from Ref, which the engine checks.
	SHA string
	// Wait is how long the caller wants the answer held until the
	// pipeline finishes (0: answer at once); at most MaxWait.
	Wait time.Duration
	// DryRun asks what the call would create, creating nothing.
	DryRun bool
	// Variables are variables[KEY]=value pairs; Keys lists the names sorted.
	Variables map[string]string
	// Inputs are inputs[KEY]=value form fields or an `inputs` JSON object
	// (GitLab's RunPipelineTriggerOptions.Inputs), for the configuration's
	// `spec: inputs:`; the engine checks them against the spec.
	Inputs map[string]any
	// Fingerprint is the canonical JSON of every parameter but the token
	// (the same keys as Payload, without the project id as spelled in the
	// URL): calls with equal fingerprints asked for the same pipeline.
	Fingerprint []byte
	// Payload is TRIGGER_PAYLOAD: every parameter except the token, as JSON
	// (for the webhook form, the JSON body merged with the URL's ref).
	Payload []byte
}

// Keys returns the variable names in sorted order.
func (r *Request) Keys() []string {
	out := make([]string, 0, len(r.Variables))
	for k := range r.Variables {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// MaxWait bounds the wait parameter: a waiting call holds a connection
// and one of the server's long-lived request slots.
const MaxWait = 10 * time.Minute

// parseWait reads wait=: whole seconds ("300") or a Go duration ("5m",
// "90s").
func parseWait(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if n, nerr := strconv.ParseInt(s, 10, 64); nerr == nil {
		if n < 0 || n > int64(MaxWait/time.Second) {
			return 0, grapeErr("wait must be between 0 and " + strconv.Itoa(int(MaxWait/time.Second)) + " seconds")
		}
		d, err = time.Duration(n)*time.Second, nil
	}
	if err != nil || d < 0 {
		return 0, grapeErr("wait is invalid")
	}
	if d > MaxWait {
		return 0, grapeErr("wait must be between 0 and " + strconv.Itoa(int(MaxWait/time.Second)) + " seconds")
	}
	return d, nil
}

// Error is a refusal with an HTTP status and GitLab's JSON body.
type Error struct {
	Status int
	Body   map[string]any
	// Reason is a one-line text for the deliveries log.
	Reason string
}

func (e *Error) Error() string { return e.Reason }

// grapeErr is Grape's {"error": ...} parameter-validation shape.
func grapeErr(msg string) *Error {
	return &Error{Status: http.StatusBadRequest, Body: map[string]any{"error": msg}, Reason: msg}
}

// messageErr is GitLab's {"message": ...} shape.
func messageErr(status int, msg string) *Error {
	return &Error{Status: status, Body: map[string]any{"message": msg}, Reason: msg}
}

// errVariables is GitLab's message for variables that are not strings.
const errVariables = "variables needs to be a map of key-valued strings"

var variableKeyRE = regexp.MustCompile(`^[a-zA-Z0-9_]+$`)

// Parse reads a trigger request. urlRef is the ref from the webhook URL form
// (/ref/:ref/trigger/...), "" otherwise; it wins over any ref in the body.
// projectID is the :id as given, which GitLab includes in TRIGGER_PAYLOAD.
//
// Parameters may come from the query string, a url-encoded or multipart
// form, or a JSON object, and may be mixed; the body wins over the query,
// as in Rails. variables may be a JSON object or variables[KEY] fields (in
// forms, the query string, and also as JSON keys, which GitLab silently
// drops but users send).
//
// When Parse refuses a request whose body it could read, the returned
// Request is not nil but holds only the token and ref it found, for the
// deliveries log.
func Parse(r *http.Request, urlRef, projectID string, lim Limits) (*Request, error) {
	p := &params{v: map[string]any{}, vars: map[string]any{}, inputs: map[string]any{}, lim: lim}
	if err := p.addValues(r.URL.Query()); err != nil {
		return nil, err
	}
	if r.Body != nil && r.Method != http.MethodGet && r.Method != http.MethodHead {
		if err := p.readBody(r); err != nil {
			return nil, err
		}
	}
	// A refused call is still filed in the deliveries log under its token
	// and ref, so the request carries them even when Parse fails.
	hint := &Request{Ref: urlRef}
	hint.Token, _ = p.str("token")
	if hint.Ref == "" {
		hint.Ref, _ = p.str("ref")
	}
	req, err := p.request(urlRef, projectID, lim)
	if err != nil {
		return hint, err
	}
	return req, nil
}

func (p *params) request(urlRef, projectID string, lim Limits) (*Request, error) {
	req := &Request{Variables: map[string]string{}}
	// Step 2 of GitLab's order: variables first, then missing params.
	if p.badVariables {
		return nil, grapeErr("variables is invalid")
	}
	if p.badInputs {
		return nil, grapeErr("inputs is invalid")
	}
	if len(p.inputs) > 0 {
		req.Inputs = p.inputs
	}
	if len(p.vars) > lim.MaxVariables {
		return nil, messageErr(http.StatusBadRequest, fmt.Sprintf("400 Bad request - too many variables (at most %d)", lim.MaxVariables))
	}
	for k, v := range p.vars {
		s, ok := v.(string)
		if !ok {
			return nil, messageErr(http.StatusBadRequest, errVariables)
		}
		req.Variables[k] = s
	}
	var missing []string
	tok, tokOK := p.str("token")
	if !tokOK {
		return nil, grapeErr("token is invalid")
	}
	if tok == "" {
		missing = append(missing, "token is missing")
	}
	ref := urlRef
	if ref == "" {
		s, ok := p.str("ref")
		if !ok {
			return nil, grapeErr("ref is invalid")
		}
		if _, given := p.v["ref"]; given && strings.TrimSpace(s) == "" {
			missing = append(missing, "ref is empty")
		} else if !given {
			missing = append(missing, "ref is missing")
		}
		ref = s
	}
	if len(missing) > 0 {
		return nil, grapeErr(strings.Join(missing, ", "))
	}
	for k := range req.Variables {
		if len(k) > 255 || !variableKeyRE.MatchString(k) {
			return nil, &Error{Status: http.StatusBadRequest, Body: map[string]any{"message": map[string]any{"base": []string{
				"Variables key can contain only letters, digits and '_'."}}}, Reason: "invalid variable name"}
		}
	}
	sha, ok := p.str("sha")
	if !ok {
		return nil, grapeErr("sha is invalid")
	}
	req.Token, req.Ref, req.SHA = tok, ref, strings.TrimSpace(sha)
	waitText, ok := p.str("wait")
	if !ok {
		return nil, grapeErr("wait is invalid")
	}
	wait, err := parseWait(waitText)
	if err != nil {
		return nil, err
	}
	req.Wait = wait
	switch v := p.v["dry_run"].(type) {
	case nil:
	case bool:
		req.DryRun = v
	case string:
		switch strings.ToLower(v) {
		case "true", "1", "yes", "t":
			req.DryRun = true
		case "false", "0", "no", "f", "":
		default:
			return nil, grapeErr("dry_run is invalid")
		}
	default:
		return nil, grapeErr("dry_run is invalid")
	}

	// TRIGGER_PAYLOAD: every parameter but the token, with the effective ref,
	// the project id and the variables, as GitLab serialises its params.
	payload := make(map[string]any, len(p.v)+3)
	for k, v := range p.v {
		payload[k] = v
	}
	delete(payload, "token")
	payload["ref"] = ref
	vars := make(map[string]any, len(req.Variables))
	for k, v := range req.Variables {
		vars[k] = v
	}
	payload["variables"] = vars
	if len(p.inputs) > 0 {
		payload["inputs"] = p.inputs
	}
	// wait= changes how the answer comes, not which pipeline is asked for.
	waitParam, hasWait := payload["wait"]
	delete(payload, "wait")
	if fp, err := json.Marshal(payload); err == nil {
		req.Fingerprint = fp
	}
	if hasWait {
		payload["wait"] = waitParam
	}
	payload["id"] = projectID
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(payload); err != nil {
		return nil, messageErr(http.StatusBadRequest, "400 Bad request - unserialisable parameters")
	}
	req.Payload = bytes.TrimRight(buf.Bytes(), "\n")
	return req, nil
}

// params collects parameters; variables are kept apart so that variables
// given as an object and as variables[K] keys merge.
type params struct {
	v            map[string]any
	vars         map[string]any
	badVariables bool
	inputs       map[string]any
	badInputs    bool
	lim          Limits
}

func (p *params) str(key string) (string, bool) {
	switch v := p.v[key].(type) {
	case nil:
		return "", true
	case string:
		return v, true
	case json.Number:
		return v.String(), true
	}
	return "", false
}

func (p *params) addValues(vals map[string][]string) error {
	n := 0
	for _, vs := range vals {
		n += len(vs)
	}
	if n > p.lim.MaxFields {
		return messageErr(http.StatusBadRequest, fmt.Sprintf("400 Bad request - too many parameters (at most %d)", p.lim.MaxFields))
	}
	for k, vs := range vals {
		for _, s := range vs {
			p.set(k, s)
		}
	}
	return nil
}

// set stores one parameter; variables[KEY] goes into the variables map.
func (p *params) set(key string, val any) {
	if name, ok := strings.CutPrefix(key, "variables["); ok && strings.HasSuffix(name, "]") {
		name = strings.TrimSuffix(name, "]")
		if name != "" && !strings.ContainsAny(name, "[]") {
			p.vars[name] = val
			return
		}
	}
	if name, ok := strings.CutPrefix(key, "inputs["); ok && strings.HasSuffix(name, "]") {
		name = strings.TrimSuffix(name, "]")
		if name != "" && !strings.ContainsAny(name, "[]") {
			p.inputs[name] = val
			return
		}
	}
	if key == "inputs" {
		switch v := val.(type) {
		case map[string]any:
			for k, x := range v {
				p.inputs[k] = x
			}
		case nil:
		case string:
			if v != "" {
				p.badInputs = true
			}
		default:
			p.badInputs = true
		}
		return
	}
	if key == "variables" {
		switch v := val.(type) {
		case map[string]any:
			for k, x := range v {
				p.vars[k] = x
			}
		case nil:
		case string:
			// variables= with an empty value is Grape's empty hash.
			if v != "" {
				p.badVariables = true
			}
		default:
			p.badVariables = true
		}
		return
	}
	p.v[key] = val
}

func (p *params) readBody(r *http.Request) error {
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	body := http.MaxBytesReader(nil, r.Body, p.lim.MaxBody)
	switch ct {
	case "multipart/form-data":
		r.Body = body
		// Files are not parameters here; keep at most MaxBody in memory and
		// no temporary files beyond what ParseMultipartForm decides.
		if err := r.ParseMultipartForm(p.lim.MaxBody); err != nil {
			return bodyErr(err, "multipart form")
		}
		if r.MultipartForm != nil {
			defer r.MultipartForm.RemoveAll()
			return p.addValues(r.MultipartForm.Value)
		}
		return nil
	case "application/x-www-form-urlencoded":
		raw, err := io.ReadAll(body)
		if err != nil {
			return bodyErr(err, "form")
		}
		if strings.Count(string(raw), "&") >= p.lim.MaxFields {
			return messageErr(http.StatusBadRequest, fmt.Sprintf("400 Bad request - too many parameters (at most %d)", p.lim.MaxFields))
		}
		vals, err := url.ParseQuery(string(raw))
		if err != nil {
			return messageErr(http.StatusBadRequest, "400 Bad request - malformed form body")
		}
		return p.addValues(vals)
	}
	raw, err := io.ReadAll(body)
	if err != nil {
		return bodyErr(err, "body")
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil
	}
	if ct != "application/json" && !json.Valid(raw) {
		// Grape ignores bodies it cannot turn into params.
		return nil
	}
	if d := JSONDepth(raw); d > p.lim.MaxDepth {
		return messageErr(http.StatusBadRequest, fmt.Sprintf("400 Bad request - JSON nested deeper than %d levels", p.lim.MaxDepth))
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return messageErr(http.StatusBadRequest, fmt.Sprintf("400 Bad request - malformed JSON body: %s at offset %d", se.Error(), se.Offset))
		}
		return messageErr(http.StatusBadRequest, "400 Bad request - malformed JSON body")
	}
	obj, ok := doc.(map[string]any)
	if !ok {
		// A JSON array or scalar carries no parameters.
		return nil
	}
	// Keys spelled variables[K] are merged after the variables object, so
	// that both spellings end up in one map.
	for k, v := range obj {
		if k == "variables" || k == "inputs" {
			p.set(k, v)
		}
	}
	for k, v := range obj {
		if k != "variables" && k != "inputs" {
			p.set(k, v)
		}
	}
	return nil
}

func bodyErr(err error, what string) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return messageErr(http.StatusRequestEntityTooLarge, fmt.Sprintf("413 Request Entity Too Large - the body is limited to %d bytes", mbe.Limit))
	}
	return messageErr(http.StatusBadRequest, "400 Bad request - malformed "+what)
}

// JSONDepth returns the deepest nesting of arrays and objects in raw,
// scanning bytes so that a hostile document costs linear time and no
// allocations before it is refused.
func JSONDepth(raw []byte) int {
	depth, max := 0, 0
	inStr, esc := false, false
	for _, c := range raw {
		if inStr {
			switch {
			case esc:
				esc = false
			case c == '\\':
				esc = true
			case c == '"':
				inStr = false
			}
			continue
		}
		switch c {
		case '"':
			inStr = true
		case '{', '[':
			depth++
			if depth > max {
				max = depth
			}
		case '}', ']':
			depth--
		}
	}
	return max
}
