//go:build !js

// Package datasettest writes tiny datasets of every supported layout, each with a different mask encoding,
// together with what an index of them must find. Tests of every command that takes a dataset use them, so
// the commands are checked against one expectation; the Python trainer's reader is checked against the
// same folders.
//
// Every image is 16x16 (JPEG masks then hold exact 8x8 blocks, so a lossy mask still has a known pixel
// count); a mask marks one rectangle (LOCO: two, one per file).
package datasettest

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/image/bmp"
)

// Size is the side of every generated image.
const Size = 16

// Image is one image the index must find.
type Image struct {
	ID, Key, Category, Split, Kind string
	Masks                          []string // mask files, relative to the root
	DefectPixels                   int      // pixels of the union of its masks
}

// Fixture is a generated dataset.
type Fixture struct {
	Layout string
	Root   string
	Images []Image // sorted by ID
	// Extra are files the index must warn about (a mask without an image, an image without its mask).
	Extra []string
}

// Layouts lists the layouts Write knows; "mvtec-set" is the mvtec layout as a folder of two categories.
func Layouts() []string {
	return []string{"mvtec", "mvtec-set", "mvtec2", "mvtec3d", "loco", "visa", "btad", "images+masks", "plain"}
}

// Split returns the images of one split.
func (f Fixture) Split(split string) []Image {
	var out []Image
	for _, im := range f.Images {
		if im.Split == split {
			out = append(out, im)
		}
	}
	return out
}

type writer struct {
	root string
	fx   *Fixture
	n    int
	err  error
	cats map[string]bool
}

// Write creates the fixture of layout under dir/NAME and returns it.
func Write(dir, layout string) (Fixture, error) {
	name := strings.ReplaceAll(layout, "+", "-")
	fx := Fixture{Layout: layout, Root: filepath.Join(dir, name)}
	w := &writer{root: fx.Root, fx: &fx, cats: map[string]bool{}}
	switch layout {
	case "mvtec":
		w.mvtec("", name)
	case "mvtec-set":
		fx.Layout = "mvtec"
		w.mvtec("capsule", "capsule")
		w.mvtec("screw", "screw")
	case "mvtec2":
		w.mvtec2()
	case "mvtec3d":
		w.mvtec3d()
	case "loco":
		w.loco()
	case "visa":
		w.visa()
	case "btad":
		w.btad()
	case "images+masks":
		w.imagesMasks(name)
	case "plain":
		w.plain(name)
	default:
		return Fixture{}, fmt.Errorf("datasettest: no fixture for layout %q", layout)
	}
	if w.err != nil {
		return Fixture{}, w.err
	}
	multi := len(w.cats) > 1
	for i := range fx.Images {
		im := &fx.Images[i]
		base := path.Base(im.ID)
		im.Key = im.Kind + "/" + strings.TrimSuffix(base, path.Ext(base))
		if multi {
			im.Key = im.Category + "/" + im.Key
		}
	}
	sort.Slice(fx.Images, func(a, b int) bool { return fx.Images[a].ID < fx.Images[b].ID })
	return fx, nil
}

// rect is the defect rectangle of the n-th mask: x in [x0, x0+w), y in [y0, y0+h).
func rect(n int) image.Rectangle {
	x0, y0 := 1+n%5, 2+n%4
	return image.Rect(x0, y0, x0+3+n%4, y0+2+n%3)
}

func (w *writer) file(rel string, data []byte) {
	if w.err != nil {
		return
	}
	p := filepath.Join(w.root, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		w.err = err
		return
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		w.err = err
	}
}

// image writes a 16x16 picture whose content depends on the image number, in the format of rel's
// extension.
func (w *writer) image(rel string) {
	w.n++
	img := image.NewNRGBA(image.Rect(0, 0, Size, Size))
	for y := 0; y < Size; y++ {
		for x := 0; x < Size; x++ {
			img.SetNRGBA(x, y, color.NRGBA{uint8(16*x + w.n), uint8(16*y + 3*w.n), uint8(7 * w.n), 255})
		}
	}
	w.file(rel, encode(rel, img))
}

