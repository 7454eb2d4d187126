//go:build !js

package report

import (
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"sort"
	"strconv"
	"time"

	sm "github.com/rdre-studio/studio/shared/metrics"
	"github.com/rdre-studio/studio/shared/protocol"
)

// The page is written as well-formed XHTML-style markup (every element closed, attributes quoted, no
// named entities) so that any XML parser reads it; tests rely on that.

type kv struct{ K, V string }

type metricCell struct {
	Metric    string // JSON name of the metric
	Level     string
	Name      string
	Value     *float64
	Threshold *float64
	Note      string
}

func (c metricCell) Pct() string   { return pct(c.Value) }
func (c metricCell) Exact() string { return exact(c.Value) }
func (c metricCell) Thr() string   { return thr(c.Threshold) }
func (c metricCell) ThrExact() string {
	return exact(c.Threshold)
}

type kindRow struct {
	Kind                                string
	Images                              int
	ImageAUROC, PixelAUROC, AP, AUPRO   *float64
	Bold                                bool
	DImageAUROC, DPixelAUROC, DAP, DPRO string // comparison only
}

type imageRow struct {
	Key, Kind                   string
	Label                       int
	Score, MaxScore             float64
	PixelAP, Covered            *float64
	DefectPixels, FalsePositive int64
	Regions                     int
	MaskVersion                 string
	Verdict                     string // "FP", "FN" or "" at the image F1-max threshold
}

type galleryItem struct {
	Key     string
	Caption string
	Src     template.URL
	Error   string
}

type effView struct {
	Rows   []kv
	Source string
}

type robRow struct {
	Std                                   string
	Job                                   string
	ImageAUROC, PixelAUROC, AP, AUPRO, F1 *float64
}

type pageData struct {
	Title        string
	Subtitle     string
	Generated    string
	Summary      []metricCell
	Counts       sm.Counts
	Plots        []template.HTML
	Histogram    template.HTML
	Kinds        []kindRow
	FPs, Misses  []galleryItem
	GalleryNote  string
	HeatLegend   template.HTML
	Images       []imageRow
	Provenance   []kv
	Metadata     []kv
	MaskVersions []kv
	Excluded     []string // images the model trained or was calibrated on, left out (JobInfo.Excluded)
	Efficiency   *effView
	Robustness   []robRow
	RobustSVG    template.HTML
	Warnings     []string
}

var funcs = template.FuncMap{
	"pct":   pct,
	"exact": exact,
	"thr":   thr,
	"g":     func(v float64) string { return strconv.FormatFloat(v, 'g', 5, 64) },
	"xf":    trimFloat,
}

var pageTmpl = template.Must(template.New("page").Funcs(funcs).Parse(pageHTML))

// WriteHTML writes the report of one job as one self-contained HTML file.
func WriteHTML(w io.Writer, in *Input) error {
	if err := in.validate(); err != nil {
		return err
	}
	d := buildPage(in)
	if err := pageTmpl.Execute(w, d); err != nil {
		return fmt.Errorf("write HTML report of job %s: %w", in.Job.ID, err)
	}
	return nil
}

func title(in *Input) string {
	name := in.Job.ModelName
	if name == "" {
		name = in.Model.Name
	}
	if name == "" {
		name = shortSHA(in.Job.Model)
	}
	ds := in.Dataset.Name
	if ds == "" {
		ds = in.Job.Dataset
	}
	if in.Job.Category != "" {
		ds += " / " + in.Job.Category
	}
	return fmt.Sprintf("%s on %s", name, ds)
}

func shortSHA(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	return s
}

