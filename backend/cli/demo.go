//go:build !js

package cli

import (
	"flag"
	"fmt"
	"io"
	"path/filepath"

	"github.com/rdre-studio/studio/backend/demodata"
)

func init() {
	Register(Command{Name: "demo", Summary: "write the bundled demo dataset (MVTec layout, category tiles)", Run: runDemo})
}

func runDemo(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "build/demo", "folder that receives the category folder "+demodata.Category)
	force := fs.Bool("force", false, "regenerate even when an up-to-date copy is there")
	if err := fs.Parse(args); err != nil {
		return parseExit(err)
	}
	if fs.NArg() != 0 {
		fmt.Fprintf(stderr, "rdre demo: unexpected arguments %q\n", fs.Args())
		return 2
	}
	dir := filepath.Join(*out, demodata.Category)
	if *force {
		if err := demodata.Generate(*out); err != nil {
			fmt.Fprintln(stderr, "rdre demo:", err)
			return 1
		}
		fmt.Fprintf(stdout, "demo dataset written to %s\n", dir)
		return 0
	}
	generated, err := demodata.Ensure(*out)
	if err != nil {
		fmt.Fprintln(stderr, "rdre demo:", err)
		return 1
	}
	if generated {
		fmt.Fprintf(stdout, "demo dataset written to %s\n", dir)
	} else {
		fmt.Fprintf(stdout, "demo dataset in %s is up to date (generator version %d)\n", dir, demodata.GeneratorVersion)
	}
	return 0
}
