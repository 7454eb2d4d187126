package ui

import (
	"math"
	"strings"
	"testing"

	"github.com/rdre-studio/studio/shared/metrics"
	"github.com/rdre-studio/studio/shared/protocol"
)

func TestImagePoints_Ties_ExactCounts(t *testing.T) {
	rows := []metrics.ImageDetail{{Score: 0.9, Label: 1}, {Score: 0.5, Label: 0}, {Score: 0.5, Label: 1}, {Score: 0.1, Label: 0}, {Score: 0.7, Label: 0}}
	pts, n, p := imagePoints(rows)
	if n != 3 || p != 2 || len(pts) != 4 {
		t.Fatalf("%d points over %v normal and %v anomalous: %+v", len(pts), n, p, pts)
	}
	want := []opPoint{{0.1, 3, 2}, {0.5, 2, 2}, {0.7, 1, 1}, {0.9, 0, 1}}
	for i, w := range want {
		if pts[i] != w {
			t.Fatalf("point %d: %+v, want %+v", i, pts[i], w)
		}
	}
	// At 0.5: TP 2 of 2, FP 2 of 3: precision 1/2, F1 = 2*2/(2+2+2).
	st := pts[1].stats(n, p)
	if st.TPR != 1 || math.Abs(st.FPR-2.0/3) > 1e-15 || st.Precision != 0.5 || math.Abs(st.F1-2.0/3) > 1e-15 {
		t.Fatalf("stats at 0.5: %+v", st)
	}
}

func TestPixelPoints_FromROC_CountsAndHistogram(t *testing.T) {
	thr := func(v float64) *float64 { return &v }
	r := &metrics.Result{Counts: metrics.Counts{NormalPixels: 10, AnomalousPixels: 4},
		Curves: &metrics.Curves{PixelROC: metrics.Curve{
			X:         []float64{0, 0, 0.1, 0.5, 1},
			Y:         []float64{0, 0.5, 0.75, 1, 1},
			Threshold: []*float64{nil, thr(0.9), thr(0.6), thr(0.3), thr(0.1)},
		}}}
	pts, n, p := pixelPoints(r)
	if n != 10 || p != 4 || len(pts) != 4 || pts[0] != (opPoint{0.1, 10, 4}) || pts[3] != (opPoint{0.9, 0, 2}) || pts[1] != (opPoint{0.3, 5, 4}) {
		t.Fatalf("points %+v over %v/%v", pts, n, p)
	}
	if fp, tp := atOrAbove(pts, 0.6); fp != 1 || tp != 3 {
		t.Fatalf("at a curve threshold: FP %v TP %v, want 1 and 3", fp, tp)
	}
	lo, hi, normal, anomalous := histogram(pts, n, p, 8)
	if lo != 0.1 || hi != 0.9 {
		t.Fatalf("range %v..%v", lo, hi)
	}
	var sn, sa float64
	for k := range normal {
		sn += normal[k]
		sa += anomalous[k]
	}
	// Every normal pixel lies in the range; half the anomalous ones are at the top threshold, in the last bin.
	if math.Abs(sn-1) > 1e-12 || math.Abs(sa-1) > 1e-12 || anomalous[7] < 0.5 {
		t.Fatalf("histogram shares sum to %v and %v (last anomalous bin %v)", sn, sa, anomalous[7])
	}
	svg := histogramSVG("h", lo, hi, normal, anomalous, []thrMark{{name: "chosen", color: "#000", value: 0.6}, {name: "outside", value: 5}})
	if !strings.Contains(svg, `data-mark="chosen"`) || strings.Contains(svg, "outside") || strings.Count(svg, "<rect") != 16 {
		t.Fatalf("svg: %s", svg)
	}
	// Threshold 0.58 calls anomalous exactly what 0.6 does; above every point, the top one stands.
	if pointOf(pts, 0.58) != 2 || pointOf(pts, 0.6) != 2 || pointOf(pts, 5) != 3 || pointOf(pts, -1) != 0 {
		t.Fatalf("operating points of 0.58, 0.6, 5, -1: %d %d %d %d", pointOf(pts, 0.58), pointOf(pts, 0.6), pointOf(pts, 5), pointOf(pts, -1))
	}
}

func TestDefaultModel_PrefersNewestTrainedHere(t *testing.T) {
	ms := []protocol.ModelInfo{
		{SHA256: "demo"},
		{SHA256: "old", Training: "20261201-010000-a", TrainedOn: map[string][]string{"ds": {"x"}}},
		{SHA256: "new", Training: "20261201-020000-b", TrainedOn: map[string][]string{"ds": {"y"}}},
		{SHA256: "other", Training: "20261201-030000-c", TrainedOn: map[string][]string{"elsewhere": {"z"}}},
	}
	if got := defaultModel(ms, "ds"); got != "new" {
		t.Fatalf("default model for ds: %s, want the newest trained on it", got)
	}
	if got := defaultModel(ms, "fresh"); got != "demo" {
		t.Fatalf("default model for a dataset nothing trained on: %s, want the first", got)
	}
	if got := defaultModel(nil, "ds"); got != "" {
		t.Fatalf("no models: %q", got)
	}
}
