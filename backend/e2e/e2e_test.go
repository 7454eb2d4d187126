//go:build !js

// Package e2e holds the browser tests of RD-RE Studio: the real rdre binary (built once per run, with
// the embedded app.wasm from make build) serving real datasets, driven through Debian's headless
// Chromium with chromedp and real pointer events. Elements are found by the data-testid contract of
// package app/ui. The tests skip only when no chromium binary exists.
//
// RDRE_SCREENSHOTS=1 copies the screenshots of the demo dataset (dataset list, grid, editor, the
// evaluation panel with final metrics, the grid with scores, the editor with a heatmap) to
// docs/screenshots/. RDRE_E2E_DATA=DIR also runs the UI against a real dataset (screenshots stay in the
// test's temp dir); RDRE_E2E_MODEL=FILE.onnx evaluates with that model instead of models/default/demo.onnx.
package e2e

import (
	"fmt"
	"image"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/rdre-studio/studio/shared/protocol"
)

func datasetID(t testing.TB, c *wsClient, rootSuffix string) protocol.DatasetInfo {
	t.Helper()
	var rep protocol.DatasetsReply
	c.request(t, protocol.TypeDatasetsList, nil, &rep)
	for _, d := range rep.Datasets {
		if strings.HasSuffix(filepath.Clean(d.Root), rootSuffix) {
			return d
		}
	}
	t.Fatalf("no dataset with root ending in %s among %+v", rootSuffix, rep.Datasets)
	return protocol.DatasetInfo{}
}

func countImages(t testing.TB, root, split, kind string) int {
	t.Helper()
	n := 0
	for _, sp := range []string{"train", "test"} {
		if split != "" && sp != split {
			continue
		}
		kinds, _ := os.ReadDir(filepath.Join(root, sp))
		for _, k := range kinds {
			if kind != "" && k.Name() != kind {
				continue
			}
			files, _ := filepath.Glob(filepath.Join(root, sp, k.Name(), "*.png"))
			n += len(files)
		}
	}
	return n
}

const tileCount = `document.querySelectorAll('[data-testid=image-tile]').length`

const visibleThumbsLoaded = `[...document.querySelectorAll('[data-testid=image-tile] img')]
	.filter(i => i.getBoundingClientRect().top < innerHeight).every(i => i.complete && i.naturalWidth > 0)`

