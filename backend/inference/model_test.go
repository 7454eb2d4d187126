//go:build !js

package inference

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"image"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/rdre-studio/studio/backend/imageio"
	"github.com/rdre-studio/studio/backend/resample"
)

// paritySources are the generators of PyTorch references: this package's own tiny network, and the
// model engineer's `models.golden` (a small RD-RE) once it exists.
var paritySources = []string{"testdata/make_golden.py", "models.golden"}

func TestPreprocess_ParityTorch(t *testing.T) {
	for _, src := range paritySources {
		t.Run(src, func(t *testing.T) {
			f := getFixture(t, src, "")
			initORT(t)
			m, err := Open(f.model(), Options{Device: "cpu", Threads: 1})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			info := m.Info()
			if len(f.golden.Images) != len(fixtureImgs) {
				t.Fatalf("golden has %d images, want %d", len(f.golden.Images), len(fixtureImgs))
			}
			for i, gi := range f.golden.Images {
				img := decodeFile(t, gi.Path)
				pix, w, h := imageio.RGB8(img)
				if w != gi.Width || h != gi.Height {
					t.Fatalf("%s: Go decodes %dx%d, PIL %dx%d", gi.Path, w, h, gi.Width, gi.Height)
				}
				got, err := resample.Preprocess(pix, w, h, info.InputSize, info.Mean, info.Std)
				if err != nil {
					t.Fatal(err)
				}
				want, shape := readNPY(t, filepath.Join(f.dir, fmt.Sprintf("input_%d.npy", i)))
				if fmt.Sprint(shape) != fmt.Sprint([]int{1, 3, info.InputSize, info.InputSize}) {
					t.Fatalf("input_%d.npy shape %v", i, shape)
				}
				d, at := maxAbsDiff(t, got, want)
				t.Logf("%s (%dx%d): max |Go - torch| input = %.3g", filepath.Base(gi.Path), w, h, d)
				if d > 1e-5 {
					t.Errorf("%s: input tensor differs from torch by %.3g at %d (go %v, torch %v), want <= 1e-5",
						gi.Path, d, at, got[at], want[at])
				}
			}
		})
	}
}

func TestModel_Predict_ParityTorch(t *testing.T) {
	for _, src := range paritySources {
		t.Run(src, func(t *testing.T) {
			f := getFixture(t, src, "")
			initORT(t)
			m, err := Open(f.model(), Options{Device: "cpu", Batch: 2})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			imgs := make([]image.Image, len(f.golden.Images))
			for i, gi := range f.golden.Images {
				imgs[i] = decodeFile(t, gi.Path)
			}
			preds, err := m.Predict(imgs)
			if err != nil {
				t.Fatal(err)
			}
			if len(preds) != len(imgs) {
				t.Fatalf("%d predictions for %d images", len(preds), len(imgs))
			}
			for i, gi := range f.golden.Images {
				p := preds[i]
				rdMap, err := p.RDMap()
				if err != nil {
					t.Fatal(err)
				}
				if p.W != gi.Width || p.H != gi.Height || len(p.Map) != p.W*p.H || len(rdMap) != p.W*p.H {
					t.Fatalf("%s: prediction %dx%d (map %d, rd %d values), want %dx%d",
						gi.Path, p.W, p.H, len(p.Map), len(rdMap), gi.Width, gi.Height)
				}
				wantMap, shape := readNPY(t, filepath.Join(f.dir, fmt.Sprintf("map_%d.npy", i)))
				if fmt.Sprint(shape) != fmt.Sprint([]int{gi.Height, gi.Width}) {
					t.Fatalf("map_%d.npy shape %v, want [%d %d]", i, shape, gi.Height, gi.Width)
				}
				dm, _ := maxAbsDiff(t, p.Map, wantMap)
				wantRD, _ := readNPY(t, filepath.Join(f.dir, fmt.Sprintf("rdmap_%d.npy", i)))
				var dr float64
				S := m.Info().InputSize
				switch len(wantRD) {
				case len(rdMap):
					dr, _ = maxAbsDiff(t, rdMap, wantRD)
				case S * S:
					// The golden rd map may be kept at the model's S x S: compare the raw graph output
					// for the golden input tensor.
					in, _ := readNPY(t, filepath.Join(f.dir, fmt.Sprintf("input_%d.npy", i)))
					_, rd, _, err := m.RunTensor(in, 1)
					if err != nil {
						t.Fatal(err)
					}
					dr, _ = maxAbsDiff(t, rd, wantRD)
				default:
					t.Fatalf("rdmap_%d.npy has %d values, want %dx%d or %dx%d", i, len(wantRD), p.W, p.H, S, S)
				}
				ds := math.Abs(p.Score - gi.Score)
				t.Logf("%s: max |Go - torch| map %.3g, rd_map %.3g, score %.3g", filepath.Base(gi.Path), dm, dr, ds)
				if dm > 1e-3 {
					t.Errorf("%s: anomaly map differs from torch by %.3g, want <= 1e-3", gi.Path, dm)
				}
				if dr > 1e-3 {
					t.Errorf("%s: rd map differs from torch by %.3g, want <= 1e-3", gi.Path, dr)
				}
				if ds > 1e-3 {
					t.Errorf("%s: score %v, torch %v", gi.Path, p.Score, gi.Score)
				}
			}
		})
	}
}

