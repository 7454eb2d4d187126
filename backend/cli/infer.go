//go:build !js

package cli

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"image"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/rdre-studio/studio/backend/dataset"
	"github.com/rdre-studio/studio/backend/inference"
	"github.com/rdre-studio/studio/backend/mapio"
	"github.com/rdre-studio/studio/backend/oip"
	"github.com/rdre-studio/studio/shared/protocol"
)

func init() {
	Register(Command{Name: "infer", Summary: "run a model over a dataset split, write .npy maps and scores.json", Run: runInfer})
}

// inferItem is one image: its key "KIND/STEM" (what eval and scores.json use) and its dataset id.
type inferItem struct {
	key, id string
}

func runInfer(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("infer", flag.ContinueOnError)
	fs.SetOutput(stderr)
	model := fs.String("model", "", "ONNX model file (this or --model-url is required)")
	remote := addRemoteFlags(fs) // --model-url (remote.go)
	data := fs.String("data", "", "the dataset, any layout of 'rdre eval -h' (required)")
	split := fs.String("split", "test", "the split to run: train, validation, test, test_private, test_private_mixed")
	layout := fs.String("layout", "", "force the dataset layout (default: detect); one of "+strings.Join(dataset.LayoutNames(), ", "))
	out := fs.String("out", "", "output folder: OUT/KEY.npy (float32, image resolution; KEY is KIND/STEM, or CATEGORY/KIND/STEM for several categories) and OUT/scores.json (required)")
	device := fs.String("device", "auto", "inference device: auto, cpu or cuda")
	threads := fs.Int("threads", 0, "ONNX Runtime intra-op threads (0 = all cores)")
	batch := fs.Int("batch", inference.DefaultBatch, "images per session run")
	ortLib := fs.String("ort-lib", "", "path of libonnxruntime.so.1 (default $"+inference.EnvLibrary+", then next to the binary)")
	quiet := fs.Bool("quiet", false, "no progress lines")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: rdre infer --model FILE.onnx --data CATEGORY_ROOT [--split test] --out DIR [--device auto|cpu|cuda] [--threads N] [--batch N]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return parseExit(err)
	}
	if (*model == "") == (len(remote.urls) == 0) || *data == "" || *out == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "infer: --model (or --model-url), --data and --out are required, and no positional arguments")
		fs.Usage()
		return 2
	}
	ds, items, err := listSplit(*data, *split, *layout)
	if err != nil {
		fmt.Fprintf(stderr, "infer: %v\n", err)
		return 1
	}
	defer ds.Close()
	for _, w := range ds.Info().Warnings {
		fmt.Fprintf(stderr, "infer: warning: %s\n", w)
	}
	var m inference.Predictor
	if len(remote.urls) > 0 { // a remote model: no ONNX Runtime here
		m, err = oip.Open(remote.urls, remote.options(*batch, slog.Default()))
	} else {
		var lib string
		if lib, err = inference.LibraryPath(*ortLib); err == nil {
			err = inference.Init(lib)
		}
		if err == nil {
			m, err = inference.Open(*model, inference.Options{Device: *device, Threads: *threads, Batch: *batch})
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "infer: %v\n", err)
		return 1
	}
	defer m.Close()
	info := m.Info()
	fmt.Fprintf(stderr, "infer: model %s (sha256 %.12s, input %d, category %q) on %s (%s), %d images in %s/%s\n",
		info.Path, info.SHA256, info.InputSize, info.Category, info.Device, info.ShortDeviceReason(), len(items), *data, *split)
	start := time.Now()
	progress := func(done int) {
		if !*quiet {
			fmt.Fprintf(stderr, "infer: %d/%d images, %.1f s\n", done, len(items), time.Since(start).Seconds())
		}
	}
	scores, err := inferSplit(m, ds, items, *out, info.Batch, progress)
	if err != nil {
		fmt.Fprintf(stderr, "infer: %v\n", err)
		return 1
	}
	if err := writeScores(filepath.Join(*out, "scores.json"), scores); err != nil {
		fmt.Fprintf(stderr, "infer: %v\n", err)
		return 1
	}
	el := time.Since(start)
	fmt.Fprintf(stdout, "infer: wrote %d maps and %s in %.2f s (%.2f images/s, %s)\n",
		len(items), filepath.Join(*out, "scores.json"), el.Seconds(), float64(len(items))/el.Seconds(), info.Device)
	return 0
}

