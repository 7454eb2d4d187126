//go:build !js

package dataset

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"image"
	"io"
	"io/fs"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/rdre-studio/studio/backend/imageio"
	"github.com/rdre-studio/studio/shared/protocol"
)

// Layout describes one supported dataset layout.
type Layout struct {
	Name    string // the --layout value
	Pattern string // the folder pattern, for -h, the README and errors
	// category is true for layouts whose root is one category (or a folder of categories).
	category bool
	// detect reports whether dir (a category candidate, or the root for whole-set layouts) has this layout.
	detect func(ix *indexer, dir string) bool
	// index adds the images of dir, named cat.
	index func(ix *indexer, dir, cat string) error
}

// layouts in detection order (within the category layouts too: the first that matches wins).
var layouts = []*Layout{
	{Name: protocol.LayoutVisA, Pattern: "ROOT/split_csv/1cls.csv (object,split,label,image,mask) with OBJ/Data/Images/{Normal,Anomaly}/* and OBJ/Data/Masks/Anomaly/*",
		detect: func(ix *indexer, dir string) bool { return ix.isFile(path.Join(dir, "split_csv", "1cls.csv")) },
		index:  (*indexer).indexVisA},
	{Name: protocol.LayoutMVTec2, category: true, Pattern: "CAT/train/good, CAT/validation/good, CAT/test_public/{good,bad} with CAT/test_public/ground_truth/bad/STEM_mask.png, CAT/test_private, CAT/test_private_mixed",
		detect: func(ix *indexer, dir string) bool { return ix.isDir(path.Join(dir, "test_public")) },
		index:  (*indexer).indexMVTec2},
	{Name: protocol.LayoutMVTec3D, category: true, Pattern: "CAT/{train,validation}/good/rgb/*, CAT/test/KIND/rgb/NNN.png with the mask CAT/test/KIND/gt/NNN.png",
		detect: (*indexer).isMVTec3D,
		index:  (*indexer).indexMVTec3D},
	{Name: protocol.LayoutLOCO, category: true, Pattern: "CAT/{train,validation}/good/*, CAT/test/KIND/NNN.png with the masks CAT/ground_truth/KIND/NNN/000.png, 001.png, ... (one region each)",
		detect: (*indexer).isLOCO,
		index:  (*indexer).indexLOCO},
	{Name: protocol.LayoutBTAD, category: true, Pattern: "NN/train/ok/*, NN/test/{ok,ko}/*, masks NN/ground_truth/ko/STEM.png (ok is good)",
		detect: func(ix *indexer, dir string) bool {
			return ix.isDir(path.Join(dir, "train", "ok")) || ix.isDir(path.Join(dir, "test", "ok"))
		},
		index: (*indexer).indexBTAD},
	{Name: protocol.LayoutMVTec, category: true, Pattern: "CAT/train/good/*, CAT/test/KIND/*, masks CAT/ground_truth/KIND/STEM_mask.* or STEM.* (MVTec AD, MPDD); one category or a folder of categories",
		detect: func(ix *indexer, dir string) bool {
			return ix.isDir(path.Join(dir, protocol.SplitTrain)) || ix.isDir(path.Join(dir, protocol.SplitTest))
		},
		index: (*indexer).indexMVTec},
	{Name: protocol.LayoutImagesMasks, Pattern: "CLASS/Imgs/x.jpg with its mask CLASS/Imgs/x.png (Magnetic-Tile; MT_Free is good)",
		detect: func(ix *indexer, dir string) bool {
			for _, c := range ix.subdirs(dir) {
				if ix.isDir(path.Join(dir, c, "Imgs")) {
					return true
				}
			}
			return false
		},
		index: (*indexer).indexImagesMasks},
	{Name: protocol.LayoutPlain, Pattern: "ROOT/good/*, ROOT/KIND/*, masks ROOT/ground_truth/KIND/STEM_mask.* or STEM.*, or ROOT/KIND/STEM_mask.* beside the image",
		detect: func(ix *indexer, dir string) bool { return ix.isDir(path.Join(dir, protocol.KindGood)) },
		index:  (*indexer).indexPlain},
}

// Layouts lists the supported layouts in detection order.
func Layouts() []Layout {
	out := make([]Layout, len(layouts))
	for i, l := range layouts {
		out[i] = Layout{Name: l.Name, Pattern: l.Pattern}
	}
	return out
}

