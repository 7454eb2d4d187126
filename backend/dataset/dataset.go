//go:build !js

// Package dataset indexes a dataset folder and serves its files, never anything outside it.
//
// Layouts (detected in this order):
//   - one MVTec AD category: root has train/ or test/; images CATEGORY/{train,test}/KIND/*, masks
//     ground_truth/KIND/STEM_mask.* (or ground_truth/KIND/STEM.*). The category is root's base name.
//   - a folder of MVTec AD categories (the whole MVTec AD): every sub-folder that has train/ or test/.
//   - images + masks (the magnetic-tile set): CLASS/Imgs/x.jpg with its mask CLASS/Imgs/x.png (same stem; the
//     PNG is the mask when another image file shares its stem). The kind is CLASS without an "MT_" prefix,
//     "Free" is good, and an image whose mask has no defect pixel is good too (it then gets no MaskID).
//     Every image of this layout is in the test split: the set has no separate training images.
//
// Names starting with "." are skipped everywhere (version-control folders, macOS "._x.png" files,
// temporary folders).
//
// Image and mask ids are slash-separated paths relative to the root. Index order is sorted by id, so
// Images() is the same on every run. Masks follow package imageio: grey >= 128 is a defect.
//
// Confinement: the root is opened as an os.Root and every file access goes through it, so ".." components,
// absolute paths and symlinks that resolve outside the root fail in the kernel-backed lookup, not in a
// string check. On top of that only indexed ids are served at all: Open, Decode, GroundTruth and Thumbnail
// refuse any other id with an error wrapping ErrNotFound, and ids that try to leave the root with one
// wrapping ErrOutsideRoot. Symlinks inside the root that resolve inside it are followed; those that
// point outside are left out of the index (logged).
//
// A Dataset is safe for concurrent use; the index is immutable after Open.
package dataset

import (
	"bytes"
	"container/list"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"image"
	"image/jpeg"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"sort"
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
	byID   map[string]int  // image id -> index in images
	masks  map[string]bool // indexed mask ids

	thumbs *lru
	// decodeSlots bounds concurrent full-size decodes for thumbnails, so a grid of 500 tiles requested at
	// once cannot hold 500 decoded images in memory.
	decodeSlots chan struct{}
}

// Open indexes the dataset at root.
func Open(root string) (*Dataset, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("dataset %s: %w", root, err)
	}
	r, err := os.OpenRoot(abs)
	if err != nil {
		return nil, fmt.Errorf("open dataset %s: %w", abs, err)
	}
	d := &Dataset{
		root:        r,
		byID:        map[string]int{},
		masks:       map[string]bool{},
		thumbs:      newLRU(thumbCacheBytes),
		decodeSlots: make(chan struct{}, max(1, runtime.NumCPU())),
	}
	name := filepath.Base(abs)
	d.info = protocol.DatasetInfo{ID: ID(abs), Name: name, Root: abs}
	if err := d.index(name); err != nil {
		r.Close()
		return nil, fmt.Errorf("index dataset %s: %w", abs, err)
	}
	return d, nil
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

// Decode decodes an indexed image or mask.
func (d *Dataset) Decode(id string) (image.Image, error) {
	f, err := d.Open(id)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	img, _, err := imageio.Decode(f)
	if err != nil {
		return nil, fmt.Errorf("decode %s in dataset %s: %w", id, d.info.ID, err)
	}
	return img, nil
}

// GroundTruth returns the dataset's own defect mask of image id (row-major, true = defect). ok is false
// when the image has no mask. A mask whose size differs from its image's is an error.
func (d *Dataset) GroundTruth(id string) (mask []bool, w, h int, ok bool, err error) {
	if err := checkID(id); err != nil {
		return nil, 0, 0, false, err
	}
	im, found := d.Image(id)
	if !found {
		return nil, 0, 0, false, fmt.Errorf("image %q: %w", id, ErrNotFound)
	}
	if im.MaskID == "" {
		return nil, 0, 0, false, nil
	}
	img, err := d.Decode(im.MaskID)
	if err != nil {
		return nil, 0, 0, false, err
	}
	mask, w, h = imageio.BinaryMask(img)
	if im.Width != 0 && (w != im.Width || h != im.Height) {
		return nil, 0, 0, false, fmt.Errorf("mask %s is %dx%d but image %s is %dx%d", im.MaskID, w, h, id, im.Width, im.Height)
	}
	return mask, w, h, true, nil
}

