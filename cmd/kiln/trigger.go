package main

import (
	"fmt"
	"io"
)

func triggerCmd(args []string, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "kiln trigger: not implemented yet")
	return 2
}
