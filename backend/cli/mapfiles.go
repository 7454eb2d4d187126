//go:build !js

package cli

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"

	"github.com/rdre-studio/studio/backend/mapio"
	"github.com/rdre-studio/studio/shared/protocol"
)

// mapFileExts are tried in this order for the map of an image, as eval does.
var mapFileExts = []string{".npy", ".tiff", ".tif"}

// findMap returns the map file of an image under dir: DIR/KEY.ext, or DIR/SPLIT/KEY.ext (one `rdre
// infer --out DIR/SPLIT` per split).
func findMap(dir, split, key string) (string, error) {
	for _, base := range []string{filepath.Join(dir, filepath.FromSlash(key)), filepath.Join(dir, split, filepath.FromSlash(key))} {
		for _, ext := range mapFileExts {
			if st, err := os.Stat(base + ext); err == nil && st.Mode().IsRegular() {
				return base + ext, nil
			}
		}
	}
	return "", fmt.Errorf("no map for image %s of split %s: looked for %s.{npy,tiff,tif} and %s.{npy,tiff,tif}", key, split,
		filepath.Join(dir, filepath.FromSlash(key)), filepath.Join(dir, split, filepath.FromSlash(key)))
}

// readMapOf reads the map of image im (its size must be the image's) and checks that it is finite.
func readMapOf(dir string, im protocol.ImageInfo) (mapio.Map, string, error) {
	p, err := findMap(dir, im.Split, im.Key)
	if err != nil {
		return mapio.Map{}, "", err
	}
	m, err := mapio.ReadFile(p)
	if err != nil {
		return mapio.Map{}, p, err
	}
	if err := m.CheckFinite(); err != nil {
		return mapio.Map{}, p, fmt.Errorf("map %s: %w", p, err)
	}
	if im.Width != 0 && (m.W != im.Width || m.H != im.Height) {
		return mapio.Map{}, p, fmt.Errorf("map %s is %dx%d but its image %s is %dx%d", p, m.W, m.H, im.ID, im.Width, im.Height)
	}
	return m, p, nil
}

// mapMax is the largest value of a map.
func mapMax(m mapio.Map) float64 {
	mx := math.Inf(-1)
	if m.Data64 != nil {
		for _, v := range m.Data64 {
			mx = max(mx, v)
		}
		return mx
	}
	for _, v := range m.Data {
		mx = max(mx, float64(v))
	}
	return mx
}

// readScores reads a JSON object {"KEY": score}.
func readScores(path string) (map[string]float64, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read scores: %w", err)
	}
	var s map[string]float64
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, fmt.Errorf("read scores %s: want a JSON object {\"KIND/STEM\": score}: %w", path, err)
	}
	return s, nil
}
