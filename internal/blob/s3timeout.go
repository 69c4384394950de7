package blob

import (
	"net/http"
	"time"

	"github.com/kilnci/kiln/internal/stall"
	"github.com/minio/minio-go/v7"
)

// DefaultStallTimeout is how long an S3 connection may make no progress
// (connect, wait for an answer, move body bytes either way) before the
// request fails.
const DefaultStallTimeout = stall.DefaultTimeout

// s3MaxRetries bounds minio's own retries of a failed request (it tries
// 10 times by default), so that a stalled server costs at most about
// s3MaxRetries × StallTimeout per call, not many minutes.
const s3MaxRetries = 3

// stallTransport is minio's default transport with every connection
// bounded by d (see stall.Transport): a server that stops answering,
// frozen or partitioned, fails the request; a large object moving slowly
// but steadily is never cut.
func stallTransport(secure bool, d time.Duration) (http.RoundTripper, error) {
	tr, err := minio.DefaultTransport(secure)
	if err != nil {
		return nil, err
	}
	return stall.Transport(tr, d), nil
}
