//go:build !js

// Package maskexport writes a dataset's masks, as the workspace has them, in the MVTec AD layout or as
// COCO RLE JSON, and imports an MVTec ground-truth folder into the workspace.
//
// Which mask counts for an image: its newest workspace version when there is one (an empty version means
// the user cleared it: the image is good), else the dataset's own ground truth (thresholded at 128), else
// none (good).
//
// MVTec export (ExportMVTec) writes, for every category of the dataset (an images+masks dataset becomes
// one category named after the dataset):
//
//	OUT/CATEGORY/train/good/NNN.png           training images that are still good
//	OUT/CATEGORY/test/KIND/NNN.png            every other image; KIND "good" when it has no defect pixel
//	OUT/CATEGORY/ground_truth/KIND/NNN_mask.png  one 8-bit grey channel, 0 or 255, the image's own size
//	OUT/rdre-export.json                      which source image became which file, and the counts
//
// KIND is the image's folder kind when the dataset already had it as defective; for an image that was
// good in the dataset (or a training image) it is the name of the class that holds most of its defect
// pixels (ties: the lower class index). Class names are user text, so they are made folder-safe (anything
// but letters, digits, '-', '_' and '.' becomes '_'; names that would be "." or ".." are prefixed). A
// training image with defect pixels moves to test/KIND, since MVTec's training split is defect-free by
// definition. NNN numbers each output folder from 000 in source id order, so an untouched MVTec category
// keeps its file names. PNG sources are copied byte for byte (or hard-linked with Options.Link); JPEG, BMP
// and TIFF sources are decoded and re-encoded as PNG (lossless from the decoded pixels; a JPEG's original
// compression is not preserved), and the summary counts them.
//
// COCO export (ExportCOCO) writes one JSON document: every image (file_name = its id in the dataset), the
// dataset's label classes as categories (id = class index), and per image one annotation per class present,
// with an uncompressed RLE segmentation ("counts" list, column-major as COCO defines, starting with a
// background run), iscrowd 1, area and bbox.
//
// Import (ImportMVTec) reads GT/KIND/STEM_mask.png (or STEM.png) files, matches each to the dataset image
// of that kind and stem (or, failing that, the one image anywhere with that stem), checks its size, and
// stores all of them as new workspace versions in one transaction: nothing is stored when any file fails.
// Each kind becomes a label class if it is not one yet; a mask's defect pixels get that class's index.
package maskexport

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
	"sort"
	"strings"

	"github.com/rdre-studio/studio/backend/dataset"
	"github.com/rdre-studio/studio/backend/imageio"
	"github.com/rdre-studio/studio/backend/store"
	"github.com/rdre-studio/studio/shared/mask"
	"github.com/rdre-studio/studio/shared/protocol"
)

// ManifestName is the export's record of what it wrote, at the top of the output folder.
const ManifestName = "rdre-export.json"

// Options tune ExportMVTec.
type Options struct {
	// MasksOnly writes ground_truth/ only, no images.
	MasksOnly bool
	// Link hard-links PNG sources instead of copying them (falls back to a copy across file systems).
	Link bool
	// Overwrite replaces category folders of an earlier export in out (recognised by its manifest);
	// without it an existing category folder is an error. Folders not written by an export are never
	// removed.
	Overwrite bool
}

// Summary says what an export or import did.
type Summary struct {
	Out            string         `json:"out"`
	Dataset        string         `json:"dataset"`
	Categories     []string       `json:"categories"`
	Images         int            `json:"images"`         // images written (or listed, for COCO)
	Masks          int            `json:"masks"`          // mask files or annotated images
	WorkspaceMasks int            `json:"workspaceMasks"` // masks that came from the workspace
	DatasetMasks   int            `json:"datasetMasks"`   // masks that came from the dataset's ground truth
	Reencoded      int            `json:"reencoded"`      // non-PNG images re-encoded as PNG
	Linked         int            `json:"linked"`         // images hard-linked rather than copied
	Kinds          map[string]int `json:"kinds"`          // images per output kind
	Files          []FileEntry    `json:"files,omitempty"`
}