func encode(rel string, img image.Image) []byte {
	var buf bytes.Buffer
	var err error
	switch strings.ToLower(path.Ext(rel)) {
	case ".jpg", ".jpeg":
		err = jpeg.Encode(&buf, img, &jpeg.Options{Quality: 95})
	case ".bmp":
		err = bmp.Encode(&buf, img)
	default:
		err = png.Encode(&buf, img)
	}
	if err != nil {
		panic(err) // encoding an in-memory image of a known type cannot fail
	}
	return buf.Bytes()
}

// Mask encodings.
const (
	grey255  = "grey 0/255"
	grey01   = "grey 0/1"
	classIDs = "class ids"
	grey16   = "16-bit"
	palette  = "palette"
	rgbMask  = "rgb"
	rgbaMask = "rgba"
	jpegMask = "jpeg"
	softMask = "soft" // 0/255 with a blurred rim and faint noise (the Magnetic-Tile set's PNG masks)
)

// mask writes the n-th mask rectangle (or an 8x8 block for JPEG) in an encoding and returns its pixel
// count.
func (w *writer) mask(rel, enc string, n int) int {
	r := rect(n)
	switch enc {
	case jpegMask:
		r = image.Rect(8, 0, 16, 8)
	case softMask:
		r = image.Rect(4, 4, 12, 12) // large enough that the bright core outweighs its rim, as real defects do
	}
	in := func(x, y int) bool { return image.Pt(x, y).In(r) }
	var img image.Image
	bounds := image.Rect(0, 0, Size, Size)
	switch enc {
	case softMask:
		g := image.NewGray(bounds)
		for y := 0; y < Size; y++ {
			for x := 0; x < Size; x++ {
				p := image.Pt(x, y)
				switch {
				case p.In(r):
					g.Pix[y*g.Stride+x] = 255
				case p.In(r.Inset(-1)):
					g.Pix[y*g.Stride+x] = uint8(8 + 8*((x+y)%3)) // a dark blurred rim, below the midpoint
				}
			}
		}
		g.Pix[0], g.Pix[Size*Size-1] = 1, 2 // compression noise far from the defect
		img = g
	case grey255, grey01, classIDs, jpegMask:
		v := map[string]uint8{grey255: 255, grey01: 1, classIDs: 3, jpegMask: 255}[enc]
		g := image.NewGray(bounds)
		for y := 0; y < Size; y++ {
			for x := 0; x < Size; x++ {
				if in(x, y) {
					g.Pix[y*g.Stride+x] = v
				}
			}
		}
		img = g
	case grey16:
		g := image.NewGray16(bounds)
		for y := 0; y < Size; y++ {
			for x := 0; x < Size; x++ {
				if in(x, y) {
					g.SetGray16(x, y, color.Gray16{Y: 255})
				}
			}
		}
		img = g
	case palette:
		p := image.NewPaletted(bounds, color.Palette{color.Black, color.RGBA{128, 0, 0, 255}})
		for y := 0; y < Size; y++ {
			for x := 0; x < Size; x++ {
				if in(x, y) {
					p.SetColorIndex(x, y, 1)
				}
			}
		}
		img = p
	case rgbMask, rgbaMask:
		c := image.NewNRGBA(bounds)
		for y := 0; y < Size; y++ {
			for x := 0; x < Size; x++ {
				switch {
				case in(x, y):
					c.SetNRGBA(x, y, color.NRGBA{0, 200, 0, 255})
				case enc == rgbMask:
					c.SetNRGBA(x, y, color.NRGBA{0, 0, 0, 255})
				default:
					c.SetNRGBA(x, y, color.NRGBA{255, 255, 255, 0}) // transparent background
				}
			}
		}
		img = c
	default:
		panic("datasettest: unknown mask encoding " + enc)
	}
	w.file(rel, encode(rel, img))
	return r.Dx() * r.Dy()
}

func (w *writer) add(id, cat, split, kind string, masks []string, defects int) {
	w.cats[cat] = true
	w.fx.Images = append(w.fx.Images, Image{ID: id, Category: cat, Split: split, Kind: kind, Masks: masks, DefectPixels: defects})
}