func TestModel_Info_Metadata(t *testing.T) {
	f := getFixture(t, "testdata/make_golden.py", "")
	initORT(t)
	m, err := Open(f.model(), Options{Device: "cpu", Threads: 2, Batch: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	info := m.Info()
	raw, err := os.ReadFile(f.model())
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(raw)
	if info.SHA256 != hex.EncodeToString(sum[:]) || info.Size != int64(len(raw)) {
		t.Errorf("sha256/size %s/%d, want %x/%d", info.SHA256, info.Size, sum, len(raw))
	}
	if info.InputSize != 64 || info.FormatVersion != "1" || info.Category != "testcat" || info.Teacher != "tiny-test" || info.Score != "max" {
		t.Errorf("metadata parsed as %+v", info)
	}
	if info.Mean != [3]float32{0.485, 0.456, 0.406} || info.Std != [3]float32{0.229, 0.224, 0.225} {
		t.Errorf("mean/std %v/%v", info.Mean, info.Std)
	}
	if info.Thresholds["pixel"] != 0.5 || info.Thresholds["image"] != 0.6 {
		t.Errorf("thresholds %v", info.Thresholds)
	}
	if info.Device != "cpu" || info.Threads != 2 || info.Batch != 3 || !strings.HasPrefix(info.ORTVersion, "1.30") {
		t.Errorf("device %q threads %d batch %d ort %q", info.Device, info.Threads, info.Batch, info.ORTVersion)
	}
	if !filepath.IsAbs(info.Path) {
		t.Errorf("path %q is not absolute", info.Path)
	}
	// Info hands out copies: a caller cannot change the model's metadata.
	info.Metadata["rdre.category"] = "changed"
	if m.Info().Category != "testcat" || m.Info().Metadata["rdre.category"] != "testcat" {
		t.Error("Info shares its metadata map with the model")
	}
}

// A batch of several images must give what single-image runs give: batching is an implementation
// detail, and a batch-dependent result would mean images leak into each other.
func TestModel_Predict_BatchMatchesSingle(t *testing.T) {
	f := getFixture(t, "testdata/make_golden.py", "")
	initORT(t)
	one, err := Open(f.model(), Options{Device: "cpu", Batch: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer one.Close()
	many, err := Open(f.model(), Options{Device: "cpu", Batch: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer many.Close()
	var imgs []image.Image
	for _, p := range fixtureImgs {
		imgs = append(imgs, decodeFile(t, p))
	}
	a, err := one.Predict(imgs)
	if err != nil {
		t.Fatal(err)
	}
	b, err := many.Predict(imgs)
	if err != nil {
		t.Fatal(err)
	}
	for i := range a {
		d, _ := maxAbsDiff(t, a[i].Map, b[i].Map)
		if d > 1e-5 || math.Abs(a[i].Score-b[i].Score) > 1e-6 {
			t.Errorf("image %d: batch 1 vs batch 4 map differs by %.3g, scores %v vs %v", i, d, a[i].Score, b[i].Score)
		}
	}
	// Different images must give different maps, or the comparison above proves nothing.
	if d, _ := maxAbsDiff(t, a[0].Map[:64], a[1].Map[:64]); d == 0 {
		t.Error("two different images gave identical map rows")
	}
}

func TestModel_Predict_Concurrent(t *testing.T) {
	f := getFixture(t, "testdata/make_golden.py", "")
	initORT(t)
	m, err := Open(f.model(), Options{Device: "cpu", Threads: 1, Batch: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	var imgs []image.Image
	for _, p := range fixtureImgs {
		imgs = append(imgs, decodeFile(t, p))
	}
	want, err := m.Predict(imgs)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			// Each goroutine predicts a rotated order so batches differ between goroutines.
			order := append(append([]image.Image{}, imgs[g%len(imgs):]...), imgs[:g%len(imgs)]...)
			got, err := m.Predict(order)
			if err != nil {
				errs <- err
				return
			}
			for i := range got {
				w := want[(i+g)%len(imgs)]
				if got[i].W != w.W || got[i].Score != w.Score {
					errs <- fmt.Errorf("goroutine %d image %d: score %v, want %v", g, i, got[i].Score, w.Score)
					return
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestModel_Predict_AfterClose(t *testing.T) {
	f := getFixture(t, "testdata/make_golden.py", "")
	initORT(t)
	m, err := Open(f.model(), Options{Device: "cpu"})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := m.Predict([]image.Image{image.NewGray(image.Rect(0, 0, 8, 8))}); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Fatalf("Predict after Close: %v, want a 'closed' error", err)
	}
}

func TestModel_Predict_BadInput(t *testing.T) {
	f := getFixture(t, "testdata/make_golden.py", "")
	initORT(t)
	m, err := Open(f.model(), Options{Device: "cpu"})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if _, err := m.Predict([]image.Image{nil}); err == nil || !strings.Contains(err.Error(), "nil") {
		t.Errorf("nil image: %v", err)
	}
	if _, err := m.Predict([]image.Image{image.NewGray(image.Rect(0, 0, 0, 0))}); err == nil {
		t.Error("empty image: no error")
	}
	if _, _, _, err := m.RunTensor(make([]float32, 10), 1); err == nil {
		t.Error("RunTensor with a short input: no error")
	}
	if got, err := m.Predict(nil); err != nil || len(got) != 0 {
		t.Errorf("Predict(nil) = %v, %v; want empty, nil", got, err)
	}
}

func TestOpen_WrongModel_Errors(t *testing.T) {
	initORT(t)
	dir := t.TempDir()
	text := filepath.Join(dir, "notes.onnx")
	if err := os.WriteFile(text, []byte("this is not a protobuf, just text\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty.onnx")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		path    func(t *testing.T) string
		is      error
		mention []string
	}{
		{"wrong input name", func(t *testing.T) string { return getFixture(t, "testdata/make_golden.py", "wrong-input").model() },
			ErrContract, []string{`input "image" is missing`, `"pixels"`, "expected input"}},
		{"wrong shapes", func(t *testing.T) string { return getFixture(t, "testdata/make_golden.py", "wrong-shape").model() },
			ErrContract, []string{`input "image" has shape [-1 1 64 64], want [N 3 64 64]`, `output "anomaly_map" has shape [-1 1 32 32], want [N 1 64 64]`}},
		{"no metadata", func(t *testing.T) string { return getFixture(t, "testdata/make_golden.py", "no-metadata").model() },
			ErrContract, []string{"missing rdre.format_version, rdre.input_size, rdre.mean, rdre.std"}},
		{"symbolic output dims that are S/2 at run time", func(t *testing.T) string { return getFixture(t, "testdata/make_golden.py", "symbolic-bad").model() },
			ErrContract, []string{"probe run", "output anomaly_map has shape [1 1 32 32], want [1 1 64 64]"}},
		{"text file", func(*testing.T) string { return text }, ErrNotONNX, []string{"notes.onnx", "not a loadable ONNX model"}},
		{"empty file", func(*testing.T) string { return empty }, ErrNotONNX, []string{"empty"}},
		{"missing file", func(*testing.T) string { return filepath.Join(dir, "nope.onnx") }, os.ErrNotExist, []string{"nope.onnx"}},
		{"directory", func(*testing.T) string { return dir }, nil, []string{"directory"}},
		// A device never ends: reading it to hash it would hang serve and infer.
		{"device that never ends", func(*testing.T) string { return "/dev/zero" }, ErrNotONNX, []string{"/dev/zero", "not a regular file"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, err := Open(c.path(t), Options{Device: "cpu"})
			if err == nil {
				m.Close()
				t.Fatal("Open accepted the file")
			}
			t.Logf("error: %v", err)
			if c.is != nil && !errors.Is(err, c.is) {
				t.Errorf("error does not wrap %v", c.is)
			}
			for _, s := range c.mention {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error does not mention %q", s)
				}
			}
		})
	}
}

// TestModel_Predict_NaNOutput: a model whose map is NaN is refused at its first run with an error that
// says so, instead of NaN scores reaching the metrics and the heatmaps.
func TestModel_Predict_NaNOutput(t *testing.T) {
	initORT(t)
	m, err := Open(getFixture(t, "testdata/make_golden.py", "nan").model(), Options{Device: "cpu"})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	_, err = m.Predict([]image.Image{image.NewRGBA(image.Rect(0, 0, 8, 8))})
	if !errors.Is(err, ErrNonFinite) || !strings.Contains(err.Error(), "anomaly_map") || !strings.Contains(err.Error(), "NaN") {
		t.Fatalf("Predict: %v, want an error naming the NaN output", err)
	}
}

func TestOpen_BadOptions_Errors(t *testing.T) {
	f := getFixture(t, "testdata/make_golden.py", "")
	initORT(t)
	for _, o := range []Options{{Device: "tpu"}, {Threads: -1}, {Batch: -2}} {
		if m, err := Open(f.model(), o); err == nil {
			m.Close()
			t.Errorf("Open with %+v: no error", o)
		}
	}
}

// No GPU (or no CUDA provider library) on the test machines: "cuda" must fail naming what is missing,
// and "auto" must land on CPU and say why. On a machine where CUDA does work, "cuda" succeeds instead.
func TestOpen_CUDA_MissingFallsBack(t *testing.T) {
	f := getFixture(t, "testdata/make_golden.py", "")
	initORT(t)
	m, err := Open(f.model(), Options{Device: "cuda"})
	if err == nil {
		defer m.Close()
		if m.Info().Device != "cuda" {
			t.Fatalf("cuda accepted but device is %q", m.Info().Device)
		}
		t.Skip("CUDA works on this machine; the missing-CUDA path cannot be exercised")
	}
	t.Logf("cuda error: %v", err)
	if !errors.Is(err, ErrCUDAUnavailable) {
		t.Errorf("error does not wrap ErrCUDAUnavailable: %v", err)
	}
	// What is missing is named: a provider or CUDA library file, or the GPU/driver itself.
	if !strings.Contains(err.Error(), ".so") && !strings.Contains(err.Error(), "no usable NVIDIA GPU") {
		t.Errorf("error does not name the missing piece: %v", err)
	}
	a, err := Open(f.model(), Options{Device: "auto"})
	if err != nil {
		t.Fatalf("auto: %v", err)
	}
	defer a.Close()
	info := a.Info()
	if info.Device != "cpu" || !strings.Contains(info.DeviceReason, "CUDA") {
		t.Errorf("auto landed on %q because %q", info.Device, info.DeviceReason)
	}
	if _, err := a.Predict([]image.Image{decodeFile(t, fixtureImgs[0])}); err != nil {
		t.Errorf("predict after fallback: %v", err)
	}
}

func TestInit_SecondPath_Errors(t *testing.T) {
	initORT(t)
	lib, _ := Initialized()
	if err := Init(lib); err != nil {
		t.Errorf("Init with the same path again: %v", err)
	}
	other := filepath.Join(t.TempDir(), LibraryName)
	if err := os.WriteFile(other, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Init(other); err == nil || !strings.Contains(err.Error(), "already initialised") {
		t.Errorf("Init with another path: %v", err)
	}
	if err := Init(""); err == nil {
		t.Error("Init(\"\"): no error")
	}
}

func TestLibraryPath_Sources(t *testing.T) {
	dir := t.TempDir()
	lib := filepath.Join(dir, LibraryName)
	if err := os.WriteFile(lib, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv(EnvLibrary, "")
	if got, err := LibraryPath(lib); err != nil || got != lib {
		t.Errorf("flag: %q, %v", got, err)
	}
	if _, err := LibraryPath(filepath.Join(dir, "missing.so")); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("missing flag path: %v", err)
	}
	if _, err := LibraryPath(dir); err == nil || !strings.Contains(err.Error(), "directory") {
		t.Errorf("directory flag path: %v", err)
	}
	// A relative value is made absolute against the working directory.
	wd, _ := os.Getwd()
	rel, err := filepath.Rel(wd, lib)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(EnvLibrary, rel)
	if got, err := LibraryPath(""); err != nil || got != lib {
		t.Errorf("env (relative %s): %q, %v", rel, got, err)
	}
	// Neither flag nor env: the test binary lives in a temp folder without build/ort next to it.
	t.Setenv(EnvLibrary, "")
	if got, err := LibraryPath(""); err == nil {
		t.Errorf("no flag, no env: found %q", got)
	} else if !strings.Contains(err.Error(), EnvLibrary) || !strings.Contains(err.Error(), "make ort") {
		t.Errorf("no flag, no env: error %v does not say how to fix it", err)
	}
}

// benchModel opens the golden model (models.golden when it is in the tree, else the tiny test network)
// on CPU with the given batch size.
func benchModel(b *testing.B, batch int) (*Model, []image.Image) {
	src := "testdata/make_golden.py"
	if modelsGoldenAvailable(repoRoot(b)) {
		src = "models.golden"
	}
	f := getFixture(b, src, "")
	initORT(b)
	m, err := Open(f.model(), Options{Device: "cpu", Batch: batch})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { m.Close() })
	b.Logf("model from %s, input %d", src, m.Info().InputSize)
	// The same 70x50 image throughout, so batch sizes compare per image.
	img := decodeFile(b, fixtureImgs[0])
	imgs := make([]image.Image, batch)
	for i := range imgs {
		imgs[i] = img
	}
	return m, imgs
}

func benchmarkPredict(b *testing.B, batch int) {
	m, imgs := benchModel(b, batch)
	b.ResetTimer()
	for b.Loop() {
		if _, err := m.Predict(imgs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "images/s")
}

func BenchmarkModel_Predict_Batch1(b *testing.B) { benchmarkPredict(b, 1) }
func BenchmarkModel_Predict_Batch8(b *testing.B) { benchmarkPredict(b, 8) }

// PyTorch's exporter can leave the output H x W symbolic; such a model is accepted after a probe run
// and must still give PyTorch's maps.
func TestOpen_SymbolicOutputs_ProbeAccepts(t *testing.T) {
	f := getFixture(t, "testdata/make_golden.py", "symbolic")
	initORT(t)
	m, err := Open(f.model(), Options{Device: "cpu"})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	for i, gi := range f.golden.Images {
		p, err := m.Predict([]image.Image{decodeFile(t, gi.Path)})
		if err != nil {
			t.Fatal(err)
		}
		want, _ := readNPY(t, filepath.Join(f.dir, fmt.Sprintf("map_%d.npy", i)))
		if d, _ := maxAbsDiff(t, p[0].Map, want); d > 1e-3 {
			t.Errorf("%s: map differs from torch by %.3g", gi.Path, d)
		}
	}
}
