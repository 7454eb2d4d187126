//go:build !js

package training

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/png"
	"io"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/rdre-studio/studio/backend/dataset"
	"github.com/rdre-studio/studio/backend/store"
	"github.com/rdre-studio/studio/shared/protocol"
)

// Shares of the good images when a dataset has no train split: they train, they calibrate; the rest
// stay in the evaluation.
const (
	fromTestTrainShare = 0.6
	fromTestCalibShare = 0.1
	// heldOutShare of the train split is held out for calibration when there is no validation split,
	// at most maxHeldOut images; a train split under minForHoldOut images keeps them all.
	heldOutShare  = 0.1
	maxHeldOut    = 32
	minForHoldOut = 5
)

type selection struct {
	train, calib []string
	fromTest     bool
	warnings     []string
}

// effectiveImages are the dataset's images with their effective kind: a workspace mask overrides the
// dataset's (an empty one makes an image good, a drawn defect on a good image makes it defective), the
// rule the server's images.list applies. sums is store.MaskSummaries of the dataset (nil: none).
func effectiveImages(ds *dataset.Dataset, sums map[string]store.MaskSummary) []protocol.ImageInfo {
	imgs := ds.Images()
	out := make([]protocol.ImageInfo, len(imgs))
	for i, im := range imgs {
		if sm, ok := sums[im.ID]; ok {
			im.HasWorkspaceMask = true
			switch {
			case sm.Pixels == 0 && im.Kind != protocol.KindGood:
				im.DatasetKind, im.Kind = im.Kind, protocol.KindGood
			case sm.Pixels > 0 && im.Kind == protocol.KindGood:
				im.DatasetKind, im.Kind = im.Kind, "drawn"
			}
		}
		out[i] = im
	}
	return out
}

// selectImages picks the images a run trains on and those it calibrates on, in index order.
func selectImages(imgs []protocol.ImageInfo, category string) (selection, error) {
	var train, valid, testGood []string
	for _, im := range imgs {
		if category != "" && im.Category != category {
			continue
		}
		// Kind is the effective type: a train image with a defect drawn in the workspace is not normal,
		// a test image whose mask was cleared in the workspace is.
		if im.Kind != protocol.KindGood {
			continue
		}
		switch im.Split {
		case protocol.SplitTrain:
			train = append(train, im.ID)
		case protocol.SplitValidation:
			valid = append(valid, im.ID)
		case protocol.SplitTest:
			testGood = append(testGood, im.ID)
		}
	}
	var sel selection
	switch {
	case len(train) > 0 && len(valid) > 0:
		sel.train, sel.calib = train, valid
		if len(sel.calib) > maxHeldOut {
			sel.calib = spread(sel.calib, maxHeldOut)
		}
	case len(train) > 0:
		sel.train = train
		if len(train) >= minForHoldOut {
			k := min(maxHeldOut, max(1, int(float64(len(train))*heldOutShare+0.5)))
			sel.calib = spread(train, k)
			sel.train = without(train, sel.calib)
		} else {
			sel.warnings = append(sel.warnings, fmt.Sprintf("only %d normal training images: none held out, thresholds come from synthetic anomalies only", len(train)))
		}
	case len(testGood) >= 2:
		nTrain := max(1, int(float64(len(testGood))*fromTestTrainShare+0.5))
		nCalib := int(float64(len(testGood))*fromTestCalibShare + 0.5)
		sel.train = spread(testGood, nTrain)
		rest := without(testGood, sel.train)
		if nCalib > 0 && len(rest) > nCalib {
			sel.calib = spread(rest, nCalib)
		}
		sel.fromTest = true
		sel.warnings = append(sel.warnings, fmt.Sprintf("the dataset has no train split: %d of its %d good test images train the model and %d calibrate it; every evaluation of this model leaves them out",
			len(sel.train), len(testGood), len(sel.calib)))
	default:
		what := "the dataset"
		if category != "" {
			what = "category " + category
		}
		return sel, fmt.Errorf("%s has no normal images to train on (no good images in a train split, nor two in the test split)", what)
	}
	return sel, nil
}

// spread picks k of ids, evenly spaced (deterministic).
func spread(ids []string, k int) []string {
	if k >= len(ids) {
		return append([]string(nil), ids...)
	}
	out := make([]string, 0, k)
	for i := 0; i < k; i++ {
		out = append(out, ids[(2*i+1)*len(ids)/(2*k)])
	}
	return out
}