// FileEntry maps a source image to what the export wrote for it.
type FileEntry struct {
	Source string `json:"source"`
	Image  string `json:"image,omitempty"`
	Mask   string `json:"mask,omitempty"`
	Kind   string `json:"kind"`
	From   string `json:"from"` // "workspace", "dataset" or "none"
	// Review is the image's review state in the workspace (protocol.Review*; "unlabelled" when nobody
	// marked it), so that a good image someone checked is told apart from one nobody looked at.
	Review string `json:"review,omitempty"`
}

// resolved is one image's export decision.
type resolved struct {
	im    protocol.ImageInfo
	label *mask.Label // nil when good
	from  string
	split string
	kind  string
}

// resolve decides every image's mask, kind and split.
func resolve(ds *dataset.Dataset, st *store.Store) ([]resolved, []protocol.LabelClass, error) {
	info := ds.Info()
	if err := st.EnsureClasses(info.ID, defectKinds(info.Kinds)); err != nil {
		return nil, nil, err
	}
	classes, err := st.Classes(info.ID)
	if err != nil {
		return nil, nil, err
	}
	byName := map[string]int{}
	byIndex := map[int]string{}
	for _, c := range classes {
		byName[strings.ToLower(c.Name)] = c.Index
		byName[strings.ToLower(store.KindOf(c))] = c.Index // a renamed class still stands for its folder
		byIndex[c.Index] = c.Name
	}
	newest, err := st.MaskedImages(info.ID)
	if err != nil {
		return nil, nil, err
	}
	var out []resolved
	for _, im := range ds.Images() {
		r := resolved{im: im, from: "none", split: im.Split, kind: im.Kind}
		if v, ok := newest[im.ID]; ok {
			m, _, err := st.Mask(info.ID, im.ID, v)
			if err != nil {
				return nil, nil, err
			}
			if im.Width != 0 && (m.W != im.Width || m.H != im.Height) {
				return nil, nil, fmt.Errorf("workspace mask of %s is %dx%d, the image is %dx%d", im.ID, m.W, m.H, im.Width, im.Height)
			}
			r.from = "workspace"
			if m.Count() > 0 {
				r.label = m
			}
		} else if im.MaskID != "" {
			bin, w, h, ok, err := ds.GroundTruth(im.ID)
			if err != nil {
				return nil, nil, err
			}
			if ok {
				m, err := mask.New(w, h)
				if err != nil {
					return nil, nil, fmt.Errorf("ground truth of %s: %w", im.ID, err)
				}
				idx := byName[strings.ToLower(im.Kind)]
				if idx == 0 {
					idx = 1
				}
				for i, d := range bin {
					if d {
						m.Pix[i] = uint8(idx)
					}
				}
				r.from = "dataset"
				if m.Count() > 0 {
					r.label = m
				}
			}
		}
		switch {
		case r.label == nil:
			r.kind = protocol.KindGood
		case im.Kind == protocol.KindGood || im.Split == protocol.SplitTrain:
			r.kind = majorityClass(r.label, byIndex)
			r.split = protocol.SplitTest
		}
		out = append(out, r)
	}
	return out, classes, nil
}

func defectKinds(kinds []string) []string {
	var out []string
	for _, k := range kinds {
		if k != protocol.KindGood {
			out = append(out, k)
		}
	}
	return out
}

// majorityClass names the class with most pixels in m (ties: lower index), made folder-safe.
func majorityClass(m *mask.Label, names map[int]string) string {
	var count [256]int
	for _, v := range m.Pix {
		count[v]++
	}
	best := 0
	for i := 1; i < 256; i++ {
		if count[i] > count[best] || best == 0 && count[i] > 0 {
			best = i
		}
	}
	name, ok := names[best]
	if !ok {
		name = fmt.Sprintf("class_%d", best)
	}
	return SafeName(name)
}