// TestUI_Grid_ListsFiltersAndShowsMask walks issue 2's path on the demo dataset: dataset list, image
// grid with thumbnails and filters, one image at full size with its ground-truth mask overlaid.
func TestUI_Grid_ListsFiltersAndShowsMask(t *testing.T) {
	ctx := newBrowser(t)
	bin := rdreBinary(t)
	demo := t.TempDir()
	if out, err := exec.Command(bin, "demo", "--out", demo).CombinedOutput(); err != nil {
		t.Fatalf("rdre demo: %v\n%s", err, out)
	}
	root := filepath.Join(demo, "tiles")
	srv := startServer(t, root)
	ds := datasetID(t, dialWS(t, srv.URL), "tiles")

	run(t, ctx, chromedp.Navigate(srv.URL+"/"))
	waitJS(t, ctx, 30*time.Second, "the dataset list", `document.querySelector('[data-testid=dataset-list] [data-id="`+ds.ID+`"]')`)
	if got := eval[string](t, ctx, `document.querySelector('[data-testid=dataset-list] [data-id="`+ds.ID+`"]').textContent`); !strings.Contains(got, fmt.Sprintf("%d images", ds.Images)) {
		t.Fatalf("dataset entry %q does not show its %d images", got, ds.Images)
	}
	screenshot(t, ctx, "datasets.png")
	run(t, ctx, chromedp.Click(chromedp.CSS(`[data-testid=dataset-list] [data-id="`+ds.ID+`"]`), chromedp.NodeVisible))

	all := countImages(t, root, "", "")
	if all == 0 || all > 240 {
		t.Fatalf("demo dataset has %d images; this test expects 1..240 (one grid page)", all)
	}
	waitJS(t, ctx, 20*time.Second, fmt.Sprintf("%d tiles", all), fmt.Sprintf("%s === %d", tileCount, all))
	// Thumbnails are server-side JPEGs: every one in view must have decoded.
	waitJS(t, ctx, 30*time.Second, "thumbnails in view decoded", visibleThumbsLoaded)
	// This server runs without --model: the evaluation panel says how to start one with a model.
	waitJS(t, ctx, 10*time.Second, "the no-model notice", testid("eval-no-model")+` && `+testid("eval-no-model")+`.textContent.includes('--model')`)
	if n := eval[int](t, ctx, `document.querySelectorAll('[data-testid=evaluate]').length`); n != 0 {
		t.Fatalf("an Evaluate button is offered by a server without a model (%d)", n)
	}
	screenshot(t, ctx, "grid.png")

	setInput(t, ctx, "filter-split", "test")
	test := countImages(t, root, "test", "")
	waitJS(t, ctx, 10*time.Second, "the test split", fmt.Sprintf("%s === %d", tileCount, test))
	if n := eval[int](t, ctx, `document.querySelectorAll('[data-testid=image-tile]:not([data-split=test])').length`); n != 0 {
		t.Fatalf("split filter test shows %d tiles of another split", n)
	}
	var kind string
	for _, k := range ds.Kinds {
		if k != protocol.KindGood {
			kind = k
			break
		}
	}
	if kind == "" {
		t.Fatalf("demo dataset has no defect type: %+v", ds)
	}
	setInput(t, ctx, "filter-kind", kind)
	want := countImages(t, root, "test", kind)
	waitJS(t, ctx, 10*time.Second, "the "+kind+" filter", fmt.Sprintf("%s === %d", tileCount, want))
	if want == 0 || test == all {
		t.Fatalf("filters did not narrow anything: all %d, test %d, %s %d", all, test, kind, want)
	}

	// Time to a usable grid, measured by the page itself from navigation start.
	run(t, ctx, chromedp.Navigate(srv.URL+"/dataset?id="+ds.ID))
	waitJS(t, ctx, 30*time.Second, "grid ready mark", `window.rdreGridReadyAt > 0`)
	t.Logf("page load to usable grid: %.0f ms (%d tiles)", eval[float64](t, ctx, `window.rdreGridReadyAt`), all)

	// One defective image at full size with its ground-truth mask.
	setInput(t, ctx, "filter-kind", kind)
	waitJS(t, ctx, 10*time.Second, "the "+kind+" filter", fmt.Sprintf("%s === %d", tileCount, countImages(t, root, "", kind)))
	id := eval[string](t, ctx, `document.querySelector('[data-testid=image-tile]').dataset.id`)
	run(t, ctx, chromedp.Click(chromedp.CSS(`[data-testid=image-tile]`), chromedp.NodeVisible))
	waitJS(t, ctx, 20*time.Second, "the editor", testid("editor-canvas")+` && `+testid("save-status")+`.textContent === 'saved'`)
	waitJS(t, ctx, 20*time.Second, "the full-size image", `document.getElementById('editor-image').complete && document.getElementById('editor-image').naturalWidth > 0`)
	waitJS(t, ctx, 5*time.Second, "the ground-truth overlay", testid("gt-overlay"))

	gtPath := filepath.Join(root, "ground_truth", kind, strings.TrimSuffix(filepath.Base(id), ".png")+"_mask.png")
	gt := readGray(t, gtPath)
	natural := eval[[]int](t, ctx, `[document.getElementById('editor-image').naturalWidth, document.getElementById('editor-image').naturalHeight]`)
	if natural[0] != gt.Rect.Dx() || natural[1] != gt.Rect.Dy() {
		t.Fatalf("image shown at %dx%d, its mask is %dx%d", natural[0], natural[1], gt.Rect.Dx(), gt.Rect.Dy())
	}
	wantPix := 0
	for _, v := range gt.Pix {
		if v >= 128 {
			wantPix++
		}
	}
	if got := canvasCount(t, ctx); got != wantPix || wantPix == 0 {
		t.Fatalf("mask overlay shows %d labelled pixels, ground truth %s has %d", got, gtPath, wantPix)
	}
	screenshot(t, ctx, "editor.png")
}

