package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/kilnci/kiln/internal/blob"
)

// objectStoreFlags adds the object store flags (--object-store, --s3-*) to
// fs; the returned function, called after Parse, gives the store kind and
// the S3 settings. Secrets never appear as flag defaults (that is,
// in --help): they come from the flag, the environment or a file.
func objectStoreFlags(fs *flag.FlagSet) func() (string, blob.S3Config, error) {
	kind := fs.String("object-store", envOr("KILN_OBJECT_STORE", "disk"), "where artifacts and finished job logs live: disk (the data dir) or s3 (KILN_OBJECT_STORE)")
	var cfg blob.S3Config
	fs.StringVar(&cfg.Endpoint, "s3-endpoint", envOr("KILN_S3_ENDPOINT", ""), "S3 endpoint: host:port, or http(s)://host:port (KILN_S3_ENDPOINT)")
	fs.StringVar(&cfg.Bucket, "s3-bucket", envOr("KILN_S3_BUCKET", ""), "S3 bucket; it must exist (KILN_S3_BUCKET)")
	fs.StringVar(&cfg.Region, "s3-region", envOr("KILN_S3_REGION", "us-east-1"), "S3 region (KILN_S3_REGION)")
	fs.StringVar(&cfg.Prefix, "s3-prefix", envOr("KILN_S3_PREFIX", ""), "prefix of Kiln's object names in the bucket, e.g. kiln/ (KILN_S3_PREFIX)")
	accessKey := fs.String("s3-access-key", "", "S3 access key (default $KILN_S3_ACCESS_KEY, or the file $KILN_S3_ACCESS_KEY_FILE names)")
	secretKey := fs.String("s3-secret-key", "", "S3 secret key; prefer $KILN_S3_SECRET_KEY or --s3-secret-key-file, which other users cannot read in the process list")
	secretFile := fs.String("s3-secret-key-file", envOr("KILN_S3_SECRET_KEY_FILE", ""), "file holding the S3 secret key (KILN_S3_SECRET_KEY_FILE)")
	pathStyle := fs.Bool("s3-path-style", envBoolDefault("KILN_S3_PATH_STYLE", true), "address the bucket as endpoint/bucket; false: bucket.endpoint (KILN_S3_PATH_STYLE)")
	fs.DurationVar(&cfg.StallTimeout, "s3-stall-timeout", envDuration("KILN_S3_STALL_TIMEOUT", blob.DefaultStallTimeout), "fail an S3 request whose connection makes no progress (connect, answer, body bytes) for this long (KILN_S3_STALL_TIMEOUT)")
	fs.BoolVar(&cfg.Insecure, "s3-insecure", envBool("KILN_S3_INSECURE"), "plain HTTP to an --s3-endpoint given without a scheme (KILN_S3_INSECURE)")
	return func() (string, blob.S3Config, error) {
		cfg.VirtualHostStyle = !*pathStyle
		switch *kind {
		case "disk", "":
			return "disk", cfg, nil
		case "s3":
		default:
			return "", cfg, fmt.Errorf("--object-store %q: disk or s3", *kind)
		}
		var err error
		if cfg.AccessKey, err = secret(*accessKey, "KILN_S3_ACCESS_KEY", os.Getenv("KILN_S3_ACCESS_KEY_FILE")); err != nil {
			return "", cfg, err
		}
		if cfg.SecretKey, err = secret(*secretKey, "KILN_S3_SECRET_KEY", *secretFile); err != nil {
			return "", cfg, err
		}
		if cfg.Endpoint == "" || cfg.Bucket == "" {
			return "", cfg, errors.New("--object-store s3 needs --s3-endpoint and --s3-bucket")
		}
		if cfg.AccessKey == "" || cfg.SecretKey == "" {
			return "", cfg, errors.New("--object-store s3 needs an access key and a secret key (--s3-access-key, KILN_S3_SECRET_KEY or --s3-secret-key-file)")
		}
		return "s3", cfg, nil
	}
}

// secret is the flag's value, else the environment variable's, else the
// content of file (trailing newline dropped).
func secret(flagValue, env, file string) (string, error) {
	if flagValue != "" {
		return flagValue, nil
	}
	if v := os.Getenv(env); v != "" {
		return v, nil
	}
	if file == "" {
		return "", nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("reading the S3 key file: %w", err)
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

// envBoolDefault is envBool with a default for an unset variable.
func envBoolDefault(key string, def bool) bool {
	if _, ok := os.LookupEnv(key); !ok {
		return def
	}
	return envBool(key)
}
