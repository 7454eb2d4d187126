//go:build !js

// Package dataset is the one reader of dataset folders: it detects the layout, indexes images, labels and
// ground-truth masks, decodes masks by one rule and serves the files, never anything outside the root.
// Every command that takes a dataset (serve, infer, eval, import, export, report) goes through it, so they
// all see the same image list, labels and masks. docs/datasets.md is the user's description of the same
// rules; the Python trainer (models/rdre/data.py) follows them for the training images.
//
// Layouts (see Layouts for the folder patterns; detected in this order, forced with Options.Layout):
// visa (split_csv/1cls.csv), a category root (mvtec2 when it has test_public/, mvtec3d when it has
// */good/rgb or test/*/rgb, loco when a ground-truth kind folder holds folders, btad when it has train/ok or
// test/ok, else mvtec, which MPDD shares), a folder of such categories, images+masks (CLASS/Imgs), plain
// (good/ beside defect folders).
//
// Names starting with "." are skipped everywhere (version-control folders, macOS "._x.png" files,
// temporary folders). Image extensions match in any letter case. A mask is STEM_mask.EXT or STEM.EXT.
//
// Image and mask ids are slash-separated paths relative to the root. Index order is sorted by id, so
// Images() is the same on every run. Each image has a Key ("KIND/STEM", or "CATEGORY/KIND/STEM" in a
// dataset of several categories), unique within its split: the name of its map for infer and eval.
// Masks are decoded by imageio.DecodeMask (non-zero is a defect for lossless masks; see docs/datasets.md).
//
// Nothing is left out silently: every file the index skips or cannot pair is a warning in Info().Warnings,
// and every doubt about a mask's content is a warning of Truth.
//
// Confinement: the root is opened as an os.Root and every file access goes through it, so ".." components,
// absolute paths and symlinks that resolve outside the root fail in the kernel-backed lookup, not in a
// string check. On top of that only indexed ids are served at all: Open, Decode, GroundTruth and Thumbnail
// refuse any other id with an error wrapping ErrNotFound, and ids that try to leave the root with one
// wrapping ErrOutsideRoot. Symlinks inside the root that resolve inside it are followed; those that
// point outside are left out of the index (a warning).
//
// A Dataset is safe for concurrent use; the index is immutable after Open.
package dataset

import (
	"bytes"
	"container/list"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"image"
	"image/jpeg"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"

	"github.com/rdre-studio/studio/backend/imageio"
	"github.com/rdre-studio/studio/shared/protocol"
)

// ErrNotFound is wrapped when an id is not an indexed image or mask.
var ErrNotFound = errors.New("not in the dataset")

// ErrOutsideRoot is wrapped when an id or a symlink would leave the dataset root.
var ErrOutsideRoot = errors.New("path leaves the dataset root")

// Thumbnail sizes outside this range are refused; thumbnails are encoded as JPEG.
const (
	MinThumbnail = 16
	MaxThumbnail = 1024
)

// thumbCacheBytes bounds the thumbnail cache (about 4000 thumbnails of 256 px).
const thumbCacheBytes = 64 << 20

// Dataset is one indexed dataset folder.
type Dataset struct {
	root   *os.Root
	info   protocol.DatasetInfo
	images []protocol.ImageInfo
	byID   map[string]int      // image id -> index in images
	masks  map[string]bool     // indexed mask ids
	maskOf map[string][]string // image id -> its mask files (several for MVTec LOCO)

	// thumbs caches thumbnails. The full-size images they are made from are bounded by imageio's decode
	// budget (in bytes, shared with every other decode), so a grid of 500 tiles requested at once cannot
	// hold 500 decoded images in memory.
	thumbs *lru
}

// Options tune Open. The zero value detects the layout.
type Options struct {
	// Layout forces a layout by name (one of LayoutNames); "" detects it.
	Layout string
}

// Open indexes the dataset at root, detecting its layout.
func Open(root string) (*Dataset, error) { return OpenWith(root, Options{}) }