// LayoutNames lists the --layout values.
func LayoutNames() []string {
	var out []string
	for _, l := range layouts {
		out = append(out, l.Name)
	}
	return out
}

// LayoutHelp is the layout list for a command's -h.
func LayoutHelp() string {
	var b strings.Builder
	for _, l := range layouts {
		fmt.Fprintf(&b, "  %-13s %s\n", l.Name, l.Pattern)
	}
	return b.String()
}

func layoutByName(name string) *Layout {
	for _, l := range layouts {
		if l.Name == name {
			return l
		}
	}
	return nil
}

// pending is an image found by a layout, before its header is read.
type pending struct {
	protocol.ImageInfo
	masks []string
}

// indexer walks the root through its os.Root-backed fs.FS.
type indexer struct {
	d        *Dataset
	fsys     fs.FS
	found    []pending
	warnings []string
	layouts  map[string]bool
}

func (ix *indexer) warn(format string, args ...any) {
	ix.warnings = append(ix.warnings, fmt.Sprintf(format, args...))
}

// index detects the layout (or uses forced) and fills info and images.
func (d *Dataset) index(name, forced string) error {
	ix := &indexer{d: d, fsys: d.root.FS(), layouts: map[string]bool{}}
	if err := ix.run(name, forced); err != nil {
		return err
	}
	return d.finish(ix)
}

func (ix *indexer) run(name, forced string) error {
	if forced != "" {
		l := layoutByName(forced)
		if !l.category || l.detect(ix, ".") {
			ix.layouts[l.Name] = true
			return l.index(ix, ".", name)
		}
		cats := ix.categories(func(dir string) *Layout {
			if l.detect(ix, dir) {
				return l
			}
			return nil
		})
		if len(cats) == 0 {
			return fmt.Errorf("layout %s: the root is not such a category and has no sub-folder that is (%s)", l.Name, l.Pattern)
		}
		return ix.indexCategories(cats)
	}
	if l := layoutByName(protocol.LayoutVisA); l.detect(ix, ".") {
		ix.layouts[l.Name] = true
		return l.index(ix, ".", name)
	}
	if l := detectCategory(ix, "."); l != nil {
		ix.layouts[l.Name] = true
		return l.index(ix, ".", name)
	}
	if cats := ix.categories(func(dir string) *Layout { return detectCategory(ix, dir) }); len(cats) > 0 {
		if ix.isDir(protocol.KindGood) {
			ix.warn("the root has a good/ folder and category folders: read as a folder of categories (use --layout plain to read it as a plain folder)")
		}
		return ix.indexCategories(cats)
	}
	for _, name2 := range []string{protocol.LayoutImagesMasks, protocol.LayoutPlain} {
		l := layoutByName(name2)
		if l.detect(ix, ".") {
			ix.layouts[l.Name] = true
			return l.index(ix, ".", name)
		}
	}
	return fmt.Errorf("no known layout found; the layouts are:\n%s", LayoutHelp())
}

func detectCategory(ix *indexer, dir string) *Layout {
	for _, l := range layouts {
		if l.category && l.detect(ix, dir) {
			return l
		}
	}
	return nil
}

type category struct {
	dir    string
	layout *Layout
}

func (ix *indexer) categories(detect func(dir string) *Layout) []category {
	var out []category
	for _, c := range ix.subdirs(".") {
		if l := detect(c); l != nil {
			out = append(out, category{dir: c, layout: l})
		}
	}
	return out
}

func (ix *indexer) indexCategories(cats []category) error {
	for _, c := range cats {
		ix.layouts[c.layout.Name] = true
		if err := c.layout.index(ix, c.dir, c.dir); err != nil {
			return err
		}
	}
	return nil
}

