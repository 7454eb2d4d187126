package protocol

import "fmt"

// Training runs: the server trains an RD-RE model on a dataset's normal images with the project's own
// PyTorch trainer (models/), exports, calibrates, registers and evaluates it. Every client receives the
// same stream (train.progress, train.done) for every run.
const (
	TypeTrainStart  = "train.start"  // TrainStartRequest -> TypeTrain
	TypeTrainCancel = "train.cancel" // TrainRef -> TypeTrain (the checkpoint stays: train.resume continues)
	TypeTrainResume = "train.resume" // TrainRef -> TypeTrain (a cancelled or failed run, from its last checkpoint)
	TypeTrainList   = "train.list"   // TrainListRequest -> TypeTrains
	TypeTrain       = "train"        // TrainInfo
	TypeTrains      = "trains"       // TrainListReply

	// Pushed to every client.
	TypeTrainProgress = "train.progress" // TrainProgress
	TypeTrainDone     = "train.done"     // TrainInfo (final state: done, failed or cancelled)
)

// Training run states. A run the server stopped by shutting down stays "running" in the workspace and
// resumes from its checkpoint when the server starts again.
const (
	TrainQueued    = "queued"
	TrainRunning   = "running"
	TrainDone      = "done"
	TrainFailed    = "failed"
	TrainCancelled = "cancelled"
)

// Training stages, in order.
const (
	StagePrepare   = "prepare"   // staging the normal images, checking Python and PyTorch
	StageStudent   = "student"   // stage 1: the student (distillation)
	StageSeg       = "seg"       // stage 2: the segmentation head
	StageBaseline  = "baseline"  // the floor's plain-RD baseline, trained after the recipe (TrainFloor)
	StageFloor     = "floor"     // the floor's comparison of the two on the held-out images
	StageExport    = "export"    // ONNX export with metadata
	StageCalibrate = "calibrate" // thresholds on held-out normal images
	StageRegister  = "register"  // the model joins the workspace and the job runner
	StageEvaluate  = "evaluate"  // an evaluation job on the labelled test images was started
)

// Presets of the trainer (models.train --preset).
const (
	PresetRDRE    = "rdre"
	PresetPlainRD = "plain-rd"
)

// AnomalyBuiltin is the anomaly source "built-in texture generator".
const AnomalyBuiltin = "builtin"

// TrainOptions are a run's settings; zero values take the defaults of TrainEnv.Defaults.
type TrainOptions struct {
	Preset       string `json:"preset,omitempty"`  // PresetRDRE (default) or PresetPlainRD
	Teacher      string `json:"teacher,omitempty"` // "mobilenet_v2" (built in) or "resnet18" (weights given to serve)
	Size         int    `json:"size,omitempty"`    // input resolution, a multiple of 32
	StepsStudent int    `json:"stepsStudent,omitempty"`
	StepsSeg     int    `json:"stepsSeg,omitempty"`
	Batch        int    `json:"batch,omitempty"`
	Device       string `json:"device,omitempty"` // "auto" (CUDA when PyTorch sees a GPU), "cpu" or "cuda"
	Threads      int    `json:"threads,omitempty"`
	// AnomalySource is AnomalyBuiltin or the ID of a texture folder the server offers (TrainEnv.AnomalySources).
	AnomalySource string `json:"anomalySource,omitempty"`
	Seed          int    `json:"seed,omitempty"`
	// RandomTeacher trains with a random-initialised teacher (tests only: fast, useless model).
	RandomTeacher bool `json:"randomTeacher,omitempty"`
	// LogEvery and CkptEvery are the trainer's log and checkpoint intervals in steps (0 = defaults).
	LogEvery  int `json:"logEvery,omitempty"`
	CkptEvery int `json:"ckptEvery,omitempty"`
	// PreviewEvery writes a preview of synthetic training samples every N steps (0 = a default, -1 = none).
	PreviewEvery int `json:"previewEvery,omitempty"`
	// RealMasks also trains the segmentation stage on the defective images whose masks are drawn in this
	// workspace, mixed with synthetic anomalies (the paper's future work). RealImages names such images
	// explicitly (their workspace mask, else the dataset's). Every evaluation of the model leaves them out.
	RealMasks  bool     `json:"realMasks,omitempty"`
	RealImages []string `json:"realImages,omitempty"`
	// NoFloor skips the floor (TrainFloor) of the rdre preset: no plain-RD baseline is trained beside the
	// recipe, which saves about a third of the time. Fine-tuning with real masks never checks the floor.
	NoFloor bool `json:"noFloor,omitempty"`
}

