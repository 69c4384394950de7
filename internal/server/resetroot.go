package server

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/kilnci/kiln/internal/auth"
	"github.com/kilnci/kiln/internal/store"
)

// ResetRoot gives root a new web password and a new personal access token
// and signs root out of every browser. It works on the database directly
// (SQLite file in the data dir, or PostgreSQL), so it needs no running
// server and no credentials: whoever can read the data dir is already
// root's equal. Root's existing tokens stay valid (automation may use
// them); revoke them on the tokens page or through the API.
func ResetRoot(ctx context.Context, cfg Config, log *slog.Logger) (Credentials, error) {
	if cfg.DataDir == "" {
		cfg.DataDir = "kiln-data"
	}
	dsn := cfg.Database
	if dsn == "" {
		dsn = filepath.Join(cfg.DataDir, "kiln.db")
		if _, err := os.Stat(dsn); err != nil {
			return Credentials{}, fmt.Errorf("no Kiln database at %s (use --data-dir or --database as the server does): %w", dsn, err)
		}
	}
	st, err := store.Open(ctx, dsn, log, store.Options{})
	if err != nil {
		return Credentials{}, err
	}
	defer st.Close()
	root, err := st.UserByUsername(ctx, "root")
	if err != nil {
		return Credentials{}, fmt.Errorf("find root: %w (has the server started once?)", err)
	}
	token := auth.NewToken(auth.PATPrefix)
	password := auth.NewToken("")[:20]
	hash, err := auth.HashPassword(password)
	if err != nil {
		return Credentials{}, err
	}
	err = st.Write(ctx, func(tx *store.Tx) error {
		if err := tx.SetUserPassword(ctx, root.ID, hash); err != nil {
			return err
		}
		if err := tx.DeleteUserSessions(ctx, root.ID, ""); err != nil {
			return err
		}
		name := "reset-root " + time.Now().UTC().Format("2006-01-02 15:04:05")
		return tx.CreateToken(ctx, &store.Token{UserID: root.ID, Name: name, Scopes: []string{"api", "read_api", "read_repository", "write_repository"}}, auth.Hash(token))
	})
	if err != nil {
		return Credentials{}, fmt.Errorf("reset root: %w", err)
	}
	return Credentials{Username: root.Username, Token: token, Password: password, URL: cfg.ExternalURL, DataDir: cfg.DataDir, Database: cfg.Database}, nil
}
