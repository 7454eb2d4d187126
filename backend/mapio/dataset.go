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

	"github.com/rdre-studio/studio/backend/imageio"
	"github.com/rdre-studio/studio/backend/metrics"
)

// GoodKind is the test folder of defect-free images.
const GoodKind = "good"

// mapExts are tried in this order for the map of a test image.
var mapExts = []string{".npy", ".tiff", ".tif"}

// LoadEval loads an evaluation set in MVTec AD layout: gtRoot is a category root (test/KIND/NNN.png,
// ground_truth/KIND/NNN_mask.png, a missing mask meaning all normal), mapsRoot mirrors test/ with one map
// per test image (KIND/NNN.npy, .tiff or .tif). scoresPath, when not empty, is a JSON object
// {"KIND/NNN": score} giving every image's score. Labels come from the folder: good is 0, any other 1.
// Every error names the file it is about; maps with no test image are reported as warnings.
func LoadEval(mapsRoot, gtRoot, scoresPath string) ([]metrics.Image, []string, error) {
	testDir := filepath.Join(gtRoot, "test")
	kinds, err := os.ReadDir(testDir)
	if err != nil {
		return nil, nil, fmt.Errorf("load ground truth: %w", err)
	}
	var images []metrics.Image
	testPath := map[string]string{} // key -> test image, whose size a map must have when there is no mask
	for _, k := range kinds {
		if !k.IsDir() {
			continue
		}
		files, err := os.ReadDir(filepath.Join(testDir, k.Name()))
		if err != nil {
			return nil, nil, fmt.Errorf("load ground truth: %w", err)
		}
		for _, f := range files {
			if f.IsDir() || !imageio.IsImageName(f.Name()) {
				continue
			}
			stem := strings.TrimSuffix(f.Name(), filepath.Ext(f.Name()))
			label := 1
			if k.Name() == GoodKind {
				label = 0
			}
			key := k.Name() + "/" + stem
			if _, dup := testPath[key]; dup {
				return nil, nil, fmt.Errorf("load ground truth: two test images for %s in %s", key, filepath.Join(testDir, k.Name()))
			}
			testPath[key] = filepath.Join(testDir, k.Name(), f.Name())
			images = append(images, metrics.Image{Key: key, Kind: k.Name(), Label: label})
		}
	}
	if len(images) == 0 {
		return nil, nil, fmt.Errorf("load ground truth: no test images under %s", testDir)
	}
	slices.SortFunc(images, func(a, b metrics.Image) int { return strings.Compare(a.Key, b.Key) })

	if scoresPath != "" {
		if err := loadScores(scoresPath, images); err != nil {
			return nil, nil, err
		}
	}

	// Maps and masks are decoded on all cores; each image writes only its own slot.
	errs := make([]error, len(images))
	var wg sync.WaitGroup
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	for i := range images {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			errs[i] = loadOne(mapsRoot, gtRoot, testPath[images[i].Key], &images[i])
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, nil, err
	}
	warnings, err := extraMaps(mapsRoot, images)
	if err != nil {
		return nil, nil, err
	}
	return images, warnings, nil
}

func loadOne(mapsRoot, gtRoot, testImage string, img *metrics.Image) error {
	var mpath string
	for _, ext := range mapExts {
		p := filepath.Join(mapsRoot, filepath.FromSlash(img.Key)+ext)
		if _, err := os.Stat(p); err == nil {
			mpath = p
			break
		}
	}
	if mpath == "" {
		return fmt.Errorf("image %s: no map %s.{npy,tiff,tif}", img.Key, filepath.Join(mapsRoot, filepath.FromSlash(img.Key)))
	}
	m, err := ReadFile(mpath)
	if err != nil {
		return err
	}
	if err := m.CheckFinite(); err != nil {
		return fmt.Errorf("map %s: %w", mpath, err)
	}
	img.W, img.H, img.Map = m.W, m.H, m.Data
	kind, stem, _ := strings.Cut(img.Key, "/")
	for _, ext := range []string{".png", ".bmp", ".tif", ".tiff", ".jpg", ".jpeg"} {
		p := filepath.Join(gtRoot, "ground_truth", kind, stem+"_mask"+ext)
		if _, err := os.Stat(p); err != nil {
			continue
		}
		mask, w, h, err := ReadMaskFile(p)
		if err != nil {
			return err
		}
		if w != m.W || h != m.H {
			return fmt.Errorf("map %s is %dx%d but its mask %s is %dx%d", mpath, m.W, m.H, p, w, h)
		}
		img.Mask = mask
		return nil
	}
	// No mask: all normal, at the size of the test image (only its header is read).
	f, err := os.Open(testImage)
	if err != nil {
		return fmt.Errorf("image %s: %w", img.Key, err)
	}
	defer f.Close()
	cfg, _, err := imageio.DecodeConfig(f)
	if err != nil {
		return fmt.Errorf("test image %s: %w", testImage, err)
	}
	if cfg.Width != m.W || cfg.Height != m.H {
		return fmt.Errorf("map %s is %dx%d but its test image %s is %dx%d (and it has no mask)", mpath, m.W, m.H, testImage, cfg.Width, cfg.Height)
	}
	return nil
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
