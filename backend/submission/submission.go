// Package submission writes and checks MVTec AD 2 benchmark submissions.
//
// The layout is the one of MVTec's own tools (MVTecAD2_public_code_utils: mvtec_ad_2_public_offline.py
// names the files, utils.py / check_and_prepare_data_for_upload.py check and pack them):
//
//	NAME/anomaly_images/OBJECT/test_private/000_regular.tiff ...        float16, single channel, image size
//	NAME/anomaly_images/OBJECT/test_private_mixed/000_mixed.tiff ...
//	NAME/anomaly_images_thresholded/OBJECT/test_private/000_regular.png 0 = normal, 255 = anomalous
//	NAME/anomaly_images_thresholded/OBJECT/test_private_mixed/000_mixed.png
//
// packed as NAME.tar.gz with the one folder NAME inside. Each file is named after its image (STEM.png of
// the dataset's private split gives STEM.tiff and STEM.png). The official checker wants all eight objects
// with their image counts (Official); a checker run against a dataset (FromImages) wants that dataset's
// private images instead, and their sizes.
//
// Rules the checker enforces (the official ones first): every expected object, split and file is present
// and nothing else is inside anomaly_images and anomaly_images_thresholded; every TIFF has one page, one
// channel and float16 samples; every PNG is a single-channel 8- or 16-bit grey image whose values are only
// 0 and 255; in addition, a map and its mask have one size, which is the image's when known, and no map
// value is NaN. A missing anomaly_images_thresholded folder is a warning, as officially (the
// threshold-dependent metrics are then not computed).
package submission

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"fmt"
	"image"
	"image/png"
	"io"
	"math"
	"path"
	"slices"
	"sort"
	"strings"
	"time"
)

// Folder names of a submission.
const (
	MapsDir  = "anomaly_images"
	MasksDir = "anomaly_images_thresholded"
)

// Splits are the private test splits a submission holds.
var Splits = []string{"test_private", "test_private_mixed"}

// OfficialCounts is the number of images of each MVTec AD 2 object in each private split.
var OfficialCounts = map[string]int{
	"can": 321, "fabric": 314, "fruit_jelly": 255, "rice": 277,
	"sheet_metal": 142, "vial": 276, "wallplugs": 232, "walnuts": 228,
}

// Item is one expected image: its stem and size (0 when unknown).
type Item struct {
	Stem string
	W, H int
}

// Expected is what a submission must hold: object -> split -> images.
type Expected map[string]map[string][]Item

// Official is the full MVTec AD 2 submission: every object, NNN_regular in test_private and NNN_mixed in
// test_private_mixed.
func Official() Expected {
	e := Expected{}
	for obj, n := range OfficialCounts {
		e[obj] = map[string][]Item{}
		for _, sp := range Splits {
			suffix := "regular"
			if sp == "test_private_mixed" {
				suffix = "mixed"
			}
			for i := range n {
				e[obj][sp] = append(e[obj][sp], Item{Stem: fmt.Sprintf("%03d_%s", i, suffix)})
			}
		}
	}
	return e
}

// Writer writes a submission as a tar.gz stream.
type Writer struct {
	gz      *gzip.Writer
	tw      *tar.Writer
	root    string
	mod     time.Time
	Clamped int // map values clamped to the float16 range
	Files   int
}

// NewWriter starts a submission whose folder is root.
func NewWriter(w io.Writer, root string) (*Writer, error) {
	if root == "" || strings.ContainsAny(root, "/\\") || root == "." || root == ".." {
		return nil, fmt.Errorf("submission folder name %q", root)
	}
	gz := gzip.NewWriter(w)
	return &Writer{gz: gz, tw: tar.NewWriter(gz), root: root, mod: time.Now().UTC().Truncate(time.Second)}, nil
}

