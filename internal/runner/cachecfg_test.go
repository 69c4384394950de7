package runner

import (
	"io"
	"path/filepath"
	"strings"
	"testing"
)

func TestCacheFlags(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    []string
		env     map[string]string
		want    string // OpenCacheStore's store, "" for local
		wantErr string
	}{
		{name: "default is local", args: nil},
		{name: "local", args: []string{"--cache-type", "local"}},
		{name: "s3", args: []string{"--cache-type", "s3", "--cache-s3-server-address", "http://127.0.0.1:8333", "--cache-s3-bucket-name", "ci-cache", "--cache-path", "runners"},
			env: map[string]string{"KILN_RUNNER_CACHE_S3_ACCESS_KEY": "a", "KILN_RUNNER_CACHE_S3_SECRET_KEY": "s"}, want: "s3 http://127.0.0.1:8333/ci-cache/runners/"},
		{name: "s3 without bucket", args: []string{"--cache-type", "s3", "--cache-s3-server-address", "h:1"}, wantErr: "--cache-s3-bucket-name"},
		{name: "unknown type", args: []string{"--cache-type", "gcs"}, wantErr: `cache type "gcs"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			f := newFlags("run", io.Discard)
			if err := f.fs.Parse(append([]string{"--config", filepath.Join(t.TempDir(), "absent.json")}, tc.args...)); err != nil {
				t.Fatal(err)
			}
			fc, _, err := f.resolve(true)
			if err != nil {
				t.Fatal(err)
			}
			st, err := OpenCacheStore(fc.Cache)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := ""
			if st != nil {
				got = st.(interface{ String() string }).String()
			}
			if got != tc.want {
				t.Fatalf("store %q, want %q", got, tc.want)
			}
			if tc.env != nil && (fc.Cache.S3.AccessKey != "a" || fc.Cache.S3.SecretKey != "s") {
				t.Errorf("keys from the environment not taken: %+v", fc.Cache.S3)
			}
		})
	}
}
