package main

import (
	"fmt"
	"io"
)

func lintCmd(args []string, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "kiln lint: not implemented yet")
	return 2
}
