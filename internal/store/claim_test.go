package store

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/kilnci/kiln/internal/testenv"
)

// TestWithClaim: on PostgreSQL a claimed name is held for fn's duration
// against every other server on the same schema (a second Store here), not
// against other names or other schemas, and is free again once fn returns;
// SQLite always runs fn.
func TestWithClaim(t *testing.T) {
	ctx := context.Background()
	t.Run("sqlite", func(t *testing.T) {
		s, err := Open(ctx, filepath.Join(t.TempDir(), "kiln.db"), nil, Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		ran, err := s.WithClaim(ctx, "recovery", func(ctx context.Context) error {
			inner, err := s.WithClaim(ctx, "recovery", func(context.Context) error { return nil })
			if !inner || err != nil {
				t.Errorf("nested claim on SQLite: %v %v", inner, err)
			}
			return nil
		})
		if !ran || err != nil {
			t.Fatalf("claim on SQLite: %v %v", ran, err)
		}
	})
	t.Run("postgres", func(t *testing.T) {
		dsn := testenv.PostgresDSN(t)
		schema := testenv.UniqueName("kiln_claim")
		open := func(schema string) *Store {
			s, err := Open(ctx, dsn, nil, Options{Schema: schema})
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
		a, b, other := open(schema), open(schema), open(schema+"_other")
		defer func() {
			a.DropSchema(ctx)
			other.DropSchema(ctx)
			a.Close()
			b.Close()
			other.Close()
		}()
		noop := func(context.Context) error { return nil }
		ran, err := a.WithClaim(ctx, "recovery", func(ctx context.Context) error {
			if got, err := b.WithClaim(ctx, "recovery", noop); got || err != nil {
				t.Errorf("second server ran a held claim: %v %v", got, err)
			}
			if got, err := b.WithClaim(ctx, "artifact-expiry", noop); !got || err != nil {
				t.Errorf("another name was blocked: %v %v", got, err)
			}
			if got, err := other.WithClaim(ctx, "recovery", noop); !got || err != nil {
				t.Errorf("another schema was blocked: %v %v", got, err)
			}
			return nil
		})
		if !ran || err != nil {
			t.Fatalf("first claim: %v %v", ran, err)
		}
		if got, err := b.WithClaim(ctx, "recovery", noop); !got || err != nil {
			t.Errorf("claim not released after fn returned: %v %v", got, err)
		}
	})
}
