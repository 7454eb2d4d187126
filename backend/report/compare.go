//go:build !js

package report

import (
	"bufio"
	"fmt"
	"html/template"
	"io"
	"math"
	"sort"
	"time"

	sm "github.com/rdre-studio/studio/shared/metrics"
	"github.com/rdre-studio/studio/shared/protocol"
)

// Comparison is two evaluations side by side: two models on the same data, or one model on the
// dataset's masks and on the workspace's. Differences are B minus A.
type Comparison struct {
	A, B         *Input
	NameA, NameB string
	// Common is the number of image keys both jobs evaluated; OnlyA and OnlyB list the others.
	Common       int
	OnlyA, OnlyB []string
	Generated    time.Time
}

// Compare pairs two reports. The jobs may differ in model, masks, noise or data; the per-image
// differences cover the images both evaluated.
func Compare(a, b *Input) (*Comparison, error) {
	if err := a.validate(); err != nil {
		return nil, fmt.Errorf("compare, first job: %w", err)
	}
	if err := b.validate(); err != nil {
		return nil, fmt.Errorf("compare, second job: %w", err)
	}
	c := &Comparison{A: a, B: b, Generated: b.Generated}
	if a.Generated.After(b.Generated) {
		c.Generated = a.Generated
	}
	c.NameA, c.NameB = compareNames(a, b)
	inA := map[string]bool{}
	for _, s := range a.Scores {
		inA[s.Key] = true
	}
	inB := map[string]bool{}
	for _, s := range b.Scores {
		inB[s.Key] = true
		if inA[s.Key] {
			c.Common++
		} else {
			c.OnlyB = append(c.OnlyB, s.Key)
		}
	}
	for _, s := range a.Scores {
		if !inB[s.Key] {
			c.OnlyA = append(c.OnlyA, s.Key)
		}
	}
	sort.Strings(c.OnlyA)
	sort.Strings(c.OnlyB)
	return c, nil
}

// compareNames labels the two sides by what differs between them.
func compareNames(a, b *Input) (string, string) {
	switch {
	case a.Job.Model != b.Job.Model:
		na, nb := modelLabel(a), modelLabel(b)
		if na != nb {
			return "A: " + na, "B: " + nb
		}
	case a.Job.Masks != b.Job.Masks:
		return "A: " + orDash(a.Job.Masks) + " masks", "B: " + orDash(b.Job.Masks) + " masks"
	case a.Job.NoiseStd != b.Job.NoiseStd:
		return "A: σ " + trimFloat(a.Job.NoiseStd), "B: σ " + trimFloat(b.Job.NoiseStd)
	}
	return "A: " + a.Job.ID, "B: " + b.Job.ID
}

func modelLabel(in *Input) string {
	if in.Job.ModelName != "" {
		return in.Job.ModelName
	}
	if in.Model.Name != "" {
		return in.Model.Name
	}
	return shortSHA(in.Job.Model)
}

type cmpMetric struct {
	Metric     string
	Name       string
	A, B       *float64
	TA, TB     *float64
	Delta      string
	DeltaClass string
}

type cmpKind struct {
	Kind              string
	IA, IB, AA, AB    *float64
	PA, PB            *float64
	DI, DA, DP        string
	CDI, CDA, CDP     string
	ImagesA, ImagesB  int
	PresentA, PresenB bool
}

type cmpImage struct {
	Key, Kind          string
	Label              int
	ScoreA, ScoreB     float64
	APA, APB           *float64
	DAP                string
	VerdictA, VerdictB string
}

type compareView struct {
	Title, Generated   string
	NameA, NameB       string
	Metrics            []cmpMetric
	Plots              []template.HTML
	Kinds              []cmpKind
	Images             []cmpImage
	Flips              int
	Common             int
	OnlyA, OnlyB       []string
	ProvA, ProvB       []kv
	DescA, DescB       string
	ImagesNote         string
	VerdictNote        string
	MaskVersionsDiffer int
}

func deltaClass(a, b *float64) string {
	if a == nil || b == nil || math.Abs(*b-*a) < 0.0005 {
		return ""
	}
	if *b > *a {
		return "pos"
	}
	return "neg"
}

func verdict(s protocol.ImageScore, t *float64) string {
	if t == nil {
		return ""
	}
	pos := s.Score >= *t
	switch {
	case pos && s.Label == 1:
		return "TP"
	case pos:
		return "FP"
	case s.Label == 1:
		return "FN"
	}
	return "TN"
}

