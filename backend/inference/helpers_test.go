//go:build !js

package inference

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

	"golang.org/x/image/bmp"

	"github.com/rdre-studio/studio/backend/imageio"
	"github.com/rdre-studio/studio/backend/internal/testenv"
)

const pythonBin = "/usr/bin/python3"

func repoRoot(t testing.TB) string { return testenv.RepoRoot(t) }

// initORT initialises ONNX Runtime from <repo>/build/ort or skips the test when `make ort` has not run.
func initORT(t testing.TB) {
	t.Helper()
	lib := testenv.ORTLibrary(t)
	if err := Init(lib); err != nil {
		t.Fatalf("Init(%s): %v", lib, err)
	}
}

func needPython(t testing.TB) {
	t.Helper()
	if _, err := os.Stat(pythonBin); err != nil {
		t.Skipf("%s absent: the PyTorch reference cannot be generated", pythonBin)
	}
}

// fixture is a generated model plus its PyTorch reference outputs.
type fixture struct {
	dir    string
	source string // "testdata/make_golden.py" or "models.golden"
	golden struct {
		Images []struct {
			Path   string  `json:"path"`
			Score  float64 `json:"score"`
			Width  int     `json:"width"`
			Height int     `json:"height"`
		} `json:"images"`
		Size int `json:"size"`
	}
}

func (f *fixture) model() string { return filepath.Join(f.dir, "model.onnx") }

var (
	fixtureMu    sync.Mutex
	fixtures     = map[string]*fixture{}
	fixtureRoot  string
	fixtureImgs  []string
	fixtureError = map[string]error{}
)

// writeTestImages writes images that exercise the pre-processing paths: RGB smaller than the model
// size (upscaling), grey bigger (downscaling, grey expansion), an odd non-square RGBA (alpha dropped),
// a BMP at exactly the model size, and a large one (strong antialiasing).
func writeTestImages(dir string) ([]string, error) {
	r := rand.New(rand.NewSource(7))
	var paths []string
	save := func(name string, img image.Image) error {
		p := filepath.Join(dir, name)
		var buf bytes.Buffer
		var err error
		if strings.HasSuffix(name, ".bmp") {
			err = bmp.Encode(&buf, img)
		} else {
			err = png.Encode(&buf, img)
		}
		if err != nil {
			return err
		}
		paths = append(paths, p)
		return os.WriteFile(p, buf.Bytes(), 0o644)
	}
	// Smooth structure plus noise, so both the filter support and the edges matter.
	val := func(x, y, c int) uint8 {
		v := 128 + 90*math.Sin(float64(x)*0.21+float64(c))*math.Cos(float64(y)*0.17) + float64(r.Intn(60)-30)
		return uint8(min(max(v, 0), 255))
	}
	rgb := image.NewNRGBA(image.Rect(0, 0, 70, 50))
	for y := 0; y < 50; y++ {
		for x := 0; x < 70; x++ {
			rgb.SetNRGBA(x, y, color.NRGBA{val(x, y, 0), val(x, y, 1), val(x, y, 2), 255})
		}
	}
	grey := image.NewGray(image.Rect(0, 0, 130, 90))
	for y := 0; y < 90; y++ {
		for x := 0; x < 130; x++ {
			grey.SetGray(x, y, color.Gray{val(x, y, 0)})
		}
	}
	rgba := image.NewNRGBA(image.Rect(0, 0, 97, 61))
	for y := 0; y < 61; y++ {
		for x := 0; x < 97; x++ {
			rgba.SetNRGBA(x, y, color.NRGBA{val(x, y, 2), val(x, y, 0), val(x, y, 1), uint8(40 + (x*y)%200)})
		}
	}
	exact := image.NewRGBA(image.Rect(0, 0, 64, 64))
	for y := 0; y < 64; y++ {
		for x := 0; x < 64; x++ {
			exact.SetRGBA(x, y, color.RGBA{val(x, y, 1), val(x, y, 2), val(x, y, 0), 255})
		}
	}
	big := image.NewNRGBA(image.Rect(0, 0, 600, 451))
	for y := 0; y < 451; y++ {
		for x := 0; x < 600; x++ {
			big.SetNRGBA(x, y, color.NRGBA{val(x, y, 0), val(x, y, 1), val(x, y, 2), 255})
		}
	}
	for _, it := range []struct {
		name string
		img  image.Image
	}{{"rgb_small.png", rgb}, {"grey.png", grey}, {"rgba.png", rgba}, {"exact.bmp", exact}, {"big.png", big}} {
		if err := save(it.name, it.img); err != nil {
			return nil, fmt.Errorf("write %s: %w", it.name, err)
		}
	}
	return paths, nil
}

// modelsGoldenAvailable reports whether the model engineer's golden script is in the tree.
func modelsGoldenAvailable(root string) bool {
	for _, p := range []string{"models/golden.py", "models/golden/__main__.py"} {
		if _, err := os.Stat(filepath.Join(root, p)); err == nil {
			return true
		}
	}
	return false
}

