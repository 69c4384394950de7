package blob

import (
	"context"
	"errors"
	"fmt"
)

// ErrUnavailable marks a failure of the object store itself (unreachable,
// frozen, refusing), as opposed to a missing object or the caller's own
// failure: HTTP handlers answer 503 with UnavailableMessage and
// Retry-After UnavailableRetryAfter, and clients (the runner) try again.
var ErrUnavailable = errors.New("object store unavailable")

// UnavailableRetryAfter is the Retry-After (seconds) of a 503 answered
// because the object store is unavailable.
const UnavailableRetryAfter = "5"

// Unavailable marks err, a store operation's failure, with ErrUnavailable;
// nil, ErrNotFound, an already marked error and the caller's own context
// ending (canceled, past its deadline) are returned as they are.
func Unavailable(ctx context.Context, err error) error {
	if err == nil || errors.Is(err, ErrNotFound) || errors.Is(err, ErrUnavailable) || ctx.Err() != nil {
		return err
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}

// UnavailableMessage is the message of such a 503 (GitLab's
// "<status> - <reason>" shape): what says what could not be done.
func UnavailableMessage(what string) string {
	return "503 Service Unavailable - " + ErrUnavailable.Error() + ": " + what + "; try again"
}