func (c *Comparison) view() *compareView {
	a, b := c.A.Result, c.B.Result
	v := &compareView{
		Title:     fmt.Sprintf("%s vs %s", title(c.A), title(c.B)),
		Generated: c.Generated.UTC().Format(time.RFC3339),
		NameA:     c.NameA, NameB: c.NameB,
		Common: c.Common, OnlyA: c.OnlyA, OnlyB: c.OnlyB,
		DescA: describe(c.A), DescB: describe(c.B),
	}
	if title(c.A) == title(c.B) {
		v.Title = title(c.A)
	}
	ca, cb := summaryCells(a), summaryCells(b)
	for i := range ca {
		v.Metrics = append(v.Metrics, cmpMetric{Metric: ca[i].Metric, Name: ca[i].Level + " " + ca[i].Name, A: ca[i].Value, B: cb[i].Value, TA: ca[i].Threshold, TB: cb[i].Threshold,
			Delta: delta(ca[i].Value, cb[i].Value), DeltaClass: deltaClass(ca[i].Value, cb[i].Value)})
	}
	for _, p := range curvePlots([]string{c.NameA[:1], c.NameB[:1]}, []*sm.Result{a, b}) {
		v.Plots = append(v.Plots, template.HTML(p.svg()))
	}
	// per kind, in the union of kinds, A's order first
	kb := map[string]sm.KindResult{}
	for _, k := range b.PerKind {
		kb[k.Kind] = k
	}
	seen := map[string]bool{}
	add := func(ka, kbb *sm.KindResult, name string) {
		row := cmpKind{Kind: name}
		if ka != nil {
			row.IA, row.AA, row.PA, row.ImagesA, row.PresentA = ka.ImageAUROC, ka.PixelAP, ka.PixelAUPRO, ka.Images, true
		}
		if kbb != nil {
			row.IB, row.AB, row.PB, row.ImagesB, row.PresenB = kbb.ImageAUROC, kbb.PixelAP, kbb.PixelAUPRO, kbb.Images, true
		}
		row.DI, row.DA, row.DP = delta(row.IA, row.IB), delta(row.AA, row.AB), delta(row.PA, row.PB)
		row.CDI, row.CDA, row.CDP = deltaClass(row.IA, row.IB), deltaClass(row.AA, row.AB), deltaClass(row.PA, row.PB)
		v.Kinds = append(v.Kinds, row)
	}
	for i := range a.PerKind {
		k := a.PerKind[i]
		seen[k.Kind] = true
		if o, ok := kb[k.Kind]; ok {
			add(&k, &o, k.Kind)
		} else {
			add(&k, nil, k.Kind)
		}
	}
	for i := range b.PerKind {
		if k := b.PerKind[i]; !seen[k.Kind] {
			add(nil, &k, k.Kind)
		}
	}
	add(&sm.KindResult{ImageAUROC: a.ImageAUROC, PixelAP: a.PixelAP, PixelAUPRO: a.PixelAUPRO, Images: a.Counts.Images},
		&sm.KindResult{ImageAUROC: b.ImageAUROC, PixelAP: b.PixelAP, PixelAUPRO: b.PixelAUPRO, Images: b.Counts.Images}, "all")

	// per image: the images both evaluated, largest pixel-AP change first, then verdict changes
	da, db := detailsByKey(a), detailsByKey(b)
	sb := map[string]protocol.ImageScore{}
	for _, s := range c.B.Scores {
		sb[s.Key] = s
	}
	var rows []cmpImage
	for _, s := range sortedScores(c.A.Scores) {
		o, ok := sb[s.Key]
		if !ok {
			continue
		}
		row := cmpImage{Key: s.Key, Kind: s.Kind, Label: s.Label, ScoreA: s.Score, ScoreB: o.Score,
			VerdictA: verdict(s, a.ImageF1MaxThreshold), VerdictB: verdict(o, b.ImageF1MaxThreshold)}
		if d := da[s.Key]; d != nil {
			row.APA = d.PixelAP
		}
		if d := db[s.Key]; d != nil {
			row.APB = d.PixelAP
		}
		row.DAP = delta(row.APA, row.APB)
		if row.VerdictA != row.VerdictB {
			v.Flips++
		}
		if c.A.Job.MaskVersions[s.Image] != c.B.Job.MaskVersions[o.Image] {
			v.MaskVersionsDiffer++
		}
		rows = append(rows, row)
	}
	change := func(r cmpImage) float64 {
		if r.APA == nil || r.APB == nil {
			if (r.APA == nil) != (r.APB == nil) {
				return 1 // gained or lost defect pixels: a mask difference, always worth showing
			}
			return 0
		}
		return math.Abs(*r.APB - *r.APA)
	}
	// Verdict changes first (they change the image-level numbers), then the largest pixel-AP changes.
	sort.SliceStable(rows, func(i, j int) bool {
		fi, fj := rows[i].VerdictA != rows[i].VerdictB, rows[j].VerdictA != rows[j].VerdictB
		if fi != fj {
			return fi
		}
		return change(rows[i]) > change(rows[j])
	})
	const maxRows = 25
	if len(rows) > maxRows {
		v.ImagesNote = fmt.Sprintf("The %d of %d common images that changed most: verdict changes first, then the largest changes in pixel AP.", maxRows, len(rows))
		rows = rows[:maxRows]
	} else {
		v.ImagesNote = fmt.Sprintf("All %d common images: verdict changes first, then the largest changes in pixel AP.", len(rows))
	}
	v.Images = rows
	v.VerdictNote = fmt.Sprintf("%d of %d common images change verdict (TP/FP/TN/FN at each job's own image F1-max threshold)", v.Flips, c.Common)
	v.ProvA, _, _ = provenance(c.A)
	v.ProvB, _, _ = provenance(c.B)
	return v
}

