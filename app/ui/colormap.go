package ui

import "math"

// Colormaps for anomaly maps, as 256-entry lookup tables indexed by the map value scaled to 0..255.
const (
	cmapTurbo   = "turbo"
	cmapViridis = "viridis"
	cmapJet     = "jet"
	cmapInferno = "inferno"
)

var colormapNames = []string{cmapTurbo, cmapViridis, cmapJet, cmapInferno}

// turboStops are the HTML report's heatmap colours (heatStops in backend/report/gallery.go): with the
// same scale, a score has the same colour in the editor and in the report.
var turboStops = [...][3]float64{
	{48, 18, 59}, {70, 134, 251}, {27, 229, 181}, {164, 252, 60}, {251, 185, 56}, {228, 68, 11}, {122, 4, 3},
}

// Polynomial fits of matplotlib's viridis and inferno (degree 6, max error about 1/255), so that the
// wasm carries seven coefficients per channel instead of the tables.
var (
	viridisPoly = [7][3]float64{
		{0.2777273272234177, 0.005407344544966578, 0.3340998053353061},
		{0.1050930431085774, 1.404613529898575, 1.384590162594685},
		{-0.3308618287255563, 0.214847559468213, 0.09509516302823659},
		{-4.634230498983486, -5.799100973351585, -19.33244095627987},
		{6.228269936347081, 14.17993336680509, 56.69055260068105},
		{4.776384997670288, -13.74514537774601, -65.35303263337234},
		{-5.435455855934631, 4.645852612178535, 26.3124352495832},
	}
	infernoPoly = [7][3]float64{
		{0.0002189403691192265, 0.001651004631001012, -0.01948089843709184},
		{0.1065134194856116, 0.5639564367884091, 3.932712388889277},
		{11.60249308247187, -3.972853965665698, -15.9423941062914},
		{-41.70399613139459, 17.43639888205313, 44.35414519872813},
		{77.162935699427, -33.40235894210092, -81.80730925738993},
		{-71.31942824499214, 32.62606426397723, 73.20951985803202},
		{25.13112622477341, -12.24266895238567, -23.07032500287172},
	}
)

// colormap returns the lookup table of a colormap by name (viridis for an unknown name).
func colormap(name string) [256][3]uint8 {
	var lut [256][3]uint8
	for i := range lut {
		t := float64(i) / 255
		var c [3]float64
		switch name {
		case cmapTurbo:
			// The report's interpolation, truncating as it does.
			p := t * float64(len(turboStops)-1)
			j := min(len(turboStops)-2, int(p))
			f := p - float64(j)
			for k := range 3 {
				a, b := turboStops[j][k], turboStops[j+1][k]
				lut[i][k] = uint8(a + f*(b-a))
			}
			continue
		case cmapJet:
			c = [3]float64{1.5 - math.Abs(4*t-3), 1.5 - math.Abs(4*t-2), 1.5 - math.Abs(4*t-1)}
		case cmapInferno:
			c = poly(infernoPoly, t)
		default:
			c = poly(viridisPoly, t)
		}
		for k := range 3 {
			lut[i][k] = uint8(math.Round(math.Max(0, math.Min(1, c[k])) * 255))
		}
	}
	return lut
}

func poly(p [7][3]float64, t float64) [3]float64 {
	var c [3]float64
	for k := range 3 {
		v := p[6][k]
		for d := 5; d >= 0; d-- {
			v = v*t + p[d][k]
		}
		c[k] = v
	}
	return c
}

// Comparison colours: true positive, false positive, false negative. They stay clear of the class
// colours (the server's palette starts red, green, yellow, blue, orange; the editor's fallback is red), so
// that the comparison drawn over the mask never reads as a class.
var (
	colTP = [4]uint8{0, 229, 255, 255}
	colFP = [4]uint8{255, 0, 255, 255}
	colFN = [4]uint8{150, 110, 255, 255}
	colGT = [4]uint8{255, 255, 255, 255}
)

// heatRGBA renders the anomaly map layer: heat is the map as decoded levels, labels the current mask
// (any non-zero pixel is a defect). idx maps a level to the colormap on the job's scale and pred says
// whether it is at or above the threshold (both in the model's units, see heatTables). Without compare,
// pixels at or above the threshold show in the colormap and the rest stay transparent; with compare, the
// thresholded prediction is coloured against the mask as true positive, false positive and false
// negative. The mask's contour is drawn on top in both modes.
func heatRGBA(dst []byte, heat, labels []uint8, w, h int, lut *[256][3]uint8, idx *[256]uint8, pred *[256]bool, compare bool) {
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			i := y*w + x
			v := heat[i]
			gt := labels[i] != 0
			p := pred[v]
			var c [4]uint8
			switch {
			case gt && isContour(labels, w, h, x, y):
				c = colGT
			case compare && p && gt:
				c = colTP
			case compare && p:
				c = colFP
			case compare && gt:
				c = colFN
			case !compare && p:
				k := idx[v]
				c = [4]uint8{lut[k][0], lut[k][1], lut[k][2], 255}
			}
			copy(dst[i*4:i*4+4], c[:])
		}
	}
}

func isContour(labels []uint8, w, h, x, y int) bool {
	i := y*w + x
	return x == 0 || y == 0 || x == w-1 || y == h-1 ||
		labels[i-1] == 0 || labels[i+1] == 0 || labels[i-w] == 0 || labels[i+w] == 0
}
