package ciconfig

import (
	"fmt"
	"testing"
)

func TestInputFields(t *testing.T) {
	src := []byte(`spec:
  inputs:
    env:
      options: [staging, production]
      default: staging
      description: where to deploy
    tier:
      rules:
        - if: $[[ inputs.env ]] == "production"
          options: [large, xlarge]
          default: large
        - options: [small]
          default: small
    replicas:
      type: number
      default: 2
    dry:
      type: boolean
      default: true
    targets:
      type: array
      default: [a, b]
    version:
      regex: ^v\d+$
---
j:
  script: x
`)
	for _, tc := range []struct {
		name  string
		given map[string]any
		want  string
	}{
		{"defaults", nil, "[{env string where to deploy [staging production]  false staging false true} {tier string  [small]  false small false false} {replicas number  []  false 2 false false} {dry boolean  []  false true true false} {targets array  []  false a\nb false false} {version string  [] ^v\\d+$ true  false false}]"},
		{"rules follow the given env", map[string]any{"env": "production", "tier": "xlarge", "replicas": "bad", "dry": "false", "targets": FormArray("x\n\n y \n")},
			"[{env string where to deploy [staging production]  false production false true} {tier string  [large xlarge]  false xlarge false false} {replicas number  []  false 2 false false} {dry boolean  []  false false false false} {targets array  []  false x\ny false false} {version string  [] ^v\\d+$ true  false false}]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs, err := InputFields(src, tc.given)
			if err != nil {
				t.Fatal(err)
			}
			if got := fmt.Sprint(fs); got != tc.want {
				t.Fatalf("fields =\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
	if fs, err := InputFields([]byte("j:\n  script: x\n"), nil); fs != nil || err != nil {
		t.Fatalf("no header: %v %v", fs, err)
	}
	if FormArray(` ["a", 1] `) != `["a", 1]` {
		t.Fatal("JSON array text is not kept for the spec's conversion")
	}
}
