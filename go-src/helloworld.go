// Command helloworld prints a greeting: the program of the write-up this project follows,
// containerized three ways (naive, builder pattern, multistage) by the pipeline.
package main

import (
	"fmt"
	"os"
)

func main() {
	if err := run(os.Stdout, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "helloworld:", err)
		os.Exit(2)
	}
}
