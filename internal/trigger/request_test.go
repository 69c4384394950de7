package trigger

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"
)

func multipartReq(t *testing.T, target string, fields [][2]string) *http.Request {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for _, f := range fields {
		mw.WriteField(f[0], f[1])
	}
	mw.Close()
	r := httptest.NewRequest("POST", target, &buf)
	r.Header.Set("Content-Type", mw.FormDataContentType())
	return r
}

func formReq(target, body string) *http.Request {
	r := httptest.NewRequest("POST", target, strings.NewReader(body))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return r
}

func jsonReq(target, body string) *http.Request {
	r := httptest.NewRequest("POST", target, strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	return r
}

func mustParse(t *testing.T, r *http.Request, urlRef string) *Request {
	t.Helper()
	req, err := Parse(r, urlRef, "1", DefaultLimits)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return req
}

func wantErr(t *testing.T, r *http.Request, lim Limits, status int, body map[string]any) {
	t.Helper()
	_, err := Parse(r, "", "1", lim)
	var te *Error
	if !errors.As(err, &te) {
		t.Fatalf("Parse error = %v, want *Error", err)
	}
	if te.Status != status {
		t.Fatalf("status = %d, want %d (%v)", te.Status, status, te.Body)
	}
	if body != nil {
		got, _ := json.Marshal(te.Body)
		want, _ := json.Marshal(body)
		if string(got) != string(want) {
			t.Fatalf("body = %s, want %s", got, want)
		}
	}
}

// TestParseForms covers every form GitLab's docs use: multipart (curl -F),
// url-encoded (curl -d), the query string, JSON with a variables object and
// with variables[K] keys, and mixes of query and body.
func TestParseForms(t *testing.T) {
	want := map[string]string{"UPLOAD_TO_S3": "true", "B": "x y"}
	cases := map[string]*http.Request{
		"multipart":         multipartReq(t, "/p", [][2]string{{"token", "T"}, {"ref", "main"}, {"variables[UPLOAD_TO_S3]", "true"}, {"variables[B]", "x y"}}),
		"urlencoded":        formReq("/p", "token=T&ref=main&variables%5BUPLOAD_TO_S3%5D=true&variables[B]=x+y"),
		"query":             httptest.NewRequest("POST", "/p?token=T&ref=main&variables[UPLOAD_TO_S3]=true&variables%5BB%5D=x%20y", nil),
		"json":              jsonReq("/p", `{"token":"T","ref":"main","variables":{"UPLOAD_TO_S3":"true","B":"x y"}}`),
		"json-bracket-keys": jsonReq("/p", `{"token":"T","ref":"main","variables[UPLOAD_TO_S3]":"true","variables[B]":"x y"}`),
		"json-both":         jsonReq("/p", `{"token":"T","ref":"main","variables":{"UPLOAD_TO_S3":"true"},"variables[B]":"x y"}`),
		"mixed-query-form":  formReq("/p?token=T&variables[B]=x+y", "ref=main&variables[UPLOAD_TO_S3]=true"),
		"mixed-query-json":  jsonReq("/p?token=T&ref=main&variables[B]=x+y", `{"variables":{"UPLOAD_TO_S3":"true"}}`),
		"mixed-multipart":   multipartReq(t, "/p?token=T&variables[B]=x+y", [][2]string{{"ref", "main"}, {"variables[UPLOAD_TO_S3]", "true"}}),
		"json-no-type": func() *http.Request {
			r := httptest.NewRequest("POST", "/p", strings.NewReader(`{"token":"T","ref":"main","variables":{"UPLOAD_TO_S3":"true","B":"x y"}}`))
			return r
		}(),
	}
	for name, r := range cases {
		t.Run(name, func(t *testing.T) {
			req := mustParse(t, r, "")
			if req.Token != "T" || req.Ref != "main" || !reflect.DeepEqual(req.Variables, want) {
				t.Fatalf("got token=%q ref=%q vars=%v", req.Token, req.Ref, req.Variables)
			}
			if !reflect.DeepEqual(req.Keys(), []string{"B", "UPLOAD_TO_S3"}) {
				t.Fatalf("keys = %v", req.Keys())
			}
			var payload map[string]any
			if err := json.Unmarshal(req.Payload, &payload); err != nil {
				t.Fatal(err)
			}
			if _, ok := payload["token"]; ok || payload["ref"] != "main" || payload["id"] != "1" {
				t.Fatalf("payload = %s", req.Payload)
			}
		})
	}
}

func TestParseBodyWinsOverQuery(t *testing.T) {
	req := mustParse(t, formReq("/p?token=Q&ref=q&variables[A]=q", "token=B&ref=b&variables[A]=b"), "")
	if req.Token != "B" || req.Ref != "b" || req.Variables["A"] != "b" {
		t.Fatalf("%+v", req)
	}
}

// TestParseWebhook: the URL ref wins over a push event's ref, and the
// payload is the body minus the token, as TRIGGER_PAYLOAD.
func TestParseWebhook(t *testing.T) {
	body := `{"object_kind":"push","ref":"refs/heads/other","token":"T","project":{"id":7,"name":"x"},"commits":[{"id":"abc"}]}`
	req := mustParse(t, jsonReq("/p?token=T&variables[K]=v", body), "main")
	if req.Ref != "main" || req.Token != "T" {
		t.Fatalf("ref=%q token=%q", req.Ref, req.Token)
	}
	var payload map[string]any
	json.Unmarshal(req.Payload, &payload)
	if payload["ref"] != "main" || payload["object_kind"] != "push" || payload["token"] != nil {
		t.Fatalf("payload = %s", req.Payload)
	}
	if !reflect.DeepEqual(payload["variables"], map[string]any{"K": "v"}) {
		t.Fatalf("payload variables = %v", payload["variables"])
	}
	if strings.Contains(string(req.Payload), `"T"`) {
		t.Fatal("payload contains the token")
	}
	// A bare call's payload matches GitLab's {"ref":..,"id":..,"variables":{}}.
	bare := mustParse(t, formReq("/p", "token=T&ref=master"), "")
	if string(bare.Payload) != `{"id":"1","ref":"master","variables":{}}` {
		t.Fatalf("bare payload = %s", bare.Payload)
	}
	// Any JSON works on the webhook form, including a non-object.
	arr := mustParse(t, jsonReq("/p?token=T", `[1,2,3]`), "main")
	if arr.Ref != "main" {
		t.Fatal(arr.Ref)
	}
}

func TestParseErrors(t *testing.T) {
	lim := DefaultLimits
	wantErr(t, formReq("/p", "ref=main"), lim, 400, map[string]any{"error": "token is missing"})
	wantErr(t, formReq("/p", "token=T"), lim, 400, map[string]any{"error": "ref is missing"})
	wantErr(t, formReq("/p", "token=T&ref="), lim, 400, map[string]any{"error": "ref is empty"})
	wantErr(t, formReq("/p", ""), lim, 400, map[string]any{"error": "token is missing, ref is missing"})
	for _, body := range []string{
		`{"token":"T","ref":"main","variables":{"A":1}}`,
		`{"token":"T","ref":"main","variables":{"A":true}}`,
		`{"token":"T","ref":"main","variables":{"A":null}}`,
		`{"token":"T","ref":"main","variables":{"A":{"B":"c"}}}`,
		`{"token":"T","ref":"main","variables":{"A":["x"]}}`,
		`{"token":"T","ref":"main","variables[A]":2}`,
	} {
		wantErr(t, jsonReq("/p", body), lim, 400, map[string]any{"message": "variables needs to be a map of key-valued strings"})
	}
	wantErr(t, jsonReq("/p", `{"token":"T","ref":"main","variables":"x"}`), lim, 400, map[string]any{"error": "variables is invalid"})
	wantErr(t, jsonReq("/p", `{"token":"T","ref":"main","variables":["x"]}`), lim, 400, map[string]any{"error": "variables is invalid"})
	wantErr(t, jsonReq("/p", `{"token":{"a":1},"ref":"main"}`), lim, 400, map[string]any{"error": "token is invalid"})
	wantErr(t, jsonReq("/p", `{"token":"T","ref":["main"]}`), lim, 400, map[string]any{"error": "ref is invalid"})
	wantErr(t, jsonReq("/p", `{"token":"T",`), lim, 400, nil)
	wantErr(t, formReq("/p", "token=T&ref=main&variables[A-B]=1"), lim, 400, nil)
	// Numbers are coerced to strings for token and ref, as Grape does.
	req := mustParse(t, jsonReq("/p", `{"token":"T","ref":123}`), "")
	if req.Ref != "123" {
		t.Fatal(req.Ref)
	}
}

// TestParseHostile: huge bodies, deep JSON, many variables and many fields
// are refused quickly with a clear error instead of being processed.
func TestParseHostile(t *testing.T) {
	lim := Limits{MaxBody: 64 << 10, MaxVariables: 1000, MaxDepth: 64, MaxFields: 2000}
	huge := `{"token":"T","ref":"main","pad":"` + strings.Repeat("a", 1<<20) + `"}`
	wantErr(t, jsonReq("/p", huge), lim, 413, nil)
	wantErr(t, formReq("/p", "token=T&ref=main&pad="+strings.Repeat("a", 1<<20)), lim, 413, nil)
	wantErr(t, multipartReq(t, "/p", [][2]string{{"token", "T"}, {"ref", "main"}, {"pad", strings.Repeat("a", 1<<20)}}), lim, 413, nil)

	deep := `{"token":"T","ref":"main","x":` + strings.Repeat("[", 10000) + strings.Repeat("]", 10000) + `}`
	wantErr(t, jsonReq("/p", deep), lim, 400, map[string]any{"message": "400 Bad request - JSON nested deeper than 64 levels"})
	// Brackets inside strings do not count.
	mustParse(t, jsonReq("/p", `{"token":"T","ref":"main","x":"`+strings.Repeat("[", 1000)+`"}`), "")

	var b strings.Builder
	b.WriteString(`{"token":"T","ref":"main","variables":{`)
	for i := range 10000 {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `"V%d":"x"`, i)
	}
	b.WriteString(`}}`)
	big := Limits{MaxBody: 1 << 20, MaxVariables: 1000, MaxDepth: 64, MaxFields: 2000}
	wantErr(t, jsonReq("/p", b.String()), big, 400, map[string]any{"message": "400 Bad request - too many variables (at most 1000)"})

	form := url.Values{"token": {"T"}, "ref": {"main"}}
	for i := range 10000 {
		form.Set(fmt.Sprintf("variables[V%d]", i), "x")
	}
	wantErr(t, formReq("/p", form.Encode()), big, 400, nil)
	q := httptest.NewRequest("POST", "/p?"+form.Encode(), nil)
	wantErr(t, q, big, 400, nil)

	// 1000 variables are fine.
	form = url.Values{"token": {"T"}, "ref": {"main"}}
	for i := range 1000 {
		form.Set(fmt.Sprintf("variables[V%d]", i), "x")
	}
	if req := mustParse(t, formReq("/p", form.Encode()), ""); len(req.Variables) != 1000 {
		t.Fatal(len(req.Variables))
	}
}

