//go:build !js

package report

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	sm "github.com/rdre-studio/studio/shared/metrics"
	"github.com/rdre-studio/studio/shared/protocol"
)

// Document is the JSON report (docs/report-schema.md describes every field).
type Document struct {
	SchemaVersion int                   `json:"schema_version"`
	Kind          string                `json:"kind"`
	Generated     string                `json:"generated"`
	ToolVersion   string                `json:"tool_version"`
	Job           protocol.JobInfo      `json:"job"`
	Model         protocol.ModelInfo    `json:"model"`
	Dataset       DocDataset            `json:"dataset"`
	Masks         DocMasks              `json:"masks"`
	Metrics       *sm.Result            `json:"metrics"`
	Scores        []protocol.ImageScore `json:"scores"`
	Histogram     DocHistogram          `json:"histogram"`
	Gallery       DocGallery            `json:"gallery"`
	Efficiency    *Efficiency           `json:"efficiency"`
	Robustness    []NoiseLevel          `json:"robustness"`
}

// DocKind is the value of Document.Kind.
const DocKind = "rdre-studio.report"

// DocDataset is the dataset part of the JSON report.
type DocDataset struct {
	protocol.DatasetInfo
	Fingerprint Fingerprint `json:"fingerprint"`
}

// DocMasks says which ground truth the evaluation used.
type DocMasks struct {
	Source   string         `json:"source"`
	Versions map[string]int `json:"versions"`
}

// DocHistogram is the image-score histogram of the HTML report.
type DocHistogram struct {
	Lo       float64 `json:"lo"`
	Hi       float64 `json:"hi"`
	BinWidth float64 `json:"bin_width"`
	Normal   []int   `json:"normal"`
	Defect   []int   `json:"defective"`
}

// DocGallery lists the image keys shown in the gallery, worst first.
type DocGallery struct {
	FalsePositives []string `json:"false_positives"`
	Missed         []string `json:"missed"`
}

// NewDocument builds the JSON report of in.
func NewDocument(in *Input) (*Document, error) {
	if err := in.validate(); err != nil {
		return nil, err
	}
	h := scoreHistogram(in.Scores, 30)
	fps, misses := galleryPicks(in.Scores, in.galleryN())
	doc := &Document{
		SchemaVersion: SchemaVersion,
		Kind:          DocKind,
		Generated:     in.Generated.UTC().Format(time.RFC3339),
		ToolVersion:   in.ToolVersion,
		Job:           in.Job,
		Model:         in.Model,
		Dataset:       DocDataset{DatasetInfo: in.Dataset, Fingerprint: in.Fingerprint},
		Masks:         DocMasks{Source: in.Job.Masks, Versions: in.Job.MaskVersions},
		Metrics:       in.Result,
		Scores:        sortedScores(in.Scores),
		Histogram:     DocHistogram{Lo: h.Lo, Hi: h.Hi, BinWidth: h.BinWidth, Normal: h.Normal, Defect: h.Defect},
		Gallery:       DocGallery{FalsePositives: keys(fps), Missed: keys(misses)},
		Efficiency:    in.Efficiency,
		Robustness:    in.Robustness,
	}
	if doc.Masks.Source == "" {
		doc.Masks.Source = protocol.MasksDataset
	}
	if doc.Masks.Versions == nil {
		doc.Masks.Versions = map[string]int{}
	}
	if doc.Robustness == nil {
		doc.Robustness = []NoiseLevel{}
	}
	return doc, nil
}

func keys(s []protocol.ImageScore) []string {
	out := make([]string, len(s))
	for i := range s {
		out[i] = s[i].Key
	}
	return out
}

// WriteJSON writes the JSON report: every number and curve of the evaluation.
func WriteJSON(w io.Writer, in *Input) error {
	doc, err := NewDocument(in)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return fmt.Errorf("write JSON report of job %s: %w", in.Job.ID, err)
	}
	return nil
}

// CSVHeader is the first row of the per-image CSV.
var CSVHeader = []string{
	"key", "image", "kind", "label", "score", "map_max", "pixel_ap", "defect_pixels", "regions",
	"mean_region_covered", "false_positive_pixels", "image_verdict", "mask_version",
}

