//go:build !js

package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/input"
	cdruntime "github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/gorilla/websocket"

	"github.com/rdre-studio/studio/backend/internal/testenv"
	"github.com/rdre-studio/studio/shared/mask"
	"github.com/rdre-studio/studio/shared/protocol"
)

func repoRoot(t testing.TB) string { return testenv.RepoRoot(t) }

var (
	tmpRoot   string
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "rdre-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: temp dir:", err)
		os.Exit(1)
	}
	tmpRoot = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// chromiumPath finds Debian's chromium; the tests skip only when there is none.
func chromiumPath(t testing.TB) string { return testenv.Chromium(t) }

// rdreBinary builds the real binary once per test run. The UI's wasm must have been built by make
// build: a test binary without it could only show a loader that never finishes.
func rdreBinary(t testing.TB) string {
	t.Helper()
	root := repoRoot(t)
	if _, err := os.Stat(filepath.Join(root, "backend/webui/dist/app.wasm.gz")); err != nil {
		t.Fatalf("app.wasm not built (backend/webui/dist/app.wasm.gz missing): run make build before the browser tests")
	}
	buildOnce.Do(func() {
		binPath = filepath.Join(tmpRoot, "rdre")
		cmd := exec.Command("go", "build", "-o", binPath, "./backend/cmd/rdre")
		cmd.Dir = root
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build rdre: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// server is a running rdre serve process.
type server struct {
	URL       string
	Workspace string
	cmd       *exec.Cmd
	stderr    *strings.Builder
}

// startServer runs rdre serve on a free loopback port and returns once it printed its URL.
func startServer(t testing.TB, data ...string) *server {
	t.Helper()
	return startServerArgs(t, data, nil)
}

// startServerArgs is startServer with extra serve flags (models); the server finds ONNX Runtime in
// build/ort, where make build provisions it.
func startServerArgs(t testing.TB, data, extra []string) *server {
	t.Helper()
	bin := rdreBinary(t)
	ws := filepath.Join(t.TempDir(), "workspace.db")
	args := []string{"serve", "--addr", "127.0.0.1:0", "--workspace", ws}
	for _, d := range data {
		args = append(args, "--data", d)
	}
	args = append(args, extra...)
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "RDRE_ORT_LIB="+filepath.Join(repoRoot(t), "build/ort/libonnxruntime.so.1"))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &syncWriter{w: &stderr}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start rdre serve: %v", err)
	}
	s := &server{Workspace: ws, cmd: cmd, stderr: &stderr}
	t.Cleanup(func() { s.Stop(t) })
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		if sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		io.Copy(io.Discard, stdout)
	}()
	select {
	case line, ok := <-lines:
		const prefix = "RD-RE Studio listening on "
		if !ok || !strings.HasPrefix(line, prefix) {
			t.Fatalf("rdre serve: first stdout line %q, want %q...; stderr:\n%s", line, prefix, stderr.String())
		}
		s.URL = strings.TrimSuffix(strings.TrimPrefix(line, prefix), "/")
	case <-time.After(60 * time.Second):
		t.Fatalf("rdre serve printed no URL within 60s; stderr:\n%s", stderr.String())
	}
	return s
}

// Stop ends the server (SIGINT, then kill) and waits for it, so its workspace file is released.
func (s *server) Stop(t testing.TB) {
	if s.cmd == nil || s.cmd.Process == nil || s.cmd.ProcessState != nil {
		return
	}
	_ = s.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-done
	}
}

type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(p)
}

// newBrowser starts headless Chromium with a fresh profile and returns a tab's context.
func newBrowser(t testing.TB) context.Context {
	t.Helper()
	opts := testenv.ChromiumOptions(t, 1400, 950)
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelB := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelB(); cancelA() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	// The page's uncaught exceptions and console errors (a Go panic in the wasm prints there) go to the
	// test log, so that a UI that stops updating says why. Logging stops when the test ends.
	var mu sync.Mutex
	ended := false
	t.Cleanup(func() { mu.Lock(); ended = true; mu.Unlock() })
	logf := func(format string, a ...any) {
		mu.Lock()
		defer mu.Unlock()
		if !ended {
			t.Logf(format, a...)
		}
	}
	if err := chromedp.Listen(ctx, func(ev any) {
		switch ev := ev.(type) {
		case *cdruntime.EventExceptionThrown:
			d := ev.ExceptionDetails
			msg := d.Text
			if d.Exception != nil {
				msg += " " + d.Exception.Description
			}
			logf("browser exception: %s", msg)
		case *cdruntime.EventConsoleAPICalled:
			var parts []string
			for _, a := range ev.Args {
				parts = append(parts, strings.Trim(string(a.Value), `"`))
			}
			// Go's wasm runtime prints a panic through console.log.
			if msg := strings.Join(parts, " "); ev.Type == cdruntime.ConsoleAPICalledTypeError || strings.Contains(msg, "panic") {
				logf("browser console %s: %s", ev.Type, msg)
			}
		}
	}); err != nil {
		t.Fatalf("listen to the page: %v", err)
	}
	return ctx
}