func without(ids, drop []string) []string {
	skip := make(map[string]bool, len(drop))
	for _, id := range drop {
		skip[id] = true
	}
	var out []string
	for _, id := range ids {
		if !skip[id] {
			out = append(out, id)
		}
	}
	return out
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// stageCategory is the folder name of the run's staged category: the dataset's category name, made safe.
func stageCategory(info protocol.TrainInfo) string {
	c := info.Category
	if c == "" {
		c = info.Dataset
		if i := strings.LastIndexByte(c, '-'); i > 0 {
			c = c[:i] // dataset IDs are NAME-HASH
		}
	}
	c = strings.Trim(unsafeName.ReplaceAllString(c, "_"), "._")
	if c == "" {
		c = "data"
	}
	return c
}

// stagedNames gives every training image a file name in the staged folder: its base name, or, where two
// images share a stem (the trainer keeps one image per stem), its whole ID with "/" replaced.
func stagedNames(ids []string) map[string]string {
	stem := func(id string) string {
		b := path.Base(id)
		return strings.ToLower(strings.TrimSuffix(b, path.Ext(b)))
	}
	count := map[string]int{}
	for _, id := range ids {
		count[stem(id)]++
	}
	out := make(map[string]string, len(ids))
	for _, id := range ids {
		name := path.Base(id)
		if count[stem(id)] > 1 {
			name = strings.ReplaceAll(id, "/", "__")
		}
		out[id] = unsafeName.ReplaceAllString(name, "_")
	}
	return out
}

// stage copies the training images (byte for byte, so the trainer's data fingerprint is that of the
// dataset's files) into RUN/data/CATEGORY/train/good, the MVTec layout models.train reads. It is
// idempotent: files already there with the right size are kept.
func stage(ds *dataset.Dataset, info protocol.TrainInfo, ids []string) error {
	dst := filepath.Join(stageDir(info.Dir), stageCategory(info), "train", "good")
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return fmt.Errorf("stage training images: %w", err)
	}
	names := stagedNames(ids)
	keep := map[string]bool{}
	for _, id := range ids {
		name := names[id]
		keep[name] = true
		if err := copyImage(ds, id, filepath.Join(dst, name)); err != nil {
			return fmt.Errorf("stage training image %s: %w", id, err)
		}
	}
	// A folder left by an earlier attempt may hold files this selection does not want.
	entries, err := os.ReadDir(dst)
	if err != nil {
		return fmt.Errorf("stage training images: %w", err)
	}
	for _, e := range entries {
		if !keep[e.Name()] {
			os.Remove(filepath.Join(dst, e.Name()))
		}
	}
	list := append([]string(nil), ids...)
	sort.Strings(list)
	return os.WriteFile(filepath.Join(info.Dir, "train_images.txt"), []byte(strings.Join(list, "\n")+"\n"), 0o644)
}

func copyImage(ds *dataset.Dataset, id, dst string) error {
	src, err := ds.Open(id)
	if err != nil {
		return err
	}
	defer src.Close()
	st, err := src.Stat()
	if err != nil {
		return err
	}
	if have, err := os.Stat(dst); err == nil && have.Size() == st.Size() {
		return nil
	}
	tmp := dst + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, src); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, dst)
}

// selectReal picks the defective images with masks that fine-tune the segmentation stage (TrainOptions
// RealMasks, RealImages), in index order.
func selectReal(imgs []protocol.ImageInfo, category string, o protocol.TrainOptions) ([]string, error) {
	if !o.RealMasks && len(o.RealImages) == 0 {
		return nil, nil
	}
	named := map[string]bool{}
	for _, id := range o.RealImages {
		named[id] = true
	}
	var out []string
	for _, im := range imgs {
		if category != "" && im.Category != category {
			if named[im.ID] {
				return nil, fmt.Errorf("real image %s is of category %s, not %s", im.ID, im.Category, category)
			}
			continue
		}
		want := named[im.ID] || (o.RealMasks && im.HasWorkspaceMask)
		delete(named, im.ID)
		if !want {
			continue
		}
		if im.Kind == protocol.KindGood || (!im.HasWorkspaceMask && im.MaskID == "") {
			if o.RealMasks && !contains(o.RealImages, im.ID) {
				continue // a cleared workspace mask: a good image
			}
			return nil, fmt.Errorf("real image %s has no defect mask (neither drawn in the workspace nor in the dataset)", im.ID)
		}
		out = append(out, im.ID)
	}
	for id := range named {
		return nil, fmt.Errorf("real image %q is not in this dataset", id)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("fine-tuning with real masks: no defective image of this dataset has a mask drawn in the workspace")
	}
	return out, nil
}

// realEntry is one line of the trainer's --real-list.
type realEntry struct {
	Image string `json:"image"`
	Mask  string `json:"mask"`
}

// stageReal writes the real defective images (copied byte for byte) and their masks (the workspace's
// newest version, else the dataset's ground truth, as 0/255 PNG) into RUN/real, and RUN/real.json.
func stageReal(ds *dataset.Dataset, st *store.Store, info protocol.TrainInfo, ids []string) error {
	dir := filepath.Join(info.Dir, "real")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("stage real images: %w", err)
	}
	var list []realEntry
	for i, id := range ids {
		img := filepath.Join(dir, fmt.Sprintf("%04d%s", i, strings.ToLower(path.Ext(id))))
		if err := copyImage(ds, id, img); err != nil {
			return fmt.Errorf("stage real image %s: %w", id, err)
		}
		var bin []bool
		var w, h int
		lm, _, err := st.Mask(info.Dataset, id, 0)
		switch {
		case err == nil:
			w, h = lm.W, lm.H
			bin = make([]bool, len(lm.Pix))
			for k, v := range lm.Pix {
				bin[k] = v != 0
			}
		case errors.Is(err, store.ErrNotFound):
			tr, err := ds.Truth(id)
			if err != nil {
				return fmt.Errorf("mask of real image %s: %w", id, err)
			}
			bin, w, h = tr.Mask, tr.W, tr.H
		default:
			return fmt.Errorf("mask of real image %s: %w", id, err)
		}
		if bin == nil {
			return fmt.Errorf("real image %s has no mask", id)
		}
		g := image.NewGray(image.Rect(0, 0, w, h))
		for k, on := range bin {
			if on {
				g.Pix[k] = 255
			}
		}
		mp := filepath.Join(dir, fmt.Sprintf("%04d_mask.png", i))
		var buf bytes.Buffer
		if err := png.Encode(&buf, g); err != nil {
			return err
		}
		if err := os.WriteFile(mp, buf.Bytes(), 0o644); err != nil {
			return err
		}
		list = append(list, realEntry{Image: img, Mask: mp})
	}
	raw, err := json.Marshal(list)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(info.Dir, "real.json"), raw, 0o644); err != nil {
		return err
	}
	return writeList(filepath.Join(info.Dir, "real_images.txt"), ids)
}
