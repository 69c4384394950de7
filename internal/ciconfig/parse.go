package ciconfig

import (
	"bytes"
	"errors"
	"io"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Parse reads a .gitlab-ci.yml. On failure the error is an *Errors whose
// messages are worded as GitLab's lint API words them.
func Parse(src []byte, opts Options) (*Config, error) {
	opts.Limits = opts.Limits.withDefaults()
	usedVars := false
	opts.usedVars = &usedVars
	if len(bytes.TrimSpace(src)) == 0 {
		return nil, newErrors(msgEmpty)
	}
	root, err := loadYAML(src, opts.Limits)
	if err != nil {
		return nil, err
	}
	root, inputs, err := applyInputs(src, root, opts)
	if err != nil {
		return nil, err
	}
	inc := &includer{opts: opts}
	root, err = inc.expand(root, 0)
	if err != nil {
		return nil, err
	}
	// Extends and !reference copy subtrees; they share one node budget on
	// top of what loading used, so they cannot amplify a small file.
	b := &budget{left: opts.Limits.MaxNodes, bytes: opts.Limits.MaxTotalBytes - valueBytes(root, opts.Limits.MaxTotalBytes)}
	if b.bytes < 0 {
		return nil, newErrors(msgTotalTooBig)
	}
	if err := applyExtends(root, b); err != nil {
		return nil, err
	}
	root, err = resolveReferences(root, b)
	if err != nil {
		return nil, err
	}
	injectEdgeStages(root)

	n := newNormalizer(root, opts)
	cfg := n.run()
	if !n.errs.empty() {
		return nil, &Errors{Messages: n.errs.msgs}
	}
	cfg.MergedYAML = dumpYAML(root)
	cfg.Inputs = inputs
	cfg.UsesVariables = usedVars
	return cfg, nil
}

var (
	yamlLinePrefix = regexp.MustCompile(`^yaml: (line (\d+): )?`)
	unknownAnchor  = regexp.MustCompile(`unknown anchor '([^']*)' referenced`)
)

// loadYAML parses one YAML file into a value tree whose root must be a hash.
func loadYAML(src []byte, limits Limits) (*mapping, error) {
	if len(src) > limits.MaxBytes {
		return nil, newErrors(msgTooBig)
	}
	doc, err := firstDocument(src)
	if err != nil {
		return nil, newErrors(yamlErrorMessage(err))
	}
	if doc == nil {
		return nil, newErrors(msgInvalidFormat)
	}
	if _, err := checkExpansion(doc, limits); err != nil {
		return nil, err
	}
	l := &loader{limits: limits}
	v := l.convert(doc, 0)
	if l.err != nil {
		return nil, l.err
	}
	m, ok := v.(*mapping)
	if !ok {
		return nil, newErrors(msgInvalidFormat)
	}
	return m, nil
}

// firstDocument returns the configuration document. A file may start with
// a header document holding only `spec:` (for inputs); the configuration
// is then the second document.
func firstDocument(src []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(src))
	var first yaml.Node
	if err := dec.Decode(&first); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, err
	}
	if isSpecHeader(&first) {
		var second yaml.Node
		if err := dec.Decode(&second); err == nil {
			return &second, nil
		} else if !errors.Is(err, io.EOF) {
			return nil, err
		}
	}
	return &first, nil
}

func isSpecHeader(doc *yaml.Node) bool {
	if len(doc.Content) != 1 {
		return false
	}
	m := doc.Content[0]
	return m.Kind == yaml.MappingNode && len(m.Content) == 2 && m.Content[0].Value == "spec"
}

// yamlErrorMessage rewords the YAML library's errors the way Psych prints
// them, which is what GitLab users see.
func yamlErrorMessage(err error) string {
	msg := err.Error()
	if m := unknownAnchor.FindStringSubmatch(msg); m != nil {
		return "(<unknown>): Unknown alias: " + m[1]
	}
	line := ""
	if m := yamlLinePrefix.FindStringSubmatch(msg); m != nil && m[2] != "" {
		line = " at line " + m[2]
	}
	msg = yamlLinePrefix.ReplaceAllString(msg, "")
	return "(<unknown>): " + msg + line
}

// injectEdgeStages adds .pre and .post around the declared stages, as
// GitLab's EdgeStagesInjector does, so merged_yaml shows them.
func injectEdgeStages(root *mapping) {
	v, ok := root.get("stages")
	if !ok {
		return
	}
	list, ok := v.([]any)
	if !ok {
		return
	}
	out := make([]any, 0, len(list)+2)
	out = append(out, ".pre")
	for _, s := range list {
		if s != ".pre" && s != ".post" {
			out = append(out, s)
		}
	}
	out = append(out, ".post")
	root.set("stages", out)
}

// isHidden reports whether a top-level key names a hidden job (template).
func isHidden(name string) bool { return strings.HasPrefix(name, ".") }
