//go:build !js

package cli

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rdre-studio/studio/backend/dataset"
	"github.com/rdre-studio/studio/backend/imageio"
	"github.com/rdre-studio/studio/backend/metrics"
	sm "github.com/rdre-studio/studio/shared/metrics"
	"github.com/rdre-studio/studio/shared/protocol"
)

// evalHelp states the rules a user must know to trust the numbers (docs/datasets.md has the same).
var evalHelp = `
Dataset layouts (detected; --layout forces one):
` + dataset.LayoutHelp() + `
Masks (STEM_mask.* or STEM.*, any image extension in any case): a pixel is a defect when
  lossless grey (8 or 16 bit: 0/255, 0/1, class ids)               its value is not 0
  8-bit 0/255 with blurred or noisy edges (docs/datasets.md)        its grey value is >= 128
  palette PNG                                                       its palette index is not 0
  RGB / RGBA colour                                                 it is not black / not black and not transparent
  JPEG (lossy)                                                      its grey value is >= 128
An image in a defect folder without a mask, an empty mask, a mask of no known encoding and every skipped
file are warnings in the JSON ("warnings"); --strict makes them errors. Images are read as stored (EXIF
orientation is ignored, as by the MVTec evaluation code). float64 maps are ranked at float64 precision.

Metrics (docs/metrics.md): pixel_aupro_by_limit has 0.05, 0.3 and the --fpr-limit list; with --threshold
or --thresholds, pixel_segf1 (all pixels at once), pixel_segf1_mean (over images with a defect or a
prediction) and PRO at the threshold; with --detail, per_kind and per_size (regions < 0.1 %, 0.1-1 %,
> 1 % of the image); on MVTec LOCO AD, sPRO per mask file with defects_config.json's saturation
(pixel_spro_aupro_by_limit: the mean over structural and logical, spro: apart and pooled).
--state-out writes the exact metric state; rdre eval merge of the states of --shard parts prints the
same JSON as one run.
`

func init() {
	Register(Command{
		Name:    "eval",
		Summary: "compute image/pixel AUROC, AP, F1-max, AUPRO (any FPR limits), SegF1 and LOCO's sPRO of anomaly maps against a dataset's ground truth",
		Run:     runEval,
	})
}