// finish reads every image's header, assigns keys and fills the dataset's info.
func (d *Dataset) finish(ix *indexer) error {
	var names []string
	for l := range ix.layouts {
		names = append(names, l)
	}
	sort.Strings(names)
	d.info.Layout = strings.Join(names, ",")
	cats := map[string]bool{}
	for _, p := range ix.found {
		cats[p.Category] = true
	}
	sort.Slice(ix.found, func(a, b int) bool { return ix.found[a].ID < ix.found[b].ID })
	type splitKey struct{ split, key string }
	seen := map[splitKey]string{}
	kinds, splits := map[string]bool{}, map[string]bool{}
	for _, p := range ix.found {
		im := p.ImageInfo
		base := path.Base(im.ID)
		im.Key = im.Kind + "/" + strings.TrimSuffix(base, path.Ext(base))
		if len(cats) > 1 {
			im.Key = im.Category + "/" + im.Key
		}
		sk := splitKey{im.Split, im.Key}
		if other, dup := seen[sk]; dup {
			ix.warn("image %s skipped: its key %s (split %s) is already taken by %s", im.ID, im.Key, im.Split, other)
			continue
		}
		if !d.readSize(ix, &im) {
			continue
		}
		seen[sk] = im.ID
		if len(p.masks) > 0 {
			im.MaskID, im.MaskCount = p.masks[0], len(p.masks)
			d.maskOf[im.ID] = p.masks
			for _, m := range p.masks {
				d.masks[m] = true
			}
		}
		if len(p.masks) == 0 && im.Split == protocol.SplitTest && im.Kind != protocol.KindGood && im.Kind != protocol.KindUnlabelled {
			ix.warn("image %s is in the defect folder %q but has no mask: its pixels count as normal", im.ID, im.Kind)
		}
		d.byID[im.ID] = len(d.images)
		d.images = append(d.images, im)
		kinds[im.Kind] = true
		splits[im.Split] = true
	}
	if len(d.images) == 0 {
		return fmt.Errorf("no images found (%s layout)%s", d.info.Layout, warningTail(ix.warnings))
	}
	for c := range cats {
		d.info.Categories = append(d.info.Categories, c)
	}
	sort.Strings(d.info.Categories)
	d.info.Kinds = sortedKinds(kinds)
	for _, s := range []string{protocol.SplitTrain, protocol.SplitValidation, protocol.SplitTest, protocol.SplitTestPrivate, protocol.SplitTestPrivateMixed} {
		if splits[s] {
			d.info.Splits = append(d.info.Splits, s)
		}
	}
	d.info.Images = len(d.images)
	d.info.Warnings = ix.warnings
	return nil
}

func warningTail(w []string) string {
	if len(w) == 0 {
		return ""
	}
	return "; " + strings.Join(w, "; ")
}

// readSize reads the image's size from its header. A file that is not a readable image is left out with a
// warning rather than failing the whole dataset: real folders carry the odd broken file.
func (d *Dataset) readSize(ix *indexer, im *protocol.ImageInfo) bool {
	cfg, err := d.decodeConfig(im.ID)
	if err != nil {
		ix.warn("image %s skipped: %v", im.ID, err)
		return false
	}
	im.Width, im.Height = cfg.Width, cfg.Height
	return true
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

// stat follows a symlink only when it stays inside the root (the FS is os.Root-backed); one that leaves it
// is a warning.
func (ix *indexer) stat(p string) (fs.FileInfo, bool) {
	st, err := fs.Stat(ix.fsys, p)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			ix.warn("%s skipped: %v", p, classify(err))
		}
		return nil, false
	}
	return st, true
}

func (ix *indexer) isDir(p string) bool {
	st, ok := ix.stat(p)
	return ok && st.IsDir()
}

func (ix *indexer) isFile(p string) bool {
	st, ok := ix.stat(p)
	return ok && st.Mode().IsRegular()
}

// entries lists dir's visible entries, split into folders and image files (sorted). Other files are
// ignored; a missing dir is empty.
func (ix *indexer) entries(dir string) (dirs, images []string) {
	es, err := fs.ReadDir(ix.fsys, dir)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			ix.warn("folder %s skipped: %v", dir, err)
		}
		return nil, nil
	}
	for _, e := range es {
		if hidden(e.Name()) {
			continue
		}
		p := path.Join(dir, e.Name())
		if e.Type()&fs.ModeSymlink != 0 {
			st, ok := ix.stat(p)
			if !ok {
				continue
			}
			if st.IsDir() {
				dirs = append(dirs, e.Name())
			} else if st.Mode().IsRegular() && imageio.IsImageName(e.Name()) {
				images = append(images, p)
			}
			continue
		}
		if e.IsDir() {
			dirs = append(dirs, e.Name())
		} else if e.Type().IsRegular() && imageio.IsImageName(e.Name()) {
			images = append(images, p)
		}
	}
	return dirs, images
}

func (ix *indexer) subdirs(dir string) []string { d, _ := ix.entries(dir); return d }
func (ix *indexer) images(dir string) []string  { _, f := ix.entries(dir); return f }

// hidden names (".git", macOS "._000.png" resource forks, a generator's ".tiles.tmp-*" folder) are never
// part of a dataset.
func hidden(name string) bool { return strings.HasPrefix(name, ".") }

