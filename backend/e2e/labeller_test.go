//go:build !js

package e2e

// Browser tests of issue 13's "What breaks today": each one failed on the UI before its fix.

import (
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"

	"github.com/rdre-studio/studio/backend/internal/testenv"
	"github.com/rdre-studio/studio/shared/protocol"
)

// openEditor starts a server on the widget fixture and opens img in the editor.
func openEditor(t *testing.T, ctx context.Context, img string) (*server, *wsClient, protocol.DatasetInfo) {
	t.Helper()
	root := writeFixture(t, t.TempDir())
	srv := startServer(t, root)
	ws := dialWS(t, srv.URL)
	ds := datasetID(t, ws, "widget")
	run(t, ctx, chromedp.Navigate(srv.URL+"/image?dataset="+ds.ID+"&id="+img))
	waitEditor(t, ctx)
	return srv, ws, ds
}

func waitEditor(t *testing.T, ctx context.Context) {
	t.Helper()
	waitJS(t, ctx, 30*time.Second, "the editor", testid("editor-canvas")+` && `+testid("save-status")+`.textContent === 'saved'`)
}

// visible reports whether the element with the test id is rendered and shown.
func visible(id string) string {
	return fmt.Sprintf(`(() => { const e = %s; return !!e && e.getClientRects().length > 0 && getComputedStyle(e).visibility !== 'hidden'; })()`, testid(id))
}

// TestEditor_ErrorsShowInPlace: an error of the class form used to rebuild the editor's DOM (a blank
// mask canvas) and the next stroke panicked the wasm, while the page still said "saved".
func TestEditor_ErrorsShowInPlace(t *testing.T) {
	ctx := newBrowser(t)
	_, ws, ds := openEditor(t, ctx, "test/scratch/000.png")
	const img = "test/scratch/000.png"
	v := savedVersion(t, ctx)
	clickTestID(t, ctx, "tool-brush")
	setInput(t, ctx, "brush-size", "6")
	drag(t, ctx, line(10, 10, 20, 110, 12))
	v = waitSavedAfter(t, ctx, v)
	m, _ := ws.mask(t, ds.ID, img)
	before := m.Count()
	eval[chromedp.Void](t, ctx, `window.maskNode = `+testid("editor-canvas"))
	sameCanvas := func(when string) {
		t.Helper()
		if !eval[bool](t, ctx, `window.maskNode === `+testid("editor-canvas")+` && window.maskNode.isConnected`) {
			t.Fatalf("%s: the mask canvas was replaced", when)
		}
		if got := canvasCount(t, ctx); got != before {
			t.Fatalf("%s: the mask canvas shows %d labelled pixels, the server has %d", when, got, before)
		}
	}

	// Add with an empty name.
	setInput(t, ctx, "class-name", "")
	clickTestID(t, ctx, "class-add")
	waitJS(t, ctx, 5*time.Second, "an error about the empty name", `document.body.innerText.includes('needs a name')`)
	sameCanvas("after the empty-name error")

	// Add with a name that exists.
	setInput(t, ctx, "class-name", "scratch")
	clickTestID(t, ctx, "class-add")
	waitJS(t, ctx, 10*time.Second, "an error about the existing name", `[...document.querySelectorAll('.error-text, [data-testid=error], [data-testid=class-error]')]
		.some(e => e.getClientRects().length > 0 && e.textContent.includes('scratch'))`)
	sameCanvas("after the existing-name error")

	// The next stroke still draws and saves.
	drag(t, ctx, line(100, 10, 100, 110, 12))
	v = waitSavedAfter(t, ctx, v)
	m, _ = ws.mask(t, ds.ID, img)
	if m.Count() <= before || m.Pix[60*m.W+100] == 0 {
		t.Fatalf("the stroke after the errors stored %d pixels (before %d)", m.Count(), before)
	}
	before = m.Count()
	if got := canvasCount(t, ctx); got != before {
		t.Fatalf("canvas shows %d labelled pixels, server %d", got, before)
	}

	// A successful Add empties the name field.
	setInput(t, ctx, "class-name", "smudge")
	clickTestID(t, ctx, "class-add")
	waitJS(t, ctx, 10*time.Second, "the new class selected", `[...document.querySelectorAll('[data-testid=class-select] option')].some(o => o.selected && o.textContent.endsWith('smudge'))`)
	waitJS(t, ctx, 5*time.Second, "an empty name field", testid("class-name")+`.value === ''`)
	if eval[bool](t, ctx, visible("class-error")) {
		t.Fatal("the class error stays after a successful Add")
	}
	sameCanvas("after Add")
	if got := eval[string](t, ctx, testid("save-status")+`.textContent`); got != "saved" {
		t.Fatalf("save status %q", got)
	}
}