// mvtec: 3 train/good, 2 test/good, scratch with 0/255 _mask.png masks, dent with 0/1 masks named
// STEM.PNG and one upper-case .JPG test image, and one scratch image without a mask.
func (w *writer) mvtec(dir, cat string) {
	j := func(p string) string { return path.Join(dir, p) }
	for i := range 3 {
		w.image(j(fmt.Sprintf("train/good/%03d.png", i)))
		w.add(j(fmt.Sprintf("train/good/%03d.png", i)), cat, "train", "good", nil, 0)
	}
	for i := range 2 {
		w.image(j(fmt.Sprintf("test/good/%03d.png", i)))
		w.add(j(fmt.Sprintf("test/good/%03d.png", i)), cat, "test", "good", nil, 0)
	}
	for i := range 2 {
		id, m := j(fmt.Sprintf("test/scratch/%03d.png", i)), j(fmt.Sprintf("ground_truth/scratch/%03d_mask.png", i))
		w.image(id)
		w.add(id, cat, "test", "scratch", []string{m}, w.mask(m, grey255, i))
	}
	id := j("test/scratch/002.png")
	w.image(id)
	w.add(id, cat, "test", "scratch", nil, 0)
	w.fx.Extra = append(w.fx.Extra, id)
	for i, ext := range []string{".png", ".JPG"} {
		id, m := j(fmt.Sprintf("test/dent/%03d%s", i, ext)), j(fmt.Sprintf("ground_truth/dent/%03d.PNG", i))
		w.image(id)
		w.add(id, cat, "test", "dent", []string{m}, w.mask(m, grey01, 2+i))
	}
	orphan := j("ground_truth/dent/009_mask.png")
	w.mask(orphan, grey255, 0)
	w.fx.Extra = append(w.fx.Extra, orphan)
	w.file(j("test/dent/._000.png"), []byte("macOS resource fork"))
	w.file(j("readme.txt"), []byte("not an image"))
}

func (w *writer) mvtec2() {
	cat := "mvtec2"
	for i := range 2 {
		w.image(fmt.Sprintf("train/good/%03d_regular.png", i))
		w.add(fmt.Sprintf("train/good/%03d_regular.png", i), cat, "train", "good", nil, 0)
		w.image(fmt.Sprintf("validation/good/%03d_regular.png", i))
		w.add(fmt.Sprintf("validation/good/%03d_regular.png", i), cat, "validation", "good", nil, 0)
	}
	w.image("test_public/good/000_regular.png")
	w.add("test_public/good/000_regular.png", cat, "test", "good", nil, 0)
	for i := range 2 {
		id, m := fmt.Sprintf("test_public/bad/%03d_regular.png", i), fmt.Sprintf("test_public/ground_truth/bad/%03d_regular_mask.png", i)
		w.image(id)
		w.add(id, cat, "test", "bad", []string{m}, w.mask(m, grey16, i))
	}
	for _, split := range []string{"test_private", "test_private_mixed"} {
		for i := range 2 {
			id := fmt.Sprintf("%s/%03d_overexposed.png", split, i)
			w.image(id)
			w.add(id, cat, split, "unlabelled", nil, 0)
		}
	}
}

func (w *writer) mvtec3d() {
	cat := "mvtec3d"
	for _, split := range []string{"train", "validation"} {
		for i := range 2 {
			id := fmt.Sprintf("%s/good/rgb/%03d.png", split, i)
			w.image(id)
			w.add(id, cat, split, "good", nil, 0)
			w.file(fmt.Sprintf("%s/good/xyz/%03d.tiff", split, i), []byte("point cloud, ignored"))
		}
	}
	w.image("test/good/rgb/000.png")
	w.add("test/good/rgb/000.png", cat, "test", "good", nil, 0)
	for i := range 2 {
		id, m := fmt.Sprintf("test/hole/rgb/%03d.png", i), fmt.Sprintf("test/hole/gt/%03d.png", i)
		w.image(id)
		w.add(id, cat, "test", "hole", []string{m}, w.mask(m, classIDs, i))
	}
}