// OpenWith indexes the dataset at root with options.
func OpenWith(root string, opt Options) (*Dataset, error) {
	if opt.Layout != "" && layoutByName(opt.Layout) == nil {
		return nil, fmt.Errorf("dataset %s: unknown layout %q (want one of %s)", root, opt.Layout, strings.Join(LayoutNames(), ", "))
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("dataset %s: %w", root, err)
	}
	r, err := os.OpenRoot(abs)
	if err != nil {
		return nil, fmt.Errorf("open dataset %s: %w", abs, err)
	}
	d := &Dataset{
		root:   r,
		byID:   map[string]int{},
		masks:  map[string]bool{},
		maskOf: map[string][]string{},
		thumbs: newLRU(thumbCacheBytes),
	}
	name := filepath.Base(abs)
	d.info = protocol.DatasetInfo{ID: ID(abs), Name: name, Root: abs}
	if err := d.index(name, opt.Layout); err != nil {
		r.Close()
		return nil, fmt.Errorf("index dataset %s: %w", abs, err)
	}
	return d, nil
}

// Reopen opens a dataset registered earlier with the layout it was indexed with, so a forced layout
// still holds when a report or an export reopens it.
func Reopen(info protocol.DatasetInfo) (*Dataset, error) {
	var opt Options
	if layoutByName(info.Layout) != nil {
		opt.Layout = info.Layout
	}
	return OpenWith(info.Root, opt)
}

// ID is the dataset id of an absolute root: a slug of its base name and 8 hex digits of the SHA-256 of
// the path, so the same folder always gets the same id and two folders of the same name do not collide.
func ID(absRoot string) string {
	sum := sha256.Sum256([]byte(absRoot))
	return slug(filepath.Base(absRoot)) + "-" + hex.EncodeToString(sum[:4])
}

func slug(s string) string {
	var b strings.Builder
	dash := false
	for _, c := range strings.ToLower(s) {
		if (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') {
			b.WriteRune(c)
			dash = false
		} else if !dash && b.Len() > 0 {
			b.WriteByte('-')
			dash = true
		}
	}
	out := strings.TrimSuffix(b.String(), "-")
	if out == "" {
		out = "dataset"
	}
	if len(out) > 40 {
		out = out[:40]
	}
	return out
}

// Close releases the root. Files already opened stay usable until closed.
func (d *Dataset) Close() error { return d.root.Close() }

// Info describes the dataset.
func (d *Dataset) Info() protocol.DatasetInfo {
	info := d.info
	info.Categories = append([]string(nil), d.info.Categories...)
	info.Kinds = append([]string(nil), d.info.Kinds...)
	info.Splits = append([]string(nil), d.info.Splits...)
	info.Warnings = append([]string(nil), d.info.Warnings...)
	return info
}

// Images returns every indexed image, sorted by id. The slice is a copy.
func (d *Dataset) Images() []protocol.ImageInfo {
	return append([]protocol.ImageInfo(nil), d.images...)
}

// Image returns the indexed image with this id.
func (d *Dataset) Image(id string) (protocol.ImageInfo, bool) {
	i, ok := d.byID[id]
	if !ok {
		return protocol.ImageInfo{}, false
	}
	return d.images[i], true
}

// checkID refuses ids that are not plain relative slash paths inside the root, before any lookup.
func checkID(id string) error {
	if id == "" {
		return fmt.Errorf("empty id: %w", ErrNotFound)
	}
	if strings.ContainsRune(id, '\\') || strings.ContainsRune(id, 0) || path.IsAbs(id) || filepath.IsAbs(id) {
		return fmt.Errorf("id %q: %w", id, ErrOutsideRoot)
	}
	for _, part := range strings.Split(id, "/") {
		if part == ".." {
			return fmt.Errorf("id %q: %w", id, ErrOutsideRoot)
		}
	}
	if !fs.ValidPath(id) {
		return fmt.Errorf("id %q is not a clean relative path: %w", id, ErrNotFound)
	}
	return nil
}

// Open opens an indexed image or mask for reading.
func (d *Dataset) Open(id string) (*os.File, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	if _, ok := d.byID[id]; !ok && !d.masks[id] {
		return nil, fmt.Errorf("file %q: %w", id, ErrNotFound)
	}
	f, err := d.root.Open(filepath.FromSlash(id))
	if err != nil {
		return nil, fmt.Errorf("open %s in dataset %s: %w", id, d.info.ID, classify(err))
	}
	return f, nil
}

// classify maps os.Root's escape error (unexported in package os) to ErrOutsideRoot: a symlink that was
// swapped to point outside after indexing.
func classify(err error) error {
	if err != nil && strings.Contains(err.Error(), "escapes from parent") {
		return fmt.Errorf("%w: %v", ErrOutsideRoot, err)
	}
	return err
}