var knownSplits = []string{protocol.SplitTrain, protocol.SplitValidation, protocol.SplitTest, protocol.SplitTestPrivate, protocol.SplitTestPrivateMixed}

// listSplit opens the dataset and lists the images of one split in key order.
func listSplit(root, split, layout string) (*dataset.Dataset, []inferItem, error) {
	if !slices.Contains(knownSplits, split) {
		return nil, nil, fmt.Errorf("--split %q is not a split; the splits are %s", split, strings.Join(knownSplits, ", "))
	}
	ds, err := dataset.OpenWith(root, dataset.Options{Layout: layout})
	if err != nil {
		return nil, nil, err
	}
	var items []inferItem
	for _, im := range ds.Images() {
		if im.Split == split {
			items = append(items, inferItem{key: im.Key, id: im.ID})
		}
	}
	if len(items) == 0 {
		info := ds.Info()
		ds.Close()
		return nil, nil, fmt.Errorf("no %s images in %s (%s layout; splits found: %s)", split, root, info.Layout, strings.Join(info.Splits, ", "))
	}
	sort.Slice(items, func(i, j int) bool { return items[i].key < items[j].key })
	return ds, items, nil
}

// inferSplit decodes batch k+1 while batch k runs (one batch ahead, so memory stays at two batches of
// decoded images), writes each map as it comes, and returns the scores by key.
func inferSplit(m inference.Predictor, ds *dataset.Dataset, items []inferItem, out string, batch int, progress func(int)) (map[string]float64, error) {
	type decoded struct {
		items []inferItem
		imgs  []image.Image
		err   error
	}
	ch := make(chan decoded, 1)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		defer close(ch)
		for lo := 0; lo < len(items); lo += batch {
			part := items[lo:min(lo+batch, len(items))]
			d := decoded{items: part, imgs: make([]image.Image, len(part))}
			var wg sync.WaitGroup
			errs := make([]error, len(part))
			for i := range part {
				wg.Add(1)
				go func(i int) {
					defer wg.Done()
					d.imgs[i], errs[i] = ds.Decode(part[i].id)
				}(i)
			}
			wg.Wait()
			d.err = errors.Join(errs...)
			select {
			case ch <- d:
			case <-stop:
				return
			}
			if d.err != nil {
				return
			}
		}
	}()
	scores := make(map[string]float64, len(items))
	done := 0
	for d := range ch {
		if d.err != nil {
			return nil, d.err
		}
		preds, err := m.Predict(d.imgs)
		if err != nil {
			return nil, err
		}
		for i, p := range preds {
			if err := writeMap(filepath.Join(out, filepath.FromSlash(d.items[i].key)+".npy"), p); err != nil {
				return nil, err
			}
			scores[d.items[i].key] = p.Score
		}
		done += len(preds)
		progress(done)
	}
	if done != len(items) {
		return nil, fmt.Errorf("inferred %d of %d images", done, len(items))
	}
	return scores, nil
}

// writeMap writes through a temporary file and a rename, so an interrupted run never leaves a
// truncated map that eval would read as a real one.
func writeMap(path string, p inference.Prediction) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("write map %s: %w", path, err)
	}
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("write map %s: %w", path, err)
	}
	err = mapio.WriteNPY(f, p.W, p.H, p.Map)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write map %s: %w", path, err)
	}
	return nil
}

func writeScores(path string, scores map[string]float64) error {
	raw, err := json.MarshalIndent(scores, "", " ")
	if err != nil {
		return fmt.Errorf("write scores %s: %w", path, err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(raw, '\n'), 0o644); err != nil {
		return fmt.Errorf("write scores %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write scores %s: %w", path, err)
	}
	slog.Debug("scores written", "path", path, "images", len(scores))
	return nil
}
