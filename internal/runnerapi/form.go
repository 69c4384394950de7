package runnerapi

import (
	"encoding/json"
	"fmt"
	"net/url"
	"reflect"
	"strconv"
	"strings"
)

// formInto fills the top-level fields of the struct v points to from form
// values, by their JSON names. GitLab Runner sends JSON, but GitLab's API
// docs show these endpoints with curl --form, so form bodies must work too.
// Nested objects (info) cannot be given as form fields and are left empty.
func formInto(v any, vals url.Values) error {
	rv := reflect.ValueOf(v).Elem()
	rt := rv.Type()
	for i := 0; i < rt.NumField(); i++ {
		f := rt.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" || name == "-" {
			continue
		}
		raw, ok := vals[name]
		if !ok {
			raw, ok = vals[name+"[]"]
		}
		if !ok || len(raw) == 0 {
			continue
		}
		fv := rv.Field(i)
		if fv.Kind() == reflect.Pointer {
			if fv.IsNil() {
				fv.Set(reflect.New(fv.Type().Elem()))
			}
			fv = fv.Elem()
		}
		if err := setScalar(fv, raw); err != nil {
			return fmt.Errorf("%s is invalid", name)
		}
	}
	return nil
}

func setScalar(fv reflect.Value, raw []string) error {
	s := raw[len(raw)-1]
	if fv.Type() == reflect.TypeOf(json.RawMessage(nil)) {
		// Fields kept raw to accept several JSON shapes (tag_list: "a,b" or
		// ["a","b"]) take the form value as a JSON string.
		b, _ := json.Marshal(strings.Join(raw, ","))
		fv.SetBytes(b)
		return nil
	}
	switch fv.Kind() {
	case reflect.String:
		fv.SetString(s)
	case reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return err
		}
		fv.SetBool(b)
	case reflect.Int, reflect.Int32, reflect.Int64:
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return err
		}
		fv.SetInt(n)
	case reflect.Slice:
		if fv.Type().Elem().Kind() != reflect.String {
			return fmt.Errorf("unsupported")
		}
		var items []string
		for _, r := range raw {
			for _, p := range strings.Split(r, ",") {
				if p = strings.TrimSpace(p); p != "" {
					items = append(items, p)
				}
			}
		}
		fv.Set(reflect.ValueOf(items))
	default:
		return nil // objects (info, features) have no form spelling
	}
	return nil
}
