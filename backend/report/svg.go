//go:build !js

package report

import (
	"fmt"
	"html"
	"math"
	"strconv"
	"strings"

	sm "github.com/rdre-studio/studio/shared/metrics"
)

// The plots are hand-written SVG: a fixed viewBox scaled by CSS, axes with ticks and labels, and no
// script, font or image reference, so they print and render the same everywhere.

const (
	plotW, plotH                         = 340.0, 270.0
	marginL, marginR, marginT, marginB   = 48.0, 12.0, 26.0, 40.0
	innerW, innerH                       = plotW - marginL - marginR, plotH - marginT - marginB
	colorA, colorB, colorNormal, colorDe = "#1f5fa8", "#c0392b", "#4b7bb5", "#d35400"
)

type series struct {
	Name  string
	Color string
	X, Y  []float64
	Dash  bool
}

type mark struct {
	X, Y  float64
	Color string
	Label string
}

type plot struct {
	ID             string // stable id for tests and links (data-plot attribute)
	Title          string
	XLabel, YLabel string
	XMax, YMax     float64
	XTicks         []float64
	YTicks         []float64
	Diagonal       bool
	LegendLeft     bool // bottom-left instead of bottom-right, where a curve leaves room
	LegendBelow    bool // under the axis label, two per row: for plots whose lines fill the frame
	YMin           float64
	Series         []series
	Marks          []mark
}

func f2(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) }

func ticks(max float64, n int) []float64 {
	out := make([]float64, n+1)
	for i := range out {
		out[i] = max * float64(i) / float64(n)
	}
	return out
}

func tickLabel(v float64) string {
	s := strconv.FormatFloat(v, 'f', 2, 64)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	if s == "" || s == "-" {
		return "0"
	}
	return s
}

func (p plot) sx(x float64) float64 { return marginL + innerW*math.Min(1, math.Max(0, x/p.XMax)) }
func (p plot) sy(y float64) float64 {
	return marginT + innerH*(1-math.Min(1, math.Max(0, (y-p.YMin)/(p.YMax-p.YMin))))
}

