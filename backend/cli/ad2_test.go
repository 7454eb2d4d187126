//go:build !js

package cli

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rdre-studio/studio/backend/calibrate"
	"github.com/rdre-studio/studio/backend/inference"
	"github.com/rdre-studio/studio/backend/internal/testenv"
	"github.com/rdre-studio/studio/backend/mapio"
	"github.com/rdre-studio/studio/backend/submission"
	"github.com/rdre-studio/studio/shared/protocol"
)

// putNPY writes a float32 map, making its folder.
func putNPY(t *testing.T, path string, w, h int, data []float32) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	writeNPY(t, path, w, h, data)
}

// ad2Mini is a generated miniature of the MVTec AD 2 layout (one category, "can"): 2 train, 3 validation,
// test_public with 2 good and 2 bad images (masks in test_public/ground_truth/bad/STEM_mask.png), and 2
// images in each private split, named as the real ones (000_regular.png, 000_mixed.png). Images are 12x10,
// not square, so that a swapped width and height shows. Maps are written for every split under
// maps/SPLIT/KEY.npy, random but higher on the defects.
type ad2Mini struct {
	root, maps string
	w, h       int
	// vals holds every map by split and key; masks the test_public masks by key.
	vals  map[string]map[string][]float32
	masks map[string][]bool
}

func writeAD2Mini(t *testing.T) *ad2Mini {
	t.Helper()
	dir := t.TempDir()
	m := &ad2Mini{root: filepath.Join(dir, "can"), maps: filepath.Join(dir, "maps"), w: 12, h: 10, vals: map[string]map[string][]float32{}, masks: map[string][]bool{}}
	r := rand.New(rand.NewPCG(21, 22))
	img := image.NewGray(image.Rect(0, 0, m.w, m.h))
	put := func(rel, split, key string, mask []bool) {
		writePNG(t, filepath.Join(m.root, rel), img)
		v := make([]float32, m.w*m.h)
		for i := range v {
			v[i] = float32(r.IntN(1000)) / 1000
			if mask != nil && mask[i] {
				v[i] += 0.6
			}
		}
		if m.vals[split] == nil {
			m.vals[split] = map[string][]float32{}
		}
		m.vals[split][key] = v
		putNPY(t, filepath.Join(m.maps, split, filepath.FromSlash(key)+".npy"), m.w, m.h, v)
	}
	for i := range 2 {
		writePNG(t, filepath.Join(m.root, fmt.Sprintf("train/good/%03d_regular.png", i)), img)
	}
	for i := range 3 {
		put(fmt.Sprintf("validation/good/%03d_regular.png", i), "validation", fmt.Sprintf("good/%03d_regular", i), nil)
	}
	for i := range 2 {
		put(fmt.Sprintf("test_public/good/%03d_regular.png", i), "test", fmt.Sprintf("good/%03d_regular", i), nil)
	}
	for i := range 2 {
		mask := image.NewGray(image.Rect(0, 0, m.w, m.h))
		bm := make([]bool, m.w*m.h)
		for y := 2 + i; y < 5+i; y++ {
			for x := 3; x < 7+2*i; x++ {
				mask.Pix[y*m.w+x], bm[y*m.w+x] = 255, true
			}
		}
		writePNG(t, filepath.Join(m.root, fmt.Sprintf("test_public/ground_truth/bad/%03d_regular_mask.png", i)), mask)
		key := fmt.Sprintf("bad/%03d_regular", i)
		m.masks[key] = bm
		put(fmt.Sprintf("test_public/bad/%03d_regular.png", i), "test", key, bm)
	}
	for _, sp := range []struct{ split, suffix string }{{"test_private", "regular"}, {"test_private_mixed", "mixed"}} {
		for i := range 2 {
			stem := fmt.Sprintf("%03d_%s", i, sp.suffix)
			put(sp.split+"/"+stem+".png", sp.split, "unlabelled/"+stem, nil)
		}
	}
	return m
}

func run(t *testing.T, args ...string) (string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	if rc := Main(args, &out, &errb); rc != 0 {
		t.Fatalf("rdre %s: rc %d: %s%s", strings.Join(args, " "), rc, errb.String(), out.String())
	}
	return out.String(), errb.String()
}

