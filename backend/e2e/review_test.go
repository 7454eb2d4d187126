//go:build !js

package e2e

// Browser tests of issue 13's labelling day: review states, class management, image display.

import (
	"fmt"
	"image/png"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/rdre-studio/studio/shared/protocol"
)

// keepShot leaves a screenshot for the lead under .shots/ (not committed).
func keepShot(t *testing.T, buf []byte, name string) {
	t.Helper()
	dir := filepath.Join(repoRoot(t), ".shots")
	if err := os.MkdirAll(dir, 0o755); err == nil {
		os.WriteFile(filepath.Join(dir, name), buf, 0o644)
	}
}

func text(id string) string { return testid(id) + `.textContent` }

// TestReview_EditorKeysCountsAndFilter: r marks an image reviewed-no-defect, a stroke makes an image
// labelled, the counts follow in the editor, the grid and the dataset list, n goes to the next image
// that needs work, and the grid filter per state works and goes back to "all".
func TestReview_EditorKeysCountsAndFilter(t *testing.T) {
	ctx := newBrowser(t)
	srv, ws, ds := openEditor(t, ctx, "test/good/000.png")
	total := ds.Images
	waitJS(t, ctx, 10*time.Second, "the review line", text("review-count")+fmt.Sprintf(`.includes('0 of %d labelled')`, total))
	if st := eval[string](t, ctx, testid("review-state")+`.dataset.state`); st != protocol.ReviewUnlabelled {
		t.Fatalf("a new image's state %q", st)
	}

	// r: reviewed, no defect; stored on the server.
	run(t, ctx, chromedp.KeyEvent("r"))
	waitJS(t, ctx, 10*time.Second, "reviewed-no-defect", testid("review-state")+`.dataset.state === 'reviewed-no-defect'`)
	var list protocol.ReviewsReply
	ws.request(t, protocol.TypeReviewsList, protocol.ReviewsListRequest{Dataset: ds.ID}, &list)
	if list.Counts.NoDefect != 1 {
		t.Fatalf("server counts after r: %+v", list.Counts)
	}
	// Shortcuts keep working after touching the button: r again goes back to unlabelled, then the
	// button sets it again.
	clickTestID(t, ctx, "review-nodefect")
	waitJS(t, ctx, 10*time.Second, "unlabelled again", testid("review-state")+`.dataset.state === 'unlabelled'`)
	run(t, ctx, chromedp.KeyEvent("r"))
	waitJS(t, ctx, 10*time.Second, "reviewed-no-defect again", testid("review-state")+`.dataset.state === 'reviewed-no-defect'`)

	// n: the next image that needs work is not this one; a stroke there makes it labelled.
	run(t, ctx, chromedp.KeyEvent("n"))
	waitJS(t, ctx, 10*time.Second, "another image", `!location.search.includes('good%2F000')`)
	waitEditor(t, ctx)
	next := eval[string](t, ctx, `new URLSearchParams(location.search).get('id')`)
	v := savedVersion(t, ctx)
	clickTestID(t, ctx, "tool-brush")
	setInput(t, ctx, "brush-size", "8")
	drag(t, ctx, line(20, 20, 60, 60, 8))
	waitSavedAfter(t, ctx, v)
	waitJS(t, ctx, 10*time.Second, "labelled", testid("review-state")+`.dataset.state === 'labelled'`)
	waitJS(t, ctx, 10*time.Second, "the editor counts", text("review-count")+fmt.Sprintf(`.includes('1 of %d labelled · 1 reviewed, no defect · %d to do')`, total, total-2))
	// Marking a labelled image "no defect" is refused in place.
	eval[chromedp.Void](t, ctx, `window.maskNode = `+testid("editor-canvas"))
	run(t, ctx, chromedp.KeyEvent("r"))
	waitJS(t, ctx, 5*time.Second, "the refusal", visible("review-error")+` && `+text("review-error")+`.includes('defect pixels')`)
	if !eval[bool](t, ctx, `window.maskNode === `+testid("editor-canvas")+` && window.maskNode.isConnected`) {
		t.Fatal("the refusal replaced the mask canvas")
	}
	buf := screenshotLocal(t, ctx, "review-editor.png")
	keepShot(t, buf, "review-editor.png")

	// Another tab hears of the state change.
	tab := newTab(t, ctx)
	run(t, tab, chromedp.Navigate(srv.URL+"/dataset?id="+ds.ID))
	waitJS(t, tab, 20*time.Second, "the grid counts", text("review-count")+fmt.Sprintf(`.includes('1 of %d labelled')`, total))

	// Grid filter per state, then back to "all".
	run(t, ctx, chromedp.Navigate(srv.URL+"/dataset?id="+ds.ID))
	tiles := `document.querySelectorAll('[data-testid=image-tile]').length`
	waitJS(t, ctx, 20*time.Second, "the grid", tiles+fmt.Sprintf(` === %d`, total))
	for _, c := range []struct {
		state string
		n     int
	}{{protocol.ReviewLabelled, 1}, {protocol.ReviewNoDefect, 1}, {protocol.ReviewUnlabelled, total - 2}, {"\u2205", total}} {
		setInput(t, ctx, "filter-review", c.state)
		waitJS(t, ctx, 10*time.Second, "filter "+c.state, tiles+fmt.Sprintf(` === %d`, c.n))
		if c.state == protocol.ReviewLabelled {
			if id := eval[string](t, ctx, `document.querySelector('[data-testid=image-tile]').dataset.id`); id != next {
				t.Fatalf("labelled filter shows %s, want %s", id, next)
			}
			buf := screenshotLocal(t, ctx, "review-grid.png")
			keepShot(t, buf, "review-grid.png")
		}
	}
	if got := eval[string](t, ctx, text("grid-count")); !strings.HasPrefix(got, fmt.Sprintf("%d of %d", total, total)) {
		t.Fatalf("grid count after all: %q", got)
	}

	// The dataset card.
	run(t, ctx, chromedp.Navigate(srv.URL+"/"))
	waitJS(t, ctx, 20*time.Second, "the dataset card counts", testid("ds-review")+` && `+text("ds-review")+fmt.Sprintf(`.includes('1 of %d labelled · 1 reviewed, no defect')`, total))
}

