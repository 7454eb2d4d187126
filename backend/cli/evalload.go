//go:build !js

package cli

import (
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/rdre-studio/studio/backend/dataset"
	"github.com/rdre-studio/studio/backend/mapio"
	"github.com/rdre-studio/studio/backend/metrics"
	"github.com/rdre-studio/studio/shared/protocol"
)

// evalSource is the evaluation set of `rdre eval`, read one image at a time: the split's images (or one
// shard of them), their maps and their ground truth, by the rules of mapio.LoadEval (same files, same
// labels, same errors and warnings), so that a map is in memory only while it is counted. Warnings are
// notes (metrics.Note) ordered as LoadEval orders them: the dataset's own, then each image's in id order,
// then the maps that belong to no image.
type evalSource struct {
	ds     *dataset.Dataset
	maps   string
	infos  []protocol.ImageInfo // evaluated images, in id order
	scores map[string]float64
	loco   *locoRegions
	notes  []metrics.Note
}

// shardSpec selects part I of N of the split's images (contiguous in key order); N = 0 is all.
type shardSpec struct{ i, n int }

func parseShard(s string) (shardSpec, error) {
	var sp shardSpec
	if _, err := fmt.Sscanf(s, "%d/%d", &sp.i, &sp.n); err != nil || sp.n < 1 || sp.i < 0 || sp.i >= sp.n || fmt.Sprintf("%d/%d", sp.i, sp.n) != s {
		return sp, fmt.Errorf("--shard %q: want I/N with 0 <= I < N", s)
	}
	return sp, nil
}

func openEvalSource(mapsRoot, gtRoot, scoresPath, layout, split string, shard shardSpec) (*evalSource, error) {
	ds, err := dataset.OpenWith(gtRoot, dataset.Options{Layout: layout})
	if err != nil {
		return nil, fmt.Errorf("load ground truth: %w", err)
	}
	e := &evalSource{ds: ds, maps: mapsRoot, loco: newLOCORegions(ds)}
	var all []protocol.ImageInfo
	for _, im := range ds.Images() {
		if im.Split != split {
			continue
		}
		if im.Kind == protocol.KindUnlabelled {
			ds.Close()
			return nil, fmt.Errorf("load ground truth: image %s of split %s has no label; only labelled splits can be evaluated", im.ID, split)
		}
		all = append(all, im)
	}
	if len(all) == 0 {
		ds.Close()
		return nil, fmt.Errorf("load ground truth: no %s images in %s (%s layout; splits found: %s)", split, gtRoot, ds.Info().Layout, strings.Join(ds.Info().Splits, ", "))
	}
	keys := map[string]bool{}
	for _, im := range all {
		keys[im.Key] = true
	}
	e.infos = all
	if shard.n > 0 {
		byKey := slices.Clone(all)
		slices.SortFunc(byKey, func(a, b protocol.ImageInfo) int { return strings.Compare(a.Key, b.Key) })
		lo, hi := shard.i*len(byKey)/shard.n, (shard.i+1)*len(byKey)/shard.n
		in := map[string]bool{}
		for _, im := range byKey[lo:hi] {
			in[im.ID] = true
		}
		e.infos = nil
		for _, im := range all {
			if in[im.ID] {
				e.infos = append(e.infos, im)
			}
		}
		if len(e.infos) == 0 {
			ds.Close()
			return nil, fmt.Errorf("--shard %d/%d of %d images is empty", shard.i, shard.n, len(all))
		}
	}
	if scoresPath != "" {
		s, err := readScores(scoresPath)
		if err != nil {
			ds.Close()
			return nil, fmt.Errorf("load scores: %w", err)
		}
		for _, im := range e.infos {
			v, ok := s[im.Key]
			if !ok {
				ds.Close()
				return nil, fmt.Errorf("load scores %s: no score for image %s", scoresPath, im.Key)
			}
			if math.IsNaN(v) || math.IsInf(v, 0) {
				ds.Close()
				return nil, fmt.Errorf("load scores %s: score of %s is not finite", scoresPath, im.Key)
			}
		}
		var extra []string
		for k := range s {
			if !keys[k] {
				extra = append(extra, k)
			}
		}
		if len(extra) > 0 {
			slices.Sort(extra)
			ds.Close()
			return nil, fmt.Errorf("load scores %s: scores for images not in the test set: %s", scoresPath, strings.Join(extra, ", "))
		}
		e.scores = s
	}
	for i, w := range ds.Info().Warnings {
		e.notes = append(e.notes, metrics.Note{Order: fmt.Sprintf("0/%08d", i), Text: w})
	}
	// Maps that belong to no image of the split (whatever the shard).
	err = filepath.WalkDir(mapsRoot, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		ext := strings.ToLower(filepath.Ext(p))
		if d.IsDir() || !slices.Contains(mapFileExts, ext) {
			return nil
		}
		rel, err := filepath.Rel(mapsRoot, p)
		if err != nil {
			return err
		}
		if k := strings.TrimSuffix(filepath.ToSlash(rel), filepath.Ext(rel)); !keys[k] {
			e.notes = append(e.notes, metrics.Note{Order: "2/" + p, Text: fmt.Sprintf("map %s has no test image; ignored", p)})
		}
		return nil
	})
	if err != nil {
		ds.Close()
		return nil, fmt.Errorf("list maps: %w", err)
	}
	return e, nil
}