// TestEditor_PanicShowsReloadState forces failures inside the editor's handlers: the page must say it is
// broken instead of claiming "saved" and "connected" with a dead program behind it.
func TestEditor_PanicShowsReloadState(t *testing.T) {
	ctx := newBrowser(t)
	srv, _, ds := openEditor(t, ctx, "test/good/000.png")
	broken := func(t *testing.T, tab context.Context) {
		t.Helper()
		waitJS(t, tab, 10*time.Second, "the error: reload state", visible("fatal-error")+` && `+testid("fatal-error")+`.textContent.includes('error: reload')`)
		if s := eval[string](t, tab, testid("save-status")+`.textContent`); s == "saved" || s == "saving" || !strings.Contains(s, "error") {
			t.Fatalf("after the failure save-status reads %q", s)
		}
		if c := eval[string](t, tab, testid("connection")+`.textContent`); c == "connected" {
			t.Fatalf("after the failure the header still says %q", c)
		}
	}

	t.Run("pointer_handler", func(t *testing.T) {
		// A canvas call that throws inside the stroke handler.
		eval[chromedp.Void](t, ctx, `CanvasRenderingContext2D.prototype.putImageData = function () { throw new Error('forced failure'); }`)
		drag(t, ctx, line(10, 10, 60, 60, 6))
		broken(t, ctx)
	})

	t.Run("click_handler", func(t *testing.T) {
		// A failure in a go-app click handler, which no handler of ours can recover: the watchdog
		// must still mark the page.
		tab := newTab(t, ctx)
		run(t, tab, chromedp.Navigate(srv.URL+"/image?dataset="+ds.ID+"&id=test/good/001.png"))
		waitEditor(t, tab)
		eval[chromedp.Void](t, tab, `document.getElementById = function () { throw new Error('forced failure'); }`)
		clickTestID(t, tab, "zoom-fit")
		broken(t, tab)
	})
}

// TestEditor_GroundTruthToggleKeepsLayers: toggling the dataset ground truth used to shift the layers
// by one, so the mask lost its opacity and toggle and the brush outline vanished.
func TestEditor_GroundTruthToggleKeepsLayers(t *testing.T) {
	ctx := newBrowser(t)
	_, ws, ds := openEditor(t, ctx, "test/scratch/001.png")
	const img = "test/scratch/001.png"
	waitJS(t, ctx, 10*time.Second, "the ground-truth toggle", testid("gt-toggle"))
	v := savedVersion(t, ctx)
	setInput(t, ctx, "brush-size", "6")
	drag(t, ctx, line(10, 100, 110, 100, 12))
	waitSavedAfter(t, ctx, v)
	m, _ := ws.mask(t, ds.ID, img)
	setInput(t, ctx, "mask-opacity", "30")

	previewPixels := `(() => { const c = document.getElementById('preview-canvas'); const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
		let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n; })()`
	check := func(when string) {
		t.Helper()
		if got := canvasCount(t, ctx); got != m.Count() {
			t.Fatalf("%s: the mask canvas shows %d labelled pixels, the server has %d", when, got, m.Count())
		}
		waitJS(t, ctx, 3*time.Second, when+": mask opacity 0.3", `getComputedStyle(`+testid("editor-canvas")+`).opacity === '0.3'`)
		if n := eval[int](t, ctx, `document.querySelectorAll('canvas').length - document.querySelectorAll('canvas[id]').length`); n != 0 {
			t.Fatalf("%s: %d canvases without an id", when, n)
		}
		// The brush outline follows the pointer on the preview canvas.
		clickTestID(t, ctx, "tool-brush")
		x, y := canvasToClient(t, ctx, 64, 40)
		run(t, ctx, chromedp.MouseEvent(chromedp.MouseMoved, x, y))
		waitJS(t, ctx, 3*time.Second, when+": the brush outline", previewPixels+` > 0`)
		// The mask toggle hides the mask.
		run(t, ctx, chromedp.KeyEvent("m"))
		waitJS(t, ctx, 3*time.Second, when+": the mask hidden by m", `getComputedStyle(`+testid("editor-canvas")+`).visibility === 'hidden'`)
		run(t, ctx, chromedp.KeyEvent("m"))
		waitJS(t, ctx, 3*time.Second, when+": the mask shown by m", `getComputedStyle(`+testid("editor-canvas")+`).visibility === 'visible'`)
		// The polygon preview.
		clickTestID(t, ctx, "tool-polygon")
		clickAt(t, ctx, 30, 30, 1)
		clickAt(t, ctx, 90, 30, 1)
		x, y = canvasToClient(t, ctx, 60, 70)
		run(t, ctx, chromedp.MouseEvent(chromedp.MouseMoved, x, y))
		waitJS(t, ctx, 3*time.Second, when+": the polygon preview", previewPixels+` > 100`)
		run(t, ctx, chromedp.KeyEvent("\x1b")) // Escape
		clickTestID(t, ctx, "tool-brush")
	}
	check("ground truth shown")
	clickTestID(t, ctx, "gt-toggle")
	waitJS(t, ctx, 3*time.Second, "the ground truth hidden", `!document.querySelector('[data-testid=gt-overlay]') || getComputedStyle(document.querySelector('[data-testid=gt-overlay]')).display === 'none' || getComputedStyle(document.querySelector('[data-testid=gt-overlay]')).visibility === 'hidden'`)
	check("ground truth hidden")
	clickTestID(t, ctx, "gt-toggle")
	waitJS(t, ctx, 3*time.Second, "the ground truth shown", visible("gt-overlay"))
	check("ground truth shown again")
}

