package main

import (
	"fmt"
	"io"
)

func runnerCmd(args []string, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "kiln runner: not implemented yet")
	return 2
}
