package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/kilnci/kiln/internal/store"
)

// IdempotencyTTL is how long an Idempotency-Key names its first pipeline.
const IdempotencyTTL = 24 * time.Hour

// Header names of idempotent pipeline creation.
const (
	hdrIdempotencyKey = "Idempotency-Key"
	hdrReplayed       = "Idempotent-Replayed"
	maxIdempotencyKey = 255
)

// idemKey is one call's Idempotency-Key: who may replay it (scope), and a
// fingerprint of the parameters it was first used with.
type idemKey struct {
	row store.IdempotencyKey
}

// idemErr is a refusal of the key itself (400 malformed, 422 reused with
// other parameters, 404 its pipeline is gone).
type idemErr struct {
	status int
	msg    string
}

// readIdempotencyKey returns the call's key, nil without the header.
func readIdempotencyKey(r *http.Request) (string, *idemErr) {
	vals := r.Header.Values(hdrIdempotencyKey)
	if len(vals) == 0 {
		return "", nil
	}
	if len(vals) > 1 {
		return "", &idemErr{http.StatusBadRequest, "400 Bad request - Idempotency-Key given more than once"}
	}
	k := vals[0]
	if k == "" || len(k) > maxIdempotencyKey {
		return "", &idemErr{http.StatusBadRequest, fmt.Sprintf("400 Bad request - Idempotency-Key must be 1 to %d characters", maxIdempotencyKey)}
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x21 || k[i] > 0x7e {
			return "", &idemErr{http.StatusBadRequest, "400 Bad request - Idempotency-Key must be printable ASCII without spaces"}
		}
	}
	return k, nil
}

// newIdemKey builds the row for key; fingerprint is the call's canonical
// parameters (what must match for a replay).
func newIdemKey(key string, projectID int64, scope string, fingerprint []byte) *idemKey {
	if key == "" {
		return nil
	}
	sum := sha256.Sum256(fingerprint)
	return &idemKey{row: store.IdempotencyKey{ProjectID: projectID, Scope: scope, Key: key, RequestHash: hex.EncodeToString(sum[:])}}
}

// replay returns the pipeline a live key created with the same parameters,
// nil when the key is new, or the refusal of a key reused with others.
func (a *API) idemReplay(ctx context.Context, k *idemKey) (*store.Pipeline, *idemErr, error) {
	if k == nil {
		return nil, nil, nil
	}
	row, err := a.Store.IdempotencyKeyOf(ctx, k.row.ProjectID, k.row.Scope, k.row.Key, time.Now().Add(-IdempotencyTTL))
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	if row.RequestHash != k.row.RequestHash {
		return nil, &idemErr{http.StatusUnprocessableEntity, "422 Unprocessable Entity - Idempotency-Key was already used with other parameters"}, nil
	}
	pl, err := a.Store.PipelineByID(ctx, row.PipelineID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, &idemErr{http.StatusNotFound, "404 Pipeline Not Found - the pipeline this Idempotency-Key created was deleted"}, nil
	}
	if err != nil {
		return nil, nil, err
	}
	return pl, nil, nil
}

// record stores the key with the pipeline, in the pipeline's transaction:
// when a concurrent call with the same key committed first, the unique
// index fails this one and nothing of it is kept.
func (k *idemKey) record(ctx context.Context, tx *store.Tx, pl *store.Pipeline) error {
	if k == nil {
		return nil
	}
	row := k.row
	row.PipelineID = pl.ID
	return tx.InsertIdempotencyKey(ctx, &row, time.Now().Add(-IdempotencyTTL))
}
