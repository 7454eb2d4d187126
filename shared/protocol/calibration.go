package protocol

// Threshold calibration on defect-free images (MVTec AD 2's rule: thresholds may only come from normal
// data, never from the test labels). The server runs a registered model over the good images of a
// split that is not the test set, computes the thresholds with package calibrate, keeps the result in
// the workspace (bucket calibrations) and makes it the model's current calibration: the editor's
// default threshold, the threshold of SegF1 in every evaluation started afterwards, and the
// thresholds written into a downloaded model's metadata.
const (
	TypeModelCalibrate = "model.calibrate" // CalibrateRequest -> TypeCalibration; TypeModels is pushed to every client
	TypeCalibration    = "calibration"     // Calibration
)

// Keys of ModelInfo.Thresholds that hold the current calibration on normal images (the model's score
// units). Other keys (pixel, image) are the F1-optimal thresholds on synthetic anomalies that the
// trainer writes; they are suggestions, not calibrations.
const (
	ThresholdPixelNormal = "pixel_normal"
	ThresholdImageNormal = "image_normal"
)

// CalibrateRequest asks for a calibration of Model on the good images of Split of Dataset.
type CalibrateRequest struct {
	Model   string `json:"model"`
	Dataset string `json:"dataset"`
	// Split is validation or train; "" picks validation when the dataset has one, else train. A test
	// split is refused.
	Split    string `json:"split,omitempty"`
	Category string `json:"category,omitempty"`
	// Methods are package calibrate's strategies, comma-separated, at most one pixel and one image
	// strategy ("" = mean-kstd:3,image-fpr:0.05, MVTec AD 2's baseline and a 5 % false-alarm rate).
	Methods string `json:"methods,omitempty"`
}

// Calibration is one stored calibration with its provenance.
type Calibration struct {
	ID       string `json:"id"`
	Model    string `json:"model"` // sha256
	Dataset  string `json:"dataset"`
	Split    string `json:"split"`
	Category string `json:"category,omitempty"`
	// Images and Pixels count the defect-free images (and their pixels, at image resolution) used.
	Images int   `json:"images"`
	Pixels int64 `json:"pixels"`
	// Pixel and Image are the thresholds found; either may be nil when its method was not asked for.
	Pixel     *CalibratedThreshold `json:"pixel,omitempty"`
	Image     *CalibratedThreshold `json:"image,omitempty"`
	PixelMean float64              `json:"pixelMean"`
	PixelStd  float64              `json:"pixelStd"`
	Methods   []string             `json:"methods"`
	// Excluded counts the images of the split left out because the model was trained on them;
	// Skipped names images that could not be read.
	Excluded int      `json:"excluded,omitempty"`
	Skipped  []string `json:"skipped,omitempty"`
	Created  string   `json:"created"` // RFC 3339
}

// CalibratedThreshold is one threshold: the strategy, the value in the model's score units, and the
// share of the calibration set's normal pixels (or images) at or above it.
type CalibratedThreshold struct {
	Method    string  `json:"method"`
	Threshold float64 `json:"threshold"`
	FPR       float64 `json:"fpr"`
}

// JobThreshold is the threshold an evaluation used for its threshold-dependent metrics (SegF1, PRO at
// the threshold, image F1/TPR/FPR), fixed when the job starts so that a resumed job uses the same one.
type JobThreshold struct {
	Pixel  float64  `json:"pixel"`
	Image  *float64 `json:"image,omitempty"`
	Source string   `json:"source"`
}