func describe(in *Input) string {
	s := fmt.Sprintf("job %s: %s, %s split, %s", in.Job.ID, title(in), orDash(in.Job.Split), maskSummary(in.Job))
	if in.Job.NoiseStd > 0 {
		s += ", noise σ = " + trimFloat(in.Job.NoiseStd)
	}
	return s
}

var compareTmpl = template.Must(template.New("compare").Funcs(funcs).Parse(compareHTML))

// WriteHTML writes the comparison as one self-contained HTML file.
func (c *Comparison) WriteHTML(w io.Writer) error {
	if err := compareTmpl.Execute(w, c.view()); err != nil {
		return fmt.Errorf("write HTML comparison of jobs %s and %s: %w", c.A.Job.ID, c.B.Job.ID, err)
	}
	return nil
}

// WriteMarkdown writes the comparison's summary and per-type tables as Markdown.
func (c *Comparison) WriteMarkdown(w io.Writer) error {
	v := c.view()
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "## Comparison: %s\n\n- **%s**: %s\n- **%s**: %s\n\n", mdEscape(v.Title), mdEscape(c.NameA), mdEscape(v.DescA), mdEscape(c.NameB), mdEscape(v.DescB))
	writeMDSummary(bw, []string{c.NameA, c.NameB}, []*sm.Result{c.A.Result, c.B.Result})
	bw.WriteString("| Δ (B − A, points) |")
	for _, m := range v.Metrics {
		fmt.Fprintf(bw, " %s |", m.Delta)
	}
	bw.WriteString("\n\n| Defect type | Image AUROC A | B | Δ | Pixel AP A | B | Δ | AUPRO A | B | Δ |\n|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, k := range v.Kinds {
		fmt.Fprintf(bw, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", mdEscape(k.Kind), pct(k.IA), pct(k.IB), k.DI, pct(k.AA), pct(k.AB), k.DA, pct(k.PA), pct(k.PB), k.DP)
	}
	fmt.Fprintf(bw, "\n%s.", v.VerdictNote)
	if len(c.OnlyA)+len(c.OnlyB) > 0 {
		fmt.Fprintf(bw, " %d images only in A, %d only in B.", len(c.OnlyA), len(c.OnlyB))
	}
	bw.WriteString("\n")
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write Markdown comparison: %w", err)
	}
	return nil
}

const compareHTML = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8"/>
<meta name="viewport" content="width=device-width, initial-scale=1"/>
<meta name="generator" content="rdre-studio"/>
<title>RD-RE comparison: {{.Title}}</title>
<style>` + css + `</style>
</head>
<body>
<main>
<h1>Comparison: {{.Title}}</h1>
<p class="sub"><b>{{.NameA}}</b>: {{.DescA}}</p>
<p class="sub"><b>{{.NameB}}</b>: {{.DescB}}</p>
<p class="small">Generated {{.Generated}}. Differences are B − A in percentage points. {{.Common}} images in both jobs{{if .OnlyA}}, {{len .OnlyA}} only in A{{end}}{{if .OnlyB}}, {{len .OnlyB}} only in B{{end}}.{{if .MaskVersionsDiffer}} {{.MaskVersionsDiffer}} common images were evaluated against different workspace mask versions.{{end}}</p>

