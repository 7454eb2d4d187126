//go:build !js

// Command rdre is RD-RE Studio: one binary with subcommands (serve, eval, infer, bench, export, report, demo).
package main

import (
	"os"

	"github.com/rdre-studio/studio/backend/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr))
}