func stem(p string) string {
	b := path.Base(p)
	return strings.TrimSuffix(b, path.Ext(b))
}

// maskStem is the image stem a mask file belongs to: STEM_mask.EXT or STEM.EXT.
func maskStem(p string) string {
	s := stem(p)
	if len(s) > 5 && strings.EqualFold(s[len(s)-5:], "_mask") {
		return s[:len(s)-5]
	}
	return s
}

// maskSet is the mask files of one folder by the stem of their image; used marks the ones paired.
type maskSet struct {
	dir  string
	byID map[string]string
	used map[string]bool
}

func (ix *indexer) maskSet(dir string) *maskSet {
	ms := &maskSet{dir: dir, byID: map[string]string{}, used: map[string]bool{}}
	for _, f := range ix.images(dir) {
		s := maskStem(f)
		if other, dup := ms.byID[s]; dup {
			ix.warn("mask %s skipped: %s is already the mask of %s", f, other, s)
			continue
		}
		ms.byID[s] = f
	}
	return ms
}

func (ms *maskSet) take(imageStem string) []string {
	if m, ok := ms.byID[imageStem]; ok {
		ms.used[m] = true
		return []string{m}
	}
	return nil
}

// unused warns about every mask that no image took.
func (ix *indexer) unused(ms *maskSet) {
	var left []string
	for _, m := range ms.byID {
		if !ms.used[m] {
			left = append(left, m)
		}
	}
	sort.Strings(left)
	for _, m := range left {
		ix.warn("mask %s has no image of the same stem; ignored", m)
	}
}

func (ix *indexer) add(id, cat, split, kind string, masks []string) {
	ix.found = append(ix.found, pending{ImageInfo: protocol.ImageInfo{ID: path.Clean(id), Category: cat, Split: split, Kind: kind}, masks: masks})
}

// addKinds adds every image of split folder sd (KIND sub-folders; sub names a folder inside each kind, as
// MVTec 3D-AD's rgb/), pairing test images with masks from maskDir(kind).
func (ix *indexer) addKinds(sd, cat, split string, sub string, kindName func(string) string, masksOf func(kind, file string) []string) {
	for _, k := range ix.subdirs(sd) {
		kind := kindName(k)
		for _, f := range ix.images(path.Join(sd, k, sub)) {
			var m []string
			if masksOf != nil && kind != protocol.KindGood {
				m = masksOf(k, f)
			}
			ix.add(f, cat, split, kind, m)
		}
	}
}

func same(k string) string { return k }