func runEval(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "merge" {
		return runEvalMerge(args[1:], stdout, stderr)
	}
	fs := flag.NewFlagSet("eval", flag.ContinueOnError)
	fs.SetOutput(stderr)
	maps := fs.String("maps", "", "folder of maps named by image key: KIND/STEM.npy or .tiff (CATEGORY/KIND/STEM when the dataset has several categories), as 'rdre infer' writes them")
	gt := fs.String("gt", "", "the dataset (any layout below): its test images, labels and masks")
	scores := fs.String("scores", "", `optional JSON file {"KIND/STEM": score} with the image scores (default: max of each map)`)
	layout := fs.String("layout", "", "force the dataset layout (default: detect); one of "+strings.Join(dataset.LayoutNames(), ", "))
	split := fs.String("split", protocol.SplitTest, "the split to evaluate")
	strict := fs.Bool("strict", false, "treat every warning (missing or empty mask, mask of no known encoding, skipped file, map without image) as an error: exit 1")
	fprLimit := fs.String("fpr-limit", "0.3", "comma-separated FPR limits of AUPRO, each in (0, 1]; the first is pixel_aupro's and the PRO curve's, and pixel_aupro_by_limit has them all plus 0.05 and 0.3")
	var threshold *float64
	fs.Func("threshold", "pixel threshold (score >= T is anomalous) for pixel_segf1, pixel_segf1_mean and PRO at the threshold", func(v string) error {
		t, err := strconv.ParseFloat(v, 64)
		if err != nil || math.IsNaN(t) || math.IsInf(t, 0) {
			return fmt.Errorf("want a finite number")
		}
		threshold = &t
		return nil
	})
	thresholds := fs.String("thresholds", "", "thresholds file of 'rdre calibrate': its pixel threshold for SegF1, its image threshold for image F1/TPR/FPR")
	stateOut := fs.String("state-out", "", "also write the exact metric state of the evaluated images to FILE, for 'rdre eval merge' (e.g. one per --shard, on several machines)")
	shardFlag := fs.String("shard", "", "evaluate part I/N of the split's images (contiguous in key order), e.g. 0/2 and 1/2, each with --state-out, then rdre eval merge")
	budget := fs.Int64("histogram-budget", metrics.DefaultBudget, "histogram entries the evaluation may hold (16 bytes each) to keep maps with few distinct values in constant memory; maps with more are sorted in a streamed pass instead (4 bytes per pixel); 0 always sorts")
	sortBudget := fs.String("sort-budget", "1GiB", "memory the pixel sort of float32 maps may hold, e.g. 256MiB: beyond it the pixels are sorted one range of scores at a time, reading the maps again per range (the result is the same); 0: no bound")
	detail := fs.Bool("detail", false, "add curves, per-defect-type and per-region-size metrics and the per-image table (per-image pixel AP, region coverage); costs about twice the time")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: rdre eval --maps DIR --gt DIR [--scores FILE] [--fpr-limit 0.3[,0.05,...]] [--threshold T | --thresholds FILE] [--detail] [--shard I/N] [--state-out FILE]")
		fmt.Fprintln(stderr, "       rdre eval merge [--out RESULT.json] STATE...")
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
	lims, err := metrics.ParseLimits(*fprLimit)
	if err != nil {
		fmt.Fprintf(stderr, "rdre eval: --fpr-limit: %v\n", err)
		return 2
	}
	opt := metrics.Options{FPRLimit: lims[0], FPRLimits: lims[1:], Detail: *detail, NoPerKind: !*detail, Threshold: threshold}
	if threshold != nil {
		opt.ThresholdSource = "--threshold"
	}
	if opt.SortBudget, err = imageio.ParseBytes(*sortBudget); err != nil || (opt.SortBudget > 0 && opt.SortBudget < 1<<20) {
		fmt.Fprintf(stderr, "rdre eval: --sort-budget %q: want 0 (no bound) or a size of at least 1MiB, such as 256MiB or 2GiB\n", *sortBudget)
		return 2
	}
	if *thresholds != "" {
		if threshold != nil {
			fmt.Fprintln(stderr, "rdre eval: --threshold and --thresholds exclude each other")
			return 2
		}
		tf, err := loadThresholds(*thresholds)
		if err != nil {
			fmt.Fprintf(stderr, "rdre eval: --thresholds: %v\n", err)
			return 1
		}
		if tf.Pixel == nil {
			fmt.Fprintf(stderr, "rdre eval: --thresholds %s has no pixel threshold (calibrate with mean-kstd or pixel-fpr)\n", *thresholds)
			return 1
		}
		opt.Threshold, opt.ThresholdSource = &tf.Pixel.Threshold, tf.Describe(*thresholds)
		if tf.Image != nil {
			opt.ImageThreshold = &tf.Image.Threshold
		}
	}
	shard := shardSpec{}
	if *shardFlag != "" {
		if shard, err = parseShard(*shardFlag); err != nil {
			fmt.Fprintf(stderr, "rdre eval: %v\n", err)
			return 2
		}
	}
	start := time.Now()
	src, err := openEvalSource(*maps, *gt, *scores, *layout, *split, shard)
	if err != nil {
		fmt.Fprintf(stderr, "rdre eval: %v\n", err)
		return 1
	}
	defer src.Close()
	res, st, notes, err := evaluateSource(src, opt, *stateOut != "", *budget)
	if err != nil {
		fmt.Fprintf(stderr, "rdre eval: %v\n", err)
		return 1
	}
	warnings := metrics.ComposeNotes(notes)
	if *strict && len(warnings) > 0 {
		fmt.Fprintf(stderr, "rdre eval: --strict: %d warnings:\n  %s\n", len(warnings), strings.Join(warnings, "\n  "))
		return 1
	}
	slog.Debug("eval", "images", len(src.infos), "time", time.Since(start))
	if *stateOut != "" {
		st.Notes = notes
		if err := writeStateFile(*stateOut, st); err != nil {
			fmt.Fprintf(stderr, "rdre eval: --state-out: %v\n", err)
			return 1
		}
	}
	res.Warnings = append(res.Warnings, warnings...)
	if err := printResult(stdout, res, *detail); err != nil {
		fmt.Fprintf(stderr, "rdre eval: write result: %v\n", err)
		return 1
	}
	return 0
}