func legendRow(idx int, what string) string { return fmt.Sprintf("class-%s-%d", what, idx) }

// TestReview_ClassManagement: rename (and its error in place), recolour, hide, lock and delete.
func TestReview_ClassManagement(t *testing.T) {
	ctx := newBrowser(t)
	_, ws, ds := openEditor(t, ctx, "test/good/001.png")
	const img = "test/good/001.png"
	// A user class to draw with: "smudge".
	setInput(t, ctx, "class-name", "smudge")
	clickTestID(t, ctx, "class-add")
	waitJS(t, ctx, 10*time.Second, "the smudge row", `[...document.querySelectorAll('[data-testid=legend-row]')].some(r => r.textContent.includes('smudge'))`)
	var cls protocol.ClassesReply
	ws.request(t, protocol.TypeClassesList, protocol.ClassesListRequest{Dataset: ds.ID}, &cls)
	smudge := cls.Classes[len(cls.Classes)-1].Index
	scratch := cls.Classes[0].Index
	v := savedVersion(t, ctx)
	clickTestID(t, ctx, "tool-brush")
	setInput(t, ctx, "brush-size", "10")
	drag(t, ctx, line(20, 30, 100, 30, 10))
	v = waitSavedAfter(t, ctx, v)
	drawn := canvasCount(t, ctx)
	eval[chromedp.Void](t, ctx, `window.maskNode = `+testid("editor-canvas"))
	sameCanvas := func(when string) {
		t.Helper()
		if !eval[bool](t, ctx, `window.maskNode === `+testid("editor-canvas")+` && window.maskNode.isConnected`) {
			t.Fatalf("%s: the mask canvas was replaced", when)
		}
	}

	// Rename to an existing name: an error in place, the canvas untouched.
	clickTestID(t, ctx, legendRow(smudge, "rename"))
	setInput(t, ctx, "class-rename-input", "Scratch")
	clickTestID(t, ctx, "class-rename-save")
	waitJS(t, ctx, 5*time.Second, "the rename error", visible("class-error")+` && `+text("class-error")+`.includes('exists')`)
	sameCanvas("after the rename error")
	if got := canvasCount(t, ctx); got != drawn {
		t.Fatalf("after the rename error the canvas shows %d pixels, want %d", got, drawn)
	}
	// The server refuses it too (another client has no client-side check).
	env, _ := protocol.New("x", protocol.TypeClassUpdate, protocol.ClassUpdateRequest{Dataset: ds.ID, Index: smudge, Name: "SCRATCH"})
	ws.conn.WriteJSON(env)
	for {
		var rep protocol.Envelope
		if err := ws.conn.ReadJSON(&rep); err != nil {
			t.Fatal(err)
		}
		if rep.ID == "x" {
			if rep.Type != protocol.TypeError {
				t.Fatalf("rename to an existing name over the websocket: %s", rep.Type)
			}
			break
		}
	}
	// A good rename.
	setInput(t, ctx, "class-rename-input", "stain")
	clickTestID(t, ctx, "class-rename-save")
	waitJS(t, ctx, 10*time.Second, "the renamed class", text(legendRow(smudge, "name"))+` === 'stain'`)
	if eval[bool](t, ctx, visible("class-error")) {
		t.Fatal("the class error stays after a good rename")
	}
	// Recolour: the canvas paints the new colour.
	setInput(t, ctx, legendRow(smudge, "color"), "#00ff00")
	waitJS(t, ctx, 10*time.Second, "the new colour", testid("editor-canvas")+`.getContext('2d').getImageData(60, 30, 1, 1).data.join() === '0,255,0,255'`)
	ws.request(t, protocol.TypeClassesList, protocol.ClassesListRequest{Dataset: ds.ID}, &cls)
	if c := cls.Classes[len(cls.Classes)-1]; c.Name != "stain" || c.Color != "#00ff00" {
		t.Fatalf("stored class %+v", c)
	}

	// Hide: not drawn, still saved.
	clickTestID(t, ctx, legendRow(smudge, "hide"))
	waitJS(t, ctx, 5*time.Second, "the hidden class not drawn", testid("editor-canvas")+`.getContext('2d').getImageData(60, 30, 1, 1).data[3] === 0`)
	if got := canvasCount(t, ctx); got != 0 {
		t.Fatalf("hidden class: %d pixels drawn", got)
	}
	if m, _ := ws.mask(t, ds.ID, img); m.Count() != drawn {
		t.Fatalf("hiding changed the stored mask: %d pixels, want %d", m.Count(), drawn)
	}
	clickTestID(t, ctx, legendRow(smudge, "hide"))
	waitJS(t, ctx, 5*time.Second, "the class shown again", testid("editor-canvas")+`.getContext('2d').getImageData(60, 30, 1, 1).data[3] === 255`)
	sameCanvas("after hide and show")

	// Lock: another class's brush and the eraser leave it; drawing with it is refused in place.
	clickTestID(t, ctx, legendRow(smudge, "lock"))
	clickTestID(t, ctx, legendRow(scratch, "name"))
	drag(t, ctx, line(60, 10, 60, 60, 8))
	v = waitSavedAfter(t, ctx, v)
	m, _ := ws.mask(t, ds.ID, img)
	if m.Pix[30*m.W+60] != uint8(smudge) || m.Pix[50*m.W+60] != uint8(scratch) {
		t.Fatalf("a stroke over a locked class: pixel on it %d (want %d), beside it %d (want %d)", m.Pix[30*m.W+60], smudge, m.Pix[50*m.W+60], scratch)
	}
	clickTestID(t, ctx, "tool-eraser")
	drag(t, ctx, line(20, 30, 100, 30, 10))
	time.Sleep(500 * time.Millisecond)
	if m, _ := ws.mask(t, ds.ID, img); m.Pix[30*m.W+40] != uint8(smudge) {
		t.Fatal("the eraser removed a locked class's pixels")
	}
	clickTestID(t, ctx, "tool-brush")
	clickTestID(t, ctx, legendRow(smudge, "name"))
	drag(t, ctx, line(20, 90, 100, 90, 10))
	waitJS(t, ctx, 5*time.Second, "the locked message", visible("tool-message")+` && `+text("tool-message")+`.includes('locked')`)
	if m, _ := ws.mask(t, ds.ID, img); m.Pix[90*m.W+60] != 0 {
		t.Fatal("a locked class was painted")
	}
	buf := screenshotLocal(t, ctx, "review-legend.png")
	keepShot(t, buf, "review-legend.png")
	clickTestID(t, ctx, legendRow(smudge, "lock"))

	// Delete: the confirmation says what happens; the pixels become background.
	if eval[bool](t, ctx, testid(legendRow(scratch, "delete"))+` !== null`) {
		t.Fatal("a dataset class offers delete")
	}
	clickTestID(t, ctx, legendRow(smudge, "delete"))
	waitJS(t, ctx, 5*time.Second, "the confirmation", visible("class-delete-confirm")+` && `+text("class-delete-confirm")+`.includes('become background')`)
	clickTestID(t, ctx, "class-delete-yes")
	waitJS(t, ctx, 10*time.Second, "the delete answered", `!document.querySelector('[data-testid=class-delete-confirm]')`)
	if msg := eval[string](t, ctx, text("class-error")); msg != "" {
		t.Fatalf("delete: %s", msg)
	}
	waitJS(t, ctx, 10*time.Second, "the class gone", `![...document.querySelectorAll('[data-testid=legend-row]')].some(r => r.textContent.includes('stain'))`)
	m, rep := ws.mask(t, ds.ID, img)
	if rep.Version <= v || m.Pix[30*m.W+40] != 0 || m.Pix[50*m.W+60] != uint8(scratch) {
		t.Fatalf("after delete: version %d (was %d), stain pixel %d, scratch pixel %d", rep.Version, v, m.Pix[30*m.W+40], m.Pix[50*m.W+60])
	}
	waitJS(t, ctx, 10*time.Second, "the pixels gone from the canvas", testid("editor-canvas")+`.getContext('2d').getImageData(40, 30, 1, 1).data[3] === 0`)
	// The editor follows the server's new version, so the next stroke saves without a conflict.
	waitJS(t, ctx, 10*time.Second, "the editor at the rewritten version", fmt.Sprintf(`+%s.dataset.version === %d`, testid("save-status"), rep.Version))
	drag(t, ctx, line(20, 110, 100, 110, 6))
	if nv := waitSavedAfter(t, ctx, rep.Version); nv != rep.Version+1 {
		t.Fatalf("the stroke after the delete saved version %d, want %d", nv, rep.Version+1)
	}
}