func (e *evalSource) Close() { e.ds.Close() }

// load reads image i: its map, ground truth and (LOCO) saturation regions, and its notes.
func (e *evalSource) load(i int) (metrics.Image, []metrics.Note, error) { return e.read(i, true) }

// read reads image i; without truth only its map (for the later reads of a streamed evaluation).
func (e *evalSource) read(i int, truth bool) (metrics.Image, []metrics.Note, error) {
	im := e.infos[i]
	img := metrics.Image{Key: im.Key, Kind: im.Kind}
	if im.Kind != protocol.KindGood {
		img.Label = 1
	}
	if e.scores != nil {
		s := e.scores[im.Key]
		img.Score = &s
	}
	var mpath string
	for _, ext := range mapFileExts {
		p := filepath.Join(e.maps, filepath.FromSlash(im.Key)+ext)
		if _, err := os.Stat(p); err == nil {
			mpath = p
			break
		}
	}
	if mpath == "" {
		return img, nil, fmt.Errorf("image %s (%s): no map %s.{npy,tiff,tif}", im.Key, im.ID, filepath.Join(e.maps, filepath.FromSlash(im.Key)))
	}
	m, err := mapio.ReadFile(mpath)
	if err != nil {
		return img, nil, err
	}
	if truth { // a later read is checked against the first one's checksum instead
		if err := m.CheckFinite(); err != nil {
			return img, nil, fmt.Errorf("map %s: %w", mpath, err)
		}
	}
	if m.W != im.Width || m.H != im.Height {
		return img, nil, fmt.Errorf("map %s is %dx%d but its image %s is %dx%d", mpath, m.W, m.H, im.ID, im.Width, im.Height)
	}
	img.W, img.H = m.W, m.H
	if m.Data64 != nil {
		img.Map64 = m.Data64
	} else {
		img.Map = m.Data
	}
	if !truth {
		return img, nil, nil
	}
	t, err := e.ds.Truth(im.ID)
	if err != nil {
		return img, nil, err
	}
	img.Mask = t.Mask
	var notes []metrics.Note
	for j, w := range t.Warnings {
		notes = append(notes, metrics.Note{Order: fmt.Sprintf("1/%s/a%04d", im.ID, j), Text: w})
	}
	iw, cw, err := e.loco.attach(im, t, &img)
	if err != nil {
		return img, nil, err
	}
	for j, w := range iw {
		notes = append(notes, metrics.Note{Order: fmt.Sprintf("1/%s/s%04d", im.ID, j), Text: w})
	}
	for _, w := range cw {
		notes = append(notes, metrics.Note{Order: "0/sPRO/" + locoCategoryDir(im.ID), Text: w})
	}
	return img, notes, nil
}