// printResult prints the result as `rdre eval` does: curves and the per-image table only with --detail.
func printResult(w io.Writer, res *sm.Result, detail bool) error {
	if !detail {
		res.Curves = nil
		res.PerImage = nil
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(res)
}

// evaluateSource evaluates the source by the cheapest exact engine (every one gives the same result, bit
// for bit):
//   - a histogram state (metrics.Builder), each map counted and dropped as it is read: constant memory for
//     maps with few distinct values (8-bit, float16); used while the histograms stay within budget, judged
//     from the first images;
//   - else, when the maps (4 bytes a pixel) fit in half of opt.SortBudget (or it is 0), all maps in
//     memory (metrics.Compute): one read of each file, the fastest; the sort gets the rest of the budget;
//   - else a streamed sort (metrics.ComputeStream): the maps are read again for the sort instead of held,
//     so memory is the sort's 4 bytes per normal pixel, itself within opt.SortBudget;
//   - float64 maps, which are ranked over the whole set at once: all maps in memory (metrics.Compute).
func evaluateSource(src *evalSource, opt metrics.Options, wantState bool, budget int64) (*sm.Result, *metrics.State, []metrics.Note, error) {
	var mu sync.Mutex
	var notes []metrics.Note
	add := func(ns []metrics.Note) {
		mu.Lock()
		notes = append(notes, ns...)
		mu.Unlock()
	}
	n := len(src.infos)
	if budget > 0 {
		b := metrics.NewBuilder(opt)
		b.Budget = budget
		notes = slices.Clone(src.notes)
		step := func(i int) error {
			img, ns, err := src.load(i)
			if err != nil {
				return err
			}
			add(ns)
			if i == 0 && mostlyDistinct(img.Map) && int64(img.W)*int64(img.H)*int64(n)/4 > budget {
				// A float32 map: every image will add about as many entries as it has pixels, so
				// counting this one (tens of ms at 900x900) would only confirm it.
				return metrics.ErrOverBudget
			}
			return b.Add(img)
		}
		// The first images tell how the histograms grow: by a whole image's worth of distinct values each
		// (float32 maps), or hardly at all (quantised maps).
		k := min(3, n)
		var err error
		var e1 int64
		for i := 0; i < k && err == nil; i++ {
			err = step(i)
			if i == 0 {
				e1 = b.Entries()
			}
		}
		if err == nil && k > 1 && n > k {
			growth := float64(b.Entries()-e1) / float64(k-1)
			if float64(e1)+growth*float64(n-1) > float64(budget) {
				err = metrics.ErrOverBudget
			}
		}
		if err == nil {
			err = forEach(n-k, func(i int) error { return step(k + i) })
		}
		if err == nil {
			st, err := b.State()
			if err != nil {
				return nil, nil, nil, err
			}
			res, err := st.Result()
			return res, st, notes, err
		}
		if !errors.Is(err, metrics.ErrOverBudget) {
			return nil, nil, nil, err
		}
		slog.Debug("eval: too many distinct values for a histogram state; streamed sort", "budget", budget)
	}
	var pixels int64
	for _, im := range src.infos {
		pixels += int64(im.Width) * int64(im.Height)
	}
	// The maps and sort arrays hold no pointers, so collecting often is cheap; it keeps garbage (the maps
	// read and dropped by the stream, a range's arrays) from piling up to the live heap's size again.
	defer debug.SetGCPercent(debug.SetGCPercent(20))
	if opt.SortBudget == 0 || 4*pixels <= opt.SortBudget/2 {
		if opt.SortBudget > 0 {
			opt.SortBudget -= 4 * pixels
		}
		return evaluateInMemory(src, opt, wantState)
	}
	notes = slices.Clone(src.notes)
	load := func(i int, truth bool) (metrics.Image, error) {
		img, ns, err := src.read(i, truth)
		if truth {
			add(ns)
		}
		return img, err
	}
	var res *sm.Result
	var st *metrics.State
	var err error
	if wantState {
		if st, err = metrics.StateOfStream(n, load, opt); err == nil {
			res, err = st.Result()
		}
	} else {
		res, err = metrics.ComputeStream(n, load, opt)
	}
	if !errors.Is(err, metrics.ErrStreamFloat64) {
		return res, st, notes, err
	}
	return evaluateInMemory(src, opt, wantState)
}

// evaluateInMemory reads every map once and evaluates them held in memory.
func evaluateInMemory(src *evalSource, opt metrics.Options, wantState bool) (*sm.Result, *metrics.State, []metrics.Note, error) {
	var mu sync.Mutex
	notes := slices.Clone(src.notes)
	add := func(ns []metrics.Note) {
		mu.Lock()
		notes = append(notes, ns...)
		mu.Unlock()
	}
	n := len(src.infos)
	images := make([]metrics.Image, n)
	if err := forEach(n, func(i int) error {
		img, ns, err := src.load(i)
		images[i] = img
		add(ns)
		return err
	}); err != nil {
		return nil, nil, nil, err
	}
	if wantState {
		st, err := metrics.StateOf(images, opt)
		if err != nil {
			return nil, nil, nil, err
		}
		res, err := st.Result()
		return res, st, notes, err
	}
	res, err := metrics.Compute(images, opt)
	return res, nil, notes, err
}

// forEach runs f(0..n-1) on GOMAXPROCS goroutines, stopping at the first error (the lowest index's
// error is returned, so messages do not depend on scheduling).
func forEach(n int, f func(i int) error) error {
	errs := make([]error, n)
	var failed atomic.Bool
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(n, runtime.GOMAXPROCS(0)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if failed.Load() {
					continue
				}
				if errs[i] = f(i); errs[i] != nil {
					failed.Store(true)
				}
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	for _, err := range errs {
		if err != nil && !errors.Is(err, metrics.ErrOverBudget) {
			return err
		}
	}
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func writeStateFile(path string, st *metrics.State) error {
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	err = metrics.WriteState(bw, st)
	if err == nil {
		err = bw.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}

// runEvalMerge merges metric states (`rdre eval --state-out`) into the result one run over all their
// images gives.
func runEvalMerge(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("eval merge", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "", "write the result JSON here (default: standard output)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: rdre eval merge [--out RESULT.json] STATE...")
		fmt.Fprintln(stderr, "merges the metric states of disjoint image sets (rdre eval --state-out, e.g. one per --shard) into the JSON of one rdre eval over all of them, bit for bit; the states must come from the same options (limits, thresholds, --detail)")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return parseExit(err)
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return 2
	}
	var states []*metrics.State
	for _, p := range fs.Args() {
		f, err := os.Open(p)
		if err != nil {
			fmt.Fprintf(stderr, "rdre eval merge: %v\n", err)
			return 1
		}
		st, err := metrics.ReadState(bufio.NewReaderSize(f, 1<<20))
		f.Close()
		if err != nil {
			fmt.Fprintf(stderr, "rdre eval merge: %s: %v\n", p, err)
			return 1
		}
		states = append(states, st)
	}
	m, err := metrics.Merge(states...)
	if err != nil {
		fmt.Fprintf(stderr, "rdre eval merge: %v\n", err)
		return 1
	}
	res, err := m.Result()
	if err != nil {
		fmt.Fprintf(stderr, "rdre eval merge: %v\n", err)
		return 1
	}
	res.Warnings = append(res.Warnings, metrics.ComposeNotes(m.Notes)...)
	var buf bytes.Buffer
	if err := printResult(&buf, res, m.Options().Detail); err != nil {
		fmt.Fprintf(stderr, "rdre eval merge: %v\n", err)
		return 1
	}
	if *out == "" {
		_, err = stdout.Write(buf.Bytes())
	} else {
		err = writeFileAtomic(*out, buf.Bytes())
	}
	if err != nil {
		fmt.Fprintf(stderr, "rdre eval merge: %v\n", err)
		return 1
	}
	return 0
}

// mostlyDistinct tells from a sample of 4096 values whether most of a map's values differ from each other,
// as in a float32 map (a float16 or 8-bit one repeats its few values).
func mostlyDistinct(m []float32) bool {
	const sample = 4096
	if len(m) < 4*sample {
		return false
	}
	seen := make(map[float32]struct{}, sample)
	step := len(m) / sample
	for i := 0; i < sample; i++ {
		seen[m[i*step]] = struct{}{}
	}
	return len(seen) > sample/2
}
