package blob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// DefaultPartSize is the multipart part size of S3 uploads: an upload of
// unknown size holds one part in memory at a time.
const DefaultPartSize = 16 << 20

// S3Config says how to reach an S3-compatible bucket.
type S3Config struct {
	// Endpoint is host[:port], or a URL "https://host[:port]" /
	// "http://host[:port]" whose scheme wins over Insecure.
	Endpoint string
	Bucket   string
	// Region defaults to us-east-1.
	Region    string
	AccessKey string
	SecretKey string
	// VirtualHostStyle addresses the bucket as <bucket>.<endpoint>; the
	// default is path style (<endpoint>/<bucket>), which every
	// S3-compatible server (MinIO, SeaweedFS, Ceph) understands.
	VirtualHostStyle bool
	// Insecure talks plain HTTP to an endpoint given without a scheme.
	Insecure bool
	// Prefix is put before every key ("kiln/" keeps Kiln's objects under
	// kiln/ in a shared bucket).
	Prefix string
	// PartSize is the multipart part size, DefaultPartSize when 0 (S3's
	// minimum is 5 MiB).
	PartSize int64
	// Transport replaces the HTTP transport (tests).
	Transport http.RoundTripper
	// StallTimeout fails a request whose connection makes no progress
	// for this long (DefaultStallTimeout when 0); see stallTransport.
	StallTimeout time.Duration
}

// S3 is the Store in an S3-compatible bucket. Objects are the keys with
// S3Config.Prefix in front.
type S3 struct {
	c        *minio.Client
	bucket   string
	prefix   string
	partSize uint64
	endpoint string
}

var (
	_ Store  = (*S3)(nil)
	_ Lister = (*S3)(nil)
)

// NewS3 returns the store of cfg's bucket. It does not contact the server:
// Ping does.
func NewS3(cfg S3Config) (*S3, error) {
	if cfg.Endpoint == "" || cfg.Bucket == "" {
		return nil, errors.New("blob: S3 needs an endpoint and a bucket")
	}
	host, secure := cfg.Endpoint, !cfg.Insecure
	if strings.Contains(host, "://") {
		u, err := url.Parse(host)
		if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") || (u.Path != "" && u.Path != "/") {
			return nil, fmt.Errorf("blob: S3 endpoint %q: want host[:port] or http(s)://host[:port]", cfg.Endpoint)
		}
		host, secure = u.Host, u.Scheme == "https"
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	if cfg.PartSize == 0 {
		cfg.PartSize = DefaultPartSize
	}
	if cfg.PartSize < 5<<20 {
		return nil, fmt.Errorf("blob: S3 part size %d is below S3's minimum of 5 MiB", cfg.PartSize)
	}
	if cfg.Prefix != "" {
		cfg.Prefix = strings.TrimSuffix(cfg.Prefix, "/") + "/"
		if err := ValidKey(strings.TrimSuffix(cfg.Prefix, "/")); err != nil {
			return nil, fmt.Errorf("blob: S3 prefix: %w", err)
		}
	}
	lookup := minio.BucketLookupPath
	if cfg.VirtualHostStyle {
		lookup = minio.BucketLookupDNS
	}
	if cfg.StallTimeout <= 0 {
		cfg.StallTimeout = DefaultStallTimeout
	}
	tr := cfg.Transport
	if tr == nil {
		var err error
		if tr, err = stallTransport(secure, cfg.StallTimeout); err != nil {
			return nil, fmt.Errorf("blob: S3 transport: %w", err)
		}
	}
	c, err := minio.New(host, &minio.Options{
		Creds:        credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""),
		Secure:       secure,
		Region:       cfg.Region,
		BucketLookup: lookup,
		Transport:    tr,
		MaxRetries:   s3MaxRetries,
	})
	if err != nil {
		return nil, fmt.Errorf("blob: S3 client: %w", err)
	}
	scheme := "https"
	if !secure {
		scheme = "http"
	}
	return &S3{c: c, bucket: cfg.Bucket, prefix: cfg.Prefix, partSize: uint64(cfg.PartSize), endpoint: scheme + "://" + host}, nil
}

// String names the bucket (never the credentials), for logs.
func (s *S3) String() string { return "s3 " + s.endpoint + "/" + s.bucket + "/" + s.prefix }

// Client is the underlying minio client (tests, migrate-storage checks).
func (s *S3) Client() *minio.Client { return s.c }

// Bucket is the bucket name.
func (s *S3) Bucket() string { return s.bucket }

// ObjectName is the S3 object name of key.
func (s *S3) ObjectName(key string) string { return s.prefix + key }

func (s *S3) object(key string) (string, error) {
	if err := ValidKey(key); err != nil {
		return "", err
	}
	return s.prefix + key, nil
}