// SafeName turns a class name into a folder name that cannot leave its parent or hide.
func SafeName(s string) string {
	var b strings.Builder
	for _, c := range s {
		if (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' {
			b.WriteRune(c)
		} else {
			b.WriteByte('_')
		}
	}
	out := b.String()
	if out == "" || strings.HasPrefix(out, ".") {
		out = "class" + out
	}
	return out
}

// categoryOf names the output category of an image.
func categoryOf(info protocol.DatasetInfo, im protocol.ImageInfo) string {
	if info.Layout == protocol.LayoutImagesMasks || im.Category == "" {
		return SafeName(info.Name)
	}
	return SafeName(im.Category)
}

// ExportMVTec writes the dataset with its workspace masks in MVTec AD layout under out.
func ExportMVTec(ds *dataset.Dataset, st *store.Store, out string, opt Options) (Summary, error) {
	info := ds.Info()
	sum := Summary{Out: out, Dataset: info.ID, Kinds: map[string]int{}}
	items, _, err := resolve(ds, st)
	if err != nil {
		return sum, fmt.Errorf("export %s: %w", info.ID, err)
	}
	cats := map[string]bool{}
	for _, r := range items {
		cats[categoryOf(info, r.im)] = true
	}
	for c := range cats {
		sum.Categories = append(sum.Categories, c)
	}
	sort.Strings(sum.Categories)
	if err := prepareOut(out, sum.Categories, opt.Overwrite); err != nil {
		return sum, err
	}
	root, err := os.OpenRoot(out)
	if err != nil {
		return sum, fmt.Errorf("export to %s: %w", out, err)
	}
	defer root.Close()

	reviews, err := st.Reviews(info.ID)
	if err != nil {
		return sum, fmt.Errorf("export %s: review states: %w", info.ID, err)
	}
	next := map[string]int{} // output folder -> next number
	for _, r := range items {
		cat := categoryOf(info, r.im)
		folder := path.Join(cat, r.split, r.kind)
		n := next[folder]
		next[folder] = n + 1
		name := fmt.Sprintf("%03d", n)
		fe := FileEntry{Source: r.im.ID, Kind: r.kind, From: r.from, Review: protocol.ReviewUnlabelled}
		if rv, ok := reviews[r.im.ID]; ok {
			fe.Review = rv.State
		}
		if !opt.MasksOnly {
			fe.Image = path.Join(folder, name+".png")
			linked, reenc, err := writeImage(ds, root, r.im.ID, fe.Image, opt.Link)
			if err != nil {
				return sum, fmt.Errorf("export %s: %w", r.im.ID, err)
			}
			sum.Images++
			if linked {
				sum.Linked++
			}
			if reenc {
				sum.Reencoded++
			}
		}
		if r.label != nil {
			fe.Mask = path.Join(cat, "ground_truth", r.kind, name+"_mask.png")
			if err := writeMask(root, fe.Mask, r.label); err != nil {
				return sum, fmt.Errorf("export mask of %s: %w", r.im.ID, err)
			}
			sum.Masks++
			if r.from == "workspace" {
				sum.WorkspaceMasks++
			} else {
				sum.DatasetMasks++
			}
		}
		sum.Kinds[r.kind]++
		sum.Files = append(sum.Files, fe)
	}
	raw, err := json.MarshalIndent(sum, "", "  ")
	if err != nil {
		return sum, fmt.Errorf("export manifest: %w", err)
	}
	if err := root.WriteFile(ManifestName, append(raw, '\n'), 0o644); err != nil {
		return sum, fmt.Errorf("write %s: %w", ManifestName, err)
	}
	return sum, nil
}

// prepareOut creates out and makes sure no category folder of a foreign export would be overwritten.
func prepareOut(out string, cats []string, overwrite bool) error {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return fmt.Errorf("export to %s: %w", out, err)
	}
	_, manErr := os.Stat(filepath.Join(out, ManifestName))
	ours := manErr == nil
	for _, c := range cats {
		p := filepath.Join(out, c)
		entries, err := os.ReadDir(p)
		if errors.Is(err, os.ErrNotExist) || (err == nil && len(entries) == 0) {
			continue
		}
		if err != nil {
			return fmt.Errorf("export to %s: %w", p, err)
		}
		if !overwrite {
			return fmt.Errorf("export to %s: the folder exists and is not empty (use overwrite to replace an earlier export)", p)
		}
		if !ours {
			return fmt.Errorf("export to %s: the folder exists and was not written by an export (no %s): refusing to replace it", p, ManifestName)
		}
		if err := os.RemoveAll(p); err != nil {
			return fmt.Errorf("export: remove earlier %s: %w", p, err)
		}
	}
	return nil
}

