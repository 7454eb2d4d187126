//go:build !js

package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/rdre-studio/studio/backend/dataset"
	"github.com/rdre-studio/studio/backend/maskexport"
	"github.com/rdre-studio/studio/backend/store"
	"github.com/rdre-studio/studio/shared/protocol"
)

func init() {
	Register(Command{Name: "export", Summary: "write a dataset's masks in MVTec layout or as COCO RLE JSON", Run: runExport})
	Register(Command{Name: "import", Summary: "store an MVTec ground_truth folder as workspace masks", Run: runImport})
}

// openDatasetArg opens --dataset: an existing folder is indexed and registered (so its id matches what
// `rdre serve` uses for it); anything else is looked up as a dataset id in the workspace.
func openDatasetArg(st *store.Store, arg string) (*dataset.Dataset, error) {
	if arg == "" {
		return nil, errors.New("--dataset is required (a dataset id from the workspace, or a folder)")
	}
	var ds *dataset.Dataset
	var err error
	if fi, serr := os.Stat(arg); serr != nil || !fi.IsDir() {
		info, lerr := st.Dataset(arg)
		if lerr != nil {
			return nil, fmt.Errorf("dataset %q is neither a folder nor a dataset id in the workspace: %w", arg, lerr)
		}
		ds, err = dataset.Reopen(info)
	} else {
		ds, err = dataset.Open(arg)
	}
	if err != nil {
		return nil, err
	}
	info := ds.Info()
	if err := st.PutDataset(info); err != nil {
		ds.Close()
		return nil, err
	}
	var kinds []string
	for _, k := range info.Kinds {
		if k != protocol.KindGood {
			kinds = append(kinds, k)
		}
	}
	if err := st.EnsureClasses(info.ID, kinds); err != nil {
		ds.Close()
		return nil, err
	}
	return ds, nil
}

func runExport(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("export", flag.ContinueOnError)
	fs.SetOutput(stderr)
	ws := fs.String("workspace", store.DefaultPath(), "workspace file (bbolt)")
	dsArg := fs.String("dataset", "", "dataset id (see the workspace) or dataset folder")
	out := fs.String("out", "", "output folder")
	format := fs.String("format", "mvtec", "mvtec (ground_truth/KIND/NNN_mask.png + images) or coco (OUT/annotations.json, RLE)")
	masksOnly := fs.Bool("masks-only", false, "mvtec: write ground_truth/ only, no images")
	link := fs.Bool("link", false, "mvtec: hard-link PNG images instead of copying them")
	overwrite := fs.Bool("overwrite", false, "mvtec: replace the category folders of an earlier export in OUT")
	if err := fs.Parse(args); err != nil {
		return parseExit(err)
	}
	if fs.NArg() != 0 || *out == "" || (*format != "mvtec" && *format != "coco") {
		fmt.Fprintln(stderr, "usage: rdre export --workspace FILE --dataset ID|PATH --out DIR [--format mvtec|coco] [--masks-only] [--link] [--overwrite]")
		return 2
	}
	st, err := store.Open(*ws)
	if err != nil {
		fmt.Fprintln(stderr, "rdre export:", err)
		return 1
	}
	defer st.Close()
	ds, err := openDatasetArg(st, *dsArg)
	if err != nil {
		fmt.Fprintln(stderr, "rdre export:", err)
		return 1
	}
	defer ds.Close()
	var sum maskexport.Summary
	if *format == "coco" {
		sum, err = maskexport.ExportCOCO(ds, st, filepath.Join(*out, "annotations.json"))
	} else {
		sum, err = maskexport.ExportMVTec(ds, st, *out, maskexport.Options{MasksOnly: *masksOnly, Link: *link, Overwrite: *overwrite})
	}
	if err != nil {
		fmt.Fprintln(stderr, "rdre export:", err)
		return 1
	}
	fmt.Fprintf(stdout, "exported %s (%s) to %s: %d images, %d masks (%d from the workspace, %d from the dataset), %d re-encoded as PNG, %d hard-linked\n",
		sum.Dataset, *format, sum.Out, sum.Images, sum.Masks, sum.WorkspaceMasks, sum.DatasetMasks, sum.Reencoded, sum.Linked)
	return 0
}

func runImport(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("import", flag.ContinueOnError)
	fs.SetOutput(stderr)
	ws := fs.String("workspace", store.DefaultPath(), "workspace file (bbolt)")
	dsArg := fs.String("dataset", "", "dataset id (see the workspace) or dataset folder")
	gt := fs.String("gt", "", "MVTec ground_truth folder (KIND/NNN_mask.png), or a category folder that has one")
	if err := fs.Parse(args); err != nil {
		return parseExit(err)
	}
	if fs.NArg() != 0 || *gt == "" {
		fmt.Fprintln(stderr, "usage: rdre import --workspace FILE --dataset ID|PATH --gt DIR")
		return 2
	}
	st, err := store.Open(*ws)
	if err != nil {
		fmt.Fprintln(stderr, "rdre import:", err)
		return 1
	}
	defer st.Close()
	ds, err := openDatasetArg(st, *dsArg)
	if err != nil {
		fmt.Fprintln(stderr, "rdre import:", err)
		return 1
	}
	defer ds.Close()
	sum, err := maskexport.ImportMVTec(ds, st, *gt)
	if err != nil {
		fmt.Fprintln(stderr, "rdre import:", err)
		return 1
	}
	fmt.Fprintf(stdout, "imported %d masks into dataset %s (workspace %s)\n", sum.Masks, sum.Dataset, st.Path())
	return 0
}
