//go:build !js

package report_test

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rdre-studio/studio/backend/report"
	"github.com/rdre-studio/studio/shared/mask"
	sm "github.com/rdre-studio/studio/shared/metrics"
	"github.com/rdre-studio/studio/shared/protocol"
)

// node is a parsed element of the HTML report (which is well-formed XML by contract).
type node struct {
	Name     string
	Attr     map[string]string
	Children []*node
	Text     string // all text below the node
}

func parseXHTML(t *testing.T, doc []byte) *node {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(doc))
	d.Strict = true
	root := &node{Name: "#document"}
	stack := []*node{root}
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			line := bytes.Count(doc[:d.InputOffset()], []byte("\n")) + 1
			t.Fatalf("the HTML is not well-formed at line %d: %v", line, err)
		}
		switch tk := tok.(type) {
		case xml.StartElement:
			n := &node{Name: tk.Name.Local, Attr: map[string]string{}}
			for _, a := range tk.Attr {
				name := a.Name.Local
				if a.Name.Space != "" {
					name = a.Name.Space + ":" + name
				}
				n.Attr[name] = a.Value
			}
			top := stack[len(stack)-1]
			top.Children = append(top.Children, n)
			stack = append(stack, n)
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		case xml.CharData:
			for _, n := range stack {
				n.Text += string(tk)
			}
		}
	}
	if len(stack) != 1 {
		t.Fatalf("unclosed elements: %d", len(stack)-1)
	}
	return root
}

func (n *node) walk(fn func(*node)) {
	fn(n)
	for _, c := range n.Children {
		c.walk(fn)
	}
}

func (n *node) find(fn func(*node) bool) []*node {
	var out []*node
	n.walk(func(c *node) {
		if fn(c) {
			out = append(out, c)
		}
	})
	return out
}

func (n *node) byAttr(k, v string) []*node {
	return n.find(func(c *node) bool { return c.Attr[k] == v })
}

func (n *node) one(t *testing.T, k, v string) *node {
	t.Helper()
	got := n.byAttr(k, v)
	if len(got) != 1 {
		t.Fatalf("want one element with %s=%q, got %d", k, v, len(got))
	}
	return got[0]
}

// externalRefs lists every reference that would make a browser fetch something: src, href, xlink:href,
// srcset, poster, action, data attributes of object, and url(...) in style sheets and style attributes.
// Only data: URIs and same-document fragments are allowed in a self-contained report.
func externalRefs(root *node) []string {
	var bad []string
	check := func(ref string) {
		ref = strings.TrimSpace(strings.Trim(strings.TrimSpace(ref), `'"`))
		if strings.HasPrefix(ref, "data:") || strings.HasPrefix(ref, "#") {
			return
		}
		bad = append(bad, ref)
	}
	urls := func(css string) {
		for {
			i := strings.Index(strings.ToLower(css), "url(")
			if i < 0 {
				break
			}
			css = css[i+4:]
			j := strings.Index(css, ")")
			if j < 0 {
				bad = append(bad, "unterminated url(")
				break
			}
			check(css[:j])
			css = css[j:]
		}
		if strings.Contains(strings.ToLower(css), "@import") {
			bad = append(bad, "@import")
		}
	}
	root.walk(func(n *node) {
		for k, v := range n.Attr {
			switch strings.ToLower(k) {
			case "src", "href", "xlink:href", "http://www.w3.org/1999/xlink:href", "poster", "action", "formaction", "background", "data", "manifest", "ping", "srcset":
				check(v)
			case "style":
				urls(v)
			}
		}
		if n.Name == "style" {
			urls(n.Text)
		}
		if n.Name == "script" || n.Name == "link" || n.Name == "iframe" || n.Name == "object" || n.Name == "embed" {
			bad = append(bad, "<"+n.Name+">")
		}
	})
	return bad
}

func pct(v *float64) string {
	if v == nil {
		return "n/a"
	}
	return strconv.FormatFloat(*v*100, 'f', 1, 64)
}