// TestAD2_Miniature_CalibrateEvalSubmitCheck runs the MVTec AD 2 protocol on the miniature: thresholds
// from the validation split only, evaluation of test_public with SegF1 at the calibrated threshold, the
// submission of both private splits, and the checker.
func TestAD2_Miniature_CalibrateEvalSubmitCheck(t *testing.T) {
	m := writeAD2Mini(t)
	dir := t.TempDir()
	thrFile := filepath.Join(dir, "thresholds.json")
	run(t, "calibrate", "--maps", filepath.Join(m.maps, "validation"), "--data", m.root, "--method", "mean-kstd:3,image-fpr:0.4", "--out", thrFile)
	raw, err := os.ReadFile(thrFile)
	if err != nil {
		t.Fatal(err)
	}
	tf, err := calibrate.Decode(raw)
	if err != nil {
		t.Fatal(err)
	}
	// Reference: mean + 3 std (population) of the 360 validation pixels, and the image threshold for a
	// false-alarm rate of 0.4 over 3 images (one image allowed: the highest max).
	var vals []float64
	var maxes []float64
	for _, v := range m.vals["validation"] {
		mx := math.Inf(-1)
		for _, x := range v {
			vals = append(vals, float64(x))
			mx = max(mx, float64(x))
		}
		maxes = append(maxes, mx)
	}
	var sum, sq float64
	for _, v := range vals {
		sum += v
	}
	mean := sum / float64(len(vals))
	for _, v := range vals {
		sq += (v - mean) * (v - mean)
	}
	want := mean + 3*math.Sqrt(sq/float64(len(vals)))
	if tf.Pixel == nil || math.Abs(tf.Pixel.Threshold-want) > 1e-12 || tf.Pixel.Method != "mean-kstd:3" {
		t.Fatalf("pixel threshold %+v, want %v", tf.Pixel, want)
	}
	if tf.Image == nil || tf.Image.Threshold != max(maxes[0], maxes[1], maxes[2]) || tf.Image.FPR != 1.0/3 {
		t.Errorf("image threshold %+v, want the highest max %v at FPR 1/3", tf.Image, max(maxes[0], maxes[1], maxes[2]))
	}
	p := tf.Provenance
	if p.Split != "validation" || p.Images != 3 || p.Pixels != 360 || p.Category != "can" || !strings.HasSuffix(p.Maps, filepath.Join("maps", "validation")) || p.Date == "" || p.Layout != "mvtec2" {
		t.Errorf("provenance %+v", p)
	}
	// The thresholds go into a model's metadata: ONNX Runtime reads them back from the exported copy.
	calibrated := filepath.Join(dir, "calibrated.onnx")
	run(t, "export-model", "--model", testenv.SmallModel(t), "--thresholds", thrFile, "--out", calibrated, "--ort-lib", testenv.ORTLibrary(t))
	cm, err := inference.Open(calibrated, inference.Options{Device: "cpu", Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	ci := cm.Info()
	cm.Close()
	if ci.Thresholds[protocol.ThresholdPixelNormal] != tf.Pixel.Threshold || ci.Thresholds[protocol.ThresholdImageNormal] != tf.Image.Threshold ||
		!strings.Contains(ci.Metadata[inference.KeyCalibration], `"split":"validation"`) {
		t.Errorf("exported model: thresholds %v, calibration %q", ci.Thresholds, ci.Metadata[inference.KeyCalibration])
	}
	// Calibrating on the test split is refused.
	var errb bytes.Buffer
	if rc := Main([]string{"calibrate", "--maps", filepath.Join(m.maps, "test"), "--data", m.root, "--split", "test", "--out", filepath.Join(dir, "x.json")}, io.Discard, &errb); rc == 0 {
		t.Error("calibration on the test split accepted")
	}

	// Evaluate test_public at the calibrated threshold.
	out, _ := run(t, "eval", "--maps", filepath.Join(m.maps, "test"), "--gt", m.root, "--thresholds", thrFile, "--fpr-limit", "0.05")
	var res map[string]any
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatal(err)
	}
	thr := tf.Pixel.Threshold
	var tp, fp, P int
	for key, v := range m.vals["test"] {
		mask := m.masks[key]
		for i, x := range v {
			d := mask != nil && mask[i]
			if d {
				P++
			}
			if float64(x) >= thr {
				if d {
					tp++
				} else {
					fp++
				}
			}
		}
	}
	segf1 := float64(2*tp) / float64(tp+fp+P)
	if g, ok := res["pixel_segf1"].(float64); !ok || math.Abs(g-segf1) > 1e-15 {
		t.Errorf("pixel_segf1 %v, want %v (TP %d FP %d P %d)", res["pixel_segf1"], segf1, tp, fp, P)
	}
	by, _ := res["pixel_aupro_by_limit"].(map[string]any)
	if len(by) != 2 || by["0.05"] == nil || by["0.3"] == nil || res["pixel_aupro"] != by["0.05"] || res["fpr_limit"] != 0.05 {
		t.Errorf("aupro by limit %v, pixel_aupro %v", by, res["pixel_aupro"])
	}
	if th, _ := res["threshold"].(map[string]any); th == nil || th["pixel"] != thr || !strings.Contains(th["source"].(string), "mean-kstd:3 on validation") {
		t.Errorf("threshold block %v", res["threshold"])
	}

	// Submission of the private splits.
	sub := filepath.Join(dir, "submission.tar.gz")
	run(t, "submit", "--maps", m.maps, "--data", m.root, "--thresholds", thrFile, "--out", sub)
	out, _ = run(t, "submit", "--check", sub, "--data", m.root)
	if !strings.Contains(out, ": ok: 1 objects, 4 maps, 4 masks") {
		t.Errorf("check: %s", out)
	}
	// Every file: the float16 rounding of the map at the image size, and the mask at the threshold.
	f, err := os.Open(sub)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	n := 0
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(tr)
		parts := strings.Split(h.Name, "/")
		if len(parts) != 5 || parts[0] != "submission" || parts[2] != "can" {
			t.Fatalf("entry %s", h.Name)
		}
		split, stem := parts[3], strings.TrimSuffix(parts[4], filepath.Ext(parts[4]))
		src := m.vals[split]["unlabelled/"+stem]
		if src == nil {
			t.Fatalf("entry %s has no source map", h.Name)
		}
		switch parts[1] {
		case submission.MapsDir:
			info, got, err := submission.ReadTIFF16(data)
			if err != nil || !info.Float16() || info.W != m.w || info.H != m.h {
				t.Fatalf("%s: %+v %v", h.Name, info, err)
			}
			for i, v := range got {
				if math.Abs(float64(v-src[i])) > 1.0/2048 { // half an ulp of float16 near 1
					t.Fatalf("%s: value %d is %v, map %v", h.Name, i, v, src[i])
				}
			}
			// mapio reads float32 and float64 TIFF; float16 is refused with a clear error, not misread.
			if _, err := mapio.ReadTIFF(bytes.NewReader(data)); err == nil {
				t.Errorf("%s: mapio read a float16 TIFF without error", h.Name)
			}
		case submission.MapsDir + "_thresholded":
			img, err := png.Decode(bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			g := img.(*image.Gray)
			for i, v := range g.Pix {
				if w := float64(src[i]) >= thr; (v == 255) != w || (v != 0 && v != 255) {
					t.Fatalf("%s: pixel %d is %d, map %v, threshold %v", h.Name, i, v, src[i], thr)
				}
			}
		default:
			t.Fatalf("entry %s", h.Name)
		}
		n++
	}
	if n != 8 {
		t.Errorf("%d files in the submission, want 4 maps and 4 masks", n)
	}
	// Against the official list (all eight objects) the miniature fails, with the reason.
	var ob bytes.Buffer
	if rc := Main([]string{"submit", "--check", sub}, &ob, io.Discard); rc != 1 || !strings.Contains(ob.String(), "anomaly_images/fabric is missing") {
		t.Errorf("official check of the miniature: rc %d\n%s", rc, ob.String())
	}
	// A map missing for a private image is an error naming it, and nothing is written.
	os.Remove(filepath.Join(m.maps, "test_private_mixed", "unlabelled", "001_mixed.npy"))
	sub2 := filepath.Join(dir, "s2.tar.gz")
	errb.Reset()
	if rc := Main([]string{"submit", "--maps", m.maps, "--data", m.root, "--thresholds", thrFile, "--out", sub2}, io.Discard, &errb); rc != 1 || !strings.Contains(errb.String(), "001_mixed") {
		t.Errorf("missing map: rc %d: %s", rc, errb.String())
	}
	if _, err := os.Stat(sub2); err == nil {
		t.Error("a failed submission left its file")
	}
}

// TestEval_LOCO_SPRO_HandWorked evaluates a LOCO miniature whose maps and masks are the hand-worked case
// of metrics.TestCompute_SPRO_HandWorked, as files: masks hold LOCO pixel values and defects_config.json
// gives the saturation thresholds (value 10: absolute 1; 20: absolute 5, capped at the area 1; 30:
// relative 1.0). Expected (worked there): logical 0.5, 0.5, 0.785714 at limits 0.05, 0.3, 1; structural
// 0.375, 0.583333, 0.866667; their means; pooled 7/15 at 0.05.
func TestEval_LOCO_SPRO_HandWorked(t *testing.T) {
	dir := t.TempDir()
	root, maps := filepath.Join(dir, "box"), filepath.Join(dir, "maps")
	grey := func(w int, vals ...uint8) *image.Gray {
		g := image.NewGray(image.Rect(0, 0, w, 1))
		copy(g.Pix, vals)
		return g
	}
	writePNG(t, filepath.Join(root, "train/good/000.png"), grey(4))
	writePNG(t, filepath.Join(root, "test/good/000.png"), grey(4))
	writePNG(t, filepath.Join(root, "test/logical_anomalies/000.png"), grey(6))
	writePNG(t, filepath.Join(root, "test/structural_anomalies/000.png"), grey(4))
	writePNG(t, filepath.Join(root, "ground_truth/logical_anomalies/000/000.png"), grey(6, 10, 0, 10, 0, 0, 0))
	writePNG(t, filepath.Join(root, "ground_truth/logical_anomalies/000/001.png"), grey(6, 0, 0, 0, 20, 0, 0))
	writePNG(t, filepath.Join(root, "ground_truth/structural_anomalies/000/000.png"), grey(4, 30, 30, 30, 0))
	cfg := `[{"defect_name": "a", "pixel_value": 10, "saturation_threshold": 1, "relative_saturation": false},
	{"defect_name": "b", "pixel_value": 20, "saturation_threshold": 5, "relative_saturation": false},
	{"defect_name": "c", "pixel_value": 30, "saturation_threshold": 1.0, "relative_saturation": true}]`
	if err := os.WriteFile(filepath.Join(root, "defects_config.json"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	putNPY(t, filepath.Join(maps, "good/000.npy"), 4, 1, []float32{0.1, 0.2, 0.6, 0.0})
	putNPY(t, filepath.Join(maps, "logical_anomalies/000.npy"), 6, 1, []float32{0.9, 0.4, 0.8, 0.3, 0.5, 0.05})
	putNPY(t, filepath.Join(maps, "structural_anomalies/000.npy"), 4, 1, []float32{0.7, 0.6, 0.2, 0.1})
	out, _ := run(t, "eval", "--maps", maps, "--gt", root, "--fpr-limit", "0.3,1", "--strict")
	var res struct {
		SPRO struct {
			Regions int64
			ByKind  []struct {
				Kind    string
				Regions int64
				ByLimit map[string]float64 `json:"by_limit"`
			} `json:"by_kind"`
			Mean   map[string]float64 `json:"mean_by_limit"`
			Pooled map[string]float64 `json:"pooled_by_limit"`
		} `json:"spro"`
		Top map[string]float64 `json:"pixel_spro_aupro_by_limit"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatal(err)
	}
	near := func(name string, got, want float64) {
		t.Helper()
		if math.Abs(got-want) > 1e-12 {
			t.Errorf("%s: %.17g, want %.17g", name, got, want)
		}
	}
	sp := res.SPRO
	if sp.Regions != 3 || len(sp.ByKind) != 2 || sp.ByKind[0].Kind != "logical_anomalies" {
		t.Fatalf("spro %+v", sp)
	}
	lg, st := sp.ByKind[0].ByLimit, sp.ByKind[1].ByLimit
	near("logical 0.05", lg["0.05"], 0.5)
	near("logical 0.3", lg["0.3"], 0.5)
	near("logical 1", lg["1"], 5.5/7)
	near("structural 0.05", st["0.05"], 0.375)
	near("structural 0.3", st["0.3"], 0.175/0.3)
	near("structural 1", st["1"], 0.1+(2.0/3+1)/2*0.2+0.6)
	near("mean 0.3", res.Top["0.3"], (0.5+0.175/0.3)/2)
	near("pooled 0.05", sp.Pooled["0.05"], 7.0/15)
	// Without the config the regions saturate at their areas, with a warning (and --strict refuses).
	os.Remove(filepath.Join(root, "defects_config.json"))
	var errb bytes.Buffer
	if rc := Main([]string{"eval", "--maps", maps, "--gt", root, "--strict"}, io.Discard, &errb); rc != 1 || !strings.Contains(errb.String(), "defects_config.json is missing") {
		t.Errorf("no config, --strict: rc %d: %s", rc, errb.String())
	}
}