// Add writes one image's map (float32 data or float64 data64, w x h, its original size) as float16 TIFF
// and the map binarised at threshold (score >= threshold is 255) as PNG.
func (w *Writer) Add(object, split, stem string, width, height int, data []float32, data64 []float64, threshold float64) error {
	for _, s := range []string{object, split, stem} {
		if s == "" || strings.ContainsAny(s, "/\\") || s == "." || s == ".." {
			return fmt.Errorf("submission: bad name %q", s)
		}
	}
	var tb bytes.Buffer
	c, err := WriteTIFF16(&tb, width, height, data, data64)
	if err != nil {
		return err
	}
	w.Clamped += c
	mask := image.NewGray(image.Rect(0, 0, width, height))
	for i := range mask.Pix {
		var hit bool
		if data64 != nil {
			hit = data64[i] >= threshold
		} else {
			hit = float64(data[i]) >= threshold
		}
		if hit {
			mask.Pix[i] = 255
		}
	}
	var pb bytes.Buffer
	if err := (&png.Encoder{CompressionLevel: png.BestSpeed}).Encode(&pb, mask); err != nil {
		return err
	}
	if err := w.file(path.Join(w.root, MapsDir, object, split, stem+".tiff"), tb.Bytes()); err != nil {
		return err
	}
	return w.file(path.Join(w.root, MasksDir, object, split, stem+".png"), pb.Bytes())
}

func (w *Writer) file(name string, data []byte) error {
	if err := w.tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), ModTime: w.mod, Typeflag: tar.TypeReg, Format: tar.FormatPAX}); err != nil {
		return err
	}
	_, err := w.tw.Write(data)
	w.Files++
	return err
}

// Close finishes the archive.
func (w *Writer) Close() error {
	if err := w.tw.Close(); err != nil {
		return err
	}
	return w.gz.Close()
}

// Report is the outcome of Check: OK when Errors is empty.
type Report struct {
	Root     string   `json:"root"`
	Objects  int      `json:"objects"`
	Maps     int      `json:"maps"`
	Masks    int      `json:"masks"`
	Errors   []string `json:"errors"`
	Warnings []string `json:"warnings"`
}

// OK reports a submission without errors.
func (r *Report) OK() bool { return len(r.Errors) == 0 }

// maxListed bounds the messages of one kind, so a wholly wrong archive gives a readable report.
const maxListed = 20

type found struct {
	w, h int
}