// mvtecMasks pairs the images of kind folders with masks in gtDir/KIND (STEM_mask.* or STEM.*).
func (ix *indexer) mvtecMasks(gtDir string) (func(kind, file string) []string, func()) {
	sets := map[string]*maskSet{}
	for _, k := range ix.subdirs(gtDir) {
		sets[k] = ix.maskSet(path.Join(gtDir, k))
	}
	take := func(kind, file string) []string {
		if ms := sets[kind]; ms != nil {
			return ms.take(stem(file))
		}
		return nil
	}
	done := func() {
		for _, k := range slices.Sorted(mapKeys(sets)) {
			ix.unused(sets[k])
		}
	}
	return take, done
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func (ix *indexer) indexMVTec(dir, cat string) error {
	masks, done := ix.mvtecMasks(path.Join(dir, "ground_truth"))
	ix.addKinds(path.Join(dir, protocol.SplitTrain), cat, protocol.SplitTrain, "", same, nil)
	ix.addKinds(path.Join(dir, protocol.SplitTest), cat, protocol.SplitTest, "", same, masks)
	done()
	return nil
}

func (ix *indexer) indexBTAD(dir, cat string) error {
	okGood := func(k string) string {
		if k == "ok" {
			return protocol.KindGood
		}
		return k
	}
	masks, done := ix.mvtecMasks(path.Join(dir, "ground_truth"))
	ix.addKinds(path.Join(dir, protocol.SplitTrain), cat, protocol.SplitTrain, "", okGood, nil)
	ix.addKinds(path.Join(dir, protocol.SplitTest), cat, protocol.SplitTest, "", okGood, masks)
	done()
	return nil
}

func (ix *indexer) indexMVTec2(dir, cat string) error {
	ix.addKinds(path.Join(dir, protocol.SplitTrain), cat, protocol.SplitTrain, "", same, nil)
	ix.addKinds(path.Join(dir, protocol.SplitValidation), cat, protocol.SplitValidation, "", same, nil)
	pub := path.Join(dir, "test_public")
	masks, done := ix.mvtecMasks(path.Join(pub, "ground_truth"))
	for _, k := range ix.subdirs(pub) {
		if k == "ground_truth" {
			continue
		}
		for _, f := range ix.images(path.Join(pub, k)) {
			var m []string
			if k != protocol.KindGood {
				m = masks(k, f)
			}
			ix.add(f, cat, protocol.SplitTest, k, m)
		}
	}
	done()
	for _, split := range []string{protocol.SplitTestPrivate, protocol.SplitTestPrivateMixed} {
		sd := path.Join(dir, split)
		dirs, files := ix.entries(sd)
		for _, f := range files {
			ix.add(f, cat, split, protocol.KindUnlabelled, nil)
		}
		// Some copies sort the private images into one sub-folder; they are still unlabelled.
		for _, sub := range dirs {
			for _, f := range ix.images(path.Join(sd, sub)) {
				ix.add(f, cat, split, protocol.KindUnlabelled, nil)
			}
		}
	}
	return nil
}

func (ix *indexer) isMVTec3D(dir string) bool {
	if ix.isDir(path.Join(dir, protocol.SplitTrain, protocol.KindGood, "rgb")) {
		return true
	}
	for _, k := range ix.subdirs(path.Join(dir, protocol.SplitTest)) {
		if ix.isDir(path.Join(dir, protocol.SplitTest, k, "rgb")) {
			return true
		}
	}
	return false
}

func (ix *indexer) indexMVTec3D(dir, cat string) error {
	ix.addKinds(path.Join(dir, protocol.SplitTrain), cat, protocol.SplitTrain, "rgb", same, nil)
	ix.addKinds(path.Join(dir, protocol.SplitValidation), cat, protocol.SplitValidation, "rgb", same, nil)
	td := path.Join(dir, protocol.SplitTest)
	for _, k := range ix.subdirs(td) {
		var ms *maskSet
		if k != protocol.KindGood {
			ms = ix.maskSet(path.Join(td, k, "gt"))
		}
		for _, f := range ix.images(path.Join(td, k, "rgb")) {
			var m []string
			if ms != nil {
				m = ms.take(stem(f))
			}
			ix.add(f, cat, protocol.SplitTest, k, m)
		}
		if ms != nil {
			ix.unused(ms)
		}
	}
	return nil
}

func (ix *indexer) isLOCO(dir string) bool {
	gt := path.Join(dir, "ground_truth")
	for _, k := range ix.subdirs(gt) {
		if len(ix.subdirs(path.Join(gt, k))) > 0 {
			return true
		}
	}
	return false
}

func (ix *indexer) indexLOCO(dir, cat string) error {
	gt := path.Join(dir, "ground_truth")
	ix.addKinds(path.Join(dir, protocol.SplitTrain), cat, protocol.SplitTrain, "", same, nil)
	ix.addKinds(path.Join(dir, protocol.SplitValidation), cat, protocol.SplitValidation, "", same, nil)
	used := map[string]bool{}
	ix.addKinds(path.Join(dir, protocol.SplitTest), cat, protocol.SplitTest, "", same, func(kind, file string) []string {
		d := path.Join(gt, kind, stem(file))
		used[d] = true
		return ix.images(d)
	})
	for _, k := range ix.subdirs(gt) {
		for _, s := range ix.subdirs(path.Join(gt, k)) {
			if d := path.Join(gt, k, s); !used[d] {
				ix.warn("mask folder %s has no image of the same stem; ignored", d)
			}
		}
	}
	return nil
}

// indexVisA reads split_csv/1cls.csv: object,split,label,image,mask with paths relative to the root.
func (ix *indexer) indexVisA(dir, _ string) error {
	csvPath := path.Join(dir, "split_csv", "1cls.csv")
	f, err := ix.fsys.Open(csvPath)
	if err != nil {
		return fmt.Errorf("open %s: %w", csvPath, err)
	}
	defer f.Close()
	br := bufio.NewReader(io.LimitReader(f, 64<<20))
	// Spreadsheet programs save CSV with a UTF-8 byte-order mark, which would glue itself to "object".
	if b, err := br.Peek(3); err == nil && string(b) == "\xef\xbb\xbf" {
		br.Discard(3)
	}
	r := csv.NewReader(br)
	r.FieldsPerRecord = -1
	head, err := r.Read()
	if err != nil {
		return fmt.Errorf("read %s: %w", csvPath, err)
	}
	col := map[string]int{}
	for i, h := range head {
		col[strings.ToLower(strings.TrimSpace(h))] = i
	}
	for _, c := range []string{"object", "split", "label", "image", "mask"} {
		if _, ok := col[c]; !ok {
			return fmt.Errorf("%s: no %q column (want object,split,label,image,mask)", csvPath, c)
		}
	}
	for line := 2; ; line++ {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", csvPath, err)
		}
		get := func(c string) string {
			if i := col[c]; i < len(rec) {
				return strings.TrimSpace(rec[i])
			}
			return ""
		}
		img, mask := get("image"), get("mask")
		split := get("split")
		if split != protocol.SplitTrain && split != protocol.SplitTest {
			ix.warn("%s line %d skipped: split %q is neither train nor test", csvPath, line, split)
			continue
		}
		if !fs.ValidPath(img) || !imageio.IsImageName(img) || !ix.isFile(path.Join(dir, img)) {
			ix.warn("%s line %d skipped: image %q is not an image file inside the dataset", csvPath, line, img)
			continue
		}
		kind := "anomaly"
		if l := strings.ToLower(get("label")); l == "normal" || l == "good" || l == "0" {
			kind = protocol.KindGood
		}
		var masks []string
		if mask != "" && kind != protocol.KindGood {
			if !fs.ValidPath(mask) || !ix.isFile(path.Join(dir, mask)) {
				ix.warn("%s line %d: mask %q of %s is not a file inside the dataset; ignored", csvPath, line, mask, img)
			} else {
				masks = []string{path.Join(dir, mask)}
			}
		}
		ix.add(path.Join(dir, img), get("object"), split, kind, masks)
	}
	return nil
}

