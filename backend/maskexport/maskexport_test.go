//go:build !js

package maskexport

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"math/rand"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/rdre-studio/studio/backend/dataset"
	"github.com/rdre-studio/studio/backend/imageio"
	"github.com/rdre-studio/studio/backend/store"
	"github.com/rdre-studio/studio/shared/mask"
	"github.com/rdre-studio/studio/shared/protocol"
)

const W, H = 24, 16

func writeFile(t *testing.T, p string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func encodePNG(t *testing.T, img image.Image) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func rgbImage(seed int64) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, W, H))
	r := rand.New(rand.NewSource(seed))
	for i := range img.Pix {
		img.Pix[i] = uint8(r.Intn(256))
		if i%4 == 3 {
			img.Pix[i] = 255
		}
	}
	return img
}

// binMask draws a rectangle mask x0..x1, y0..y1 as a grey image with the given defect value.
func rectGray(x0, y0, x1, y1 int, v uint8) *image.Gray {
	g := image.NewGray(image.Rect(0, 0, W, H))
	for y := y0; y <= y1; y++ {
		for x := x0; x <= x1; x++ {
			g.SetGray(x, y, color.Gray{Y: v})
		}
	}
	return g
}

// makeMVTec writes category "widget": train/good/000-001, test/good/000-001, test/scratch/000-002 with
// masks (one anti-aliased with value 200).
func makeMVTec(t *testing.T, root string) {
	c := filepath.Join(root, "widget")
	for i, p := range []string{"train/good/000.png", "train/good/001.png", "test/good/000.png", "test/good/001.png", "test/scratch/000.png", "test/scratch/001.png", "test/scratch/002.png"} {
		writeFile(t, filepath.Join(c, p), encodePNG(t, rgbImage(int64(i))))
	}
	writeFile(t, filepath.Join(c, "ground_truth/scratch/000_mask.png"), encodePNG(t, rectGray(1, 1, 5, 3, 255)))
	writeFile(t, filepath.Join(c, "ground_truth/scratch/001_mask.png"), encodePNG(t, rectGray(2, 2, 9, 9, 255)))
	writeFile(t, filepath.Join(c, "ground_truth/scratch/002_mask.png"), encodePNG(t, rectGray(10, 4, 20, 12, 200)))
}

func labelFrom(seed int64, classes ...int) *mask.Label {
	m, _ := mask.New(W, H)
	r := rand.New(rand.NewSource(seed))
	for i := range m.Pix {
		if r.Intn(3) == 0 {
			m.Pix[i] = uint8(classes[r.Intn(len(classes))])
		}
	}
	return m
}

func binOf(m *mask.Label) []bool { return m.Binary() }