func writeImage(ds *dataset.Dataset, root *os.Root, id, dst string, link bool) (linked, reencoded bool, err error) {
	if err := root.MkdirAll(path.Dir(dst), 0o755); err != nil {
		return false, false, err
	}
	if strings.EqualFold(path.Ext(id), ".png") {
		if link {
			if linkImage(ds, id, filepath.Join(root.Name(), filepath.FromSlash(dst))) {
				return true, false, nil
			}
		}
		f, err := ds.Open(id)
		if err != nil {
			return false, false, err
		}
		defer f.Close()
		w, err := root.Create(dst)
		if err != nil {
			return false, false, err
		}
		if _, err := io.Copy(w, f); err != nil {
			w.Close()
			return false, false, fmt.Errorf("copy to %s: %w", dst, err)
		}
		return false, false, w.Close()
	}
	img, err := ds.Decode(id)
	if err != nil {
		return false, false, err
	}
	return false, true, writePNG(root, dst, img)
}

// linkImage hard-links the dataset file id to dst when the plain path names the very file that the
// confined open returns (so a symlink swapped in after indexing cannot make the export link a file from
// outside the dataset). It reports success; on any failure the caller copies instead.
func linkImage(ds *dataset.Dataset, id, dst string) bool {
	f, err := ds.Open(id)
	if err != nil {
		return false
	}
	defer f.Close()
	confined, err := f.Stat()
	if err != nil {
		return false
	}
	src := filepath.Join(ds.Info().Root, filepath.FromSlash(id))
	plain, err := os.Lstat(src)
	if err != nil || !plain.Mode().IsRegular() || !os.SameFile(confined, plain) {
		return false
	}
	return os.Link(src, dst) == nil
}

func writePNG(root *os.Root, dst string, img image.Image) error {
	if err := root.MkdirAll(path.Dir(dst), 0o755); err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return fmt.Errorf("encode %s: %w", dst, err)
	}
	if err := root.WriteFile(dst, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", dst, err)
	}
	return nil
}

func writeMask(root *os.Root, dst string, m *mask.Label) error {
	g := image.NewGray(image.Rect(0, 0, m.W, m.H))
	for i, v := range m.Pix {
		if v != 0 {
			g.Pix[i] = 255
		}
	}
	return writePNG(root, dst, g)
}

// COCO document types (the subset this export writes).
type (
	cocoDoc struct {
		Info        cocoInfo         `json:"info"`
		Images      []cocoImage      `json:"images"`
		Categories  []cocoCategory   `json:"categories"`
		Annotations []cocoAnnotation `json:"annotations"`
	}
	cocoInfo struct {
		Description string `json:"description"`
		Version     string `json:"version"`
	}
	cocoImage struct {
		ID       int    `json:"id"`
		FileName string `json:"file_name"`
		Width    int    `json:"width"`
		Height   int    `json:"height"`
	}
	cocoCategory struct {
		ID            int    `json:"id"`
		Name          string `json:"name"`
		Supercategory string `json:"supercategory"`
	}
	cocoAnnotation struct {
		ID           int        `json:"id"`
		ImageID      int        `json:"image_id"`
		CategoryID   int        `json:"category_id"`
		Segmentation cocoRLE    `json:"segmentation"`
		Area         int        `json:"area"`
		BBox         [4]float64 `json:"bbox"`
		IsCrowd      int        `json:"iscrowd"`
	}
	cocoRLE struct {
		Size   [2]int `json:"size"` // [height, width]
		Counts []int  `json:"counts"`
	}
)

