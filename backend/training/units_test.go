//go:build !js

package training

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rdre-studio/studio/backend/dataset"
	"github.com/rdre-studio/studio/backend/dataset/datasettest"
	"github.com/rdre-studio/studio/backend/server"
	"github.com/rdre-studio/studio/shared/protocol"
)

func TestSpread_EvenAndDeterministic(t *testing.T) {
	ids := []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j"}
	if got := strings.Join(spread(ids, 2), ","); got != "c,h" {
		t.Fatalf("spread 2 of 10: %s", got)
	}
	if got := spread(ids, 20); len(got) != 10 {
		t.Fatalf("spread 20 of 10: %v", got)
	}
	if got := strings.Join(without(ids, spread(ids, 5)), ","); got != "a,c,e,g,i" {
		t.Fatalf("without: %s", got)
	}
}

// Which images train and calibrate, for each kind of dataset: a train split (a tenth held out when
// there is no validation split), a validation split (it calibrates), no train split (good test images,
// excluded from that model's evaluations), nothing normal (refused).
func TestSelectImages_PerLayout(t *testing.T) {
	dir := t.TempDir()
	open := func(layout string) (*dataset.Dataset, datasettest.Fixture) {
		fx, err := datasettest.Write(dir, layout)
		if err != nil {
			t.Fatal(err)
		}
		ds, err := dataset.Open(fx.Root)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ds.Close() })
		return ds, fx
	}
	count := func(fx datasettest.Fixture, split string) int {
		n := 0
		for _, im := range fx.Split(split) {
			if im.Kind == protocol.KindGood {
				n++
			}
		}
		return n
	}

	ds, fx := open("mvtec") // 3 train images: too few to hold any out
	sel, err := selectImages(ds.Images(), "")
	if err != nil || len(sel.train) != count(fx, "train") || len(sel.calib) != 0 || sel.fromTest || len(sel.warnings) != 1 {
		t.Fatalf("mvtec: %+v %v", sel, err)
	}
	ds, fx = open("mvtec2")
	sel, err = selectImages(ds.Images(), "")
	if err != nil || len(sel.train) != count(fx, "train") || len(sel.calib) != count(fx, "validation") || len(sel.calib) == 0 {
		t.Fatalf("mvtec2: %+v %v", sel, err)
	}
	ds, fx = open("images+masks")
	sel, err = selectImages(ds.Images(), "")
	good := count(fx, "test")
	if good < 2 {
		t.Fatalf("fixture has %d good images", good)
	}
	if err != nil || !sel.fromTest || len(sel.train) == 0 || len(sel.train)+len(sel.calib) >= good {
		t.Fatalf("images+masks (%d good): %+v %v", good, sel, err)
	}
	ds, _ = open("mvtec-set")
	if _, err := selectImages(ds.Images(), "nope"); err == nil {
		t.Fatal("a category without images was accepted")
	}

	// A train split of 20: 2 held out, evenly spread.
	root := filepath.Join(dir, "twenty", "cat")
	for i := range 20 {
		writeFile(t, filepath.Join(root, "train", "good", strings.Repeat("0", 2-len(itoa2(i)))+itoa2(i)+".png"))
	}
	writeFile(t, filepath.Join(root, "test", "good", "000.png"))
	ds, err = dataset.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	defer ds.Close()
	sel, err = selectImages(ds.Images(), "")
	if err != nil || len(sel.train) != 18 || len(sel.calib) != 2 || sel.calib[0] != "train/good/05.png" || sel.calib[1] != "train/good/15.png" {
		t.Fatalf("twenty: %+v %v", sel, err)
	}
}

func itoa2(i int) string { return string(rune('0'+i/10)) + string(rune('0'+i%10)) }

