//go:build !js

package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image"
	"image/jpeg"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rdre-studio/studio/backend/internal/testenv"
	"github.com/rdre-studio/studio/backend/store"
	"github.com/rdre-studio/studio/shared/protocol"
)

// writeTiles writes a Magnetic-Tile style dataset (images+masks layout: no train split): 10 defect-free
// images (MT_Free, all-zero masks) and 4 cracked ones with masks.
func writeTiles(t *testing.T, root string) {
	t.Helper()
	write := func(rel string, enc func(*os.File) error) {
		p := filepath.Join(root, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := enc(f); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
	tile := func(rel string, seed int, crack bool) {
		img := image.NewGray(image.Rect(0, 0, 64, 64))
		m := image.NewGray(image.Rect(0, 0, 64, 64))
		for y := 0; y < 64; y++ {
			for x := 0; x < 64; x++ {
				v := 120 + 30*math.Sin(float64(x+seed)/5)*math.Cos(float64(y)/7)
				if crack && x > 20 && x < 44 && y > 30 && y < 34 {
					v, m.Pix[y*64+x] = 20, 255
				}
				img.Pix[y*64+x] = uint8(v)
			}
		}
		write(rel+".jpg", func(f *os.File) error { return jpeg.Encode(f, img, &jpeg.Options{Quality: 95}) })
		write(rel+".png", func(f *os.File) error { return png.Encode(f, m) })
	}
	for i := range 10 {
		tile(fmt.Sprintf("MT_Free/Imgs/free_%02d", i), i, false)
	}
	for i := range 4 {
		tile(fmt.Sprintf("MT_Crack/Imgs/crack_%02d", i), i, true)
	}
}

// rdre train end to end on a dataset without a train split: it trains (real PyTorch, tiny, random
// teacher) on part of the good images, calibrates on others, registers the model in the workspace and
// evaluates it on the rest, leaving the images it trained and calibrated on out of the evaluation.
func TestTrain_EndToEnd_RegistersAndEvaluatesWithoutItsOwnImages(t *testing.T) {
	testenv.NeedTorch(t)
	lib := testenv.ORTLibrary(t)
	dir := t.TempDir()
	data := filepath.Join(dir, "tiles")
	writeTiles(t, data)
	out := filepath.Join(dir, "run")
	ws := filepath.Join(dir, "ws.db")
	var stdout, stderr bytes.Buffer
	code := Main([]string{"train", "--data", data, "--out", out, "--workspace", ws, "--size", "32", "--steps-student", "4",
		"--steps-seg", "4", "--batch", "2", "--device", "cpu", "--threads", "1", "--random-teacher", "--log-every", "2",
		"--preview-every", "2", "--python", testenv.Python, "--models", testenv.RepoRoot(t), "--ort-lib", lib}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("rdre train: exit %d\nstdout: %s\nstderr: %s", code, stdout.String(), stderr.String())
	}
	var res trainResult
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		t.Fatalf("output: %v\n%s", err, stdout.String())
	}
	if res.State != protocol.TrainDone || res.SHA256 == "" || res.Job == "" || res.Thresholds["pixel_normal"] == 0 {
		t.Fatalf("result: %+v", res)
	}
	// Progress went to stderr; the run folder holds the model, its card and previews.
	if !strings.Contains(stderr.String(), "train: student step 4/4") || !strings.Contains(stderr.String(), "train: evaluate") {
		t.Fatalf("progress on stderr:\n%s", stderr.String())
	}
	for _, f := range []string{"model.onnx", "MODEL_CARD.md", "card.json", "train.log", "checkpoint.pt", "previews/student-000002-image.png", "train_images.txt", "heldout_images.txt"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Errorf("run folder: %v", err)
		}
	}
	if card, err := os.ReadFile(filepath.Join(out, "MODEL_CARD.md")); err != nil || !strings.Contains(string(card), "no cross-stage fusion; `anomaly_map` is the student's RD map") {
		t.Errorf("the model card does not state the recipe: %v\n%s", err, card)
	}
	// 6 of the 10 good images trained, 1 calibrated; the evaluation saw the other 3 and the 4 defects.
	if res.Metrics["images"] != float64(7) || res.Metrics["excluded"] != float64(7) {
		t.Fatalf("metrics: %+v", res.Metrics)
	}
	// The report names the images it left out.
	html := filepath.Join(dir, "report.html")
	if code := Main([]string{"report", "--workspace", ws, "--job", res.Job, "--out", html}, &stdout, &stderr); code != 0 {
		t.Fatalf("rdre report: exit %d: %s", code, stderr.String())
	}
	page, err := os.ReadFile(html)
	if err != nil || !strings.Contains(string(page), "Left out of this evaluation: 7 images the model was trained or calibrated on") {
		t.Fatalf("report: %v; no list of the left-out images", err)
	}
	st, err := store.Open(ws)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var model protocol.ModelInfo
	err = st.Models(func(sha string, raw []byte) error {
		if sha == res.SHA256 {
			return json.Unmarshal(raw, &model)
		}
		return nil
	})
	if err != nil || model.Training != res.Run || model.Thresholds["image_normal"] == 0 {
		t.Fatalf("registered model: %v %+v", err, model)
	}
	var trained []string
	for _, ids := range model.TrainedOn {
		trained = ids
	}
	var job struct {
		Info protocol.JobInfo `json:"info"`
	}
	if err := st.Job(res.Job, &job); err != nil {
		t.Fatal(err)
	}
	if len(trained) != 7 || len(job.Info.Excluded) != 7 || job.Info.Total != 7 || job.Info.State != protocol.JobDone {
		t.Fatalf("trained on %v; job %+v", trained, job.Info)
	}
	for _, id := range job.Info.Excluded {
		if !strings.HasPrefix(id, "MT_Free/") {
			t.Fatalf("excluded %s, not a good image", id)
		}
	}

	// Without --workspace: trained and exported, not registered.
	stdout.Reset()
	stderr.Reset()
	code = Main([]string{"train", "--data", data, "--out", filepath.Join(dir, "run2"), "--size", "32", "--steps-student", "2",
		"--steps-seg", "2", "--batch", "2", "--device", "cpu", "--threads", "1", "--random-teacher", "--quiet",
		"--python", testenv.Python, "--models", testenv.RepoRoot(t), "--ort-lib", lib}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("rdre train without workspace: exit %d\n%s\n%s", code, stdout.String(), stderr.String())
	}
	res = trainResult{}
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil || res.Job != "" || res.Workspace != "" || !strings.Contains(strings.Join(res.Warnings, " "), "no --workspace") {
		t.Fatalf("without workspace: %v %+v", err, res)
	}
}