// allowDownloads makes the browser save downloads into a fresh folder and returns it.
func allowDownloads(t *testing.T, ctx context.Context) string {
	t.Helper()
	dir := t.TempDir()
	yes := true
	if _, err := chromedp.CallBrowser(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
		Behavior: browser.SetDownloadBehaviorBehaviorAllowAndName, DownloadPath: dir, EventsEnabled: &yes}); err != nil {
		t.Fatalf("set download behaviour: %v", err)
	}
	return dir
}

// clickDownload clicks the link with the test id and returns the downloaded file's content; the page must
// stay where it is (go-app's router used to open its Not Found page instead).
func clickDownload(t *testing.T, ctx context.Context, dir, id string) []byte {
	t.Helper()
	known := map[string]bool{}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		known[e.Name()] = true
	}
	url := eval[string](t, ctx, `location.href`)
	clickTestID(t, ctx, id)
	deadline := time.Now().Add(30 * time.Second)
	for {
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if known[e.Name()] || strings.HasSuffix(e.Name(), ".crdownload") {
				continue
			}
			b, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err == nil && len(b) > 0 {
				time.Sleep(300 * time.Millisecond)
				if b2, _ := os.ReadFile(filepath.Join(dir, e.Name())); len(b2) == len(b) {
					if got := eval[string](t, ctx, `location.href`); got != url {
						t.Fatalf("%s: the page moved from %s to %s", id, url, got)
					}
					return b
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no download within 30 s; the page is at %s and shows %.200q", id,
				eval[string](t, ctx, `location.href`), eval[string](t, ctx, `document.body.innerText`))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestUI_ExportDownloads: "Export masks" on the grid and "Export" in the editor download a zip.
func TestUI_ExportDownloads(t *testing.T) {
	ctx := newBrowser(t)
	root := writeFixture(t, t.TempDir())
	srv := startServer(t, root)
	ds := datasetID(t, dialWS(t, srv.URL), "widget")
	dir := allowDownloads(t, ctx)
	run(t, ctx, chromedp.Navigate(srv.URL+"/dataset?id="+ds.ID))
	waitJS(t, ctx, 30*time.Second, "the grid", tileCount+` > 0`)
	if b := clickDownload(t, ctx, dir, "export-masks"); string(b[:2]) != "PK" {
		t.Fatalf("grid export is not a zip: %.40q", b)
	}
	run(t, ctx, chromedp.Navigate(srv.URL+"/image?dataset="+ds.ID+"&id=test/scratch/000.png"))
	waitEditor(t, ctx)
	if b := clickDownload(t, ctx, dir, "export-masks"); string(b[:2]) != "PK" {
		t.Fatalf("editor export is not a zip: %.40q", b)
	}
}

// TestGrid_FilterAllAgain: choosing "all" again in the Split or Defect type filter showed 0 images.
func TestGrid_FilterAllAgain(t *testing.T) {
	ctx := newBrowser(t)
	root := writeFixture(t, t.TempDir())
	srv := startServer(t, root)
	ds := datasetID(t, dialWS(t, srv.URL), "widget")
	all := countImages(t, root, "", "")
	run(t, ctx, chromedp.Navigate(srv.URL+"/dataset?id="+ds.ID))
	waitJS(t, ctx, 30*time.Second, "every tile", fmt.Sprintf("%s === %d", tileCount, all))
	// The user picks the first option, "all", as a person does: by its position in the list.
	pickFirst := func(id string) {
		eval[chromedp.Void](t, ctx, fmt.Sprintf(`(() => { const e = %s; e.selectedIndex = 0; e.dispatchEvent(new Event('change', {bubbles: true})); })()`, testid(id)))
	}
	for _, f := range []struct{ id, value, split, kind string }{
		{"filter-split", "test", "test", ""},
		{"filter-kind", "scratch", "", "scratch"},
	} {
		setInput(t, ctx, f.id, f.value)
		want := countImages(t, root, f.split, f.kind)
		waitJS(t, ctx, 10*time.Second, f.id+" "+f.value, fmt.Sprintf("%s === %d", tileCount, want))
		pickFirst(f.id)
		waitJS(t, ctx, 10*time.Second, f.id+" back to all", fmt.Sprintf("%s === %d", tileCount, all))
		if got := eval[string](t, ctx, `[...document.querySelectorAll('[data-testid=`+f.id+`] option')].find(o => o.selected).textContent`); got != "all" {
			t.Fatalf("%s shows %q selected, want all", f.id, got)
		}
	}
}

// TestEditor_ShortcutsAfterControls: after a slider, checkbox or select had the focus, the editor's keys
// did nothing until the page was clicked elsewhere. Text fields keep their keys.
func TestEditor_ShortcutsAfterControls(t *testing.T) {
	ctx := newBrowser(t)
	openEditor(t, ctx, "test/scratch/000.png")
	active := func(tool string) string { return testid("tool-"+tool) + `.classList.contains('active')` }
	for _, c := range []struct{ control, key, tool string }{
		{"brush-size", "e", "eraser"},
		{"mask-toggle", "p", "polygon"},
		{"class-select", "f", "fill"},
		{"polygon-subtract", "b", "brush"},
	} {
		// A real click for sliders and checkboxes; a select gets the focus as a keyboard user gives it
		// (a click would open its popup).
		if c.control == "class-select" {
			run(t, ctx, chromedp.Focus(chromedp.CSS(`[data-testid=class-select]`)))
		} else {
			clickTestID(t, ctx, c.control)
		}
		if got := eval[string](t, ctx, `document.activeElement.dataset.testid || ''`); got != c.control {
			t.Fatalf("the focus is on %q, want %s", got, c.control)
		}
		run(t, ctx, chromedp.KeyEvent(c.key))
		waitJS(t, ctx, 3*time.Second, fmt.Sprintf("key %s after %s", c.key, c.control), active(c.tool))
	}
	// A text field keeps its keys: typing a name does not switch tools.
	run(t, ctx, chromedp.Focus(chromedp.CSS(`[data-testid=class-name]`)), chromedp.KeyEvent("e"))
	time.Sleep(200 * time.Millisecond)
	if !eval[bool](t, ctx, active("brush")) || eval[string](t, ctx, testid("class-name")+`.value`) != "e" {
		t.Fatalf("typing e in the class name switched the tool or lost the letter")
	}
}

// TestEditor_FillOpenArea: a fill on an area that is not closed flooded the whole image.
func TestEditor_FillOpenArea(t *testing.T) {
	ctx := newBrowser(t)
	_, ws, ds := openEditor(t, ctx, "test/good/000.png")
	clickTestID(t, ctx, "tool-fill")
	clickAt(t, ctx, 64, 64, 1)
	waitJS(t, ctx, 5*time.Second, "a word that the area is open", visible("tool-message")+` && `+testid("tool-message")+`.textContent.includes('closed')`)
	time.Sleep(500 * time.Millisecond)
	if n := canvasCount(t, ctx); n != 0 {
		t.Fatalf("fill on an empty image labelled %d pixels", n)
	}
	// A stroke across the image from border to border closes the area above it: that fills.
	clickTestID(t, ctx, "tool-brush")
	setInput(t, ctx, "brush-size", "4")
	drag(t, ctx, line(-2, 40, 130, 40, 20))
	v := waitSavedAfter(t, ctx, 0)
	clickTestID(t, ctx, "tool-fill")
	clickAt(t, ctx, 64, 10, 1)
	waitSavedAfter(t, ctx, v)
	m, _ := ws.mask(t, ds.ID, "test/good/000.png")
	if m.Pix[10*m.W+64] == 0 || m.Pix[100*m.W+64] != 0 {
		t.Fatalf("fill above the stroke: (64,10) = %d, (64,100) = %d", m.Pix[10*m.W+64], m.Pix[100*m.W+64])
	}
	if eval[bool](t, ctx, visible("tool-message")) {
		t.Fatal("the open-area message stays after a fill that worked")
	}
}

// TestGrid_ScrollKeptAfterEditor: coming back from the editor, the grid was at its top again.
func TestGrid_ScrollKeptAfterEditor(t *testing.T) {
	ctx := newBrowser(t)
	many := filepath.Join(t.TempDir(), "many")
	writeManyFixture(t, many, 200)
	srv := startServer(t, many)
	ds := datasetID(t, dialWS(t, srv.URL), "many")
	run(t, ctx, chromedp.Navigate(srv.URL+"/dataset?id="+ds.ID))
	waitJS(t, ctx, 30*time.Second, "the grid", tileCount+` >= 200`)
	scrollTop := `document.querySelector('main.view').scrollTop`
	// Where a tile sits in the view: what the user sees, whatever the panels above the grid do.
	tileAt := func(id string) float64 {
		return eval[float64](t, ctx, `(() => { const v = document.querySelector('main.view').getBoundingClientRect();
			return document.querySelector('[data-testid=image-tile][data-id="`+id+`"]').getBoundingClientRect().top - v.top; })()`)
	}
	for _, back := range []string{"breadcrumb", "history"} {
		eval[chromedp.Void](t, ctx, scrollTop+` = 1500`)
		time.Sleep(200 * time.Millisecond)
		if got := eval[float64](t, ctx, scrollTop); got < 1000 {
			t.Fatalf("the grid scrolled only to %v", got)
		}
		// A tile in the lower part of the view.
		id := eval[string](t, ctx, `(() => { const v = document.querySelector('main.view').getBoundingClientRect();
			return [...document.querySelectorAll('[data-testid=image-tile]')].find(e => { const r = e.getBoundingClientRect();
				return r.top > v.top + v.height / 3 && r.bottom < v.bottom; }).dataset.id; })()`)
		want := tileAt(id)
		run(t, ctx, chromedp.Click(chromedp.CSS(`[data-testid=image-tile][data-id="`+id+`"]`), chromedp.NodeVisible))
		waitEditor(t, ctx)
		if back == "breadcrumb" {
			run(t, ctx, chromedp.Click(chromedp.CSS(`.crumbs a[href^="/dataset"]`), chromedp.NodeVisible))
		} else {
			eval[chromedp.Void](t, ctx, `history.back()`)
		}
		waitJS(t, ctx, 10*time.Second, "the grid again", tileCount+` >= 200`)
		time.Sleep(500 * time.Millisecond)
		if got := tileAt(id); math.Abs(got-want) > 2 {
			t.Fatalf("back from the editor by %s, the tile %s is %v px below the view's top, it was at %v (view scrolled to %v)", back, id, got, want, eval[float64](t, ctx, scrollTop))
		}
	}
}

// TestEditor_FitsAt1280x720: save status and Prev/Next used to be below the fold on a 1280x720 screen.
func TestEditor_FitsAt1280x720(t *testing.T) {
	opts := testenv.ChromiumOptions(t, 1280, 720)
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelB := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelB(); cancelA() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	openEditor(t, ctx, "test/scratch/000.png")
	h := eval[float64](t, ctx, `innerHeight`)
	if h > 720 {
		t.Fatalf("viewport %v px high, want at most 720", h)
	}
	for _, id := range []string{"save-status", "prev-image", "next-image"} {
		r := eval[map[string]float64](t, ctx, fmt.Sprintf(`(() => { const r = %s.getBoundingClientRect(); return {top: r.top, bottom: r.bottom, h: r.height}; })()`, testid(id)))
		if r["h"] == 0 || r["top"] < 0 || r["bottom"] > h {
			t.Fatalf("%s at %v..%v, outside the %v px high window", id, r["top"], r["bottom"], h)
		}
		// Inside the window is not enough: a scrolled toolbar clips what is below its own fold.
		x := eval[bool](t, ctx, fmt.Sprintf(`(() => { const e = %s, r = e.getBoundingClientRect();
			const at = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2); return at === e || e.contains(at); })()`, testid(id)))
		if !x {
			t.Fatalf("%s is covered or clipped at 1280x720", id)
		}
	}
}

// TestEditor_UndoAcrossImages: leaving an image and coming back lost its undo history.
func TestEditor_UndoAcrossImages(t *testing.T) {
	ctx := newBrowser(t)
	_, ws, ds := openEditor(t, ctx, "test/good/000.png")
	const img = "test/good/000.png"
	// The grid's order decides the neighbours: load the list first.
	v := savedVersion(t, ctx)
	drag(t, ctx, line(20, 20, 100, 100, 10))
	v = waitSavedAfter(t, ctx, v)
	waitJS(t, ctx, 10*time.Second, "a next image", `!`+testid("next-image")+`.disabled`)
	clickTestID(t, ctx, "next-image")
	waitJS(t, ctx, 20*time.Second, "the next image", fmt.Sprintf(`new URLSearchParams(location.search).get('id') !== %q && %s.textContent === 'saved'`, img, testid("save-status")))
	clickTestID(t, ctx, "prev-image")
	waitJS(t, ctx, 20*time.Second, "the first image again", fmt.Sprintf(`new URLSearchParams(location.search).get('id') === %q && %s.textContent === 'saved' && +%s.dataset.version === %d`, img, testid("save-status"), testid("save-status"), v))
	waitJS(t, ctx, 5*time.Second, "undo offered", `!`+testid("undo")+`.disabled`)
	clickTestID(t, ctx, "undo")
	waitSavedAfter(t, ctx, v)
	if m, _ := ws.mask(t, ds.ID, img); m.Count() != 0 {
		t.Fatalf("after undo the stored mask has %d pixels, want 0", m.Count())
	}
	if n := canvasCount(t, ctx); n != 0 {
		t.Fatalf("after undo the canvas shows %d pixels", n)
	}
}

func fmtG(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

// TestEval_Labeller evaluates the demo set and checks what depends on a finished job: the word that
// exact metrics are being computed, report downloads, the comparison layer, the heatmap threshold in
// the model's units and the collapsible panel.
func TestEval_Labeller(t *testing.T) {
	model := modelFile(t)
	ctx := newBrowser(t)
	bin := rdreBinary(t)
	demo := t.TempDir()
	if out, err := exec.Command(bin, "demo", "--out", demo).CombinedOutput(); err != nil {
		t.Fatalf("rdre demo: %v\n%s", err, out)
	}
	root := filepath.Join(demo, "tiles")
	srv := startServerArgs(t, []string{root}, []string{"--model", model, "--device", "cpu"})
	ws := dialWS(t, srv.URL)
	ds := datasetID(t, ws, "tiles")
	tests := countImages(t, root, "test", "")
	grid := srv.URL + "/dataset?id=" + ds.ID + "&split=test"
	run(t, ctx, chromedp.Navigate(grid))
	waitJS(t, ctx, 30*time.Second, "the model select", `document.querySelectorAll('[data-testid=model-select] option').length > 0`)
	// Every state the panel shows, as it shows it.
	eval[chromedp.Void](t, ctx, `(() => { window.panelStates = []; const note = () => {
		const q = id => document.querySelector('[data-testid=' + id + ']');
		const s = {p: (q('job-progress') || {}).textContent || '', m: (q('metrics-state') || {}).textContent || '',
			j: (q('job-state') || {}).textContent || '', c: !!q('metrics-computing') && q('metrics-computing').getClientRects().length > 0 &&
			q('metrics-computing').textContent.includes('computing exact metrics')};
		const l = window.panelStates[window.panelStates.length - 1];
		if (!l || l.p !== s.p || l.m !== s.m || l.j !== s.j || l.c !== s.c) window.panelStates.push(s); };
		new MutationObserver(note).observe(document.body, {subtree: true, childList: true, characterData: true, attributes: true}); })()`)
	clickTestID(t, ctx, "evaluate")
	waitJS(t, ctx, 20*time.Second, "the job in the URL", `new URLSearchParams(location.search).get('job')`)
	job := eval[string](t, ctx, `new URLSearchParams(location.search).get('job')`)
	waitJS(t, ctx, 200*time.Second, "final metrics", testid("live-metrics")+` && `+testid("live-metrics")+`.dataset.state === 'final'`)
	var st protocol.JobState
	ws.request(t, protocol.TypeJobGet, protocol.JobRef{Job: job}, &st)
	var res struct {
		PixelF1MaxThreshold *float64 `json:"pixel_f1_max_threshold"`
		Curves              struct {
			PixelROC struct {
				Threshold []*float64 `json:"threshold"`
			} `json:"pixel_roc"`
		} `json:"curves"`
	}
	if err := json.Unmarshal(st.Result, &res); err != nil || res.PixelF1MaxThreshold == nil {
		t.Fatalf("job result without a pixel F1-max threshold: %v", err)
	}

	t.Run("computing_exact_metrics", func(t *testing.T) {
		type panelState struct {
			P, M, J string
			C       bool
		}
		states := eval[[]panelState](t, ctx, `window.panelStates.map(s => ({P: s.p, M: s.m, J: s.j, C: s.c}))`)
		end := fmt.Sprintf("%d/%d", tests, tests)
		seen := 0
		for _, s := range states {
			if s.P == end && s.J != protocol.JobDone && s.J != "" {
				seen++
				if !s.C {
					t.Fatalf("at %s the job is %s and the metrics %q, with no word that the exact metrics are being computed (states %+v)", s.P, s.J, s.M, states)
				}
			}
			if s.C && (s.J == protocol.JobDone || s.P != end) {
				t.Fatalf("'computing exact metrics' shown at %s in state %s", s.P, s.J)
			}
		}
		if seen == 0 {
			t.Fatalf("the page never showed the step between %s and the final metrics: %+v", end, states)
		}
	})

	t.Run("report_downloads", func(t *testing.T) {
		dir := allowDownloads(t, ctx)
		for _, f := range []string{"json", "csv", "md"} {
			b := clickDownload(t, ctx, dir, "report-"+f)
			if f == "json" && !json.Valid(b) {
				t.Fatalf("the json report is not JSON: %.200s", b)
			}
			if strings.Contains(string(b), "<html") {
				t.Fatalf("the %s report download is an HTML page", f)
			}
		}
	})

	t.Run("panel_collapse", func(t *testing.T) {
		run(t, ctx, chromedp.Navigate(grid+"&job="+job))
		waitJS(t, ctx, 30*time.Second, "the panel with the job's metrics", visible("evaluate")+` && `+visible("live-metrics"))
		clickTestID(t, ctx, "eval-collapse")
		waitJS(t, ctx, 3*time.Second, "the panel collapsed", `!(`+visible("evaluate")+`) && !(`+visible("live-metrics")+`)`)
		clickTestID(t, ctx, "eval-collapse")
		waitJS(t, ctx, 3*time.Second, "the panel open", visible("evaluate")+` && `+visible("live-metrics"))
	})

	// The map of an image as the server stores it, in the model's units.
	mapOf := func(t *testing.T, id string) ([]float64, int, int) {
		resp, err := http.Get(srv.URL + "/api/heatmap?job=" + job + "&id=" + id)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("heatmap of %s: %v %v", id, err, resp)
		}
		defer resp.Body.Close()
		lo, _ := strconv.ParseFloat(resp.Header.Get("X-Map-Min"), 64)
		hi, _ := strconv.ParseFloat(resp.Header.Get("X-Map-Max"), 64)
		m, err := png.Decode(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		g, ok := m.(*image.Gray16)
		if !ok {
			t.Fatalf("heatmap is %T", m)
		}
		out := make([]float64, g.Rect.Dx()*g.Rect.Dy())
		for i := range out {
			u := float64(uint16(g.Pix[2*i])<<8 | uint16(g.Pix[2*i+1]))
			out[i] = lo + u/65535*(hi-lo)
		}
		return out, g.Rect.Dx(), g.Rect.Dy()
	}
	heatAlpha := `(() => { const c = ` + testid("heatmap-canvas") + `; const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
		let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n; })()`

	t.Run("threshold_in_model_units", func(t *testing.T) {
		var goods []string
		for _, s := range st.Scores {
			if strings.Contains(s.Image, "/good/") {
				goods = append(goods, s.Image)
			}
		}
		if len(goods) < 2 {
			t.Fatalf("%d good test images", len(goods))
		}
		want := *res.PixelF1MaxThreshold
		lo, hi := math.Inf(1), math.Inf(-1)
		for _, v := range res.Curves.PixelROC.Threshold {
			if v != nil {
				lo, hi = math.Min(lo, *v), math.Max(hi, *v)
			}
		}
		thr := want
		for i, id := range goods[:2] {
			u := "/image?dataset=" + ds.ID + "&id=" + id + "&job=" + job
			if i == 0 {
				run(t, ctx, chromedp.Navigate(srv.URL+u))
			} else {
				// Within the page, as Next does: the threshold carries over.
				eval[chromedp.Void](t, ctx, fmt.Sprintf(`goappNav(%q)`, u))
				waitJS(t, ctx, 10*time.Second, "the second image", fmt.Sprintf(`new URLSearchParams(location.search).get('id') === %q`, id))
			}
			waitEditor(t, ctx)
			waitJS(t, ctx, 30*time.Second, "the heatmap drawn", testid("heatmap-canvas")+`.style.visibility === 'visible' && `+heatAlpha+` >= 0 && `+testid("threshold-value")+`.dataset.value`)
			got, _ := strconv.ParseFloat(eval[string](t, ctx, testid("threshold-value")+`.dataset.value`), 64)
			if i == 0 && math.Abs(got-want) > 1e-9*math.Max(1, math.Abs(want)) {
				t.Fatalf("%s: threshold %v, want the job's pixel F1-max threshold %v", id, got, want)
			}
			if i == 1 && got != thr {
				t.Fatalf("%s: threshold %v, the previous image had %v", id, got, thr)
			}
			// One colour scale for the job: the report's (the pixel scores' range).
			slo, _ := strconv.ParseFloat(eval[string](t, ctx, testid("heatmap-canvas")+`.dataset.scaleLo`), 64)
			shi, _ := strconv.ParseFloat(eval[string](t, ctx, testid("heatmap-canvas")+`.dataset.scaleHi`), 64)
			if slo != lo || shi != hi {
				t.Fatalf("%s: colour scale %v..%v, the report's is %v..%v", id, slo, shi, lo, hi)
			}
			m, mw, mh := mapOf(t, id)
			cw := eval[int](t, ctx, testid("heatmap-canvas")+`.width`)
			ch := eval[int](t, ctx, testid("heatmap-canvas")+`.height`)
			if mw != cw || mh != ch {
				t.Skipf("map %dx%d, image %dx%d: pixel counts are not comparable", mw, mh, cw, ch)
			}
			mlo, mhi := math.Inf(1), math.Inf(-1)
			for _, v := range m {
				mlo, mhi = math.Min(mlo, v), math.Max(mhi, v)
			}
			if i == 0 {
				// The slider step nearest the middle of this image's own range, in the job's units.
				k := int(math.Round(((mlo+mhi)/2 - lo) / (hi - lo) * 1000))
				setInput(t, ctx, "threshold-slider", strconv.Itoa(k))
				waitJS(t, ctx, 3*time.Second, "the new threshold", testid("threshold-value")+`.dataset.value !== '`+fmtG(want)+`'`)
				thr, _ = strconv.ParseFloat(eval[string](t, ctx, testid("threshold-value")+`.dataset.value`), 64)
				if w := lo + float64(k)/1000*(hi-lo); math.Abs(thr-w) > 1e-9*math.Max(1, math.Abs(w)) {
					t.Fatalf("slider at %d/1000 gives threshold %v, want %v (on %v..%v)", k, thr, w, lo, hi)
				}
			}
			// The browser decodes the map to 8 bits: one step of the image's own range either way.
			d := (mhi-mlo)/255 + 1e-12
			atLeast, atMost := 0, 0
			for _, v := range m {
				if v >= thr+d {
					atLeast++
				}
				if v >= thr-d {
					atMost++
				}
			}
			if i == 0 && atLeast == 0 {
				t.Fatalf("%s: no pixel clearly above the threshold %v: the check would prove nothing", id, thr)
			}
			if n := eval[int](t, ctx, heatAlpha); n < atLeast || n > atMost {
				t.Fatalf("%s at threshold %v shows %d pixels; the map has %d..%d at or above it", id, thr, n, atLeast, atMost)
			}
		}
	})

	t.Run("comparison_on_top", func(t *testing.T) {
		var defect string
		for _, s := range st.Scores {
			if !strings.Contains(s.Image, "/good/") {
				defect = s.Image
				break
			}
		}
		run(t, ctx, chromedp.Navigate(srv.URL+"/image?dataset="+ds.ID+"&id="+defect+"&job="+job))
		waitEditor(t, ctx)
		waitJS(t, ctx, 30*time.Second, "the heatmap drawn", testid("heatmap-canvas")+`.style.visibility === 'visible' && `+heatAlpha+` > 0`)
		if !eval[bool](t, ctx, testid("compare-toggle")+`.checked`) {
			clickTestID(t, ctx, "compare-toggle")
		}
		// Paint order: z-index first, then document order.
		order := `(() => { const ls = [...document.querySelectorAll('#stage > *')];
			const rank = e => [parseInt(getComputedStyle(e).zIndex) || 0, ls.indexOf(e)];
			const above = (a, b) => { const x = rank(a), y = rank(b); return x[0] > y[0] || (x[0] === y[0] && x[1] > y[1]); };
			const cmp = ` + testid("heatmap-canvas") + `;
			return [` + testid("editor-canvas") + `, ` + testid("gt-overlay") + `].every(e => !e || above(cmp, e)); })()`
		waitJS(t, ctx, 5*time.Second, "the comparison above the mask and the ground truth", order)
		var classes protocol.ClassesReply
		ws.request(t, protocol.TypeClassesList, protocol.ClassesListRequest{Dataset: ds.ID}, &classes)
		taken := map[string]bool{"230,57,70": true} // the editor's colour for a class without one
		for _, c := range classes.Classes {
			if v, err := strconv.ParseUint(strings.TrimPrefix(c.Color, "#"), 16, 32); err == nil {
				taken[fmt.Sprintf("%d,%d,%d", v>>16, v>>8&255, v&255)] = true
			}
		}
		cols := eval[[]string](t, ctx, `(() => { const c = `+testid("heatmap-canvas")+`; const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
			const s = new Set(); for (let i = 0; i < d.length; i += 4) if (d[i+3] > 0) s.add(d[i]+','+d[i+1]+','+d[i+2]); return [...s]; })()`)
		if len(cols) == 0 {
			t.Fatal("the comparison shows nothing")
		}
		for _, c := range cols {
			if taken[c] {
				t.Fatalf("the comparison uses %s, a class colour (%v)", c, taken)
			}
		}
	})
}
