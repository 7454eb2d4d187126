//go:build !js

package training

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/rdre-studio/studio/backend/dataset"
	"github.com/rdre-studio/studio/shared/protocol"
)

// Card is the machine-readable model card (RUN/card.json); MODEL_CARD.md says the same for people.
type Card struct {
	Run      string `json:"run"`
	Model    string `json:"model,omitempty"` // ONNX file
	SHA256   string `json:"sha256,omitempty"`
	Dataset  string `json:"dataset"`
	Root     string `json:"root"`
	Layout   string `json:"layout"`
	Category string `json:"category,omitempty"`
	// Data: the images trained on and held out, and the trainer's fingerprint of the training files
	// (sha256 over their sorted names and bytes, models/rdre/data.py).
	TrainImages     int    `json:"trainImages"`
	HeldOutImages   int    `json:"heldOutImages"`
	RealImages      int    `json:"realImages,omitempty"` // defective images with masks in the segmentation stage
	FromTestSplit   bool   `json:"fromTestSplit,omitempty"`
	DataFingerprint string `json:"dataFingerprint,omitempty"`
	// Settings, and the trainer's exact arguments.
	Options     protocol.TrainOptions `json:"options"`
	TrainerArgs []string              `json:"trainerArgs"`
	// Time: RFC 3339 stamps and seconds of training per stage.
	Created string             `json:"created"`
	Started string             `json:"started,omitempty"`
	Written string             `json:"written"`
	Elapsed map[string]float64 `json:"elapsedSeconds,omitempty"`
	Steps   map[string]int     `json:"steps,omitempty"`
	Resumes int                `json:"resumes,omitempty"`
	Device  string             `json:"device,omitempty"`
	Threads int                `json:"threads"`
	Python  string             `json:"python,omitempty"`
	Torch   string             `json:"torch,omitempty"`
	GPU     string             `json:"gpu,omitempty"`
	// Thresholds: the trainer's on synthetic anomalies and this run's on held-out normal images.
	SyntheticThresholds map[string]float64 `json:"syntheticThresholds,omitempty"`
	HeldOutThresholds   map[string]float64 `json:"heldOutThresholds,omitempty"`
	Job                 string             `json:"evaluationJob,omitempty"`
	Teacher             string             `json:"teacher"`
	TeacherSource       string             `json:"teacherSource"`
	Warnings            []string           `json:"warnings,omitempty"`
	// Floor is the comparison with plain RD that chose where the score and the map come from.
	Floor *protocol.TrainFloor `json:"floor,omitempty"`
}

func teacherSource(o protocol.TrainOptions) string {
	switch {
	case o.RandomTeacher:
		return "random-initialised teacher (a test model: it has learned nothing useful)"
	case o.Teacher == "resnet18":
		return "ResNet18, torchvision ImageNet weights supplied to the server"
	default:
		return "MobileNetV2 1.0/224 ImageNet weights from google-coral/test_data (Apache-2.0), committed in models/teachers; the ONNX file carries the converted weights"
	}
}

// writeCard writes RUN/MODEL_CARD.md and RUN/card.json.
func (r *Runner) writeCard(j *run, ds *dataset.Dataset) error {
	j.mu.Lock()
	rec := j.rec
	in := cloneInfo(j.rec.Info)
	j.mu.Unlock()
	dsi := ds.Info()
	c := Card{
		Run: in.ID, Model: rec.ModelPath, Dataset: in.Dataset, Root: dsi.Root, Layout: dsi.Layout, Category: in.Category,
		TrainImages: len(rec.Train), HeldOutImages: len(rec.Calib), RealImages: len(rec.Real), FromTestSplit: rec.FromTest,
		DataFingerprint: rec.Fingerprint, Options: in.Options, TrainerArgs: rec.Args, Created: in.Created, Started: rec.Started,
		Written: time.Now().UTC().Format(time.RFC3339), Elapsed: in.Elapsed, Steps: in.Steps, Resumes: in.Resumes,
		Device: in.Device, Threads: in.Options.Threads, Python: rec.Python, Torch: rec.Torch, GPU: rec.GPU,
		SyntheticThresholds: rec.SynthThresholds, HeldOutThresholds: in.Thresholds, Job: in.Job,
		Teacher: in.Options.Teacher, TeacherSource: teacherSource(in.Options), Warnings: in.Warnings, Floor: in.Floor,
	}
	if rec.ModelPath != "" {
		sum, err := fileSHA256(rec.ModelPath)
		if err != nil {
			return err
		}
		c.SHA256 = sum
	}
	raw, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	if err := writeAtomic(filepath.Join(in.Dir, "card.json"), append(raw, '\n')); err != nil {
		return err
	}
	return writeAtomic(filepath.Join(in.Dir, "MODEL_CARD.md"), []byte(c.Markdown()))
}

