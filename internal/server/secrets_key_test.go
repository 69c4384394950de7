package server

import (
	"context"
	"database/sql"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/kilnci/kiln/internal/secrets"
	"github.com/kilnci/kiln/internal/store"
	"github.com/kilnci/kiln/internal/testenv"
)

// TestReplicaSecretsKey: replicas with separate data dirs on one database
// must use one secrets key. A second server whose data dir made its own
// key refuses to start (rather than seal values the first cannot read);
// given the first one's key (--secrets-key-file or KILN_SECRETS_KEY) it
// starts. A database from before the key check (values sealed, no check
// row) is checked against those values. SQLite (one file, two data dirs)
// and PostgreSQL.
func TestReplicaSecretsKey(t *testing.T) {
	for _, kind := range []string{"sqlite", "postgres"} {
		t.Run(kind, func(t *testing.T) {
			dsn := filepath.Join(t.TempDir(), "kiln.db")
			if kind == "postgres" {
				base := testenv.PostgresDSN(t)
				schema := testenv.UniqueName("kiln_secrets")
				db, err := sql.Open("pgx", base)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := db.Exec(`CREATE SCHEMA ` + schema); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { db.Exec(`DROP SCHEMA ` + schema + ` CASCADE`); db.Close() })
				dsn = base + "&search_path=" + schema
			}
			log := slog.New(slog.NewTextHandler(io.Discard, nil))
			start := func(cfg Config) (*Server, error) {
				cfg.Database = dsn
				cfg.InitialRootToken = "glpat-secrets-key-test-0123456789"
				return New(context.Background(), cfg, log)
			}
			first := Config{DataDir: t.TempDir()}
			a, err := start(first)
			if err != nil {
				t.Fatal(err)
			}
			a.Close()

			// Its own data dir, its own fresh key: refused.
			other := Config{DataDir: t.TempDir()}
			if b, err := start(other); !errors.Is(err, secrets.ErrWrongKey) {
				if b != nil {
					b.Close()
				}
				t.Fatalf("second replica with its own key: err %v, want ErrWrongKey", err)
			}
			// The first one's key through --secrets-key-file: starts.
			other.SecretsKeyFile = filepath.Join(first.DataDir, "secrets.key")
			b, err := start(other)
			if err != nil {
				t.Fatalf("second replica with the shared key file: %v", err)
			}
			b.Close()
			// A missing key file is an error, not a new key.
			if _, err := start(Config{DataDir: t.TempDir(), SecretsKeyFile: filepath.Join(t.TempDir(), "nope.key")}); err == nil {
				t.Fatal("missing --secrets-key-file accepted")
			}
			// KILN_SECRETS_KEY with the right key: starts.
			key, _ := os.ReadFile(filepath.Join(first.DataDir, "secrets.key"))
			t.Setenv("KILN_SECRETS_KEY", string(key))
			if c, err := start(Config{DataDir: t.TempDir()}); err != nil {
				t.Fatalf("KILN_SECRETS_KEY with the shared key: %v", err)
			} else {
				c.Close()
			}
			os.Unsetenv("KILN_SECRETS_KEY")

			// A database from before the check: a sealed variable and no
			// check row. The wrong key is refused, the right one starts
			// and records the check.
			st, err := store.Open(context.Background(), dsn, log, store.Options{})
			if err != nil {
				t.Fatal(err)
			}
			k, _ := secrets.LoadKey("", first.DataDir)
			box, _ := secrets.New(k)
			err = st.Write(context.Background(), func(tx *store.Tx) error {
				if _, err := tx.Exec(context.Background(), `DELETE FROM settings WHERE key = ?`, secretsCheckSetting); err != nil {
					return err
				}
				_, err := tx.Exec(context.Background(), `INSERT INTO webhook_triggers (project_id, owner_id, uid, description, kind, secret_enc, signature_header, signature_algorithm, allowed_cidrs, filter, ref_expr, sha_expr, variables, inputs, created_at, updated_at)
					VALUES (1, 1, 'u', '', 'generic', ?, '', '', '', '', '', '', '', '', 0, 0)`, box.Seal("hmac secret"))
				return err
			})
			st.Close()
			if err != nil {
				t.Fatalf("preparing a pre-check database: %v", err)
			}
			if c, err := start(Config{DataDir: t.TempDir()}); !errors.Is(err, secrets.ErrWrongKey) {
				if c != nil {
					c.Close()
				}
				t.Fatalf("wrong key against sealed values without a check: err %v", err)
			}
			c, err := start(first)
			if err != nil {
				t.Fatalf("right key against sealed values without a check: %v", err)
			}
			if v, ok, _ := c.store.Setting(context.Background(), secretsCheckSetting); !ok || v == "" {
				t.Error("the check was not recorded")
			}
			c.Close()
		})
	}
}