// newTab opens another tab in the browser of ctx.
func newTab(t testing.TB, ctx context.Context) context.Context {
	t.Helper()
	tab, cancel := chromedp.NewContext(ctx)
	t.Cleanup(cancel)
	if err := chromedp.Do(tab); err != nil {
		t.Fatalf("open tab: %v", err)
	}
	return tab
}

func run(t testing.TB, ctx context.Context, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(c, steps...); err != nil {
		t.Fatalf("browser: %v", err)
	}
}

func eval[T any](t testing.TB, ctx context.Context, js string) T {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(c, chromedp.Evaluate[T](js))
	if err != nil {
		t.Fatalf("evaluate %s: %v", js, err)
	}
	return v
}

// waitJS polls a JavaScript condition until it is true.
func waitJS(t testing.TB, ctx context.Context, timeout time.Duration, what, js string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		c, cancel := context.WithTimeout(ctx, 10*time.Second)
		ok, err := chromedp.Run(c, chromedp.Evaluate[bool]("!!("+js+")"))
		cancel()
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			errText := eval[string](t, ctx, `(document.querySelector('[data-testid=error]')||{}).textContent||''`)
			t.Fatalf("timed out after %v waiting for %s (%s); last error %v; page error bar %q", timeout, what, js, err, errText)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func testid(id string) string { return fmt.Sprintf(`document.querySelector('[data-testid=%q]')`, id) }

func clickTestID(t testing.TB, ctx context.Context, id string) {
	t.Helper()
	run(t, ctx, chromedp.Click(chromedp.CSS(fmt.Sprintf("[data-testid=%q]", id)), chromedp.NodeVisible))
}

// setInput sets a form control's value and fires the events a user's edit fires. For a select it
// first waits for the option to exist.
func setInput(t testing.TB, ctx context.Context, id, value string) {
	t.Helper()
	waitJS(t, ctx, 10*time.Second, fmt.Sprintf("control %s ready for %q", id, value), fmt.Sprintf(
		`(() => { const e = %s; return e && (e.tagName !== 'SELECT' || [...e.options].some(o => o.value === %q)); })()`, testid(id), value))
	eval[chromedp.Void](t, ctx, fmt.Sprintf(`(() => { const e = %s; e.value = %q;
		e.dispatchEvent(new Event('input', {bubbles: true})); e.dispatchEvent(new Event('change', {bubbles: true})); })()`, testid(id), value))
}

// screenshot saves a screenshot into the test's temp dir and, with RDRE_SCREENSHOTS set, into
// docs/screenshots for the project's documentation.
func screenshot(t testing.TB, ctx context.Context, name string) {
	t.Helper()
	buf := screenshotLocal(t, ctx, name)
	if os.Getenv("RDRE_SCREENSHOTS") != "" {
		dir := filepath.Join(repoRoot(t), "docs", "screenshots")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), buf, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// screenshotLocal saves a screenshot only into the test's temp dir: pictures of outside datasets
// (whose licences do not allow copying them into the project) never go to docs/.
func screenshotLocal(t testing.TB, ctx context.Context, name string) []byte {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	buf, err := chromedp.Run(c, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, buf, 0o644); err != nil {
		t.Fatal(err)
	}
	return buf
}

// canvasToClient maps an image pixel position to the page position where the editor shows it.
func canvasToClient(t testing.TB, ctx context.Context, x, y float64) (float64, float64) {
	t.Helper()
	r := eval[struct{ Left, Top, Width, Height, W, H float64 }](t, ctx, `(() => { const c = `+testid("editor-canvas")+`;
		const r = c.getBoundingClientRect(); return {Left: r.left, Top: r.top, Width: r.width, Height: r.height, W: c.width, H: c.height}; })()`)
	return r.Left + (x+0.5)*r.Width/r.W, r.Top + (y+0.5)*r.Height/r.H
}

func withButtons(b int64) chromedp.MouseOption {
	return func(p *input.DispatchMouseEventParams) { p.Buttons = b }
}

// drag presses the left button at the first point, moves through the others and releases at the last,
// as a real mouse does (pointer events with coalescing and capture).
func drag(t testing.TB, ctx context.Context, pts [][2]float64) {
	t.Helper()
	steps := make([]chromedp.Action[chromedp.Void], 0, len(pts)+2)
	x, y := canvasToClient(t, ctx, pts[0][0], pts[0][1])
	steps = append(steps, chromedp.MouseEvent(chromedp.MouseMoved, x, y))
	steps = append(steps, chromedp.MouseEvent(chromedp.MousePressed, x, y, chromedp.ButtonLeft, chromedp.ClickCount(1), withButtons(1)))
	for _, p := range pts[1:] {
		x, y = canvasToClient(t, ctx, p[0], p[1])
		steps = append(steps, chromedp.MouseEvent(chromedp.MouseMoved, x, y, chromedp.ButtonLeft, withButtons(1)))
	}
	steps = append(steps, chromedp.MouseEvent(chromedp.MouseReleased, x, y, chromedp.ButtonLeft, chromedp.ClickCount(1)))
	run(t, ctx, steps...)
}

// wavePath is the stroke of the latency measurements: 241 points of a wave across a 1024x1024 image.
func wavePath() [][2]float64 {
	pts := make([][2]float64, 0, 241)
	for i := 0; i <= 240; i++ {
		f := float64(i) / 240
		pts = append(pts, [2]float64{40 + 940*f, 300 + 150*math.Sin(f*12)})
	}
	return pts
}

func line(x0, y0, x1, y1 float64, n int) [][2]float64 {
	pts := make([][2]float64, n+1)
	for i := range pts {
		f := float64(i) / float64(n)
		pts[i] = [2]float64{x0 + (x1-x0)*f, y0 + (y1-y0)*f}
	}
	return pts
}

// clickAt clicks the image pixel (x, y).
func clickAt(t testing.TB, ctx context.Context, x, y float64, clicks int) {
	t.Helper()
	cx, cy := canvasToClient(t, ctx, x, y)
	run(t, ctx, chromedp.MouseClickXY(cx, cy, chromedp.ClickCount(clicks)))
}

// savedVersion returns the editor's stored version once save-status reads "saved".
func savedVersion(t testing.TB, ctx context.Context) int {
	t.Helper()
	waitJS(t, ctx, 20*time.Second, "save-status saved", testid("save-status")+`.textContent === 'saved'`)
	return eval[int](t, ctx, `+`+testid("save-status")+`.dataset.version`)
}

// waitSavedAfter waits until the editor stored a version newer than v.
func waitSavedAfter(t testing.TB, ctx context.Context, v int) int {
	t.Helper()
	waitJS(t, ctx, 20*time.Second, fmt.Sprintf("a save after version %d", v),
		testid("save-status")+`.textContent === 'saved' && +`+testid("save-status")+fmt.Sprintf(`.dataset.version > %d`, v))
	return eval[int](t, ctx, `+`+testid("save-status")+`.dataset.version`)
}

// canvasAlpha returns the alpha of the editor canvas at image pixel (x, y): non-zero where labelled.
func canvasAlpha(t testing.TB, ctx context.Context, x, y int) int {
	t.Helper()
	return eval[int](t, ctx, fmt.Sprintf(`%s.getContext('2d').getImageData(%d, %d, 1, 1).data[3]`, testid("editor-canvas"), x, y))
}

// canvasCount returns the number of labelled pixels shown in the editor canvas.
func canvasCount(t testing.TB, ctx context.Context) int {
	t.Helper()
	return eval[int](t, ctx, `(() => { const c = `+testid("editor-canvas")+`; const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
		let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n; })()`)
}

// wsClient is a real websocket client of the server, for reading what the UI stored.
type wsClient struct {
	conn *websocket.Conn
	seq  int
}

func dialWS(t testing.TB, base string) *wsClient {
	t.Helper()
	u := "ws" + strings.TrimPrefix(base, "http") + "/ws"
	conn, _, err := websocket.DefaultDialer.Dial(u, http.Header{"Origin": {base}})
	if err != nil {
		t.Fatalf("dial %s: %v", u, err)
	}
	t.Cleanup(func() { conn.Close() })
	return &wsClient{conn: conn}
}

func (c *wsClient) request(t testing.TB, typ string, payload, reply any) {
	t.Helper()
	c.seq++
	id := fmt.Sprintf("e2e-%d", c.seq)
	env, err := protocol.New(id, typ, payload)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.conn.WriteJSON(env); err != nil {
		t.Fatalf("send %s: %v", typ, err)
	}
	c.conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	for {
		var rep protocol.Envelope
		if err := c.conn.ReadJSON(&rep); err != nil {
			t.Fatalf("read reply to %s: %v", typ, err)
		}
		if rep.ID != id || rep.Type == protocol.TypeMaskUpdated {
			continue
		}
		if rep.Type == protocol.TypeError {
			t.Fatalf("%s: server error %s", typ, rep.Payload)
		}
		if err := json.Unmarshal(rep.Payload, reply); err != nil {
			t.Fatalf("decode %s reply: %v", typ, err)
		}
		return
	}
}

func (c *wsClient) mask(t testing.TB, ds, img string) (*mask.Label, protocol.MaskReply) {
	t.Helper()
	var rep protocol.MaskReply
	c.request(t, protocol.TypeMaskGet, protocol.MaskGetRequest{Dataset: ds, Image: img}, &rep)
	m, err := mask.Decode(rep.RLE)
	if err != nil {
		t.Fatalf("decode mask of %s: %v", img, err)
	}
	return m, rep
}

// writeFixture writes a small MVTec-layout category "widget" under dir: textured images, one defect
// type with ground-truth masks, and one 1024x1024 image for stroke timing. It returns the category path.
func writeFixture(t testing.TB, dir string) string {
	t.Helper()
	root := filepath.Join(dir, "widget")
	rng := rand.New(rand.NewPCG(7, 11))
	img := func(rel string, size int) {
		m := image.NewRGBA(image.Rect(0, 0, size, size))
		for y := 0; y < size; y++ {
			for x := 0; x < size; x++ {
				v := uint8(110 + 40*math.Sin(float64(x)/9)*math.Cos(float64(y)/13) + float64(rng.IntN(20)))
				m.Set(x, y, color.RGBA{v, v, uint8(int(v) * 9 / 10), 255})
			}
		}
		writePNG(t, filepath.Join(root, rel), m)
	}
	for i := range 4 {
		img(fmt.Sprintf("train/good/%03d.png", i), 128)
	}
	img("test/good/000.png", 128)
	img("test/good/001.png", 128)
	img("test/good/002.png", 1024)
	for i := range 2 {
		img(fmt.Sprintf("test/scratch/%03d.png", i), 128)
		gt := image.NewGray(image.Rect(0, 0, 128, 128))
		for y := 40 + 10*i; y < 60+10*i; y++ {
			for x := 30; x < 90; x++ {
				gt.SetGray(x, y, color.Gray{255})
			}
		}
		writePNG(t, filepath.Join(root, fmt.Sprintf("ground_truth/scratch/%03d_mask.png", i)), gt)
	}
	return root
}

func writePNG(t testing.TB, path string, m image.Image) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := png.Encode(f, m); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func readGray(t testing.TB, path string) *image.Gray {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := png.Decode(f)
	if err != nil {
		t.Fatalf("decode %s: %v", path, err)
	}
	g := image.NewGray(m.Bounds())
	for y := m.Bounds().Min.Y; y < m.Bounds().Max.Y; y++ {
		for x := m.Bounds().Min.X; x < m.Bounds().Max.X; x++ {
			g.Set(x, y, m.At(x, y))
		}
	}
	return g
}

func percentile(v []float64, p float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := append([]float64(nil), v...)
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
	idx := int(math.Ceil(p/100*float64(len(s)))) - 1
	return s[max(0, min(idx, len(s)-1))]
}

func sin(a float64) float64 { return math.Sin(a) }
func cos(a float64) float64 { return math.Cos(a) }