func summaryCells(r *sm.Result) []metricCell {
	return []metricCell{
		{Metric: "image_auroc", Level: "Image", Name: "AUROC", Value: r.ImageAUROC},
		{Metric: "image_ap", Level: "Image", Name: "AP", Value: r.ImageAP},
		{Metric: "image_f1_max", Level: "Image", Name: "F1-max", Value: r.ImageF1Max, Threshold: r.ImageF1MaxThreshold},
		{Metric: "pixel_auroc", Level: "Pixel", Name: "AUROC", Value: r.PixelAUROC},
		{Metric: "pixel_ap", Level: "Pixel", Name: "AP", Value: r.PixelAP},
		{Metric: "pixel_aupro", Level: "Pixel", Name: "AUPRO", Value: r.PixelAUPRO, Note: "FPR ≤ " + trimFloat(r.FPRLimit)},
		{Metric: "pixel_f1_max", Level: "Pixel", Name: "F1-max", Value: r.PixelF1Max, Threshold: r.PixelF1MaxThreshold},
		segF1Cell(r),
	}
}

// segF1Cell is SegF1 at the calibrated (or given) threshold; without one the cell says so, and stays in
// place so that two reports compare cell by cell.
func segF1Cell(r *sm.Result) metricCell {
	c := metricCell{Metric: "pixel_segf1", Level: "Pixel", Name: "SegF1", Note: "no threshold from normal images"}
	if r.Threshold != nil {
		px := r.Threshold.Pixel
		c.Value, c.Threshold, c.Note = r.PixelSegF1.Value, &px, r.Threshold.Source
	}
	return c
}

func kindRows(r *sm.Result) []kindRow {
	rows := make([]kindRow, 0, len(r.PerKind)+1)
	for _, k := range r.PerKind {
		rows = append(rows, kindRow{Kind: k.Kind, Images: k.Images, ImageAUROC: k.ImageAUROC, PixelAUROC: k.PixelAUROC, AP: k.PixelAP, AUPRO: k.PixelAUPRO})
	}
	rows = append(rows, kindRow{Kind: "all", Images: r.Counts.Images, ImageAUROC: r.ImageAUROC, PixelAUROC: r.PixelAUROC, AP: r.PixelAP, AUPRO: r.PixelAUPRO, Bold: true})
	return rows
}

func buildPage(in *Input) pageData {
	r := in.Result
	d := pageData{
		Title:     title(in),
		Generated: in.Generated.UTC().Format(time.RFC3339),
		Summary:   summaryCells(r),
		Counts:    r.Counts,
		Warnings:  r.Warnings,
	}
	d.Subtitle = fmt.Sprintf("%s split, %d images (%d defective), %s", orDash(in.Job.Split), r.Counts.Images, r.Counts.AnomalousImages, maskSummary(in.Job))
	if in.Job.NoiseStd > 0 {
		d.Subtitle += fmt.Sprintf(", Gaussian noise σ = %s", trimFloat(in.Job.NoiseStd))
	}
	if t := r.Threshold; t != nil {
		d.Subtitle += fmt.Sprintf("; SegF1 at pixel threshold %s: %s", thr(&t.Pixel), t.Source)
	}
	for _, p := range curvePlots([]string{""}, []*sm.Result{r}) {
		d.Plots = append(d.Plots, template.HTML(p.svg()))
	}
	d.Histogram = template.HTML(histogramSVG(scoreHistogram(in.Scores, 30), r.ImageF1MaxThreshold))
	d.Kinds = kindRows(r)
	d.Images = imageRows(in)
	d.FPs, d.Misses, d.GalleryNote, d.HeatLegend = gallery(in)
	d.Provenance, d.Metadata, d.MaskVersions = provenance(in)
	d.Excluded = in.Job.Excluded
	d.Efficiency = efficiencyView(in.Efficiency)
	d.Robustness, d.RobustSVG = robustness(in.Robustness)
	return d
}

func imageRows(in *Input) []imageRow {
	det := detailsByKey(in.Result)
	t := in.Result.ImageF1MaxThreshold
	rows := make([]imageRow, 0, len(in.Scores))
	for _, s := range sortedScores(in.Scores) {
		row := imageRow{Key: s.Key, Kind: s.Kind, Label: s.Label, Score: s.Score}
		if d := det[s.Key]; d != nil {
			row.MaxScore = d.MaxScore
			row.PixelAP = d.PixelAP
			row.Covered = meanCovered(d)
			row.DefectPixels = d.DefectPixels
			row.FalsePositive = d.FalsePositives
			row.Regions = len(d.Regions)
		}
		if v, ok := in.Job.MaskVersions[s.Image]; ok {
			row.MaskVersion = "v" + strconv.Itoa(v)
		}
		if t != nil {
			switch {
			case s.Label == 0 && s.Score >= *t:
				row.Verdict = "FP"
			case s.Label == 1 && s.Score < *t:
				row.Verdict = "FN"
			}
		}
		rows = append(rows, row)
	}
	return rows
}