func (p plot) svg() string {
	var b strings.Builder
	height := plotH
	if p.LegendBelow {
		height += 16 * float64((len(p.Series)+1)/2)
	}
	fmt.Fprintf(&b, `<svg class="plot" data-plot="%s" viewBox="0 0 %g %g" role="img" aria-label="%s">`, html.EscapeString(p.ID), plotW, height, html.EscapeString(p.Title))
	fmt.Fprintf(&b, `<title>%s</title>`, html.EscapeString(p.Title))
	fmt.Fprintf(&b, `<text class="ptitle" x="%s" y="16" text-anchor="middle">%s</text>`, f2(marginL+innerW/2), html.EscapeString(p.Title))
	// grid and ticks
	for _, t := range p.XTicks {
		x := p.sx(t)
		fmt.Fprintf(&b, `<line class="grid" x1="%s" y1="%s" x2="%s" y2="%s"/>`, f2(x), f2(marginT), f2(x), f2(marginT+innerH))
		fmt.Fprintf(&b, `<line class="axis" x1="%s" y1="%s" x2="%s" y2="%s"/>`, f2(x), f2(marginT+innerH), f2(x), f2(marginT+innerH+4))
		fmt.Fprintf(&b, `<text class="tick" x="%s" y="%s" text-anchor="middle">%s</text>`, f2(x), f2(marginT+innerH+15), tickLabel(t))
	}
	for _, t := range p.YTicks {
		y := p.sy(t)
		fmt.Fprintf(&b, `<line class="grid" x1="%s" y1="%s" x2="%s" y2="%s"/>`, f2(marginL), f2(y), f2(marginL+innerW), f2(y))
		fmt.Fprintf(&b, `<line class="axis" x1="%s" y1="%s" x2="%s" y2="%s"/>`, f2(marginL-4), f2(y), f2(marginL), f2(y))
		fmt.Fprintf(&b, `<text class="tick" x="%s" y="%s" text-anchor="end">%s</text>`, f2(marginL-7), f2(y+3.5), tickLabel(t))
	}
	fmt.Fprintf(&b, `<rect class="frame" x="%s" y="%s" width="%s" height="%s"/>`, f2(marginL), f2(marginT), f2(innerW), f2(innerH))
	if p.Diagonal {
		fmt.Fprintf(&b, `<line class="chance" x1="%s" y1="%s" x2="%s" y2="%s"/>`, f2(p.sx(0)), f2(p.sy(0)), f2(p.sx(math.Min(p.XMax, p.YMax))), f2(p.sy(math.Min(p.XMax, p.YMax))))
	}
	for i, s := range p.Series {
		if len(s.X) == 0 {
			continue
		}
		pts := make([]string, len(s.X))
		for j := range s.X {
			pts[j] = f2(p.sx(s.X[j])) + "," + f2(p.sy(s.Y[j]))
		}
		dash := ""
		if s.Dash {
			dash = ` stroke-dasharray="5 3"`
		}
		fmt.Fprintf(&b, `<polyline class="curve" data-series="%d" fill="none" stroke="%s" stroke-width="1.8"%s points="%s"/>`, i, s.Color, dash, strings.Join(pts, " "))
	}
	for _, m := range p.Marks {
		fmt.Fprintf(&b, `<circle cx="%s" cy="%s" r="3.5" fill="%s" stroke="#fff" stroke-width="1"/>`, f2(p.sx(m.X)), f2(p.sy(m.Y)), m.Color)
		if m.Label != "" {
			anchor, dx, dy := "start", 6.0, -6.0
			if p.sx(m.X) > marginL+innerW*0.6 {
				anchor, dx = "end", -6
			}
			if p.sy(m.Y) < marginT+16 {
				dy = 15 // below the point, inside the frame, clear of the title
			}
			fmt.Fprintf(&b, `<text class="mark" x="%s" y="%s" text-anchor="%s">%s</text>`, f2(p.sx(m.X)+dx), f2(p.sy(m.Y)+dy), anchor, html.EscapeString(m.Label))
		}
	}
	// legend, bottom right inside the frame (or where the plot asks)
	ly := marginT + innerH - 8 - 14*float64(len(p.Series)-1)
	for i, s := range p.Series {
		if s.Name == "" {
			continue
		}
		x := marginL + innerW - 8
		if p.LegendLeft {
			x = marginL + 158
		}
		if p.LegendBelow {
			x = marginL + 150 + float64(i%2)*(innerW/2)
			ly = plotH + 10 + 16*float64(i/2)
		}
		dash := ""
		if s.Dash {
			dash = ` stroke-dasharray="5 3"`
		}
		fmt.Fprintf(&b, `<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="%s" stroke-width="2"%s/>`, f2(x-150), f2(ly-3.5), f2(x-134), f2(ly-3.5), s.Color, dash)
		fmt.Fprintf(&b, `<text class="legend" x="%s" y="%s">%s</text>`, f2(x-130), f2(ly), html.EscapeString(s.Name))
		ly += 14
	}
	fmt.Fprintf(&b, `<text class="label" x="%s" y="%s" text-anchor="middle">%s</text>`, f2(marginL+innerW/2), f2(plotH-6), html.EscapeString(p.XLabel))
	fmt.Fprintf(&b, `<text class="label" transform="translate(13 %s) rotate(-90)" text-anchor="middle">%s</text>`, f2(marginT+innerH/2), html.EscapeString(p.YLabel))
	b.WriteString(`</svg>`)
	return b.String()
}

