package protocol

import "encoding/json"

// Models and evaluation jobs.
const (
	TypeModelsList = "models.list" // -> TypeModels
	TypeModels     = "models"      // ModelsReply

	TypeJobStart  = "job.start"  // JobStartRequest -> TypeJob
	TypeJobCancel = "job.cancel" // JobRef -> TypeJob
	TypeJobGet    = "job.get"    // JobRef -> TypeJobState
	TypeJobsList  = "jobs.list"  // -> TypeJobs
	TypeJob       = "job"        // JobInfo
	TypeJobs      = "jobs"       // JobsReply
	TypeJobState  = "job.state"  // JobState: everything a client needs to catch up with a running job

	// Pushed to every client while a job runs, so a second client sees the same stream.
	TypeJobProgress = "job.progress" // JobProgress
	TypeJobMetrics  = "job.metrics"  // JobMetrics (Partial = true while running)
	TypeJobDone     = "job.done"     // JobState (final)
)

// Job states.
const (
	JobQueued    = "queued"
	JobRunning   = "running"
	JobDone      = "done"
	JobFailed    = "failed"
	JobCancelled = "cancelled"
)

// ModelInfo describes a registered model file.
type ModelInfo struct {
	SHA256     string             `json:"sha256"`
	Path       string             `json:"path"`
	Name       string             `json:"name"`
	InputSize  int                `json:"inputSize"`
	Teacher    string             `json:"teacher,omitempty"`
	Category   string             `json:"category,omitempty"`
	Device     string             `json:"device,omitempty"` // the device sessions actually run on
	Metadata   map[string]string  `json:"metadata,omitempty"`
	Thresholds map[string]float64 `json:"thresholds,omitempty"`
	// TrainedOn lists, per dataset ID, the images a model trained in this workspace learned from or was
	// calibrated on; every evaluation of the model on that dataset leaves them out (JobInfo.Excluded).
	TrainedOn map[string][]string `json:"trainedOn,omitempty"`
	// Training is the ID of the training run that produced the model, when it was trained here.
	Training string `json:"training,omitempty"`
	// Calibration is the model's current calibration on normal images (its thresholds are also in
	// Thresholds under ThresholdPixelNormal and ThresholdImageNormal).
	Calibration *Calibration `json:"calibration,omitempty"`
}

// ModelsReply is the payload of TypeModels.
type ModelsReply struct {
	Models []ModelInfo `json:"models"`
}

// Mask sources for an evaluation.
const (
	MasksDataset   = "dataset"   // the dataset's own ground truth
	MasksWorkspace = "workspace" // masks drawn in the workspace where present, else the dataset's
)

// JobStartRequest is the payload of TypeJobStart.
type JobStartRequest struct {
	Dataset string `json:"dataset"`
	Model   string `json:"model"`           // ModelInfo.SHA256
	Split   string `json:"split,omitempty"` // default "test"
	// Category picks one category of a multi-category dataset; required when there is more than one.
	Category string `json:"category,omitempty"`
	Masks    string `json:"masks,omitempty"` // default MasksDataset
	// NoiseStd adds white Gaussian noise of this standard deviation (on [0,1] pixels) before inference:
	// the paper's robustness study. 0 = none.
	NoiseStd float64 `json:"noiseStd,omitempty"`
}

// JobRef names a job.
type JobRef struct {
	Job string `json:"job"`
}

// JobInfo describes a job.
type JobInfo struct {
	ID        string  `json:"id"`
	Dataset   string  `json:"dataset"`
	Model     string  `json:"model"`
	ModelName string  `json:"modelName,omitempty"`
	Split     string  `json:"split"`
	Category  string  `json:"category,omitempty"`
	Masks     string  `json:"masks"`
	NoiseStd  float64 `json:"noiseStd,omitempty"`
	State     string  `json:"state"`
	Done      int     `json:"done"`
	Total     int     `json:"total"`
	Error     string  `json:"error,omitempty"`
	Device    string  `json:"device,omitempty"`
	Created   string  `json:"created"` // RFC 3339
	Finished  string  `json:"finished,omitempty"`
	// MaskVersions records, per image, which workspace mask version the evaluation used (absent: the
	// dataset's own mask or none). Reports cite it.
	MaskVersions map[string]int `json:"maskVersions,omitempty"`
	// Warnings name every file the job doubted or left out: the dataset's index warnings, images without
	// a mask in a defect folder, empty masks, masks of no known encoding, images that could not be read
	// (skipped: the job goes on without them and Skipped counts them).
	Warnings []string `json:"warnings,omitempty"`
	Skipped  int      `json:"skipped,omitempty"`
	// Excluded lists the images of the split left out because the model was trained or calibrated on
	// them (ModelInfo.TrainedOn); reports list them.
	Excluded []string `json:"excluded,omitempty"`
	// Threshold is the calibrated threshold the job's SegF1 uses (nil: the model had none).
	Threshold *JobThreshold `json:"threshold,omitempty"`
}

// JobsReply is the payload of TypeJobs.
type JobsReply struct {
	Jobs []JobInfo `json:"jobs"`
}

// ImageScore is one evaluated image.
type ImageScore struct {
	Image string  `json:"image"` // image ID
	Key   string  `json:"key"`   // the dataset's key: "KIND/STEM" or "CATEGORY/KIND/STEM"
	Kind  string  `json:"kind"`
	Label int     `json:"label"`
	Score float64 `json:"score"`
}

// JobProgress is the payload of TypeJobProgress.
type JobProgress struct {
	Job    string       `json:"job"`
	Done   int          `json:"done"`
	Total  int          `json:"total"`
	Scores []ImageScore `json:"scores"` // the images finished since the last progress message
}

// JobMetrics is the payload of TypeJobMetrics. Result is a shared/metrics Result as JSON.
type JobMetrics struct {
	Job     string          `json:"job"`
	Partial bool            `json:"partial"`
	Result  json.RawMessage `json:"result"`
}

// JobState is the payload of TypeJobState and TypeJobDone.
type JobState struct {
	Job    JobInfo         `json:"job"`
	Scores []ImageScore    `json:"scores"`
	Result json.RawMessage `json:"result,omitempty"`
}
