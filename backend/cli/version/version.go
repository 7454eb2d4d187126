// Package version holds the build's version string, set by the Makefile with
// -ldflags "-X github.com/rdre-studio/studio/backend/cli/version.Version=...".
package version

// Version is the tool's version; "dev" for builds outside the Makefile.
var Version = "dev"
