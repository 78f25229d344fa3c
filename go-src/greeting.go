package main

import (
	"errors"
	"fmt"
	"io"
	"strings"
)

// greeting returns the line to print for name: "Hello World" when name is empty.
func greeting(name string) string {
	name = strings.TrimSpace(name)
	if name == "" {
		name = "World"
	}
	return "Hello " + name
}

// run writes the greeting for the optional single argument to w.
func run(w io.Writer, args []string) error {
	if len(args) > 1 {
		return errors.New("usage: helloworld [NAME]")
	}
	name := ""
	if len(args) == 1 {
		name = args[0]
	}
	_, err := fmt.Fprintln(w, greeting(name))
	return err
}
