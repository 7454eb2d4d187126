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
	// PixelAUPROByLimit is AUPRO at every reported FPR limit: 0.05 and 0.3 always, plus the limits asked
	// for; PixelAUPRO is the one at FPRLimit.
	PixelAUPROByLimit ByLimit `json:"pixel_aupro_by_limit"`

	// Threshold names the pixel threshold of the threshold-dependent metrics below; nil (and they are
	// absent) when no threshold is known.
	Threshold *Threshold `json:"threshold,omitempty"`
	// PixelSegF1 is the F1 score of the maps binarised at the threshold (score >= threshold is anomalous),
	// over all pixels of all images at once.
	PixelSegF1 Optional `json:"pixel_segf1,omitzero"`
	// PixelSegF1Mean is the mean of the per-image F1 scores over the images that have a ground-truth defect
	// pixel or a pixel at or above the threshold (Threshold.SegF1Images of them); an image with neither has
	// no F1 and is left out.
	PixelSegF1Mean Optional `json:"pixel_segf1_mean,omitzero"`
	// PixelPROAtThreshold is PRO at the threshold: the mean covered fraction of all regions.
	PixelPROAtThreshold Optional `json:"pixel_pro_at_threshold,omitzero"`

	// PixelSPROAUPROByLimit is AU-sPRO (MVTec LOCO AD) by FPR limit, the mean over the defect kinds (LOCO:
	// structural and logical); present when the ground truth gives saturation regions. SPRO has the
	// details.
	PixelSPROAUPROByLimit ByLimit     `json:"pixel_spro_aupro_by_limit,omitempty"`
	SPRO                  *SPROResult `json:"spro,omitempty"`

	// FPRLimit is the upper integration limit of AUPRO (0.3 by default).
	FPRLimit float64  `json:"fpr_limit"`
	Counts   Counts   `json:"counts"`
	Warnings []string `json:"warnings"`

	Curves  *Curves      `json:"curves,omitempty"`
	PerKind []KindResult `json:"per_kind,omitempty"`
	// PerSize holds the region metrics by region size (with the per-image table).
	PerSize  []SizeResult  `json:"per_size,omitempty"`
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

	PixelAUPROByLimit ByLimit  `json:"pixel_aupro_by_limit"`
	PixelSegF1        Optional `json:"pixel_segf1,omitzero"`
	PixelSegF1Mean    Optional `json:"pixel_segf1_mean,omitzero"`
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

// Optional is a metric that exists only under a condition, such as a known threshold: it is absent from
// the JSON when the condition does not hold (Known false), null when it holds but the metric is undefined
// for the data (Value nil, and Warnings says why), and a number otherwise.
type Optional struct {
	Known bool
	Value *float64
}

// IsZero reports an Optional that is not known, so that `omitzero` leaves it out.
func (o Optional) IsZero() bool { return !o.Known }

// MarshalJSON writes the value or null.
func (o Optional) MarshalJSON() ([]byte, error) {
	if o.Value == nil {
		return []byte("null"), nil
	}
	return marshalFloat(*o.Value), nil
}

// UnmarshalJSON reads a value or null; either makes the Optional known.
func (o *Optional) UnmarshalJSON(b []byte) error {
	o.Known = true
	if string(b) == "null" {
		o.Value = nil
		return nil
	}
	v, err := parseFloat(b)
	if err != nil {
		return err
	}
	o.Value = &v
	return nil
}

// Known returns a known Optional holding v (nil: undefined).
func Known(v *float64) Optional { return Optional{Known: true, Value: v} }

// ByLimit holds a metric at several FPR integration limits, keyed by the limit in its shortest decimal form
// ("0.05", "0.3", "1"); nil where the metric is undefined.
type ByLimit map[string]*float64

// Threshold says which pixel threshold the threshold-dependent metrics (SegF1, PRO at the threshold) used
// and where it came from.
type Threshold struct {
	Pixel float64 `json:"pixel"`
	// Source is "--threshold" or the calibration file and its method, e.g. "thresholds.json (mean-kstd:3
	// on validation)".
	Source string `json:"source"`
	// Image is the image-score threshold of the calibration, when it has one; ImageF1, ImageTPR and ImageFPR
	// are the image-level results at it.
	Image    *float64 `json:"image,omitempty"`
	ImageF1  Optional `json:"image_f1,omitzero"`
	ImageTPR Optional `json:"image_tpr,omitzero"`
	ImageFPR Optional `json:"image_fpr,omitzero"`
	// SegF1Images is the number of images PixelSegF1Mean averages over.
	SegF1Images int `json:"segf1_images"`
}

// SizeResult holds the region metrics of the ground-truth regions of one size class. A region's size is
// its area as a share of its image's area; the classes are small (< 0.1 %), medium (0.1 % to 1 %) and
// large (> 1 %). PRO counts only the regions of the class; the FPR axis is still every normal pixel.
type SizeResult struct {
	Size string `json:"size"`
	// MinShare and MaxShare bound the class (share of the image area; MinShare inclusive except for small,
	// MaxShare inclusive except for large, whose bound is 1).
	MinShare          float64  `json:"min_share"`
	MaxShare          float64  `json:"max_share"`
	Regions           int64    `json:"regions"`
	PixelAUPRO        *float64 `json:"pixel_aupro"`
	PixelAUPROByLimit ByLimit  `json:"pixel_aupro_by_limit"`
	// PROAtThreshold is the mean covered fraction of the class's regions at the pixel threshold.
	PROAtThreshold Optional `json:"pro_at_threshold,omitzero"`
}

// SPROResult holds the saturated per-region overlap of MVTec LOCO AD (Bergmann et al., 2022): each region
// is one ground-truth mask file; its overlap is min(1, covered pixels / saturation area).
type SPROResult struct {
	// Regions is the number of mask files (regions) of the evaluated images.
	Regions int64 `json:"regions"`
	// PooledByLimit is AU-sPRO over all evaluated images at once.
	PooledByLimit ByLimit `json:"pooled_by_limit"`
	// ByKind is AU-sPRO of each defect kind over the normal images plus that kind's images (LOCO's
	// structural_anomalies and logical_anomalies apart); MeanByLimit is their mean.
	ByKind      []KindSPRO `json:"by_kind"`
	MeanByLimit ByLimit    `json:"mean_by_limit"`
	// AtThreshold is sPRO (pooled) at the pixel threshold.
	AtThreshold Optional `json:"at_threshold,omitzero"`
}

// KindSPRO is the AU-sPRO of one defect kind.
type KindSPRO struct {
	Kind    string  `json:"kind"`
	Regions int64   `json:"regions"`
	ByLimit ByLimit `json:"by_limit"`
}