func writeFile(t *testing.T, p string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	// A 1x1 PNG.
	png := []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x00\x00\x00\x00:~\x9bU\x00\x00\x00\nIDATx\x9cc`\x00\x00\x00\x02\x00\x01H\xaf\xa4q\x00\x00\x00\x00IEND\xaeB`\x82")
	if err := os.WriteFile(p, png, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestStagedNames_KeepBaseNamesUnlessStemsCollide(t *testing.T) {
	got := stagedNames([]string{"a/train/good/000.png", "b/train/good/000.jpg", "a/train/good/001.png", "x y/Imgs/odd name.jpg"})
	want := map[string]string{"a/train/good/000.png": "a__train__good__000.png", "b/train/good/000.jpg": "b__train__good__000.jpg",
		"a/train/good/001.png": "001.png", "x y/Imgs/odd name.jpg": "odd_name.jpg"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s -> %s, want %s", k, got[k], v)
		}
	}
}

func TestETA_EveryPlannedStage(t *testing.T) {
	plan := map[string]int{"student": 100, "seg": 50}
	if got := eta(plan, protocol.StageStudent, 40, 100, map[string]float64{"student": 2}); got != 60*2+50*2*segStepShare {
		t.Fatalf("student, seg pace unknown: %v", got)
	}
	if got := eta(plan, protocol.StageStudent, 40, 100, map[string]float64{"student": 2, "seg": 1}); got != 60*2+50 {
		t.Fatalf("student, seg pace known: %v", got)
	}
	if got := eta(plan, protocol.StageSeg, 10, 50, map[string]float64{"student": 2, "seg": 1}); got != 40 {
		t.Fatalf("seg: %v", got)
	}
	// With the floor the plain-RD baseline follows: at its share of the student's pace until measured.
	plan["baseline"] = 150
	if got := eta(plan, protocol.StageStudent, 40, 100, map[string]float64{"student": 2, "seg": 1}); got != 60*2+50+150*2*baselineStepShare {
		t.Fatalf("student, then seg and baseline: %v", got)
	}
	// Resumed in the segmentation stage: the student's pace is inferred from the seg pace.
	if got, want := eta(plan, protocol.StageSeg, 10, 50, map[string]float64{"seg": 1}), 40+150*(1/segStepShare)*baselineStepShare; math.Abs(got-want) > 1e-9 {
		t.Fatalf("seg, then baseline: %v want %v", got, want)
	}
	if got := eta(plan, protocol.StageBaseline, 100, 150, map[string]float64{"student": 2, "seg": 1, "baseline": 0.5}); got != 25 {
		t.Fatalf("baseline: %v", got)
	}
	if got := eta(map[string]int{"student": 100}, protocol.StageStudent, 40, 100, map[string]float64{"student": 2}); got != 120 {
		t.Fatalf("plain RD: %v", got)
	}
	if got := eta(plan, protocol.StageStudent, 0, 100, nil); got != -1 {
		t.Fatalf("unknown pace: %v", got)
	}
}

func TestResolveOptions_DefaultsAndRefusals(t *testing.T) {
	srv, err := server.New(server.Config{Workspace: filepath.Join(t.TempDir(), "ws.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	r := New(srv, Options{Textures: []string{"/data/dtd"}, Repo: "/nonexistent"})
	o, err := r.resolveOptions(protocol.TrainOptions{})
	if err != nil || o.Size != cpuSize || o.StepsStudent != cpuStepsStudent || o.StepsSeg != cpuStepsSeg || o.Batch != cpuBatch ||
		o.Teacher != "mobilenet_v2" || o.AnomalySource != protocol.AnomalyBuiltin || o.Device != "auto" || o.Threads < 1 {
		t.Fatalf("defaults: %+v %v", o, err)
	}
	if o, err := r.resolveOptions(protocol.TrainOptions{Preset: protocol.PresetPlainRD, StepsSeg: 300}); err != nil || o.StepsSeg != 0 {
		t.Fatalf("plain RD keeps no segmentation stage: %+v %v", o, err)
	}
	if o, err = r.resolveOptions(protocol.TrainOptions{AnomalySource: "textures:dtd"}); err != nil || o.AnomalySource != "textures:dtd" {
		t.Fatalf("offered texture folder: %+v %v", o, err)
	}
	for _, bad := range []protocol.TrainOptions{
		{Size: 100}, {Size: 16}, {Preset: "x"}, {Teacher: "vgg"}, {Teacher: "resnet18"}, {Device: "tpu"},
		{AnomalySource: "/etc"}, {Batch: 100000}, {StepsSeg: -1},
	} {
		if _, err := r.resolveOptions(bad); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
	args := strings.Join(r.trainArgs(record{Info: protocol.TrainInfo{Dir: "/runs/x", Dataset: "bottle-1234", Options: o}}), " ")
	for _, want := range []string{"--data /runs/x/data --category bottle --layout mvtec", "--progress-json -", "--anomaly-source /data/dtd", "--out /runs/x"} {
		if !strings.Contains(args, want) {
			t.Errorf("trainer args %q lack %q", args, want)
		}
	}
	// The rdre preset checks the floor (models.train's default) unless the run asks not to.
	if strings.Contains(args, "floor") {
		t.Errorf("default args %q name the floor", args)
	}
	o.NoFloor = true
	if args := strings.Join(r.trainArgs(record{Info: protocol.TrainInfo{Dir: "/runs/x", Options: o}}), " "); !strings.Contains(args, "--preset rdre") || !strings.Contains(args, "--no-floor") {
		t.Errorf("NoFloor: args %q lack --no-floor", args)
	}
}

func TestMissingProblem_SaysWhatAndHow(t *testing.T) {
	msg := missingProblem("/usr/bin/python3", []string{"torch", "torchvision"})
	for _, want := range []string{"PyTorch", "apt-get install python3-torch python3-torchvision", "pip install torch torchvision", "--python"} {
		if !strings.Contains(msg, want) {
			t.Errorf("%q lacks %q", msg, want)
		}
	}
	if _, err := FindRepo("/nonexistent"); err == nil || !strings.Contains(err.Error(), "models/train.py") {
		t.Fatalf("FindRepo: %v", err)
	}
	if _, err := FindPython("/nonexistent/python"); err == nil {
		t.Fatal("FindPython accepted a missing file")
	}
	res := probe("/bin/false", "")
	if res.Problem == "" {
		t.Fatal("an interpreter that fails passed the probe")
	}
}

func TestTail_ShowsErrorsFirst(t *testing.T) {
	tl := newTail(5)
	for _, l := range []string{"a", "b", "Traceback (most recent call last):", "  File x", "ValueError: bad size", "2026 INFO done"} {
		tl.add(l)
	}
	if got := tl.String(); got != "ValueError: bad size" {
		t.Fatalf("tail: %q", got)
	}
}

func TestCard_Markdown_NamesWhatTheFloorShips(t *testing.T) {
	val := func(i, a float64) *protocol.FloorValidation {
		return &protocol.FloorValidation{ImageAUROC: i, PixelAP: a}
	}
	for _, tc := range []struct {
		preset, score, mapFrom string
		checked                bool
		title, floorRow        string
	}{
		{protocol.PresetRDRE, "recipe", "recipe", true, "# Model card: RD-RE, tiles", "image score from RD-RE, anomaly map from RD-RE (on 10 held-out"},
		{protocol.PresetRDRE, "baseline", "recipe", true, "# Model card: RD-RE's anomaly map with plain RD's image score (the floor's choice), tiles",
			"image AUROC 90.00 % for RD-RE against 95.00 % for plain RD, pixel AP 30.00 % against 20.00 %"},
		{protocol.PresetRDRE, "baseline", "baseline", true, "# Model card: plain RD (the floor's choice over RD-RE), tiles",
			"the registered model is the plain-RD baseline"},
		{protocol.PresetRDRE, "recipe", "baseline", true, "# Model card: plain RD's anomaly map with RD-RE's image score (the floor's choice), tiles",
			"image score from RD-RE, anomaly map from plain RD"},
		{protocol.PresetRDRE, "both", "recipe", true, "# Model card: RD-RE's anomaly map with RD-RE's and plain RD's combined image score (the floor's choice), tiles",
			"image score from RD-RE and plain RD combined (the mean of the two scores, each divided by its mean on the held-out normal images), anomaly map from RD-RE (on 10 held-out normal images with synthetic anomalies: image AUROC 90.00 % for RD-RE against 95.00 % for plain RD and 97.00 % for the combined score, pixel AP 30.00 % against 20.00 %)"},
		{protocol.PresetRDRE, "both", "baseline", true, "# Model card: plain RD's anomaly map with RD-RE's and plain RD's combined image score (the floor's choice), tiles",
			"anomaly map from plain RD"},
		{protocol.PresetRDRE, "recipe", "recipe", false, "# Model card: RD-RE, tiles", "not checked: 12 training images"},
		{protocol.PresetPlainRD, "", "", false, "# Model card: plain RD, tiles", ""},
	} {
		c := Card{Run: "r1", Category: "tiles", TrainImages: 54, Options: protocol.TrainOptions{Preset: tc.preset, StepsStudent: 40, StepsSeg: 4},
			Steps: map[string]int{"student": 40, "seg": 4}, Elapsed: map[string]float64{"student": 3, "seg": 1, "baseline": 2}}
		if tc.preset == protocol.PresetRDRE {
			c.Floor = &protocol.TrainFloor{Checked: tc.checked, Score: tc.score, Map: tc.mapFrom}
			if tc.checked {
				c.Floor.HeldOut, c.Floor.Recipe, c.Floor.Baseline = 10, val(0.9, 0.3), val(0.95, 0.2)
				if tc.score == protocol.FloorBoth {
					c.Floor.Both = &protocol.FloorCombined{ImageAUROC: 0.97}
				}
				c.Steps["baseline"] = 44
			} else {
				c.Floor.Why = "12 training images, fewer than 20"
			}
		}
		md := c.Markdown()
		if !strings.HasPrefix(md, tc.title+" (training run r1)") {
			t.Errorf("%+v: title of\n%s", tc, md)
		}
		if tc.floorRow != "" && !strings.Contains(md, "| floor (plain RD trained beside it, models/README.md) | ") || !strings.Contains(md, tc.floorRow) {
			t.Errorf("%+v: floor row %q missing in\n%s", tc, tc.floorRow, md)
		}
		if steps := strings.Contains(md, "40 student + 4 segmentation, then 44 of plain RD for the floor"); steps != tc.checked {
			t.Errorf("%+v: steps row with the baseline %v in\n%s", tc, steps, md)
		}
		if !strings.Contains(md, "| training time | student 3 s (40 steps), seg 1 s (4 steps), baseline 2 s (") {
			t.Errorf("%+v: training time not in the order the stages ran:\n%s", tc, md)
		}
		if held := strings.Contains(md, "the floor held out 10 of them, so both models trained on 44"); held != tc.checked {
			t.Errorf("%+v: training data row %v in\n%s", tc, held, md)
		}
	}
}

func TestApplyTraining_Name_SaysWhatTheModelIs(t *testing.T) {
	for _, tc := range []struct {
		preset string
		floor  *protocol.TrainFloor
		want   string
	}{
		{protocol.PresetRDRE, nil, "tiles (mobilenet_v2, trained r1)"},
		{protocol.PresetPlainRD, nil, "tiles (plain RD, mobilenet_v2, trained r1)"},
		{protocol.PresetRDRE, &protocol.TrainFloor{Checked: true, Score: "baseline", Map: "baseline"}, "tiles (floor: plain RD, mobilenet_v2, trained r1)"},
		{protocol.PresetRDRE, &protocol.TrainFloor{Checked: true, Score: "both", Map: "recipe"}, "tiles (floor: RD-RE map, combined score, mobilenet_v2, trained r1)"},
		{protocol.PresetRDRE, &protocol.TrainFloor{Checked: false, Why: "few", Score: "recipe", Map: "recipe"}, "tiles (mobilenet_v2, trained r1)"},
	} {
		var m protocol.ModelInfo
		rec := record{Info: protocol.TrainInfo{ID: "r1", Category: "tiles", Floor: tc.floor, Options: protocol.TrainOptions{Preset: tc.preset, Teacher: "mobilenet_v2"}}}
		applyTraining(&m, rec)
		if m.Name != tc.want || m.Training != "r1" {
			t.Errorf("%s %+v: name %q, want %q", tc.preset, tc.floor, m.Name, tc.want)
		}
	}
}