<h2 id="summary">Summary</h2>
<table class="booktabs summary cmp" data-table="compare-summary">
<thead><tr><th></th>{{range .Metrics}}<th>{{.Name}}</th>{{end}}</tr></thead>
<tbody>
<tr data-side="a"><td>{{.NameA}}</td>{{range .Metrics}}<td class="v" data-metric="{{.Metric}}" data-value="{{exact .A}}">{{pct .A}}</td>{{end}}</tr>
<tr data-side="b"><td>{{.NameB}}</td>{{range .Metrics}}<td class="v" data-metric="{{.Metric}}" data-value="{{exact .B}}">{{pct .B}}</td>{{end}}</tr>
<tr class="bold" data-side="delta"><td>Δ</td>{{range .Metrics}}<td class="{{.DeltaClass}}" data-metric="{{.Metric}}">{{.Delta}}</td>{{end}}</tr>
<tr class="thr"><td>Thresholds A / B</td>{{range .Metrics}}<td>{{if .TA}}{{thr .TA}} / {{thr .TB}}{{end}}</td>{{end}}</tr>
</tbody>
</table>

<h2 id="curves">Curves</h2>
<p class="small">Solid: A; dashed: B.</p>
<div class="plots">
{{range .Plots}}<div>{{.}}</div>
{{end}}</div>

<h2 id="per-kind">Per defect type</h2>
<table class="booktabs" data-table="compare-per-kind">
<thead><tr><th>Defect type</th><th>Image AUROC A</th><th>B</th><th>Δ</th><th>Pixel AP A</th><th>B</th><th>Δ</th><th>AUPRO A</th><th>B</th><th>Δ</th></tr></thead>
<tbody>
{{range .Kinds}}<tr data-kind="{{.Kind}}"{{if eq .Kind "all"}} class="bold"{{end}}><td>{{.Kind}}</td><td>{{pct .IA}}</td><td>{{pct .IB}}</td><td class="{{.CDI}}">{{.DI}}</td><td>{{pct .AA}}</td><td>{{pct .AB}}</td><td class="{{.CDA}}">{{.DA}}</td><td>{{pct .PA}}</td><td>{{pct .PB}}</td><td class="{{.CDP}}">{{.DP}}</td></tr>
{{end}}</tbody>
</table>

<h2 id="per-image">Images that changed</h2>
<p class="small">{{.ImagesNote}} {{.VerdictNote}}.</p>
<table class="images" data-table="compare-per-image">
<thead><tr><th>Image</th><th>Type</th><th>Label</th><th>Score A</th><th>Score B</th><th>Verdict A</th><th>Verdict B</th><th>Pixel AP A</th><th>B</th><th>Δ</th></tr></thead>
<tbody>
{{range .Images}}<tr data-key="{{.Key}}"><td>{{.Key}}</td><td>{{.Kind}}</td><td>{{.Label}}</td><td>{{g .ScoreA}}</td><td>{{g .ScoreB}}</td><td class="{{.VerdictA}}">{{.VerdictA}}</td><td class="{{.VerdictB}}">{{.VerdictB}}</td><td>{{pct .APA}}</td><td>{{pct .APB}}</td><td>{{.DAP}}</td></tr>
{{end}}</tbody>
</table>
{{if .OnlyA}}<p class="small">Only in A: {{range $i, $k := .OnlyA}}{{if $i}}, {{end}}{{$k}}{{end}}</p>{{end}}
{{if .OnlyB}}<p class="small">Only in B: {{range $i, $k := .OnlyB}}{{if $i}}, {{end}}{{$k}}{{end}}</p>{{end}}

<h2 id="provenance">Provenance</h2>
<h3>{{.NameA}}</h3>
<table class="kv" data-table="provenance-a"><tbody>
{{range .ProvA}}<tr><td>{{.K}}</td><td><code>{{.V}}</code></td></tr>
{{end}}</tbody></table>
<h3>{{.NameB}}</h3>
<table class="kv" data-table="provenance-b"><tbody>
{{range .ProvB}}<tr><td>{{.K}}</td><td><code>{{.V}}</code></td></tr>
{{end}}</tbody></table>
</main>
</body>
</html>
`