// TestReview_ImageDisplay: brightness, contrast and gamma change only the image's display, are kept per
// dataset across images and reloads, and reset.
func TestReview_ImageDisplay(t *testing.T) {
	ctx := newBrowser(t)
	srv, ws, ds := openEditor(t, ctx, "test/scratch/000.png")
	before, _ := ws.mask(t, ds.ID, "test/scratch/000.png")
	filter := `getComputedStyle(document.getElementById('editor-image')).filter`
	if f := eval[string](t, ctx, filter); f != "none" {
		t.Fatalf("initial filter %q", f)
	}
	setInput(t, ctx, "img-brightness", "150")
	setInput(t, ctx, "img-contrast", "80")
	setInput(t, ctx, "img-gamma", "200")
	waitJS(t, ctx, 5*time.Second, "the filter", filter+`.includes('brightness(1.5)') && `+filter+`.includes('contrast(0.8)') && `+filter+`.includes('rdre-gamma')`)
	if e := eval[string](t, ctx, `document.getElementById('rdre-gamma-r').getAttribute('exponent')`); e != "0.500" {
		t.Fatalf("gamma exponent %q", e)
	}
	// Shortcuts still work after the sliders.
	run(t, ctx, chromedp.KeyEvent("m"))
	waitJS(t, ctx, 3*time.Second, "the mask hidden by m", `getComputedStyle(`+testid("editor-canvas")+`).visibility === 'hidden'`)
	run(t, ctx, chromedp.KeyEvent("m"))
	buf := screenshotLocal(t, ctx, "review-display.png")
	keepShot(t, buf, "review-display.png")
	// Display only: the mask is what it was.
	if after, _ := ws.mask(t, ds.ID, "test/scratch/000.png"); after.Count() != before.Count() {
		t.Fatal("display settings changed the mask")
	}
	// Kept on the next image and after a reload.
	run(t, ctx, chromedp.KeyEvent("j"))
	waitJS(t, ctx, 10*time.Second, "the next image", `!location.search.includes('scratch%2F000')`)
	waitEditor(t, ctx)
	waitJS(t, ctx, 5*time.Second, "the filter on the next image", filter+`.includes('brightness(1.5)')`)
	run(t, ctx, chromedp.Reload())
	waitEditor(t, ctx)
	waitJS(t, ctx, 5*time.Second, "the filter after a reload", filter+`.includes('brightness(1.5)')`)
	waitJS(t, ctx, 5*time.Second, "the gamma after a reload", `document.getElementById('rdre-gamma-r') && document.getElementById('rdre-gamma-r').getAttribute('exponent') === '0.500'`)
	clickTestID(t, ctx, "img-reset")
	waitJS(t, ctx, 5*time.Second, "no filter after reset", filter+` === 'none'`)
	_ = srv
}

// TestReview_GroundTruthOutline: the dataset's ground truth is drawn as an outline, not a filled area.
func TestReview_GroundTruthOutline(t *testing.T) {
	ctx := newBrowser(t)
	srv, _, ds := openEditor(t, ctx, "test/scratch/000.png")
	src := eval[string](t, ctx, testid("gt-overlay")+`.style.maskImage || `+testid("gt-overlay")+`.style.webkitMaskImage`)
	if !strings.Contains(src, "outline=1") {
		t.Fatalf("ground-truth overlay %q is not the outline", src)
	}
	resp, err := http.Get(srv.URL + "/api/gt?dataset=" + ds.ID + "&id=test/scratch/000.png&outline=1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	m, err := png.Decode(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	// The fixture's defect is the rectangle x 30..89, y 40..59.
	inside := func(x, y int) bool { r, _, _, _ := m.At(x, y).RGBA(); return r > 0 }
	if !inside(30, 50) || !inside(29, 50) || !inside(60, 40) || inside(60, 50) || inside(10, 10) {
		t.Fatalf("outline: edge %v %v %v, interior %v, outside %v", inside(30, 50), inside(29, 50), inside(60, 40), inside(60, 50), inside(10, 10))
	}
}