// Check reads a submission tar.gz and checks it against exp (Official, or FromImages of a dataset).
func Check(r io.Reader, exp Expected) *Report {
	rep := &Report{Errors: []string{}, Warnings: []string{}}
	errs := map[string]int{}
	fail := func(kind, format string, a ...any) {
		errs[kind]++
		if errs[kind] <= maxListed {
			rep.Errors = append(rep.Errors, fmt.Sprintf(format, a...))
		} else if errs[kind] == maxListed+1 {
			rep.Errors = append(rep.Errors, fmt.Sprintf("... more %s errors left out", kind))
		}
	}
	gz, err := gzip.NewReader(r)
	if err != nil {
		fail("archive", "not a gzip file: %v", err)
		return rep
	}
	tr := tar.NewReader(gz)
	maps := map[string]found{}  // OBJECT/SPLIT/STEM
	masks := map[string]found{} // OBJECT/SPLIT/STEM
	dirs := map[string]bool{}   // every folder below the root, from files and folder entries
	var other []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			fail("archive", "reading the archive: %v", err)
			return rep
		}
		name := strings.TrimSuffix(h.Name, "/")
		name = strings.TrimPrefix(name, "./")
		if name == "" || name == "." {
			continue
		}
		if path.IsAbs(name) || strings.Contains(name, "\\") || path.Clean(name) != name || slices.Contains(strings.Split(name, "/"), "..") {
			fail("name", "entry %q: not a clean relative path", h.Name)
			continue
		}
		parts := strings.Split(name, "/")
		if rep.Root == "" {
			rep.Root = parts[0]
		} else if parts[0] != rep.Root {
			fail("layout", "entry %s is outside the one top folder %s", name, rep.Root)
			continue
		}
		rel := parts[1:]
		for i := 1; i < len(rel); i++ {
			dirs[strings.Join(rel[:i], "/")] = true
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if len(rel) > 0 {
				dirs[strings.Join(rel, "/")] = true
			}
			continue
		case tar.TypeReg:
		default:
			fail("type", "entry %s is not a regular file or a folder (type %q)", name, h.Typeflag)
			continue
		}
		if len(rel) != 4 || (rel[0] != MapsDir && rel[0] != MasksDir) {
			other = append(other, name)
			continue
		}
		key := strings.Join(rel[1:3], "/") + "/"
		stem, ext := strings.TrimSuffix(rel[3], path.Ext(rel[3])), path.Ext(rel[3])
		data, err := io.ReadAll(io.LimitReader(tr, 1<<32))
		if err != nil {
			fail("archive", "reading %s: %v", name, err)
			return rep
		}
		if rel[0] == MapsDir {
			if ext != ".tiff" {
				fail("file", "%s: anomaly_images holds only .tiff files", name)
				continue
			}
			info, vals, err := ReadTIFF16(data)
			switch {
			case err != nil:
				fail("tiff", "%s: %v", name, err)
			case info.Pages != 1:
				fail("tiff", "%s has %d pages, want one image", name, info.Pages)
			case info.SamplesPerPixel != 1:
				fail("tiff", "%s has %d channels, want one", name, info.SamplesPerPixel)
			case !info.Float16():
				fail("tiff", "%s has %d-bit samples of format %d, want float16 (16 bits, IEEE float)", name, info.BitsPerSample, info.SampleFormat)
			default:
				nan, inf := 0, 0
				for _, v := range vals {
					if v != v {
						nan++
					} else if math.IsInf(float64(v), 0) {
						inf++
					}
				}
				if nan > 0 {
					fail("values", "%s has %d NaN values", name, nan)
				}
				if inf > 0 {
					rep.Warnings = append(rep.Warnings, fmt.Sprintf("%s has %d infinite values", name, inf))
				}
				maps[key+stem] = found{info.W, info.H}
			}
			continue
		}
		if ext != ".png" {
			fail("file", "%s: anomaly_images_thresholded holds only .png files", name)
			continue
		}
		mw, mh, err := checkMaskPNG(data)
		if err != nil {
			fail("png", "%s: %v", name, err)
			continue
		}
		masks[key+stem] = found{mw, mh}
	}
	if rep.Root == "" {
		fail("layout", "the archive is empty")
		return rep
	}
	hasMasks := dirs[MasksDir]
	if !dirs[MapsDir] {
		fail("layout", "%s/%s is missing", rep.Root, MapsDir)
	}
	if !hasMasks {
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("%s/%s is missing: the threshold-dependent metrics (SegF1) cannot be computed", rep.Root, MasksDir))
	}
	for _, o := range other {
		fail("layout", "superfluous file %s (outside %s/OBJECT/SPLIT/ and %s/OBJECT/SPLIT/)", o, MapsDir, MasksDir)
	}
	// Folders: exactly the objects, exactly the splits.
	for d := range dirs {
		p := strings.Split(d, "/")
		if p[0] != MapsDir && p[0] != MasksDir {
			fail("layout", "superfluous folder %s/%s", rep.Root, d)
			continue
		}
		if p[0] == MasksDir && !hasMasks {
			continue
		}
		switch len(p) {
		case 2:
			if _, ok := exp[p[1]]; !ok {
				fail("layout", "superfluous folder %s/%s: not an expected object", rep.Root, d)
			}
		case 3:
			if _, ok := exp[p[1]]; ok && !slices.Contains(Splits, p[2]) {
				fail("layout", "superfluous folder %s/%s: the splits are %s", rep.Root, d, strings.Join(Splits, ", "))
			}
		case 4:
			fail("layout", "superfluous folder %s/%s", rep.Root, d)
		}
	}
	objs := make([]string, 0, len(exp))
	for o := range exp {
		objs = append(objs, o)
	}
	sort.Strings(objs)
	rep.Objects = len(objs)
	want := map[string]Item{}
	for _, o := range objs {
		for _, sp := range Splits {
			for _, it := range exp[o][sp] {
				want[o+"/"+sp+"/"+it.Stem] = it
			}
		}
	}
	for _, dir := range []string{MapsDir, MasksDir} {
		got := maps
		if dir == MasksDir {
			if !hasMasks {
				continue
			}
			got = masks
		}
		for _, o := range objs {
			if !dirs[dir+"/"+o] {
				fail("missing", "%s/%s/%s is missing", rep.Root, dir, o)
				continue
			}
			for _, sp := range Splits {
				if !dirs[dir+"/"+o+"/"+sp] {
					fail("missing", "%s/%s/%s/%s is missing", rep.Root, dir, o, sp)
				}
			}
		}
		for _, k := range sortedKeys(want) {
			if _, ok := got[k]; !ok {
				p := strings.Split(k, "/")
				if dirs[dir+"/"+p[0]+"/"+p[1]] {
					fail("missing", "%s/%s/%s is missing", rep.Root, dir, k+map[string]string{MapsDir: ".tiff", MasksDir: ".png"}[dir])
				}
			}
		}
		for _, k := range sortedKeys(got) {
			if _, ok := want[k]; !ok {
				fail("superfluous", "superfluous file %s/%s/%s", rep.Root, dir, k+map[string]string{MapsDir: ".tiff", MasksDir: ".png"}[dir])
			}
		}
	}
	for _, k := range sortedKeys(maps) {
		m := maps[k]
		it, ok := want[k]
		if !ok {
			continue
		}
		if it.W != 0 && (m.w != it.W || m.h != it.H) {
			fail("size", "%s/%s/%s.tiff is %dx%d, its image is %dx%d", rep.Root, MapsDir, k, m.w, m.h, it.W, it.H)
		}
		if mk, ok := masks[k]; ok && (mk.w != m.w || mk.h != m.h) {
			fail("size", "%s/%s/%s.png is %dx%d, its map is %dx%d", rep.Root, MasksDir, k, mk.w, mk.h, m.w, m.h)
		}
	}
	for _, k := range sortedKeys(masks) {
		if it, ok := want[k]; ok && it.W != 0 {
			if mk := masks[k]; mk.w != it.W || mk.h != it.H {
				if _, hasMap := maps[k]; !hasMap {
					fail("size", "%s/%s/%s.png is %dx%d, its image is %dx%d", rep.Root, MasksDir, k, mk.w, mk.h, it.W, it.H)
				}
			}
		}
	}
	rep.Maps, rep.Masks = len(maps), len(masks)
	return rep
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// checkMaskPNG checks a thresholded map: a PNG of colour type grey (no palette, no alpha, no colour) with
// 8 or 16 bits, whose values are only 0 and 255 (as the official checker reads them with PIL: a 1-bit PNG
// would read as 0/1 and fail).
func checkMaskPNG(data []byte) (int, int, error) {
	if len(data) < 33 || string(data[:8]) != "\x89PNG\r\n\x1a\n" || string(data[12:16]) != "IHDR" {
		return 0, 0, fmt.Errorf("not a PNG file")
	}
	w, h := int(binary.BigEndian.Uint32(data[16:])), int(binary.BigEndian.Uint32(data[20:]))
	depth, ctype := data[24], data[25]
	if ctype != 0 {
		return w, h, fmt.Errorf("colour type %d, want a single-channel grey image (type 0)", ctype)
	}
	if depth != 8 && depth != 16 {
		return w, h, fmt.Errorf("%d-bit grey, want 8 (or 16) bits with values 0 and 255", depth)
	}
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		return w, h, err
	}
	bad := 0
	switch m := img.(type) {
	case *image.Gray:
		for y := 0; y < h; y++ {
			for _, v := range m.Pix[y*m.Stride : y*m.Stride+w] {
				if v != 0 && v != 255 {
					bad++
				}
			}
		}
	case *image.Gray16:
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				if v := m.Gray16At(x, y).Y; v != 0 && v != 255 {
					bad++
				}
			}
		}
	default:
		return w, h, fmt.Errorf("decodes as %T, want grey", img)
	}
	if bad > 0 {
		return w, h, fmt.Errorf("%d pixels are neither 0 nor 255 (0 is normal, 255 anomalous)", bad)
	}
	return w, h, nil
}