// curvePlots builds the four standard plots of one or two results (a second result is drawn dashed in
// another colour, for comparisons).
func curvePlots(names []string, results []*sm.Result) []plot {
	colors := []string{colorA, colorB}
	roc := plot{ID: "image-roc", Title: "Image ROC", XLabel: "false positive rate", YLabel: "true positive rate", XMax: 1, YMax: 1, XTicks: ticks(1, 5), YTicks: ticks(1, 5), Diagonal: true}
	proc := plot{ID: "pixel-roc", Title: "Pixel ROC", XLabel: "false positive rate", YLabel: "true positive rate", XMax: 1, YMax: 1, XTicks: ticks(1, 5), YTicks: ticks(1, 5), Diagonal: true}
	pr := plot{ID: "pixel-pr", Title: "Pixel precision-recall", XLabel: "recall", YLabel: "precision", XMax: 1, YMax: 1, XTicks: ticks(1, 5), YTicks: ticks(1, 5), LegendLeft: true}
	lim := 0.3
	if len(results) > 0 && results[0].FPRLimit > 0 {
		lim = results[0].FPRLimit
	}
	pro := plot{ID: "pixel-pro", Title: "Per-region overlap (PRO)", XLabel: "false positive rate", YLabel: "PRO", XMax: lim, YMax: 1, XTicks: ticks(lim, 6), YTicks: ticks(1, 5)}
	for i, r := range results {
		if r == nil || r.Curves == nil {
			continue
		}
		c := colors[i%len(colors)]
		dash := i > 0
		prefix := ""
		if len(results) > 1 {
			prefix = names[i] + " "
		}
		roc.Series = append(roc.Series, series{Name: prefix + "AUROC " + pct(r.ImageAUROC), Color: c, Dash: dash, X: r.Curves.ImageROC.X, Y: r.Curves.ImageROC.Y})
		proc.Series = append(proc.Series, series{Name: prefix + "AUROC " + pct(r.PixelAUROC), Color: c, Dash: dash, X: r.Curves.PixelROC.X, Y: r.Curves.PixelROC.Y})
		pr.Series = append(pr.Series, series{Name: prefix + "AP " + pct(r.PixelAP), Color: c, Dash: dash, X: r.Curves.PixelPR.X, Y: r.Curves.PixelPR.Y})
		pro.Series = append(pro.Series, series{Name: prefix + "AUPRO " + pct(r.PixelAUPRO), Color: c, Dash: dash, X: r.Curves.PixelPRO.X, Y: r.Curves.PixelPRO.Y})
		if len(results) == 1 && r.PixelF1Max != nil && r.PixelF1MaxThreshold != nil {
			// The F1-max operating point on the PR curve: the curve point whose threshold it is.
			c := r.Curves.PixelPR
			for j, t := range c.Threshold {
				if t != nil && *t == *r.PixelF1MaxThreshold {
					pr.Marks = append(pr.Marks, mark{X: c.X[j], Y: c.Y[j], Color: "#111", Label: "F1-max " + pct(r.PixelF1Max)})
					break
				}
			}
		}
	}
	return []plot{roc, proc, pr, pro}
}