// TestEditor_Tools draws with every tool on a 1024x1024 image, checks what the server stored pixel by
// pixel, and covers undo/redo, reload and two tabs on one image.
func TestEditor_Tools(t *testing.T) {
	ctx := newBrowser(t)
	fixtures := t.TempDir()
	root := writeFixture(t, fixtures)
	plain := filepath.Join(fixtures, "plain")
	writePNG(t, filepath.Join(plain, "train/good/000.png"), image.NewGray(image.Rect(0, 0, 64, 48)))
	writePNG(t, filepath.Join(plain, "test/good/000.png"), image.NewGray(image.Rect(0, 0, 64, 48)))
	srv := startServer(t, root, plain)
	ws := dialWS(t, srv.URL)
	ds := datasetID(t, ws, "widget")
	const img = "test/good/002.png"
	page := srv.URL + "/image?dataset=" + ds.ID + "&id=" + img

	run(t, ctx, chromedp.Navigate(page))
	waitJS(t, ctx, 30*time.Second, "the editor", testid("editor-canvas")+` && `+testid("editor-canvas")+`.width === 1024`)
	v := savedVersion(t, ctx)
	cls := eval[int](t, ctx, `+`+testid("class-select")+`.value`)
	if cls < 1 {
		t.Fatalf("class-select value %d, want a class index >= 1", cls)
	}

	at := func(x, y int) uint8 {
		m, _ := ws.mask(t, ds.ID, img)
		return m.Pix[y*m.W+x]
	}

	t.Run("brush", func(t *testing.T) {
		clickTestID(t, ctx, "tool-brush")
		setInput(t, ctx, "brush-size", "20")
		drag(t, ctx, line(100, 100, 400, 100, 30))
		v = waitSavedAfter(t, ctx, v)
		m, rep := ws.mask(t, ds.ID, img)
		if rep.Source != "workspace" || rep.Version != v {
			t.Fatalf("stored mask: source %q version %d, want workspace %d", rep.Source, rep.Version, v)
		}
		for x := 100; x <= 400; x += 25 {
			if got := m.Pix[100*m.W+x]; int(got) != cls {
				t.Fatalf("pixel (%d,100) on the stroke = %d, want class %d", x, got, cls)
			}
		}
		for _, p := range [][2]int{{250, 85}, {250, 115}, {85, 100}, {415, 100}, {600, 600}} {
			if got := m.Pix[p[1]*m.W+p[0]]; got != 0 {
				t.Fatalf("pixel %v off the stroke = %d, want 0", p, got)
			}
		}
		// A 20 px brush over 300 px: a 300x20 band plus round caps.
		if n := m.Count(); n < 300*20 || n > 300*20+2*20*20 {
			t.Fatalf("stroke labelled %d pixels, want about %d", n, 300*20+314)
		}
		if got := canvasCount(t, ctx); got != m.Count() {
			t.Fatalf("canvas shows %d labelled pixels, server stored %d", got, m.Count())
		}
	})

	t.Run("polygon", func(t *testing.T) {
		clickTestID(t, ctx, "tool-polygon")
		for _, p := range [][2]float64{{600, 600}, {800, 600}, {800, 800}, {600, 800}} {
			clickAt(t, ctx, p[0], p[1], 1)
		}
		clickAt(t, ctx, 600, 600, 1) // back on the first point closes it
		v = waitSavedAfter(t, ctx, v)
		m, _ := ws.mask(t, ds.ID, img)
		inside := 0
		for y := 0; y < 1024; y++ {
			for x := 0; x < 1024; x++ {
				in := x >= 601 && x < 800 && y >= 601 && y < 800
				if in {
					inside++
					if int(m.Pix[y*m.W+x]) != cls {
						t.Fatalf("pixel (%d,%d) inside the polygon = %d", x, y, m.Pix[y*m.W+x])
					}
				}
				if (x < 598 || x > 803 || y < 598 || y > 803) && y > 120 && m.Pix[y*m.W+x] != 0 {
					t.Fatalf("pixel (%d,%d) outside the polygon = %d", x, y, m.Pix[y*m.W+x])
				}
			}
		}
		if inside == 0 {
			t.Fatal("no pixel checked")
		}
	})

	t.Run("eraser", func(t *testing.T) {
		clickTestID(t, ctx, "tool-eraser")
		drag(t, ctx, line(550, 700, 850, 700, 20))
		v = waitSavedAfter(t, ctx, v)
		if got := at(700, 700); got != 0 {
			t.Fatalf("erased pixel (700,700) = %d", got)
		}
		if got := at(700, 650); int(got) != cls {
			t.Fatalf("pixel (700,650) away from the eraser = %d, want %d", got, cls)
		}
	})

	t.Run("undo_redo", func(t *testing.T) {
		clickTestID(t, ctx, "undo")
		v = waitSavedAfter(t, ctx, v)
		if got := at(700, 700); int(got) != cls {
			t.Fatalf("after undo of the erase, (700,700) = %d, want %d", got, cls)
		}
		clickTestID(t, ctx, "redo")
		v = waitSavedAfter(t, ctx, v)
		if got := at(700, 700); got != 0 {
			t.Fatalf("after redo of the erase, (700,700) = %d, want 0", got)
		}
		// The keyboard path: Ctrl+Z undoes the erase again.
		run(t, ctx, chromedp.KeyEvent("z", chromedp.KeyModifiers(chromedp.ModifierCtrl)))
		v = waitSavedAfter(t, ctx, v)
		if got := at(700, 700); int(got) != cls {
			t.Fatalf("after Ctrl+Z, (700,700) = %d, want %d", got, cls)
		}
	})

	t.Run("fill", func(t *testing.T) {
		clickTestID(t, ctx, "tool-brush")
		setInput(t, ctx, "brush-size", "8")
		ring := make([][2]float64, 0, 61)
		for i := 0; i <= 60; i++ {
			a := float64(i) / 60 * 2 * 3.141592653589793
			ring = append(ring, [2]float64{250 + 80*cos(a), 500 + 80*sin(a)})
		}
		drag(t, ctx, ring)
		v = waitSavedAfter(t, ctx, v)
		if got := at(250, 500); got != 0 {
			t.Fatalf("centre of the ring before fill = %d", got)
		}
		clickTestID(t, ctx, "tool-fill")
		clickAt(t, ctx, 250, 500, 1)
		v = waitSavedAfter(t, ctx, v)
		if got := at(250, 500); int(got) != cls {
			t.Fatalf("centre of the ring after fill = %d, want %d", got, cls)
		}
		if got := at(250, 380); got != 0 {
			t.Fatalf("fill leaked outside the ring: (250,380) = %d", got)
		}
	})

	var saveMs []float64 // save round trips, collected across page loads
	t.Run("reload", func(t *testing.T) {
		m, _ := ws.mask(t, ds.ID, img)
		saveMs = append(saveMs, eval[[]float64](t, ctx, `window.rdreSaveMs || []`)...)
		run(t, ctx, chromedp.Reload())
		waitJS(t, ctx, 30*time.Second, "the editor after reload", testid("editor-canvas")+` && `+testid("save-status")+`.textContent === 'saved' && +`+testid("save-status")+fmt.Sprintf(`.dataset.version === %d`, v))
		if got := canvasCount(t, ctx); got != m.Count() {
			t.Fatalf("after reload the canvas shows %d labelled pixels, the server has %d", got, m.Count())
		}
	})

	t.Run("history_revert", func(t *testing.T) {
		clickTestID(t, ctx, "history")
		// Every version of this sitting is one entry ("v1–vN · N saves"), its versions inside.
		waitJS(t, ctx, 10*time.Second, "the version list", fmt.Sprintf(`(() => { const g = [...document.querySelectorAll('[data-testid=history-group]')];
			return g.length === 1 && g[0].textContent.startsWith('v1–v%d · %d saves'); })()`, v, v))
		var v1 protocol.MaskReply
		ws.request(t, protocol.TypeMaskGet, protocol.MaskGetRequest{Dataset: ds.ID, Image: img, Version: 1}, &v1)
		eval[chromedp.Void](t, ctx, `document.querySelector('[data-testid=history-list] details').open = true`)
		run(t, ctx, chromedp.Click(chromedp.CSS(`[data-testid=history-revert][data-version="1"]`), chromedp.NodeVisible))
		v = waitSavedAfter(t, ctx, v)
		m, rep := ws.mask(t, ds.ID, img)
		if rep.Version != v || string(m.Encode()) != string(v1.RLE) {
			t.Fatalf("after revert to version 1 the server has version %d (%d px), want a copy of version 1", rep.Version, m.Count())
		}
		waitJS(t, ctx, 10*time.Second, "the reverted mask on the canvas", fmt.Sprintf(`(() => { const c = %s; const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
			let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n === %d; })()`, testid("editor-canvas"), m.Count()))
		clickTestID(t, ctx, "history")
	})

	t.Run("two_tabs", func(t *testing.T) {
		other := newTab(t, ctx)
		run(t, other, chromedp.Navigate(page))
		waitJS(t, other, 30*time.Second, "the second tab's editor", testid("editor-canvas")+` && `+testid("save-status")+`.textContent === 'saved'`)
		if canvasAlpha(t, other, 200, 900) != 0 {
			t.Fatal("second tab: (200,900) labelled before the first tab drew there")
		}
		clickTestID(t, ctx, "tool-brush")
		drag(t, ctx, line(100, 900, 300, 900, 10))
		v = waitSavedAfter(t, ctx, v)
		waitJS(t, other, 10*time.Second, "the first tab's stroke in the second tab",
			testid("editor-canvas")+`.getContext('2d').getImageData(200, 900, 1, 1).data[3] > 0`)
		// And back: the second tab erases, the first tab sees it.
		run(t, other, chromedp.Click(chromedp.CSS(`[data-testid=tool-eraser]`), chromedp.NodeVisible))
		drag(t, other, line(150, 900, 250, 900, 10))
		waitSavedAfter(t, other, v)
		waitJS(t, ctx, 10*time.Second, "the second tab's erase in the first tab",
			testid("editor-canvas")+`.getContext('2d').getImageData(200, 900, 1, 1).data[3] === 0`)
		v = savedVersion(t, ctx)
	})

	t.Run("stroke_latency", func(t *testing.T) {
		clickTestID(t, ctx, "tool-brush")
		setInput(t, ctx, "brush-size", "24")
		eval[chromedp.Void](t, ctx, `window.rdreStrokeLatency = []; window.rdreStrokeWork = []`)
		pts := wavePath()
		drag(t, ctx, pts)
		v = waitSavedAfter(t, ctx, v)
		lat := eval[[]float64](t, ctx, `window.rdreStrokeLatency`)
		if len(lat) < 200 {
			t.Fatalf("%d latency samples for a 240-move stroke", len(lat))
		}
		work := eval[[]float64](t, ctx, `window.rdreStrokeWork`)
		saves := append(saveMs, eval[[]float64](t, ctx, `window.rdreSaveMs || []`)...)
		t.Logf("stroke latency on 1024x1024, %d moves: event timeStamp to repaint done p50 %.2f ms, p95 %.2f ms; editor work per move p50 %.2f ms, p95 %.2f ms",
			len(lat), percentile(lat, 50), percentile(lat, 95), percentile(work, 50), percentile(work, 95))
		t.Logf("mask save (1024x1024, send to commit confirmed): p50 %.1f ms, p95 %.1f ms over %d saves", percentile(saves, 50), percentile(saves, 95), len(saves))
		screenshot(t, ctx, "editor-drawn.png")
	})

	t.Run("new_class_and_keys", func(t *testing.T) {
		before := eval[int](t, ctx, `document.querySelectorAll('[data-testid=class-select] option').length`)
		setInput(t, ctx, "class-name", "smudge")
		setInput(t, ctx, "class-color", "#00ff00")
		clickTestID(t, ctx, "class-add")
		waitJS(t, ctx, 10*time.Second, "the new class selected",
			`[...document.querySelectorAll('[data-testid=class-select] option')].some(o => o.selected && o.textContent.endsWith('smudge'))`)
		if n := eval[int](t, ctx, `document.querySelectorAll('[data-testid=class-select] option').length`); n != before+1 {
			t.Fatalf("class-select has %d options after adding one to %d", n, before)
		}
		smudge := eval[int](t, ctx, `+`+testid("class-select")+`.value`)
		if smudge == cls {
			t.Fatalf("the new class has the index %d of the old one", cls)
		}
		// Key 1 picks the first class again, e picks the eraser, b the brush.
		run(t, ctx, chromedp.KeyEvent("1"), chromedp.KeyEvent("e"))
		waitJS(t, ctx, 5*time.Second, "key 1 and e", `+`+testid("class-select")+fmt.Sprintf(`.value === %d && %s.classList.contains('active')`, cls, testid("tool-eraser")))
		run(t, ctx, chromedp.KeyEvent("2"), chromedp.KeyEvent("b"))
		waitJS(t, ctx, 5*time.Second, "key 2 and b", testid("tool-brush")+`.classList.contains('active')`)
		sel := eval[int](t, ctx, `+`+testid("class-select")+`.value`)
		drag(t, ctx, line(900, 50, 980, 50, 8))
		v = waitSavedAfter(t, ctx, v)
		if got := at(940, 50); int(got) != sel || sel == cls {
			t.Fatalf("stroke with class %d (key 2) stored %d", sel, got)
		}
	})

	// A dataset with no defect type has no label class: the first save creates one.
	t.Run("first_class_created", func(t *testing.T) {
		pds := datasetID(t, ws, "plain")
		tab := newTab(t, ctx)
		run(t, tab, chromedp.Navigate(srv.URL+"/image?dataset="+pds.ID+"&id=test/good/000.png"))
		waitJS(t, tab, 30*time.Second, "the editor", testid("editor-canvas")+` && `+testid("save-status")+`.textContent === 'saved'`)
		drag(t, tab, line(10, 10, 40, 30, 6))
		waitSavedAfter(t, tab, 0)
		waitJS(t, tab, 5*time.Second, "the created class", `[...document.querySelectorAll('[data-testid=class-select] option')].some(o => o.selected && o.textContent.endsWith('defect'))`)
		m, _ := ws.mask(t, pds.ID, "test/good/000.png")
		if m.Count() == 0 {
			t.Fatal("the first stroke on a dataset without classes was not stored")
		}
	})

	// Last: the workspace file is locked while the server runs, so export after stopping it and compare
	// the exported PNG with the mask the server stored, pixel for pixel.
	t.Run("export", func(t *testing.T) {
		want, _ := ws.mask(t, ds.ID, img)
		srv.Stop(t)
		out := t.TempDir()
		cmd := exec.Command(rdreBinary(t), "export", "--workspace", srv.Workspace, "--dataset", ds.ID, "--out", out, "--masks-only")
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("rdre export: %v\n%s", err, b)
		}
		// Export renumbers files per output folder, so find the drawn image's mask by its size: it is
		// the only 1024x1024 image of the fixture.
		var found []string
		var got *image.Gray
		filepath.WalkDir(out, func(p string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() && strings.HasSuffix(p, "_mask.png") {
				if g := readGray(t, p); g.Rect.Dx() == want.W && g.Rect.Dy() == want.H {
					found = append(found, p)
					got = g
				}
			}
			return nil
		})
		if len(found) != 1 {
			t.Fatalf("export wrote %d masks of %dx%d under %s: %v", len(found), want.W, want.H, out, found)
		}
		for i, v := range want.Pix {
			exp := uint8(0)
			if v != 0 {
				exp = 255
			}
			if got.Pix[i] != exp {
				t.Fatalf("exported pixel (%d,%d) = %d, want %d", i%want.W, i/want.W, got.Pix[i], exp)
			}
		}
		t.Logf("exported %s matches the drawn mask (%d defect pixels)", found[0][len(out):], want.Count())
	})
}