// WriteCSV writes one row per evaluated image, in key order, at full precision. Empty fields are
// undefined values (pixel AP of an image without defect pixels) or unknown ones. image_verdict is FP or FN
// when the image is misclassified at the image F1-max threshold, TP or TN otherwise.
func WriteCSV(w io.Writer, in *Input) error {
	if err := in.validate(); err != nil {
		return err
	}
	det := detailsByKey(in.Result)
	t := in.Result.ImageF1MaxThreshold
	cw := csv.NewWriter(w)
	if err := cw.Write(CSVHeader); err != nil {
		return fmt.Errorf("write CSV report of job %s: %w", in.Job.ID, err)
	}
	for _, s := range sortedScores(in.Scores) {
		d := det[s.Key]
		row := []string{s.Key, s.Image, s.Kind, strconv.Itoa(s.Label), trimFloat(s.Score), "", "", "", "", "", "", "", ""}
		if d != nil {
			row[5] = trimFloat(d.MaxScore)
			row[6] = exact(d.PixelAP)
			row[7] = strconv.FormatInt(d.DefectPixels, 10)
			row[8] = strconv.Itoa(len(d.Regions))
			row[9] = exact(meanCovered(d))
			row[10] = strconv.FormatInt(d.FalsePositives, 10)
		}
		if t != nil {
			pos := s.Score >= *t
			switch {
			case pos && s.Label == 1:
				row[11] = "TP"
			case pos:
				row[11] = "FP"
			case s.Label == 1:
				row[11] = "FN"
			default:
				row[11] = "TN"
			}
		}
		if v, ok := in.Job.MaskVersions[s.Image]; ok {
			row[12] = strconv.Itoa(v)
		}
		if err := cw.Write(row); err != nil {
			return fmt.Errorf("write CSV report of job %s: %w", in.Job.ID, err)
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("write CSV report of job %s: %w", in.Job.ID, err)
	}
	return nil
}

// mdEscape keeps a value from breaking a Markdown table cell.
func mdEscape(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ", "\r", " ").Replace(s)
}

// WriteMarkdown writes the summary of the report as Markdown tables (for a README or a pull request).
func WriteMarkdown(w io.Writer, in *Input) error {
	if err := in.validate(); err != nil {
		return err
	}
	bw := bufio.NewWriter(w)
	r := in.Result
	fmt.Fprintf(bw, "## %s\n\n", mdEscape(title(in)))
	fmt.Fprintf(bw, "Job `%s`, %s split, %d images (%d defective), masks: %s", in.Job.ID, orDash(in.Job.Split), r.Counts.Images, r.Counts.AnomalousImages, maskSummary(in.Job))
	if in.Job.NoiseStd > 0 {
		fmt.Fprintf(bw, ", Gaussian noise σ = %s", trimFloat(in.Job.NoiseStd))
	}
	fmt.Fprintf(bw, ". Model SHA-256 `%s`. Generated %s by rdre-studio %s.\n\n", orDash(in.Job.Model), in.Generated.UTC().Format(time.RFC3339), orDash(in.ToolVersion))
	writeMDSummary(bw, []string{""}, []*sm.Result{r})
	fmt.Fprintf(bw, "\nValues in %%; F1-max thresholds in parentheses (anomalous iff score ≥ threshold); AUPRO up to FPR %s.\n", trimFloat(r.FPRLimit))
	if t := r.Threshold; t != nil {
		fmt.Fprintf(bw, "\nSegF1 %s at pixel threshold %s (%s).\n", pct(r.PixelSegF1.Value), thr(&t.Pixel), mdEscape(t.Source))
	}
	if len(r.PerKind) > 0 {
		bw.WriteString("\nBy defect type: each row is computed over the normal images plus the images of that type, and its image count includes the normal ones.\n")
		bw.WriteString("\n| Defect type | Images (with the normal ones) | Image AUROC | Pixel AUROC | Pixel AP | AUPRO |\n|---|--:|--:|--:|--:|--:|\n")
		for _, k := range kindRows(r) {
			name := mdEscape(k.Kind)
			if k.Bold {
				name = "**" + name + "**"
			}
			fmt.Fprintf(bw, "| %s | %d | %s | %s | %s | %s |\n", name, k.Images, pct(k.ImageAUROC), pct(k.PixelAUROC), pct(k.AP), pct(k.AUPRO))
		}
	}
	if len(in.Robustness) > 0 {
		bw.WriteString("\n**Robustness to additive Gaussian noise**\n\n| σ | Image AUROC | Pixel AUROC | Pixel AP | AUPRO |\n|--:|--:|--:|--:|--:|\n")
		for _, l := range in.Robustness {
			if l.Result == nil {
				fmt.Fprintf(bw, "| %s | n/a | n/a | n/a | n/a |\n", trimFloat(l.Std))
				continue
			}
			fmt.Fprintf(bw, "| %s | %s | %s | %s | %s |\n", trimFloat(l.Std), pct(l.Result.ImageAUROC), pct(l.Result.PixelAUROC), pct(l.Result.PixelAP), pct(l.Result.PixelAUPRO))
		}
	}
	if v := efficiencyView(in.Efficiency); v != nil {
		bw.WriteString("\n**Efficiency**\n\n| | |\n|---|---|\n")
		for _, row := range v.Rows {
			fmt.Fprintf(bw, "| %s | %s |\n", mdEscape(row.K), mdEscape(row.V))
		}
	}
	for _, wmsg := range r.Warnings {
		fmt.Fprintf(bw, "\n> warning: %s\n", mdEscape(wmsg))
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write Markdown report of job %s: %w", in.Job.ID, err)
	}
	return nil
}

// writeMDSummary writes the summary table with one row per result.
func writeMDSummary(w io.Writer, names []string, results []*sm.Result) {
	head := "| Image AUROC | Image AP | Image F1-max | Pixel AUROC | Pixel AP | AUPRO | Pixel F1-max |\n|--:|--:|--:|--:|--:|--:|--:|\n"
	if len(names) > 1 || names[0] != "" {
		head = "| | " + strings.TrimPrefix(head, "| ")
		head = strings.Replace(head, "\n|--:", "\n|---|--:", 1)
	}
	io.WriteString(w, head)
	for i, r := range results {
		prefix := "|"
		if len(names) > 1 || names[0] != "" {
			prefix = "| " + mdEscape(names[i]) + " |"
		}
		fmt.Fprintf(w, "%s %s | %s | %s (%s) | %s | %s | %s | %s (%s) |\n", prefix,
			pct(r.ImageAUROC), pct(r.ImageAP), pct(r.ImageF1Max), thr(r.ImageF1MaxThreshold),
			pct(r.PixelAUROC), pct(r.PixelAP), pct(r.PixelAUPRO), pct(r.PixelF1Max), thr(r.PixelF1MaxThreshold))
	}
}

// Write writes in in the given format: "html", "json", "csv" or "md".
func Write(w io.Writer, format string, in *Input) error {
	switch format {
	case "html":
		return WriteHTML(w, in)
	case "json":
		return WriteJSON(w, in)
	case "csv":
		return WriteCSV(w, in)
	case "md":
		return WriteMarkdown(w, in)
	}
	return fmt.Errorf("report format %q: want html, json, csv or md", format)
}
