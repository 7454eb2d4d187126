//go:build !js

// Package report turns one finished evaluation job into documents people can publish: a self-contained
// HTML page (inline CSS and SVG, gallery thumbnails as data: URIs, no external resource of any kind), a
// JSON document with every number and curve (schema in docs/report-schema.md, versioned by
// SchemaVersion), a CSV with one row per evaluated image, and a Markdown summary. It also renders two jobs
// side by side (Compare) and the paper's robustness (noise levels) and efficiency sections. Load fills
// an Input from the workspace; Handler serves the documents over HTTP for the UI's export buttons.
//
// Contract:
//   - every number a writer prints comes from the Input unchanged: the metrics are the job's exact final
//     metrics.Result (what `rdre eval` and metrics.Compute give on the same maps); the JSON and CSV carry
//     them at full float64 precision, HTML and Markdown round them for reading, and the HTML keeps the
//     exact value in a data-value attribute of each summary cell;
//   - an undefined metric (nil in the Result) is printed as "n/a" (HTML, Markdown), an empty CSV field or
//     JSON null, never as 0;
//   - a report says what was measured: tool version, model file SHA-256 and metadata, dataset root and a
//     fingerprint of the evaluated files, which masks were used (with workspace mask versions), dates and
//     device;
//   - bad input (a nil Result, a job that is not finished) is an error, never a panic.
package report

import (
	"errors"
	"fmt"
	"image"
	"math"
	"sort"
	"strconv"
	"time"

	sm "github.com/rdre-studio/studio/shared/metrics"
	"github.com/rdre-studio/studio/shared/protocol"
)

// SchemaVersion is the version of the JSON document written by WriteJSON. It grows when a field changes
// meaning or disappears; new fields do not change it.
const SchemaVersion = 1

// GalleryImage is what the gallery needs of one image: the picture that was evaluated, its anomaly map
// and its ground-truth mask (nil: no defect pixel).
type GalleryImage struct {
	Image image.Image
	Map   []float32
	W, H  int
	Mask  []bool
}

// GalleryFunc returns the gallery material of one image, by image ID (ImageScore.Image).
type GalleryFunc func(imageID string) (*GalleryImage, error)

// Efficiency is the efficiency section: model size and cost from the model's metadata, timings from
// `rdre bench`. Zero fields are unknown and printed as such.
type Efficiency struct {
	Params     float64 `json:"params"`           // number of parameters (rdre.params)
	GFLOPs     float64 `json:"gflops"`           // forward pass of one image (rdre.gflops)
	InputSize  int     `json:"input_size"`       // side of the network input
	Device     string  `json:"device,omitempty"` // where the timings were taken
	Threads    int     `json:"threads,omitempty"`
	LatencyP50 float64 `json:"latency_p50_ms"`   // batch 1, network only
	LatencyP95 float64 `json:"latency_p95_ms"`   // batch 1, network only
	E2EP50     float64 `json:"e2e_p50_ms"`       // batch 1, pre-processing + network + map back
	E2EP95     float64 `json:"e2e_p95_ms"`       // batch 1, pre-processing + network + map back
	E2ESize    int     `json:"e2e_image_size"`   // side of the square image of the end-to-end timing
	Throughput float64 `json:"throughput_ips"`   // images per second at BestBatch
	BestBatch  int     `json:"best_batch"`       // batch size of Throughput
	Source     string  `json:"source,omitempty"` // where the numbers come from (file, command)
}

// NoiseLevel is one evaluation of the robustness study: the same model and data with white Gaussian
// noise of standard deviation Std added to [0,1] pixel values before inference.
type NoiseLevel struct {
	Std    float64    `json:"noise_std"`
	Job    string     `json:"job"`
	Result *sm.Result `json:"result"`
}

// Fingerprint identifies the dataset files an evaluation read.
type Fingerprint struct {
	SHA256 string `json:"sha256"`
	Files  int    `json:"files"`
	// Method says what was hashed, so a reader can recompute it.
	Method string `json:"method"`
	// Error is set when the dataset could not be read again (moved, deleted); SHA256 is then empty.
	Error string `json:"error,omitempty"`
}

// Input is everything one report shows.
type Input struct {
	Job         protocol.JobInfo
	Scores      []protocol.ImageScore
	Result      *sm.Result
	Model       protocol.ModelInfo
	Dataset     protocol.DatasetInfo
	Fingerprint Fingerprint
	ToolVersion string
	Generated   time.Time
	// Gallery, when set, provides the images of the worst-N gallery.
	Gallery    GalleryFunc
	Efficiency *Efficiency
	Robustness []NoiseLevel
	// GalleryN is the number of worst false positives and of worst missed defects shown; 0 means 6.
	GalleryN int
}

func (in *Input) validate() error {
	if in == nil {
		return errors.New("report: nil input")
	}
	if in.Result == nil {
		return fmt.Errorf("report of job %s: no metrics result (the job is %s)", in.Job.ID, orDash(in.Job.State))
	}
	if in.Result.Partial {
		return fmt.Errorf("report of job %s: the result is partial (the job is %s); reports need the final one", in.Job.ID, orDash(in.Job.State))
	}
	return nil
}

func (in *Input) galleryN() int {
	if in.GalleryN > 0 {
		return in.GalleryN
	}
	return 6
}