// TrainFloor is the floor's record (models/rdre/floor.py): every fifth training image is held out, plain RD
// trains beside the recipe on the rest, and both are compared on synthetic anomalies laid on the held-out
// images. The image score is plain RD's where plain RD's image AUROC there is strictly higher, otherwise
// "both": the mean of the two models' scores, each divided by its mean score over the held-out normal samples.
// The anomaly map is plain RD's where its pixel AP is strictly higher, otherwise the recipe's.
type TrainFloor struct {
	Checked bool   `json:"checked"`
	Why     string `json:"why,omitempty"` // why it was not checked
	HeldOut int    `json:"held_out,omitempty"`
	// Score is "recipe", "baseline" (plain RD) or "both"; Map is "recipe" or "baseline". Records written
	// before "both" existed have "recipe" or "baseline" in both.
	Score    string           `json:"score"`
	Map      string           `json:"map"`
	Recipe   *FloorValidation `json:"recipe,omitempty"`
	Baseline *FloorValidation `json:"baseline,omitempty"`
	// Both is the combined score's image AUROC on the same held-out validation.
	Both *FloorCombined `json:"both,omitempty"`
}

// Floor output sources (TrainFloor.Score and Map).
const (
	FloorRecipe   = "recipe"
	FloorBaseline = "baseline"
	FloorBoth     = "both"
)

// FloorValidation is one model's synthetic validation on the held-out normals, as fractions.
type FloorValidation struct {
	ImageAUROC float64 `json:"image_auroc"`
	PixelAP    float64 `json:"pixel_ap"`
}

// FloorCombined is the combined score's synthetic validation on the held-out normals, as a fraction.
type FloorCombined struct {
	ImageAUROC float64 `json:"image_auroc"`
}

// Sources names where the exported model's anomaly map and image score come from ("RD-RE", "plain RD", and
// for the score also "combined"); both "" when the model is the recipe alone (the floor not checked, or it
// kept the recipe for both outputs).
func (f *TrainFloor) Sources() (anomalyMap, score string) {
	if f == nil || !f.Checked || (f.Score == FloorRecipe && f.Map == FloorRecipe) {
		return "", ""
	}
	name := map[string]string{FloorRecipe: "RD-RE", FloorBaseline: "plain RD", FloorBoth: "combined"}
	return name[f.Map], name[f.Score]
}

// Label is a short name of what the floor shipped, for model lists ("" for the recipe alone).
func (f *TrainFloor) Label() string {
	m, s := f.Sources()
	switch {
	case m == "":
		return ""
	case m == "plain RD" && s == "plain RD":
		return "floor: plain RD"
	}
	return fmt.Sprintf("floor: %s map, %s score", m, s)
}

// Summary says in one sentence what the floor chose and on which numbers (percent).
func (f *TrainFloor) Summary() string {
	if !f.Checked {
		return "not checked: " + f.Why
	}
	name := func(side string) string {
		switch side {
		case FloorBaseline:
			return "plain RD"
		case FloorBoth:
			return "RD-RE and plain RD combined (the mean of the two scores, each divided by its mean on the held-out normal images)"
		}
		return "RD-RE"
	}
	t := fmt.Sprintf("image score from %s, anomaly map from %s", name(f.Score), name(f.Map))
	if f.Score == FloorBaseline && f.Map == FloorBaseline {
		t = "image score and anomaly map from plain RD: the registered model is the plain-RD baseline"
	}
	if f.Recipe != nil && f.Baseline != nil {
		both := ""
		if f.Both != nil && f.Both.ImageAUROC > 0 {
			both = fmt.Sprintf(" and %.2f %% for the combined score", 100*f.Both.ImageAUROC)
		}
		t += fmt.Sprintf(" (on %d held-out normal images with synthetic anomalies: image AUROC %.2f %% for RD-RE against %.2f %% for plain RD%s, pixel AP %.2f %% against %.2f %%)",
			f.HeldOut, 100*f.Recipe.ImageAUROC, 100*f.Baseline.ImageAUROC, both, 100*f.Recipe.PixelAP, 100*f.Baseline.PixelAP)
	}
	return t
}

// TrainStartRequest is the payload of TypeTrainStart.
type TrainStartRequest struct {
	Dataset string `json:"dataset"`
	// Category picks one category of a multi-category dataset; required when there is more than one.
	Category string       `json:"category,omitempty"`
	Options  TrainOptions `json:"options"`
	// NoEvaluate skips the evaluation on the test images after training.
	NoEvaluate bool `json:"noEvaluate,omitempty"`
}

// TrainRef names a run.
type TrainRef struct {
	Run string `json:"run"`
}

// TrainListRequest is the payload of TypeTrainList; Dataset "" lists every run.
type TrainListRequest struct {
	Dataset string `json:"dataset,omitempty"`
}

// TrainPreview names the preview images of one step; the URLs are served by the server (GET
// /api/train/preview), from that run's folder only.
type TrainPreview struct {
	Stage      string `json:"stage"`
	Step       int    `json:"step"`
	Image      string `json:"image"`                // synthetic training samples I_a, side by side
	Mask       string `json:"mask"`                 // their masks
	Prediction string `json:"prediction,omitempty"` // the model's current map of them
}