// ExportCOCO writes the dataset's masks as one COCO JSON file at file.
func ExportCOCO(ds *dataset.Dataset, st *store.Store, file string) (Summary, error) {
	info := ds.Info()
	sum := Summary{Out: file, Dataset: info.ID, Categories: info.Categories, Kinds: map[string]int{}}
	items, classes, err := resolve(ds, st)
	if err != nil {
		return sum, fmt.Errorf("export %s: %w", info.ID, err)
	}
	doc := cocoDoc{
		Info:        cocoInfo{Description: "RD-RE Studio mask export of " + info.Name, Version: "1"},
		Images:      []cocoImage{},
		Categories:  []cocoCategory{},
		Annotations: []cocoAnnotation{},
	}
	for _, c := range classes {
		doc.Categories = append(doc.Categories, cocoCategory{ID: c.Index, Name: c.Name, Supercategory: "defect"})
	}
	for i, r := range items {
		w, h := r.im.Width, r.im.Height
		if r.label != nil {
			w, h = r.label.W, r.label.H
		}
		doc.Images = append(doc.Images, cocoImage{ID: i + 1, FileName: r.im.ID, Width: w, Height: h})
		sum.Images++
		sum.Kinds[r.kind]++
		if r.label == nil {
			continue
		}
		sum.Masks++
		if r.from == "workspace" {
			sum.WorkspaceMasks++
		} else {
			sum.DatasetMasks++
		}
		for _, idx := range presentClasses(r.label) {
			a := cocoAnnotation{ID: len(doc.Annotations) + 1, ImageID: i + 1, CategoryID: idx, IsCrowd: 1}
			a.Segmentation, a.Area, a.BBox = EncodeCOCORLE(r.label, idx)
			doc.Annotations = append(doc.Annotations, a)
		}
	}
	raw, err := json.Marshal(doc)
	if err != nil {
		return sum, fmt.Errorf("encode COCO: %w", err)
	}
	if dir := filepath.Dir(file); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return sum, fmt.Errorf("export COCO to %s: %w", file, err)
		}
	}
	if err := os.WriteFile(file, raw, 0o644); err != nil {
		return sum, fmt.Errorf("export COCO to %s: %w", file, err)
	}
	return sum, nil
}

func presentClasses(m *mask.Label) []int {
	var seen [256]bool
	for _, v := range m.Pix {
		seen[v] = true
	}
	var out []int
	for i := 1; i < 256; i++ {
		if seen[i] {
			out = append(out, i)
		}
	}
	return out
}

// EncodeCOCORLE returns the uncompressed COCO RLE of the pixels of class idx: counts alternate
// background/foreground runs in column-major order, starting with a (possibly zero) background run.
func EncodeCOCORLE(m *mask.Label, idx int) (rle cocoRLE, area int, bbox [4]float64) {
	rle.Size = [2]int{m.H, m.W}
	x0, y0, x1, y1 := m.W, m.H, -1, -1
	cur, run := false, 0
	for x := 0; x < m.W; x++ {
		for y := 0; y < m.H; y++ {
			on := int(m.Pix[y*m.W+x]) == idx
			if on != cur {
				rle.Counts = append(rle.Counts, run)
				cur, run = on, 0
			}
			run++
			if on {
				area++
				x0, y0, x1, y1 = min(x0, x), min(y0, y), max(x1, x), max(y1, y)
			}
		}
	}
	rle.Counts = append(rle.Counts, run)
	if area > 0 {
		bbox = [4]float64{float64(x0), float64(y0), float64(x1 - x0 + 1), float64(y1 - y0 + 1)}
	}
	return rle, area, bbox
}

