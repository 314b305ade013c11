// Package version carries the build's version, set by the Makefile with
// -ldflags "-X .../pkg/version.Version=...".
package version

import "runtime/debug"

// Version is set at link time; "dev" in a plain `go build`.
var Version = "dev" //nolint:gochecknoglobals // set by the linker, read-only at run time

// String returns the version with the Go toolchain that built it.
func String() string {
	gov := "unknown"
	if bi, ok := debug.ReadBuildInfo(); ok {
		gov = bi.GoVersion
	}
	return Version + " (" + gov + ")"
}