// Decode decodes an indexed image or mask. The file is checked against what its header declares and the
// decode reserves its memory from imageio's decode budget (see imageio.Decode), so concurrent decodes of
// every caller (thumbnails, full images, masks, jobs, import, eval) share one bound in bytes.
func (d *Dataset) Decode(id string) (image.Image, error) {
	img, release, err := d.DecodeHeld(id)
	if release != nil {
		release()
	}
	return img, err
}

// DecodeHeld is Decode that keeps the image's reservation in the decode budget until release is called
// (see imageio.DecodeHeld), for a caller that uses the image briefly. release is nil when err is not.
func (d *Dataset) DecodeHeld(id string) (img image.Image, release func(), err error) {
	return d.decodeHeld(context.Background(), id)
}

func (d *Dataset) decodeHeld(ctx context.Context, id string) (img image.Image, release func(), err error) {
	f, err := d.Open(id)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	img, _, release, err = imageio.DecodeHeldContext(ctx, f)
	if err != nil {
		return nil, nil, fmt.Errorf("decode %s in dataset %s: %w", id, d.info.ID, err)
	}
	return img, release, nil
}

// Truth is the dataset's own ground truth of one image.
type Truth struct {
	Mask []bool // row-major W*H, true = defect; nil when the image has no mask
	W, H int
	// Files are the mask files read (several for MVTec LOCO, whose files are each one region; Mask is their
	// union).
	Files []string
	// Parts holds each file's own mask when there are several (Parts[i] belongs to Files[i]), so that a
	// metric that counts each file as one region (LOCO's sPRO) can; nil for a single mask file.
	Parts [][]bool
	// Encoding names how the mask's values were read (imageio.Mask.Encoding).
	Encoding string
	// Warnings name the mask file and what is doubtful about it (empty, values of no known encoding).
	Warnings []string
}

// Truth decodes the ground truth of image id. A mask whose size differs from its image's is an error.
func (d *Dataset) Truth(id string) (Truth, error) {
	if err := checkID(id); err != nil {
		return Truth{}, err
	}
	im, found := d.Image(id)
	if !found {
		return Truth{}, fmt.Errorf("image %q: %w", id, ErrNotFound)
	}
	files := d.maskOf[id]
	var t Truth
	if len(files) == 0 {
		// A defect image without a mask is an index warning (Info().Warnings), seen before anything is read.
		return t, nil
	}
	for _, f := range files {
		m, err := d.decodeMask(f)
		if err != nil {
			return Truth{}, err
		}
		if im.Width != 0 && (m.W != im.Width || m.H != im.Height) {
			return Truth{}, fmt.Errorf("mask %s is %dx%d but image %s is %dx%d", f, m.W, m.H, id, im.Width, im.Height)
		}
		for _, w := range m.Warnings {
			t.Warnings = append(t.Warnings, fmt.Sprintf("mask %s: %s", f, w))
		}
		if len(files) > 1 {
			t.Parts = append(t.Parts, m.Pix)
		}
		if t.Mask == nil {
			t.Mask, t.W, t.H, t.Encoding = append([]bool(nil), m.Pix...), m.W, m.H, m.Encoding
		} else {
			if m.W != t.W || m.H != t.H {
				return Truth{}, fmt.Errorf("mask %s is %dx%d but %s of the same image is %dx%d", f, m.W, m.H, files[0], t.W, t.H)
			}
			for i, v := range m.Pix {
				t.Mask[i] = t.Mask[i] || v
			}
		}
		t.Files = append(t.Files, f)
	}
	if !slicesContainsTrue(t.Mask) && im.Kind != protocol.KindGood {
		t.Warnings = append(t.Warnings, fmt.Sprintf("mask of %s (%s) is empty: the image has no defect pixel", id, strings.Join(files, ", ")))
	}
	return t, nil
}

func slicesContainsTrue(m []bool) bool {
	for _, v := range m {
		if v {
			return true
		}
	}
	return false
}

func (d *Dataset) decodeMask(id string) (imageio.Mask, error) {
	f, err := d.root.Open(filepath.FromSlash(id))
	if err != nil {
		return imageio.Mask{}, fmt.Errorf("open mask %s in dataset %s: %w", id, d.info.ID, classify(err))
	}
	defer f.Close()
	m, err := imageio.DecodeMask(f)
	if err != nil {
		return imageio.Mask{}, fmt.Errorf("decode mask %s in dataset %s: %w", id, d.info.ID, err)
	}
	return m, nil
}