func openAll(t *testing.T, root string) (*dataset.Dataset, *store.Store) {
	t.Helper()
	ds, err := dataset.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ds.Close() })
	st, err := store.Open(filepath.Join(t.TempDir(), "ws.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return ds, st
}

func TestExportMVTec_WorkspaceAndDatasetMasks_RoundTripPixelExact(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	makeMVTec(t, src)
	ds, st := openAll(t, src)
	id := ds.Info().ID
	if err := st.EnsureClasses(id, []string{"scratch"}); err != nil {
		t.Fatal(err)
	}
	oil, err := st.CreateClass(id, "oil", "#112233")
	if err != nil {
		t.Fatal(err)
	}
	// A class name that tries to leave the output folder.
	evil, err := st.CreateClass(id, "../../evil", "#445566")
	if err != nil {
		t.Fatal(err)
	}
	save := func(img string, m *mask.Label) {
		t.Helper()
		if _, err := st.SaveMask(id, img, m); err != nil {
			t.Fatal(err)
		}
	}
	// Redrawn defect image: keeps its folder kind, gets the workspace pixels.
	wsScratch := labelFrom(1, 1, oil.Index)
	save("widget/test/scratch/000.png", wsScratch)
	// A good image labelled mostly as oil: becomes test/oil.
	wsOil := labelFrom(2, oil.Index, oil.Index, oil.Index, 1, evil.Index) // oil dominates a higher index
	save("widget/test/good/001.png", wsOil)
	// Cleared defect image: becomes good, no mask.
	empty, _ := mask.New(W, H)
	save("widget/test/scratch/001.png", labelFrom(3, 1)) // an older version must not leak
	save("widget/test/scratch/001.png", empty)
	// A training image with a defect drawn in the evil class: moves to test/<safe name>.
	wsEvil := labelFrom(4, evil.Index)
	save("widget/train/good/001.png", wsEvil)

	// A good image someone checked.
	if _, _, err := st.SetReview(id, "widget/test/good/000.png", protocol.ReviewNoDefect); err != nil {
		t.Fatal(err)
	}

	out := filepath.Join(t.TempDir(), "out")
	sum, err := ExportMVTec(ds, st, out, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Images != 7 || sum.Masks != 4 || sum.WorkspaceMasks != 3 || sum.DatasetMasks != 1 || sum.Reencoded != 0 {
		t.Fatalf("summary %+v", sum)
	}
	// The manifest tells a checked good image from one nobody looked at, and a labelled one from both.
	for src, want := range map[string]string{"widget/test/good/000.png": protocol.ReviewNoDefect, "widget/test/good/001.png": protocol.ReviewLabelled,
		"widget/train/good/000.png": protocol.ReviewUnlabelled} {
		for _, f := range sum.Files {
			if f.Source == src && f.Review != want {
				t.Errorf("%s exported with review %q, want %q", src, f.Review, want)
			}
		}
	}
	evilKind := SafeName("../../evil")
	if strings.Contains(evilKind, "/") || strings.HasPrefix(evilKind, ".") {
		t.Fatalf("SafeName gave %q", evilKind)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(out), "evil")); err == nil {
		t.Fatal("a class name wrote outside the export folder")
	}

	// Re-open the export as a dataset: where did each source go, and is its mask pixel-exact?
	exp, err := dataset.Open(filepath.Join(out, "widget"))
	if err != nil {
		t.Fatal(err)
	}
	defer exp.Close()
	where := map[string]FileEntry{}
	for _, f := range sum.Files {
		where[f.Source] = f
	}
	gtOf := func(src string) ([]bool, bool) {
		t.Helper()
		fe, ok := where[src]
		if !ok {
			t.Fatalf("%s not exported", src)
		}
		rel := strings.TrimPrefix(fe.Image, "widget/")
		im, ok := exp.Image(rel)
		if !ok {
			t.Fatalf("%s exported as %s, which the export's index lacks", src, fe.Image)
		}
		if im.Width != W || im.Height != H {
			t.Fatalf("%s exported at %dx%d", src, im.Width, im.Height)
		}
		m, _, _, has, err := exp.GroundTruth(rel)
		if err != nil {
			t.Fatal(err)
		}
		return m, has
	}
	expect := []struct {
		src, kind string
		mask      []bool // nil = good
	}{
		{"widget/test/scratch/000.png", "scratch", binOf(wsScratch)},
		{"widget/test/good/001.png", "oil", binOf(wsOil)},
		{"widget/test/scratch/001.png", "good", nil},
		{"widget/train/good/001.png", evilKind, binOf(wsEvil)},
		{"widget/test/scratch/002.png", "scratch", grayBin(rectGray(10, 4, 20, 12, 200))},
		{"widget/test/good/000.png", "good", nil},
		{"widget/train/good/000.png", "good", nil},
	}
	for _, e := range expect {
		got, has := gtOf(e.src)
		fe := where[e.src]
		if fe.Kind != e.kind {
			t.Errorf("%s: kind %s, want %s", e.src, fe.Kind, e.kind)
		}
		if (e.mask != nil) != has {
			t.Fatalf("%s: has mask %v, want %v", e.src, has, e.mask != nil)
		}
		if e.mask != nil && !reflect.DeepEqual(got, e.mask) {
			t.Errorf("%s: exported mask differs from the stored one", e.src)
		}
		// PNG sources are copied byte for byte.
		a, _ := os.ReadFile(filepath.Join(src, e.src))
		b, _ := os.ReadFile(filepath.Join(out, fe.Image))
		if !bytes.Equal(a, b) {
			t.Errorf("%s: image bytes changed", e.src)
		}
	}
	if where["widget/train/good/000.png"].Image != "widget/train/good/000.png" {
		t.Errorf("an untouched training image was renamed to %s", where["widget/train/good/000.png"].Image)
	}
	// Masks are one 8-bit channel with only 0 and 255.
	raw, err := os.ReadFile(filepath.Join(out, where["widget/test/scratch/002.png"].Mask))
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	g, ok := img.(*image.Gray)
	if !ok {
		t.Fatalf("mask decodes as %T", img)
	}
	for _, v := range g.Pix {
		if v != 0 && v != 255 {
			t.Fatalf("mask holds %d", v)
		}
	}

	// Import the export's ground truth into the exported dataset: the workspace then holds exactly the
	// exported masks, with each kind's class.
	st2, err := store.Open(filepath.Join(t.TempDir(), "ws2.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st2.Close()
	isum, err := ImportMVTec(exp, st2, filepath.Join(out, "widget", "ground_truth"))
	if err != nil {
		t.Fatal(err)
	}
	if isum.Masks != 4 {
		t.Fatalf("imported %d masks, want 4", isum.Masks)
	}
	classes, _ := st2.Classes(exp.Info().ID)
	idx := map[string]int{}
	for _, c := range classes {
		idx[c.Name] = c.Index
	}
	for _, im := range exp.Images() {
		want, _, _, has, err := exp.GroundTruth(im.ID)
		if err != nil {
			t.Fatal(err)
		}
		m, _, err := st2.Mask(exp.Info().ID, im.ID, 0)
		if !has {
			if err == nil {
				t.Errorf("%s: imported a mask for a good image", im.ID)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", im.ID, err)
		}
		for i, d := range want {
			wantV := 0
			if d {
				wantV = idx[im.Kind]
			}
			if int(m.Pix[i]) != wantV {
				t.Fatalf("%s pixel %d: %d, want %d", im.ID, i, m.Pix[i], wantV)
			}
		}
	}

	// A second export into the same folder needs Overwrite; a foreign folder is never replaced.
	if _, err := ExportMVTec(ds, st, out, Options{}); err == nil {
		t.Fatal("export over an earlier export without Overwrite")
	}
	if _, err := ExportMVTec(ds, st, out, Options{Overwrite: true, MasksOnly: true}); err != nil {
		t.Fatalf("overwrite: %v", err)
	}
	if _, err := os.Stat(filepath.Join(out, "widget", "train")); !os.IsNotExist(err) {
		t.Fatalf("masks-only overwrite left the old images: %v", err)
	}
	foreign := filepath.Join(t.TempDir(), "foreign")
	writeFile(t, filepath.Join(foreign, "widget", "keep.txt"), []byte("mine"))
	if _, err := ExportMVTec(ds, st, foreign, Options{Overwrite: true}); err == nil {
		t.Fatal("overwrote a folder that no export wrote")
	}
	if _, err := os.Stat(filepath.Join(foreign, "widget", "keep.txt")); err != nil {
		t.Fatal("the foreign file was removed")
	}
}

func grayBin(g *image.Gray) []bool {
	m, _, _ := imageio.BinaryMask(g)
	return m
}

func TestExportMVTec_ImagesMasks_ReencodesJPEGAndLinks(t *testing.T) {
	src := filepath.Join(t.TempDir(), "mtd")
	jp := image.NewRGBA(image.Rect(0, 0, W, H))
	for i := range jp.Pix {
		jp.Pix[i] = uint8(i)
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, jp, nil); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(src, "MT_Crack/Imgs/a.jpg"), buf.Bytes())
	writeFile(t, filepath.Join(src, "MT_Crack/Imgs/a.png"), encodePNG(t, rectGray(0, 0, 3, 3, 255)))
	writeFile(t, filepath.Join(src, "MT_Free/Imgs/b.jpg"), buf.Bytes())
	writeFile(t, filepath.Join(src, "MT_Free/Imgs/b.png"), encodePNG(t, rectGray(0, 0, 0, 0, 0)))
	ds, st := openAll(t, src)
	out := filepath.Join(t.TempDir(), "out")
	sum, err := ExportMVTec(ds, st, out, Options{Link: true})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(sum.Categories, []string{"mtd"}) || sum.Reencoded != 2 || sum.Masks != 1 || sum.Kinds["Crack"] != 1 || sum.Kinds["good"] != 1 {
		t.Fatalf("summary %+v", sum)
	}
	exp, err := dataset.Open(filepath.Join(out, "mtd"))
	if err != nil {
		t.Fatal(err)
	}
	im, ok := exp.Image("test/Crack/000.png")
	if !ok || im.MaskID != "ground_truth/Crack/000_mask.png" {
		t.Fatalf("exported image %+v %v", im, ok)
	}
	// The re-encoded PNG holds exactly the decoded JPEG pixels.
	a, err := ds.Decode("MT_Crack/Imgs/a.jpg")
	if err != nil {
		t.Fatal(err)
	}
	b, err := exp.Decode("test/Crack/000.png")
	if err != nil {
		t.Fatal(err)
	}
	pa, _, _ := imageio.RGB8(a)
	pb, _, _ := imageio.RGB8(b)
	if !bytes.Equal(pa, pb) {
		t.Fatal("re-encoding changed pixels")
	}
}

func TestExportMVTec_Link_HardLinksPNG(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	makeMVTec(t, src)
	ds, st := openAll(t, src)
	out := filepath.Join(filepath.Dir(src), "out") // same file system as the source
	sum, err := ExportMVTec(ds, st, out, Options{Link: true})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Linked != 7 {
		t.Fatalf("linked %d of 7", sum.Linked)
	}
	a, _ := os.Stat(filepath.Join(src, "widget/test/good/000.png"))
	b, _ := os.Stat(filepath.Join(out, "widget/test/good/000.png"))
	if !os.SameFile(a, b) {
		t.Fatal("not a hard link")
	}
}

func TestExportCOCO_RLE_DecodesToStoredMasks(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	makeMVTec(t, src)
	ds, st := openAll(t, src)
	id := ds.Info().ID
	if err := st.EnsureClasses(id, []string{"scratch"}); err != nil {
		t.Fatal(err)
	}
	oil, _ := st.CreateClass(id, "oil", "")
	two := labelFrom(7, 1, oil.Index)
	if _, err := st.SaveMask(id, "widget/test/good/000.png", two); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "coco", "annotations.json")
	sum, err := ExportCOCO(ds, st, file)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Images != 7 || sum.Masks != 4 {
		t.Fatalf("summary %+v", sum)
	}
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var doc cocoDoc
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Categories) != 2 || len(doc.Images) != 7 {
		t.Fatalf("categories %+v images %d", doc.Categories, len(doc.Images))
	}
	files := map[int]string{}
	for _, im := range doc.Images {
		files[im.ID] = im.FileName
	}
	perImage := map[string]map[int][]bool{}
	for _, a := range doc.Annotations {
		m, err := DecodeCOCORLE(a.Segmentation.Size[0], a.Segmentation.Size[1], a.Segmentation.Counts)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, v := range m {
			if v {
				n++
			}
		}
		if n != a.Area || a.IsCrowd != 1 {
			t.Fatalf("annotation %d: area %d, decoded %d", a.ID, a.Area, n)
		}
		f := files[a.ImageID]
		if perImage[f] == nil {
			perImage[f] = map[int][]bool{}
		}
		perImage[f][a.CategoryID] = m
	}
	// The two-class workspace mask: each class's annotation is exactly its pixels.
	for _, cls := range []int{1, oil.Index} {
		got := perImage["widget/test/good/000.png"][cls]
		if got == nil {
			t.Fatalf("class %d missing", cls)
		}
		for i, v := range two.Pix {
			if got[i] != (int(v) == cls) {
				t.Fatalf("class %d pixel %d: %v", cls, i, got[i])
			}
		}
	}
	// A dataset mask (anti-aliased 200 counts) lands in the scratch class.
	want := grayBin(rectGray(10, 4, 20, 12, 200))
	if got := perImage["widget/test/scratch/002.png"][1]; !reflect.DeepEqual(got, want) {
		t.Fatal("dataset mask differs after COCO RLE")
	}
	if len(perImage["widget/test/good/001.png"]) != 0 {
		t.Fatal("a good image got annotations")
	}
}

// COCO's RLE is column-major and starts with background: check a hand-countable 3x2 case.
func TestEncodeCOCORLE_ColumnMajor(t *testing.T) {
	// Row-major pixels (w=3, h=2):
	//   1 0 1
	//   1 1 0
	// Column-major: 1 1 | 0 1 | 1 0  -> runs: 0 bg, 2 fg, 1 bg, 2 fg, 1 bg
	m := &mask.Label{W: 3, H: 2, Pix: []uint8{1, 0, 1, 1, 1, 0}}
	rle, area, bbox := EncodeCOCORLE(m, 1)
	if !reflect.DeepEqual(rle.Counts, []int{0, 2, 1, 2, 1}) || rle.Size != [2]int{2, 3} || area != 4 || bbox != [4]float64{0, 0, 3, 2} {
		t.Fatalf("rle %+v area %d bbox %v", rle, area, bbox)
	}
	if _, err := DecodeCOCORLE(2, 3, []int{0, 7}); err == nil {
		t.Fatal("overlong counts accepted")
	}
	if _, err := DecodeCOCORLE(2, 3, []int{1, 2}); err == nil {
		t.Fatal("short counts accepted")
	}
}

func TestImportMVTec_DatasetGroundTruth_MatchesAndRefusesBadFiles(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	makeMVTec(t, src)
	ds, st := openAll(t, src)
	id := ds.Info().ID
	gt := filepath.Join(src, "widget") // a category folder: its ground_truth/ is used
	sum, err := ImportMVTec(ds, st, gt)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Masks != 3 {
		t.Fatalf("imported %d", sum.Masks)
	}
	for _, im := range ds.Images() {
		want, _, _, has, _ := ds.GroundTruth(im.ID)
		m, v, err := st.Mask(id, im.ID, 0)
		if has != (err == nil) {
			t.Fatalf("%s: has %v, stored err %v", im.ID, has, err)
		}
		if has && (v != 1 || !reflect.DeepEqual(m.Binary(), want)) {
			t.Fatalf("%s: stored mask differs", im.ID)
		}
	}
	// A mask of the wrong size, or one that matches no image, fails the whole import: nothing is stored.
	bad := filepath.Join(t.TempDir(), "gt")
	writeFile(t, filepath.Join(bad, "scratch/000_mask.png"), encodePNG(t, rectGray(0, 0, 1, 1, 255)))
	small := image.NewGray(image.Rect(0, 0, W-1, H))
	writeFile(t, filepath.Join(bad, "scratch/001_mask.png"), encodePNG(t, small))
	before, _ := st.MaskedImages(id)
	if _, err := ImportMVTec(ds, st, bad); err == nil || !strings.Contains(err.Error(), "23x16") {
		t.Fatalf("size mismatch: %v", err)
	}
	os.Remove(filepath.Join(bad, "scratch/001_mask.png"))
	writeFile(t, filepath.Join(bad, "scratch/077_mask.png"), encodePNG(t, rectGray(0, 0, 1, 1, 255)))
	if _, err := ImportMVTec(ds, st, bad); err == nil || !strings.Contains(err.Error(), "077") {
		t.Fatalf("unmatched mask: %v", err)
	}
	after, _ := st.MaskedImages(id)
	if !reflect.DeepEqual(before, after) {
		t.Fatalf("a failed import stored masks: %v -> %v", before, after)
	}
	if _, err := ImportMVTec(ds, st, t.TempDir()); err == nil {
		t.Fatal("an empty folder imported")
	}
}

func BenchmarkExportMVTec_Demo(b *testing.B) {
	src := filepath.Join(b.TempDir(), "src")
	if err := os.MkdirAll(filepath.Join(src, "widget/test/good"), 0o755); err != nil {
		b.Fatal(err)
	}
	img := image.NewGray(image.Rect(0, 0, 1024, 1024))
	var buf bytes.Buffer
	png.Encode(&buf, img)
	for i := 0; i < 20; i++ {
		os.WriteFile(filepath.Join(src, "widget/test/good", fmt.Sprintf("%03d.png", i)), buf.Bytes(), 0o644)
	}
	ds, err := dataset.Open(src)
	if err != nil {
		b.Fatal(err)
	}
	st, err := store.Open(filepath.Join(b.TempDir(), "ws.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	m, _ := mask.New(1024, 1024)
	for i := 0; i < 1024*200; i++ {
		m.Pix[i] = 1
	}
	st.EnsureClasses(ds.Info().ID, []string{"x"})
	for _, im := range ds.Images() {
		st.SaveMask(ds.Info().ID, im.ID, m)
	}
	n := 0
	for b.Loop() {
		n++
		out := filepath.Join(b.TempDir(), "out", strings.Repeat("x", n%5+1))
		if _, err := ExportMVTec(ds, st, out, Options{Overwrite: true}); err != nil {
			b.Fatal(err)
		}
	}
}