func TestLimiter(t *testing.T) {
	now := time.Unix(1000, 0)
	l := NewLimiter(3, 60)
	l.Now = func() time.Time { return now }
	for i := range 3 {
		if ok, _ := l.Allow("a"); !ok {
			t.Fatalf("call %d refused", i)
		}
	}
	ok, retry := l.Allow("a")
	if ok || retry < time.Second {
		t.Fatalf("4th call: ok=%v retry=%v", ok, retry)
	}
	if ok, _ := l.Allow("b"); !ok {
		t.Fatal("other key refused")
	}
	now = now.Add(time.Second)
	if ok, _ := l.Allow("a"); !ok {
		t.Fatal("refill did not happen")
	}
	// Failed-attempt use: Blocked does not consume; Take does.
	f := NewLimiter(2, 6)
	f.Now = func() time.Time { return now }
	f.Take("ip")
	f.Take("ip")
	blocked, retry, first := f.Blocked("ip")
	if !blocked || !first || retry != 10*time.Second {
		t.Fatalf("blocked=%v first=%v retry=%v", blocked, first, retry)
	}
	if _, _, first := f.Blocked("ip"); first {
		t.Fatal("second refusal reported as first")
	}
	now = now.Add(10 * time.Second)
	if blocked, _, _ := f.Blocked("ip"); blocked {
		t.Fatal("still blocked after refill")
	}
	var nilL *Limiter
	if ok, _ := nilL.Allow("x"); !ok {
		t.Fatal("nil limiter refused")
	}
}

