// Package words is a private module the test bed serves from git over HTTPS (git
// http-backend, basic auth): what GOPROXY=direct fetches.
package words

// Who is whom the test program greets.
func Who() string { return "private modules" }
