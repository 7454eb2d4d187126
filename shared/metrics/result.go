// Package metrics holds the result types of an anomaly-detection evaluation: the JSON object that the
// `rdre eval` command prints, that the server streams over the websocket while a job runs, and that the
// browser renders. It has no logic and no dependencies, so it builds for the server and for wasm alike.
//
// Contract:
//   - every metric is a *float64: nil (JSON null) when it is undefined for the data (no anomalous pixels, no
//     normal images, ...), and then Warnings says why; a metric is never NaN and never a stand-in 0;
//   - thresholds follow one rule everywhere: a pixel or image is anomalous iff its score >= threshold;
//   - a Result with Partial set comes from an evaluation still running; with Estimate also set its pixel
//     metrics are approximations (scores binned), the final Result of the same job is exact.
package metrics

// Result is one evaluation of a set of anomaly maps against ground truth.
type Result struct {
	// Partial is true for an intermediate result sent while maps are still arriving.
	Partial bool `json:"partial,omitempty"`
	// Estimate is true when the pixel metrics were computed on binned scores (partial results only).
	Estimate bool `json:"estimate,omitempty"`

	ImageAUROC          *float64 `json:"image_auroc"`
	ImageAP             *float64 `json:"image_ap"`
	ImageF1Max          *float64 `json:"image_f1_max"`
	ImageF1MaxThreshold *float64 `json:"image_f1_max_threshold"`
	PixelAUROC          *float64 `json:"pixel_auroc"`
	PixelAP             *float64 `json:"pixel_ap"`
	PixelF1Max          *float64 `json:"pixel_f1_max"`
	PixelF1MaxThreshold *float64 `json:"pixel_f1_max_threshold"`
	PixelAUPRO          *float64 `json:"pixel_aupro"`

	// FPRLimit is the upper integration limit of AUPRO (0.3 by default).
	FPRLimit float64  `json:"fpr_limit"`
	Counts   Counts   `json:"counts"`
	Warnings []string `json:"warnings"`

	Curves   *Curves       `json:"curves,omitempty"`
	PerKind  []KindResult  `json:"per_kind,omitempty"`
	PerImage []ImageDetail `json:"per_image,omitempty"`
}

// Counts describes the evaluated data.
type Counts struct {
	Images                 int   `json:"images"`
	AnomalousImages        int   `json:"anomalous_images"`
	NormalImages           int   `json:"normal_images"`
	Pixels                 int64 `json:"pixels"`
	AnomalousPixels        int64 `json:"anomalous_pixels"`
	NormalPixels           int64 `json:"normal_pixels"`
	Regions                int64 `json:"regions"`
	DistinctPixelScores    int64 `json:"distinct_pixel_scores"`
	ImagesWithNonemptyMask int   `json:"images_with_nonempty_mask"`
}

// Curve is a polyline for plotting, downsampled to at most MaxCurvePoints points. Threshold[i] is the
// score threshold at which point i is reached, or nil for a point that no threshold reaches (the (0,0)
// start, or the point interpolated at the FPR limit of the PRO curve).
type Curve struct {
	X         []float64  `json:"x"`
	Y         []float64  `json:"y"`
	Threshold []*float64 `json:"threshold"`
}

// MaxCurvePoints bounds the length of every Curve.
const MaxCurvePoints = 512

// Curves are the pixel-level curves (ROC: x = FPR, y = TPR; PR: x = recall, y = precision; PRO: x = FPR up
// to the FPR limit, y = PRO) and the image-level ROC.
type Curves struct {
	PixelROC Curve `json:"pixel_roc"`
	PixelPR  Curve `json:"pixel_pr"`
	PixelPRO Curve `json:"pixel_pro"`
	ImageROC Curve `json:"image_roc"`
}

// KindResult holds the metrics of one defect kind, computed over the normal images plus the images of that
// kind.
type KindResult struct {
	Kind       string   `json:"kind"`
	Images     int      `json:"images"`
	ImageAUROC *float64 `json:"image_auroc"`
	PixelAUROC *float64 `json:"pixel_auroc"`
	PixelAP    *float64 `json:"pixel_ap"`
	PixelAUPRO *float64 `json:"pixel_aupro"`
}

// ImageDetail is the per-image row of the error-analysis table.
type ImageDetail struct {
	Key   string  `json:"key"`
	Kind  string  `json:"kind"`
	Label int     `json:"label"`
	Score float64 `json:"score"`
	// MaxScore is the maximum of the image's anomaly map.
	MaxScore float64 `json:"max_score"`
	// PixelAP is the average precision of this image's pixels alone; nil when it has no defect pixel.
	PixelAP *float64 `json:"pixel_ap"`
	// DefectPixels is the number of ground-truth defect pixels of the image.
	DefectPixels int64 `json:"defect_pixels"`
	// FalsePositives is the number of normal pixels at or above the pixel F1-max threshold.
	FalsePositives int64 `json:"false_positives"`
	// Regions lists the 8-connected ground-truth regions of the image in raster order of their first pixel.
	Regions []RegionDetail `json:"regions"`
}

// RegionDetail is one ground-truth region: its size and the fraction of it at or above the pixel F1-max
// threshold.
type RegionDetail struct {
	Area    int64   `json:"area"`
	Covered float64 `json:"covered"`
}