// EfficiencyFromMetadata fills the parameter count and GFLOPs from a model's metadata keys rdre.params
// and rdre.gflops; it returns nil when neither is there.
func EfficiencyFromMetadata(m protocol.ModelInfo) *Efficiency {
	e := &Efficiency{InputSize: m.InputSize}
	ok := false
	if v, err := strconv.ParseFloat(m.Metadata["rdre.params"], 64); err == nil && v > 0 {
		e.Params, ok = v, true
	}
	if v, err := strconv.ParseFloat(m.Metadata["rdre.gflops"], 64); err == nil && v > 0 {
		e.GFLOPs, ok = v, true
	}
	if !ok {
		return nil
	}
	e.Source = "model metadata (rdre.params, rdre.gflops)"
	return e
}

// ---- shared selections and formatting ----

// pct prints a metric in percent with one decimal, as papers do.
func pct(v *float64) string {
	if v == nil {
		return "n/a"
	}
	return strconv.FormatFloat(*v*100, 'f', 1, 64)
}

// thr prints a threshold with 4 significant digits.
func thr(v *float64) string {
	if v == nil {
		return "n/a"
	}
	return strconv.FormatFloat(*v, 'g', 4, 64)
}

// exact prints a float64 so that parsing it gives the same value back.
func exact(v *float64) string {
	if v == nil {
		return ""
	}
	return strconv.FormatFloat(*v, 'g', -1, 64)
}

func trimFloat(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// delta prints b-a in percentage points with a sign.
func delta(a, b *float64) string {
	if a == nil || b == nil {
		return "n/a"
	}
	d := (*b - *a) * 100
	if math.Abs(d) < 0.05 {
		return "±0.0"
	}
	return fmt.Sprintf("%+.1f", d)
}

// galleryPicks returns the worst false positives (normal images, highest scores first) and the worst
// missed defects (defective images, lowest scores first), n of each.
func galleryPicks(scores []protocol.ImageScore, n int) (fps, misses []protocol.ImageScore) {
	for _, s := range scores {
		if s.Label == 0 {
			fps = append(fps, s)
		} else {
			misses = append(misses, s)
		}
	}
	sort.SliceStable(fps, func(i, j int) bool {
		if fps[i].Score != fps[j].Score {
			return fps[i].Score > fps[j].Score
		}
		return fps[i].Key < fps[j].Key
	})
	sort.SliceStable(misses, func(i, j int) bool {
		if misses[i].Score != misses[j].Score {
			return misses[i].Score < misses[j].Score
		}
		return misses[i].Key < misses[j].Key
	})
	return fps[:min(n, len(fps))], misses[:min(n, len(misses))]
}

// histogram bins the image scores of normal and defective images on one shared axis.
type histogram struct {
	Lo, Hi      float64
	Normal      []int
	Defect      []int
	BinWidth    float64
	NormalTotal int
	DefectTotal int
}

func scoreHistogram(scores []protocol.ImageScore, bins int) histogram {
	h := histogram{Normal: make([]int, bins), Defect: make([]int, bins)}
	if len(scores) == 0 {
		h.Hi = 1
		h.BinWidth = 1 / float64(bins)
		return h
	}
	h.Lo, h.Hi = math.Inf(1), math.Inf(-1)
	for _, s := range scores {
		h.Lo = math.Min(h.Lo, s.Score)
		h.Hi = math.Max(h.Hi, s.Score)
	}
	if !(h.Hi > h.Lo) {
		// All scores equal: a unit-wide axis centred on them keeps the plot readable.
		h.Lo, h.Hi = h.Lo-0.5, h.Hi+0.5
	}
	h.BinWidth = (h.Hi - h.Lo) / float64(bins)
	for _, s := range scores {
		b := min(bins-1, max(0, int((s.Score-h.Lo)/h.BinWidth)))
		if s.Label == 0 {
			h.Normal[b]++
			h.NormalTotal++
		} else {
			h.Defect[b]++
			h.DefectTotal++
		}
	}
	return h
}

// detailsByKey indexes the per-image details of a result.
func detailsByKey(r *sm.Result) map[string]*sm.ImageDetail {
	m := make(map[string]*sm.ImageDetail, len(r.PerImage))
	for i := range r.PerImage {
		m[r.PerImage[i].Key] = &r.PerImage[i]
	}
	return m
}

// meanCovered is the mean covered fraction of an image's regions (nil without regions).
func meanCovered(d *sm.ImageDetail) *float64 {
	if d == nil || len(d.Regions) == 0 {
		return nil
	}
	s := 0.0
	for _, r := range d.Regions {
		s += r.Covered
	}
	v := s / float64(len(d.Regions))
	return &v
}

// sortedScores returns the scores in key order, the order of every per-image table.
func sortedScores(scores []protocol.ImageScore) []protocol.ImageScore {
	out := append([]protocol.ImageScore(nil), scores...)
	sort.SliceStable(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

// maskSummary says in words which masks a job used.
func maskSummary(j protocol.JobInfo) string {
	switch j.Masks {
	case protocol.MasksWorkspace:
		if len(j.MaskVersions) == 0 {
			return "workspace masks where drawn, else the dataset's (none were drawn for these images)"
		}
		return fmt.Sprintf("workspace masks where drawn (%d images, versions listed below), else the dataset's", len(j.MaskVersions))
	case protocol.MasksDataset, "":
		return "the dataset's own ground truth"
	}
	return j.Masks
}