// DecodeCOCORLE turns uncompressed COCO RLE counts back into a row-major binary mask.
func DecodeCOCORLE(h, w int, counts []int) ([]bool, error) {
	if h <= 0 || w <= 0 || h > mask.MaxSide || w > mask.MaxSide {
		return nil, fmt.Errorf("COCO RLE size %dx%d outside 1..%d", w, h, mask.MaxSide)
	}
	out := make([]bool, w*h)
	pos, on := 0, false
	for _, c := range counts {
		if c < 0 || c > w*h-pos {
			return nil, fmt.Errorf("COCO RLE run %d at pixel %d overflows %dx%d", c, pos, w, h)
		}
		for k := pos; k < pos+c; k++ {
			if on {
				x, y := k/h, k%h
				out[y*w+x] = true
			}
		}
		pos += c
		on = !on
	}
	if pos != w*h {
		return nil, fmt.Errorf("COCO RLE covers %d of %d pixels", pos, w*h)
	}
	return out, nil
}

// ImportMVTec stores the masks of an MVTec ground-truth folder (gtDir/KIND/STEM_mask.png) as new
// workspace versions of the matching dataset images, all in one transaction.
func ImportMVTec(ds *dataset.Dataset, st *store.Store, gtDir string) (Summary, error) {
	info := ds.Info()
	sum := Summary{Out: gtDir, Dataset: info.ID, Categories: info.Categories, Kinds: map[string]int{}}
	if st, err := os.Stat(filepath.Join(gtDir, "ground_truth")); err == nil && st.IsDir() {
		gtDir = filepath.Join(gtDir, "ground_truth") // a category folder was given
	}
	root, err := os.OpenRoot(gtDir)
	if err != nil {
		return sum, fmt.Errorf("import %s: %w", gtDir, err)
	}
	defer root.Close()
	kinds, err := os.ReadDir(gtDir)
	if err != nil {
		return sum, fmt.Errorf("import %s: %w", gtDir, err)
	}
	// Index the dataset by kind+stem and by stem alone.
	type key struct{ kind, stem string }
	byKindStem := map[key][]protocol.ImageInfo{}
	byStem := map[string][]protocol.ImageInfo{}
	for _, im := range ds.Images() {
		s := stemOf(im.ID)
		byKindStem[key{im.Kind, s}] = append(byKindStem[key{im.Kind, s}], im)
		byStem[s] = append(byStem[s], im)
	}
	gtCategory := filepath.Base(filepath.Dir(filepath.Clean(gtDir))) // CATEGORY/ground_truth -> CATEGORY
	pick := func(cands []protocol.ImageInfo) (protocol.ImageInfo, bool) {
		if len(cands) == 1 {
			return cands[0], true
		}
		var hit []protocol.ImageInfo
		for _, c := range cands {
			if c.Category == gtCategory {
				hit = append(hit, c)
			}
		}
		if len(hit) == 1 {
			return hit[0], true
		}
		return protocol.ImageInfo{}, false
	}

	exported := exportedMasks(ds, gtDir)
	type pending struct {
		im   protocol.ImageInfo
		kind string
		bin  []bool
	}
	var todo []pending
	var kindNames []string
	for _, k := range kinds {
		if !k.IsDir() {
			continue
		}
		files, err := os.ReadDir(filepath.Join(gtDir, k.Name()))
		if err != nil {
			return sum, fmt.Errorf("import %s: %w", k.Name(), err)
		}
		used := false
		for _, f := range files {
			if !f.Type().IsRegular() || !imageio.IsImageName(f.Name()) || strings.HasPrefix(f.Name(), ".") {
				continue
			}
			rel := path.Join(k.Name(), f.Name())
			s := stemOf(f.Name())
			if len(s) > 5 && strings.EqualFold(s[len(s)-5:], "_mask") {
				s = s[:len(s)-5]
			}
			// An export of this tool renames images (NNN.png); its manifest says which image each mask was.
			im, ok := exported[filepath.Join(gtDir, k.Name(), f.Name())]
			if !ok {
				im, ok = pick(byKindStem[key{k.Name(), s}])
			}
			if !ok {
				im, ok = pick(byStem[s])
			}
			if !ok {
				return sum, fmt.Errorf("import %s: no single dataset image of kind %q (or anywhere) has the stem %q", rel, k.Name(), s)
			}
			bin, w, h, err := readMask(root, rel)
			if err != nil {
				return sum, fmt.Errorf("import %s: %w", rel, err)
			}
			if w != im.Width || h != im.Height {
				return sum, fmt.Errorf("import %s: mask is %dx%d, image %s is %dx%d", rel, w, h, im.ID, im.Width, im.Height)
			}
			todo = append(todo, pending{im: im, kind: k.Name(), bin: bin})
			used = true
		}
		if used {
			kindNames = append(kindNames, k.Name())
		}
	}
	if len(todo) == 0 {
		return sum, fmt.Errorf("import %s: no mask files found (expected KIND/NNN_mask.png)", gtDir)
	}
	if err := st.EnsureClasses(info.ID, kindNames); err != nil {
		return sum, fmt.Errorf("import %s: %w", gtDir, err)
	}
	classes, err := st.Classes(info.ID)
	if err != nil {
		return sum, fmt.Errorf("import %s: %w", gtDir, err)
	}
	idxOf := map[string]int{}
	for _, c := range classes {
		idxOf[strings.ToLower(c.Name)] = c.Index
		idxOf[strings.ToLower(store.KindOf(c))] = c.Index
	}
	batch := map[string]*mask.Label{}
	for _, p := range todo {
		if _, dup := batch[p.im.ID]; dup {
			return sum, fmt.Errorf("import %s: two mask files match image %s", gtDir, p.im.ID)
		}
		m, err := mask.New(p.im.Width, p.im.Height)
		if err != nil {
			return sum, fmt.Errorf("import mask of %s: %w", p.im.ID, err)
		}
		idx := idxOf[strings.ToLower(p.kind)]
		if idx == 0 {
			idx = 1 // "good" folder or an unusable name: any defect pixel still counts as defect
		}
		for i, d := range p.bin {
			if d {
				m.Pix[i] = uint8(idx)
			}
		}
		batch[p.im.ID] = m
		sum.Kinds[p.kind]++
		sum.Files = append(sum.Files, FileEntry{Source: p.im.ID, Kind: p.kind, From: "import"})
	}
	if _, err := st.SaveMasks(info.ID, batch); err != nil {
		return sum, fmt.Errorf("import %s: %w", gtDir, err)
	}
	sum.Masks = len(batch)
	sum.WorkspaceMasks = len(batch)
	sort.Slice(sum.Files, func(a, b int) bool { return sum.Files[a].Source < sum.Files[b].Source })
	return sum, nil
}

