//go:build !js

package report_test

import (
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math/rand"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rdre-studio/studio/backend/dataset"
	"github.com/rdre-studio/studio/backend/metrics"
	"github.com/rdre-studio/studio/backend/store"
	sm "github.com/rdre-studio/studio/shared/metrics"
	"github.com/rdre-studio/studio/shared/protocol"
)

// fixture is a real workspace file with one real dataset folder and finished jobs written through the
// store API the job runner uses: maps, record, exact result.
type fixture struct {
	dir   string
	root  string
	st    *store.Store
	ds    *dataset.Dataset
	model protocol.ModelInfo
}

const fixW, fixH = 48, 40

// newFixture writes an MVTec-layout category "widget" with 5 good and 3+3 defective test images
// (scratch, dent), their masks, and opens a workspace next to it.
func newFixture(t testing.TB) *fixture {
	t.Helper()
	dir := t.TempDir()
	root := filepath.Join(dir, "widget")
	r := rand.New(rand.NewSource(7))
	write := func(rel string, img image.Image) {
		p := filepath.Join(root, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := png.Encode(f, img); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
	picture := func() image.Image {
		img := image.NewRGBA(image.Rect(0, 0, fixW, fixH))
		for y := 0; y < fixH; y++ {
			for x := 0; x < fixW; x++ {
				v := uint8(100 + 40*((x/6+y/6)%2) + r.Intn(20))
				img.SetRGBA(x, y, color.RGBA{v, v, uint8(int(v) * 9 / 10), 255})
			}
		}
		return img
	}
	write("train/good/000.png", picture())
	for i := 0; i < 5; i++ {
		write(fmt.Sprintf("test/good/%03d.png", i), picture())
	}
	for _, kind := range []string{"scratch", "dent"} {
		for i := 0; i < 3; i++ {
			write(fmt.Sprintf("test/%s/%03d.png", kind, i), picture())
			m := image.NewGray(image.Rect(0, 0, fixW, fixH))
			// one or two rectangular defects per image, at different places
			x0, y0 := 4+9*i, 5+6*i
			for y := y0; y < y0+6+i; y++ {
				for x := x0; x < x0+8; x++ {
					m.SetGray(x, y, color.Gray{255})
				}
			}
			if kind == "dent" && i == 1 {
				for y := 30; y < 34; y++ {
					for x := 36; x < 42; x++ {
						m.SetGray(x, y, color.Gray{255})
					}
				}
			}
			write(fmt.Sprintf("ground_truth/%s/%03d_mask.png", kind, i), m)
		}
	}
	ds, err := dataset.Open(root)
	if err != nil {
		t.Fatalf("open dataset: %v", err)
	}
	t.Cleanup(func() { ds.Close() })
	st, err := store.Open(filepath.Join(dir, "ws.db"))
	if err != nil {
		t.Fatalf("open workspace: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.PutDataset(ds.Info()); err != nil {
		t.Fatal(err)
	}
	f := &fixture{dir: dir, root: root, st: st, ds: ds}
	f.model = protocol.ModelInfo{
		SHA256: strings.Repeat("ab", 32), Path: "/models/widget.onnx", Name: "widget.onnx (widget, mobilenet_v2)", InputSize: 256,
		Teacher: "mobilenet_v2", Category: "widget", Device: "cpu",
		Metadata: map[string]string{"rdre.params": "2345678", "rdre.gflops": "1.75", "rdre.category": "widget", "rdre.teacher": "mobilenet_v2"},
	}
	if err := st.PutModel(f.model.SHA256, f.model); err != nil {
		t.Fatal(err)
	}
	return f
}

func metricKey(im protocol.ImageInfo) string {
	base := path.Base(im.ID)
	return im.Kind + "/" + strings.TrimSuffix(base, path.Ext(base))
}

// testImages returns the test split in index order.
func (f *fixture) testImages() []protocol.ImageInfo {
	var out []protocol.ImageInfo
	for _, im := range f.ds.Images() {
		if im.Split == protocol.SplitTest {
			out = append(out, im)
		}
	}
	return out
}

// addJob stores a finished job whose maps follow the masks with the given noise amplitude. Map values
// are multiples of 1/1024 below 2, exact in float16, so the maps read back from the workspace are the
// maps the result was computed from.
func (f *fixture) addJob(t testing.TB, id string, seed int64, noise float64, masks string) {
	t.Helper()
	r := rand.New(rand.NewSource(seed))
	var imgs []metrics.Image
	var scores []protocol.ImageScore
	for _, im := range f.testImages() {
		gt, _, _, has, err := f.ds.GroundTruth(im.ID)
		if err != nil {
			t.Fatal(err)
		}
		m := make([]float32, fixW*fixH)
		for i := range m {
			v := 0.15 + noise*r.Float64()
			if has && gt[i] {
				v += 0.35 + 0.3*r.Float64()
			}
			m[i] = float32(int(v*1024)) / 1024
		}
		if err := f.st.PutMap(id, im.ID, fixW, fixH, m); err != nil {
			t.Fatal(err)
		}
		label := 0
		if im.Kind != protocol.KindGood {
			label = 1
		}
		mx := 0.0
		for _, v := range m {
			mx = max(mx, float64(v))
		}
		if !has {
			gt = nil
		}
		score := mx
		imgs = append(imgs, metrics.Image{Key: metricKey(im), Kind: im.Kind, Label: label, Score: &score, W: fixW, H: fixH, Map: m, Mask: gt})
		scores = append(scores, protocol.ImageScore{Image: im.ID, Key: metricKey(im), Kind: im.Kind, Label: label, Score: score})
	}
	res, err := metrics.Compute(imgs, metrics.Options{Detail: true})
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(res)
	if err := f.st.PutResult(id, raw); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	info := protocol.JobInfo{
		ID: id, Dataset: f.ds.Info().ID, Model: f.model.SHA256, ModelName: f.model.Name, Split: protocol.SplitTest,
		Masks: masks, State: protocol.JobDone, Done: len(scores), Total: len(scores), Device: "cpu",
		Created: now.Format(time.RFC3339), Finished: now.Add(time.Minute).Format(time.RFC3339),
	}
	rec := struct {
		Info   protocol.JobInfo      `json:"info"`
		Scores []protocol.ImageScore `json:"scores"`
	}{info, scores}
	if err := f.st.PutJob(id, rec); err != nil {
		t.Fatal(err)
	}
}

// recompute evaluates a job again from the maps stored in the workspace and the dataset's masks: the
// independent reference every format is checked against.
func (f *fixture) recompute(t testing.TB, id string) *sm.Result {
	t.Helper()
	var imgs []metrics.Image
	for _, im := range f.testImages() {
		m, w, h, err := f.st.Map(id, im.ID)
		if err != nil {
			t.Fatal(err)
		}
		gt, _, _, has, err := f.ds.GroundTruth(im.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !has {
			gt = nil
		}
		label := 0
		if im.Kind != protocol.KindGood {
			label = 1
		}
		imgs = append(imgs, metrics.Image{Key: metricKey(im), Kind: im.Kind, Label: label, W: w, H: h, Map: m, Mask: gt})
	}
	res, err := metrics.Compute(imgs, metrics.Options{Detail: true})
	if err != nil {
		t.Fatal(err)
	}
	return res
}
