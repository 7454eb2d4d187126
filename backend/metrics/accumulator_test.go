package metrics

import (
	"encoding/json"
	"math"
	"sync"
	"testing"
)

func TestAccumulator_Partial_EstimateNearFinal(t *testing.T) {
	images := benchSet(12, 96, 64)
	acc := NewAccumulator(Options{})
	if p := acc.Partial(); !p.Partial || p.PixelAUROC != nil || len(p.Warnings) == 0 {
		t.Fatalf("empty partial: %+v", p)
	}
	var wg sync.WaitGroup
	for i := range images {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := acc.Add(images[i]); err != nil {
				t.Error(err)
			}
			acc.Partial() // concurrent with other Adds
		}()
	}
	wg.Wait()
	if acc.Len() != len(images) {
		t.Fatalf("Len %d", acc.Len())
	}
	p := acc.Partial()
	f, err := acc.Final()
	if err != nil {
		t.Fatal(err)
	}
	c, err := Compute(images, Options{})
	if err != nil {
		t.Fatal(err)
	}
	a, _ := json.Marshal(f)
	b, _ := json.Marshal(c)
	if string(a) != string(b) {
		t.Fatal("Final differs from Compute")
	}
	if f.Partial || f.Estimate || !p.Partial || !p.Estimate {
		t.Errorf("labels: final %v/%v partial %v/%v", f.Partial, f.Estimate, p.Partial, p.Estimate)
	}
	// Scores binned to 7 mantissa bits move the pixel metrics only a little; image metrics are exact.
	for name, pair := range map[string][2]*float64{"pixel_auroc": {p.PixelAUROC, f.PixelAUROC}, "pixel_aupro": {p.PixelAUPRO, f.PixelAUPRO}, "pixel_ap": {p.PixelAP, f.PixelAP}} {
		if math.Abs(*pair[0]-*pair[1]) > 0.02 {
			t.Errorf("%s: partial %v, final %v", name, *pair[0], *pair[1])
		}
	}
	if *p.ImageAUROC != *f.ImageAUROC {
		t.Errorf("image_auroc: partial %v, final %v", *p.ImageAUROC, *f.ImageAUROC)
	}
	if p.Counts.Pixels != f.Counts.Pixels || p.Counts.Regions != f.Counts.Regions || p.Counts.AnomalousPixels != f.Counts.AnomalousPixels {
		t.Errorf("counts: partial %+v, final %+v", p.Counts, f.Counts)
	}
}

func TestAccumulator_Add_Errors(t *testing.T) {
	acc := NewAccumulator(Options{})
	im := Image{Key: "a/0", Kind: "a", Label: 1, W: 1, H: 2, Map: []float32{0, 1}}
	if err := acc.Add(im); err != nil {
		t.Fatal(err)
	}
	if err := acc.Add(im); err == nil {
		t.Error("second Add of one key: no error")
	}
	bad := im
	bad.Key, bad.Map = "a/1", []float32{0, float32(math.NaN())}
	if err := acc.Add(bad); err == nil {
		t.Error("NaN map: no error")
	}
	if acc.Len() != 1 {
		t.Errorf("Len %d after refused adds", acc.Len())
	}
	if _, err := NewAccumulator(Options{FPRLimit: 2}).Final(); err == nil {
		t.Error("bad limit: no error")
	}
	if _, err := NewAccumulator(Options{}).Final(); err == nil {
		t.Error("no images: no error")
	}
}
