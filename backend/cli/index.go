//go:build !js

package cli

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/rdre-studio/studio/backend/dataset"
	"github.com/rdre-studio/studio/shared/protocol"
)

func init() {
	Register(Command{Name: "index", Summary: "show how a dataset folder is read: layout, splits, kinds, masks, warnings", Run: runIndex})
}

// indexReport is what `rdre index` prints: the dataset as every other command will read it.
type indexReport struct {
	protocol.DatasetInfo
	// Counts by split, then kind.
	Counts map[string]map[string]int `json:"counts"`
	// Masked counts the images that have a mask file, by split.
	Masked map[string]int       `json:"masked"`
	List   []protocol.ImageInfo `json:"list,omitempty"`
}

func runIndex(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("index", flag.ContinueOnError)
	fs.SetOutput(stderr)
	data := fs.String("data", "", "the dataset folder (required)")
	layout := fs.String("layout", "", "force the layout (default: detect); one of "+strings.Join(dataset.LayoutNames(), ", "))
	list := fs.Bool("images", false, "also list every image with its split, kind, key and mask")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: rdre index --data DIR [--layout NAME] [--images]")
		fmt.Fprintln(stderr, "prints one JSON object: the layout found, categories, splits, kinds, counts and warnings")
		fs.PrintDefaults()
		fmt.Fprintf(stderr, "\nlayouts (detected in this order):\n%s", dataset.LayoutHelp())
	}
	if err := fs.Parse(args); err != nil {
		return parseExit(err)
	}
	if *data == "" || fs.NArg() != 0 {
		fs.Usage()
		return 2
	}
	ds, err := dataset.OpenWith(*data, dataset.Options{Layout: *layout})
	if err != nil {
		fmt.Fprintf(stderr, "rdre index: %v\n", err)
		return 1
	}
	defer ds.Close()
	rep := indexReport{DatasetInfo: ds.Info(), Counts: map[string]map[string]int{}, Masked: map[string]int{}}
	for _, im := range ds.Images() {
		if rep.Counts[im.Split] == nil {
			rep.Counts[im.Split] = map[string]int{}
		}
		rep.Counts[im.Split][im.Kind]++
		if im.MaskID != "" {
			rep.Masked[im.Split]++
		}
	}
	if *list {
		rep.List = ds.Images()
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(rep); err != nil {
		fmt.Fprintf(stderr, "rdre index: %v\n", err)
		return 1
	}
	return 0
}
