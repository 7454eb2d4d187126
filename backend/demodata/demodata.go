//go:build !js

// Package demodata generates the bundled demo dataset: one MVTec AD-layout category "tiles" of brushed-metal
// surfaces with synthetic defects and their ground-truth masks, so the tool runs with no outside data.
//
// Contract: Generate(dir) writes dir/tiles/ with
//
//	train/good/000..059.png                 60 defect-free images
//	test/good/000..015.png                  16 defect-free images
//	test/{scratch,spot,crack}/000..007.png  8 defective images per kind
//	ground_truth/{scratch,spot,crack}/NNN_mask.png
//	manifest.json                           generator version, seed and SHA-256 of every file
//
// Images are 256x256 8-bit RGB PNG, masks 256x256 8-bit grey PNG holding only 0 and 255. A mask marks exactly
// the pixels its defect changed.
//
// Determinism: the pixels depend only on GeneratorVersion. The generator uses integer arithmetic only (its
// own splitmix64 generator, fixed-point noise, integer geometry), so no floating-point contraction (FMA on
// arm64, ppc64, s390x) or math-library difference can change a pixel between machines. The PNG bytes are
// also fixed for a given Go toolchain; a Go release that changes compress/flate could change the bytes (not
// the pixels), which is why the manifest also records a digest of the decoded pixels.
//
// Generate writes into a temporary sibling folder and renames it into place, so an interrupted run never
// leaves a half-written dataset behind a valid manifest. Ensure skips the work when a manifest of the same
// version is there and every file it lists still has its recorded digest.
package demodata

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/png"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"sync"
)

// GeneratorVersion changes whenever a pixel of the output would change.
const GeneratorVersion = 1

// Category is the name of the generated category folder.
const Category = "tiles"

// Size is the side of every image and mask.
const Size = 256

// Counts of the generated images.
const (
	TrainGood = 60
	TestGood  = 16
	PerDefect = 8
)

// Kinds are the defect types, in folder order.
var Kinds = []string{"scratch", "spot", "crack"}

// seed is the root of every random choice; changing it changes the dataset (bump GeneratorVersion).
const seed = 0x5eed_d1ce_2026

// ManifestName is the manifest file inside the category folder.
const ManifestName = "manifest.json"

// Manifest records what Generate wrote.
type Manifest struct {
	Generator string `json:"generator"`
	Version   int    `json:"version"`
	Seed      uint64 `json:"seed"`
	// Files maps slash-separated paths relative to the category folder to the SHA-256 of their bytes.
	Files map[string]string `json:"files"`
	// PixelDigest is the SHA-256 over every file's decoded pixels in path order; it is the same on every
	// machine and Go version.
	PixelDigest string `json:"pixelDigest"`
}

// Generate writes the demo category to dir/tiles, replacing whatever is there.
func Generate(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("demo dataset: create %s: %w", dir, err)
	}
	// Leftovers of an interrupted run are removed first; they are hidden from dataset indexing anyway.
	if old, err := filepath.Glob(filepath.Join(dir, "."+Category+".tmp-*")); err == nil {
		for _, o := range old {
			os.RemoveAll(o)
		}
	}
	tmp, err := os.MkdirTemp(dir, "."+Category+".tmp-")
	if err != nil {
		return fmt.Errorf("demo dataset: temp folder in %s: %w", dir, err)
	}
	defer os.RemoveAll(tmp) // no-op after the rename
	// MkdirTemp creates 0700; the dataset is ordinary readable data like the files in it.
	if err := os.Chmod(tmp, 0o755); err != nil {
		return fmt.Errorf("demo dataset: %w", err)
	}

	files, err := render()
	if err != nil {
		return err
	}
	man := Manifest{Generator: "rdre-studio demodata", Version: GeneratorVersion, Seed: seed, Files: map[string]string{}}
	for _, f := range files {
		p := filepath.Join(tmp, filepath.FromSlash(f.Path))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return fmt.Errorf("demo dataset: %w", err)
		}
		if err := os.WriteFile(p, f.Data, 0o644); err != nil {
			return fmt.Errorf("demo dataset: write %s: %w", f.Path, err)
		}
		sum := sha256.Sum256(f.Data)
		man.Files[f.Path] = hex.EncodeToString(sum[:])
	}
	man.PixelDigest, err = pixelDigest(files)
	if err != nil {
		return err
	}
	raw, err := json.MarshalIndent(man, "", "  ")
	if err != nil {
		return fmt.Errorf("demo dataset: encode manifest: %w", err)
	}
	if err := os.WriteFile(filepath.Join(tmp, ManifestName), append(raw, '\n'), 0o644); err != nil {
		return fmt.Errorf("demo dataset: write manifest: %w", err)
	}
	final := filepath.Join(dir, Category)
	if err := os.RemoveAll(final); err != nil {
		return fmt.Errorf("demo dataset: remove old %s: %w", final, err)
	}
	if err := os.Rename(tmp, final); err != nil {
		return fmt.Errorf("demo dataset: move into %s: %w", final, err)
	}
	return nil
}