func (w *writer) loco() {
	cat := "loco"
	for _, split := range []string{"train", "validation"} {
		w.image(split + "/good/000.png")
		w.add(split+"/good/000.png", cat, split, "good", nil, 0)
	}
	w.image("test/good/000.png")
	w.add("test/good/000.png", cat, "test", "good", nil, 0)
	for i, kind := range []string{"logical_anomalies", "structural_anomalies"} {
		id := fmt.Sprintf("test/%s/%03d.png", kind, i)
		w.image(id)
		m0, m1 := fmt.Sprintf("ground_truth/%s/%03d/000.png", kind, i), fmt.Sprintf("ground_truth/%s/%03d/001.png", kind, i)
		w.mask(m0, grey255, 0)
		w.mask(m1, grey255, 3)
		w.add(id, cat, "test", kind, []string{m0, m1}, unionArea(rect(0), rect(3)))
	}
	w.file("defects_config.json", []byte(`[]`))
}

func unionArea(a, b image.Rectangle) int {
	n := 0
	for y := 0; y < Size; y++ {
		for x := 0; x < Size; x++ {
			if p := image.Pt(x, y); p.In(a) || p.In(b) {
				n++
			}
		}
	}
	return n
}

func (w *writer) visa() {
	var csv strings.Builder
	csv.WriteString("object,split,label,image,mask\n")
	for _, obj := range []string{"candle", "pcb1"} {
		for i := range 2 {
			id := fmt.Sprintf("%s/Data/Images/Normal/%04d.JPG", obj, i)
			w.image(id)
			split := "train"
			if i == 1 {
				split = "test"
			}
			w.add(id, obj, split, "good", nil, 0)
			fmt.Fprintf(&csv, "%s,%s,normal,%s,\n", obj, split, id)
		}
		id, m := fmt.Sprintf("%s/Data/Images/Anomaly/000.JPG", obj), fmt.Sprintf("%s/Data/Masks/Anomaly/000.png", obj)
		w.image(id)
		w.add(id, obj, "test", "anomaly", []string{m}, w.mask(m, palette, 1))
		fmt.Fprintf(&csv, "%s,test,anomaly,%s,%s\n", obj, id, m)
	}
	w.file("split_csv/1cls.csv", []byte(csv.String()))
}

func (w *writer) btad() {
	for _, prod := range []string{"01", "02"} {
		for i := range 2 {
			id := fmt.Sprintf("%s/train/ok/%04d.bmp", prod, i)
			w.image(id)
			w.add(id, prod, "train", "good", nil, 0)
		}
		w.image(prod + "/test/ok/0000.bmp")
		w.add(prod+"/test/ok/0000.bmp", prod, "test", "good", nil, 0)
		id, m := prod+"/test/ko/0000.bmp", prod+"/ground_truth/ko/0000.png"
		w.image(id)
		w.add(id, prod, "test", "ko", []string{m}, w.mask(m, rgbaMask, 2))
	}
}

func (w *writer) imagesMasks(cat string) {
	for i, class := range []string{"MT_Crack", "MT_Free"} {
		for j := range 2 {
			id, m := fmt.Sprintf("%s/Imgs/exp%d.jpg", class, j), fmt.Sprintf("%s/Imgs/exp%d.png", class, j)
			w.image(id)
			if class == "MT_Free" {
				// An empty mask: MT_Free's masks are all black.
				w.file(m, encode(m, image.NewGray(image.Rect(0, 0, Size, Size))))
				w.add(id, cat, "test", "good", nil, 0)
				continue
			}
			enc := grey255
			if j == 1 {
				enc = softMask
			}
			w.add(id, cat, "test", "Crack", []string{m}, w.mask(m, enc, i+j))
		}
	}
}

// plain: good/, crack/ with JPEG masks beside the images, stain/ with RGB masks in ground_truth/.
func (w *writer) plain(cat string) {
	for i := range 2 {
		id := fmt.Sprintf("good/%03d.png", i)
		w.image(id)
		w.add(id, cat, "test", "good", nil, 0)
	}
	for i := range 2 {
		id, m := fmt.Sprintf("crack/%03d.png", i), fmt.Sprintf("crack/%03d_mask.jpg", i)
		w.image(id)
		w.add(id, cat, "test", "crack", []string{m}, w.mask(m, jpegMask, 0))
	}
	id, m := "stain/000.png", "ground_truth/stain/000.png"
	w.image(id)
	w.add(id, cat, "test", "stain", []string{m}, w.mask(m, rgbMask, 4))
}
