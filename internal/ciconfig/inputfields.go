package ciconfig

import (
	"strings"
)

// InputField describes one `spec: inputs:` entry for a form (the web "Run
// pipeline" page): its control, its current value and its help text.
type InputField struct {
	Name        string
	Type        string // string, number, boolean, array
	Description string
	// Options are the allowed values as text (the first matching rule's
	// when the input has rules), for a select.
	Options []string
	// Regex is the spec's regex, for the text field's pattern.
	Regex string
	// Required is true when the input has no default (after rules).
	Required bool
	// Value is the form's text: the given value when it is valid, else
	// the default. Arrays read one item a line (JSON when an item is not
	// a string).
	Value string
	// Checked is Value for a boolean.
	Checked bool
	// Controls is true when other inputs' rules read this one, so that
	// changing it should reload the form.
	Controls bool
}

// InputFields reads the header of src and describes its inputs in spec
// order. given (form text or typed values) decide rules and fill values;
// an invalid given value is replaced by the default. A file without a
// header has no fields; a broken header is an *Errors.
func InputFields(src []byte, given map[string]any) ([]InputField, error) {
	specs, ok, err := headerInputs(src, Limits{}.withDefaults())
	if err != nil || !ok {
		return nil, err
	}
	controls := map[string]bool{}
	for _, s := range specs {
		for _, r := range s.rules {
			for _, ref := range r.refs {
				controls[ref] = true
			}
		}
	}
	fields := make([]InputField, len(specs))
	values := map[string]any{}
	order, _ := inputOrder(specs)
	for _, i := range order {
		s, err := specs[i].effective(values)
		if err != nil {
			s = specs[i]
		}
		f := InputField{Name: s.name, Type: s.typ, Description: s.describe, Required: !s.hasDef, Controls: controls[s.name]}
		for _, o := range s.options {
			f.Options = append(f.Options, inputText(o))
		}
		if s.regex != nil {
			f.Regex = s.regex.String()
		}
		var v any
		if g, ok := given[s.name]; ok && g != nil {
			if c := s.coerce(g); s.check(c, "provided value") == "" {
				v = c
			}
		}
		if v == nil && s.hasDef {
			v = s.def
		}
		if v != nil {
			values[s.name] = v
			f.Value = formText(v)
			f.Checked = v == true
		}
		fields[i] = f
	}
	return fields, nil
}

// formText is how a value reads in a form field: arrays of strings one
// item a line, other arrays as JSON.
func formText(v any) string {
	list, ok := v.([]any)
	if !ok {
		return inputText(v)
	}
	lines := make([]string, 0, len(list))
	for _, x := range list {
		s, ok := x.(string)
		if !ok || strings.Contains(s, "\n") {
			return toJSON(v)
		}
		lines = append(lines, s)
	}
	return strings.Join(lines, "\n")
}

// FormArray reads an array input's textarea: a JSON array as is,
// otherwise one item a non-empty line.
func FormArray(text string) any {
	t := strings.TrimSpace(text)
	if strings.HasPrefix(t, "[") {
		return t
	}
	var out []any
	for _, l := range strings.Split(t, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	if out == nil {
		out = []any{}
	}
	return out
}