// exportedMasks reads the manifest of an export of this tool that gtDir (OUT/CATEGORY/ground_truth) belongs
// to, and returns the dataset image each of its mask files was made from (by absolute path). Without a
// manifest, or for a manifest of another dataset's images, it is empty and masks match by name.
func exportedMasks(ds *dataset.Dataset, gtDir string) map[string]protocol.ImageInfo {
	out := filepath.Dir(filepath.Dir(filepath.Clean(gtDir)))
	raw, err := os.ReadFile(filepath.Join(out, ManifestName))
	if err != nil {
		return nil
	}
	var sum Summary
	if json.Unmarshal(raw, &sum) != nil {
		return nil
	}
	m := map[string]protocol.ImageInfo{}
	for _, f := range sum.Files {
		if f.Mask == "" {
			continue
		}
		if im, ok := ds.Image(f.Source); ok {
			m[filepath.Join(out, filepath.FromSlash(f.Mask))] = im
		}
	}
	return m
}

func stemOf(p string) string {
	b := path.Base(p)
	return strings.TrimSuffix(b, path.Ext(b))
}

func readMask(root *os.Root, rel string) ([]bool, int, int, error) {
	f, err := root.Open(filepath.FromSlash(rel))
	if err != nil {
		return nil, 0, 0, err
	}
	defer f.Close()
	// The same mask rule as the dataset's own masks (imageio.DecodeMask), so an imported folder reads as
	// `rdre eval` would read it.
	m, err := imageio.DecodeMask(f)
	if err != nil {
		return nil, 0, 0, err
	}
	return m.Pix, m.W, m.H, nil
}
