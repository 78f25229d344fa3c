// Package version holds what the build stamps into the binaries, with
// -ldflags "-X example.com/service/internal/version.Version=... -X ...Commit=...".
package version

import "fmt"

// Stamped by the linker; these are what an unstamped build says.
var (
	Version = "dev"
	Commit  = "none"
)

// Line is how a program names itself: "api v1.2.3 (0123456789ab)".
func Line(program string) string {
	return fmt.Sprintf("%s %s (%s)", program, Version, Commit)
}
