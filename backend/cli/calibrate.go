//go:build !js

package cli

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/rdre-studio/studio/backend/calibrate"
	"github.com/rdre-studio/studio/backend/cli/version"
	"github.com/rdre-studio/studio/backend/dataset"
	"github.com/rdre-studio/studio/shared/protocol"
)

func init() {
	Register(Command{
		Name:    "calibrate",
		Summary: "derive pixel and image thresholds from the maps of defect-free images only (a validation split)",
		Run:     runCalibrate,
	})
}

func runCalibrate(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("calibrate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	maps := fs.String("maps", "", "folder of the split's maps named by image key (KIND/STEM.npy or .tiff), as 'rdre infer --split validation --out DIR' writes them (required)")
	data := fs.String("data", "", "the dataset (required)")
	split := fs.String("split", protocol.SplitValidation, "the split of defect-free images to calibrate on: validation or train (never a test split)")
	category := fs.String("category", "", "the category to calibrate, when the dataset holds several")
	layout := fs.String("layout", "", "force the dataset layout (default: detect); one of "+strings.Join(dataset.LayoutNames(), ", "))
	method := fs.String("method", "mean-kstd:3,image-fpr:0.05", "comma-separated strategies, at most one pixel and one image: mean-kstd:K (mean + K std of normal pixels), pixel-fpr:Q (quantile: normal pixel FPR <= Q), image-fpr:Q (normal image false-alarm rate <= Q)")
	scores := fs.String("scores", "", `optional JSON file {"KIND/STEM": score} with the image scores (default: max of each map, as rdre eval)`)
	out := fs.String("out", "", "the thresholds file to write (required)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: rdre calibrate --maps DIR --data DATASET [--split validation] [--method mean-kstd:3,image-fpr:0.05] --out thresholds.json")
		fmt.Fprintln(stderr, "writes the thresholds with their provenance; rdre eval --thresholds and rdre submit --thresholds read them")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return parseExit(err)
	}
	if *maps == "" || *data == "" || *out == "" || fs.NArg() != 0 {
		fs.Usage()
		return 2
	}
	methods, err := calibrate.ParseMethods(*method)
	if err != nil {
		fmt.Fprintf(stderr, "rdre calibrate: --method: %v\n", err)
		return 2
	}
	if *split != protocol.SplitValidation && *split != protocol.SplitTrain {
		fmt.Fprintf(stderr, "rdre calibrate: --split %s: thresholds come from defect-free images that are not the test set (validation, or train)\n", *split)
		return 2
	}
	f, err := calibrateDataset(*maps, *data, *layout, *split, *category, *scores, methods)
	if err != nil {
		fmt.Fprintf(stderr, "rdre calibrate: %v\n", err)
		return 1
	}
	raw, _ := json.MarshalIndent(f, "", "  ")
	if err := writeFileAtomic(*out, append(raw, '\n')); err != nil {
		fmt.Fprintf(stderr, "rdre calibrate: %v\n", err)
		return 1
	}
	var parts []string
	if f.Pixel != nil {
		parts = append(parts, fmt.Sprintf("pixel %s = %.9g (normal pixel FPR %.4g)", f.Pixel.Method, f.Pixel.Threshold, f.Pixel.FPR))
	}
	if f.Image != nil {
		parts = append(parts, fmt.Sprintf("image %s = %.9g (normal image FPR %.4g)", f.Image.Method, f.Image.Threshold, f.Image.FPR))
	}
	fmt.Fprintf(stdout, "calibrate: %d images, %d pixels of %s: %s; wrote %s\n", f.Provenance.Images, f.Provenance.Pixels, f.Provenance.Split, strings.Join(parts, "; "), *out)
	return 0
}