// indexImagesMasks indexes every CLASS/Imgs folder of the images+masks layout.
func (ix *indexer) indexImagesMasks(dir, cat string) error {
	for _, class := range ix.subdirs(dir) {
		imgs := path.Join(dir, class, "Imgs")
		if !ix.isDir(imgs) {
			continue
		}
		byStem := map[string][]string{}
		var stems []string
		for _, f := range ix.images(imgs) {
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
			k := kind
			var masks []string
			if msk != "" {
				defect, err := ix.d.maskHasDefect(msk)
				if err != nil {
					ix.warn("mask %s skipped: %v", msk, err)
				} else if defect {
					masks = []string{msk}
				}
			}
			// This set files defect-free crops beside defective ones: a class image with an empty (or no)
			// mask is a good image, as the set's authors use it.
			if len(masks) == 0 {
				k = protocol.KindGood
			}
			ix.add(img, cat, protocol.SplitTest, k, masks)
		}
	}
	return nil
}

// indexPlain indexes ROOT/good and ROOT/KIND folders; masks in ROOT/ground_truth/KIND or beside the image
// as STEM_mask.*.
func (ix *indexer) indexPlain(dir, cat string) error {
	masks, done := ix.mvtecMasks(path.Join(dir, "ground_truth"))
	for _, k := range ix.subdirs(dir) {
		if k == "ground_truth" {
			continue
		}
		files := ix.images(path.Join(dir, k))
		beside := map[string]string{}
		for _, f := range files {
			if s := stem(f); maskStem(f) != s {
				beside[maskStem(f)] = f
			}
		}
		for _, f := range files {
			if maskStem(f) != stem(f) {
				continue // a mask beside its image
			}
			var m []string
			if k != protocol.KindGood {
				if b, ok := beside[stem(f)]; ok {
					m = []string{b}
					delete(beside, stem(f))
				} else {
					m = masks(k, f)
				}
			}
			ix.add(f, cat, protocol.SplitTest, k, m)
		}
		for _, b := range beside {
			ix.warn("mask %s has no image of the same stem; ignored", b)
		}
	}
	done()
	return nil
}

func (d *Dataset) maskHasDefect(id string) (bool, error) {
	m, err := d.decodeMask(id)
	if err != nil {
		return false, err
	}
	return m.Defects > 0, nil
}

func (d *Dataset) decodeConfig(id string) (image.Config, error) {
	f, err := d.root.Open(filepath.FromSlash(id))
	if err != nil {
		return image.Config{}, classify(err)
	}
	defer f.Close()
	cfg, _, err := imageio.DecodeConfig(f)
	return cfg, err
}
