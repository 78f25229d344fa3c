package version

import "testing"

func TestLine(t *testing.T) {
	Version, Commit = "v1.2.3", "0123456789ab"
	if got, want := Line("api"), "api v1.2.3 (0123456789ab)"; got != want {
		t.Errorf("Line(api) = %q, want %q", got, want)
	}
}
