package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Params holds a request's parameters merged from the query string and the
// body (JSON, url-encoded form or multipart form), as Grape presents them to
// GitLab's endpoints: form keys like variables[KEY] become nested maps and
// keys like scopes[] become lists. Body values win over query values.
type Params struct {
	v map[string]any
	// Raw is the request body when it was JSON (for webhook payloads).
	Raw []byte
	// JSON reports whether the body was a JSON document.
	JSON bool
}

const maxFormKeys = 1000

// readParams parses r's parameters, reading at most limit body bytes.
func readParams(r *http.Request, limit int64) (*Params, error) {
	p := &Params{v: map[string]any{}}
	if err := p.addValues(r.URL.Query()); err != nil {
		return nil, err
	}
	if r.Body == nil || r.Method == http.MethodGet || r.Method == http.MethodHead {
		return p, nil
	}
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	body := http.MaxBytesReader(nil, r.Body, limit)
	switch ct {
	case "multipart/form-data":
		r.Body = body
		if err := r.ParseMultipartForm(limit); err != nil {
			return nil, bodyErr(err, "multipart form")
		}
		if r.MultipartForm != nil {
			if err := p.addValues(r.MultipartForm.Value); err != nil {
				return nil, err
			}
		}
	case "application/x-www-form-urlencoded":
		raw, err := io.ReadAll(body)
		if err != nil {
			return nil, bodyErr(err, "form")
		}
		vals, err := url.ParseQuery(string(raw))
		if err != nil {
			return nil, errBadRequest("malformed form body")
		}
		if err := p.addValues(vals); err != nil {
			return nil, err
		}
	default:
		raw, err := io.ReadAll(body)
		if err != nil {
			return nil, bodyErr(err, "body")
		}
		if len(bytes.TrimSpace(raw)) == 0 {
			return p, nil
		}
		if ct != "application/json" && !json.Valid(raw) {
			// Unknown content types carrying something that is not JSON are
			// ignored, as Grape ignores bodies it cannot parse into params.
			return p, nil
		}
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		var doc any
		if err := dec.Decode(&doc); err != nil {
			return nil, errBadRequest("malformed JSON body: " + jsonErrText(err))
		}
		p.Raw, p.JSON = raw, true
		obj, ok := doc.(map[string]any)
		if !ok {
			return nil, errBadRequest("the JSON body must be an object")
		}
		for k, val := range obj {
			if err := p.set(k, val); err != nil {
				return nil, err
			}
		}
	}
	return p, nil
}

func jsonErrText(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("%s at offset %d", se.Error(), se.Offset)
	}
	return err.Error()
}

func bodyErr(err error, what string) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return errMessage(http.StatusRequestEntityTooLarge, fmt.Sprintf("413 Request Entity Too Large - the body is limited to %d bytes", mbe.Limit))
	}
	return errBadRequest("malformed " + what + ": " + err.Error())
}

func (p *Params) addValues(vals map[string][]string) error {
	if len(vals) > maxFormKeys {
		return errBadRequest(fmt.Sprintf("too many parameters (at most %d)", maxFormKeys))
	}
	for k, vs := range vals {
		if base, sub, ok := listOfMapsKey(k); ok {
			if err := p.setListOfMaps(base, sub, vs); err != nil {
				return err
			}
			continue
		}
		for _, s := range vs {
			if err := p.set(k, s); err != nil {
				return err
			}
		}
	}
	return nil
}

// listOfMapsKey recognises Rack's list-of-hashes form keys, base[][sub], as
// in variables[][key]=A&variables[][value]=B.
func listOfMapsKey(k string) (base, sub string, ok bool) {
	base, rest, found := strings.Cut(k, "[][")
	if !found || base == "" || strings.Contains(base, "[") || !strings.HasSuffix(rest, "]") {
		return "", "", false
	}
	sub = strings.TrimSuffix(rest, "]")
	if sub == "" || strings.ContainsAny(sub, "[]") {
		return "", "", false
	}
	return base, sub, true
}

// setListOfMaps pairs the n-th value of every base[][sub] key into the n-th
// map of the list under base. Pairing by position (rather than Rack's
// "start a new hash when the key repeats") gives the same result for the
// forms clients send, and does not depend on map iteration order.
func (p *Params) setListOfMaps(base, sub string, vs []string) error {
	list, ok := p.v[base].([]any)
	if !ok && p.v[base] != nil {
		return errParam(base + " is invalid")
	}
	for i, s := range vs {
		for len(list) <= i {
			list = append(list, map[string]any{})
		}
		m, ok := list[i].(map[string]any)
		if !ok {
			return errParam(base + " is invalid")
		}
		m[sub] = s
	}
	p.v[base] = list
	return nil
}

