//go:build !js

package mapio

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"image/color"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/rdre-studio/studio/backend/metrics"
)

// casesDir holds the shared reader/metric cases; CI puts shared/ beside the checkout, and may lack it.
const casesDir = "../../../shared/cases"

// float64Values lose something in float32: digits below its resolution, and range beyond it.
var float64Values = []float64{1 - 1e-8, 1 - 2e-8, 1e39, -1e39, 0.1, math.SmallestNonzeroFloat64, 1e-300, -0.0, 1}

// npyF8 writes a .npy of float64 values by hand: descr '<f8' or '>f8', C or Fortran order, shape (h, w).
func npyF8(order binary.ByteOrder, fortran bool, w, h int, vals []float64) []byte {
	descr, fo := "<f8", "False"
	if order == binary.BigEndian {
		descr = ">f8"
	}
	if fortran {
		fo = "True"
	}
	var data bytes.Buffer
	for i := range vals {
		j := i
		if fortran { // column by column
			j = (i%h)*w + i/h
		}
		binary.Write(&data, order, vals[j])
	}
	return npyWithHeader(fmt.Sprintf("{'descr': '%s', 'fortran_order': %s, 'shape': (%d, %d), }", descr, fo, h, w), data.Bytes())
}

func sameBits(a, b []float64) bool {
	return slices.EqualFunc(a, b, func(x, y float64) bool { return math.Float64bits(x) == math.Float64bits(y) })
}

func TestReadNPY_Float64_KeepsFullPrecision(t *testing.T) {
	w, h := 3, 3
	for _, order := range []binary.ByteOrder{binary.LittleEndian, binary.BigEndian} {
		for _, fortran := range []bool{false, true} {
			ctx := fmt.Sprintf("%v fortran %v", order, fortran)
			m, err := ReadNPY(bytes.NewReader(npyF8(order, fortran, w, h, float64Values)))
			if err != nil {
				t.Fatalf("%s: %v", ctx, err)
			}
			if err := checkValues(m); err != nil || m.Data != nil || m.W != w || m.H != h {
				t.Fatalf("%s: %dx%d, Data %v: %v", ctx, m.W, m.H, m.Data, err)
			}
			if !sameBits(m.Data64, float64Values) {
				t.Errorf("%s: got %v, want %v bit for bit", ctx, m.Data64, float64Values)
			}
			if err := m.CheckFinite(); err != nil {
				t.Errorf("%s: %v", ctx, err)
			}
		}
	}
	// float32 files still come back in Data.
	var buf bytes.Buffer
	if err := WriteNPY(&buf, 2, 1, []float32{1, 2}); err != nil {
		t.Fatal(err)
	}
	if m, err := ReadNPY(&buf); err != nil || m.Data64 != nil || len(m.Data) != 2 {
		t.Errorf("float32 npy: %+v %v", m, err)
	}
}

func TestReadNPY_Float64_HostileSizes_Error(t *testing.T) {
	hdr := "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 2), }"
	for name, b := range map[string][]byte{
		"truncated": npyWithHeader(hdr, make([]byte, 31)),
		"trailing":  npyWithHeader(hdr, make([]byte, 33)),
		"huge":      npyWithHeader("{'descr': '>f8', 'fortran_order': False, 'shape': (16384, 16384), }", make([]byte, 64)),
		"too large": npyWithHeader("{'descr': '<f8', 'fortran_order': False, 'shape': (16385, 16384), }", nil),
	} {
		if _, err := ReadNPY(bytes.NewReader(b)); !errors.Is(err, ErrFormat) {
			t.Errorf("%s: got %v, want ErrFormat", name, err)
		}
	}
}

func TestReadTIFF_Float64_KeepsFullPrecision(t *testing.T) {
	w, h := 3, 3
	for _, order := range []binary.ByteOrder{binary.LittleEndian, binary.BigEndian} {
		for _, lay := range []struct{ rps, tw, th int }{{3, 0, 0}, {1, 0, 0}, {0, 16, 16}, {0, 2, 2}} {
			ctx := fmt.Sprintf("%v %+v", order, lay)
			m, err := ReadTIFF(bytes.NewReader(tiffSamples(order, w, h, float64Values, 64, lay.rps, lay.tw, lay.th)))
			if err != nil {
				t.Fatalf("%s: %v", ctx, err)
			}
			if err := checkValues(m); err != nil || m.Data != nil {
				t.Fatalf("%s: Data %v: %v", ctx, m.Data, err)
			}
			if !sameBits(m.Data64, float64Values) {
				t.Errorf("%s: got %v, want %v bit for bit", ctx, m.Data64, float64Values)
			}
		}
	}
	// A float64 TIFF that declares more than its bytes hold is refused before allocating.
	b := tiffSamples(binary.LittleEndian, w, h, float64Values, 64, 3, 0, 0)
	if _, err := ReadTIFF(bytes.NewReader(b[:len(b)-8])); !errors.Is(err, ErrFormat) {
		t.Errorf("truncated float64 tiff: got %v, want ErrFormat", err)
	}
}

func TestCheckFinite_Data64_NamesPixel(t *testing.T) {
	for _, bad := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		m := Map{W: 2, H: 2, Data64: []float64{0, 1e300, 2, bad}}
		err := m.CheckFinite()
		if !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), "(x 1, y 1)") {
			t.Errorf("%v: got %v, want ErrFormat naming pixel (x 1, y 1)", bad, err)
		}
	}
	if err := (Map{W: 2, H: 1, Data64: []float64{1e39, -1e39}}).CheckFinite(); err != nil {
		t.Errorf("finite values beyond float32: %v", err)
	}
}

