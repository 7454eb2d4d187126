//go:build !js

package cli

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/rdre-studio/studio/backend/mapio"
	"github.com/rdre-studio/studio/backend/metrics"
)

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
	maps := fs.String("maps", "", "folder mirroring test/: one map per test image, KIND/NNN.npy or KIND/NNN.tiff")
	gt := fs.String("gt", "", "category root in MVTec AD layout (test/KIND/NNN.png, ground_truth/KIND/NNN_mask.png)")
	scores := fs.String("scores", "", `optional JSON file {"KIND/NNN": score} with the image scores (default: max of each map)`)
	fprLimit := fs.Float64("fpr-limit", metrics.DefaultFPRLimit, "upper FPR limit of AUPRO, in (0, 1]")
	detail := fs.Bool("detail", false, "add curves, per-defect-type metrics and the per-image table (per-image pixel AP, region coverage); costs about twice the time")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: rdre eval --maps DIR --gt DIR [--scores FILE] [--fpr-limit 0.3] [--detail]")
		fmt.Fprintln(stderr, "prints one JSON object with the metrics; undefined metrics are null with a warning")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
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
	images, warnings, err := mapio.LoadEval(*maps, *gt, *scores)
	if err != nil {
		fmt.Fprintf(stderr, "rdre eval: %v\n", err)
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