func gallery(in *Input) (fps, misses []galleryItem, note string, legend template.HTML) {
	pf, pm := galleryPicks(in.Scores, in.galleryN())
	if in.Gallery == nil {
		return nil, nil, "The gallery is not available: the dataset images could not be read when this report was made.", ""
	}
	lo, hi, global := mapRange(in.Result)
	t := in.Result.ImageF1MaxThreshold
	render := func(s protocol.ImageScore, rank int, fp bool) galleryItem {
		it := galleryItem{Key: s.Key}
		verdict := ""
		if t != nil {
			switch {
			case fp && s.Score >= *t:
				verdict = ", flagged (false positive)"
			case fp:
				verdict = ", below threshold"
			case s.Score < *t:
				verdict = ", missed"
			default:
				verdict = ", detected"
			}
		}
		it.Caption = fmt.Sprintf("#%d %s: score %s%s", rank, s.Key, strconv.FormatFloat(s.Score, 'g', 4, 64), verdict)
		g, err := in.Gallery(s.Image)
		if err == nil {
			var src string
			src, err = renderPanel(g, lo, hi)
			it.Src = template.URL(src)
		}
		if err != nil {
			slog.Warn("report gallery image", "job", in.Job.ID, "image", s.Image, "err", err)
			it.Error = err.Error()
		}
		return it
	}
	for i, s := range pf {
		fps = append(fps, render(s, i+1, true))
	}
	for i, s := range pm {
		misses = append(misses, render(s, i+1, false))
	}
	note = "Left: the evaluated image; right: its anomaly map over it. Green outline: ground-truth defect."
	if in.Job.NoiseStd > 0 {
		note += " Images are shown without the evaluation's added noise."
	}
	return fps, misses, note, template.HTML(heatLegendSVG(lo, hi, global))
}

func provenance(in *Input) (prov, meta, versions []kv) {
	j := in.Job
	tool := in.ToolVersion
	if tool == "" {
		tool = "unknown"
	}
	prov = []kv{
		{"Report generated", in.Generated.UTC().Format(time.RFC3339)},
		{"Tool", "rdre-studio " + tool},
		{"Job", j.ID},
		{"Job state", orDash(j.State)},
		{"Job created", orDash(j.Created)},
		{"Job finished", orDash(j.Finished)},
		{"Device", orDash(j.Device)},
		{"Model", orDash(in.Model.Name)},
		{"Model file", orDash(in.Model.Path)},
		{"Model SHA-256", orDash(j.Model)},
		{"Model input", fmt.Sprintf("%d×%d", in.Model.InputSize, in.Model.InputSize)},
		{"Dataset", fmt.Sprintf("%s (%s, layout %s)", orDash(in.Dataset.Name), orDash(j.Dataset), orDash(in.Dataset.Layout))},
		{"Dataset root", orDash(in.Dataset.Root)},
		{"Split / category", orDash(j.Split) + " / " + orDash(j.Category)},
	}
	if in.Fingerprint.Error != "" {
		prov = append(prov, kv{"Dataset fingerprint", "unavailable: " + in.Fingerprint.Error})
	} else if in.Fingerprint.SHA256 != "" {
		prov = append(prov, kv{"Dataset fingerprint", fmt.Sprintf("sha256 %s over %d files (%s)", in.Fingerprint.SHA256, in.Fingerprint.Files, in.Fingerprint.Method)})
	}
	prov = append(prov, kv{"Masks", maskSummary(j)})
	noise := "none"
	if j.NoiseStd > 0 {
		noise = fmt.Sprintf("additive white Gaussian, σ = %s on [0,1] pixel values", trimFloat(j.NoiseStd))
	}
	prov = append(prov, kv{"Input noise", noise})
	prov = append(prov, kv{"AUPRO FPR limit", trimFloat(in.Result.FPRLimit)})
	prov = append(prov, kv{"Evaluated", fmt.Sprintf("%d images, %d pixels (%d defective), %d regions, %d distinct pixel scores",
		in.Result.Counts.Images, in.Result.Counts.Pixels, in.Result.Counts.AnomalousPixels, in.Result.Counts.Regions, in.Result.Counts.DistinctPixelScores)})
	keys := make([]string, 0, len(in.Model.Metadata))
	for k := range in.Model.Metadata {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		meta = append(meta, kv{k, in.Model.Metadata[k]})
	}
	ids := make([]string, 0, len(j.MaskVersions))
	for id := range j.MaskVersions {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		versions = append(versions, kv{id, "v" + strconv.Itoa(j.MaskVersions[id])})
	}
	return prov, meta, versions
}

