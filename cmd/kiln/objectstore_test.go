package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestObjectStoreFlags(t *testing.T) {
	keyFile := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(keyFile, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	base := []string{"--object-store", "s3", "--s3-endpoint", "http://127.0.0.1:9000", "--s3-bucket", "b", "--s3-access-key", "AK"}
	for _, tc := range []struct {
		name    string
		args    []string
		env     map[string]string
		kind    string
		secret  string
		access  string
		vhost   bool
		wantErr string
	}{
		{name: "default is disk", kind: "disk"},
		{name: "env selects s3", env: map[string]string{"KILN_OBJECT_STORE": "s3", "KILN_S3_ENDPOINT": "h:1", "KILN_S3_BUCKET": "b", "KILN_S3_ACCESS_KEY": "AKE", "KILN_S3_SECRET_KEY": "from-env"}, kind: "s3", secret: "from-env", access: "AKE"},
		{name: "secret flag", args: append(base, "--s3-secret-key", "from-flag"), env: map[string]string{"KILN_S3_SECRET_KEY": "from-env"}, kind: "s3", secret: "from-flag", access: "AK"},
		{name: "secret env", args: base, env: map[string]string{"KILN_S3_SECRET_KEY": "from-env"}, kind: "s3", secret: "from-env", access: "AK"},
		{name: "secret file", args: append(base, "--s3-secret-key-file", keyFile), kind: "s3", secret: "from-file", access: "AK"},
		{name: "secret file env", args: base, env: map[string]string{"KILN_S3_SECRET_KEY_FILE": keyFile}, kind: "s3", secret: "from-file", access: "AK"},
		{name: "virtual host", args: append(base, "--s3-secret-key", "s", "--s3-path-style=false"), kind: "s3", secret: "s", access: "AK", vhost: true},
		{name: "path style env off", args: append(base, "--s3-secret-key", "s"), env: map[string]string{"KILN_S3_PATH_STYLE": "false"}, kind: "s3", secret: "s", access: "AK", vhost: true},
		{name: "no secret", args: base, wantErr: "secret key"},
		{name: "missing file", args: append(base, "--s3-secret-key-file", "/nonexistent/x"), wantErr: "key file"},
		{name: "no bucket", args: []string{"--object-store", "s3", "--s3-endpoint", "h", "--s3-access-key", "a", "--s3-secret-key", "s"}, wantErr: "--s3-bucket"},
		{name: "unknown kind", args: []string{"--object-store", "gcs"}, wantErr: "disk or s3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, k := range []string{"KILN_OBJECT_STORE", "KILN_S3_ENDPOINT", "KILN_S3_BUCKET", "KILN_S3_ACCESS_KEY", "KILN_S3_ACCESS_KEY_FILE", "KILN_S3_SECRET_KEY", "KILN_S3_SECRET_KEY_FILE", "KILN_S3_PATH_STYLE"} {
				t.Setenv(k, tc.env[k])
				if _, ok := tc.env[k]; !ok {
					os.Unsetenv(k)
				}
			}
			fs := flag.NewFlagSet("t", flag.ContinueOnError)
			get := objectStoreFlags(fs)
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			kind, cfg, err := get()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || kind != tc.kind || cfg.SecretKey != tc.secret || cfg.AccessKey != tc.access || cfg.VirtualHostStyle != tc.vhost {
				t.Fatalf("got %q %+v %v", kind, cfg, err)
			}
		})
	}
}

// The secret never shows in --help, even when it comes from the environment.
func TestObjectStoreFlagsHelpHidesSecret(t *testing.T) {
	t.Setenv("KILN_S3_SECRET_KEY", "very-secret-value")
	t.Setenv("KILN_S3_ACCESS_KEY", "access-value")
	var out bytes.Buffer
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(&out)
	objectStoreFlags(fs)
	fs.PrintDefaults()
	if strings.Contains(out.String(), "very-secret-value") || strings.Contains(out.String(), "access-value") {
		t.Fatalf("help shows a key:\n%s", out.String())
	}
}