// Put implements Store. A known size is sent as one PUT up to the part
// size and as a multipart upload beyond; an unknown size always goes
// multipart, one part in memory at a time. S3 makes the object visible
// only when the upload completes: a failed Put leaves the previous one.
func (s *S3) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	name, err := s.object(key)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if _, ok := r.(io.ReaderAt); !ok {
		// A stream (not a file, which minio reads by offset and can send
		// again): its failure must fail the upload.
		r = &readFailure{r: r}
	}
	_, err = s.c.PutObject(ctx, s.bucket, name, r, size, minio.PutObjectOptions{
		PartSize:    s.partSize,
		NumThreads:  1,
		ContentType: "application/octet-stream",
	})
	if err != nil {
		return fmt.Errorf("blob: put %s: %w", key, err)
	}
	return nil
}

// readFailure keeps a reader's failure a failure for minio-go, which takes
// io.ErrUnexpectedEOF from the reader for the end of a short last part and
// stores what it read so far: a request body whose client hung up (a
// multipart part returns io.ErrUnexpectedEOF) would become a truncated
// object. Every error but io.EOF is wrapped (errors.Is still matches it).
type readFailure struct{ r io.Reader }

func (f *readFailure) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if err != nil && err != io.EOF {
		err = fmt.Errorf("blob: reading the object to store: %w", err)
	}
	return n, err
}

// Get implements Store; the reader is also an io.ReadSeeker (for ranges).
func (s *S3) Get(ctx context.Context, key string) (io.ReadCloser, Info, error) {
	name, err := s.object(key)
	if err != nil {
		return nil, Info{}, err
	}
	obj, err := s.c.GetObject(ctx, s.bucket, name, minio.GetObjectOptions{})
	if err != nil {
		return nil, Info{}, s.err("get", key, err)
	}
	st, err := obj.Stat()
	if err != nil {
		obj.Close()
		return nil, Info{}, s.err("get", key, err)
	}
	return obj, Info{Size: st.Size, ModTime: st.LastModified}, nil
}

// Stat implements Store.
func (s *S3) Stat(ctx context.Context, key string) (Info, error) {
	name, err := s.object(key)
	if err != nil {
		return Info{}, err
	}
	st, err := s.c.StatObject(ctx, s.bucket, name, minio.StatObjectOptions{})
	if err != nil {
		return Info{}, s.err("stat", key, err)
	}
	return Info{Size: st.Size, ModTime: st.LastModified}, nil
}

// Delete implements Store.
func (s *S3) Delete(ctx context.Context, key string) error {
	name, err := s.object(key)
	if err != nil {
		return err
	}
	if err := s.c.RemoveObject(ctx, s.bucket, name, minio.RemoveObjectOptions{}); err != nil {
		if e := s.err("delete", key, err); errors.Is(e, ErrNotFound) {
			return nil
		}
		return s.err("delete", key, err)
	}
	return nil
}

// PresignGet implements Store: a presigned GET that answers with
// Content-Disposition: attachment; filename=... when filename is set.
func (s *S3) PresignGet(ctx context.Context, key string, ttl time.Duration, filename string) (string, bool, error) {
	name, err := s.object(key)
	if err != nil {
		return "", false, err
	}
	params := url.Values{}
	if filename != "" {
		params.Set("response-content-disposition", mime.FormatMediaType("attachment", map[string]string{"filename": filename}))
	}
	u, err := s.c.PresignedGetObject(ctx, s.bucket, name, ttl, params)
	if err != nil {
		return "", false, fmt.Errorf("blob: presign %s: %w", key, err)
	}
	return u.String(), true, nil
}

// Ping implements Store: the bucket must exist and the credentials work.
func (s *S3) Ping(ctx context.Context) error {
	ok, err := s.c.BucketExists(ctx, s.bucket)
	if err != nil {
		return fmt.Errorf("object store %s: %w", s, err)
	}
	if !ok {
		return fmt.Errorf("object store %s: bucket %q does not exist", s, s.bucket)
	}
	return nil
}

// List implements Lister.
func (s *S3) List(ctx context.Context, prefix string, fn func(string, Info) error) error {
	if err := validPrefix(prefix); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // stops the listing goroutine when fn fails
	for o := range s.c.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: s.prefix + prefix, Recursive: true}) {
		if o.Err != nil {
			return fmt.Errorf("blob: list %s: %w", prefix, o.Err)
		}
		key := strings.TrimPrefix(o.Key, s.prefix)
		if ValidKey(key) != nil {
			continue
		}
		if err := fn(key, Info{Size: o.Size, ModTime: o.LastModified}); err != nil {
			return err
		}
	}
	return nil
}

// err maps S3's "no such key" to ErrNotFound.
func (s *S3) err(op, key string, err error) error {
	resp := minio.ToErrorResponse(err)
	if resp.Code == "NoSuchKey" || resp.StatusCode == http.StatusNotFound && resp.Code != "NoSuchBucket" {
		return fmt.Errorf("%w: %s", ErrNotFound, key)
	}
	return fmt.Errorf("blob: %s %s: %w", op, key, err)
}