// Thumbnail returns a JPEG of image id scaled to fit size x size (aspect kept, never enlarged). Results
// are cached in memory (LRU bounded by bytes).
func (d *Dataset) Thumbnail(id string, size int) ([]byte, error) {
	if size < MinThumbnail || size > MaxThumbnail {
		return nil, fmt.Errorf("thumbnail size %d outside %d..%d", size, MinThumbnail, MaxThumbnail)
	}
	if err := checkID(id); err != nil {
		return nil, err
	}
	if _, ok := d.byID[id]; !ok {
		return nil, fmt.Errorf("image %q: %w", id, ErrNotFound)
	}
	key := fmt.Sprintf("%d:%s", size, id)
	if b, ok := d.thumbs.get(key); ok {
		return b, nil
	}
	d.decodeSlots <- struct{}{}
	img, err := d.Decode(id)
	if err != nil {
		<-d.decodeSlots
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
	<-d.decodeSlots
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, dst, &jpeg.Options{Quality: 85}); err != nil {
		return nil, fmt.Errorf("encode thumbnail of %s: %w", id, err)
	}
	d.thumbs.put(key, buf.Bytes())
	return buf.Bytes(), nil
}

// index detects the layout and fills info and images.
func (d *Dataset) index(name string) error {
	fsys := d.root.FS()
	switch {
	case isCategory(fsys, "."):
		d.info.Layout = protocol.LayoutMVTec
		if err := d.indexCategory(fsys, ".", name); err != nil {
			return err
		}
	default:
		entries, err := fs.ReadDir(fsys, ".")
		if err != nil {
			return fmt.Errorf("list root: %w", err)
		}
		var cats, imgsets []string
		for _, e := range entries {
			if hidden(e.Name()) || !d.isDir(e, e.Name()) {
				continue
			}
			if isCategory(fsys, e.Name()) {
				cats = append(cats, e.Name())
			} else if isDirFS(fsys, path.Join(e.Name(), "Imgs")) {
				imgsets = append(imgsets, e.Name())
			}
		}
		switch {
		case len(cats) > 0:
			d.info.Layout = protocol.LayoutMVTec
			for _, c := range cats {
				if err := d.indexCategory(fsys, c, c); err != nil {
					return err
				}
			}
		case len(imgsets) > 0:
			d.info.Layout = protocol.LayoutImagesMasks
			d.info.Categories = []string{name}
			for _, c := range imgsets {
				if err := d.indexImagesMasks(fsys, c, name); err != nil {
					return err
				}
			}
		default:
			return fmt.Errorf("no MVTec category (a folder with train/ or test/) and no images+masks class (a folder with Imgs/) found")
		}
	}
	if len(d.images) == 0 {
		return fmt.Errorf("no images found (%s layout)", d.info.Layout)
	}
	sort.Slice(d.images, func(a, b int) bool { return d.images[a].ID < d.images[b].ID })
	kinds := map[string]bool{}
	for i, im := range d.images {
		d.byID[im.ID] = i
		kinds[im.Kind] = true
	}
	d.info.Kinds = sortedKinds(kinds)
	sort.Strings(d.info.Categories)
	d.info.Images = len(d.images)
	return nil
}