func efficiencyView(e *Efficiency) *effView {
	if e == nil {
		return nil
	}
	num := func(v float64, f string) string {
		if v == 0 {
			return "not measured"
		}
		return fmt.Sprintf(f, v)
	}
	recorded := func(v float64, f string) string {
		if v == 0 {
			return "not recorded"
		}
		return fmt.Sprintf(f, v)
	}
	v := &effView{Source: e.Source}
	params := "not recorded"
	if e.Params > 0 {
		params = fmt.Sprintf("%.2f M", e.Params/1e6)
	}
	v.Rows = []kv{
		{"Parameters", params},
		{"GFLOPs (one image)", recorded(e.GFLOPs, "%.2f")},
		{"Input size", num(float64(e.InputSize), "%.0f px")},
		{"Latency, batch 1, network (p50 / p95)", latency(e.LatencyP50, e.LatencyP95)},
		{"Latency, batch 1, end to end" + e2eSide(e.E2ESize) + " (p50 / p95)", latency(e.E2EP50, e.E2EP95)},
		{"Throughput", throughput(e)},
		{"Device", orDash(e.Device)},
	}
	if e.Threads > 0 {
		v.Rows = append(v.Rows, kv{"Threads", strconv.Itoa(e.Threads)})
	}
	return v
}

func e2eSide(n int) string {
	if n <= 0 {
		return ""
	}
	return fmt.Sprintf(", %d×%d image", n, n)
}

func latency(p50, p95 float64) string {
	if p50 == 0 {
		return "not measured"
	}
	return fmt.Sprintf("%.1f ms / %.1f ms (%.1f FPS)", p50, p95, 1000/p50)
}

func throughput(e *Efficiency) string {
	if e.Throughput == 0 {
		return "not measured"
	}
	return fmt.Sprintf("%.1f images/s at batch %d", e.Throughput, e.BestBatch)
}

func robustness(levels []NoiseLevel) ([]robRow, template.HTML) {
	if len(levels) == 0 {
		return nil, ""
	}
	rows := make([]robRow, 0, len(levels))
	for _, l := range levels {
		row := robRow{Std: trimFloat(l.Std), Job: l.Job}
		if l.Result != nil {
			row.ImageAUROC, row.PixelAUROC, row.AP, row.AUPRO, row.F1 = l.Result.ImageAUROC, l.Result.PixelAUROC, l.Result.PixelAP, l.Result.PixelAUPRO, l.Result.PixelF1Max
		}
		rows = append(rows, row)
	}
	return rows, template.HTML(robustnessSVG(levels))
}

