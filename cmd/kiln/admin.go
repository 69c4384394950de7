package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"

	"github.com/kilnci/kiln/internal/blob"
	"github.com/kilnci/kiln/internal/server"
)

const adminUsage = `Usage: kiln admin reset-root [flags]
       kiln admin migrate-storage --data-dir DIR --object-store s3 --s3-... (see kiln admin migrate-storage --help)

Gives root a new web password and a new personal access token, prints both
once, and signs root out of every browser. Run it on the server's machine
with the server's --data-dir (or --database for PostgreSQL); the server may
keep running. Root's other tokens stay valid.

Flags:
`

func init() { commands["admin"] = adminCmd }

func adminCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "migrate-storage" {
		return migrateStorageCmd(args[1:], stdout, stderr)
	}
	if len(args) == 0 || args[0] != "reset-root" {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
			fmt.Fprint(stdout, adminUsage)
			return 0
		}
		fmt.Fprint(stderr, adminUsage)
		return 2
	}
	fs := flag.NewFlagSet("kiln admin reset-root", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, adminUsage); fs.PrintDefaults() }
	var cfg server.Config
	fs.StringVar(&cfg.DataDir, "data-dir", envOr("KILN_DATA_DIR", "./kiln-data"), "the server's data dir (KILN_DATA_DIR)")
	fs.StringVar(&cfg.Database, "database", envOr("KILN_DATABASE", ""), "the server's database: empty for SQLite in the data dir, or a postgres:// URL (KILN_DATABASE)")
	fs.StringVar(&cfg.ExternalURL, "external-url", envOr("KILN_EXTERNAL_URL", "http://127.0.0.1:8080"), "where to sign in, for the message (KILN_EXTERNAL_URL)")
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "kiln admin reset-root: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	c, err := server.ResetRoot(context.Background(), cfg, log)
	if err != nil {
		fmt.Fprintln(stderr, "kiln admin reset-root:", err)
		return 1
	}
	fmt.Fprintf(stdout, "root's new credentials (shown once; root was signed out of every browser):\n\n")
	fmt.Fprintf(stdout, "  personal access token: %s\n  web password:          %s\n\nSign in at %s as %s.\n", c.Token, c.Password, c.URL, c.Username)
	return 0
}

const migrateUsage = `Usage: kiln admin migrate-storage --data-dir DIR --object-store s3 --s3-endpoint ... --s3-bucket ... [flags]

Copies the artifacts archives and finished job logs of a data dir into the
object store, so that the server can then run with --object-store s3. The
data dir is only read. Objects already in the bucket with the same size are
skipped, so the command can be run again after an interruption, and once
more after stopping the server to copy what it wrote meanwhile. Every copy
is verified by its size in the bucket. Prints a summary; exits 1 when any
object failed.

Flags:
`

func migrateStorageCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("kiln admin migrate-storage", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, migrateUsage); fs.PrintDefaults() }
	var cfg server.Config
	fs.StringVar(&cfg.DataDir, "data-dir", envOr("KILN_DATA_DIR", "./kiln-data"), "the data dir to copy from (KILN_DATA_DIR)")
	verbose := fs.Bool("v", false, "print every object")
	objectStore := objectStoreFlags(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "kiln admin migrate-storage: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	var err error
	if cfg.ObjectStore, cfg.S3, err = objectStore(); err != nil {
		fmt.Fprintln(stderr, "kiln admin migrate-storage:", err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	report := func(e blob.MigrateEvent) {
		switch {
		case e.Err != nil:
			fmt.Fprintf(stderr, "failed  %s: %v\n", e.Key, e.Err)
		case *verbose:
			fmt.Fprintf(stdout, "%-7s %s (%d bytes)\n", e.Action, e.Key, e.Size)
		}
	}
	st, err := server.MigrateStorage(context.Background(), cfg, log, report)
	fmt.Fprintf(stdout, "copied %d objects (%d bytes), skipped %d already in the object store, %d failed\n", st.Copied, st.Bytes, st.Skipped, st.Failed)
	if err != nil {
		fmt.Fprintln(stderr, "kiln admin migrate-storage:", err)
		return 1
	}
	if st.Failed > 0 {
		fmt.Fprintln(stderr, "kiln admin migrate-storage: some objects were not copied; run it again")
		return 1
	}
	return 0
}
