package main

import (
	"context"
	"io"

	"github.com/kilnci/kiln/internal/runner"
)

// runnerCmd runs `kiln runner register|run`; the runner package handles its
// own signals (first: finish jobs, second: abort).
func runnerCmd(args []string, stdout, stderr io.Writer) int {
	return runner.Command(context.Background(), args, stdout, stderr)
}