// css is shared by the report and the comparison. It uses only local font families, so the page looks
// the same offline.
const css = `
:root { --ink: #1b1f24; --muted: #5b6570; --rule: #1b1f24; --soft: #e6e9ed; --accent: #1f5fa8; }
* { box-sizing: border-box; }
body { margin: 0; background: #f4f5f7; color: var(--ink);
  font: 15px/1.5 "Charter", "Bitstream Charter", "Sitka Text", "Cambria", "DejaVu Serif", "Georgia", serif; }
main { max-width: 1120px; margin: 24px auto; background: #fff; padding: 40px 56px 56px;
  box-shadow: 0 1px 3px rgba(0,0,0,.08); }
h1 { font-size: 26px; line-height: 1.25; margin: 0 0 4px; font-weight: 600; }
h2 { font-size: 18px; margin: 36px 0 10px; padding-bottom: 4px; border-bottom: 1px solid var(--soft); font-weight: 600; }
h3 { font-size: 15px; margin: 18px 0 8px; font-weight: 600; }
.sub { color: var(--muted); margin: 0 0 4px; }
.small, figcaption, .note { font-size: 13px; color: var(--muted); }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; margin: 6px 0 8px; }
table.booktabs { border-top: 2px solid var(--rule); border-bottom: 2px solid var(--rule); }
table.booktabs thead tr:last-child th { border-bottom: 1px solid var(--rule); }
th, td { padding: 4px 12px; text-align: right; white-space: nowrap; }
th:first-child, td:first-child { text-align: left; }
thead th { font-weight: 600; }
tr.bold td { font-weight: 700; border-top: 1px solid var(--soft); }
table.summary { font-size: 16px; }
table.summary td.v { font-size: 19px; font-weight: 600; }
table.summary tr.thr td { font-size: 13px; color: var(--muted); }
table.summary.cmp { font-size: 14px; }
table.summary.cmp td.v { font-size: 16px; }
table.summary.cmp th, table.summary.cmp td { padding: 4px 8px; white-space: normal; }
table.summary .grp { text-align: center; font-weight: 600; border-bottom: 1px solid #9aa3ad; }
table.kv td { text-align: left; vertical-align: top; white-space: normal; padding: 3px 12px 3px 0; }
table.kv td:first-child { color: var(--muted); width: 220px; white-space: nowrap; }
table.kv code { font-size: 12.5px; word-break: break-all; }
table.images { font-size: 13px; width: 100%; }
table.images tbody tr:nth-child(even) { background: #f8f9fa; }
td.FP, td.FN { color: #b03a2e; font-weight: 700; }
.plots { display: grid; grid-template-columns: repeat(2, minmax(0, 1fr)); gap: 8px 28px; }
svg.plot { width: 100%; height: auto; font-family: "DejaVu Sans", "Helvetica Neue", Arial, sans-serif; }
svg.plot.wide { max-width: 760px; }
svg .grid { stroke: #eceef1; stroke-width: 1; }
svg .axis { stroke: #333; stroke-width: 1; }
svg .frame { fill: none; stroke: #333; stroke-width: 1; }
svg .chance { stroke: #999; stroke-width: 1; stroke-dasharray: 3 3; }
svg .tick { font-size: 10px; fill: #333; }
svg .label { font-size: 11.5px; fill: #111; }
svg .ptitle { font-size: 13px; font-weight: 600; fill: #111; }
svg .legend { font-size: 11px; fill: #111; }
svg .mark { font-size: 10.5px; fill: #111; }
svg.heatlegend { width: 260px; height: 30px; font-family: "DejaVu Sans", Arial, sans-serif; vertical-align: middle; }
.gallery { display: grid; grid-template-columns: repeat(3, minmax(0, 1fr)); gap: 14px 18px; }
figure { margin: 0; }
figure img { width: 100%; height: auto; display: block; border: 1px solid var(--soft); image-rendering: auto; }
figure .err { padding: 30px 8px; background: #fbeeee; color: #8a2a2a; font-size: 12px; }
.warn { background: #fff7e0; border-left: 3px solid #e0a800; padding: 6px 12px; font-size: 13px; margin: 8px 0; }
details summary { cursor: pointer; color: var(--accent); font-size: 14px; }
.pos { color: #17733a; } .neg { color: #b03a2e; }
@media print { body { background: #fff; } main { box-shadow: none; margin: 0; padding: 0 8px; } h2 { break-after: avoid; } figure, svg { break-inside: avoid; } }
`

