package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"

	"github.com/kilnci/kiln/internal/server"
)

const adminUsage = `Usage: kiln admin reset-root [flags]

Gives root a new web password and a new personal access token, prints both
once, and signs root out of every browser. Run it on the server's machine
with the server's --data-dir (or --database for PostgreSQL); the server may
keep running. Root's other tokens stay valid.

Flags:
`

func init() { commands["admin"] = adminCmd }

func adminCmd(args []string, stdout, stderr io.Writer) int {
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