// GroundTruth returns the dataset's own defect mask of image id (row-major, true = defect). ok is false
// when the image has no mask. It is Truth without the warnings.
func (d *Dataset) GroundTruth(id string) (mask []bool, w, h int, ok bool, err error) {
	t, err := d.Truth(id)
	if err != nil || t.Mask == nil {
		return nil, 0, 0, false, err
	}
	return t.Mask, t.W, t.H, true, nil
}

// MaskFiles returns the mask files of image id (nil when it has none).
func (d *Dataset) MaskFiles(id string) []string { return append([]string(nil), d.maskOf[id]...) }

// Thumbnail returns a JPEG of image id scaled to fit size x size (aspect kept, never enlarged). Results
// are cached in memory (LRU bounded by bytes) and on disk (see SetThumbCache), both keyed by the source
// file's size and modification time, so a changed file gets a new thumbnail.
func (d *Dataset) Thumbnail(id string, size int) ([]byte, error) {
	return d.ThumbnailContext(context.Background(), id, size)
}

// ThumbnailContext is Thumbnail for a request that may be abandoned: once ctx ends, a thumbnail not
// yet in a cache is not decoded (a grid the user left stops costing decodes at once, so the next grid's
// tiles do not queue behind it).
func (d *Dataset) ThumbnailContext(ctx context.Context, id string, size int) ([]byte, error) {
	if size < MinThumbnail || size > MaxThumbnail {
		return nil, fmt.Errorf("thumbnail size %d outside %d..%d", size, MinThumbnail, MaxThumbnail)
	}
	if err := checkID(id); err != nil {
		return nil, err
	}
	if _, ok := d.byID[id]; !ok {
		return nil, fmt.Errorf("image %q: %w", id, ErrNotFound)
	}
	st, err := d.root.Stat(filepath.FromSlash(id))
	if err != nil {
		return nil, fmt.Errorf("open %s in dataset %s: %w", id, d.info.ID, classify(err))
	}
	key := thumbKey(d.info.ID, id, size, st)
	if b, ok := d.thumbs.get(key); ok {
		return b, nil
	}
	disk := diskThumbs()
	if disk != nil {
		if b, ok := disk.get(key); ok {
			d.thumbs.put(key, b)
			return b, nil
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	img, release, err := d.decodeHeld(ctx, id) // the decode budget bounds the images held here, in bytes
	if err != nil {
		return nil, err
	}
	b := img.Bounds()
	tw, th := b.Dx(), b.Dy()
	if tw > size || th > size {
		if tw >= th {
			tw, th = size, max(1, b.Dy()*size/b.Dx())
		} else {
			tw, th = max(1, b.Dx()*size/b.Dy()), size
		}
	}
	dst := boxScale(img, tw, th)
	release()
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, dst, &jpeg.Options{Quality: 85}); err != nil {
		return nil, fmt.Errorf("encode thumbnail of %s: %w", id, err)
	}
	d.thumbs.put(key, buf.Bytes())
	if disk != nil {
		disk.put(key, buf.Bytes())
	}
	return buf.Bytes(), nil
}

// lru is a byte-bounded least-recently-used cache.
type lru struct {
	mu    sync.Mutex
	max   int
	size  int
	order *list.List // front = most recent; values are *entry
	items map[string]*list.Element
}

type entry struct {
	key string
	val []byte
}

func newLRU(maxBytes int) *lru {
	return &lru{max: maxBytes, order: list.New(), items: map[string]*list.Element{}}
}

func (c *lru) get(key string) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[key]
	if !ok {
		return nil, false
	}
	c.order.MoveToFront(el)
	return el.Value.(*entry).val, true
}

func (c *lru) put(key string, val []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[key]; ok {
		c.size -= len(el.Value.(*entry).val)
		el.Value.(*entry).val = val
		c.size += len(val)
		c.order.MoveToFront(el)
	} else {
		c.items[key] = c.order.PushFront(&entry{key: key, val: val})
		c.size += len(val)
	}
	for c.size > c.max && c.order.Len() > 1 {
		el := c.order.Back()
		e := el.Value.(*entry)
		c.order.Remove(el)
		delete(c.items, e.key)
		c.size -= len(e.val)
	}
}

func (c *lru) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}