// calibrateDataset calibrates on the maps of one split of a dataset.
func calibrateDataset(mapsDir, data, layout, split, category, scoresPath string, methods []calibrate.Method) (*calibrate.File, error) {
	ds, err := dataset.OpenWith(data, dataset.Options{Layout: layout})
	if err != nil {
		return nil, err
	}
	defer ds.Close()
	info := ds.Info()
	if category == "" && len(info.Categories) > 1 {
		return nil, fmt.Errorf("dataset %s holds %d categories (%s): calibrate one at a time with --category", data, len(info.Categories), strings.Join(info.Categories, ", "))
	}
	var ims []protocol.ImageInfo
	for _, im := range ds.Images() {
		if im.Split != split || (category != "" && im.Category != category) {
			continue
		}
		if im.Kind != protocol.KindGood {
			return nil, fmt.Errorf("image %s of split %s is of kind %q: thresholds come from defect-free images only", im.ID, split, im.Kind)
		}
		ims = append(ims, im)
	}
	if len(ims) == 0 {
		return nil, fmt.Errorf("no %s images in %s (category %q; splits found: %s)", split, data, category, strings.Join(info.Splits, ", "))
	}
	slices.SortFunc(ims, func(a, b protocol.ImageInfo) int { return strings.Compare(a.Key, b.Key) })
	src := &mapSource{dir: mapsDir, ims: ims, budget: 256 << 20}
	scoreSource := "max of map"
	if scoresPath != "" {
		s, err := readScores(scoresPath)
		if err != nil {
			return nil, err
		}
		src.scores = s
		scoreSource = scoresPath
	}
	res, err := calibrate.Calibrate(src, methods)
	if err != nil {
		return nil, err
	}
	if category == "" && len(info.Categories) == 1 {
		category = info.Categories[0] // recorded, so that a submission of several categories finds its file
	}
	absData, _ := filepath.Abs(data)
	absMaps, _ := filepath.Abs(mapsDir)
	f := &calibrate.File{Version: 1, Kind: calibrate.FileKind, Pixel: res.Pixel, Image: res.Image, Normal: res.Normal,
		Provenance: calibrate.Provenance{Dataset: absData, Layout: info.Layout, Split: split, Category: category, Maps: absMaps,
			Scores: scoreSource, Images: len(ims), Pixels: res.Normal.Pixels, Date: time.Now().UTC().Format(time.RFC3339), Tool: version.Version}}
	for _, m := range methods {
		f.Provenance.Methods = append(f.Provenance.Methods, m.String())
	}
	return f, nil
}

// mapSource reads the calibration maps; while they fit the budget they stay in memory for the later
// passes.
type mapSource struct {
	dir    string
	ims    []protocol.ImageInfo
	scores map[string]float64
	budget int64
	cache  map[int]calibrate.Map
	used   int64
}

func (s *mapSource) Len() int { return len(s.ims) }

func (s *mapSource) Load(i int) (calibrate.Map, error) {
	if m, ok := s.cache[i]; ok {
		return m, nil
	}
	im := s.ims[i]
	m, _, err := readMapOf(s.dir, im)
	if err != nil {
		return calibrate.Map{}, err
	}
	out := calibrate.Map{Values32: m.Data, Values64: m.Data64}
	if s.scores != nil {
		v, ok := s.scores[im.Key]
		if !ok {
			return calibrate.Map{}, fmt.Errorf("scores file has no score for image %s", im.Key)
		}
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return calibrate.Map{}, fmt.Errorf("score of %s is not finite", im.Key)
		}
		out.Score = v
	} else {
		out.Score = mapMax(m)
	}
	size := int64(len(m.Data))*4 + int64(len(m.Data64))*8
	if s.used+size <= s.budget {
		if s.cache == nil {
			s.cache = map[int]calibrate.Map{}
		}
		s.cache[i] = out
		s.used += size
	}
	return out, nil
}

// writeFileAtomic writes through a temporary file and a rename.
func writeFileAtomic(path string, data []byte) error {
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// loadThresholds reads a thresholds file.
func loadThresholds(path string) (*calibrate.File, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	f, err := calibrate.Decode(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return f, nil
}
