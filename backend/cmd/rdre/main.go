//go:build !js

// Command rdre is RD-RE Studio: one binary with subcommands (serve, eval, infer, bench, export, report, demo).
//
// RDRE_CPUPROFILE=FILE writes a CPU profile of the whole command to FILE (for `go tool pprof`), so the
// image path can be profiled on a user's own data without a test harness.
package main

import (
	"log/slog"
	"os"
	"runtime/pprof"

	"github.com/rdre-studio/studio/backend/cli"
)

func main() {
	if path := os.Getenv("RDRE_CPUPROFILE"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			slog.Error("cpu profile", "path", path, "err", err)
			os.Exit(1)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			slog.Error("cpu profile", "path", path, "err", err)
			os.Exit(1)
		}
		code := cli.Main(os.Args[1:], os.Stdout, os.Stderr)
		pprof.StopCPUProfile()
		f.Close()
		os.Exit(code)
	}
	os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr))
}