// loadCase reads a shared case as the metrics engine sees it: maps through ReadFile, masks decoded here
// with image/png (0/255, a missing mask all normal), label = kind != "good".
func loadCase(t *testing.T, dir string) []metrics.Image {
	t.Helper()
	var images []metrics.Image
	kinds, err := os.ReadDir(filepath.Join(dir, "cat", "test"))
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range kinds {
		files, err := os.ReadDir(filepath.Join(dir, "cat", "test", k.Name()))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			stem := strings.TrimSuffix(f.Name(), ".png")
			im := metrics.Image{Key: k.Name() + "/" + stem, Kind: k.Name()}
			if k.Name() != "good" {
				im.Label = 1
			}
			m, err := ReadFile(filepath.Join(dir, "maps", k.Name(), stem+".npy"))
			if err != nil {
				t.Fatal(err)
			}
			if err := m.CheckFinite(); err != nil {
				t.Fatal(err)
			}
			if m.Data64 == nil {
				t.Fatalf("%s: map is not float64; the case needs float64 maps", im.Key)
			}
			im.W, im.H, im.Map64 = m.W, m.H, m.Data64
			mf, err := os.Open(filepath.Join(dir, "cat", "ground_truth", k.Name(), stem+"_mask.png"))
			if errors.Is(err, os.ErrNotExist) {
				images = append(images, im)
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			mask, err := png.Decode(mf)
			mf.Close()
			if err != nil {
				t.Fatalf("mask of %s: %v", im.Key, err)
			}
			if b := mask.Bounds(); b.Dx() != m.W || b.Dy() != m.H {
				t.Fatalf("mask of %s is %v, map %dx%d", im.Key, b, m.W, m.H)
			}
			im.Mask = make([]bool, m.W*m.H)
			for y := 0; y < m.H; y++ {
				for x := 0; x < m.W; x++ {
					im.Mask[y*m.W+x] = color.GrayModel.Convert(mask.At(mask.Bounds().Min.X+x, mask.Bounds().Min.Y+y)).(color.Gray).Y >= 128
				}
			}
			images = append(images, im)
		}
	}
	return images
}

// TestSharedCases_Float64Maps_MatchExpected evaluates the two cases at full precision against the
// independent implementation's values (TestCompute_Map64_* in package metrics cover the same path without
// the shared folder).
func TestSharedCases_Float64Maps_MatchExpected(t *testing.T) {
	for _, name := range []string{"maps-float64-close", "maps-float64-large"} {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(casesDir, name)
			if _, err := os.Stat(dir); err != nil {
				t.Skipf("shared case not found at %s (CI may not have shared/cases): %v", dir, err)
			}
			raw, err := os.ReadFile(filepath.Join(dir, "expected.json"))
			if err != nil {
				t.Fatal(err)
			}
			var exp map[string]json.RawMessage
			if err := json.Unmarshal(raw, &exp); err != nil {
				t.Fatal(err)
			}
			images := loadCase(t, dir)
			res, err := metrics.Compute(images, metrics.Options{FPRLimit: 0.3})
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]*float64{
				"image_auroc": res.ImageAUROC, "image_ap": res.ImageAP, "image_f1_max": res.ImageF1Max,
				"pixel_auroc": res.PixelAUROC, "pixel_ap": res.PixelAP, "pixel_aupro": res.PixelAUPRO, "pixel_f1_max": res.PixelF1Max,
			}
			for k, v := range exp {
				if k == "counts" {
					continue
				}
				var want float64
				if err := json.Unmarshal(v, &want); err != nil {
					t.Fatalf("expected %s: %v", k, err)
				}
				g, ok := got[k]
				switch {
				case !ok:
					t.Errorf("expected.json has %s, which this test does not check", k)
				case g == nil:
					t.Errorf("%s: got null, want %.17g", k, want)
				case math.Abs(*g-want) > 1e-9:
					t.Errorf("%s: got %.17g, want %.17g", k, *g, want)
				}
			}
			for _, k := range []string{"image_auroc", "pixel_auroc", "pixel_aupro"} {
				if _, ok := exp[k]; !ok {
					t.Errorf("expected.json lacks %s", k)
				}
			}
			var wantCounts, gotCounts map[string]int64
			if err := json.Unmarshal(exp["counts"], &wantCounts); err != nil || len(wantCounts) == 0 {
				t.Fatalf("expected counts: %v", err)
			}
			b, _ := json.Marshal(res.Counts)
			json.Unmarshal(b, &gotCounts)
			for k, want := range wantCounts {
				if g, ok := gotCounts[k]; !ok {
					t.Errorf("count %s is not in the result", k)
				} else if g != want {
					t.Errorf("count %s: got %d, want %d", k, g, want)
				}
			}
			// Thresholds are values of the maps, not codes or rounded values.
			vals := map[float64]bool{}
			for _, im := range images {
				for _, v := range im.Map64 {
					vals[v] = true
				}
			}
			if p := res.PixelF1MaxThreshold; p == nil || !vals[*p] {
				t.Errorf("pixel F1-max threshold %v is no map value", p)
			}
		})
	}
}