// TrainInfo describes a training run.
type TrainInfo struct {
	ID       string       `json:"id"`
	Dataset  string       `json:"dataset"`
	Category string       `json:"category,omitempty"`
	Options  TrainOptions `json:"options"` // the settings in force (defaults filled in)
	State    string       `json:"state"`
	Stage    string       `json:"stage,omitempty"`
	// Step and Total count the current stage's steps; Steps the steps reached per stage.
	Step       int     `json:"step"`
	Total      int     `json:"total"`
	Loss       float64 `json:"loss,omitempty"`
	SecPerStep float64 `json:"secPerStep,omitempty"`
	// ETA is the estimated seconds to the end of training (both stages), -1 when unknown.
	ETA     float64            `json:"eta"`
	Steps   map[string]int     `json:"steps,omitempty"`
	Elapsed map[string]float64 `json:"elapsed,omitempty"` // seconds of training per stage
	Device  string             `json:"device,omitempty"`  // what PyTorch trains on ("cpu", "cuda:0")
	Images  int                `json:"images"`            // normal images trained on
	HeldOut int                `json:"heldOut"`           // normal images held out for calibration
	Real    int                `json:"real,omitempty"`    // real defective images (with masks) in the segmentation stage
	Floor   *TrainFloor        `json:"floor,omitempty"`   // the floor's comparison with plain RD, once made
	// FloorHeldOut counts the staged images the floor holds out of training (known when training starts).
	FloorHeldOut int           `json:"floorHeldOut,omitempty"`
	Preview      *TrainPreview `json:"preview,omitempty"` // the newest preview
	Created      string        `json:"created"`           // RFC 3339
	Finished     string        `json:"finished,omitempty"`
	Error        string        `json:"error,omitempty"`
	Warnings     []string      `json:"warnings,omitempty"`
	Resumes      int           `json:"resumes,omitempty"` // how often it continued from a checkpoint
	// Model is the registered model's SHA256 once registered; ModelName its name; Job the evaluation job.
	Model     string `json:"model,omitempty"`
	ModelName string `json:"modelName,omitempty"`
	Job       string `json:"job,omitempty"`
	// Thresholds calibrated on the held-out normal images (pixel, image), in the model's score units.
	Thresholds map[string]float64 `json:"thresholds,omitempty"`
	// Dir is the run's folder on the server (shown to the user, never sent back).
	Dir string `json:"dir,omitempty"`
}

// TrainProgress is the payload of TypeTrainProgress: the run as it stands, and what changed.
type TrainProgress struct {
	Run TrainInfo `json:"run"`
	// Log is the newest line of the trainer's log, when the push was caused by one.
	Log string `json:"log,omitempty"`
}

// TrainTeacher is a teacher the server can train with.
type TrainTeacher struct {
	Name      string `json:"name"` // "mobilenet_v2", "resnet18"
	Label     string `json:"label"`
	Available bool   `json:"available"`
	Note      string `json:"note,omitempty"` // why not available, or where its weights come from
}

// TrainSource is a texture folder the server offers as anomaly source.
type TrainSource struct {
	ID    string `json:"id"`
	Label string `json:"label"`
}

// TrainEnv says what this server can train with.
type TrainEnv struct {
	// Ready is true when Python with PyTorch and the trainer's other modules was found.
	Ready bool `json:"ready"`
	// Checking is true while the server is still probing Python (the first seconds after start).
	Checking bool     `json:"checking,omitempty"`
	Python   string   `json:"python,omitempty"`
	Torch    string   `json:"torch,omitempty"`
	CUDA     bool     `json:"cuda"`
	GPU      string   `json:"gpu,omitempty"`
	Missing  []string `json:"missing,omitempty"` // Python modules not found
	// Problem explains what is missing and how to install it; empty when Ready.
	Problem        string         `json:"problem,omitempty"`
	Teachers       []TrainTeacher `json:"teachers"`
	AnomalySources []TrainSource  `json:"anomalySources"`
	// Defaults are the settings a CPU run takes (about 15 minutes on 2 cores); Quick a shorter CPU
	// schedule (about 5); GPUPreset the paper's schedule for a GPU.
	Defaults  TrainOptions `json:"defaults"`
	Quick     TrainOptions `json:"quick"`
	GPUPreset TrainOptions `json:"gpuPreset"`
	// CanEvaluate is false when the server has no inference runtime: a trained model is then exported
	// but not registered or evaluated.
	CanEvaluate bool `json:"canEvaluate"`
}

// TrainListReply is the payload of TypeTrains.
type TrainListReply struct {
	Runs []TrainInfo `json:"runs"`
	Env  TrainEnv    `json:"env"`
}