// set stores a value under a possibly bracketed key: a[b] nests, a[] appends.
func (p *Params) set(key string, val any) error {
	base, rest, bracket := strings.Cut(key, "[")
	if !bracket {
		p.v[key] = val
		return nil
	}
	sub, tail, ok := strings.Cut(rest, "]")
	if !ok || tail != "" || base == "" {
		// Keys like a[b][c] or unbalanced brackets are kept verbatim; no
		// endpoint takes deeper nesting.
		p.v[key] = val
		return nil
	}
	if sub == "" {
		list, _ := p.v[base].([]any)
		p.v[base] = append(list, val)
		return nil
	}
	m, ok := p.v[base].(map[string]any)
	if !ok {
		if _, exists := p.v[base]; exists {
			return errParam(base + " is invalid")
		}
		m = map[string]any{}
		p.v[base] = m
	}
	m[sub] = val
	return nil
}

// Has reports whether key was given at all.
func (p *Params) Has(key string) bool { _, ok := p.v[key]; return ok }

// Value returns the raw value of key.
func (p *Params) Value(key string) any { return p.v[key] }

// Str returns key as a string, coercing numbers and booleans as Grape does.
func (p *Params) Str(key string) (string, bool) {
	switch v := p.v[key].(type) {
	case string:
		return v, true
	case json.Number:
		return v.String(), true
	case bool:
		return strconv.FormatBool(v), true
	}
	return "", false
}

// String returns key as a string or "".
func (p *Params) String(key string) string { s, _ := p.Str(key); return s }

// Scalars refuses, with Grape's "<key> is invalid", any of keys given as a
// list, an object or null where the endpoint takes a single value, so that
// {"name": ["a"]} is an error rather than silently read as missing.
func (p *Params) Scalars(keys ...string) error {
	for _, k := range keys {
		if v, ok := p.v[k]; ok {
			if _, isStr := p.Str(k); !isStr || v == nil {
				return errParam(k + " is invalid")
			}
		}
	}
	return nil
}

// Required returns a non-blank string parameter or Grape's "is missing" error.
func (p *Params) Required(key string) (string, error) {
	s, ok := p.Str(key)
	if !p.Has(key) || p.v[key] == nil {
		return "", errParam(key + " is missing")
	}
	if !ok {
		return "", errParam(key + " is invalid")
	}
	if strings.TrimSpace(s) == "" {
		return "", errParam(key + " is empty")
	}
	return s, nil
}

// Bool parses a boolean parameter; ok is false when absent.
func (p *Params) Bool(key string) (val, ok bool, err error) {
	switch v := p.v[key].(type) {
	case nil:
		return false, false, nil
	case bool:
		return v, true, nil
	case string:
		switch strings.ToLower(v) {
		case "true", "1", "yes", "t":
			return true, true, nil
		case "false", "0", "no", "f", "":
			return false, true, nil
		}
	case json.Number:
		return v.String() != "0", true, nil
	}
	return false, false, errParam(key + " is invalid")
}

// Int parses an integer parameter; ok is false when absent.
func (p *Params) Int(key string) (val int64, ok bool, err error) {
	s, isStr := p.Str(key)
	if !p.Has(key) || p.v[key] == nil {
		return 0, false, nil
	}
	if !isStr {
		return 0, false, errParam(key + " is invalid")
	}
	n, perr := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if perr != nil {
		return 0, false, errParam(key + " is invalid")
	}
	return n, true, nil
}

// List returns key as a list of strings: a JSON array, repeated key[] form
// fields, or a comma-separated string.
func (p *Params) List(key string) ([]string, bool, error) {
	switch v := p.v[key].(type) {
	case nil:
		return nil, false, nil
	case string:
		var out []string
		for _, s := range strings.Split(v, ",") {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
		return out, true, nil
	case []any:
		out := make([]string, 0, len(v))
		for _, e := range v {
			s, ok := e.(string)
			if !ok {
				return nil, false, errParam(key + " is invalid")
			}
			out = append(out, s)
		}
		return out, true, nil
	}
	return nil, false, errParam(key + " is invalid")
}

// Date parses a date (YYYY-MM-DD) or RFC 3339 time parameter.
func (p *Params) Date(key string) (*time.Time, error) {
	s, ok := p.Str(key)
	if !p.Has(key) || p.v[key] == nil || (ok && s == "") {
		return nil, nil
	}
	if !ok {
		return nil, errParam(key + " is invalid")
	}
	for _, layout := range []string{"2006-01-02", time.RFC3339, time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02 15:04:05"} {
		if t, err := time.Parse(layout, s); err == nil {
			t = t.UTC()
			return &t, nil
		}
	}
	return nil, errParam(key + " is invalid")
}