func sameFloat(t *testing.T, what string, got string, want *float64) {
	t.Helper()
	if want == nil {
		if got != "" {
			t.Errorf("%s: got %q, want empty (undefined)", what, got)
		}
		return
	}
	v, err := strconv.ParseFloat(got, 64)
	if err != nil || v != *want {
		t.Errorf("%s: got %q, want %v", what, got, *want)
	}
}

func load(t *testing.T, f *fixture, id string) *report.Loaded {
	t.Helper()
	l, err := report.Load(f.st, id)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	l.Generated = time.Date(2026, 11, 28, 13, 0, 0, 0, time.UTC)
	return l
}

func render(t *testing.T, format string, in *report.Input) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := report.Write(&b, format, in); err != nil {
		t.Fatalf("write %s: %v", format, err)
	}
	return b.Bytes()
}

func TestWriteHTML_Job_NumbersCurvesNoExternalURL(t *testing.T) {
	f := newFixture(t)
	f.addJob(t, "job-a", 1, 0.55, protocol.MasksDataset)
	in := load(t, f, "job-a")
	want := f.recompute(t, "job-a")
	if want.PixelAUROC == nil || *want.PixelAUROC >= 1 || *want.PixelAUROC <= 0.5 {
		t.Fatalf("fixture should give an imperfect but informative pixel AUROC, got %v", want.PixelAUROC)
	}
	doc := render(t, "html", in.Input)
	root := parseXHTML(t, doc)

	if bad := externalRefs(root); len(bad) > 0 {
		t.Errorf("external references in a self-contained report: %q", bad)
	}
	// summary: exact values in data-value, percentages as text
	for metric, v := range map[string]*float64{
		"image_auroc": want.ImageAUROC, "image_ap": want.ImageAP, "image_f1_max": want.ImageF1Max,
		"pixel_auroc": want.PixelAUROC, "pixel_ap": want.PixelAP, "pixel_aupro": want.PixelAUPRO, "pixel_f1_max": want.PixelF1Max,
		"image_f1_max_threshold": want.ImageF1MaxThreshold, "pixel_f1_max_threshold": want.PixelF1MaxThreshold,
	} {
		cell := root.one(t, "data-metric", metric)
		sameFloat(t, metric, cell.Attr["data-value"], v)
		if !strings.HasSuffix(metric, "threshold") && strings.TrimSpace(cell.Text) != pct(v) {
			t.Errorf("%s shown as %q, want %q", metric, cell.Text, pct(v))
		}
	}
	// per kind
	for _, k := range want.PerKind {
		row := root.one(t, "data-kind", k.Kind)
		tds := row.find(func(n *node) bool { return n.Name == "td" })
		if len(tds) != 6 {
			t.Fatalf("per-kind row %s has %d cells", k.Kind, len(tds))
		}
		sameFloat(t, k.Kind+" image AUROC", tds[2].Attr["data-value"], k.ImageAUROC)
		sameFloat(t, k.Kind+" pixel AP", tds[4].Attr["data-value"], k.PixelAP)
		sameFloat(t, k.Kind+" AUPRO", tds[5].Attr["data-value"], k.PixelAUPRO)
	}
	// curves: one polyline per plot with every point of the curve, and the histogram
	for id, c := range map[string]sm.Curve{"image-roc": want.Curves.ImageROC, "pixel-roc": want.Curves.PixelROC, "pixel-pr": want.Curves.PixelPR, "pixel-pro": want.Curves.PixelPRO} {
		svg := root.one(t, "data-plot", id)
		if svg.Name != "svg" {
			t.Errorf("plot %s is a <%s>", id, svg.Name)
		}
		lines := svg.find(func(n *node) bool { return n.Name == "polyline" })
		if len(lines) != 1 {
			t.Fatalf("plot %s: %d polylines", id, len(lines))
		}
		if n := len(strings.Fields(lines[0].Attr["points"])); n != len(c.X) || n < 3 {
			t.Errorf("plot %s: %d points, the curve has %d", id, n, len(c.X))
		}
		if ticks := svg.find(func(n *node) bool { return n.Attr["class"] == "tick" }); len(ticks) < 10 {
			t.Errorf("plot %s: %d tick labels", id, len(ticks))
		}
	}
	hist := root.one(t, "data-plot", "score-histogram")
	bars := 0
	for _, b := range hist.find(func(n *node) bool { return n.Name == "rect" && strings.HasPrefix(n.Attr["class"], "bar-") }) {
		_ = b
		bars++
	}
	if bars < 2 {
		t.Errorf("histogram has %d bars", bars)
	}
	// per image: one row per image with its score and pixel AP
	rows := root.one(t, "data-table", "per-image").find(func(n *node) bool { return n.Name == "tr" && n.Attr["data-key"] != "" })
	if len(rows) != len(want.PerImage) {
		t.Fatalf("per-image table has %d rows, want %d", len(rows), len(want.PerImage))
	}
	det := map[string]sm.ImageDetail{}
	for _, d := range want.PerImage {
		det[d.Key] = d
	}
	for _, r := range rows {
		d, ok := det[r.Attr["data-key"]]
		if !ok {
			t.Fatalf("per-image row for unknown key %q", r.Attr["data-key"])
		}
		tds := r.find(func(n *node) bool { return n.Name == "td" })
		sameFloat(t, d.Key+" score", tds[3].Attr["data-value"], &d.MaxScore)
		sameFloat(t, d.Key+" pixel AP", tds[6].Attr["data-value"], d.PixelAP)
	}
	// gallery: the 5 normal and 6 defective images, both galleries full, thumbnails as JPEG data URIs
	fp := root.one(t, "data-gallery", "false-positives").find(func(n *node) bool { return n.Name == "img" })
	miss := root.one(t, "data-gallery", "missed").find(func(n *node) bool { return n.Name == "img" })
	if len(fp) != 5 || len(miss) != 6 {
		t.Errorf("gallery: %d false-positive and %d missed thumbnails, want 5 and 6", len(fp), len(miss))
	}
	for _, img := range append(fp, miss...) {
		if !strings.HasPrefix(img.Attr["src"], "data:image/jpeg;base64,") {
			t.Errorf("thumbnail src %.40q is not a JPEG data URI", img.Attr["src"])
		}
	}
	// provenance: model hash, fingerprint, tool version, masks
	prov := root.one(t, "data-table", "provenance").Text
	for _, s := range []string{f.model.SHA256, in.Fingerprint.SHA256, "the dataset's own ground truth", "job-a", f.root} {
		if s == "" || !strings.Contains(prov, s) {
			t.Errorf("provenance lacks %q", s)
		}
	}
	if in.Fingerprint.Files != 11+6 {
		t.Errorf("fingerprint over %d files, want 11 images + 6 masks", in.Fingerprint.Files)
	}
	eff := root.one(t, "data-table", "efficiency").Text
	if !strings.Contains(eff, "2.35 M") || !strings.Contains(eff, "1.75") {
		t.Errorf("efficiency section lacks the metadata's parameters and GFLOPs: %q", eff)
	}
}

