//go:build !js

package mapio

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"

	"github.com/rdre-studio/studio/backend/dataset"
	"github.com/rdre-studio/studio/backend/metrics"
	"github.com/rdre-studio/studio/shared/protocol"
)

// mapExts are tried in this order for the map of a test image.
var mapExts = []string{".npy", ".tiff", ".tif"}

// EvalOptions tune LoadEval. The zero value reads the test split of a detected layout.
type EvalOptions struct {
	Layout string // forces the dataset layout (dataset.LayoutNames); "" detects it
	Split  string // the split to evaluate; "" is test
}

// LoadEval loads an evaluation set: gtRoot is a dataset of any layout package dataset reads, mapsRoot holds
// one map per image of the split, named by the image's key (KIND/STEM.npy, .tiff or .tif; CATEGORY/KIND/STEM
// in a dataset of several categories), as `rdre infer` writes them. scoresPath, when not empty, is a JSON
// object {"KEY": score} giving every image's score. Labels: good is 0, any other kind 1; unlabelled images
// (MVTec AD 2's private splits) are refused. float64 maps keep their precision (metrics.Image.Map64).
//
// The warnings name every file that is doubtful or left out: the dataset's index warnings, images of a
// defect kind without a mask, empty masks, masks of no known encoding, maps that belong to no image. Every
// error names the file it is about.
func LoadEval(mapsRoot, gtRoot, scoresPath string, opt EvalOptions) ([]metrics.Image, []string, error) {
	ds, err := dataset.OpenWith(gtRoot, dataset.Options{Layout: opt.Layout})
	if err != nil {
		return nil, nil, fmt.Errorf("load ground truth: %w", err)
	}
	defer ds.Close()
	split := opt.Split
	if split == "" {
		split = protocol.SplitTest
	}
	var infos []protocol.ImageInfo
	for _, im := range ds.Images() {
		if im.Split != split {
			continue
		}
		if im.Kind == protocol.KindUnlabelled {
			return nil, nil, fmt.Errorf("load ground truth: image %s of split %s has no label; only labelled splits can be evaluated", im.ID, split)
		}
		infos = append(infos, im)
	}
	if len(infos) == 0 {
		return nil, nil, fmt.Errorf("load ground truth: no %s images in %s (%s layout; splits found: %s)", split, gtRoot, ds.Info().Layout, strings.Join(ds.Info().Splits, ", "))
	}
	images := make([]metrics.Image, len(infos))
	for i, im := range infos {
		images[i] = metrics.Image{Key: im.Key, Kind: im.Kind}
		if im.Kind != protocol.KindGood {
			images[i].Label = 1
		}
	}
	if scoresPath != "" {
		if err := loadScores(scoresPath, images); err != nil {
			return nil, nil, err
		}
	}

	// Maps and masks are decoded on all cores; each image writes only its own slot.
	errs := make([]error, len(images))
	warns := make([][]string, len(images))
	var wg sync.WaitGroup
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	for i := range images {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			warns[i], errs[i] = loadOne(ds, mapsRoot, infos[i], &images[i])
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, nil, err
	}
	warnings := ds.Info().Warnings
	for _, w := range warns {
		warnings = append(warnings, w...)
	}
	extra, err := extraMaps(mapsRoot, images)
	if err != nil {
		return nil, nil, err
	}
	return images, append(warnings, extra...), nil
}

func loadOne(ds *dataset.Dataset, mapsRoot string, im protocol.ImageInfo, img *metrics.Image) ([]string, error) {
	var mpath string
	for _, ext := range mapExts {
		p := filepath.Join(mapsRoot, filepath.FromSlash(img.Key)+ext)
		if _, err := os.Stat(p); err == nil {
			mpath = p
			break
		}
	}
	if mpath == "" {
		return nil, fmt.Errorf("image %s (%s): no map %s.{npy,tiff,tif}", img.Key, im.ID, filepath.Join(mapsRoot, filepath.FromSlash(img.Key)))
	}
	m, err := ReadFile(mpath)
	if err != nil {
		return nil, err
	}
	if err := m.CheckFinite(); err != nil {
		return nil, fmt.Errorf("map %s: %w", mpath, err)
	}
	if m.W != im.Width || m.H != im.Height {
		return nil, fmt.Errorf("map %s is %dx%d but its image %s is %dx%d", mpath, m.W, m.H, im.ID, im.Width, im.Height)
	}
	img.W, img.H = m.W, m.H
	if m.Data64 != nil {
		img.Map64 = m.Data64
	} else {
		img.Map = m.Data
	}
	t, err := ds.Truth(im.ID)
	if err != nil {
		return nil, err
	}
	img.Mask = t.Mask
	return t.Warnings, nil
}

func loadScores(path string, images []metrics.Image) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("load scores: %w", err)
	}
	var scores map[string]float64
	if err := json.Unmarshal(raw, &scores); err != nil {
		return fmt.Errorf("load scores %s: want a JSON object {\"KIND/NNN\": score}: %w", path, err)
	}
	used := 0
	for i := range images {
		s, ok := scores[images[i].Key]
		if !ok {
			return fmt.Errorf("load scores %s: no score for image %s", path, images[i].Key)
		}
		if math.IsNaN(s) || math.IsInf(s, 0) {
			return fmt.Errorf("load scores %s: score of %s is not finite", path, images[i].Key)
		}
		images[i].Score = &s
		used++
	}
	if used != len(scores) {
		var extra []string
		for k := range scores {
			if !slices.ContainsFunc(images, func(im metrics.Image) bool { return im.Key == k }) {
				extra = append(extra, k)
			}
		}
		slices.Sort(extra)
		return fmt.Errorf("load scores %s: scores for images not in the test set: %s", path, strings.Join(extra, ", "))
	}
	return nil
}

// extraMaps lists maps under mapsRoot that belong to no test image.
func extraMaps(mapsRoot string, images []metrics.Image) ([]string, error) {
	keys := map[string]bool{}
	for _, im := range images {
		keys[im.Key] = true
	}
	var out []string
	err := filepath.WalkDir(mapsRoot, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		ext := strings.ToLower(filepath.Ext(p))
		if d.IsDir() || !slices.Contains(mapExts, ext) {
			return nil
		}
		rel, err := filepath.Rel(mapsRoot, p)
		if err != nil {
			return err
		}
		k := strings.TrimSuffix(filepath.ToSlash(rel), filepath.Ext(rel))
		if !keys[k] {
			out = append(out, fmt.Sprintf("map %s has no test image; ignored", p))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list maps: %w", err)
	}
	return out, nil
}
