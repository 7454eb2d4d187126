//go:build !js

package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	"io/fs"
	"math"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"

	"github.com/rdre-studio/studio/backend/dataset"
	"github.com/rdre-studio/studio/backend/metrics"
	"github.com/rdre-studio/studio/shared/protocol"
)

// locoDefect is one entry of MVTec LOCO AD's defects_config.json (one per defect type of a category):
// the pixel value its mask files use and the saturation threshold of sPRO, absolute (pixels) or relative
// (a share of the region's area).
type locoDefect struct {
	Name       string  `json:"defect_name"`
	PixelValue int     `json:"pixel_value"`
	Saturation float64 `json:"saturation_threshold"`
	Relative   bool    `json:"relative_saturation"`
}

// locoSaturation is a region's saturation area as the LOCO evaluation code computes it: relative, the
// threshold times the area truncated to an integer; absolute, the threshold capped at the area.
func locoSaturation(d locoDefect, area int64) int64 {
	if d.Relative {
		return int64(d.Saturation * float64(area))
	}
	return min(int64(math.Floor(d.Saturation)), area)
}

// locoRegions gives the defect images of a MVTec LOCO AD evaluation their saturation regions: each mask
// file of an image is one region (connected or not), and its saturation comes from the category's
// defects_config.json, found by the mask's pixel value. Every doubt (no config, a value the config does
// not list, a file with several values, an empty file) is a warning; such a region saturates at its full
// area (plain overlap).
type locoRegions struct {
	ds      *dataset.Dataset
	mu      sync.Mutex
	configs map[string]map[int]locoDefect
	warned  map[string]bool
}

func newLOCORegions(ds *dataset.Dataset) *locoRegions {
	if !strings.Contains(ds.Info().Layout, protocol.LayoutLOCO) {
		return nil
	}
	return &locoRegions{ds: ds, configs: map[string]map[int]locoDefect{}, warned: map[string]bool{}}
}

// config returns the defects config of a category folder; the second result is a warning the first time
// it is missing.
func (l *locoRegions) config(catDir string) (map[int]locoDefect, string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if cfg, ok := l.configs[catDir]; ok {
		return cfg, "", nil
	}
	cfg, w, err := readDefectsConfig(l.ds.Info().Root, catDir)
	if err != nil {
		return nil, "", err
	}
	l.configs[catDir] = cfg
	return cfg, w, nil
}

// attach adds the saturation regions of image im (with ground truth t) to img; the warnings name the files.
func (l *locoRegions) attach(im protocol.ImageInfo, t dataset.Truth, img *metrics.Image) (imageWarn, catWarn []string, err error) {
	if l == nil || img.Mask == nil || len(t.Files) == 0 {
		return nil, nil, nil
	}
	catDir := locoCategoryDir(im.ID)
	cfg, w, err := l.config(catDir)
	if err != nil {
		return nil, nil, err
	}
	if w != "" {
		catWarn = append(catWarn, w)
	}
	for j, f := range t.Files {
		part := t.Mask
		if t.Parts != nil {
			part = t.Parts[j]
		}
		var area int64
		for _, v := range part {
			if v {
				area++
			}
		}
		if area == 0 {
			imageWarn = append(imageWarn, fmt.Sprintf("sPRO: mask %s is empty; it is not a region", f))
			continue
		}
		values, err := maskValues(l.ds, f, part)
		if err != nil {
			return nil, nil, err
		}
		sr := metrics.SatRegion{Mask: part, Saturation: area, Name: fmt.Sprint(values)}
		switch {
		case len(values) != 1:
			imageWarn = append(imageWarn, fmt.Sprintf("sPRO: mask %s holds the pixel values %v, not one: it saturates at its full area", f, values))
		case cfg == nil:
			// the missing config is the category's warning
		default:
			d, ok := cfg[values[0]]
			if !ok {
				imageWarn = append(imageWarn, fmt.Sprintf("sPRO: mask %s has the pixel value %d, which %s does not list: it saturates at its full area", f, values[0], path.Join(catDir, "defects_config.json")))
			} else {
				sr.Saturation, sr.Name = locoSaturation(d, area), d.Name
			}
		}
		img.SatRegions = append(img.SatRegions, sr)
	}
	return imageWarn, catWarn, nil
}

// locoCategoryDir is the category folder of a LOCO test image id ("[CAT/]test/KIND/NNN.png").
func locoCategoryDir(id string) string {
	d := path.Dir(path.Dir(path.Dir(id)))
	if d == "." {
		return ""
	}
	return d
}

// readDefectsConfig reads CATDIR/defects_config.json by pixel value; nil with a warning when absent.
func readDefectsConfig(root, catDir string) (map[int]locoDefect, string, error) {
	p := filepath.Join(root, filepath.FromSlash(catDir), "defects_config.json")
	raw, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Sprintf("sPRO: %s is missing: every region saturates at its full area (plain per-file overlap)", p), nil
	}
	if err != nil {
		return nil, "", err
	}
	var list []locoDefect
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, "", fmt.Errorf("%s: want a list of {defect_name, pixel_value, saturation_threshold, relative_saturation}: %w", p, err)
	}
	out := map[int]locoDefect{}
	for _, d := range list {
		if d.PixelValue < 1 || d.PixelValue > 65535 {
			return nil, "", fmt.Errorf("%s: defect %q has pixel value %d", p, d.Name, d.PixelValue)
		}
		if math.IsNaN(d.Saturation) || math.IsInf(d.Saturation, 0) || d.Saturation <= 0 || (d.Relative && d.Saturation > 1) {
			return nil, "", fmt.Errorf("%s: defect %q has saturation threshold %v (relative %v)", p, d.Name, d.Saturation, d.Relative)
		}
		if _, dup := out[d.PixelValue]; dup {
			return nil, "", fmt.Errorf("%s: pixel value %d is listed twice", p, d.PixelValue)
		}
		out[d.PixelValue] = d
	}
	return out, "", nil
}

// maskValues returns the distinct stored values of mask file f at the pixels of part (grey level,
// palette index, or the grey of a colour), ascending.
func maskValues(ds *dataset.Dataset, f string, part []bool) ([]int, error) {
	img, err := ds.Decode(f)
	if err != nil {
		return nil, err
	}
	b := img.Bounds()
	w := b.Dx()
	seen := map[int]bool{}
	for i, in := range part {
		if !in {
			continue
		}
		x, y := b.Min.X+i%w, b.Min.Y+i/w
		var v int
		switch m := img.(type) {
		case *image.Gray:
			v = int(m.GrayAt(x, y).Y)
		case *image.Gray16:
			v = int(m.Gray16At(x, y).Y)
		case *image.Paletted:
			v = int(m.ColorIndexAt(x, y))
		default:
			v = int(color.GrayModel.Convert(img.At(x, y)).(color.Gray).Y)
		}
		seen[v] = true
	}
	var out []int
	for v := range seen {
		out = append(out, v)
	}
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j] < out[j-1]; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out, nil
}
