//go:build !js

package metrics_test

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/rdre-studio/studio/backend/mapio"
	"github.com/rdre-studio/studio/backend/metrics"
	sm "github.com/rdre-studio/studio/shared/metrics"
)

const vectorsDir = "../../../shared/metrics-vectors"

type expected struct {
	Category string             `json:"category"`
	Values   map[string]float64 `json:"-"`
	Counts   sm.Counts          `json:"counts"`
	MaxOfMap map[string]float64 `json:"image_metrics_with_max_of_map"`
}

func loadVector(t *testing.T, name string, withScores bool) ([]metrics.Image, expected) {
	t.Helper()
	dir := filepath.Join(vectorsDir, name)
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("metric vectors not found at %s (CI puts shared/ beside the checkout): %v", dir, err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	var exp expected
	if err := json.Unmarshal(raw, &exp); err != nil {
		t.Fatal(err)
	}
	var all map[string]any
	if err := json.Unmarshal(raw, &all); err != nil {
		t.Fatal(err)
	}
	exp.Values = map[string]float64{}
	for k, v := range all {
		if f, ok := v.(float64); ok {
			exp.Values[k] = f
		}
	}
	scores := ""
	if withScores {
		scores = filepath.Join(dir, "scores.json")
	}
	images, _, err := mapio.LoadEval(filepath.Join(dir, "maps", exp.Category, "test"), filepath.Join(dir, "data", exp.Category), scores, mapio.EvalOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return images, exp
}

func near(t *testing.T, name string, got *float64, want float64) {
	t.Helper()
	if got == nil {
		t.Errorf("%s: got null, want %.17g", name, want)
		return
	}
	if math.Abs(*got-want) > 1e-9 {
		t.Errorf("%s: got %.17g, want %.17g (diff %.3g)", name, *got, want, *got-want)
	}
}

func checkVector(t *testing.T, res *sm.Result, exp expected) {
	t.Helper()
	v := exp.Values
	near(t, "pixel_auroc", res.PixelAUROC, v["pixel_auroc"])
	near(t, "pixel_ap", res.PixelAP, v["pixel_ap"])
	near(t, "pixel_f1_max", res.PixelF1Max, v["pixel_f1_max"])
	near(t, "pixel_f1_max_threshold", res.PixelF1MaxThreshold, v["pixel_f1_max_threshold"])
	near(t, "pixel_aupro", res.PixelAUPRO, v["pixel_aupro"])
	near(t, "image_auroc", res.ImageAUROC, v["image_auroc"])
	near(t, "image_ap", res.ImageAP, v["image_ap"])
	near(t, "image_f1_max", res.ImageF1Max, v["image_f1_max"])
	near(t, "image_f1_max_threshold", res.ImageF1MaxThreshold, v["image_f1_max_threshold"])
	if res.Counts != exp.Counts {
		t.Errorf("counts: got %+v, want %+v", res.Counts, exp.Counts)
	}
	if len(res.Warnings) != 0 {
		t.Errorf("warnings: %v", res.Warnings)
	}
}

func TestCompute_SharedVectors(t *testing.T) {
	for _, name := range []string{"v1_tiny8", "v3_ties64"} {
		t.Run(name, func(t *testing.T) {
			images, exp := loadVector(t, name, true)
			res, err := metrics.Compute(images, metrics.Options{Detail: true})
			if err != nil {
				t.Fatal(err)
			}
			checkVector(t, res, exp)

			// Max-of-map image scores.
			images, _ = loadVector(t, name, false)
			res, err = metrics.Compute(images, metrics.Options{})
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range []string{"image_auroc", "image_ap", "image_f1_max", "image_f1_max_threshold"} {
				got := map[string]*float64{"image_auroc": res.ImageAUROC, "image_ap": res.ImageAP,
					"image_f1_max": res.ImageF1Max, "image_f1_max_threshold": res.ImageF1MaxThreshold}[k]
				near(t, "max-of-map "+k, got, exp.MaxOfMap[k])
			}
		})
	}
}

func TestAccumulator_Final_SharedVectorsAnyOrder(t *testing.T) {
	images, exp := loadVector(t, "v3_ties64", true)
	acc := metrics.NewAccumulator(metrics.Options{})
	// Reverse order, half of them from another goroutine.
	done := make(chan error)
	go func() {
		for i := len(images) - 1; i >= 0; i -= 2 {
			if err := acc.Add(images[i]); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	for i := len(images) - 2; i >= 0; i -= 2 {
		if err := acc.Add(images[i]); err != nil {
			t.Fatal(err)
		}
		if p := acc.Partial(); !p.Partial || !p.Estimate {
			t.Fatalf("partial result not labelled: %+v", p)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	res, err := acc.Final()
	if err != nil {
		t.Fatal(err)
	}
	checkVector(t, res, exp)
	want, err := metrics.Compute(images, metrics.Options{})
	if err != nil {
		t.Fatal(err)
	}
	a, _ := json.Marshal(res)
	b, _ := json.Marshal(want)
	if string(a) != string(b) {
		t.Errorf("Final differs from Compute:\n%s\n%s", a, b)
	}
	// The v3 maps have 16 levels, each in its own bin, so the binned estimate is exact here.
	p := acc.Partial()
	near(t, "partial pixel_auroc", p.PixelAUROC, exp.Values["pixel_auroc"])
	near(t, "partial pixel_aupro", p.PixelAUPRO, exp.Values["pixel_aupro"])
}