func TestParseRefusalKeepsTokenAndRef(t *testing.T) {
	r := httptest.NewRequest("POST", "/api/v4/projects/1/trigger/pipeline", strings.NewReader(`{"token":"glptt-abcdef","ref":"main","variables":{"A":1}}`))
	r.Header.Set("Content-Type", "application/json")
	req, err := Parse(r, "", "1", DefaultLimits)
	if err == nil || req == nil || req.Token != "glptt-abcdef" || req.Ref != "main" {
		t.Fatalf("req %+v err %v", req, err)
	}
}

// TestParseInputs: inputs[K] form fields, an inputs JSON object and both
// spellings mixed all reach Request.Inputs and the payload (so that an
// idempotency key replayed with other inputs is another request); an
// inputs value that is not an object is refused.
func TestParseInputs(t *testing.T) {
	for name, r := range map[string]*http.Request{
		"multipart":  multipartReq(t, "/p", [][2]string{{"token", "T"}, {"ref", "main"}, {"inputs[env]", "prod"}, {"inputs[n]", "3"}}),
		"urlencoded": formReq("/p", "token=T&ref=main&inputs%5Benv%5D=prod&inputs[n]=3"),
		"json":       jsonReq("/p", `{"token":"T","ref":"main","inputs":{"env":"prod","n":"3"}}`),
		"json mixed": jsonReq("/p", `{"token":"T","ref":"main","inputs":{"env":"prod"},"inputs[n]":"3"}`),
	} {
		t.Run(name, func(t *testing.T) {
			req := mustParse(t, r, "")
			if len(req.Inputs) != 2 || req.Inputs["env"] != "prod" || fmt.Sprint(req.Inputs["n"]) != "3" {
				t.Fatalf("inputs = %#v", req.Inputs)
			}
			if !strings.Contains(string(req.Fingerprint), `"inputs":{"env":"prod","n":"3"}`) {
				t.Fatalf("fingerprint = %s", req.Fingerprint)
			}
		})
	}
	for _, body := range []string{`{"token":"T","ref":"main","inputs":"x"}`, `{"token":"T","ref":"main","inputs":["x"]}`} {
		wantErr(t, jsonReq("/p", body), DefaultLimits, http.StatusBadRequest, nil)
	}
}
