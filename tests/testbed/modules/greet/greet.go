// Package greet is a private module the test bed serves through its module proxy (GOPROXY
// protocol, basic auth over TLS).
package greet

// Hello greets name.
func Hello(name string) string { return "Hello, " + name }
