//go:build !js

package cli

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/rdre-studio/studio/backend/dataset"

	"github.com/rdre-studio/studio/backend/mapio"
	"github.com/rdre-studio/studio/backend/metrics"
	"github.com/rdre-studio/studio/shared/protocol"
)

// evalHelp states the rules a user must know to trust the numbers (docs/datasets.md has the same).
var evalHelp = `
Dataset layouts (detected; --layout forces one):
` + dataset.LayoutHelp() + `
Masks (STEM_mask.* or STEM.*, any image extension in any case): a pixel is a defect when
  lossless grey (8 or 16 bit: 0/255, anti-aliased, 0/1, class ids)  its value is not 0
  palette PNG                                                       its palette index is not 0
  RGB / RGBA colour                                                 it is not black / not black and not transparent
  JPEG (lossy)                                                      its grey value is >= 128
An image in a defect folder without a mask, an empty mask, a mask of no known encoding and every skipped
file are warnings in the JSON ("warnings"); --strict makes them errors. Images are read as stored (EXIF
orientation is ignored, as by the MVTec evaluation code). float64 maps are ranked at float64 precision.
`

func init() {
	Register(Command{
		Name:    "eval",
		Summary: "compute image/pixel AUROC, AP, F1-max and AUPRO of anomaly maps against MVTec-layout ground truth",
		Run:     runEval,
	})
}

func runEval(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("eval", flag.ContinueOnError)
	fs.SetOutput(stderr)
	maps := fs.String("maps", "", "folder of maps named by image key: KIND/STEM.npy or .tiff (CATEGORY/KIND/STEM when the dataset has several categories), as `rdre infer` writes them")
	gt := fs.String("gt", "", "the dataset (any layout below): its test images, labels and masks")
	scores := fs.String("scores", "", `optional JSON file {"KIND/STEM": score} with the image scores (default: max of each map)`)
	layout := fs.String("layout", "", "force the dataset layout (default: detect); one of "+strings.Join(dataset.LayoutNames(), ", "))
	split := fs.String("split", protocol.SplitTest, "the split to evaluate")
	strict := fs.Bool("strict", false, "treat every warning (missing or empty mask, mask of no known encoding, skipped file, map without image) as an error: exit 1")
	fprLimit := fs.Float64("fpr-limit", metrics.DefaultFPRLimit, "upper FPR limit of AUPRO, in (0, 1]")
	detail := fs.Bool("detail", false, "add curves, per-defect-type metrics and the per-image table (per-image pixel AP, region coverage); costs about twice the time")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: rdre eval --maps DIR --gt DIR [--scores FILE] [--fpr-limit 0.3] [--detail]")
		fmt.Fprintln(stderr, "prints one JSON object with the metrics; undefined metrics are null with a warning")
		fs.PrintDefaults()
		fmt.Fprint(stderr, evalHelp)
	}
	if err := fs.Parse(args); err != nil {
		return parseExit(err)
	}
	if *maps == "" || *gt == "" || fs.NArg() != 0 {
		fs.Usage()
		return 2
	}
	if !(*fprLimit > 0 && *fprLimit <= 1) {
		fmt.Fprintf(stderr, "rdre eval: --fpr-limit %v must be in (0, 1]\n", *fprLimit)
		return 2
	}
	start := time.Now()
	images, warnings, err := mapio.LoadEval(*maps, *gt, *scores, mapio.EvalOptions{Layout: *layout, Split: *split})
	if err != nil {
		fmt.Fprintf(stderr, "rdre eval: %v\n", err)
		return 1
	}
	if *strict && len(warnings) > 0 {
		fmt.Fprintf(stderr, "rdre eval: --strict: %d warnings:\n  %s\n", len(warnings), strings.Join(warnings, "\n  "))
		return 1
	}
	loaded := time.Since(start)
	res, err := metrics.Compute(images, metrics.Options{FPRLimit: *fprLimit, Detail: *detail, NoPerKind: !*detail})
	if err != nil {
		fmt.Fprintf(stderr, "rdre eval: %v\n", err)
		return 1
	}
	slog.Debug("eval", "images", len(images), "load", loaded, "metrics", time.Since(start)-loaded)
	res.Warnings = append(res.Warnings, warnings...)
	if !*detail {
		res.Curves = nil
		res.PerImage = nil
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(res); err != nil {
		fmt.Fprintf(stderr, "rdre eval: write result: %v\n", err)
		return 1
	}
	return 0
}