// sortedKinds puts good first, then the defect kinds alphabetically.
func sortedKinds(set map[string]bool) []string {
	var out []string
	for k := range set {
		if k != protocol.KindGood {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	if set[protocol.KindGood] {
		out = append([]string{protocol.KindGood}, out...)
	}
	return out
}

func isDirFS(fsys fs.FS, p string) bool {
	st, err := fs.Stat(fsys, p)
	return err == nil && st.IsDir()
}

func isCategory(fsys fs.FS, dir string) bool {
	return isDirFS(fsys, path.Join(dir, protocol.SplitTrain)) || isDirFS(fsys, path.Join(dir, protocol.SplitTest))
}

// isDir reports whether entry p is a directory, following a symlink only when it stays inside the root.
func (d *Dataset) isDir(e fs.DirEntry, p string) bool {
	if e.IsDir() {
		return true
	}
	if e.Type()&fs.ModeSymlink == 0 {
		return false
	}
	st, err := d.root.Stat(filepath.FromSlash(p))
	if err != nil {
		slog.Warn("dataset: skipping symlink", "path", p, "err", err)
		return false
	}
	return st.IsDir()
}

// isFile reports whether entry p is a regular file, following a symlink only when it stays inside the root.
func (d *Dataset) isFile(e fs.DirEntry, p string) bool {
	if e.Type().IsRegular() {
		return true
	}
	if e.Type()&fs.ModeSymlink == 0 {
		return false
	}
	st, err := d.root.Stat(filepath.FromSlash(p))
	if err != nil {
		slog.Warn("dataset: skipping symlink", "path", p, "err", err)
		return false
	}
	return st.Mode().IsRegular()
}

// imageFiles lists the image files of dir (sorted), skipping anything unreadable or leaving the root.
func (d *Dataset) imageFiles(fsys fs.FS, dir string) ([]string, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	var out []string
	for _, e := range entries {
		p := path.Join(dir, e.Name())
		if !hidden(e.Name()) && imageio.IsImageName(e.Name()) && d.isFile(e, p) {
			out = append(out, p)
		}
	}
	return out, nil
}

func (d *Dataset) subdirs(fsys fs.FS, dir string) ([]string, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	var out []string
	for _, e := range entries {
		if !hidden(e.Name()) && d.isDir(e, path.Join(dir, e.Name())) {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

// hidden names (".git", macOS "._000.png" resource forks, a generator's ".tiles.tmp-*" folder) are never
// part of a dataset.
func hidden(name string) bool { return strings.HasPrefix(name, ".") }

func stem(p string) string {
	b := path.Base(p)
	return strings.TrimSuffix(b, path.Ext(b))
}

// cleanID turns an fs path of the root ("./x" never occurs; "." joins away) into an id.
func cleanID(p string) string { return path.Clean(p) }

// indexCategory indexes one MVTec category folder dir (relative to the root) named cat.
func (d *Dataset) indexCategory(fsys fs.FS, dir, cat string) error {
	d.info.Categories = append(d.info.Categories, cat)
	// Masks by kind and stem: ground_truth/KIND/STEM_mask.png, or ground_truth/KIND/STEM.png.
	masks := map[string]string{}
	gt := path.Join(dir, "ground_truth")
	kinds, err := d.subdirs(fsys, gt)
	if err != nil {
		return err
	}
	for _, k := range kinds {
		files, err := d.imageFiles(fsys, path.Join(gt, k))
		if err != nil {
			return err
		}
		for _, f := range files {
			s := strings.TrimSuffix(stem(f), "_mask")
			masks[k+"/"+s] = cleanID(f)
		}
	}
	for _, split := range []string{protocol.SplitTrain, protocol.SplitTest} {
		sd := path.Join(dir, split)
		kinds, err := d.subdirs(fsys, sd)
		if err != nil {
			return err
		}
		for _, k := range kinds {
			files, err := d.imageFiles(fsys, path.Join(sd, k))
			if err != nil {
				return err
			}
			for _, f := range files {
				im := protocol.ImageInfo{ID: cleanID(f), Category: cat, Split: split, Kind: k}
				if m, ok := masks[k+"/"+stem(f)]; ok && split == protocol.SplitTest {
					im.MaskID = m
				}
				if err := d.add(im); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// indexImagesMasks indexes one class folder CLASS/Imgs of the images+masks layout.
func (d *Dataset) indexImagesMasks(fsys fs.FS, class, cat string) error {
	dir := path.Join(class, "Imgs")
	files, err := d.imageFiles(fsys, dir)
	if err != nil {
		return err
	}
	byStem := map[string][]string{}
	var stems []string
	for _, f := range files {
		s := stem(f)
		if _, seen := byStem[s]; !seen {
			stems = append(stems, s)
		}
		byStem[s] = append(byStem[s], f)
	}
	kind := strings.TrimPrefix(class, "MT_")
	if strings.EqualFold(kind, "free") {
		kind = protocol.KindGood
	}
	for _, s := range stems {
		var img, msk string
		for _, f := range byStem[s] {
			if strings.EqualFold(path.Ext(f), ".png") && len(byStem[s]) > 1 {
				msk = f
			} else {
				img = f
			}
		}
		if img == "" {
			continue
		}
		im := protocol.ImageInfo{ID: cleanID(img), Category: cat, Split: protocol.SplitTest, Kind: kind}
		if msk != "" {
			defect, err := d.maskHasDefect(msk)
			if err != nil {
				return err
			}
			if defect {
				im.MaskID = cleanID(msk)
			} else {
				im.Kind = protocol.KindGood
			}
		}
		if im.MaskID == "" {
			im.Kind = protocol.KindGood
		}
		if err := d.add(im); err != nil {
			return err
		}
	}
	return nil
}

func (d *Dataset) maskHasDefect(id string) (bool, error) {
	f, err := d.root.Open(filepath.FromSlash(id))
	if err != nil {
		return false, fmt.Errorf("open mask %s: %w", id, classify(err))
	}
	defer f.Close()
	img, _, err := imageio.Decode(f)
	if err != nil {
		return false, fmt.Errorf("decode mask %s: %w", id, err)
	}
	m, _, _ := imageio.BinaryMask(img)
	for _, v := range m {
		if v {
			return true, nil
		}
	}
	return false, nil
}

// add reads the image's size from its header and appends it. A file that is not a readable image is left
// out with a warning rather than failing the whole dataset: real folders carry the odd broken file.
func (d *Dataset) add(im protocol.ImageInfo) error {
	f, err := d.root.Open(filepath.FromSlash(im.ID))
	if err != nil {
		slog.Warn("dataset: skipping image", "id", im.ID, "err", classify(err))
		return nil
	}
	cfg, _, err := imageio.DecodeConfig(f)
	f.Close()
	if err != nil {
		slog.Warn("dataset: skipping image", "id", im.ID, "err", err)
		return nil
	}
	im.Width, im.Height = cfg.Width, cfg.Height
	d.images = append(d.images, im)
	if im.MaskID != "" {
		d.masks[im.MaskID] = true
	}
	return nil
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