const pageHTML = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8"/>
<meta name="viewport" content="width=device-width, initial-scale=1"/>
<meta name="generator" content="rdre-studio"/>
<title>RD-RE evaluation: {{.Title}}</title>
<style>` + css + `</style>
</head>
<body>
<main>
<h1>Anomaly detection report: {{.Title}}</h1>
<p class="sub">{{.Subtitle}}</p>
<p class="small">Generated {{.Generated}}. Metrics are exact (MVTec AD definitions: step-wise AP, AUPRO by trapezoids over all distinct scores up to the FPR limit, normalised by it); a pixel or image is anomalous iff its score ≥ threshold.</p>
{{if gt (len .Warnings) 3}}<details class="warn" data-table="warnings"><summary>{{len .Warnings}} warnings about the evaluated files (missing or odd masks, skipped images): open to read them</summary>
{{range .Warnings}}<p class="small">{{.}}</p>
{{end}}</details>
{{else}}{{range .Warnings}}<p class="warn">{{.}}</p>
{{end}}{{end}}
<h2 id="summary">Summary</h2>
<table class="booktabs summary" data-table="summary">
<thead>
<tr><th></th><th class="grp" colspan="3">Image level</th><th class="grp" colspan="4">Pixel level</th></tr>
<tr><th></th>{{range .Summary}}<th>{{.Name}}</th>{{end}}</tr>
</thead>
<tbody>
<tr><td>Value (%)</td>{{range .Summary}}<td class="v" data-metric="{{.Metric}}" data-value="{{.Exact}}">{{.Pct}}</td>{{end}}</tr>
<tr class="thr"><td>Threshold</td>{{range .Summary}}<td data-metric="{{.Metric}}_threshold" data-value="{{.ThrExact}}">{{if .Threshold}}{{.Thr}}{{else}}{{.Note}}{{end}}</td>{{end}}</tr>
</tbody>
</table>
<p class="small">{{.Counts.Images}} images ({{.Counts.NormalImages}} defect-free, {{.Counts.AnomalousImages}} defective), {{.Counts.Pixels}} pixels of which {{.Counts.AnomalousPixels}} defective in {{.Counts.Regions}} ground-truth regions.</p>

<h2 id="curves">Curves</h2>
<div class="plots">
{{range .Plots}}<div>{{.}}</div>
{{end}}</div>

<h2 id="per-kind">Per defect type</h2>
<p class="small">Each defect type is evaluated against all defect-free images of the split.</p>
<table class="booktabs" data-table="per-kind">
<thead><tr><th>Defect type</th><th>Images</th><th>Image AUROC</th><th>Pixel AUROC</th><th>Pixel AP</th><th>AUPRO</th></tr></thead>
<tbody>
{{range .Kinds}}<tr{{if .Bold}} class="bold"{{end}} data-kind="{{.Kind}}"><td>{{.Kind}}</td><td>{{.Images}}</td><td data-value="{{exact .ImageAUROC}}">{{pct .ImageAUROC}}</td><td data-value="{{exact .PixelAUROC}}">{{pct .PixelAUROC}}</td><td data-value="{{exact .AP}}">{{pct .AP}}</td><td data-value="{{exact .AUPRO}}">{{pct .AUPRO}}</td></tr>
{{end}}</tbody>
</table>

<h2 id="histogram">Score distribution</h2>
{{.Histogram}}

<h2 id="gallery">Worst cases</h2>
<p class="note">{{.GalleryNote}} {{.HeatLegend}}</p>
{{if .FPs}}<h3>Highest-scoring defect-free images (false positives first)</h3>
<div class="gallery" data-gallery="false-positives">
{{range .FPs}}<figure>{{if .Src}}<img src="{{.Src}}" alt="{{.Key}}"/>{{else}}<div class="err">{{.Error}}</div>{{end}}<figcaption>{{.Caption}}</figcaption></figure>
{{end}}</div>{{end}}
{{if .Misses}}<h3>Lowest-scoring defective images (missed defects first)</h3>
<div class="gallery" data-gallery="missed">
{{range .Misses}}<figure>{{if .Src}}<img src="{{.Src}}" alt="{{.Key}}"/>{{else}}<div class="err">{{.Error}}</div>{{end}}<figcaption>{{.Caption}}</figcaption></figure>
{{end}}</div>{{end}}