// histogramSVG draws the image-score histogram of normal and defective images with the image F1-max
// threshold.
func histogramSVG(h histogram, threshold *float64) string {
	const w, hh = 700.0, 230.0
	const l, r, t, bm = 48.0, 14.0, 26.0, 40.0
	iw, ih := w-l-r, hh-t-bm
	maxC := 1
	for i := range h.Normal {
		maxC = max(maxC, h.Normal[i], h.Defect[i])
	}
	// A "nice" count axis: steps of 1, 2, 5, 10, ...
	step := 1
	for _, s := range []int{1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000} {
		step = s
		if maxC/s <= 5 {
			break
		}
	}
	top := ((maxC + step - 1) / step) * step
	sx := func(v float64) float64 { return l + iw*(v-h.Lo)/(h.Hi-h.Lo) }
	sy := func(c int) float64 { return t + ih*(1-float64(c)/float64(top)) }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="plot wide" data-plot="score-histogram" viewBox="0 0 %g %g" role="img" aria-label="Image score histogram">`, w, hh)
	b.WriteString(`<title>Image score histogram</title>`)
	b.WriteString(`<text class="ptitle" x="48" y="16">Image scores: defect-free vs defective</text>`)
	for c := 0; c <= top; c += step {
		y := sy(c)
		fmt.Fprintf(&b, `<line class="grid" x1="%s" y1="%s" x2="%s" y2="%s"/>`, f2(l), f2(y), f2(l+iw), f2(y))
		fmt.Fprintf(&b, `<text class="tick" x="%s" y="%s" text-anchor="end">%d</text>`, f2(l-7), f2(y+3.5), c)
	}
	for i := 0; i <= 5; i++ {
		v := h.Lo + (h.Hi-h.Lo)*float64(i)/5
		x := sx(v)
		fmt.Fprintf(&b, `<line class="axis" x1="%s" y1="%s" x2="%s" y2="%s"/>`, f2(x), f2(t+ih), f2(x), f2(t+ih+4))
		fmt.Fprintf(&b, `<text class="tick" x="%s" y="%s" text-anchor="middle">%s</text>`, f2(x), f2(t+ih+15), strconv.FormatFloat(v, 'g', 3, 64))
	}
	bw := iw / float64(len(h.Normal))
	for i := range h.Normal {
		x := l + bw*float64(i)
		if c := h.Normal[i]; c > 0 {
			fmt.Fprintf(&b, `<rect class="bar-normal" x="%s" y="%s" width="%s" height="%s" fill="%s" fill-opacity="0.55"/>`, f2(x+0.5), f2(sy(c)), f2(bw-1), f2(t+ih-sy(c)), colorNormal)
		}
		if c := h.Defect[i]; c > 0 {
			fmt.Fprintf(&b, `<rect class="bar-defect" x="%s" y="%s" width="%s" height="%s" fill="%s" fill-opacity="0.55"/>`, f2(x+0.5), f2(sy(c)), f2(bw-1), f2(t+ih-sy(c)), colorDe)
		}
	}
	fmt.Fprintf(&b, `<rect class="frame" x="%s" y="%s" width="%s" height="%s"/>`, f2(l), f2(t), f2(iw), f2(ih))
	if threshold != nil && *threshold >= h.Lo && *threshold <= h.Hi {
		x := sx(*threshold)
		fmt.Fprintf(&b, `<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="#111" stroke-width="1.2" stroke-dasharray="4 3"/>`, f2(x), f2(t), f2(x), f2(t+ih))
		anchor, dx := "start", 4.0
		if x > l+iw*0.7 {
			anchor, dx = "end", -4
		}
		fmt.Fprintf(&b, `<text class="mark" x="%s" y="%s" text-anchor="%s">image F1-max threshold %s</text>`, f2(x+dx), f2(t+12), anchor, thr(threshold))
	}
	lx := l + iw - 220
	fmt.Fprintf(&b, `<rect x="%s" y="7" width="12" height="10" fill="%s" fill-opacity="0.55"/><text class="legend" x="%s" y="16">defect-free (%d)</text>`, f2(lx), colorNormal, f2(lx+16), h.NormalTotal)
	fmt.Fprintf(&b, `<rect x="%s" y="7" width="12" height="10" fill="%s" fill-opacity="0.55"/><text class="legend" x="%s" y="16">defective (%d)</text>`, f2(lx+115), colorDe, f2(lx+131), h.DefectTotal)
	fmt.Fprintf(&b, `<text class="label" x="%s" y="%s" text-anchor="middle">image anomaly score</text>`, f2(l+iw/2), f2(hh-6))
	fmt.Fprintf(&b, `<text class="label" transform="translate(13 %s) rotate(-90)" text-anchor="middle">images</text>`, f2(t+ih/2))
	b.WriteString(`</svg>`)
	return b.String()
}

// heatLegendSVG is the colour scale of the gallery heatmaps, labelled with the score range.
func heatLegendSVG(lo, hi float64, global bool) string {
	var b strings.Builder
	b.WriteString(`<svg class="heatlegend" viewBox="0 0 260 30" role="img" aria-label="heatmap colour scale">`)
	const n = 40
	for i := 0; i < n; i++ {
		c := heatColor((float64(i) + 0.5) / n)
		fmt.Fprintf(&b, `<rect x="%s" y="2" width="%s" height="12" fill="rgb(%d,%d,%d)"/>`, f2(10+240*float64(i)/n), f2(240.0/n+0.3), c.R, c.G, c.B)
	}
	if global {
		fmt.Fprintf(&b, `<text class="tick" x="10" y="27">%s</text><text class="tick" x="250" y="27" text-anchor="end">%s</text>`, strconv.FormatFloat(lo, 'g', 3, 64), strconv.FormatFloat(hi, 'g', 3, 64))
	} else {
		b.WriteString(`<text class="tick" x="10" y="27">image min</text><text class="tick" x="250" y="27" text-anchor="end">image max</text>`)
	}
	b.WriteString(`</svg>`)
	return b.String()
}

// robustnessSVG draws the four headline metrics against the noise level (index on the x axis, labelled
// with the standard deviation, since the levels are roughly logarithmic).
func robustnessSVG(levels []NoiseLevel) string {
	if len(levels) == 0 {
		return ""
	}
	p := plot{ID: "robustness", Title: "Metrics under additive Gaussian noise", XLabel: "noise standard deviation σ", YLabel: "metric (%)", YMax: 100, LegendBelow: true}
	n := len(levels)
	p.XMax = float64(max(1, n-1))
	get := []struct {
		name  string
		color string
		f     func(r *sm.Result) *float64
	}{
		{"image AUROC", "#1f5fa8", func(r *sm.Result) *float64 { return r.ImageAUROC }},
		{"pixel AUROC", "#16a085", func(r *sm.Result) *float64 { return r.PixelAUROC }},
		{"pixel AP", "#c0392b", func(r *sm.Result) *float64 { return r.PixelAP }},
		{"AUPRO", "#8e44ad", func(r *sm.Result) *float64 { return r.PixelAUPRO }},
	}
	// The y axis starts at the decade below the lowest value, so differences of a point stay visible.
	lowest := 100.0
	for _, l := range levels {
		for _, g := range get {
			if l.Result != nil {
				if v := g.f(l.Result); v != nil {
					lowest = math.Min(lowest, *v*100)
				}
			}
		}
	}
	p.YMin = math.Max(0, math.Floor(lowest/10)*10-10)
	for i := 0; i <= 5; i++ {
		p.YTicks = append(p.YTicks, p.YMin+(100-p.YMin)*float64(i)/5)
	}
	for _, g := range get {
		s := series{Name: g.name, Color: g.color}
		for i, l := range levels {
			if l.Result == nil {
				continue
			}
			if v := g.f(l.Result); v != nil {
				s.X = append(s.X, float64(i))
				s.Y = append(s.Y, *v*100)
			}
		}
		p.Series = append(p.Series, s)
	}
	out := p.svg()
	// Replace the numeric x ticks with the noise levels.
	var ticksSVG strings.Builder
	for i, l := range levels {
		x := p.sx(float64(i))
		if n == 1 {
			x = marginL + innerW/2
		}
		fmt.Fprintf(&ticksSVG, `<line class="axis" x1="%s" y1="%s" x2="%s" y2="%s"/><text class="tick" x="%s" y="%s" text-anchor="middle">%s</text>`,
			f2(x), f2(marginT+innerH), f2(x), f2(marginT+innerH+4), f2(x), f2(marginT+innerH+15), trimFloat(l.Std))
	}
	return strings.Replace(out, `</svg>`, ticksSVG.String()+`</svg>`, 1)
}