// TestUI_RealDataset opens a real dataset when RDRE_E2E_DATA names one (for example
// ../shared/data/mvtec/bottle or ../shared/data/mtd): grid, filters, one image with its mask.
func TestUI_RealDataset(t *testing.T) {
	data := os.Getenv("RDRE_E2E_DATA")
	if data == "" {
		t.Skip("set RDRE_E2E_DATA to a dataset folder to run the UI against it")
	}
	ctx := newBrowser(t)
	srv := startServer(t, data)
	var rep protocol.DatasetsReply
	dialWS(t, srv.URL).request(t, protocol.TypeDatasetsList, nil, &rep)
	if len(rep.Datasets) == 0 {
		t.Fatal("no dataset registered")
	}
	ds := rep.Datasets[0]
	start := time.Now()
	run(t, ctx, chromedp.Navigate(srv.URL+"/dataset?id="+ds.ID))
	waitJS(t, ctx, 60*time.Second, "the grid", tileCount+` > 0`)
	waitJS(t, ctx, 60*time.Second, "thumbnails in view decoded", visibleThumbsLoaded)
	t.Logf("%s (%d images, %s): grid usable %.0f ms after navigation start, thumbnails in view after %v",
		ds.Name, ds.Images, ds.Layout, eval[float64](t, ctx, `window.rdreGridReadyAt`), time.Since(start).Round(time.Millisecond))
	screenshotLocal(t, ctx, "real-grid.png")
	run(t, ctx, chromedp.Click(chromedp.CSS(`[data-testid=image-tile]:not([data-kind=good])`), chromedp.NodeVisible))
	waitJS(t, ctx, 30*time.Second, "the editor", testid("editor-canvas")+` && `+testid("save-status")+`.textContent === 'saved'`)
	waitJS(t, ctx, 30*time.Second, "the full-size image", `document.getElementById('editor-image').complete && document.getElementById('editor-image').naturalWidth > 0`)
	if n := canvasCount(t, ctx); n == 0 {
		t.Fatal("a defective image shows no mask pixel")
	}
	screenshotLocal(t, ctx, "real-editor.png")
}