// getFixture builds (once per test binary) the model and references from one source with one variant.
func getFixture(t testing.TB, source, variant string) *fixture {
	t.Helper()
	needPython(t)
	root := repoRoot(t)
	if source == "models.golden" && !modelsGoldenAvailable(root) {
		t.Skip("models/golden.py is not in the tree yet; parity runs against testdata/make_golden.py only")
	}
	fixtureMu.Lock()
	defer fixtureMu.Unlock()
	key := source + "|" + variant
	if f, ok := fixtures[key]; ok {
		return f
	}
	if err, ok := fixtureError[key]; ok {
		t.Fatal(err)
	}
	fail := func(err error) *fixture {
		fixtureError[key] = err
		t.Fatal(err)
		return nil
	}
	if fixtureRoot == "" {
		d, err := os.MkdirTemp("", "rdre-inference-test-")
		if err != nil {
			return fail(err)
		}
		fixtureRoot = d
		imgDir := filepath.Join(d, "images")
		if err := os.Mkdir(imgDir, 0o755); err != nil {
			return fail(err)
		}
		if fixtureImgs, err = writeTestImages(imgDir); err != nil {
			return fail(err)
		}
	}
	f := &fixture{dir: filepath.Join(fixtureRoot, strings.NewReplacer("|", "_", ".", "_").Replace(key)), source: source}
	var cmd *exec.Cmd
	args := []string{"--out", f.dir, "--size", "64", "--seed", "0"}
	if source == "models.golden" {
		cmd = exec.Command(pythonBin, append(append([]string{"-m", "models.golden"}, args...), fixtureImgs...)...)
	} else {
		if variant != "" {
			args = append(args, "--variant", variant)
		}
		script := filepath.Join(root, "backend", "inference", "testdata", "make_golden.py")
		cmd = exec.Command(pythonBin, append(append([]string{script}, args...), fixtureImgs...)...)
	}
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fail(fmt.Errorf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, out))
	}
	raw, err := os.ReadFile(filepath.Join(f.dir, "golden.json"))
	if err != nil {
		return fail(fmt.Errorf("golden.json from %s: %w", source, err))
	}
	if err := json.Unmarshal(raw, &f.golden); err != nil {
		return fail(fmt.Errorf("golden.json from %s: %w", source, err))
	}
	fixtures[key] = f
	return f
}

func TestMain(m *testing.M) {
	code := m.Run()
	if fixtureRoot != "" {
		os.RemoveAll(fixtureRoot)
	}
	os.Exit(code)
}

func decodeFile(t testing.TB, path string) image.Image {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, _, err := imageio.Decode(f)
	if err != nil {
		t.Fatalf("decode %s: %v", path, err)
	}
	return img
}

var npyShapeRE = regexp.MustCompile(`'shape':\s*\(([^)]*)\)`)

// readNPY reads a little-endian float32 C-order .npy file. backend/mapio (mapio.ReadNPY) is the
// project's reader; this copy keeps the test independent of that package while it is being written.
func readNPY(t testing.TB, path string) ([]float32, []int) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(raw) < 10 || string(raw[:6]) != "\x93NUMPY" {
		t.Fatalf("%s: not an npy file", path)
	}
	var hlen, off int
	if raw[6] == 1 {
		hlen, off = int(binary.LittleEndian.Uint16(raw[8:10])), 10
	} else {
		hlen, off = int(binary.LittleEndian.Uint32(raw[8:12])), 12
	}
	header := string(raw[off : off+hlen])
	if !strings.Contains(header, "'descr': '<f4'") || strings.Contains(header, "'fortran_order': True") {
		t.Fatalf("%s: want little-endian float32 C order, header %s", path, header)
	}
	sm := npyShapeRE.FindStringSubmatch(header)
	if sm == nil {
		t.Fatalf("%s: no shape in header %s", path, header)
	}
	var shape []int
	count := 1
	for _, p := range strings.Split(sm[1], ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		v, err := strconv.Atoi(p)
		if err != nil {
			t.Fatalf("%s: shape %q: %v", path, sm[1], err)
		}
		shape = append(shape, v)
		count *= v
	}
	data := raw[off+hlen:]
	if len(data) != 4*count {
		t.Fatalf("%s: %d data bytes for shape %v", path, len(data), shape)
	}
	out := make([]float32, count)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(data[4*i:]))
	}
	return out, shape
}

// maxAbsDiff returns the largest |a-b| and where it is; lengths must match.
func maxAbsDiff(t testing.TB, a, b []float32) (float64, int) {
	t.Helper()
	if len(a) != len(b) {
		t.Fatalf("length %d vs %d", len(a), len(b))
	}
	worst, at := 0.0, -1
	for i := range a {
		d := math.Abs(float64(a[i]) - float64(b[i]))
		if d > worst || math.IsNaN(d) {
			worst, at = d, i
			if math.IsNaN(d) {
				return math.Inf(1), i
			}
		}
	}
	return worst, at
}