// Markdown renders the card for people.
func (c Card) Markdown() string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	name := c.Category
	if name == "" {
		name = c.Dataset
	}
	w("# Model card: %s, %s (training run %s)\n\n", c.modelKind(), name, c.Run)
	w("| | |\n|---|---|\n")
	w("| model file | `%s` |\n| sha256 | `%s` |\n", c.Model, c.SHA256)
	w("| dataset | %s (`%s`, layout %s) |\n", c.Dataset, c.Root, c.Layout)
	if c.Category != "" {
		w("| category | %s |\n", c.Category)
	}
	split := "the train split's normal images"
	if c.FromTestSplit {
		split = "good images of the test split (the dataset has no train split); evaluations of this model leave them and the held-out ones out"
	}
	floorText := ""
	if c.Floor != nil && c.Floor.Checked {
		floorText = fmt.Sprintf("; the floor held out %d of them, so both models trained on %d", c.Floor.HeldOut, c.TrainImages-c.Floor.HeldOut)
	}
	w("| training data | %d images: %s (list: `train_images.txt`)%s |\n", c.TrainImages, split, floorText)
	w("| held out for calibration | %d normal images (`heldout_images.txt`) |\n", c.HeldOutImages)
	if c.RealImages > 0 {
		w("| fine-tuned with real defects | %d images with their masks, mixed into the segmentation stage (`real_images.txt`); evaluations of this model leave them out |\n", c.RealImages)
	}
	w("| data fingerprint | `%s` (sha256 over the training files' sorted names and bytes) |\n", c.DataFingerprint)
	o := c.Options
	recipe := recipeText(o.Preset, c.RealImages > 0)
	if f := c.Floor; f != nil && f.Checked && (f.Score != protocol.FloorRecipe || f.Map != protocol.FloorRecipe) {
		recipe += " (what this model exports instead is in the title and the floor row)"
	}
	w("| preset | %s: %s |\n| teacher | %s: %s |\n", o.Preset, recipe, o.Teacher, c.TeacherSource)
	baseSteps := ""
	if n := c.Steps[protocol.StageBaseline]; n > 0 {
		baseSteps = fmt.Sprintf(", then %d of plain RD for the floor", n)
	}
	w("| input size | %d |\n| steps | %d student + %d segmentation%s, batch %d, seed %d |\n", o.Size, o.StepsStudent, o.StepsSeg, baseSteps, o.Batch, o.Seed)
	w("| anomaly source | %s |\n", o.AnomalySource)
	if c.Floor != nil {
		w("| floor (plain RD trained beside it, models/README.md) | %s |\n", c.Floor.Summary())
	}
	w("| device | %s (asked: %s), threads: %d; PyTorch %s%s; %s |\n", c.Device, o.Device, c.Threads, c.Torch, gpuText(c.GPU), c.Python)
	keys := make([]string, 0, len(c.Elapsed))
	for k := range c.Elapsed {
		keys = append(keys, k)
	}
	order := map[string]int{protocol.StageStudent: 1, protocol.StageSeg: 2, protocol.StageBaseline: 3} // as they ran
	sort.Slice(keys, func(a, b int) bool {
		oa, ob := order[keys[a]], order[keys[b]]
		if oa != ob {
			return oa != 0 && (ob == 0 || oa < ob)
		}
		return keys[a] < keys[b]
	})
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %.0f s (%d steps)", k, c.Elapsed[k], c.Steps[k]))
	}
	w("| training time | %s |\n", strings.Join(parts, ", "))
	w("| created / started / card written | %s / %s / %s |\n", c.Created, c.Started, c.Written)
	if c.Resumes > 0 {
		w("| resumed | %d times from its checkpoint |\n", c.Resumes)
	}
	w("| thresholds, synthetic anomalies (trainer) | %s |\n", thrText(c.SyntheticThresholds))
	w("| thresholds, held-out normal images | %s |\n", thrText(c.HeldOutThresholds))
	if c.Job != "" {
		w("| evaluation job | %s (test split; the metrics are in the workspace and its reports) |\n", c.Job)
	}
	module := "models.train"
	if c.RealImages > 0 {
		module = "models.finetune --real-list real.json"
	}
	w("\nTrainer command: `python3 -m %s %s`\n", module, strings.Join(c.TrainerArgs, " "))
	if len(c.Warnings) > 0 {
		w("\nNotes:\n\n")
		for _, s := range c.Warnings {
			w("- %s\n", s)
		}
	}
	w("\nThe held-out thresholds come from package calibrate on the held-out normal images alone (pixel-fpr:0.001: at most 1 in 1000 of their pixels " +
		"at or above it; image-fpr:0: just above their highest image score); no defect was seen to set them. The synthetic ones are F1-optimal " +
		"on the trainer's own synthetic anomalies. Both are suggestions.\n")
	return b.String()
}

func gpuText(g string) string {
	if g == "" {
		return ""
	}
	return ", GPU " + g
}

func thrText(m map[string]float64) string {
	if len(m) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %.6g", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

func fileSHA256(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func writeAtomic(p string, data []byte) error {
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, p)
}

// modelKind names what the exported model is: the preset's, unless the floor took an output from plain RD
// or combined the two models' scores.
func (c Card) modelKind() string {
	if c.Options.Preset == protocol.PresetPlainRD {
		return "plain RD"
	}
	m, s := c.Floor.Sources()
	switch {
	case m == "":
		return "RD-RE"
	case m == "plain RD" && s == "plain RD":
		return "plain RD (the floor's choice over RD-RE)"
	case s == "combined":
		s = "RD-RE's and plain RD's combined"
	default:
		s += "'s"
	}
	return m + "'s anomaly map with " + s + " image score (the floor's choice)"
}

// recipeText says what a preset trains and which map the model exports (models/README.md, "Beyond bottle").
func recipeText(preset string, finetuned bool) string {
	if preset == protocol.PresetPlainRD {
		return "plain reverse distillation (the baseline: no synthetic anomalies, no segmentation head)"
	}
	out := "`anomaly_map` is the student's RD map"
	if finetuned {
		out = "`anomaly_map` is the segmentation head's map, which the real masks trained"
	}
	return "RD-RE as the trainer's defaults build it since issue 17: the student trained on synthetic anomalies, " +
		"no cross-stage fusion; " + out
}