func TestWriteJSON_Job_EveryNumberEqualsCompute(t *testing.T) {
	f := newFixture(t)
	f.addJob(t, "job-a", 1, 0.55, protocol.MasksDataset)
	in := load(t, f, "job-a")
	want := f.recompute(t, "job-a")
	var doc report.Document
	dec := json.NewDecoder(bytes.NewReader(render(t, "json", in.Input)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("decode report JSON: %v", err)
	}
	if doc.SchemaVersion != report.SchemaVersion || doc.Kind != report.DocKind {
		t.Errorf("schema %d kind %q", doc.SchemaVersion, doc.Kind)
	}
	got, _ := json.Marshal(doc.Metrics)
	exp, _ := json.Marshal(want)
	if !bytes.Equal(got, exp) {
		t.Errorf("metrics in the JSON report differ from metrics.Compute on the stored maps:\n got %s\nwant %s", got, exp)
	}
	if len(doc.Scores) != len(want.PerImage) {
		t.Errorf("%d scores, want %d", len(doc.Scores), len(want.PerImage))
	}
	n := 0
	for i := range doc.Histogram.Normal {
		n += doc.Histogram.Normal[i] + doc.Histogram.Defect[i]
	}
	if n != len(doc.Scores) {
		t.Errorf("histogram counts %d images, want %d", n, len(doc.Scores))
	}
	if doc.Dataset.Fingerprint.SHA256 == "" || doc.Model.SHA256 != f.model.SHA256 || doc.Masks.Source != protocol.MasksDataset {
		t.Errorf("provenance incomplete: %+v %+v %+v", doc.Dataset.Fingerprint, doc.Model.SHA256, doc.Masks)
	}
	if doc.Efficiency == nil || doc.Efficiency.Params != 2345678 || doc.Efficiency.GFLOPs != 1.75 {
		t.Errorf("efficiency %+v, want params and GFLOPs from the metadata", doc.Efficiency)
	}
}

func TestWriteCSV_Job_RowPerImage(t *testing.T) {
	f := newFixture(t)
	f.addJob(t, "job-a", 1, 0.55, protocol.MasksDataset)
	in := load(t, f, "job-a")
	want := f.recompute(t, "job-a")
	recs, err := csv.NewReader(bytes.NewReader(render(t, "csv", in.Input))).ReadAll()
	if err != nil {
		t.Fatalf("parse CSV: %v", err)
	}
	if strings.Join(recs[0], ",") != strings.Join(report.CSVHeader, ",") {
		t.Fatalf("header %v", recs[0])
	}
	if len(recs)-1 != len(want.PerImage) {
		t.Fatalf("%d rows, want one per image (%d)", len(recs)-1, len(want.PerImage))
	}
	col := map[string]int{}
	for i, h := range recs[0] {
		col[h] = i
	}
	det := map[string]sm.ImageDetail{}
	for _, d := range want.PerImage {
		det[d.Key] = d
	}
	verdicts := map[string]int{}
	for _, r := range recs[1:] {
		d, ok := det[r[col["key"]]]
		if !ok {
			t.Fatalf("row for unknown key %q", r[col["key"]])
		}
		delete(det, d.Key)
		sameFloat(t, d.Key+" score", r[col["score"]], &d.Score)
		sameFloat(t, d.Key+" map_max", r[col["map_max"]], &d.MaxScore)
		sameFloat(t, d.Key+" pixel_ap", r[col["pixel_ap"]], d.PixelAP)
		if r[col["defect_pixels"]] != strconv.FormatInt(d.DefectPixels, 10) || r[col["regions"]] != strconv.Itoa(len(d.Regions)) {
			t.Errorf("%s: defect pixels %s regions %s, want %d %d", d.Key, r[col["defect_pixels"]], r[col["regions"]], d.DefectPixels, len(d.Regions))
		}
		if r[col["false_positive_pixels"]] != strconv.FormatInt(d.FalsePositives, 10) {
			t.Errorf("%s: FP pixels %s, want %d", d.Key, r[col["false_positive_pixels"]], d.FalsePositives)
		}
		if (d.Label == 1) != (r[col["image_verdict"]] == "TP" || r[col["image_verdict"]] == "FN") {
			t.Errorf("%s: label %d but verdict %s", d.Key, d.Label, r[col["image_verdict"]])
		}
		verdicts[r[col["image_verdict"]]]++
	}
	if len(det) != 0 {
		t.Errorf("images without a row: %v", det)
	}
	if verdicts["TP"] == 0 || verdicts["TN"] == 0 {
		t.Errorf("verdicts %v: the F1-max threshold should separate some images", verdicts)
	}
}

func TestWriteMarkdown_Job_SummaryRow(t *testing.T) {
	f := newFixture(t)
	f.addJob(t, "job-a", 1, 0.55, protocol.MasksDataset)
	in := load(t, f, "job-a")
	w := f.recompute(t, "job-a")
	md := string(render(t, "md", in.Input))
	row := "| " + strings.Join([]string{pct(w.ImageAUROC), pct(w.ImageAP), pct(w.ImageF1Max) + " (" + strconv.FormatFloat(*w.ImageF1MaxThreshold, 'g', 4, 64) + ")",
		pct(w.PixelAUROC), pct(w.PixelAP), pct(w.PixelAUPRO), pct(w.PixelF1Max) + " (" + strconv.FormatFloat(*w.PixelF1MaxThreshold, 'g', 4, 64) + ")"}, " | ") + " |"
	if !strings.Contains(md, row) {
		t.Errorf("Markdown lacks the summary row\n%s\nin\n%s", row, md)
	}
	for _, k := range w.PerKind {
		if !strings.Contains(md, "| "+k.Kind+" | "+strconv.Itoa(k.Images)+" | "+pct(k.ImageAUROC)+" | ") {
			t.Errorf("Markdown lacks the row of kind %s", k.Kind)
		}
	}
}

func TestWrite_BadInput_Errors(t *testing.T) {
	one := 1.0
	for name, in := range map[string]*report.Input{
		"nil":       nil,
		"no result": {Job: protocol.JobInfo{ID: "x", State: protocol.JobRunning}},
		"partial":   {Job: protocol.JobInfo{ID: "x"}, Result: &sm.Result{Partial: true, ImageAUROC: &one}},
	} {
		for _, format := range []string{"html", "json", "csv", "md"} {
			if err := report.Write(io.Discard, format, in); err == nil {
				t.Errorf("%s/%s: no error", name, format)
			}
		}
	}
	if err := report.Write(io.Discard, "pdf", &report.Input{Result: &sm.Result{}}); err == nil || !strings.Contains(err.Error(), "pdf") {
		t.Errorf("unknown format: %v", err)
	}
}

func TestWriteHTML_UndefinedMetricsAndHostileText_Escaped(t *testing.T) {
	// A result where nothing is defective: pixel metrics are undefined and must read n/a, not 0.
	zero := 0.5
	in := &report.Input{
		Job:    protocol.JobInfo{ID: `<script>alert(1)</script>`, ModelName: `m"><img src=http://evil.example/x.png>`, State: protocol.JobDone},
		Result: &sm.Result{ImageAUROC: &zero, FPRLimit: 0.3, Warnings: []string{"no anomalous pixels: pixel metrics are undefined"}},
		Scores: []protocol.ImageScore{{Image: "a.png", Key: "good/a", Kind: "good", Score: 0.2}, {Image: "b.png", Key: "good/b", Kind: "good", Score: 0.3}},
		Model:  protocol.ModelInfo{Metadata: map[string]string{"note": `see http://example.com/x url(http://evil.example/y)`}},
	}
	var b bytes.Buffer
	if err := report.WriteHTML(&b, in); err != nil {
		t.Fatal(err)
	}
	root := parseXHTML(t, b.Bytes())
	if bad := externalRefs(root); len(bad) > 0 {
		t.Errorf("external references: %q", bad)
	}
	if got := strings.TrimSpace(root.one(t, "data-metric", "pixel_ap").Text); got != "n/a" {
		t.Errorf("undefined pixel AP shown as %q", got)
	}
	if !strings.Contains(b.String(), "no anomalous pixels") {
		t.Error("the result's warning is not shown")
	}
}

// TestWriteHTML_ManyWarnings_Collapsed: a long list of file warnings is one collapsed block that names
// the count, so the summary table stays at the top of the page, and every warning is still in it.
func TestWriteHTML_ManyWarnings_Collapsed(t *testing.T) {
	zero := 0.0
	in := &report.Input{
		Job:    protocol.JobInfo{ID: "j", Dataset: "d", Model: "m", State: protocol.JobDone},
		Result: &sm.Result{ImageAUROC: &zero, FPRLimit: 0.3},
	}
	for i := range 52 {
		in.Result.Warnings = append(in.Result.Warnings, fmt.Sprintf("mask MT_Crack/Imgs/x%02d.png: odd", i))
	}
	var b bytes.Buffer
	if err := report.WriteHTML(&b, in); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	details := strings.Index(page, `data-table="warnings"`)
	if details < 0 || !strings.Contains(page, "52 warnings") || strings.Count(page, `class="warn"`) != 1 {
		t.Fatalf("warnings not collapsed into one block naming the count")
	}
	for i := range 52 {
		if !strings.Contains(page, fmt.Sprintf("x%02d.png", i)) {
			t.Fatalf("warning %d missing", i)
		}
	}
}

func TestCompare_WriteHTML_Differences(t *testing.T) {
	f := newFixture(t)
	f.addJob(t, "job-a", 1, 0.55, protocol.MasksDataset)
	f.addJob(t, "job-b", 2, 0.25, protocol.MasksWorkspace)
	a, b := load(t, f, "job-a"), load(t, f, "job-b")
	c, err := report.Compare(a.Input, b.Input)
	if err != nil {
		t.Fatal(err)
	}
	if c.Common != 11 || len(c.OnlyA)+len(c.OnlyB) != 0 {
		t.Errorf("common %d only %v %v", c.Common, c.OnlyA, c.OnlyB)
	}
	var buf bytes.Buffer
	if err := c.WriteHTML(&buf); err != nil {
		t.Fatal(err)
	}
	root := parseXHTML(t, buf.Bytes())
	if bad := externalRefs(root); len(bad) > 0 {
		t.Errorf("external references: %q", bad)
	}
	ra, rb := f.recompute(t, "job-a"), f.recompute(t, "job-b")
	if *ra.PixelAP == *rb.PixelAP {
		t.Fatal("fixture jobs should differ")
	}
	rowA, rowB, rowD := root.one(t, "data-side", "a"), root.one(t, "data-side", "b"), root.one(t, "data-side", "delta")
	cell := func(row *node, metric string) *node {
		for _, n := range row.byAttr("data-metric", metric) {
			return n
		}
		t.Fatalf("no %s cell", metric)
		return nil
	}
	sameFloat(t, "A pixel AP", cell(rowA, "pixel_ap").Attr["data-value"], ra.PixelAP)
	sameFloat(t, "B pixel AP", cell(rowB, "pixel_ap").Attr["data-value"], rb.PixelAP)
	wantD := (*rb.PixelAP - *ra.PixelAP) * 100
	gotD, err := strconv.ParseFloat(strings.TrimSpace(cell(rowD, "pixel_ap").Text), 64)
	if err != nil || (gotD-wantD) > 0.05 || (wantD-gotD) > 0.05 {
		t.Errorf("pixel AP delta %q, want %+.1f", cell(rowD, "pixel_ap").Text, wantD)
	}
	if svg := root.one(t, "data-plot", "pixel-pr"); len(svg.find(func(n *node) bool { return n.Name == "polyline" })) != 2 {
		t.Error("the comparison PR plot should overlay two curves")
	}
	if !strings.Contains(c.NameA, "dataset masks") || !strings.Contains(c.NameB, "workspace masks") {
		t.Errorf("sides named %q and %q; they differ by masks", c.NameA, c.NameB)
	}
	var md bytes.Buffer
	if err := c.WriteMarkdown(&md); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(md.String(), "| "+c.NameA+" | "+pct(ra.ImageAUROC)) || !strings.Contains(md.String(), "Δ") {
		t.Errorf("comparison Markdown:\n%s", md.String())
	}
}

func TestLoad_UnfinishedOrMissingJob_Errors(t *testing.T) {
	f := newFixture(t)
	if _, err := report.Load(f.st, "nope"); err == nil {
		t.Error("missing job: no error")
	}
	rec := map[string]any{"info": protocol.JobInfo{ID: "run", State: protocol.JobRunning}, "scores": []protocol.ImageScore{}}
	if err := f.st.PutJob("run", rec); err != nil {
		t.Fatal(err)
	}
	if _, err := report.Load(f.st, "run"); !errors.Is(err, report.ErrNotFinished) {
		t.Errorf("running job: %v, want ErrNotFinished", err)
	}
}

func TestLoad_DatasetMoved_ReportStillWritten(t *testing.T) {
	f := newFixture(t)
	f.addJob(t, "job-a", 1, 0.55, protocol.MasksDataset)
	if err := os.Rename(f.root, f.root+"-moved"); err != nil {
		t.Fatal(err)
	}
	in := load(t, f, "job-a")
	if in.Fingerprint.Error == "" || in.Gallery != nil {
		t.Fatalf("fingerprint %+v: want an error and no gallery", in.Fingerprint)
	}
	doc := string(render(t, "html", in.Input))
	if !strings.Contains(doc, "unavailable") || !strings.Contains(doc, "gallery is not available") {
		t.Error("the report does not say what it could not read")
	}
}

func TestFingerprintOf_TouchedFile_Changes(t *testing.T) {
	f := newFixture(t)
	ids := []string{}
	for _, im := range f.testImages() {
		ids = append(ids, im.ID)
	}
	a := report.FingerprintOf(f.ds, ids)
	b := report.FingerprintOf(f.ds, append([]string{ids[len(ids)-1]}, ids[:len(ids)-1]...))
	if a.Error != "" || a.SHA256 != b.SHA256 {
		t.Fatalf("fingerprint depends on order or failed: %+v %+v", a, b)
	}
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(filepath.Join(f.root, filepath.FromSlash(ids[0])), later, later); err != nil {
		t.Fatal(err)
	}
	if c := report.FingerprintOf(f.ds, ids); c.SHA256 == a.SHA256 {
		t.Error("touching an evaluated file does not change the fingerprint")
	}
}

func TestHandler_ServeHTTP_FormatsAndErrors(t *testing.T) {
	f := newFixture(t)
	f.addJob(t, "job-a", 1, 0.55, protocol.MasksDataset)
	f.addJob(t, "job-b", 2, 0.25, protocol.MasksDataset)
	if err := f.st.PutJob("running", map[string]any{"info": protocol.JobInfo{ID: "running", State: protocol.JobRunning}}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(report.Handler(f.st))
	defer srv.Close()
	get := func(q string) (*http.Response, []byte) {
		resp, err := http.Get(srv.URL + "/?" + q)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, body
	}
	for format, ct := range map[string]string{"html": "text/html", "json": "application/json", "csv": "text/csv", "md": "text/markdown"} {
		resp, body := get("job=job-a&download=1&format=" + format)
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), ct) {
			t.Errorf("%s: %d %s", format, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		if cd := resp.Header.Get("Content-Disposition"); !strings.Contains(cd, "rdre-report-job-a."+format) {
			t.Errorf("%s: Content-Disposition %q", format, cd)
		}
		if len(body) < 100 {
			t.Errorf("%s: %d bytes", format, len(body))
		}
	}
	if resp, body := get("job=job-a&compare=job-b&format=html"); resp.StatusCode != 200 || !bytes.Contains(body, []byte("Comparison")) {
		t.Errorf("compare: %d", resp.StatusCode)
	}
	for q, code := range map[string]int{"job=nope": 404, "job=running": 409, "job=job-a&format=pdf": 400, "": 400, "job=job-a&compare=job-b&format=csv": 400} {
		if resp, body := get(q); resp.StatusCode != code {
			t.Errorf("%q: status %d (%s), want %d", q, resp.StatusCode, body, code)
		}
	}
}

// BenchmarkWriteHTML measures a whole HTML report of the fixture job, gallery thumbnails included.
func BenchmarkWriteHTML(b *testing.B) {
	f := newFixture(b)
	f.addJob(b, "job-a", 1, 0.55, protocol.MasksDataset)
	l, err := report.Load(f.st, "job-a")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	var buf bytes.Buffer
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		buf.Reset()
		if err := report.WriteHTML(&buf, l.Input); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(buf.Len()), "bytes/report")
}

func TestLoad_WorkspaceMasks_GalleryUsesRecordedVersion(t *testing.T) {
	f := newFixture(t)
	f.addJob(t, "job-w", 1, 0.55, protocol.MasksWorkspace)
	id := f.testImages()[0].ID // a defect-free image that a user then labelled
	square := func(x0 int) *mask.Label {
		m, err := mask.New(fixW, fixH)
		if err != nil {
			t.Fatal(err)
		}
		for y := 10; y < 16; y++ {
			for x := x0; x < x0+6; x++ {
				m.Pix[y*fixW+x] = 1
			}
		}
		return m
	}
	for _, x0 := range []int{5, 30} { // v1, then v2
		if _, err := f.st.SaveMask(f.ds.Info().ID, id, square(x0)); err != nil {
			t.Fatal(err)
		}
	}
	var rec struct {
		Info   protocol.JobInfo      `json:"info"`
		Scores []protocol.ImageScore `json:"scores"`
	}
	if err := f.st.Job("job-w", &rec); err != nil {
		t.Fatal(err)
	}
	rec.Info.MaskVersions = map[string]int{id: 1} // the job ran when v1 was the newest
	if err := f.st.PutJob("job-w", rec); err != nil {
		t.Fatal(err)
	}
	in := load(t, f, "job-w")
	g, err := in.Gallery(id)
	if err != nil {
		t.Fatal(err)
	}
	want := square(5).Binary()
	if len(g.Mask) != len(want) {
		t.Fatalf("gallery mask has %d pixels, want the workspace's v1", len(g.Mask))
	}
	for i := range want {
		if g.Mask[i] != want[i] {
			t.Fatalf("gallery mask differs from workspace v1 at pixel %d", i)
		}
	}
	root := parseXHTML(t, render(t, "html", in.Input))
	if v := root.one(t, "data-table", "mask-versions").Text; !strings.Contains(v, id) || !strings.Contains(v, "v1") {
		t.Errorf("mask versions table %q", v)
	}
	recs, err := csv.NewReader(bytes.NewReader(render(t, "csv", in.Input))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, r := range recs[1:] {
		if r[1] == id && r[12] == "1" {
			n++
		} else if r[12] != "" {
			t.Errorf("row %s has mask version %q", r[1], r[12])
		}
	}
	if n != 1 {
		t.Errorf("%d rows cite workspace mask v1 of %s, want 1", n, id)
	}
}

func TestCompare_DifferentImageSets_ListsAndErrors(t *testing.T) {
	f := newFixture(t)
	f.addJob(t, "job-a", 1, 0.55, protocol.MasksDataset)
	a, b := load(t, f, "job-a"), load(t, f, "job-a")
	bIn := *b.Input
	bIn.Scores = bIn.Scores[2:] // B evaluated fewer images
	c, err := report.Compare(a.Input, &bIn)
	if err != nil {
		t.Fatal(err)
	}
	if c.Common != len(a.Scores)-2 || len(c.OnlyA) != 2 || len(c.OnlyB) != 0 {
		t.Errorf("common %d, only A %v, only B %v", c.Common, c.OnlyA, c.OnlyB)
	}
	var buf bytes.Buffer
	if err := c.WriteHTML(&buf); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "Only in A: "+c.OnlyA[0]) {
		t.Error("the HTML does not list the images only A evaluated")
	}
	if _, err := report.Compare(a.Input, &report.Input{}); err == nil {
		t.Error("compare with an input without result: no error")
	}
}
