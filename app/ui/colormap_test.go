package ui

import "testing"

func near(a, b uint8, tol int) bool { d := int(a) - int(b); return d <= tol && d >= -tol }

func TestColormap_Endpoints(t *testing.T) {
	for name, want := range map[string][2][3]uint8{
		cmapViridis: {{68, 1, 84}, {253, 231, 37}},
		cmapInferno: {{0, 0, 4}, {252, 255, 164}},
		cmapJet:     {{0, 0, 128}, {128, 0, 0}},
		cmapTurbo:   {{48, 18, 59}, {122, 4, 3}},
	} {
		lut := colormap(name)
		for k, idx := range []int{0, 255} {
			for c := range 3 {
				if !near(lut[idx][c], want[k][c], 6) {
					t.Errorf("%s[%d] = %v, want about %v", name, idx, lut[idx], want[k])
					break
				}
			}
		}
	}
}

func TestHeatRGBA_CompareColours(t *testing.T) {
	// 5x5 map: left half hot; mask: a 3x3 block in the middle.
	const w, h = 5, 5
	heat := make([]uint8, w*h)
	labels := make([]uint8, w*h)
	for y := range h {
		for x := range w {
			if x < 3 {
				heat[y*w+x] = 200
			}
			if x >= 1 && x <= 3 && y >= 1 && y <= 3 {
				labels[y*w+x] = 1
			}
		}
	}
	lut := colormap(cmapViridis)
	var idx [256]uint8
	var pred [256]bool
	for i := range idx {
		idx[i], pred[i] = uint8(i), i >= 128
	}
	dst := make([]byte, w*h*4)
	heatRGBA(dst, heat, labels, w, h, &lut, &idx, &pred, true)
	px := func(x, y int) [4]uint8 { i := (y*w + x) * 4; return [4]uint8(dst[i : i+4]) }
	if px(2, 2) != colTP {
		t.Errorf("hot pixel inside the mask: %v, want TP", px(2, 2))
	}
	if px(0, 0) != colFP {
		t.Errorf("hot pixel outside the mask: %v, want FP", px(0, 0))
	}
	if px(4, 4) != [4]uint8{} {
		t.Errorf("cold pixel outside the mask: %v, want transparent", px(4, 4))
	}
	if px(3, 1) != colGT {
		t.Errorf("mask edge: %v, want the contour colour", px(3, 1))
	}
	// Without compare: hot pixels take the colormap, cold ones stay transparent.
	heatRGBA(dst, heat, make([]uint8, w*h), w, h, &lut, &idx, &pred, false)
	if got := px(0, 0); got != [4]uint8{lut[200][0], lut[200][1], lut[200][2], 255} {
		t.Errorf("hot pixel without compare: %v", got)
	}
	if px(4, 0)[3] != 0 {
		t.Error("pixel below the threshold is visible")
	}
}