{{if .Robustness}}<h2 id="robustness">Robustness to input noise</h2>
<p class="small">Additive white Gaussian noise of standard deviation σ on [0,1] pixel values before inference (the paper's section 4.3.2), one evaluation per level.</p>
<table class="booktabs" data-table="robustness">
<thead><tr><th>σ</th><th>Image AUROC</th><th>Pixel AUROC</th><th>Pixel AP</th><th>AUPRO</th><th>Pixel F1-max</th><th>Job</th></tr></thead>
<tbody>
{{range .Robustness}}<tr data-std="{{.Std}}"><td>{{.Std}}</td><td data-value="{{exact .ImageAUROC}}">{{pct .ImageAUROC}}</td><td data-value="{{exact .PixelAUROC}}">{{pct .PixelAUROC}}</td><td data-value="{{exact .AP}}">{{pct .AP}}</td><td data-value="{{exact .AUPRO}}">{{pct .AUPRO}}</td><td data-value="{{exact .F1}}">{{pct .F1}}</td><td class="small">{{.Job}}</td></tr>
{{end}}</tbody>
</table>
<div style="max-width: 520px">{{.RobustSVG}}</div>
{{end}}
{{with .Efficiency}}<h2 id="efficiency">Efficiency</h2>
<table class="kv" data-table="efficiency">
<tbody>
{{range .Rows}}<tr><td>{{.K}}</td><td>{{.V}}</td></tr>
{{end}}</tbody>
</table>
{{if .Source}}<p class="small">Source: {{.Source}}.</p>{{end}}
{{end}}
<h2 id="per-image">Per image</h2>
<p class="small">Sorted by key. FP/FN: wrong at the image F1-max threshold. Covered: mean fraction of the image's ground-truth regions at or above the pixel F1-max threshold; FP pixels: defect-free pixels at or above it.</p>
<table class="images" data-table="per-image">
<thead><tr><th>Image</th><th>Type</th><th>Label</th><th>Score</th><th></th><th>Map max</th><th>Pixel AP</th><th>Defect px</th><th>Regions</th><th>Covered</th><th>FP px</th><th>Mask</th></tr></thead>
<tbody>
{{range .Images}}<tr data-key="{{.Key}}"><td>{{.Key}}</td><td>{{.Kind}}</td><td>{{.Label}}</td><td data-value="{{xf .Score}}">{{g .Score}}</td><td class="{{.Verdict}}">{{.Verdict}}</td><td>{{g .MaxScore}}</td><td data-value="{{exact .PixelAP}}">{{pct .PixelAP}}</td><td>{{.DefectPixels}}</td><td>{{.Regions}}</td><td>{{pct .Covered}}</td><td>{{.FalsePositive}}</td><td>{{.MaskVersion}}</td></tr>
{{end}}</tbody>
</table>

<h2 id="provenance">Provenance</h2>
<table class="kv" data-table="provenance">
<tbody>
{{range .Provenance}}<tr><td>{{.K}}</td><td><code>{{.V}}</code></td></tr>
{{end}}</tbody>
</table>
{{if .Metadata}}<h3>Model metadata</h3>
<table class="kv" data-table="model-metadata">
<tbody>
{{range .Metadata}}<tr><td>{{.K}}</td><td><code>{{.V}}</code></td></tr>
{{end}}</tbody>
</table>{{end}}
{{if .MaskVersions}}<details><summary>Workspace mask versions used ({{len .MaskVersions}} images)</summary>
<table class="kv" data-table="mask-versions">
<tbody>
{{range .MaskVersions}}<tr><td>{{.K}}</td><td>{{.V}}</td></tr>
{{end}}</tbody>
</table>
</details>{{end}}
{{if .Excluded}}<details data-table="excluded"><summary>Left out of this evaluation: {{len .Excluded}} images the model was trained or calibrated on</summary>
<ul class="small">{{range .Excluded}}<li>{{.}}</li>
{{end}}</ul>
</details>{{end}}
</main>
</body>
</html>
`