// Ensure generates the dataset unless dir/tiles already holds a complete one of this version. It reports
// whether it generated.
func Ensure(dir string) (generated bool, err error) {
	if err := Verify(dir); err == nil {
		return false, nil
	}
	if err := Generate(dir); err != nil {
		return false, err
	}
	return true, nil
}

// ErrStale is wrapped by Verify when the folder holds no complete dataset of this generator version.
var ErrStale = errors.New("demo dataset missing or stale")

// Verify checks that dir/tiles holds a manifest of this version and that every listed file has its digest.
func Verify(dir string) error {
	cat := filepath.Join(dir, Category)
	raw, err := os.ReadFile(filepath.Join(cat, ManifestName))
	if err != nil {
		return fmt.Errorf("%w: %v", ErrStale, err)
	}
	var man Manifest
	if err := json.Unmarshal(raw, &man); err != nil {
		return fmt.Errorf("%w: manifest: %v", ErrStale, err)
	}
	if man.Version != GeneratorVersion {
		return fmt.Errorf("%w: manifest version %d, generator version %d", ErrStale, man.Version, GeneratorVersion)
	}
	want := TrainGood + TestGood + 2*PerDefect*len(Kinds)
	if len(man.Files) != want {
		return fmt.Errorf("%w: manifest lists %d files, want %d", ErrStale, len(man.Files), want)
	}
	root, err := os.OpenRoot(cat)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrStale, err)
	}
	defer root.Close()
	for p, sum := range man.Files {
		data, err := fs.ReadFile(root.FS(), p)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrStale, err)
		}
		got := sha256.Sum256(data)
		if hex.EncodeToString(got[:]) != sum {
			return fmt.Errorf("%w: %s changed", ErrStale, p)
		}
	}
	return nil
}

// render is Render; the tests substitute a cached result, since a render takes seconds under -race.
var render = Render

// File is one generated file.
type File struct {
	Path string // slash-separated, relative to the category folder
	Data []byte
}

// Render produces every file of the category in memory, sorted by path. Images are independent, so they
// are rendered in parallel; each one's pixels depend only on its own seed, never on scheduling.
func Render() ([]File, error) {
	type out struct {
		path string
		img  image.Image
	}
	// A job draws one image, or one defective image together with its mask.
	var jobs []func() []out
	for i := 0; i < TrainGood; i++ {
		jobs = append(jobs, func() []out {
			return []out{{fmt.Sprintf("train/good/%03d.png", i), surface(imageSeed("train/good", i)).rgb()}}
		})
	}
	for i := 0; i < TestGood; i++ {
		jobs = append(jobs, func() []out {
			return []out{{fmt.Sprintf("test/good/%03d.png", i), surface(imageSeed("test/good", i)).rgb()}}
		})
	}
	for _, kind := range Kinds {
		for i := 0; i < PerDefect; i++ {
			key := "test/" + kind
			jobs = append(jobs, func() []out {
				s := surface(imageSeed(key, i))
				m := defect(s, kind, newRNG(imageSeed(key+"/defect", i)))
				return []out{
					{fmt.Sprintf("test/%s/%03d.png", kind, i), s.rgb()},
					{fmt.Sprintf("ground_truth/%s/%03d_mask.png", kind, i), m},
				}
			})
		}
	}
	results := make([][]File, len(jobs))
	errs := make([]error, len(jobs))
	next := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < max(1, runtime.GOMAXPROCS(0)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// BestSpeed: noisy textures compress little anyway, and encoding dominates the time.
			enc := png.Encoder{CompressionLevel: png.BestSpeed}
			for k := range next {
				for _, o := range jobs[k]() {
					var buf bytes.Buffer
					if err := enc.Encode(&buf, o.img); err != nil {
						errs[k] = fmt.Errorf("demo dataset: encode %s: %w", o.path, err)
					}
					results[k] = append(results[k], File{Path: o.path, Data: buf.Bytes()})
				}
			}
		}()
	}
	for k := range jobs {
		next <- k
	}
	close(next)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	var files []File
	for _, r := range results {
		files = append(files, r...)
	}
	sort.Slice(files, func(a, b int) bool { return files[a].Path < files[b].Path })
	return files, nil
}

// pixelDigest hashes the decoded pixels of files (in their order), independent of PNG compression.
func pixelDigest(files []File) (string, error) {
	h := sha256.New()
	for _, f := range files {
		img, err := png.Decode(bytes.NewReader(f.Data))
		if err != nil {
			return "", fmt.Errorf("demo dataset: decode %s: %w", f.Path, err)
		}
		h.Write([]byte(path.Clean(f.Path)))
		switch m := img.(type) {
		case *image.RGBA:
			h.Write(m.Pix)
		case *image.Gray:
			h.Write(m.Pix)
		default:
			return "", fmt.Errorf("demo dataset: %s decoded as %T", f.Path, img)
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// PixelDigest returns the pixel digest of a rendered file set.
func PixelDigest(files []File) (string, error) { return pixelDigest(files) }

// imageSeed derives an independent seed per image from its folder and index (FNV-1a over the key).
func imageSeed(key string, i int) uint64 {
	h := uint64(14695981039346656037)
	for _, c := range []byte(key) {
		h ^= uint64(c)
		h *= 1099511628211
	}
	return mix(h ^ mix(seed+uint64(i)))
}
