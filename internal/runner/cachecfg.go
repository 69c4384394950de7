package runner

import (
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/kilnci/kiln/internal/blob"
)

// CacheConfig is the runner's cache backend, as GitLab Runner's
// [runners.cache]: "local" (default: archives under cache_dir) or "s3"
// (archives in a bucket, shared by every runner that names it).
//
//	"cache": {"type": "s3", "path": "kiln-runners/", "s3": {
//	  "server_address": "s3.example.com", "bucket_name": "ci-cache",
//	  "bucket_location": "us-east-1", "access_key": "...", "secret_key": "..."}}
type CacheConfig struct {
	Type string `json:"type,omitempty"`
	// Path is put before every object name in the bucket.
	Path string         `json:"path,omitempty"`
	S3   *CacheS3Config `json:"s3,omitempty"`
}

// CacheS3Config holds GitLab Runner's [runners.cache.s3] settings.
type CacheS3Config struct {
	ServerAddress  string `json:"server_address"`
	BucketName     string `json:"bucket_name"`
	BucketLocation string `json:"bucket_location,omitempty"`
	AccessKey      string `json:"access_key,omitempty"`
	SecretKey      string `json:"secret_key,omitempty"`
	// Insecure talks plain HTTP to a server_address given without a scheme.
	Insecure bool `json:"insecure,omitempty"`
	// VirtualHostStyle addresses the bucket as <bucket>.<server>; the
	// default is path style.
	VirtualHostStyle bool `json:"virtual_host_style,omitempty"`
}

// cacheFlags are the --cache-* flags of register and run, named as
// gitlab-runner register's.
type cacheFlags struct {
	typ, path, server, bucket, location, accessKey, secretKey string
	insecure, virtualHost                                     bool
}

func (c *cacheFlags) add(fs *flag.FlagSet) {
	fs.StringVar(&c.typ, "cache-type", "", "cache backend: local (default: --cache-dir) or s3 (a bucket shared by runners)")
	fs.StringVar(&c.path, "cache-path", "", "prefix of cache object names in the bucket")
	fs.StringVar(&c.server, "cache-s3-server-address", "", "S3 endpoint of the cache: host:port or http(s)://host:port")
	fs.StringVar(&c.bucket, "cache-s3-bucket-name", "", "S3 bucket of the cache; it must exist")
	fs.StringVar(&c.location, "cache-s3-bucket-location", "", "S3 region of the cache bucket (default us-east-1)")
	fs.StringVar(&c.accessKey, "cache-s3-access-key", "", "S3 access key of the cache (env KILN_RUNNER_CACHE_S3_ACCESS_KEY)")
	fs.StringVar(&c.secretKey, "cache-s3-secret-key", "", "S3 secret key of the cache; prefer env KILN_RUNNER_CACHE_S3_SECRET_KEY, which the process list does not show")
	fs.BoolVar(&c.insecure, "cache-s3-insecure", false, "plain HTTP to a --cache-s3-server-address without a scheme")
	fs.BoolVar(&c.virtualHost, "cache-s3-virtual-host-style", false, "address the bucket as bucket.server instead of server/bucket")
}

// apply merges the flags that were set (set) and the environment's keys
// into fc.
func (c *cacheFlags) apply(fc *FileConfig, set map[string]bool) {
	touched := false
	for n := range set {
		if len(n) > 6 && n[:6] == "cache-" && n != "cache-dir" {
			touched = true
		}
	}
	envAccess, envSecret := os.Getenv("KILN_RUNNER_CACHE_S3_ACCESS_KEY"), os.Getenv("KILN_RUNNER_CACHE_S3_SECRET_KEY")
	if !touched && envAccess == "" && envSecret == "" {
		return
	}
	if fc.Cache == nil {
		fc.Cache = &CacheConfig{}
	}
	if fc.Cache.S3 == nil {
		fc.Cache.S3 = &CacheS3Config{}
	}
	s3 := fc.Cache.S3
	for name, apply := range map[string]func(){
		"cache-type":                  func() { fc.Cache.Type = c.typ },
		"cache-path":                  func() { fc.Cache.Path = c.path },
		"cache-s3-server-address":     func() { s3.ServerAddress = c.server },
		"cache-s3-bucket-name":        func() { s3.BucketName = c.bucket },
		"cache-s3-bucket-location":    func() { s3.BucketLocation = c.location },
		"cache-s3-access-key":         func() { s3.AccessKey = c.accessKey },
		"cache-s3-secret-key":         func() { s3.SecretKey = c.secretKey },
		"cache-s3-insecure":           func() { s3.Insecure = c.insecure },
		"cache-s3-virtual-host-style": func() { s3.VirtualHostStyle = c.virtualHost },
	} {
		if set[name] {
			apply()
		}
	}
	if envAccess != "" && !set["cache-s3-access-key"] {
		s3.AccessKey = envAccess
	}
	if envSecret != "" && !set["cache-s3-secret-key"] {
		s3.SecretKey = envSecret
	}
}

// OpenCacheStore returns the shared cache store c describes, nil for the
// local cache.
func OpenCacheStore(c *CacheConfig) (blob.Store, error) {
	if c == nil || c.Type == "" || c.Type == "local" {
		return nil, nil
	}
	if c.Type != "s3" {
		return nil, fmt.Errorf("cache type %q: local or s3", c.Type)
	}
	if c.S3 == nil || c.S3.ServerAddress == "" || c.S3.BucketName == "" {
		return nil, errors.New("cache type s3 needs --cache-s3-server-address and --cache-s3-bucket-name")
	}
	return blob.NewS3(blob.S3Config{
		Endpoint: c.S3.ServerAddress, Bucket: c.S3.BucketName, Region: c.S3.BucketLocation,
		AccessKey: c.S3.AccessKey, SecretKey: c.S3.SecretKey, Insecure: c.S3.Insecure,
		VirtualHostStyle: c.S3.VirtualHostStyle, Prefix: c.Path,
	})
}
