//go:build !js

// Command rdre-demo writes the demo dataset without building the whole rdre binary (no cgo, no web
// assets), so the build can create it before bin/rdre exists. `rdre demo` does the same.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/rdre-studio/studio/backend/demodata"
)

func main() {
	out := flag.String("out", "build/demo", "folder that receives the category folder "+demodata.Category)
	flag.Parse()
	generated, err := demodata.Ensure(*out)
	if err != nil {
		fmt.Fprintln(os.Stderr, "rdre-demo:", err)
		os.Exit(1)
	}
	if generated {
		fmt.Printf("demo dataset written to %s/%s\n", *out, demodata.Category)
	} else {
		fmt.Printf("demo dataset in %s/%s is up to date\n", *out, demodata.Category)
	}
}
