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
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/rdre-studio/studio/backend/imageio"
	"github.com/rdre-studio/studio/backend/inference"
	"github.com/rdre-studio/studio/backend/mapio"
)

func init() {
	Register(Command{Name: "infer", Summary: "run a model over a dataset split, write .npy maps and scores.json", Run: runInfer})
}

// inferItem is one test image: its key "KIND/NNN" (what eval and scores.json use) and its file.
type inferItem struct {
	key, path string
}

func runInfer(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("infer", flag.ContinueOnError)
	fs.SetOutput(stderr)
	model := fs.String("model", "", "ONNX model file (required)")
	data := fs.String("data", "", "category root in MVTec layout: ROOT/SPLIT/KIND/*.png (required)")
	split := fs.String("split", "test", "split folder under the category root")
	out := fs.String("out", "", "output folder: OUT/KIND/NNN.npy (float32, image resolution) and OUT/scores.json (required)")
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
		return 2
	}
	if *model == "" || *data == "" || *out == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "infer: --model, --data and --out are required, and no positional arguments")
		fs.Usage()
		return 2
	}
	items, err := listSplit(*data, *split)
	if err != nil {
		fmt.Fprintf(stderr, "infer: %v\n", err)
		return 1
	}
	lib, err := inference.LibraryPath(*ortLib)
	if err == nil {
		err = inference.Init(lib)
	}
	if err != nil {
		fmt.Fprintf(stderr, "infer: %v\n", err)
		return 1
	}
	m, err := inference.Open(*model, inference.Options{Device: *device, Threads: *threads, Batch: *batch})
	if err != nil {
		fmt.Fprintf(stderr, "infer: %v\n", err)
		return 1
	}
	defer m.Close()
	info := m.Info()
	fmt.Fprintf(stderr, "infer: model %s (sha256 %.12s, input %d, category %q) on %s (%s), %d images in %s/%s\n",
		info.Path, info.SHA256, info.InputSize, info.Category, info.Device, info.DeviceReason, len(items), *data, *split)
	start := time.Now()
	progress := func(done int) {
		if !*quiet {
			fmt.Fprintf(stderr, "infer: %d/%d images, %.1f s\n", done, len(items), time.Since(start).Seconds())
		}
	}
	scores, err := inferSplit(m, items, *out, info.Batch, progress)
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

// listSplit lists ROOT/SPLIT/KIND/image files in a stable order (kind, then file name).
func listSplit(root, split string) ([]inferItem, error) {
	if strings.ContainsAny(split, `/\`) || split == ".." || split == "" {
		return nil, fmt.Errorf("split %q must be a plain folder name", split)
	}
	dir := filepath.Join(root, split)
	kinds, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list split %s: %w (want the MVTec layout CATEGORY/%s/KIND/NNN.png)", dir, err, split)
	}
	var items []inferItem
	seen := map[string]string{}
	for _, k := range kinds {
		if !k.IsDir() {
			continue
		}
		files, err := os.ReadDir(filepath.Join(dir, k.Name()))
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", filepath.Join(dir, k.Name()), err)
		}
		for _, f := range files {
			if f.IsDir() || !imageio.IsImageName(f.Name()) {
				continue
			}
			stem := strings.TrimSuffix(f.Name(), filepath.Ext(f.Name()))
			key := k.Name() + "/" + stem
			p := filepath.Join(dir, k.Name(), f.Name())
			if prev, dup := seen[key]; dup {
				return nil, fmt.Errorf("two images map to %s: %s and %s", key, prev, p)
			}
			seen[key] = p
			items = append(items, inferItem{key: key, path: p})
		}
	}
	if len(items) == 0 {
		return nil, fmt.Errorf("no images under %s/*/ (want the MVTec layout CATEGORY/%s/KIND/NNN.png)", dir, split)
	}
	sort.Slice(items, func(i, j int) bool { return items[i].key < items[j].key })
	return items, nil
}

func decodeImageFile(path string) (image.Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	img, _, err := imageio.Decode(f)
	if err != nil {
		return nil, fmt.Errorf("decode %s: %w", path, err)
	}
	return img, nil
}

// inferSplit decodes batch k+1 while batch k runs (one batch ahead, so memory stays at two batches of
// decoded images), writes each map as it comes, and returns the scores by key.
func inferSplit(m *inference.Model, items []inferItem, out string, batch int, progress func(int)) (map[string]float64, error) {
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
					d.imgs[i], errs[i] = decodeImageFile(part[i].path)
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
