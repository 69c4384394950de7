package ciconfig

import (
	"reflect"
	"strings"
	"testing"
)

func TestImageAndServices(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		image     *Image
		services  []Image
		err       string
	}{
		{name: "strings", src: "j:\n  image: alpine:3\n  services: [postgres:16]\n  script: x\n",
			image: &Image{Name: "alpine:3"}, services: []Image{{Name: "postgres:16"}}},
		{name: "hashes", src: `j:
  image: {name: node, entrypoint: [""], pull_policy: [never, if-not-present]}
  services:
    - name: db:1
      alias: db, database
      entrypoint: [/bin/serve]
      command: [a, b]
      variables: {GREETING: hi, RAW: {value: $X, expand: false}}
  script: x
`,
			image: &Image{Name: "node", Entrypoint: []string{""}, PullPolicy: []string{"never", "if-not-present"}},
			services: []Image{{Name: "db:1", Alias: "db, database", Entrypoint: []string{"/bin/serve"}, Command: []string{"a", "b"},
				Variables: []Variable{{Key: "GREETING", Value: "hi", Expand: true}, {Key: "RAW", Value: "$X", Expand: false}}}}},
		{name: "default", src: "default:\n  image: alpine\n  services: [redis]\nj:\n  script: x\n",
			image: &Image{Name: "alpine"}, services: []Image{{Name: "redis"}}},
		{name: "image variables", src: "j:\n  image: {name: a, variables: {A: b}}\n  script: x\n", err: "config contains unknown keys: variables"},
		{name: "bad service variables", src: "j:\n  services: [{name: a, variables: [x]}]\n  script: x\n", err: "config should be a hash"},
	} {
		cfg, err := Parse([]byte(tc.src), Options{})
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: err %v, want %q", tc.name, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		var j *Job
		for _, job := range cfg.Jobs {
			if job.Name == "j" {
				j = job
			}
		}
		if j == nil || !reflect.DeepEqual(j.Image, tc.image) || !reflect.DeepEqual(j.Services, tc.services) {
			t.Errorf("%s: image %+v services %+v", tc.name, j.Image, j.Services)
		}
	}
}
